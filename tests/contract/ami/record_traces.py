"""Records the AMI traces the contract tests replay, from a private Asterisk and real SIPp calls.

Run it by hand (it is not a test): `.venv/bin/python -m tests.contract.ami.record_traces [name..]`.
It starts this project's Asterisk and CTI on spare ports (SIP 25060, AMI 25038, FastAGI 24573, RTP
26000-26999) with a temp state dir, so it never meets `make up` (5060) or the integration suite
(15060). Each trace is the raw bytes one AMI connection received, banner included, written to
tests/contract/ami_traces/<name>.ami. Actions the recorder sent are not in the file, but their
responses are, with the ActionIDs below (the tests send actions with those ids and replay).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from panoramisk.message import Message

from bench.sipp import scenario
from config.settings import Settings, load_settings
from cti.ami.client import AmiActionError, AmiConnection
from hotline import stack
from hotline.cli import build_prompts, render_config
from tests.support.ami_users import add_test_users, cti_twin
from tests.support.rtp import write_call_pcap
from tests.support.settings import REPO, write_test_settings
from tests.support.sipp import Caller, Keys, Pause, scenario_xml

TRACES = Path(__file__).resolve().parents[1] / "ami_traces"
PORTS = {"sip": 25060, "ami": 25038, "fastagi": 24573}
RTP = (26000, 26999)
UAS_ANSWER_PORT = 25080  # seat07 registers its contact here: answers after 1 s
UAS_SILENT_PORT = 25090  # seat08 registers here: rings, never answers
SNAPSHOT_IDS = {"CoreShowChannels": "rec-coreshowchannels", "Status": "rec-status",
                "QueueStatus": "rec-queuestatus", "DBGet": "rec-dbget",
                "BridgeList": "rec-bridgelist"}
SNAPSHOT_VARS = "HOTLINE_SKILL,QUEUE_PRIO,HOTLINE_ACCOUNT,HOTLINE_REASON"


# ------------------------------------------------------------------------------ AMI (raw)


class RawAmi:
    """The project's own one-shot AMI connection (cti.ami.client.AmiConnection), keeping every
    byte it receives (the trace) and every event (for the scenarios to wait on)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.raw = bytearray()
        self.messages: list[Message] = []  # the events, in order
        self._changed = asyncio.Event()
        self._conn: AmiConnection | None = None

    def _event(self, message: Message) -> None:
        self.messages.append(message)
        self._changed.set()

    async def start(self) -> RawAmi:
        # the CTI's twin: the CTI user's classes and event filters, so the trace is what the
        # CTI receives; the CTI's own user allows one session, which the lab's CTI holds
        a = self.settings.ami
        login = cti_twin(self.settings)
        self._conn = await AmiConnection.open(a.host, a.port, login.username, login.secret,
                                              action_timeout_s=10, on_event=self._event,
                                              on_bytes=self.raw.extend,
                                              login_action_id="rec-login")
        return self

    async def wait_for(self, pred: Callable[[Message], bool], timeout: float,
                       what: str, since: int = 0) -> Message:
        seen = since
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for m in self.messages[seen:]:
                        if pred(m):
                            return m
                    seen = len(self.messages)
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"no {what} within {timeout:g}s") from None

    async def call(self, action: dict[str, str], timeout: float = 10) -> Message:
        """Send once and wait for the answer: the final message (a list's *Complete event).
        An error answer is returned, not raised: some scenarios record one on purpose."""
        assert self._conn is not None
        try:
            answer = await self._conn.action(action, timeout=timeout)
        except AmiActionError as exc:
            return exc.response
        return answer[-1] if isinstance(answer, list) else answer

    def mark(self) -> int:
        return len(self.messages)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()


# ----------------------------------------------------------------------------------- SIPp


@dataclass
class Sipp:
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()


_n = iter(range(1000))


