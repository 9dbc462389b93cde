"""What the web app gets from its host: settings, the database, a clock, live CTI services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from config.settings import Settings
from cti.db.web_sessions import Sessions


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class WebContext:
    """Routers read it as request.app.state.ctx.

    The live services are None when not running (tests without Asterisk): a router that needs
    one answers 409 ("... not running"), never 500.
    """

    settings: Settings
    # the database's session factory: handed to the cti.db functions the routes call, never
    # opened here (tests/unit/test_architecture.py)
    sessions: Sessions
    clock: Callable[[], datetime] = utc_now
    acd: Any = None            # callcenter.acd_service.AcdService
    pbx: Any = None            # AMI actions: cti.ami.client.AmiClient (.action(...))
    bus: Any = None            # cti.mqtt.MqttBus: publish(topic, payload) / subscribe
    agent_commands: Any = None  # callcenter.agent_commands.AgentCommands (the MQTT login path)
    calls: Any = None          # callcenter.call_control.CallControl: hold, transfer, hang up
    recorder: Any = None
    supervision: Any = None
    workorders: Any = None
    outages: Any = None        # callcenter.outage_service.OutageService
    keyword_alerts: Any = None  # callcenter.keyword_alerts.KeywordAlertService
    transcription: Any = None  # callcenter.transcription.TranscriptionService (the daemon's)
    flows: Any = None          # ivr.registry.FlowRegistry: the flows in service, its reloads
    extra: dict[str, Any] = field(default_factory=dict)
