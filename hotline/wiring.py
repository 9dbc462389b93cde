"""The one composition root: settings in, every service out.

The daemon (hotline/app.py), every CLI command (hotline/cli*.py) and every bench (bench/) build
what they use through these functions, so a constructor changes in one place. Nothing below
hotline/ imports this module; it imports everything below it.

- `open_database`  migrate to head, then a session factory (the only way anything gets one);
- `build_prompts`, `render_config`  the build pieces `hotline up`, the tests and the bench share;
- `build_services`  the services that need no live PBX or bus (CLI, bench, web contract tests);
- `build_daemon`  everything the CTI runs: adapters, the ACD's one writer, IVR, recorder,
  supervision, work orders and the desktop, returned unstarted with its named tasks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Engine as SqlEngine
from sqlalchemy.orm import Session, sessionmaker

from acd.model import ANY, AcdConfig
from callcenter.leadership import LeaderLock
from config.settings import Settings
from prompts.index import PromptIndex

if TYPE_CHECKING:
    from callcenter.ivr_services import DbIvrServices
    from callcenter.journal import DurableWrites
    from callcenter.outage_service import OutageService
    from callcenter.transcription import TranscriptionService
    from cti.audiosocket.server import AudioSocketServer
    from speech.models import ModelRegistry
    from workorders.lifecycle import SlaPolicy

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 2.0
# who else may take a call as its wait grows (acd.routing): a fault-repair caller may be in the
# dark, so general agents after a minute and anyone after two; an English caller is better
# served by any agent after a minute than by waiting on the few English speakers
WIDENING: dict[str, tuple[tuple[float, frozenset[str] | Literal["*"]], ...]] = {
    "repair": ((60.0, frozenset({"general"})), (120.0, ANY)),
    "english": ((60.0, ANY),),
}


# ------------------------------------------------------------------------------ build pieces


def migrated_engine(settings: Settings) -> SqlEngine:
    """Migrate the configured database to head; its engine (the caller disposes of it)."""
    from cti.db.migrate import upgrade
    from cti.db.session import make_engine

    settings.state_dir.mkdir(parents=True, exist_ok=True)  # the default SQLite file lives there
    upgrade(settings.db_url)
    return make_engine(settings.db_url)


@contextmanager
def database_at(url: str, *, migrate: bool = True) -> Iterator[sessionmaker[Session]]:
    """A session factory over the database at `url` (migrated to head first, unless told not
    to), its engine disposed of on the way out: for the bench and tools that name a URL."""
    from cti.db.migrate import upgrade
    from cti.db.session import make_engine, make_session_factory

    if migrate:
        upgrade(url)
    engine = make_engine(url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def ivr_services(sessions: sessionmaker[Session], db_url: str, journal: Path,
                 outages: OutageService, policy: SlaPolicy | None = None
                 ) -> tuple[DbIvrServices, DurableWrites]:
    """The IVR's port to the database as the daemon runs it (and bench/outage_lookup.py
    measures it): lookups that fail at once while the database is away, the call record and
    fault reports journalled through an outage, the shared OutageService's index."""
    from callcenter.ivr_services import DbIvrServices
    from callcenter.journal import DurableWrites, FileJournal
    from cti.db.session import make_engine, make_session_factory

    # SQLite: a write waits 2 s for the lock, not 15 (the caller's patience is 3 s)
    durable = DurableWrites(make_session_factory(make_engine(db_url, busy_timeout_ms=2000)),
                            FileJournal(journal))
    return DbIvrServices(sessions, policy=policy, durable=durable, outages=outages), durable


def open_database(settings: Settings) -> sessionmaker[Session]:
    """Migrate the configured database to head and return its session factory."""
    from cti.db.session import make_session_factory

    return make_session_factory(migrated_engine(settings))


def build_prompts(settings: Settings) -> PromptIndex:
    """Synthesise every prompt not cached yet (and the hold music); returns the index."""
    from prompts.build import build_prompts as build
    from prompts.catalog import load_catalog
    from prompts.moh import build_moh

    index = build(load_catalog(settings.prompts.catalog_dir), settings.prompts.cache_dir,
                  settings.prompts.voices, settings.prompts.rate)
    build_moh(settings.prompts.cache_dir)
    return index


