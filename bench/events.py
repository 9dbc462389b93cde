"""`hotline bench events` (B4): how long a screen-pop takes from the seat starting to ring to a
desktop's `/ws` and to MQTT, with and without AMI event filtering.

The same private instance as `hotline bench acd` (bench/acd.py: its own ports, temp state dir,
SQLite DB, Mosquitto; loopback only), one fresh instance per filter variant, because Asterisk
reads manager.conf at start:

- `shipped`: manager.conf as asterisk_conf renders it (disabledevents and eventfilter lines);
- `none`: the same file with every disabledevents and eventfilter line taken out of the
  private instance's rendered copy, so Asterisk sends the CTI every event (Newexten, VarSet...).

Agents log in through the desktop's web API (POST /api/auth/login with a seat, the demo
password), each opens the desktop's `/ws` with its session cookie, as a browser does, and goes
ready (POST /api/agents/{id}/state). A subscriber on `hotline/agents/+/pop` stands for MQTT
desktops. SIPp callers arrive at a steady Poisson rate (50 a minute by default) at the bench's
extension to our ACD, with the phone numbers of demo accounts, so each pop carries an account.

The clock starts at the seat's DialBegin (Asterisk's own Timestamp for the INVITE to the seat:
the moment it starts to ring); the pop's moment is when its bytes reached the bench. Both are
this machine's wall clock. A negative latency means the pop arrived before the seat rang (the
CTI publishes it before the Redirect). The AMI events per second are those the bench's own AMI
session receives and the CTI's user would too: the bench logs in as the CTI's AMI user or, where
the rendered manager.conf has one, as the tools' observer user with the same event filters, and
then counts only events in the classes the CTI's user reads (an event's Privilege header).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asterisk_conf.mosquitto import credential
from bench import acd
from bench.ami_tap import AmiError, AmiTap, Event, tap_login, ts
from bench.metrics import SEAT, percentile
from bench.sipp_load import (
    SippError,
    start_callers,
    start_phones,
    stop,
    write_callers,
    write_silence_pcap,
    write_talk_times,
)
from cti.mqtt import topics
from hotline import stack

log = logging.getLogger(__name__)

FILTERS = ("shipped", "none")
SERVICE = acd.SIDES["ours"].service
POP_TOPIC = topics.ALL_SCREEN_POPS
TARGET_P99_MS = 100.0


@dataclass(frozen=True)
class EventsOptions:
    minutes: float = 2.0
    calls_per_minute: float = 50.0
    agents: int = 15  # 50 calls/min x ~10 s handle: ~8 erlangs, so callers rarely wait
    talk_mean_s: float = 8.0
    talk_cap_s: float = 30.0
    wrap_up_s: int = 2
    ring_ms: int = 500
    seed: int = 95598
    filters: tuple[str, ...] = FILTERS
    keep_workdir: bool = False

    def instance_options(self) -> acd.Options:
        return acd.Options(minutes=self.minutes, seed=self.seed, agents=self.agents,
                           talk_mean_s=self.talk_mean_s, talk_cap_s=self.talk_cap_s,
                           wrap_up_s=self.wrap_up_s, ring_ms=self.ring_ms,
                           sides=("ours",), keep_workdir=self.keep_workdir)


def unfilter_manager(etc: Path) -> None:
    """The private instance's manager.conf without disabledevents or eventfilter lines."""
    conf = etc / "manager.conf"
    lines = conf.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [ln for ln in lines
            if not ln.lstrip().lower().startswith(("disabledevents", "eventfilter"))]
    if len(kept) == len(lines):
        log.warning("manager.conf had no event filter to remove")
    conf.write_text("".join(kept), encoding="utf-8")  # same file: its mode and owner stay


def cti_read_classes(etc: Path, username: str) -> set[str] | None:
    """The event classes the CTI's AMI user reads (its `read =` in the rendered manager.conf);
    None when it cannot be told (then every event the tap gets counts)."""
    section = None
    try:
        text = (etc / "manager.conf").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("["):
            section = line.strip("[]").split("]")[0]
        elif section == username and line.replace(" ", "").startswith("read="):
            return {c.strip() for c in line.split("=", 1)[1].split(",") if c.strip()}
    return None


def seen_by_cti(ev: Event, classes: set[str] | None) -> bool:
    """Asterisk sends an event to a user who reads any of the event's classes (Privilege)."""
    if classes is None:
        return True
    priv = {c.strip() for c in str(ev.get("Privilege", "")).split(",")} - {"all", ""}
    return not priv or bool(priv & classes)


# ------------------------------------------------------------------------- the desktops


