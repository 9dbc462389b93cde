"""The fault harness's stack under a steady load: a private Asterisk, broker and CTI (SQLite),
ten agents on SIPp phones that answer and talk, and one SIPp process that keeps 24 callers on
the line (IVR, waiting, talking and recorded), started once per module.

Its ports come from tests.support.ports.port() in blocks of their own (SIP, AMI and SIPp
21000-21599, SIPp media 22300-22899, RTP 23000-24499, FastAGI 24673-24723, web 20098-20148,
MQTT 21883-21933), away from the integration suite's and the AMI trace recorder's (24573), so
`make test` may hold the integration stack (session-scoped) and this one in one run, and slots
never collide.
The whole harness takes about 3 minutes on 2 cores; RELIABILITY.md has what each fault shows.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from asterisk_conf.mosquitto import broker_folder, credential
from bench.sipp import scenario
from bench.sipp_load import start_phones, stop, write_silence_pcap, write_talk_times
from config.settings import Settings, load_settings
from cti.db.migrate import upgrade
from cti.db.models import Agent
from cti.db.session import make_engine, make_session_factory
from hotline import stack
from hotline.cli import build_prompts, render_config
from hotline.demo_seed import seed_demo
from tests.faults.calls import CallBook, Event
from tests.integration.conftest import CtiProcess
from tests.support.agent_phones import register_seats
from tests.support.ami import AmiRecorder, send_action
from tests.support.ami_users import add_test_users, harness
from tests.support.mqtt import HARNESS_ACL, HARNESS_USER, MqttWatcher, Msg, demo_staff
from tests.support.ports import SLOT, port
from tests.support.settings import REPO, write_test_settings

PORTS = {"sip": port(21060), "ami": port(21038), "fastagi": port(24673, 10),
         "mqtt": port(21883, 10), "web": port(20098, 10)}
RTP_START = port(23000, 250)
CALLERS_SIP, PHONES_SIP, REGISTER_SIP = port(21070), port(21080), port(21090)
CALLERS_MEDIA, PHONES_MEDIA = port(22300), port(22350)
PREFIX = "1398"  # every harness caller's number starts with it
AGENTS = 10
CALLERS = 24  # SIPp keeps this many callers on the line
TALK_MS = 12_000  # every answered call talks this long, then the agent's phone hangs up
RING_MS = 500


class ReconnectingWatcher(MqttWatcher):
    """MqttWatcher that survives a broker outage: it reconnects (0.2 s apart) and resubscribes,
    as a desktop does; `connects` counts its sessions."""

    connects = 0

    async def _main(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(self.host, self.port, username=self.username,
                                          password=self.password,
                                          identifier=f"faults-{os.getpid()}-{self.connects}"
                                          ) as client:
                    self._client = client
                    await client.subscribe(self.filter, qos=1)
                    self.connects += 1
                    self._ready.set()
                    async for m in client.messages:
                        raw = (bytes(m.payload) if isinstance(m.payload, bytes | bytearray)
                               else m.payload)
                        try:
                            payload = json.loads(raw) if isinstance(raw, bytes) else raw
                        except ValueError:
                            payload = raw
                        self._msgs.add(Msg(str(m.topic), payload, time.time()))
            except aiomqtt.MqttError:
                self._client = None
                await asyncio.sleep(0.2)  # a reconnect backoff, not a test's wait


@dataclass
class Hotline:
    """The stack under load, and what the fault tests read and drive."""

    settings: Settings
    env: dict[str, str]
    workdir: Path
    db_url: str
    cti: CtiProcess
    ami: AmiRecorder
    mqtt: ReconnectingWatcher
    agents: dict[str, str]  # agent -> seat
    secrets: dict[str, str]
    callers: subprocess.Popen[bytes] | None = None
    extra_sipp: list[subprocess.Popen[bytes]] = field(default_factory=list)
    phones: subprocess.Popen[bytes] | None = None
    book: CallBook = field(default_factory=lambda: CallBook("95598", PREFIX))
    fed: int = 0  # AMI events folded into the book so far
    broker_extra: dict[str, list[str]] = field(default_factory=dict)
    _sessions: sessionmaker[Session] | None = None

    @property
    def sip_target(self) -> str:
        return f"127.0.0.1:{PORTS['sip']}"

    def sessions(self) -> Session:
        if self._sessions is None:
            self._sessions = make_session_factory(make_engine(self.db_url))
        return self._sessions()

    def catch_up(self) -> CallBook:
        """Fold the AMI events received so far into the book."""
        events = self.ami.events()
        self.book.feed_all(events[self.fed:])
        self.fed = len(events)
        return self.book

    def until(self, cond: Callable[[CallBook], bool], timeout: float, what: str) -> CallBook:
        """Wait, event by event, until cond(book) holds: the book is fed every AMI event."""
        self.catch_up()
        if cond(self.book):
            return self.book

        def pred(e: Event) -> bool:
            self.book.feed(e)
            self.fed += 1
            return cond(self.book)

        self.ami.wait_for(pred, timeout, what, since=self.fed)
        self.catch_up()
        return self.book

    def through(self, deadline: float, what: str) -> CallBook:
        """The fault's own duration: follow the calls until the wall clock reaches deadline
        (a deadline on a clock, not a sleep standing in for a condition)."""
        return self.until(lambda _b: time.time() >= deadline, deadline - time.time() + 10,
                          what)

    def steady(self, timeout: float = 120) -> CallBook:
        """At least 20 callers on the line, agents talking and callers waiting."""
        def ok(b: CallBook) -> bool:
            live = [c for c in b.calls.values() if c.ended is None]
            talking = sum(1 for c in live if c.answered)
            waiting = sum(1 for c in live if c.queued and not c.answered)
            return len(live) >= 20 and talking >= AGENTS // 2 and waiting >= 3
        return self.until(ok, timeout, "a steady load (20 callers, talking and waiting)")

    def ended(self, uids: set[str], timeout: float, what: str) -> CallBook:
        return self.until(lambda b: all(b.calls[u].ended is not None for u in uids), timeout,
                          what)

    def channels(self) -> list[Event]:
        return [e for e in send_action(self.ami, {"Action": "CoreShowChannels"}, as_list=True)
                if e.get("Event") == "CoreShowChannel"]

    def start_broker(self) -> None:
        stack.start_mosquitto(self.settings, staff=demo_staff(), extra=self.broker_extra)

    def register(self, expires: int) -> None:
        register_seats({s: self.secrets[s] for s in self.agents.values()}, self.sip_target,
                       PHONES_SIP, self.workdir / f"register-{expires}", REGISTER_SIP,
                       expires=expires)

    def login_ready(self, agent: str, seat: str | None = None) -> None:
        if seat is not None:
            r = self.mqtt.command("agents", agent, {"action": "login", "seat": seat})
            assert r["ok"], r
        r = self.mqtt.command("agents", agent, {"action": "ready"})
        assert r["ok"], r


def _callers_xml(pcap: Path) -> str:
    """Mandarin (1), then 0 for an agent, 1.5 s apart; then talk until the agent hangs up."""
    num = "[field0]"
    steps = "".join([
        f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n',
        '  <pause milliseconds="1500"/>\n',
        scenario("caller_info", number=num, cseq=2, digit="1"),
        '  <pause milliseconds="1500"/>\n',
        scenario("caller_info", number=num, cseq=3, digit="0"),
        scenario("caller_awaits_bye")])
    return scenario("caller", title="fault harness caller",
                    invite=scenario("caller_invite", number=num), steps=steps)


def start_callers(h: Hotline) -> subprocess.Popen[bytes]:
    wd = h.workdir / "callers"
    wd.mkdir(exist_ok=True)
    pcap = wd / "silence.pcap"
    write_silence_pcap(pcap, 300)  # longer than any call: rtp_timeout never cuts a caller
    (wd / "callers.xml").write_text(_callers_xml(pcap), encoding="iso-8859-1")
    (wd / "numbers.csv").write_text(
        "SEQUENTIAL\n" + "".join(f"{PREFIX}{SLOT}{i:06d};\n" for i in range(5000)),
        encoding="ascii")
    return subprocess.Popen(
        ["sipp", h.sip_target, "-sf", str(wd / "callers.xml"), "-inf", str(wd / "numbers.csv"),
         "-s", "95598", "-m", "5000", "-l", str(CALLERS), "-r", "2", "-rp", "1000",
         "-i", "127.0.0.1", "-p", str(CALLERS_SIP), "-mp", str(CALLERS_MEDIA),
         "-cp", str(CALLERS_SIP + 1), "-recv_timeout", "300000", "-nostdin",
         "-trace_err", "-error_file", str(wd / "callers.err")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, cwd=wd)


def quit_callers(proc: subprocess.Popen[bytes]) -> None:
    """SIPp's remote control: `q` stops new calls; SIPp exits when the last call ends."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"q", ("127.0.0.1", CALLERS_SIP + 1))