async def place_call(caller: Caller, settings: Settings, workdir: Path,
                     display_name: bytes | None = None, timeout_s: int = 120) -> int:
    """One SIPp UAC call (tests.support.sipp's scenario), optionally with a From display name
    given as raw bytes, so that names can be Chinese or even truncated UTF-8."""
    n = next(_n)
    sip_port, media_port, ctrl_port = 27000 + n, 28000 + 4 * n, 29000 + n
    scen = workdir / f"caller-{caller.number}-{n}.xml"
    pcap = workdir / f"caller-{caller.number}-{n}.pcap"
    xml, rtp_keys, total_ms = scenario_xml(caller, pcap)
    write_call_pcap(pcap, rtp_keys, total_ms)
    data = xml.encode("iso-8859-1")
    if display_name is not None:
        data = data.replace(b'encoding="ISO-8859-1"', b'encoding="UTF-8"')
        data = data.replace(b"From: <sip:", b'From: "' + display_name + b'" <sip:')
    scen.write_bytes(data)
    target = f"{settings.pbx.bind_ip}:{settings.pbx.sip_port}"
    proc = await asyncio.create_subprocess_exec(
        "sipp", target, "-sf", str(scen), "-s", "95598", "-m", "1", "-l", "1",
        "-i", "127.0.0.1", "-p", str(sip_port), "-mp", str(media_port), "-cp", str(ctrl_port),
        "-timeout", f"{timeout_s}s", "-timeout_error", "-trace_err",
        "-error_file", str(workdir / f"caller-{n}.err"), "-nostdin",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, cwd=workdir)
    return await proc.wait()


def start_uas(port: int, workdir: Path, answer: bool, sipp: Sipp) -> None:
    scen = workdir / f"uas-{port}.xml"
    scen.write_text(scenario("phone_answer", ring_ms=1000, while_talking="") if answer
                    else scenario("phone_no_answer"))
    sipp.procs.append(subprocess.Popen(
        ["sipp", "-sf", str(scen), "-i", "127.0.0.1", "-p", str(port), "-mp", str(port + 2),
         "-cp", str(port + 1), "-nostdin"], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, cwd=workdir))


def register(seat: str, password: str, contact: int, settings: Settings, workdir: Path,
             expires: int = 3600) -> None:
    scen = workdir / f"register-{seat}-{expires}.xml"
    scen.write_text(scenario("register", contact_port=contact, expires=expires))
    inf = workdir / f"register-{seat}-{expires}.csv"
    inf.write_text(f"SEQUENTIAL\n{seat};[authentication username={seat} password={password}]\n")
    port = 25100 + next(_n)
    res = subprocess.run(
        ["sipp", f"{settings.pbx.bind_ip}:{settings.pbx.sip_port}", "-sf", str(scen),
         "-inf", str(inf), "-m", "1", "-i", "127.0.0.1", "-p", str(port), "-cp",
         str(port + 500), "-timeout", "10s", "-timeout_error", "-nostdin"],
        capture_output=True, cwd=workdir, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"REGISTER {seat} failed: {res.returncode}")


# ----------------------------------------------------------------------------------- harness