class WsDesk:
    """One agent's desktop: logged in over the web API, reading `/ws` like the browser page."""

    def __init__(self, base: str, agent: str, seat: str) -> None:
        import httpx

        self.base, self.agent, self.seat = base, agent, seat
        self.http = httpx.AsyncClient(base_url=base, timeout=15)
        self.pops: list[tuple[float, dict[str, Any]]] = []  # (arrival, pop)
        self.closed: int | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ws: Any = None

    async def login(self) -> None:
        r = await self.http.post("/api/auth/login", json={
            "user_id": self.agent, "password": acd.PASSWORD, "seat": self.seat})
        if r.status_code != 200:
            raise acd.BenchError(f"web login of {self.agent} at {self.seat}: "
                                 f"{r.status_code} {r.text[:200]}")

    async def ready(self) -> None:
        r = await self.http.post(f"/api/agents/{self.agent}/state", json={"state": "ready"})
        if r.status_code != 200:
            raise acd.BenchError(f"{self.agent} could not go ready: {r.status_code} "
                                 f"{r.text[:200]}")

    async def open_ws(self, timeout: float = 10) -> None:
        from urllib.parse import urlsplit

        from wsproto import ConnectionType, WSConnection
        from wsproto.events import AcceptConnection, CloseConnection, RejectConnection, Request

        url = urlsplit(self.base)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        cookie = "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())
        self._ws = WSConnection(ConnectionType.CLIENT)
        async with asyncio.timeout(timeout):
            self._reader, self._writer = await asyncio.open_connection(host, port)
            self._writer.write(self._ws.send(Request(
                host=f"{host}:{port}", target="/ws",
                extra_headers=[(b"cookie", cookie.encode()),
                               (b"origin", f"http://{host}:{port}".encode())])))
            await self._writer.drain()
            while True:
                data = await self._reader.read(65536)
                if not data:
                    raise acd.BenchError(f"/ws closed during the handshake ({self.agent})")
                self._ws.receive_data(data)
                for ev in self._ws.events():
                    if isinstance(ev, AcceptConnection):
                        return
                    if isinstance(ev, RejectConnection | CloseConnection):
                        raise acd.BenchError(f"/ws refused {self.agent}: {ev}")

    async def run(self) -> None:
        """Read pushes until the socket closes or the task is cancelled."""
        from wsproto.events import CloseConnection, Message, Ping

        assert self._reader is not None and self._writer is not None
        text = ""
        while True:
            data = await self._reader.read(65536)
            arrived = time.time()
            if not data:
                return
            self._ws.receive_data(data)
            for ev in self._ws.events():
                if isinstance(ev, Message):
                    text += str(ev.data)
                    if ev.message_finished:
                        try:
                            msg = json.loads(text)
                        except ValueError:
                            msg = {}
                        text = ""
                        if msg.get("type") == "pop" and isinstance(msg.get("data"), dict):
                            self.pops.append((arrived, msg["data"]))
                elif isinstance(ev, Ping):
                    self._writer.write(self._ws.send(ev.response()))
                elif isinstance(ev, CloseConnection):
                    self.closed = ev.code
                    return

    async def close(self) -> None:
        from wsproto.events import CloseConnection

        if self._writer is not None:
            try:
                if self.closed is None:
                    self._writer.write(self._ws.send(CloseConnection(code=1000)))
                self._writer.close()
            except Exception as exc:  # noqa: BLE001 - already gone
                log.debug("ws close %s: %s", self.agent, exc)
        try:
            await self.http.post("/api/auth/logout")
        except Exception as exc:  # noqa: BLE001 - the instance goes away anyway
            log.debug("web logout %s: %s", self.agent, exc)
        await self.http.aclose()


async def wait_web(inst: acd.Instance, base: str, timeout: float = 30) -> None:
    """The CTI's desktop answers /api/health with ok (the stack waits for FastAGI only); a CTI
    that died on the way is reported with the end of its log."""
    import httpx

    paths = stack.paths(inst.settings)
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base, timeout=2) as http:
        while time.monotonic() < deadline:
            if not stack.pid_alive(paths.cti_pid):
                tail = (paths.log / "cti.log").read_text(errors="replace")[-1500:]
                raise acd.BenchError(f"the bench's CTI exited:\n{tail}")
            try:
                if (await http.get("/api/health")).json().get("ok") is True:
                    return
            except (httpx.HTTPError, ValueError):
                pass
            await asyncio.sleep(0.2)
    raise acd.BenchError(f"the CTI's web API on {base} did not say ok within {timeout:g}s")


