"""Who a command on the MQTT bus comes from, and the audit trail of MQTT logins and forces.

On the hotline's broker (asterisk_conf/mosquitto.py) only the staff member A001's credential may
write hotline/cmd/agents/A001, so the topic's id *is* the sender: no password or token travels
on the bus. What is left to the database: is the id an active staff member, with which role;
MQTT logins go through the web logins' limiter (cti/db/login_limits.py, per account), and
logins and supervisor forces are written to audit_log (`mqtt.login`, `agent.force_state`,
detail `via: mqtt`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from callcenter.acd_service import Principal
from cti.db import agents as db_agents
from cti.db import login_limits
from cti.db.models_recordings import AuditLog

MQTT_ADDRESS = "mqtt"  # the limiter's address for ids that name no account (no IP on the bus)


@dataclass(frozen=True)
class LoginAdmission:
    """wait_s > 0: rate-limited (try again then). Otherwise who (None: no such active
    account) and the limiter's key, to forgive or leave counted."""

    user_id: str
    wait_s: int
    who: Principal | None
    key: str


class DbMqttDirectory:
    """callcenter.agent_commands.Directory over the database."""

    def __init__(self, sessions: sessionmaker[Session], policy: login_limits.LoginPolicy,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.sessions = sessions
        self.policy = policy
        self.clock = clock

    @staticmethod
    def _principal(s: Session, user_id: str) -> Principal | None:
        info = db_agents.get_agent(s, user_id)
        if info is None or not info.active:
            return None
        return Principal(info.agent_id, info.role, dict(info.skills))

    async def principal(self, user_id: str) -> Principal | None:
        def work() -> Principal | None:
            with self.sessions() as s:
                return self._principal(s, user_id)
        return await asyncio.to_thread(work)

    async def admit_login(self, user_id: str) -> LoginAdmission:
        """Counted first, in the transaction that decides (as web logins are); the caller then
        says how it went with finish_login."""
        def work() -> LoginAdmission:
            now = self.clock()
            with self.sessions.begin() as s:
                key = login_limits.key_for(s, user_id, MQTT_ADDRESS)
                wait = login_limits.take_attempt(s, key, now, self.policy)
                who = None if wait else self._principal(s, user_id)
                return LoginAdmission(user_id, wait, who, key)
        return await asyncio.to_thread(work)

    async def finish_login(self, admission: LoginAdmission, *, kind: str, allowed: bool,
                           credential_ok: bool, **detail: Any) -> None:
        """One audit_log row (`mqtt.login`); an account whose login was its own (credential_ok)
        is forgiven its count, as a right password is on the web."""
        def work() -> None:
            now = self.clock()
            who = admission.who
            with self.sessions.begin() as s:
                if credential_ok:
                    login_limits.forgive(s, admission.key)
                s.add(AuditLog(at=now, actor=admission.user_id[:64],
                               role=None if who is None else who.role[:16],
                               action="mqtt.login", target=f"cmd/{kind}/{admission.user_id}"[:128],
                               allowed=allowed, client_ip=None,
                               detail={"via": "mqtt", "wait_s": admission.wait_s or None,
                                       **{k: v for k, v in detail.items() if v is not None}}))
        await asyncio.to_thread(work)

    async def audit(self, who: Principal, action: str, target: str | None, allowed: bool,
                    **detail: Any) -> None:
        def work() -> None:
            with self.sessions.begin() as s:
                s.add(AuditLog(at=self.clock(), actor=who.user_id[:64], role=who.role[:16],
                               action=action[:48], target=None if target is None else target[:128],
                               allowed=allowed, client_ip=None,
                               detail={"via": "mqtt",
                                       **{k: v for k, v in detail.items() if v is not None}}))
        await asyncio.to_thread(work)


__all__ = ["MQTT_ADDRESS", "DbMqttDirectory", "LoginAdmission"]
