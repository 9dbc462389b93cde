"""`hotline bench acd`: our ACD and Asterisk's app_queue, one after the other, on the same load.

Three sides: `ours`; `app_queue`, the failover queue exactly as the project ships it
(queues.conf.j2: announce-frequency 30, retry 2); and `app_queue_best`, app_queue at its best
(no position or periodic announcements, retry 1, leastrecent, the same wrap-up), a queue the
bench adds to its private instance's rendered config only.

A private instance of its own (temp state dir and SQLite DB, SIP 35060, AMI 35038, FastAGI
34573, the hotline's own broker on 31883, web 38098, RTP 36000-36999: all outside the test
slots' ports in tests/support/ports.py), so it runs beside `make up` and the integration tests.
Every process it starts is stopped on the way out, failure and Ctrl-C included. See
bench/BENCHMARKS.md for the method and the figures.

The broker is the one `hotline up` starts (stack.start_mosquitto: no anonymous access, a user
per staff member and the ACL), plus the bench's own user (BENCH_USER), which sends the agents'
commands and reads their states and replies, as the tests' harness user does. No password or
token crosses the bus: an agent's login is the command on its own topic (docs/mqtt.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w

from asterisk_conf.mosquitto import broker_folder, credential
from bench import metrics
from bench.ami_tap import AmiError, AmiTap, Event, tap_login, ts
from bench.load import LoadSpec, erlang_c, erlang_c_service_level, make_schedule
from bench.sipp_load import (
    SippError,
    register_seats,
    start_callers,
    start_phones,
    stop,
    write_callers,
    write_silence_pcap,
    write_talk_times,
)
from config.settings import REPO_ROOT, PbxSettings, Settings, load_settings
from cti.mqtt import topics
from hotline import stack

log = logging.getLogger(__name__)

PORTS = {"sip": 35060, "ami": 35038, "fastagi": 34573, "mqtt": 31883, "web": 38098}
RTP_RANGE = (36000, 36999)
CALLER_SIP, CALLER_MEDIA = 35070, 35400
PHONES_SIP, PHONES_MEDIA = 35080, 35500
REGISTER_SIP = 35090
# the bench's broker user: the desktops of all bench agents at once (asterisk_conf/mosquitto.py
# renders it beside the deployment's users; never a user of a deployment)
BENCH_USER = "hotline-bench"
BENCH_ACL = (f"topic write {topics.ALL_AGENT_COMMANDS}", f"topic read {topics.ALL_AGENT_STATES}",
             f"topic read {topics.ALL_AGENT_REPLIES}",
             f"topic read {topics.ALL_SCREEN_POPS}")  # bench/events.py: pops over MQTT
PASSWORD = "95598"  # the demo agents' password, for web logins only (bench/events.py)
LEAD_S = 2.0  # SIPp launches every call within this, before the first arrival
SL_S = 20.0


@dataclass(frozen=True)
class Side:
    name: str
    service: str  # the bench extension in from-carrier
    join_event: str  # when a caller starts waiting
    number_prefix: str  # caller numbers, so a leaked call is recognisable


SIDES = {
    "ours": Side("ours", "95590", "HotlineQueued", "1390"),
    "app_queue": Side("app_queue", "95591", "QueueCallerJoin", "1391"),
    "app_queue_best": Side("app_queue_best", "95592", "QueueCallerJoin", "1392"),
}
SHIPPED_QUEUE = "hotline-agents"  # asterisk_conf/render.py QUEUE_NAME, as queues.conf.j2 ships it
BEST_QUEUE = "hotline-bench-best"
QUEUE_OF = {"app_queue": SHIPPED_QUEUE, "app_queue_best": BEST_QUEUE}


class BenchError(Exception):
    """The bench could not run."""


@dataclass(frozen=True)
class BenchPbx(PbxSettings):
    """PBX settings with the bench extensions on: only the bench ever builds one."""

    bench: bool = True


@dataclass(frozen=True)
class Options:
    minutes: float = 3.0
    occupancy: float = 0.9
    seed: int = 95598
    agents: int = 50
    talk_mean_s: float = 20.0
    talk_cap_s: float = 100.0
    wrap_up_s: int = 10  # app_queue's wrapuptime in queues.conf; ours is set to the same
    ring_ms: int = 500
    patience_s: float = 60.0
    sides: tuple[str, ...] = ("ours", "app_queue", "app_queue_best")
    keep_workdir: bool = False

    def spec(self) -> LoadSpec:
        return LoadSpec(agents=self.agents, minutes=self.minutes, occupancy=self.occupancy,
                        seed=self.seed, talk_mean_s=self.talk_mean_s,
                        talk_cap_s=self.talk_cap_s, wrap_up_s=self.wrap_up_s,
                        ring_ms=self.ring_ms, patience_s=self.patience_s)


# ----------------------------------------------------------------------------- the instance


def write_settings(path: Path, state: Path, wrap_up_s: int) -> Path:
    """hotline.toml with the bench's ports and paths (the tests' approach, other ports)."""
    raw = tomllib.loads((REPO_ROOT / "hotline.toml").read_text(encoding="utf-8"))
    overrides: dict[str, dict[str, Any]] = {
        "paths": {"state_dir": str(state)},
        "pbx": {"sip_port": PORTS["sip"], "rtp_start": RTP_RANGE[0], "rtp_end": RTP_RANGE[1]},
        "ami": {"port": PORTS["ami"]},
        "fastagi": {"port": PORTS["fastagi"]},
        "mqtt": {"port": PORTS["mqtt"]},
        "web": {"port": PORTS["web"]},  # the CTI serves the desktop; not on make up's port
        # no post-call survey: the bench's phones hang up first, and its callers would stay
        # on to rate the call (the survey is not what the bench measures)
        "acd": {"wrap_up_s": wrap_up_s, "survey_skills": []},
        "ivr": {"flows_dir": str(REPO_ROOT / "ivr" / "flows")},
        "prompts": {"catalog_dir": str(REPO_ROOT / "prompts" / "catalog"),
                    "cache_dir": str(REPO_ROOT / "prompts" / "cache")},
    }
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    path.write_text(tomli_w.dumps(raw), encoding="utf-8")
    return path


def _seed_db(url: str, n_agents: int) -> list[str]:
    """A small demo database; every bench agent gets skill 'general' (the bench's calls)."""
    from sqlalchemy import select

    from cti.db.models import Agent
    from hotline.demo_seed import seed_demo
    from hotline.wiring import database_at

    with database_at(url) as sessions, sessions.begin() as s:
        seed_demo(s, now=datetime.now(UTC), n_accounts=200)
        rows = s.execute(select(Agent).where(Agent.role == "agent")
                         .order_by(Agent.agent_id)).scalars().all()
        if len(rows) < n_agents:
            raise BenchError(f"the demo seed has {len(rows)} agents, the bench needs "
                             f"{n_agents}")
        for a in rows[:n_agents]:
            # four demo agents are repair specialists without 'general'; app_queue has all
            # 50 seats as members, so ours must have 50 agents for the call's skill too
            a.skills = {**a.skills, "general": a.skills.get("general", 3)}
        return [a.agent_id for a in rows[:n_agents]]


def best_queue_conf(shipped_queues_conf: str, wrap_up_s: int) -> str:
    """app_queue at its best, over the same members as the shipped queue: no position or
    periodic announcements (so nothing holds a caller away from a free member), a 1 s recheck
    (`retry 1`, the smallest), leastrecent and the same wrap-up as ours."""
    members = [ln for ln in shipped_queues_conf.splitlines() if ln.startswith("member =>")]
    if not members:
        raise BenchError("the rendered queues.conf has no members")
    return "\n".join([
        "", "; ---- bench only: app_queue at its best (bench/acd.py)",
        f"[{BEST_QUEUE}]", "strategy = leastrecent", "timeout = 15", "retry = 1",
        f"wrapuptime = {wrap_up_s}", "joinempty = yes", "leavewhenempty = no",
        "ringinuse = no", "announce-frequency = 0", "min-announce-frequency = 0",
        "announce-position = no", "announce-holdtime = no", "periodic-announce-frequency = 0",
        "musicclass = default", *members, ""])


def add_best_queue(etc: Path, wrap_up_s: int) -> None:
    """Patch the private instance's rendered config (never the templates): the best queue in
    queues.conf and its bench extension in from-carrier, next to the other bench extensions."""
    queues = etc / "queues.conf"
    text = queues.read_text(encoding="utf-8")
    queues.write_text(text + best_queue_conf(text, wrap_up_s), encoding="utf-8")
    ext = etc / "extensions.conf"
    text = ext.read_text(encoding="utf-8")
    anchor = f"exten => {SIDES['app_queue'].service},1,"
    if text.count(anchor) != 1:
        raise BenchError("the rendered extensions.conf has no bench extensions (pbx.bench)")
    # the shipped side's own block (whatever the template puts before the Queue), to the best
    # queue: the two app_queue sides differ in nothing but the queue
    start = text.index(anchor)
    end = text.index("\n\n", start) + 2
    best = (text[start:end]
            .replace(anchor, f"exten => {SIDES['app_queue_best'].service},1,")
            .replace("Queue(${QUEUE},", f"Queue({BEST_QUEUE},"))
    if best.count(f"Queue({BEST_QUEUE},") != 1:
        raise BenchError("the rendered app_queue bench extension has no Queue(${QUEUE},...)")
    ext.write_text(text[:start] + best + text[start:], encoding="utf-8")


@dataclass
class Instance:
    workdir: Path
    settings: Settings
    env: dict[str, str]
    agents: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def seats(self) -> list[str]:
        return [f"seat{i:02d}" for i in range(1, len(self.agents) + 1)]


def _check_ports_free() -> None:
    for name, port in PORTS.items():
        busy = stack.port_open("127.0.0.1", port, udp=name == "sip")
        if busy:
            raise BenchError(f"port {port} ({name}) is taken: is another bench running?")


@contextmanager
def instance(opts: Options, *, wrap_up_s: int | None = None,
             patch_config: Callable[[Path], None] | None = None) -> Iterator[Instance]:
    """Asterisk, Mosquitto and the CTI of the bench's own; all stopped on the way out.
    `patch_config` may change the rendered config (its etc dir) before Asterisk starts."""
    from hotline.wiring import build_prompts, render_config

    for tool in ("sipp", "/usr/sbin/mosquitto"):
        if not shutil.which(tool):
            raise BenchError(f"{tool} is not installed: run `make up`")
    _check_ports_free()
    workdir = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    os.chmod(workdir, 0o755)  # Asterisk (uid 101 in the chroot) reads its config below
    env = {**os.environ, "HOTLINE_SETTINGS": str(workdir / "hotline.toml"),
           "HOTLINE_AMI_SECRET": secrets.token_urlsafe(16),
           "HOTLINE_DB_URL": f"sqlite:///{workdir / 'bench.db'}"}
    env.pop("HOTLINE_STATE_DIR", None)
    write_settings(workdir / "hotline.toml", workdir,
                   opts.wrap_up_s if wrap_up_s is None else wrap_up_s)
    settings = load_settings(workdir / "hotline.toml", env)
    inst = Instance(workdir, settings, env)
    ok = False
    try:
        build_prompts(settings)
        etc = render_config(replace(settings, pbx=BenchPbx(**asdict(settings.pbx))))
        if patch_config is not None:
            patch_config(Path(etc))
        inst.agents = _seed_db(env["HOTLINE_DB_URL"], opts.agents)
        # the hotline's broker: a user per seeded staff member, the CTI's, and the bench's
        stack.start_mosquitto(settings, extra={BENCH_USER: list(BENCH_ACL)})
        stack.start_asterisk(settings)
        stack.start_cti(settings, env=env)
        secrets_doc = json.loads((workdir / "secrets.json").read_text(encoding="utf-8"))
        register_seats({s: secrets_doc[s] for s in inst.seats},
                       f"127.0.0.1:{PORTS['sip']}", PHONES_SIP, workdir, REGISTER_SIP)
        yield inst
        ok = True
    finally:
        for p in inst.procs:
            stop(p)
        stack.stop_cti(settings)
        stack.stop_asterisk(settings)
        stack.stop_mosquitto(settings)
        shutil.rmtree(broker_folder(workdir), ignore_errors=True)  # /run/hotline-mqtt/... as root
        if ok and not opts.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log.warning("bench files kept in %s", workdir)


# --------------------------------------------------------------------------------- agents


class Desk:
    """The agents' desktops over MQTT: commands with replies, and every state they publish."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.states: list[dict[str, Any]] = []  # payloads of hotline/agents/+/state

    async def run(self) -> None:
        await self.client.subscribe(topics.ALL_AGENT_STATES, qos=1)
        await self.client.subscribe(topics.ALL_AGENT_REPLIES, qos=1)
        async for m in self.client.messages:
            try:
                doc = json.loads(bytes(m.payload).decode("utf-8", errors="replace"))
            except (ValueError, TypeError):
                continue
            topic = str(m.topic)
            if topic.endswith("/state") and isinstance(doc, dict):
                self.states.append({**doc, "_received": time.time()})
            elif topic.endswith("/reply") and isinstance(doc, dict):
                fut = self.replies.get(str(doc.get("request_id")))
                if fut is not None and not fut.done():
                    fut.set_result(doc)

    async def command(self, agent: str, payload: dict[str, Any],
                      timeout: float = 15) -> dict[str, Any]:
        rid = uuid.uuid4().hex
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.replies[rid] = fut
        try:
            await self.client.publish(topics.command_topic("agents", agent),
                                      json.dumps({**payload, "request_id": rid}), qos=1)
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            self.replies.pop(rid, None)

    async def login_ready(self, agent: str, seat: str) -> None:
        """No password: the topic's id is the agent (the broker let only this user write it)."""
        r = await self.command(agent, {"action": "login", "seat": seat})
        if not r.get("ok"):
            raise BenchError(f"{agent} could not log in at {seat}: {r}")
        r = await self.command(agent, {"action": "ready"})
        if not r.get("ok"):
            raise BenchError(f"{agent} could not go ready: {r}")

    async def logout(self, agent: str) -> None:
        for _ in range(20):  # bounded: a talking agent cannot log out until its call ends
            r = await self.command(agent, {"action": "logout"})
            if r.get("ok"):
                return
            await asyncio.sleep(0.5)
        raise BenchError(f"{agent} could not log out")


# ------------------------------------------------------------------------------ one side


class Callers:
    """The live view of one side's callers, fed by AMI events, for the patience timers."""

    def __init__(self, side: Side) -> None:
        self.side = side
        self.live: dict[str, dict[str, Any]] = {}  # uid -> channel, joined, answered, gone
        self.created = 0

    def feed(self, ev: Event) -> None:
        name, uid = ev.get("Event"), ev.get("Uniqueid", "")
        if name == "Newchannel":
            if ev.get("Context") == "from-carrier" and ev.get("Exten") == self.side.service:
                self.created += 1
                self.live[uid] = {"channel": ev.get("Channel"), "joined": None,
                                  "answered": False, "gone": False}
            return
        c = self.live.get(uid)
        if c is None:
            return
        if c["joined"] is None and (
                (name == "UserEvent" and ev.get("UserEvent") == self.side.join_event)
                or (name == self.side.join_event)):
            c["joined"] = ts(ev)
        elif name == "DialEnd" and ev.get("DialStatus") == "ANSWER":
            c["answered"] = True
        elif name == "Hangup":
            c["gone"] = True

    def unresolved(self) -> int:
        return sum(1 for c in self.live.values() if not c["answered"] and not c["gone"])


def _cpu_s(pid: int | None) -> float | None:
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


async def _wait_no_channels(tap: AmiTap, timeout: float) -> int:
    """Hang up whatever is left and wait until Asterisk has no channel; the count left over."""
    deadline = time.monotonic() + timeout
    left = await tap.channels()
    while left and time.monotonic() < deadline:
        try:
            await tap.action({"Action": "Hangup", "Channel": "/^PJSIP\\//"})
        except Exception as exc:  # noqa: BLE001 - "no such channel" when they just went away
            log.debug("hangup all: %s", exc)
        await asyncio.sleep(0.5)
        left = await tap.channels()
    return len(left)


async def run_side(side: Side, inst: Instance, opts: Options, tap: AmiTap, desk: Desk,
                   schedule: Any, pcap: Path, say: Any) -> dict[str, Any]:
    spec = opts.spec()
    leaked_before = await _wait_no_channels(tap, 30)
    if leaked_before:
        raise BenchError(f"{leaked_before} channels still up before the {side.name} run")
    logged_in: list[str] = []
    if side.name == "ours":
        gate = asyncio.Semaphore(10)

        async def login(agent: str, seat: str) -> None:
            async with gate:
                await desk.login_ready(agent, seat)
                logged_in.append(agent)
        async with asyncio.TaskGroup() as tg:
            for agent, seat in zip(inst.agents, inst.seats, strict=True):
                tg.create_task(login(agent, seat), name=f"login-{agent}")
    else:
        # app_queue: every seat a member. Our CTI pauses the failover queue's seats that have
        # no agent logged in (none are now), so unpause them for this side; the best queue is
        # unknown to the CTI, but unpausing it too costs nothing.
        for seat in inst.seats:
            await tap.action({"Action": "QueuePause", "Queue": QUEUE_OF[side.name],
                              "Interface": f"PJSIP/{seat}", "Paused": "false"}, timeout=3)
    sdir = inst.workdir / side.name
    sdir.mkdir(exist_ok=True)
    talk_file = sdir / "talk.csv"
    write_talk_times(talk_file, schedule.talk_ms)
    n = len(schedule.arrivals_s)
    numbers = [f"{side.number_prefix}{i:07d}" for i in range(n)]
    launch_rate = max(200, n)
    callers_file = sdir / "callers.csv"
    write_callers(callers_file, schedule.arrivals_s, numbers, launch_rate, LEAD_S)
    phones = start_phones(sdir, PHONES_SIP, PHONES_MEDIA, talk_file, opts.ring_ms)
    inst.procs.append(phones)
    stack.wait_until(lambda: stack.port_open("127.0.0.1", PHONES_SIP, udp=True), 10,
                     "the agent phones (SIPp UAS)")
    view = Callers(side)
    tap.on_event(view.feed)
    ast_pid = stack.pid_alive(stack.paths(inst.settings).asterisk_pid)
    cti_pid = stack.pid_alive(stack.paths(inst.settings).cti_pid)
    cpu0 = (_cpu_s(ast_pid), _cpu_s(cti_pid))
    mark, state_mark = len(tap.events), len(desk.states)
    ami0 = (tap.reconnects, tap.dropped)
    horizon = spec.minutes * 60
    max_s = int(LEAD_S + horizon + opts.patience_s + opts.talk_cap_s + 60)
    t0 = time.time()
    callers = start_callers(sdir, f"127.0.0.1:{PORTS['sip']}", side.service, callers_file, n,
                            launch_rate, CALLER_SIP, CALLER_MEDIA, pcap, max_s)
    inst.procs.append(callers)
    say(f"{side.name}: {n} calls over {spec.minutes:g} min to {side.service}")
    killed: set[str] = set()
    deadline = t0 + LEAD_S + horizon + opts.patience_s + 15
    last_note = 0.0
    while time.time() < deadline:  # bounded by the deadline
        now = time.time()
        for uid, c in list(view.live.items()):
            late = c["joined"] is not None and now - c["joined"] >= opts.patience_s
            if late and not c["answered"] and not c["gone"] and uid not in killed:
                killed.add(uid)  # the caller's patience ran out: they hang up
                try:
                    await tap.action({"Action": "Hangup", "Channel": c["channel"]}, timeout=3)
                except Exception as exc:  # noqa: BLE001 - it may have just been answered
                    log.debug("patience hangup of %s: %s", c["channel"], exc)
        all_arrived = now > t0 + LEAD_S + horizon + 1 and view.created >= n
        if all_arrived and view.unresolved() == 0:
            break
        if callers.poll() is not None and view.unresolved() == 0:
            break
        if now - last_note >= 30:
            last_note = now
            say(f"  {side.name}: t={now - t0:5.0f}s calls={view.created}/{n} "
                f"waiting={view.unresolved()}")
        await asyncio.sleep(0.1)
    t_end = time.time()
    cpu1 = (_cpu_s(ast_pid), _cpu_s(cti_pid))
    left = await _wait_no_channels(tap, 30)
    for p in (callers, phones):
        stop(p, 10)
    tap.off_event(view.feed)
    if logged_in:
        await asyncio.sleep(0.5)  # the CTI sees the hangups: agents go to wrap-up
        async with asyncio.TaskGroup() as tg:
            for agent in logged_in:
                tg.create_task(desk.logout(agent), name=f"logout-{agent}")
    events = tap.events[mark:]
    (sdir / "ami-events.jsonl").write_text(
        "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
    (sdir / "agent-states.jsonl").write_text(  # what ours_free_at reads, for a second look
        "".join(json.dumps(st, ensure_ascii=False) + "\n" for st in desk.states[state_mark:]),
        encoding="utf-8")
    side_events = metrics.collect(events, side.service, side.join_event)
    free_at = None
    ready_extra: dict[str, Any] = {}
    if side.name == "ours":
        agent_at = dict(zip(inst.seats, inst.agents, strict=True))
        logged = db_states(inst.env["HOTLINE_DB_URL"], t0 - LEAD_S)
        free_at = ours_free_at(side_events, logged, agent_at)
        seen = ours_free_at(side_events, desk.states[state_mark:], agent_at)
        ready_extra = {
            "free_moments_from": "agent_state_log (the ACD's since of each ready, as committed)",
            # the bus keeps only the newest retained state per topic in its outbox, so a
            # ready followed at once by reserved may never reach a desktop
            "ready_not_seen_on_mqtt": sum(1 for uid, t in free_at.items()
                                          if abs(seen.get(uid, -1.0) - t) > 0.001),
        }
    doc = metrics.summarize(side_events, seats=inst.seats, sl_s=SL_S,
                            wrap_up_s=opts.wrap_up_s, free_at=free_at,
                            patience_hangups=killed)
    doc.update({
        "run_s": round(t_end - t0, 1),
        "channels_left_at_end": left,
        "cpu_s_asterisk": _delta(cpu0[0], cpu1[0]),
        "cpu_s_cti": _delta(cpu0[1], cpu1[1]),
        "caller_numbers": f"{side.number_prefix}xxxxxxx",
        "ami_reconnects": tap.reconnects - ami0[0],
        "ami_events_dropped": tap.dropped - ami0[1],
    })
    leaked = [c for c in side_events.callers.values()
              if not c.number.startswith(side.number_prefix)]
    doc["foreign_calls_seen"] = len(leaked)
    doc.update(ready_extra)
    return doc


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(b - a, 2)


def db_states(db_url: str, since: float) -> list[dict[str, Any]]:
    """Every agent state the CTI committed since `since` (agent_state_log), as the state
    payloads ours_free_at reads: complete, unlike what reaches an MQTT subscriber."""
    from sqlalchemy import select

    from cti.db.models import AgentStateLog
    from hotline.wiring import database_at

    out: list[dict[str, Any]] = []
    with database_at(db_url, migrate=False) as sessions, sessions.begin() as s:
        for agent_id, state, at in s.execute(
                select(AgentStateLog.agent_id, AgentStateLog.state, AgentStateLog.at)
                .order_by(AgentStateLog.id)):
            t = (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()
            if t >= since:
                out.append({"agent_id": agent_id, "state": state, "since": t})
    return out


def ours_free_at(side: metrics.SideEvents, states: list[dict[str, Any]],
                 agent_at: dict[str, str]) -> dict[str, float]:
    """When our ACD made the seat's agent ready again after each answered call: the `since` of
    the first 'ready' the agent published after the seat leg hung up."""
    ready: dict[str, list[float]] = {}
    for st in states:
        if st.get("state") == "ready" and isinstance(st.get("since"), int | float):
            ready.setdefault(str(st.get("agent_id")), []).append(float(st["since"]))
    for v in ready.values():
        v.sort()
    out: dict[str, float] = {}
    for leg in side.legs:
        if not leg.answered or leg.hangup is None:
            continue
        agent = agent_at.get(leg.seat)
        after = [t for t in ready.get(agent or "", []) if t >= leg.hangup]
        if after:
            out[leg.uid] = after[0]
    return out


# ------------------------------------------------------------------------------------ main


async def _drive(inst: Instance, opts: Options, say: Any) -> dict[str, Any]:
    import aiomqtt

    spec = opts.spec()
    schedule = make_schedule(spec)
    pcap = inst.workdir / "caller-silence.pcap"
    write_silence_pcap(pcap, int(opts.patience_s + opts.talk_cap_s + 30))
    s = inst.settings
    tap = AmiTap(s.ami.host, s.ami.port, *tap_login(s.ami, Path(s.asterisk_etc)))
    results: dict[str, Any] = {}
    mqtt_log = logging.getLogger("bench.mqtt")
    mqtt_log.setLevel(logging.ERROR)  # paho counts the QoS 1 publishes of 50 logins aloud
    async with aiomqtt.Client("127.0.0.1", PORTS["mqtt"], logger=mqtt_log,
                              identifier=f"bench-{uuid.uuid4().hex[:8]}", username=BENCH_USER,
                              password=credential(inst.workdir, BENCH_USER)) as client:
        desk = Desk(client)
        async with asyncio.TaskGroup() as tg:
            ami_task = tg.create_task(tap.run(), name="bench-ami-tap")
            desk_task = tg.create_task(desk.run(), name="bench-desk")
            try:
                await tap.wait_ready(15)
                await asyncio.sleep(0.2)  # subscriptions in place before the first command
                for name in opts.sides:
                    results[name] = await run_side(SIDES[name], inst, opts, tap, desk,
                                                   schedule, pcap, say)
            finally:
                desk_task.cancel()
                ami_task.cancel()
    a = spec.rate_per_s * spec.handle_s
    results["load"] = {
        "agents": opts.agents,
        "minutes": opts.minutes,
        "occupancy_target": opts.occupancy,
        "seed": opts.seed,
        "arrivals": len(schedule.arrivals_s),
        "rate_per_s": round(spec.rate_per_s, 4),
        "talk_s": {"distribution": "exponential", "mean": opts.talk_mean_s,
                   "cap": opts.talk_cap_s,
                   "mean_after_cap": round(spec.talk_mean_truncated_s, 2),
                   "sample_mean": round(sum(schedule.talk_ms[:len(schedule.arrivals_s)])
                                        / max(1, len(schedule.arrivals_s)) / 1000, 2)},
        "ring_ms": opts.ring_ms,
        "wrap_up_s": opts.wrap_up_s,
        "patience_s": opts.patience_s,
        "handle_s": round(spec.handle_s, 2),
        "arrival_process": "Poisson conditioned on the count: round(rate x horizon) uniform "
                           "times, sorted",
        "offered_erlangs": round(a, 2),
        "erlang_c_p_wait": round(erlang_c(opts.agents, a), 4),
        "erlang_c_service_level_20s": round(
            erlang_c_service_level(opts.agents, spec.rate_per_s, spec.handle_s, SL_S), 4),
        "service_level_definition": "answered within 20 s / (answered + abandoned after 20 s)",
    }
    return results


def host_info() -> dict[str, Any]:
    """The machine, for the record: CPUs, CPU model, memory, load average now."""
    model = mem = None
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except (OSError, ValueError, IndexError):
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "mem_gib": mem,
            "loadavg": [round(x, 2) for x in os.getloadavg()]}


def raise_plainly(group: BaseExceptionGroup[Any]) -> None:
    """A bench failure inside a TaskGroup as a BenchError with its own message."""
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup) and leaf.exceptions:
        leaf = leaf.exceptions[0]
    if isinstance(leaf, BenchError | stack.StackError | SippError | AmiError | TimeoutError):
        raise BenchError(str(leaf) or type(leaf).__name__) from group


def run(opts: Options, say: Any = print) -> dict[str, Any]:
    """The whole bench: set up, both sides, tear down. SIGTERM stops it like Ctrl-C."""
    def on_term(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    started = time.time()
    host_at_start = host_info()
    try:
        patch = (None if "app_queue_best" not in opts.sides
                 else lambda etc: add_best_queue(etc, opts.wrap_up_s))
        with instance(opts, patch_config=patch) as inst:
            say(f"bench instance up in {time.time() - started:.0f}s ({inst.workdir})")
            doc = asyncio.run(_drive(inst, opts, say))
    except (stack.StackError, SippError, AmiError) as exc:
        raise BenchError(str(exc)) from exc
    except BaseExceptionGroup as group:  # a TaskGroup's: say the first reason plainly
        raise_plainly(group)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    doc["load"]["started_at"] = datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds")
    doc["load"]["duration_s"] = round(time.time() - started, 1)
    end = host_info()
    load_end = end.pop("loadavg")
    doc["load"]["host"] = {**end, "loadavg_at_start": host_at_start["loadavg"],
                           "loadavg_at_end": load_end}
    sides = {name: doc.get(name) for name in SIDES}
    return {**sides, "load": doc["load"], "headline": metrics.headline(sides, opts.wrap_up_s)}