async def mqtt_pops(client: Any, into: list[tuple[float, dict[str, Any]]]) -> None:
    await client.subscribe(POP_TOPIC, qos=1)
    async for m in client.messages:
        arrived = time.time()
        try:
            doc = json.loads(bytes(m.payload).decode("utf-8", errors="replace"))
        except (ValueError, TypeError):
            continue
        if isinstance(doc, dict):
            into.append((arrived, doc))


# ---------------------------------------------------------------------------- the load


def arrivals(opts: EventsOptions) -> list[float]:
    """Poisson at the given rate, conditioned on its count (as bench/load.py does)."""
    rng = random.Random(f"bench-events-{opts.seed}")
    horizon = opts.minutes * 60
    n = max(1, round(opts.calls_per_minute * opts.minutes))
    return sorted(round(rng.uniform(0, horizon), 3) for _ in range(n))


def talk_times(opts: EventsOptions, n: int) -> list[int]:
    rng = random.Random(f"bench-events-talk-{opts.seed}")
    return [int(min(rng.expovariate(1 / opts.talk_mean_s), opts.talk_cap_s) * 1000)
            for _ in range(n + 50)]


def demo_numbers(db_url: str, n: int, seed: int) -> list[str]:
    """Phone numbers of demo accounts, so every pop finds an account (and its bills...)."""
    from sqlalchemy import select

    from cti.db.models import AccountPhone
    from hotline.wiring import database_at

    with database_at(db_url, migrate=False) as sessions, sessions() as s:
        phones = sorted(s.execute(select(AccountPhone.phone)).scalars().all())
    if not phones:
        raise acd.BenchError("the demo database has no account phone numbers")
    rng = random.Random(f"bench-events-numbers-{seed}")
    return [rng.choice(phones) for _ in range(n)]


# ------------------------------------------------------------------------------ figures


@dataclass
class Ring:
    call_id: str  # the caller channel's Linkedid, which the pop carries as call_id
    seat: str
    at: float  # DialBegin's Timestamp
    offer: float | None = None  # the HotlineOffer UserEvent (the Redirect landed) before it
    pops: dict[str, float] = field(default_factory=dict)  # "ws"/"mqtt" -> arrival


def rings_of(events: list[Event]) -> list[Ring]:
    offers: dict[tuple[str, str], float] = {}
    out: list[Ring] = []
    for ev in events:
        name = ev.get("Event")
        if name == "UserEvent" and ev.get("UserEvent") == "HotlineOffer":
            offers[(str(ev.get("Linkedid", "")), str(ev.get("Seat", "")))] = ts(ev)
        elif name == "DialBegin":
            m = SEAT.match(str(ev.get("DestChannel", "")))
            if m and ev.get("Linkedid"):
                key = (str(ev["Linkedid"]), m.group(1))
                out.append(Ring(key[0], key[1], ts(ev), offers.pop(key, None)))
    return out


def _linkedid(call_id: str) -> str:
    """The Linkedid in a pop's call_id, also when a multi-PBX CTI prefixes it with its node."""
    return call_id.rsplit(":", 1)[-1].rsplit("/", 1)[-1]


def match_pops(rings: list[Ring], kind: str, pops: list[tuple[float, dict[str, Any]]]) -> int:
    """Give each ring the first unused pop for the same call and seat; the pops left over."""
    waiting: dict[tuple[str, str], list[float]] = {}
    for arrived, pop in sorted(pops, key=lambda p: p[0]):
        if pop.get("callback"):
            continue
        key = (_linkedid(str(pop.get("call_id"))), str(pop.get("seat")))
        waiting.setdefault(key, []).append(arrived)
    for ring in rings:
        queue = waiting.get((ring.call_id, ring.seat))
        if queue:
            ring.pops[kind] = queue.pop(0)
    return sum(len(v) for v in waiting.values())


def _stats(values: list[float]) -> dict[str, Any]:
    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 1)
    return {"p50_ms": r(percentile(values, 50)), "p99_ms": r(percentile(values, 99)),
            "max_ms": r(max(values, default=None)), "min_ms": r(min(values, default=None)),
            "samples": len(values)}