def _general_agents(db_url: str) -> list[str]:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as s:
            rows = s.execute(select(Agent.agent_id, Agent.skills).where(Agent.role == "agent")
                             .order_by(Agent.agent_id)).all()
    finally:
        engine.dispose()
    return [a for a, skills in rows if "general" in skills][:AGENTS]


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@contextmanager
def running_hotline(*, db_url: str | None = None, settings: dict[str, Any] | None = None,
                    env_extra: dict[str, str] | None = None) -> Iterator[Hotline]:
    """The harness's stack under load, torn down on exit. A fault module that needs its own
    stack (another database, a small recordings disk, ...) builds one with this in a fixture of
    its own: db_url replaces the default SQLite file, `settings` is merged into the harness's
    hotline.toml (per section), env_extra reaches the CTI's environment."""
    for tool in ("sipp", "/usr/sbin/mosquitto"):
        assert shutil.which(tool), f"{tool} is not installed: run `make test` (it installs it)"
    state = Path(tempfile.mkdtemp(prefix=f"hotline-faults-slot{SLOT}-", dir="/tmp"))
    shutil.copytree(REPO / "ivr" / "flows", state / "flows")
    path = write_test_settings(state / "hotline.toml", _merge({
        "paths": {"state_dir": str(state)},
        "pbx": {"sip_port": PORTS["sip"], "rtp_start": RTP_START, "rtp_end": RTP_START + 249},
        "ami": {"port": PORTS["ami"]},
        "fastagi": {"port": PORTS["fastagi"]},
        "ivr": {"flows_dir": str(state / "flows")},
        "mqtt": {"port": PORTS["mqtt"]},
        "web": {"port": PORTS["web"]},
        # the integration suite's short timers: failover 3 s after the CTI's last heartbeat
        "acd": {"cti_stale_s": 3, "ring_timeout_s": 5, "wrap_up_s": 2},
        "prompts": {"catalog_dir": str(REPO / "prompts" / "catalog"),
                    "cache_dir": str(REPO / "prompts" / "cache")},
    }, settings or {}))
    db_url = db_url or f"sqlite:///{state / 'faults.db'}"
    env = {**os.environ, "HOTLINE_SETTINGS": str(path), "HOTLINE_DB_URL": db_url,
           "HOTLINE_AMI_SECRET": secrets.token_urlsafe(16), "HOTLINE_LOG_LEVEL": "INFO",
           **(env_extra or {})}
    env.pop("HOTLINE_STATE_DIR", None)
    settings_ = load_settings(path, env)
    started: list[Callable[[], object]] = []
    h: Hotline | None = None
    failed = False
    try:
        build_prompts(settings_)
        render_config(settings_)
        add_test_users(settings_)
        upgrade(db_url)
        engine = make_engine(db_url)
        with make_session_factory(engine).begin() as s:
            seed_demo(s, now=datetime.now(UTC))
        engine.dispose()
        extra = {HARNESS_USER: list(HARNESS_ACL)}
        stack.start_mosquitto(settings_, staff=demo_staff(), extra=extra)
        started.append(lambda: stack.stop_mosquitto(settings_))
        stack.start_asterisk(settings_)
        started.append(lambda: stack.stop_asterisk(settings_))
        login = harness(settings_)
        ami = AmiRecorder(settings_.ami.host, settings_.ami.port, login.username,
                          login.secret).start()
        started.append(ami.stop)
        mqtt = ReconnectingWatcher("127.0.0.1", PORTS["mqtt"], username=HARNESS_USER,
                                   password=credential(state, HARNESS_USER))
        mqtt.start()
        started.append(mqtt.stop)
        cti = CtiProcess(settings_, env)
        cti.start()
        # a standby CTI a fault test started is stopped too, and first: one still waiting
        # would take over a stack going down (after a takeover it is the active one)
        started.append(lambda: (stack.stop_cti_standby(settings_), stack.stop_cti(settings_)))
        mqtt.cti_online()
        agents = dict(zip(_general_agents(db_url), [f"seat{i:02d}" for i in
                                                     range(1, AGENTS + 1)], strict=True))
        doc = json.loads((state / "secrets.json").read_text(encoding="utf-8"))
        h = Hotline(settings_, env, state, db_url, cti, ami, mqtt, agents,
                    {s: doc[s] for s in agents.values()}, broker_extra=extra)
        talk = state / "talk.csv"
        write_talk_times(talk, [TALK_MS] * 5000)
        h.phones = phones = start_phones(state, PHONES_SIP, PHONES_MEDIA, talk, RING_MS)
        started.append(lambda: stop(phones))
        stack.wait_until(lambda: stack.port_open("127.0.0.1", PHONES_SIP, udp=True), 10,
                         "the agent phones (SIPp UAS)")
        h.register(3600)
        for agent, seat in agents.items():
            h.login_ready(agent, seat)
        h.callers = callers = start_callers(h)
        started.append(lambda: stop(callers))
        # a fault test may replace the load (h.callers) or add SIPp processes of its own
        # (h.extra_sipp): stopped here too, pass or fail, or the next module's SIPp finds its
        # ports taken and its load never starts
        def stop_sipp() -> None:
            for proc in (h.callers, *h.extra_sipp):
                if proc is not None:
                    stop(proc)
        started.append(stop_sipp)
        try:
            yield h
        except BaseException:
            failed = True
            raise
        # drain: no new callers; every call on the line ends by the agent's BYE
        quit_callers(callers)
        stack.wait_until(lambda: callers.poll() is not None, 90, "the load to drain")
    except BaseException:
        failed = True
        raise
    finally:
        for undo in reversed(started):
            try:
                undo()
            except Exception as exc:  # noqa: BLE001 - tear everything down, report the first
                print(f"fault harness teardown: {exc!r}")
        shutil.rmtree(broker_folder(state), ignore_errors=True)
        if h is not None:  # for a post-mortem: the AMI events too
            (state / "ami-events.jsonl").write_text("".join(
                json.dumps(e, ensure_ascii=False, default=str) + "\n"
                for e in h.ami.events()), encoding="utf-8")
        if os.environ.get("HOTLINE_FAULTS_KEEP") or failed or _tests_failed():
            print(f"fault harness files kept in {state} (CTI log: {state / 'log' / 'cti.log'})")
        else:
            shutil.rmtree(state, ignore_errors=True)


_FAILURES: list[str] = []


def _tests_failed() -> bool:
    return bool(_FAILURES)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Note a failed fault test, so the stack's files (CTI log, AMI events) are kept."""
    rep = yield
    if rep.failed:
        _FAILURES.append(item.nodeid)
    return rep


@pytest.fixture(scope="module")
def hotline() -> Iterator[Hotline]:
    with running_hotline() as h:
        yield h