def render_config(settings: Settings) -> Path:
    """Render asterisk_conf templates into the state dir; returns the folder Asterisk reads."""
    from asterisk_conf.render import (
        FASTAGI_SECRET_FILE,
        SYSTEM_PROMPTS,
        load_or_create_secrets,
        render,
        write_config,
        write_fastagi_secret,
        write_sip_tls,
    )
    from prompts.index import ASTERISK_PROMPT_DIR
    from prompts.moh import MOH_DIR_NAME

    index = PromptIndex.load(settings.prompts.cache_dir)
    sys_prompts = {k: {lang: index.asterisk_path(f"sys.{k}", lang) for lang in ("zh", "en")}
                   for k in SYSTEM_PROMPTS}
    secrets = load_or_create_secrets(settings.state_dir / "secrets.json", settings)
    files = render(settings, secrets, sys_prompts, f"{ASTERISK_PROMPT_DIR}/{MOH_DIR_NAME}")
    write_config(files, settings.asterisk_etc, settings.asterisk_root)
    write_sip_tls(settings)  # [pbx] sip_tls_port: the certificate beside the config
    # what the dialplan passes on every AGI() call, alone in its own file for the CTI
    write_fastagi_secret(settings.state_dir / FASTAGI_SECRET_FILE, secrets)
    return settings.asterisk_etc


def acd_config(settings: Settings) -> AcdConfig:
    return AcdConfig(wrap_up_s=settings.acd.wrap_up_s,
                     widen_after_s=WIDENING,
                     # Asterisk's Dial times out first and reports RONA; the ACD's own ring
                     # timer is only the backstop for a lost event
                     ring_timeout_s=settings.acd.ring_timeout_s + 5,
                     max_queue_per_skill=settings.acd.max_queue,
                     max_queue_by_skill=dict(settings.acd.max_queue_by_skill),
                     # a callback needs a trunk to call the customer back on
                     callback_enabled=bool(settings.pbx.outbound_trunk),
                     # call ids without a systemname prefix are on the first node
                     default_node=settings.pbx.nodes[0].name)


# ------------------------------------------------------------------ services without live I/O


@dataclass
class Services:
    """What a CLI command, a bench or a web contract test uses: no PBX running, a bus only if
    one is given (work-order alerts go out on it after their commit)."""

    settings: Settings
    sessions: sessionmaker[Session]
    workorders: Any  # workorders.service.WorkOrderService
    clock: Callable[[], datetime] | None = None
    outages: Any = None  # callcenter.outage_service.OutageService
    keyword_alerts: Any = None  # callcenter.keyword_alerts.KeywordAlertService
    # a resolved repair or complaint schedules its return-visit call ([pbx] outbound_trunk)
    return_visits: Any = None  # callcenter.return_visits.ReturnVisits

    def web_context(self, **live: Any) -> Any:
        """The desktop's context over these services; `live` adds the daemon's (acd, pbx, ...)."""
        from agent_desktop.context import WebContext

        live.setdefault("workorders", self.workorders)
        live.setdefault("outages", self.outages)
        live.setdefault("keyword_alerts", self.keyword_alerts)
        if self.clock is not None:
            live.setdefault("clock", self.clock)
        return WebContext(settings=self.settings, sessions=self.sessions, **live)


def build_services(settings: Settings, sessions: sessionmaker[Session] | None = None,
                   *, bus: Any = None,
                   clock: Callable[[], datetime] | None = None) -> Services:
    """The offline services; `sessions` defaults to the migrated configured database."""
    from callcenter.keyword_alerts import KeywordAlertService
    from callcenter.outage_service import OutageService
    from cti.notifier import Notifier
    from workorders.service import WorkOrderService

    sessions = sessions if sessions is not None else open_database(settings)
    # the notifier makes each alert and holds it in its outbox until the commit
    notifier = Notifier(bus) if bus is not None else None
    kw: dict[str, Any] = {"alerts": notifier}
    if clock is not None:
        kw["clock"] = clock
    # fault reports are linked into known outages and counted by incident detection ([outages])
    outages = OutageService(sessions, notifier, detection=settings.outages.detection())
    # return visits (回访) are called by the outbound engine where there is a trunk to call on;
    # without one they wait on the agents' return-visit list
    visits = None
    if settings.pbx.outbound_trunk and settings.outbound.enabled:
        from callcenter.return_visits import ReturnVisits
        visits = ReturnVisits(settings.outbound.return_visit_delay)
    workorders = WorkOrderService(sessions, settings.workorders.policy(), outages=outages,
                                  return_visits=visits, **kw)
    if visits is not None:
        visits.workorders = workorders
    # keyword alerts of post-call transcription: the console's list and complaint orders
    alerts = KeywordAlertService(sessions, workorders, **({"clock": clock} if clock else {}))
    return Services(settings=settings, sessions=sessions, clock=clock, workorders=workorders,
                    outages=outages, keyword_alerts=alerts, return_visits=visits)