def figures(rings: list[Ring], ws_pops: list[tuple[float, dict[str, Any]]],
            mqtt: list[tuple[float, dict[str, Any]]]) -> dict[str, Any]:
    ws_left = match_pops(rings, "ws", ws_pops)
    mqtt_left = match_pops(rings, "mqtt", mqtt)
    out: dict[str, Any] = {"rings": len(rings)}
    for kind in ("ws", "mqtt"):
        lat = [(r.pops[kind] - r.at) * 1000 for r in rings if kind in r.pops]
        out[f"pop_{kind}_after_ring"] = {
            **_stats(lat),
            "rings_without_pop": sum(1 for r in rings if kind not in r.pops),
            "pops_without_ring": ws_left if kind == "ws" else mqtt_left,
            "p99_within_target": (None if not lat
                                  else (percentile(lat, 99) or 0) <= TARGET_P99_MS),
        }
    both = [(r.pops["ws"] - r.pops["mqtt"]) * 1000 for r in rings
            if "ws" in r.pops and "mqtt" in r.pops]
    out["ws_minus_mqtt"] = _stats(both)
    offer = [(r.at - r.offer) * 1000 for r in rings if r.offer is not None]
    out["ring_after_offer"] = _stats(offer)  # HotlineOffer (the Redirect landed) -> DialBegin
    return out


# ------------------------------------------------------------------------------ one run


async def run_variant(variant: str, inst: acd.Instance, opts: EventsOptions,
                      say: Any) -> dict[str, Any]:
    import aiomqtt

    s = inst.settings
    login = tap_login(s.ami, Path(s.asterisk_etc))
    tap = AmiTap(s.ami.host, s.ami.port, *login)
    classes = (None if login[0] == s.ami.username
               else cti_read_classes(Path(s.asterisk_etc), s.ami.username))
    base = f"http://127.0.0.1:{acd.PORTS['web']}"
    desks = [WsDesk(base, a, seat) for a, seat in zip(inst.agents, inst.seats, strict=True)]
    mqtt: list[tuple[float, dict[str, Any]]] = []
    sdir = inst.workdir / f"events-{variant}"
    sdir.mkdir(exist_ok=True)
    times = arrivals(opts)
    n = len(times)
    talk = sdir / "talk.csv"
    write_talk_times(talk, talk_times(opts, n))
    callers_file = sdir / "callers.csv"
    launch_rate = max(200, n)
    write_callers(callers_file, times, demo_numbers(inst.env["HOTLINE_DB_URL"], n, opts.seed),
                  launch_rate, acd.LEAD_S)
    pcap = inst.workdir / "caller-silence.pcap"
    write_silence_pcap(pcap, int(opts.talk_cap_s + 90))
    mqtt_log = logging.getLogger("bench.mqtt")
    mqtt_log.setLevel(logging.ERROR)
    doc: dict[str, Any] = {}
    async with aiomqtt.Client("127.0.0.1", acd.PORTS["mqtt"], logger=mqtt_log,
                              identifier=f"bench-pop-{uuid.uuid4().hex[:8]}",
                              username=acd.BENCH_USER,  # the hotline's broker: no anonymous
                              password=credential(inst.workdir, acd.BENCH_USER)) as client:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(tap.run(), name="bench-ami-tap"),
                     tg.create_task(mqtt_pops(client, mqtt), name="bench-mqtt-pops")]
            try:
                await tap.wait_ready(15)
                await wait_web(inst, base)
                for d in desks:  # one at a time: each login is an argon2 check on purpose
                    await d.login()
                    await d.open_ws()
                    tasks.append(tg.create_task(d.run(), name=f"bench-ws-{d.agent}"))
                    await d.ready()
                doc = await _calls(variant, inst, opts, tap, sdir, talk, callers_file, pcap,
                                   n, launch_rate, say)
            finally:
                for t in tasks:
                    t.cancel()
        for d in desks:
            await d.close()
    events, window = doc.pop("_events"), doc.pop("_window_s")
    cti_events = [e for e in events if seen_by_cti(e, classes)]
    counts = Counter(str(e.get("Event")) for e in cti_events)
    ws_pops = [p for d in desks for p in d.pops]
    doc.update(figures(rings_of(events), ws_pops, mqtt))
    doc.update({
        "ami_events": len(cti_events),
        "ami_events_per_s": round(len(cti_events) / window, 1) if window else None,
        "ami_events_counted_as": ("the tap's own (it is the CTI's user)" if classes is None
                                  else f"the tap's, in the CTI user's read classes "
                                       f"{sorted(classes)}"),
        "ami_events_tap": len(events),
        "ami_events_top": dict(counts.most_common(12)),
        "ami_reconnects": tap.reconnects,
        "ami_events_dropped": tap.dropped,
        "ws_closed_by_server": sum(1 for d in desks if d.closed is not None),
    })
    return doc


