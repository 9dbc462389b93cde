"""SIPp agent phones: register seats with digest auth, and one UAS that answers for all of them
(scenarios from bench/sipp/)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.sipp import scenario


def register_seats(secrets: Mapping[str, str], target: str, contact_port: int, workdir: Path,
                   local_port: int, expires: int = 3600) -> None:
    """REGISTER each seat (digest auth) with its Contact on the agent-phone UAS."""
    workdir.mkdir(parents=True, exist_ok=True)
    scen = workdir / f"register-{contact_port}.xml"
    scen.write_text(scenario("register", contact_port=contact_port, expires=expires))
    inf = workdir / f"seats-{contact_port}.csv"
    rows = ["SEQUENTIAL"] + [f"{name};[authentication username={name} password={pw}]"
                             for name, pw in secrets.items()]
    inf.write_text("\n".join(rows) + "\n")
    res = subprocess.run(
        ["sipp", target, "-sf", str(scen), "-inf", str(inf), "-m", str(len(secrets)),
         "-l", "10", "-r", "50", "-i", "127.0.0.1", "-p", str(local_port), "-cp",
         str(local_port + 1000), "-timeout", "30s", "-timeout_error", "-nostdin",
         "-trace_err", "-error_file", str(workdir / f"register-{contact_port}.err")],
        capture_output=True, text=True, cwd=workdir, check=False)
    if res.returncode != 0:
        err = (workdir / f"register-{contact_port}.err")
        raise AssertionError(f"seat registration failed ({res.returncode}): "
                             f"{err.read_text()[-2000:] if err.exists() else res.stderr[-2000:]}")


class SippUas:
    """One SIPp UAS running the scenario `xml` on its port, for as long as it runs: the phone of
    every seat whose contact is registered there."""

    def __init__(self, xml: str, port: int, workdir: Path, *, name: str = "uas",
                 media_port: int | None = None) -> None:
        self.port = port
        workdir.mkdir(parents=True, exist_ok=True)
        scen = workdir / f"{name}-{port}.xml"
        scen.write_text(xml)
        # SIPp takes media_port and media_port + 2 (video): keep phones 10 apart, and away
        # from Asterisk's RTP range
        media = 26000 + (port % 1000) * 10 if media_port is None else media_port
        self.proc = subprocess.Popen(
            ["sipp", "-sf", str(scen), "-i", "127.0.0.1", "-p", str(port), "-mp", str(media),
             "-cp", str(port + 1000), "-nostdin", "-trace_err",
             "-error_file", str(workdir / f"{name}-{port}.err")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class AgentPhones(SippUas):
    """Phones that answer every INVITE after ring_ms, or ring and never answer."""

    def __init__(self, port: int, workdir: Path, *, answer: bool = True,
                 ring_ms: int = 1500) -> None:
        super().__init__(scenario("phone_answer", ring_ms=ring_ms, while_talking="") if answer
                         else scenario("phone_no_answer"), port, workdir)


class HangingUpPhones(SippUas):
    """Phones whose agent hangs up first: they answer every INVITE after ring_ms and send BYE
    talk_ms later (a caller who hangs up sooner is answered as usual)."""

    def __init__(self, port: int, workdir: Path, *, ring_ms: int = 1000,
                 talk_ms: int = 3000, while_talking: str = "") -> None:
        super().__init__(scenario("phone_answer_hangup", ring_ms=ring_ms, talk_ms=talk_ms,
                                  while_talking=while_talking), port, workdir, name="hangup")


@contextmanager
def answering_seats(settings: Any, seats: Iterable[str], phone_port: int, register_port: int,
                    workdir: Path, *, ring_ms: int = 1000) -> Iterator[None]:
    """For the with-block: one answering SIPp phone (AgentPhones on phone_port) registered as
    each of these seats of the running stack (its secrets.json), stopped at the end."""
    secrets = json.loads((settings.state_dir / "secrets.json").read_text())
    target = f"{settings.pbx.bind_ip}:{settings.pbx.sip_port}"
    phone = AgentPhones(phone_port, workdir, answer=True, ring_ms=ring_ms)
    try:
        register_seats({s: secrets[s] for s in seats}, target, phone_port, workdir,
                       register_port)
        yield
    finally:
        phone.stop()