@dataclass
class Lab:
    settings: Settings
    env: dict[str, str]
    workdir: Path
    seat_secrets: dict[str, str]
    heartbeat: asyncio.Task[None] | None = None

    async def keep_heartbeat(self) -> None:
        """What the CTI does: the global HOTLINE_HEARTBEAT every second (on its own connection)."""
        ami = await RawAmi(self.settings).start()
        try:
            i = 0
            while True:
                i += 1
                await ami.call({"Action": "Setvar", "Variable": "HOTLINE_HEARTBEAT",
                                "Value": str(int(time.time())), "ActionID": f"hb-{i}"})
                await asyncio.sleep(1)
        finally:
            await ami.close()

    def heartbeat_on(self) -> None:
        if self.heartbeat is None:
            self.heartbeat = asyncio.create_task(self.keep_heartbeat(), name="heartbeat")

    async def heartbeat_off(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.heartbeat
            self.heartbeat = None


async def snapshot(ami: RawAmi, tag: str) -> None:
    """The resync actions, answered into the trace with ActionIDs rec-<action>-<tag>."""
    await ami.call({"Action": "CoreShowChannels",
                    "ActionID": f"{SNAPSHOT_IDS['CoreShowChannels']}-{tag}"})
    await ami.call({"Action": "Status", "Variables": SNAPSHOT_VARS,
                    "ActionID": f"{SNAPSHOT_IDS['Status']}-{tag}"})
    await ami.call({"Action": "QueueStatus", "Queue": "hotline-agents",
                    "ActionID": f"{SNAPSHOT_IDS['QueueStatus']}-{tag}"})
    await ami.call({"Action": "DBGet", "Family": "hotline", "Key": "heartbeat",
                    "ActionID": f"{SNAPSHOT_IDS['DBGet']}-{tag}"})
    await ami.call({"Action": "BridgeList", "ActionID": f"{SNAPSHOT_IDS['BridgeList']}-{tag}"})


def user_event(name: str, num: str) -> Callable[[Message], bool]:
    return lambda m: (m.get("Event") == "UserEvent" and m.get("UserEvent") == name
                      and m.get("CallerIDNum") == num)


def caller_hangup(num: str) -> Callable[[Message], bool]:
    return lambda m: (m.get("Event") == "Hangup" and m.get("CallerIDNum") == num
                      and m.get("Uniqueid") == m.get("Linkedid"))


async def finish(ami: RawAmi, num: str, call: asyncio.Task[int]) -> None:
    await ami.wait_for(caller_hangup(num), 60, f"hangup of {num}")
    await asyncio.wait_for(call, 60)
    # a Ping answered means every event Asterisk queued before it is in the trace
    await ami.call({"Action": "Ping", "ActionID": "rec-final-ping"})


async def trace_ivr_hangup(lab: Lab, ami: RawAmi) -> None:
    """The caller hangs up during the IVR's welcome prompt."""
    num = "13900000001"
    call = asyncio.create_task(place_call(Caller(num, [Pause(2500)], hangup_after_ms=1),
                                          lab.settings, lab.workdir))
    await finish(ami, num, call)


async def trace_transfer_wait_hangup(lab: Lab, ami: RawAmi) -> None:
    """Option 0 (Mandarin, then agent) from 张三; waits on hold; the snapshot is taken; hung up."""
    num = "13900000002"
    lab.heartbeat_on()
    call = asyncio.create_task(place_call(
        Caller(num, [Pause(1500), Keys("1"), Pause(1500), Keys("0")]), lab.settings,
        lab.workdir, display_name="张三".encode()))
    queued = await ami.wait_for(user_event("HotlineQueued", num), 60, "HotlineQueued")
    await snapshot(ami, "waiting")
    await ami.call({"Action": "Hangup", "Channel": queued["Channel"], "ActionID": "rec-hangup"})
    await finish(ami, num, call)


async def trace_offer_rona_answer(lab: Lab, ami: RawAmi) -> None:
    """Seats register; the CTI's Redirects: seat09 (not registered), seat08 (rings out),
    seat07 (answers); the snapshot is taken while talking; the caller is hung up."""
    num = "13900000003"
    lab.heartbeat_on()
    await seat_phones(lab)
    await asyncio.to_thread(register, "seat07", lab.seat_secrets["seat07"], UAS_ANSWER_PORT,
                            lab.settings, lab.workdir)
    await asyncio.to_thread(register, "seat08", lab.seat_secrets["seat08"], UAS_SILENT_PORT,
                            lab.settings, lab.workdir)
    call = asyncio.create_task(place_call(
        Caller(num, [Pause(1500), Keys("1"), Pause(1500), Keys("0")]), lab.settings,
        lab.workdir, display_name="李四".encode()))
    queued = await ami.wait_for(user_event("HotlineQueued", num), 60, "HotlineQueued")
    chan = queued["Channel"]
    for i, seat in enumerate(("seat09", "seat08")):
        mark = ami.mark()
        await ami.call({"Action": "Redirect", "Channel": chan, "Context": "hotline-connect",
                        "Exten": seat, "Priority": "1", "ActionID": f"rec-redirect-{seat}"})
        await ami.wait_for(user_event("HotlineRona", num), 60, f"RONA {seat}", mark)
        await ami.wait_for(user_event("HotlineQueued", num), 60, "queued again", mark)
        if i == 0:
            await snapshot(ami, "after-rona")
    mark = ami.mark()
    await ami.call({"Action": "Redirect", "Channel": chan, "Context": "hotline-connect",
                    "Exten": "seat07", "Priority": "1", "ActionID": "rec-redirect-seat07"})
    await ami.wait_for(lambda m: m.get("Event") == "BridgeEnter"
                       and m.get("Channel", "").startswith("PJSIP/seat07"), 60, "seat07 bridged",
                       mark)
    await ami.wait_for(lambda m: m.get("Event") == "BridgeEnter" and m.get("Channel") == chan,
                       60, "caller bridged", mark)
    await snapshot(ami, "talking")
    await ami.call({"Action": "Hangup", "Channel": chan, "ActionID": "rec-hangup"})
    await finish(ami, num, call)


async def trace_failover_native_queue(lab: Lab, ami: RawAmi) -> None:
    """No heartbeat: the caller (a truncated UTF-8 name, as carriers send) fails over to
    app_queue, which rings seat07; the snapshot is taken while talking; the caller hangs up."""
    num = "13900000004"
    await lab.heartbeat_off()
    # seat08 leaves (REGISTER expires 0) so that app_queue rings seat07 only
    await asyncio.to_thread(register, "seat08", lab.seat_secrets["seat08"], UAS_SILENT_PORT,
                            lab.settings, lab.workdir, 0)
    name = "王小明".encode()[:-1]  # 王小 + the first two bytes of 明
    call = asyncio.create_task(place_call(
        Caller(num, [Pause(1500), Keys("1"), Pause(1500), Keys("0")], hangup_after_ms=25000),
        lab.settings, lab.workdir, display_name=name))
    await ami.wait_for(user_event("HotlineFailover", num), 60, "HotlineFailover")
    await ami.wait_for(lambda m: m.get("Event") == "AgentConnect"
                       and m.get("CallerIDNum") == num, 60, "AgentConnect")
    await snapshot(ami, "failover-talking")
    await finish(ami, num, call)


async def trace_callback(lab: Lab, ami: RawAmi) -> None:
    """Option 0, then the callback key while waiting: the dialplan says goodbye and hangs up."""
    num = "13900000005"
    lab.heartbeat_on()
    call = asyncio.create_task(place_call(
        Caller(num, [Pause(1500), Keys("1"), Pause(1500), Keys("0"), Pause(9000), Keys("1")]),
        lab.settings, lab.workdir))
    await ami.wait_for(user_event("HotlineCallback", num), 60, "HotlineCallback")
    await finish(ami, num, call)


async def seat_phones(lab: Lab) -> None:
    if not lab_sipp.procs:
        start_uas(UAS_ANSWER_PORT, lab.workdir, True, lab_sipp)
        start_uas(UAS_SILENT_PORT, lab.workdir, False, lab_sipp)


async def trace_local_and_actions(lab: Lab, ami: RawAmi) -> None:
    """Local-channel legs: Originate Local/seat07@hotline-connect (the Local;2 leg runs the
    HotlineOffer/Dial of the dialplan, seat07 answers); plus the responses of the actions the
    client special-cases: Originate (async), QueueAdd/QueueRemove, DBGet of a missing key."""
    await seat_phones(lab)
    await asyncio.to_thread(register, "seat07", lab.seat_secrets["seat07"], UAS_ANSWER_PORT,
                            lab.settings, lab.workdir)
    await ami.call({"Action": "DBGet", "Family": "hotline", "Key": "no-such-key",
                    "ActionID": "rec-dbget-missing"})
    await ami.call({"Action": "QueueAdd", "Queue": "hotline-agents", "Interface": "PJSIP/sup01",
                    "MemberName": "sup01", "ActionID": "rec-queueadd"})
    await ami.call({"Action": "QueueAdd", "Queue": "no-such-queue", "Interface": "PJSIP/sup01",
                    "ActionID": "rec-queueadd-error"})
    await ami.call({"Action": "QueueRemove", "Queue": "hotline-agents",
                    "Interface": "PJSIP/sup01", "ActionID": "rec-queueremove"})
    mark = ami.mark()
    await ami.call({"Action": "Originate", "Channel": "Local/seat07@hotline-connect/n",
                    "Application": "Wait", "Data": "2", "Async": "true",
                    "CallerID": "Local test <13900000006>", "ActionID": "rec-originate"})
    await ami.wait_for(lambda m: m.get("Event") == "OriginateResponse", 30, "originated", mark)
    await ami.wait_for(lambda m: m.get("Event") == "Hangup"
                       and m.get("Channel", "").startswith("PJSIP/seat07"), 30, "seat hangup",
                       mark)
    await ami.call({"Action": "Ping", "ActionID": "rec-final-ping"})


def peer_status(seat: str, status: str) -> Callable[[Message], bool]:
    return lambda m: (m.get("Event") == "PeerStatus" and m.get("Peer") == f"PJSIP/{seat}"
                      and m.get("PeerStatus") == status)


async def trace_phones_unregister(lab: Lab, ami: RawAmi) -> None:
    """What Asterisk says of a seat's reachability: seat07 and seat08 register (snapshot
    `-registered`), both send REGISTER with Expires: 0 (snapshot `-unregistered`), then seat07
    registers for 60 s (the least Asterisk takes) and lets it expire (snapshot `-expired`)."""
    await seat_phones(lab)
    for seat, port in (("seat07", UAS_ANSWER_PORT), ("seat08", UAS_SILENT_PORT)):
        mark = ami.mark()
        await asyncio.to_thread(register, seat, lab.seat_secrets[seat], port, lab.settings,
                                lab.workdir)
        await ami.wait_for(peer_status(seat, "Reachable"), 30, f"{seat} reachable", mark)
    await snapshot(ami, "registered")
    for seat, port in (("seat07", UAS_ANSWER_PORT), ("seat08", UAS_SILENT_PORT)):
        mark = ami.mark()
        await asyncio.to_thread(register, seat, lab.seat_secrets[seat], port, lab.settings,
                                lab.workdir, 0)
        await ami.wait_for(peer_status(seat, "Unreachable"), 30, f"{seat} unregistered", mark)
    await snapshot(ami, "unregistered")
    mark = ami.mark()
    await asyncio.to_thread(register, "seat07", lab.seat_secrets["seat07"], UAS_ANSWER_PORT,
                            lab.settings, lab.workdir, 60)
    await ami.wait_for(peer_status("seat07", "Reachable"), 30, "seat07 reachable again", mark)
    # the contact expires 60 s on; Asterisk prunes expired contacts every 30 s
    await ami.wait_for(peer_status("seat07", "Unreachable"), 150, "seat07 expired", mark)
    await snapshot(ami, "expired")
    await ami.call({"Action": "Ping", "ActionID": "rec-final-ping"})


lab_sipp = Sipp()
SCENARIOS: dict[str, Callable[[Lab, RawAmi], Awaitable[None]]] = {
    "ivr_hangup": trace_ivr_hangup,
    "transfer_wait_hangup": trace_transfer_wait_hangup,
    "offer_rona_answer": trace_offer_rona_answer,
    "failover_native_queue": trace_failover_native_queue,
    "callback": trace_callback,
    "local_and_actions": trace_local_and_actions,
    "phones_unregister": trace_phones_unregister,
}


def patch_modules(settings: Settings) -> None:
    """The dialplan reads the CTI heartbeat with DB(), which needs func_db; when the rendered
    modules.conf does not load it, every waiting caller fails over at once. Load it in this
    private instance only (the project's template is not ours to change) and say so."""
    conf = settings.asterisk_etc / "modules.conf"
    text = conf.read_text(encoding="utf-8")
    if "func_db.so" not in text:
        print("NOTE: modules.conf does not load func_db.so; loaded here for the recording",
              file=sys.stderr)
        conf.write_text(text.rstrip("\n") + "\nload => func_db.so\n", encoding="utf-8")


def make_lab(state: Path) -> Lab:
    os.chmod(state, 0o755)
    path = write_test_settings(state / "hotline.toml", {
        "paths": {"state_dir": str(state)},
        "pbx": {"sip_port": PORTS["sip"], "rtp_start": RTP[0], "rtp_end": RTP[1]},
        "ami": {"port": PORTS["ami"]},
        "fastagi": {"port": PORTS["fastagi"]},
        "acd": {"cti_stale_s": 3, "ring_timeout_s": 4},
        "ivr": {"flows_dir": str(REPO / "ivr" / "flows")},
        "prompts": {"catalog_dir": str(REPO / "prompts" / "catalog"),
                    "cache_dir": str(REPO / "prompts" / "cache")},
    })
    env = {**os.environ, "HOTLINE_SETTINGS": str(path),
           "HOTLINE_AMI_SECRET": secrets.token_urlsafe(16), "HOTLINE_LOG_LEVEL": "INFO",
           "HOTLINE_DB_URL": f"sqlite:///{state / 'rec.db'}"}
    env.pop("HOTLINE_STATE_DIR", None)
    settings = load_settings(path, env)
    workdir = state / "sipp"
    workdir.mkdir()
    return Lab(settings, env, workdir, {})


async def record(lab: Lab, names: list[str]) -> None:
    for name in names:
        ami = await RawAmi(lab.settings).start()
        try:
            await SCENARIOS[name](lab, ami)
        finally:
            await ami.close()
        (TRACES / f"{name}.ami").write_bytes(bytes(ami.raw))
        print(f"{name}: {len(ami.messages)} messages, {len(ami.raw)} bytes")
    await lab.heartbeat_off()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("names", nargs="*", default=list(SCENARIOS))
    ap.add_argument("--keep", action="store_true", help="keep the temp state dir")
    args = ap.parse_args()
    state = Path(tempfile.mkdtemp(prefix="ami-traces-"))
    lab = make_lab(state)
    TRACES.mkdir(exist_ok=True)
    build_prompts(lab.settings)
    render_config(lab.settings)
    add_test_users(lab.settings)
    patch_modules(lab.settings)
    lab.seat_secrets.update(json.loads((state / "secrets.json").read_text()))
    stack.start_asterisk(lab.settings)
    try:
        stack.start_cti(lab.settings, env=lab.env)
        try:
            asyncio.run(record(lab, args.names))
        finally:
            stack.stop_cti(lab.settings)
    finally:
        lab_sipp.stop()
        stack.stop_asterisk(lab.settings)
        if args.keep:
            print(f"state kept in {state}", file=sys.stderr)
        else:
            shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
