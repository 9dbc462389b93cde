"""The CTI daemon's composition root: settings -> adapters -> core -> one TaskGroup."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from acd.model import ANY, AcdConfig
from agent_desktop.api.queues import wallboard_doc
from agent_desktop.app import create_app
from agent_desktop.context import WebContext
from agent_desktop.server import WebBindError, bind
from agent_desktop.server import serve as serve_web
from asterisk_conf.render import phone_names
from callcenter.acd_service import AcdService
from callcenter.agent_commands import AgentCommands
from callcenter.call_control import CallControl
from callcenter.ivr_services import DbIvrServices
from config.settings import Settings, load_settings
from cti.ami.client import AmiClient
from cti.ami.feed import AcdFeed
from cti.ami.pbx import AmiPbx
from cti.db.acd_store import DbAcdStore
from cti.db.migrate import upgrade
from cti.db.session import make_engine, make_session_factory
from cti.mqtt import MqttBus
from cti.mqtt.outbox import PublishAfterCommit
from ivr.agi_session import IvrContext, make_ivr_handler
from ivr.engine import Engine
from ivr.fastagi import FastAgiServer
from ivr.registry import FlowRegistry
from ivr.schema import FlowValidationError
from prompts.index import PromptIndex
from recorder.service import RecorderError, RecorderService, check_storage
from recorder.supervision import AcdCalls, SupervisionService
from workorders.service import WorkOrderService
from workorders.ticker import escalation_ticks

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 2.0
# who else may take a call as its wait grows (acd.routing): a fault-repair caller may be in the
# dark, so general agents after a minute and anyone after two; an English caller is better
# served by any agent after a minute than by waiting on the few English speakers
WIDENING: dict[str, tuple[tuple[float, frozenset[str] | Literal["*"]], ...]] = {
    "repair": ((60.0, frozenset({"general"})), (120.0, ANY)),
    "english": ((60.0, ANY),),
}


def status_path(settings: Settings) -> Path:
    return settings.state_dir / "cti.status.json"


def _write_status(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)


async def run(settings: Settings) -> None:
    """Start everything, fail fast on bad config, then serve until cancelled."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    sessions = make_session_factory(engine)
    prompts = PromptIndex.load(settings.prompts.cache_dir)
    registry = FlowRegistry(settings.ivr.flows_dir, settings.ivr.entry_flow, prompts.has)
    registry.load()  # an invalid flow set at startup is fatal, with file:line on stderr
    check_storage(settings.recorder.storage_dir)  # a tmpfs recordings folder is fatal
    recorder = RecorderService(settings.recorder, sessions, timezone=settings.ivr.timezone)
    tz = ZoneInfo(settings.ivr.timezone)

    ctx = IvrContext(
        engine_factory=lambda: Engine(registry.current, settings.ivr.entry_flow, tz),
        prompts=prompts,
        services=DbIvrServices(sessions, policy=settings.workorders.policy()),
        clock=lambda: datetime.now(UTC),
    )
    server = FastAgiServer({"ivr": make_ivr_handler(ctx)}, settings.fastagi.host,
                           settings.fastagi.port, settings.fastagi.backlog)
    await server.start()

    # the ACD: one writer, fed by AMI through the call tracker; events out over MQTT
    bus = MqttBus(settings.mqtt.host, settings.mqtt.port, client_id=f"hotline-cti-{os.getpid()}")
    # work orders: SLA escalations go to hotline/supervisors/alerts after their commit
    workorders = WorkOrderService(sessions, settings.workorders.policy(),
                                  outbox=PublishAfterCommit(bus))
    store = DbAcdStore(sessions)
    acd_config = AcdConfig(wrap_up_s=settings.acd.wrap_up_s,
                           widen_after_s=WIDENING,
                           # Asterisk's Dial times out first and reports RONA; the ACD's own
                           # ring timer is only the backstop for a lost event
                           ring_timeout_s=settings.acd.ring_timeout_s + 5,
                           max_queue_per_skill=settings.acd.max_queue,
                           max_queue_by_skill=dict(settings.acd.max_queue_by_skill),
                           # a callback needs a trunk to call the customer back on
                           callback_enabled=bool(settings.pbx.outbound_trunk))
    feed: AcdFeed | None = None
    supervision: SupervisionService | None = None

    async def on_ami_connected(client: AmiClient) -> None:
        assert feed is not None
        await feed.resync(client)
        if supervision is not None:
            await supervision.resync(client)

    ami = AmiClient(settings.ami.host, settings.ami.port, settings.ami.username,
                    settings.ami.secret, on_connected=on_ami_connected)
    recorder.ami = ami  # reads what Asterisk kept of recordings the CTI did not see end
    service = AcdService.create(acd_config, AmiPbx(ami, prompts), bus, store,
                                await store.load_snapshot(),
                                seats=tuple(f"seat{i:02d}"
                                            for i in range(1, settings.pbx.seats + 1)))
    feed = AcdFeed(service)
    seats = {name for name, _ext, role in phone_names(settings) if role == "seat"}
    supervisors = {name for name, _ext, role in phone_names(settings) if role == "supervisor"}
    supervision = SupervisionService(ami, bus, sessions, AcdCalls(service), supervisors)
    await supervision.close_stale()  # sessions a previous CTI left open end on record
    commands = AgentCommands(service, bus, store, seats, supervision=supervision)
    bus.subscribe("hotline/cmd/+/+", commands.handle)
    # the agent desktop (agent_desktop/): web API and /ws push, on this loop; a taken port is
    # fatal here, at startup
    web_ctx = WebContext(settings=settings, sessions=sessions, acd=service, pbx=ami, bus=bus,
                         agent_commands=commands, calls=CallControl(ami, service, feed.tracker),
                         recorder=recorder, supervision=supervision, workorders=workorders)
    web_app = create_app(web_ctx)
    web_sock = bind(settings.web)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    spath = status_path(settings)

    async def report() -> None:
        while True:
            last = registry.last
            _write_status(spath, {
                "pid": os.getpid(), "started_at": started,
                "fastagi": f"{settings.fastagi.host}:{settings.fastagi.port}",
                "active_ivr_sessions": server.active,
                "web": f"http://{settings.web.host}:{settings.web.port}/",
                "flows": {"version": registry.version, "last_reload_ok": last.ok,
                          "last_reload_at": last.at, "errors": list(last.errors)},
            })
            await asyncio.sleep(STATUS_INTERVAL_S)

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(server.serve_forever(), name="fastagi")
            tg.create_task(registry.watch(), name="flow-watch")
            tg.create_task(report(), name="status")
            tg.create_task(bus.run(), name="mqtt-bus")
            tg.create_task(ami.run(), name="ami")
            tg.create_task(escalation_ticks(workorders.escalation_tick,
                                            settings.workorders.tick_interval_s),
                           name="workorder-escalation")
            tg.create_task(feed.consume(recorder.tap(supervision.tap(ami.events()))),
                           name="ami-events")
            tg.create_task(recorder.run(), name="recorder-index")
            tg.create_task(recorder.at_start(), name="recorder-reconcile")
            tg.create_task(recorder.daily_purge(), name="recorder-purge")
            tg.create_task(service.run(), name="acd")
            tg.create_task(supervision.run(), name="supervision")
            tg.create_task(supervision.ticker(), name="supervision-tick")
            tg.create_task(service.ticker(), name="acd-tick")
            tg.create_task(service.heartbeat(), name="cti-heartbeat")
            tg.create_task(service.snapshots(), name="acd-snapshots")
            tg.create_task(serve_web(web_app, web_sock), name="web")
            tg.create_task(web_app.state.push.wallboard_loop(lambda: wallboard_doc(web_ctx)),
                           name="web-wallboard")
    finally:
        spath.unlink(missing_ok=True)
        engine.dispose()


def main() -> None:
    logging.basicConfig(level=os.environ.get("HOTLINE_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    loop = asyncio.new_event_loop()
    task = loop.create_task(run(settings), name="cti")
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        loop.run_until_complete(task)
    except asyncio.CancelledError:
        log.info("CTI stopped")
    except FlowValidationError as exc:
        print(f"hotline: invalid IVR flows, not starting:\n{exc}", file=sys.stderr)
        sys.exit(2)
    except RecorderError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        sys.exit(2)
    except WebBindError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        sys.exit(2)
    finally:
        loop.close()


if __name__ == "__main__":
    main()
