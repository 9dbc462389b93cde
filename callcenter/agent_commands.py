"""Agent and supervisor commands over MQTT: login with a password, then act with a session token.

Topics (see docs/mqtt.md):
  hotline/cmd/agents/{agent_id}   {"action": "login", "seat": "seat07", "password": "...",
                                   "request_id": "..."}
                                  {"action": "ready" | "not_ready" | "wrap_up" | "logout",
                                   "token": "...", "reason": "break", "request_id": "..."}
  hotline/cmd/supervisors/{id}    {"action": "login", "password": "..."}
                                  {"action": "force", "token": "...", "agent_id": "A001",
                                   "state": "not_ready" | "ready" | "logged_out", "reason": "..."}
                                  {"action": "listen" | "whisper" | "barge", "token": "...",
                                   "call_id": "1751333405.42"}  (rings the supervisor's phone)
                                  {"action": "spy_mode", "token": "...", "session_id": "...",
                                   "mode": "listen" | "whisper" | "barge"}
                                  {"action": "spy_stop", "token": "...", "session_id": "..."}
Replies go to hotline/agents/{agent_id}/reply (or hotline/supervisors/{id}/reply).

The browser desktop (issue 5) replaces this transport with an authenticated web API; the
service layer underneath (AcdService + Command) stays the same. Roles are checked here, on the
server: only a supervisor token can force another agent's state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from acd import engine as acd
from acd.model import AgentState
from callcenter.acd_service import AcdService, Bus, Command, Principal
from cti.notifier import Notifier, parse_command_topic

log = logging.getLogger(__name__)
ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
SEAT = re.compile(r"^seat\d{2,3}$")
SUPERVISION_ACTIONS = frozenset({"listen", "whisper", "barge", "spy_mode", "spy_stop"})
LOGIN_TIMEOUT_S = 5.0


class Directory(Protocol):
    """Who may log in (the database in production)."""

    async def verify(self, user_id: str, password: str) -> Principal | None: ...


class AgentCommands:
    """Replies go out through the ACD's notifier (`bus` is kept for the callers that pass it);
    what the ACD's state says is read from its published view."""

    def __init__(self, service: AcdService, bus: Bus | Notifier | None, directory: Directory,
                 seats: set[str], supervision: Any = None) -> None:
        self.service = service
        self.supervision = supervision  # recorder.supervision.SupervisionService
        self.notifier = bus if isinstance(bus, Notifier) else service.notifier
        self.directory = directory
        self.seats = seats
        self.tokens: dict[str, Principal] = {}  # token -> who

    def subscribe(self, bus: Any) -> None:
        """Listen on the command topics (hotline/cmd/{agents|supervisors}/{id})."""
        self.notifier.subscribe_commands(bus, self.handle)

    def _reply_fn(self, kind: str, user_id: str, request_id: Any
                  ) -> Callable[[dict[str, Any]], Awaitable[None]]:
        async def reply(doc: dict[str, Any]) -> None:
            self.notifier.reply(kind, user_id, {**doc, "request_id": request_id})
        return reply

    async def handle(self, topic: str, payload: bytes) -> None:
        found = parse_command_topic(topic)
        if found is None or not ID.match(found[1]):
            return
        kind, user_id = found
        try:
            msg = json.loads(payload.decode("utf-8", errors="replace"))
            if not isinstance(msg, dict):
                raise ValueError("not an object")
        except ValueError:
            return await self._reply_fn(kind, user_id, None)({"ok": False, "error": "bad_json"})
        reply = self._reply_fn(kind, user_id, msg.get("request_id"))
        action = msg.get("action")
        if action == "login":
            return await self._login(kind, user_id, msg, reply)
        who = self.tokens.get(str(msg.get("token", "")))
        if who is None or who.user_id != user_id:
            return await reply({"ok": False, "error": "not_logged_in"})
        if action in SUPERVISION_ACTIONS:
            # on either topic: the service checks the role, and audits a refusal too
            return await self._supervise(who, str(action), msg, reply)
        if kind == "supervisors":
            if who.role not in ("supervisor", "admin"):
                return await reply({"ok": False, "error": "forbidden"})
            if action != "force" or not ID.match(str(msg.get("agent_id", ""))):
                return await reply({"ok": False, "error": "bad_command"})
            try:
                state = AgentState(str(msg.get("state")))
            except ValueError:
                return await reply({"ok": False, "error": "bad_state"})
            inp: acd.Input = acd.SupervisorForce(agent_id=str(msg["agent_id"]), state=state,
                                                 reason=str(msg.get("reason") or "supervisor"))
            self.service.submit(Command(inp, actor=who.user_id, reply=reply))
            return None
        if action == "ready":
            inp = acd.AgentReady(agent_id=user_id)
        elif action == "not_ready":
            inp = acd.AgentNotReady(agent_id=user_id, reason=str(msg.get("reason") or "break"))
        elif action == "wrap_up":
            inp = acd.AgentWrapUp(agent_id=user_id)
        elif action == "logout":
            inp = acd.AgentLogout(agent_id=user_id)
            self.tokens = {t: p for t, p in self.tokens.items() if p.user_id != user_id}
        else:
            return await reply({"ok": False, "error": "bad_command"})
        self.service.submit(Command(inp, actor=user_id, reply=reply))
        return None

    async def _supervise(self, who: Principal, action: str, msg: dict[str, Any],
                         reply: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        from recorder.supervision import SupervisionError
        from recorder.supervision_policy import Actor

        if self.supervision is None:
            return await reply({"ok": False, "error": "supervision_unavailable"})
        actor = Actor(who.user_id, who.role)
        try:
            if action in ("listen", "whisper", "barge"):
                view = await self.supervision.start(actor, str(msg.get("call_id", "")), action,
                                                    via="mqtt")
            elif action == "spy_mode":
                view = await self.supervision.set_mode(actor, str(msg.get("session_id", "")),
                                                       msg.get("mode"))
            else:
                view = await self.supervision.stop(actor, str(msg.get("session_id", "")))
        except SupervisionError as exc:
            return await reply({"ok": False, "error": exc.reason,
                                "session_id": exc.session_id})
        return await reply({"ok": True, "session": view})

    async def _login(self, kind: str, user_id: str, msg: dict[str, Any],
                     reply: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        who = await self.directory.verify(user_id, str(msg.get("password", "")))
        if who is None:
            log.warning("failed login for %s", user_id)
            return await reply({"ok": False, "error": "bad_credentials"})
        if kind == "supervisors" and who.role not in ("supervisor", "admin"):
            return await reply({"ok": False, "error": "forbidden"})
        token = secrets.token_urlsafe(24)
        if kind == "agents":
            doc = await self.seat_login(who, str(msg.get("seat", "")))
            if doc.get("ok"):
                self.tokens[token] = who
                doc = {**doc, "token": token}
            return await reply(doc)
        self.tokens[token] = who
        return await reply({"ok": True, "token": token})

    async def seat_login(self, who: Principal, seat: str,
                         timeout: float = LOGIN_TIMEOUT_S) -> dict[str, Any]:
        """Log a verified agent in at seat through the ACD's writer (MQTT and web login alike).

        {"ok": True} (with "reattached" when the agent is already at that seat: a desktop
        reconnecting, or the CTI restarted), or {"ok": False, "error": ...}.
        """
        if not SEAT.match(seat) or seat not in self.seats:
            return {"ok": False, "error": "bad_seat"}
        current = self.service.view.agents.get(who.user_id)
        if current is not None and current.state != AgentState.LOGGED_OUT:
            if current.seat != seat:
                return {"ok": False, "error": "logged_in_elsewhere", "seat": current.seat}
            return {"ok": True, "reattached": True}
        done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        async def after(doc: dict[str, Any]) -> None:
            if not done.done():
                done.set_result(doc)

        inp = acd.AgentLogin(agent_id=who.user_id, seat=seat, skills=dict(who.skills))
        if not self.service.submit(Command(inp, actor=who.user_id, reply=after)):
            return {"ok": False, "error": "busy"}
        try:
            async with asyncio.timeout(timeout):
                return await done
        except TimeoutError:
            log.error("login of %s at %s: no answer from the ACD in %.0f s", who.user_id, seat,
                      timeout)
            return {"ok": False, "error": "timeout"}
