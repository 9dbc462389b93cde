"""`hotline doctor --json` against the suite's running stack (real Asterisk, CTI, test broker):
every check runs, and the ones that fail here fail for the reasons this stack really has."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import PORTS, Backend, CtiProcess, ItEnv
from tests.support.ami_users import HARNESS

HOTLINE = Path(sys.executable).parent / "hotline"


def test_doctor_runs_every_check_on_the_running_stack(it_env: ItEnv, backend: Backend,
                                                      cti: CtiProcess) -> None:
    env = {**it_env.env, "HOTLINE_DB_URL": backend.url}
    res = subprocess.run([str(HOTLINE), "doctor", "--json"], env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    doc = json.loads(res.stdout)
    by = {c["name"]: c for c in doc["checks"]}
    assert set(by) == {"ports", "mqtt-anonymous", "ami", "modules", "files", "secrets", "tls",
                       "sip-ban", "users"}, res.stdout
    assert res.returncode == 1 and doc["ok"] is False  # unsafe, for the reasons below
    status = {name: c["status"] for name, c in by.items()}
    # hardened already: every port on loopback, no shell module in the root
    assert status["ports"] == "PASS", by["ports"]
    for what in ("AMI", "FastAGI", "web", "MQTT"):
        assert f"{what} 127.0.0.1:" in by["ports"]["detail"]
    assert str(PORTS["ami"]) in by["ports"]["detail"]
    assert status["modules"] == "PASS", by["modules"]
    # the suite's own broker is anonymous (tests/integration/conftest.py `broker`), as the
    # default deployment's still is: issue 10's MQTT part is not built yet
    assert status["mqtt-anonymous"] == "FAIL", by["mqtt-anonymous"]
    # the suite adds a harness AMI user with `system` write (tests/support/ami_users.py); the
    # rendered users alone pass (tests/unit/test_doctor.py)
    assert status["ami"] == "FAIL" and f"[{HARNESS}] write = system" in by["ami"]["detail"]
    assert "[hotline] write" not in by["ami"]["detail"]
    # the shipped settings are the demo: the seeded staff's 95598 is a warning there
    assert status["secrets"] == "WARN" and "on a demo deployment" in by["secrets"]["detail"]
    assert status["tls"] == "WARN"  # plain HTTP on loopback
    # the suite's Asterisk runs without the hotline's fail2ban (only test_security_pbx starts
    # one, in its own lab), and the CTI runs as root (issue 10, defect 4)
    assert status["sip-ban"] == "FAIL", by["sip-ban"]
    assert status["users"] == "FAIL" and "run as root" in by["users"]["detail"]
    assert "Asterisk uid 595" in by["users"]["detail"]
    # the CTI's log is made by stack.start_cti under root's umask 022 (the stack's own files
    # are not hardened yet: defect 4)
    assert status["files"] == "FAIL" and "cti.log: mode 0644" in by["files"]["detail"]