# ------------------------------------------------------------------------------- the daemon


TaskFactory = Callable[[], Coroutine[Any, Any, Any]]


@dataclass
class Daemon:
    """Every part of the CTI, built and not yet running: `tasks` are its named long-lived tasks,
    run in one TaskGroup by hotline.app; `close` releases what building opened."""

    settings: Settings
    services: Services
    tasks: dict[str, TaskFactory] = field(default_factory=dict)
    parts: dict[str, Any] = field(default_factory=dict)
    db_engine: SqlEngine | None = None
    status_path: Path | None = None

    def close(self) -> None:
        if self.status_path is not None:
            self.status_path.unlink(missing_ok=True)
        if self.db_engine is not None:
            self.db_engine.dispose()


class WiringError(Exception):
    """The settings ask for something this build does not wire."""


def the_one_node(settings: Settings) -> Any:
    """The PBX node the CTI drives. Call ids already name their node (systemname prefix), the
    settings take a node list, and the ACD's PBX port, link and AMI feed are per node, but one
    CTI driving several nodes (an AMI session each; supervision, call control and the recorder
    over each) is not wired yet: refuse rather than half-do."""
    nodes = settings.pbx.nodes
    if len(nodes) != 1:
        raise WiringError(f"[[pbx.nodes]] lists {len(nodes)} nodes; this build drives exactly one "
                          "PBX node (see README, 'More than one PBX')")
    return nodes[0]


def status_path(settings: Settings) -> Path:
    return settings.state_dir / "cti.status.json"


def leader_lock_path(settings: Settings) -> Path:
    """The SQLite deployment's leadership lock file: in run/, made by `hotline up` for the CTI's
    user (stack.secure_cti_files), which may not create files there itself."""
    return settings.state_dir / "run" / "cti.lock"


def standby_path(settings: Settings) -> Path:
    """Where a CTI waiting on the leadership lock says so (pid, since, which lock)."""
    return settings.state_dir / "cti.standby.json"


def leader_lock(settings: Settings) -> LeaderLock:
    """The leadership lock of this deployment (callcenter.leadership.LeaderLock), chosen by its
    database: PostgreSQL's advisory lock, which CTIs on several hosts can share; with SQLite, a
    file lock, as the database is on one host anyway."""
    from cti.leader_lock import FileLeaderLock, PgLeaderLock

    if settings.db_url.startswith("postgresql"):
        return PgLeaderLock(settings.db_url)
    if settings.db_url.startswith("sqlite"):
        return FileLeaderLock(leader_lock_path(settings))
    raise WiringError(f"no leadership lock for the database {settings.db_url.split(':')[0]!r}: "
                      "PostgreSQL or SQLite")


def warm_imports() -> None:
    """Import what build_daemon imports, so that a standby that gets the lock starts at once
    instead of first loading the web framework, the ORM and the migrations."""
    import importlib

    for name in ("agent_desktop.app", "agent_desktop.server", "callcenter.acd_service",
                 "callcenter.agent_commands", "callcenter.call_control", "cti.ami.client",
                 "cti.ami.feed", "cti.db.acd_store", "cti.db.migrate", "cti.db.recorder_store",
                 "cti.db.session", "cti.mqtt", "ivr.agi_session", "ivr.fastagi", "ivr.registry",
                 "recorder.service", "recorder.supervision", "workorders.ticker"):
        importlib.import_module(name)


def _write_status(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)


def fastagi_guard(settings: Settings) -> dict[str, Any]:
    """Who may drive the IVR (issue 10, defect 8): the secret the dialplan passes on every AGI()
    call (var/fastagi.secret, as `hotline config render` made it) and Asterisk's uid for the peer
    check ([fastagi] peer_uid; unset: on when the Asterisk user exists on this host)."""
    import pwd

    from asterisk_conf.render import (
        ASTERISK_USER,
        FASTAGI_SECRET_FILE,
        RenderError,
        read_fastagi_secret,
    )

    try:
        secret = read_fastagi_secret(settings.state_dir / FASTAGI_SECRET_FILE)
    except RenderError as exc:
        raise WiringError(str(exc)) from exc
    peer_uid: int | None = None
    if settings.fastagi.peer_uid is not False:
        try:
            peer_uid = pwd.getpwnam(ASTERISK_USER).pw_uid
        except KeyError:
            if settings.fastagi.peer_uid:
                raise WiringError(f"[fastagi] peer_uid = true, but there is no user "
                                  f"{ASTERISK_USER} for Asterisk to run as") from None
            log.warning("FastAGI: no user %s on this host, so no peer check (the secret still "
                        "applies)", ASTERISK_USER)
    return {"secret": secret, "peer_uid": peer_uid}


