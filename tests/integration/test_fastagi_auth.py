"""Only Asterisk drives the IVR (issue 10, defect 8), on the suite's real CTI and Asterisk.

The CTI here was built by the wiring as `make up` builds it: the secret from secrets.json, and
the peer check on because hotline-asterisk exists. A local process posing as Asterisk is
refused without the secret, with a wrong one, and even with the right one (it is not Asterisk's
uid); nothing it sent is stored, and the CTI counts each refusal in its status. Real calls
through the same FastAGI port are served (test_ivr_calls.py, test_flow_reload.py): Asterisk
passes the secret and runs as hotline-asterisk.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
from sqlalchemy import select

from cti.db.models import Call
from hotline import stack
from tests.integration.conftest import Backend, CtiProcess

pytestmark = pytest.mark.integration
DEADLINE_S = 10.0


def pose_as_asterisk(cti: CtiProcess, script: str, linkedid: str) -> bytes:
    """Connect to the CTI's FastAGI port as Asterisk would and send a call's header block;
    return everything the server sent until it closed."""
    h = {"agi_network": "yes", "agi_network_script": script,
         "agi_request": f"agi://127.0.0.1/{script}", "agi_channel": "PJSIP/carrier-00000001",
         "agi_language": "zh", "agi_uniqueid": linkedid, "agi_callerid": "13800138000",
         "agi_dnid": "95598", "agi_context": "from-carrier", "agi_extension": "95598",
         "agi_arg_1": linkedid}
    block = "".join(f"{k}: {v}\n" for k, v in h.items()).encode() + b"\n"
    fa = cti.settings.fastagi
    got = b""
    with socket.create_connection((fa.host, fa.port), timeout=DEADLINE_S) as s:
        s.sendall(block)
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            chunk = s.recv(4096)  # a command would arrive here; the refusal closes instead
            if not chunk:
                return got
            got += chunk
    raise AssertionError(f"the FastAGI server kept the connection open; it sent {got!r}")


def refused(cti: CtiProcess) -> dict[str, int]:
    return dict(cti.status().get("fastagi_refused") or {})


def test_a_local_process_posing_as_asterisk_is_refused_and_stores_nothing(
        cti: CtiProcess, backend: Backend) -> None:
    stack.wait_until(lambda: "fastagi_refused" in cti.status(), DEADLINE_S,
                     "the CTI's status with its FastAGI refusals")
    before = refused(cti)
    secret = json.loads((cti.settings.state_dir / "secrets.json").read_text())["fastagi"]
    ids = [f"1775000000.9{i}" for i in range(3)]

    # no secret, a wrong one, and the right one from a process that is not Asterisk (root)
    assert pose_as_asterisk(cti, "ivr", ids[0]) == b""
    assert pose_as_asterisk(cti, f"ivr?key={'0' * len(secret)}", ids[1]) == b""
    assert pose_as_asterisk(cti, f"ivr?key={secret}", ids[2]) == b""

    want = {k: before.get(k, 0) + 1 for k in ("no_secret", "wrong_secret", "peer_uid")}
    stack.wait_until(lambda: {k: refused(cti).get(k, 0) for k in want} == want, DEADLINE_S,
                     f"the CTI to count the three refusals ({want})")
    with backend.sessions() as s:
        assert list(s.scalars(select(Call.call_id).where(Call.call_id.in_(ids)))) == []
    assert cti.status()["pid"] == cti.pid  # the same CTI, still up