async def _calls(variant: str, inst: acd.Instance, opts: EventsOptions, tap: AmiTap,
                 sdir: Path, talk: Path, callers_file: Path, pcap: Path, n: int,
                 launch_rate: int, say: Any) -> dict[str, Any]:
    phones = start_phones(sdir, acd.PHONES_SIP, acd.PHONES_MEDIA, talk, opts.ring_ms)
    inst.procs.append(phones)
    stack.wait_until(lambda: stack.port_open("127.0.0.1", acd.PHONES_SIP, udp=True), 10,
                     "the agent phones (SIPp UAS)")
    view = acd.Callers(acd.SIDES["ours"])
    tap.on_event(view.feed)
    paths = stack.paths(inst.settings)
    ast_pid, cti_pid = stack.pid_alive(paths.asterisk_pid), stack.pid_alive(paths.cti_pid)
    cpu0 = (acd._cpu_s(ast_pid), acd._cpu_s(cti_pid))
    mark = len(tap.events)
    horizon = opts.minutes * 60
    max_s = int(acd.LEAD_S + horizon + opts.talk_cap_s + 90)
    t0 = time.time()
    callers = start_callers(sdir, f"127.0.0.1:{acd.PORTS['sip']}", SERVICE, callers_file, n,
                            launch_rate, acd.CALLER_SIP, acd.CALLER_MEDIA, pcap, max_s)
    inst.procs.append(callers)
    say(f"events/{variant}: {n} calls over {opts.minutes:g} min")
    deadline = t0 + acd.LEAD_S + horizon + opts.talk_cap_s + 60
    last_note = 0.0
    while time.time() < deadline:  # bounded by the deadline
        now = time.time()
        arrived = now > t0 + acd.LEAD_S + horizon + 1 and view.created >= n
        if (arrived or callers.poll() is not None) and view.unresolved() == 0:
            break
        if now - last_note >= 30:
            last_note = now
            say(f"  events/{variant}: t={now - t0:5.0f}s calls={view.created}/{n} "
                f"waiting={view.unresolved()}")
        await asyncio.sleep(0.1)
    t_end = time.time()
    cpu1 = (acd._cpu_s(ast_pid), acd._cpu_s(cti_pid))
    events = tap.events[mark:]
    left = await acd._wait_no_channels(tap, 30)
    for p in (callers, phones):
        stop(p, 10)
    tap.off_event(view.feed)
    (sdir / "ami-events.jsonl").write_text(
        "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
    return {
        "filter": variant,
        "calls": n,
        "answered": sum(1 for c in view.live.values() if c["answered"]),
        "run_s": round(t_end - t0, 1),
        "channels_left_at_end": left,
        "cpu_s_asterisk": acd._delta(cpu0[0], cpu1[0]),
        "cpu_s_cti": acd._delta(cpu0[1], cpu1[1]),
        "_events": events,
        "_window_s": t_end - t0,
    }


def run(opts: EventsOptions, say: Any = print) -> dict[str, Any]:
    """Each filter variant on a fresh private instance. SIGTERM stops it like Ctrl-C."""
    def on_term(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    started = time.time()
    host_at_start = acd.host_info()
    out: dict[str, Any] = {}
    try:
        for variant in opts.filters:
            patch = unfilter_manager if variant == "none" else None
            with acd.instance(opts.instance_options(), wrap_up_s=opts.wrap_up_s,
                              patch_config=patch) as inst:
                say(f"events/{variant}: instance up ({inst.workdir})")
                try:
                    out[variant] = asyncio.run(run_variant(variant, inst, opts, say))
                except BaseExceptionGroup as group:
                    acd.raise_plainly(group)
                    raise
    except (stack.StackError, SippError, AmiError) as exc:
        raise acd.BenchError(str(exc)) from exc
    finally:
        signal.signal(signal.SIGTERM, previous)
    out["load"] = {
        "calls_per_minute": opts.calls_per_minute, "minutes": opts.minutes,
        "agents": opts.agents, "talk_mean_s": opts.talk_mean_s, "talk_cap_s": opts.talk_cap_s,
        "wrap_up_s": opts.wrap_up_s, "ring_ms": opts.ring_ms, "seed": opts.seed,
        "service": SERVICE, "callers": "demo account phone numbers",
        "ring_start": "the seat leg's DialBegin (Asterisk Timestamp)",
        "pop_arrival": "bytes received by the bench: /ws of each agent's web session; "
                       f"an MQTT subscriber on {POP_TOPIC}",
        "target_p99_ms": TARGET_P99_MS,
        "started_at": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.time() - started, 1),
        "host": {**acd.host_info(), "loadavg_at_start": host_at_start["loadavg"]},
    }
    return out