def speech_models(settings: Settings) -> ModelRegistry | None:
    """The process's one registry of vosk models ([speech.models]), shared by the live calls'
    listener and post-call transcription; None without a model."""
    if not settings.speech.models:
        return None
    from speech.models import ModelRegistry

    return ModelRegistry(settings.speech.models)


def transcription(settings: Settings, sessions: sessionmaker[Session],
                  models: ModelRegistry | None, alerts: Any = None
                  ) -> TranscriptionService | None:
    """Post-call transcription's worker pool ([speech] transcribe_workers), or None when there
    is no model or it is off (0 workers). `alerts`: the notifier (may be set later)."""
    if models is None or settings.speech.transcribe_workers < 1:
        return None
    from callcenter.transcription import TranscriptionService, vosk_recogniser

    return TranscriptionService(sessions, settings.speech, settings.recorder.storage_dir,
                                vosk_recogniser(models), alerts=alerts)


def speech_listener(settings: Settings, *, peer_uid: int | None,
                    models: ModelRegistry | None = None) -> AudioSocketServer | None:
    """The AudioSocket listener for [speech], or None when speech is off (no model)."""
    address = settings.speech.audiosocket_address
    if address is None or not settings.speech.models:
        return None
    from cti.audiosocket.server import AudioSocketServer
    from speech.intent import Thresholds
    from speech.models import ModelRegistry
    from speech.pool import DecoderPool

    sp = settings.speech
    return AudioSocketServer(address[0], address[1],
                             models=models if models is not None else ModelRegistry(sp.models),
                             pool=DecoderPool(sp.max_decoders),
                             thresholds=Thresholds(sp.confirm_below, sp.accept_at),
                             listen_s=sp.listen_seconds, peer_uid=peer_uid,
                             sample_rate=sp.sample_rate)


def outbound_service(settings: Settings, sessions: sessionmaker[Session], ami: Any, acd: Any,
                     services: Services, *, paused: Callable[[], bool],
                     notices: Any = None) -> Any:
    """The outbound engine where [pbx] outbound_trunk names the carrier and [outbound] is
    enabled; None otherwise."""
    if not (settings.pbx.outbound_trunk and settings.outbound.enabled):
        return None
    from callcenter.callbacks import PURPOSE as CALLBACK
    from callcenter.callbacks import Callbacks, agents_of
    from callcenter.outbound_service import OutboundConfig, OutboundService
    from callcenter.return_visits import PURPOSE
    from outbound.pacing import Capacity

    ob = settings.outbound

    def capacity() -> Capacity:
        view = acd.view
        waiting = sum(1 for c in view.calls.values() if str(c.state) == "waiting")
        ready = sum(1 for a in view.agents.values() if str(a.state) == "ready")
        # every inbound call holds a trunk channel (the service takes its own calls off)
        free = ob.trunk_channels - len(view.calls)
        return Capacity(active=0, channels_free=free, ready_agents=ready,
                        waiting_inbound=waiting)

    visits = services.return_visits
    purposes = {PURPOSE.name: PURPOSE}
    results = {PURPOSE.name: visits.on_result} if visits is not None else {}
    variables = {}
    if notices is not None:  # planned-outage notices (callcenter.outage_notices)
        from callcenter.outage_notices import PURPOSE as NOTICE

        purposes[NOTICE.name] = NOTICE
        results[NOTICE.name] = notices.on_result
        variables[NOTICE.name] = notices.variables
    # after-hours callbacks the IVR booked (issue 15 §3): dialled when their skill is open and
    # one of its agents is free, and queued to that skill (callcenter.callbacks)
    callbacks = Callbacks(sessions, lambda: agents_of(acd.view),
                          tz=ZoneInfo(settings.ivr.timezone),
                          always_open=settings.calendars.always_open)
    purposes[CALLBACK.name] = CALLBACK
    variables[CALLBACK.name] = callbacks.variables
    return OutboundService(
        sessions, ami,
        OutboundConfig(trunk="carrier-out", systemname=settings.pbx.systemname,
                       caller_id=settings.pbx.service_number,
                       ring_s=ob.ring_s, window=ob.window(), retry=ob.retry(),
                       pacing=ob.pacing()),
        purposes, capacity=capacity, paused=paused,
        clock=lambda: datetime.now(UTC), results=results, variables=variables,
        admit={CALLBACK.name: callbacks.admit}, answered={CALLBACK.name: callbacks.answered})


async def observed(events: Any, *observers: Callable[[Any], None] | None) -> Any:
    """AMI events on their way to the feed, shown to each observer in turn in one pass (call
    control's consults, the recorder, the outbound engine, callers' holds, surveys,
    supervision): each only looks, or queues the event for a task of its own, and is never
    awaited (the ACD's feed does not wait on their databases). One observer's error is
    logged and costs the others nothing."""
    shown = [o for o in observers if o is not None]
    async for event in events:
        for observe in shown:
            try:
                observe(event)
            except Exception:
                log.exception("AMI event not observed by %r: %r", observe, event)
        yield event


async def live_channel_ids(ami: Any) -> list[str]:
    """The Uniqueids of the channels up now (CoreShowChannels), for the outbound recovery."""
    events = await ami.action({"Action": "CoreShowChannels"}, idempotent=True, as_list=True)
    return [str(e.get("Uniqueid", "")) for e in events if e.get("Event") == "CoreShowChannel"]


async def build_daemon(settings: Settings) -> Daemon:
    """Build the CTI; fails fast (FlowValidationError, RecorderError, WebBindError) on bad config.

    The FastAGI server is listening when this returns (so the dialplan never meets a closed port
    once the CTI reports itself up); everything else starts with the tasks.
    """
    from acd.engine import PbxLink
    from agent_desktop.api.queues import wallboard_doc
    from agent_desktop.app import create_app
    from agent_desktop.server import bind
    from agent_desktop.server import serve as serve_web
    from agent_desktop.tls import TlsError, certificate
    from asterisk_conf.mosquitto import CTI_USER, credential
    from asterisk_conf.render import phone_names
    from callcenter.acd_service import AcdService
    from callcenter.agent_commands import AgentCommands
    from callcenter.call_control import CallControl
    from callcenter.holds import HoldService
    from callcenter.journal import JOURNAL_NAME
    from callcenter.outage_watch import OutageWatch
    from callcenter.staff_watch import StaffWatch
    from callcenter.storm_watch import StormWatch, active_faults_of
    from callcenter.surveys import SurveyService
    from cti.ami.client import AmiClient
    from cti.ami.feed import AcdFeed
    from cti.ami.pbx import AmiPbx
    from cti.db import login_limits, staff
    from cti.db.acd_store import DbAcdStore
    from cti.db.calls import pbx_cut_writer
    from cti.db.mqtt_logins import DbMqttDirectory
    from cti.db.recorder_store import DbRecordingIndex, DbSupervisionAudit
    from cti.db.reports import aggregate_every
    from cti.db.session import make_session_factory
    from cti.mqtt import MqttBus
    from hotline import trim
    from hotline.diagnostics import heap_figures, snapshot_every, tracemalloc_snapshots
    from ivr.agi_session import IvrContext, make_ivr_handler
    from ivr.engine import Engine
    from ivr.fastagi import FastAgiServer
    from ivr.registry import FlowRegistry
    from recorder.service import RecorderService, check_storage
    from recorder.supervision import AcdCalls, SupervisionService
    from workorders.ticker import escalation_ticks

    db_engine = migrated_engine(settings)
    sessions = make_session_factory(db_engine)
    prompts = PromptIndex.load(settings.prompts.cache_dir)
    # a transfer to a skill nobody configured is refused, at start and at every reload
    registry = FlowRegistry(settings.ivr.flows_dir, settings.ivr.entry_flow, prompts.has,
                            skills=partial(staff.in_unit, sessions, staff.skill_names))
    registry.load()  # an invalid flow set at startup is fatal, with file:line on stderr
    check_storage(settings.recorder.storage_dir)  # a tmpfs recordings folder is fatal
    # one vosk model per language per process: the live calls and transcription share it
    models = speech_models(settings)
    # every recording is transcribed (a model configured, [speech] transcribe_workers > 0):
    # queued in the unit of work that indexes it; keyword alerts go out after their commit
    transcriber = transcription(settings, sessions, models)
    recorder = RecorderService(settings.recorder,
                               DbRecordingIndex(sessions, transcription=transcriber),
                               timezone=settings.ivr.timezone)
    tz = ZoneInfo(settings.ivr.timezone)

    # as hotline-cti, the one broker user that reads commands and writes state (docs/mqtt.md)
    bus = MqttBus(settings.mqtt.host, settings.mqtt.port, client_id=f"hotline-cti-{os.getpid()}",
                  username=CTI_USER, password=credential(settings.state_dir, CTI_USER))
    # work orders: SLA escalations go to hotline/supervisors/alerts after their commit; outage
    # notices: the IVR's outage-first lookup, the console's and the CLI's changes
    services = build_services(settings, sessions, bus=bus)
    # the call record and IVR fault reports outlive a database outage: journalled, replayed
    ivr_db, durable = ivr_services(sessions, settings.db_url, settings.state_dir / JOURNAL_NAME,
                                   services.outages, settings.workorders.policy())
    # recordings that ended while the database was away have no index row: the reconciler
    # finds them once it is back (the ones still recording are indexed as they end)
    durable.on_recovered.append(recorder.at_start)
    guard = fastagi_guard(settings)
    # speech on the live call (issue 13): menus listen in the languages with a model, through
    # the AudioSocket listener; without one every menu is keys only and no port is bound
    speech = speech_listener(settings, peer_uid=guard["peer_uid"], models=models)
    speech_langs = frozenset(settings.speech.models) if speech is not None else frozenset()
    ivr_ctx = IvrContext(
        engine_factory=lambda: Engine(registry.current, settings.ivr.entry_flow, tz,
                                      speech_langs=speech_langs),
        prompts=prompts,
        services=ivr_db,
        clock=lambda: datetime.now(UTC),
        max_silence_s=settings.ivr.max_silence_s,
        speech=speech,
        tz=tz,
        always_open=settings.calendars.always_open,
        callback_valid=timedelta(hours=settings.calendars.callback_hours),
    )
    fastagi = FastAgiServer({"ivr": make_ivr_handler(ivr_ctx)}, settings.fastagi.host,
                            settings.fastagi.port, settings.fastagi.backlog, **guard)

    # the ACD: one writer, fed by AMI through the call tracker; events out over MQTT (bus)
    workorders = services.workorders
    store = DbAcdStore(sessions, durable=durable)
    feed: AcdFeed | None = None
    supervision: SupervisionService | None = None
    surveys: SurveyService | None = None
    outbound: Any = None

    async def on_ami_connected(client: AmiClient) -> None:
        assert feed is not None
        await feed.resync(client)
        if supervision is not None:
            await supervision.resync(client)
        if outbound is not None:
            await outbound.recover(await live_channel_ids(client))
        if surveys is not None:  # surveys told while no CTI listened: AstDB kept them
            await surveys.recover(client)

    node = the_one_node(settings)
    ami = AmiClient(node.ami_host, node.ami_port, settings.ami.username,
                    settings.ami.secret, on_connected=on_ami_connected,
                    # no offers of this node's calls while it is away (a ring could not be
                    # sent); the feed's resync says PbxLink(up=True) again
                    on_lost=lambda: acd.submit(PbxLink(up=False, node=node.name)))
    recorder.ami = ami  # reads what Asterisk kept of recordings the CTI did not see end
    # an IVR session that gives up on a slow FastAGI path moves its caller over AMI
    ivr_ctx.rescue = AmiPbx(ami, prompts).ivr_fallback
    # a leg left unrecorded (a full disk) goes to audit_log, then to supervisors' alerts
    recorder.unrecorded_log = DbRecordingIndex(sessions)
    recorder.alerts = workorders.alerts  # the notifier: it makes the alerts from their facts
    if transcriber is not None:
        transcriber.alerts = workorders.alerts  # keyword alerts, after their commit
    acd = AcdService.create(acd_config(settings), AmiPbx(ami, prompts), bus, store,
                            await store.load_snapshot(),
                            seats=tuple(f"seat{i:02d}" for i in range(1, settings.pbx.seats + 1)),
                            callback_key=settings.acd.callback_key)
    # no offer before the node's first resync (Asterisk's truth first)
    acd.submit(PbxLink(up=False, node=node.name))
    feed = AcdFeed(acd, pbx_cut=pbx_cut_writer(sessions),  # records cut by a PBX restart
                   node=node.name, seat_reachability=settings.pbx.seat_reachability)

    def agent_at(seat: str) -> str | None:
        a = acd.view.agent_at(seat)
        return a.agent_id if a is not None else None

    # the post-call survey (issue 14 §3): the dialplan's offer and the caller's score go on the
    # call record (journalled through a database outage); a call event after the commit
    surveys = SurveyService(sessions, agent_at=agent_at, durable=durable, notifier=acd.notifier)
    holds = HoldService(sessions, durable=durable)  # callers' time on hold, for the reports
    phones = phone_names(settings)
    seats = {name for name, _ext, role in phones if role == "seat"}
    supervisors = {name for name, _ext, role in phones if role == "supervisor"}
    supervision = SupervisionService(ami, acd.notifier, DbSupervisionAudit(sessions),
                                     AcdCalls(acd), supervisors)
    await supervision.close_stale()  # sessions a previous CTI left open end on record
    # MQTT logins share the web logins' limiter; logins and forces go to audit_log
    mqtt_directory = DbMqttDirectory(sessions, login_limits.LoginPolicy(
        free_failures=settings.web.login_max_failures,
        ip_free_failures=settings.web.login_ip_max_failures,
        backoff_max_s=settings.web.login_backoff_max_s, window_s=settings.web.login_window_s))
    commands = AgentCommands(acd, bus, mqtt_directory, seats, supervision=supervision)
    commands.subscribe(bus)  # hotline/cmd/{agents,supervisors}/{id}, topics by cti.notifier
    # the agent desktop (agent_desktop/): web API and /ws push, on this loop; a taken port is
    # fatal here, at startup
    # call control from the desktop; its consults follow their legs' events (calls.tap)
    calls = CallControl(ami, acd, feed.tracker)
    web_ctx = services.web_context(acd=acd, pbx=ami, bus=bus, agent_commands=commands,
                                   calls=calls,
                                   recorder=recorder, supervision=supervision,
                                   transcription=transcriber, flows=registry)
    web_app = create_app(web_ctx)
    web_sock = bind(settings.web)
    try:
        web_tls = certificate(settings.web, settings.state_dir)  # None: plain HTTP
    except TlsError as exc:
        raise WiringError(str(exc)) from exc
    started = datetime.now(UTC).isoformat(timespec="seconds")
    spath = status_path(settings)
    self_trims = trim.SelfTrims(settings.memory.trim_every_s)  # its last, in the status

    async def report() -> None:
        while True:
            last = registry.last
            _write_status(spath, {
                "pid": os.getpid(), "started_at": started,
                "fastagi": f"{settings.fastagi.host}:{settings.fastagi.port}",
                "active_ivr_sessions": fastagi.active,
                "fastagi_refused": dict(fastagi.refused),
                "web": f"http://{settings.web.host}:{settings.web.port}/",
                "flows": {"version": registry.version, "last_reload_ok": last.ok,
                          "last_reload_at": last.at, "errors": list(last.errors)},
                # what waits: pops and states held while the broker is away, the ACD's DB jobs
                "outbox": {"mqtt": bus.stats(), "acd": acd.queue_lengths()},
                "db_pool": {"checked_out": getattr(db_engine.pool, "checkedout", lambda: None)(),
                            "size": getattr(db_engine.pool, "size", lambda: None)()},
                # for the soak: Python's own objects and the threads (each may own a malloc
                # arena), to tell growth in Python objects from growth below them; what the C
                # heap holds and SQLite's share of it, to tell both from pages merely touched
                "memory": {"python_blocks": sys.getallocatedblocks(),
                           "threads": threading.active_count(), **heap_figures(),
                           **self_trims.status()},
                "speech": speech.stats() if speech is not None else None,
                # post-call transcription: jobs per state, keyword alerts (last counts)
                "transcription": transcriber.stats() if transcriber is not None else None,
                # the outbound engine: window open now, ticks run, attempts in flight, counts
                "outbound": outbound.stats() if outbound is not None else None,
                # post-call surveys heard: offered, answered with a score, without one, dropped
                "surveys": dict(surveys.counts),
                # callers' holds written to call_holds, and any dropped (a full queue)
                "holds": dict(holds.counts),
            })
            await asyncio.sleep(STATUS_INTERVAL_S)

    # storm mode: the switch (console, CLI, automatic) reaches the ACD and new IVR callers
    # (the shortened menus) within one period; inflow or active faults switch it ([storm])
    storm_watch = StormWatch(services.outages, acd, settings.storm,
                             active_faults_of(services.outages))
    ivr_ctx.short_menus = lambda: storm_watch.short_menus

    # the outbound engine (issue 14): return visits and every other call we place, over the
    # carrier trunk, within the window and what live capacity leaves (never in storm mode)
    # planned-outage notices (issue 14 §4): the affected important customers are called at
    # [outbound] outage_notice_days before the start; the engine dials them with the rest
    notices = None
    if settings.pbx.outbound_trunk and settings.outbound.enabled:
        from callcenter.outage_notices import OutageNotices
        notices = OutageNotices(sessions, settings.outbound.outage_notice_days,
                                prompts=prompts, tz=tz)
    outbound = outbound_service(settings, sessions, ami, acd, services,
                                paused=lambda: storm_watch.outbound_paused, notices=notices)
    outbound_loop = None
    if outbound is not None:
        svc = outbound

        async def outbound_loop() -> None:
            # nothing is dialled before the first recovery (on_ami_connected) has settled what
            # a previous process left open
            while True:
                try:
                    await svc.tick()
                except Exception:  # the database away, say: the next tick tries again
                    log.exception("outbound tick failed")
                await asyncio.sleep(settings.outbound.tick_s)

    tasks: dict[str, TaskFactory] = {
        "fastagi": fastagi.serve_forever,
        "flow-watch": registry.watch,
        "status": report,
        "mqtt-bus": bus.run,
        "ami": ami.run,
        "workorder-escalation": lambda: escalation_ticks(workorders.escalation_tick,
                                                         settings.workorders.tick_interval_s),
        "ami-events": lambda: feed.consume(observed(
            ami.events(), calls.observe, recorder.observe,
            outbound.offer if outbound is not None else None, holds.offer, surveys.offer,
            supervision.on_ami_event)),
        "survey-results": surveys.consume,
        "hold-records": holds.consume,
        "recorder-index": recorder.run,
        "recorder-reconcile": recorder.at_start,
        "recorder-purge": recorder.daily_purge,
        "recorder-disk": recorder.watch_disk,
        "acd": acd.run,
        "db-journal": durable.replay,
        "supervision": supervision.run,
        "supervision-tick": supervision.ticker,
        "acd-tick": acd.ticker,
        "cti-heartbeat": acd.heartbeat,
        "acd-snapshots": acd.snapshots,
        # storm mode: the switch (console, CLI, automatic) reaches the ACD within seconds,
        # and inflow or active faults switch it automatically ([storm])
        "storm-watch": storm_watch.run,
        # an admin's change (console, CLI) reaches the ACD within seconds: a logged-in
        # agent's skills from their next offer; a disabled agent signed out after their call
        "staff-watch": StaffWatch(acd, partial(staff.skills_of, sessions)).run,
        "web": lambda: serve_web(web_app, web_sock, web_tls),
        "web-wallboard": lambda: web_app.state.push.wallboard_loop(lambda: wallboard_doc(web_ctx)),
        # hotline/outages and hotline/storm (retained) whenever the database moved, whoever
        # moved it (the CLI has no bus): desktops hear of every change within seconds
        "outage-watch": OutageWatch(sessions, bus).run,
        # the workload reports (issue 15 §4): finished intervals and days into the report
        # tables every minute, each counted once (a high-water mark)
        "reports": lambda: aggregate_every(sessions, tz=tz,
                                           service_level_s=acd_config(settings).service_level_s),
    }
    if transcriber is not None:
        # the sweep at start (a dead process's jobs back to the queue), then the workers
        tasks["transcription"] = transcriber.run
    if outbound is not None:
        # the outbound engine: settles what a previous process left open, then places calls
        tasks["outbound"] = outbound_loop
        tasks["outbound-events"] = outbound.consume
    if notices is not None and outbound is not None and settings.outbound.outage_notice_days:
        # a pass whenever an outage notice changed, and every minute: jobs made, moved, cancelled
        notice_task = notices
        tasks["outage-notices"] = lambda: notice_task.run(lambda: datetime.now(UTC))
    if settings.memory.trim_every_s > 0 and trim.available():
        # glibc's kept pages back to the kernel on a timer (hotline/trim.py); the watchdog
        # does the same for Asterisk
        tasks["malloc-trim"] = self_trims.run
    every = snapshot_every(os.environ)
    if every is not None:  # a soak's diagnostics (hotline/diagnostics.py), off by default
        tasks["tracemalloc"] = lambda: tracemalloc_snapshots(settings.state_dir / "tracemalloc",
                                                             every)
    if speech is not None:
        tasks["audiosocket"] = speech.serve_forever
        # each model is loaded once the flows in service use its language
        tasks["speech-models"] = lambda: speech.keep_warm(
            lambda: registry.current.speech_languages())
    # FastAGI (and the speech listener) open last, once all else is built: the tasks (the AMI
    # login and resync first) start at once after it, so Asterisk's truth is in the ACD within
    # moments of the IVR taking callers again. Built before it, the web app alone held the AMI
    # login 0.4 s here, 2 s on a busy CI machine, after a restart (the CTI kill -9 fault)
    await fastagi.start()
    if speech is not None:
        await speech.start()  # a taken port is fatal here, at startup
    return Daemon(settings=settings, services=services, tasks=tasks, db_engine=db_engine,
                  status_path=spath,
                  parts={"acd": acd, "ami": ami, "bus": bus, "fastagi": fastagi,
                         "durable": durable,
                         "registry": registry, "recorder": recorder, "supervision": supervision,
                         "transcription": transcriber, "outbound": outbound,
                         "surveys": surveys, "holds": holds,
                         "commands": commands, "web": web_app})
