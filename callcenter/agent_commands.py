"""Agent and supervisor commands over MQTT. The sender is the broker credential, never a password.

On the hotline's broker (asterisk_conf/mosquitto.py, docs/mqtt.md "Who may publish what") only
the staff member A001's own credential may write hotline/cmd/agents/A001 (S01's:
hotline/cmd/supervisors/S01), so the CTI takes the topic's id as the sender. No password and no
session token ever crosses the bus; a desktop gets its MQTT credential from the web API
(GET /api/auth/mqtt, after a web login).

Topics (see docs/mqtt.md):
  hotline/cmd/agents/{agent_id}   {"action": "login", "seat": "seat07", "request_id": "..."}
                                  {"action": "ready" | "not_ready" | "wrap_up" | "logout",
                                   "reason": "break", "request_id": "..."}
  hotline/cmd/supervisors/{id}    {"action": "login"}
                                  {"action": "force", "agent_id": "A001",
                                   "state": "not_ready" | "ready" | "logged_out", "reason": "..."}
                                  {"action": "listen" | "whisper" | "barge",
                                   "call_id": "1751333405.42"}  (rings the supervisor's phone)
                                  {"action": "spy_mode", "session_id": "...",
                                   "mode": "listen" | "whisper" | "barge"}
                                  {"action": "spy_stop", "session_id": "..."}
Replies go to hotline/agents/{agent_id}/reply (or hotline/supervisors/{id}/reply).

A `login` carrying a "password" is refused (`password_refused`) and the password is not looked
at. Logins go through the web logins' limiter (per account) and are audited (`mqtt.login`), as
are supervisor forces (`agent.force_state`, detail via=mqtt) and their refusals. A "token" field
(from the old protocol) is ignored. Roles are checked here, on the server: only a supervisor or
an admin forces another agent's state, and never someone of their own rank or above.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
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
PRINCIPAL_TTL_S = 30.0  # a role change or deactivation reaches MQTT commands within this
RANK = {"agent": 0, "supervisor": 1, "admin": 2}  # as agent_desktop/auth.py's outranks
PASSWORD_REFUSED = ("passwords never travel on the MQTT bus: log in over the web API "
                    "(POST /api/auth/login), then connect with your own MQTT credential "
                    "(GET /api/auth/mqtt) and send login without a password")


class Directory(Protocol):
    """Who the staff are, the login limiter and the audit trail (cti/db/mqtt_logins.py)."""

    async def principal(self, user_id: str) -> Principal | None: ...

    async def admit_login(self, user_id: str) -> Any: ...  # mqtt_logins.LoginAdmission

    async def finish_login(self, admission: Any, *, kind: str, allowed: bool,
                           credential_ok: bool, **detail: Any) -> None: ...

    async def audit(self, who: Principal, action: str, target: str | None, allowed: bool,
                    **detail: Any) -> None: ...


def outranks(who: Principal, target_role: str) -> bool:
    mine = RANK.get(who.role, -1)
    return mine == RANK["admin"] or mine > RANK.get(target_role, RANK["admin"])


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
        self._known: dict[str, tuple[float, Principal]] = {}  # user id -> (when, who)

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
        who = await self._who(user_id)
        if who is None:
            return await reply({"ok": False, "error": "not_logged_in"})
        if action in SUPERVISION_ACTIONS:
            # on either topic: the service checks the role, and audits a refusal too
            return await self._supervise(who, str(action), msg, reply)
        if kind == "supervisors":
            return await self._force(who, msg, reply)
        if action == "ready":
            inp: acd.Input = acd.AgentReady(agent_id=user_id)
        elif action == "not_ready":
            inp = acd.AgentNotReady(agent_id=user_id, reason=str(msg.get("reason") or "break"))
        elif action == "wrap_up":
            inp = acd.AgentWrapUp(agent_id=user_id)
        elif action == "logout":
            inp = acd.AgentLogout(agent_id=user_id)
            self._known.pop(user_id, None)
        else:
            return await reply({"ok": False, "error": "bad_command"})
        self.service.submit(Command(inp, actor=user_id, reply=reply))
        return None

    async def _who(self, user_id: str) -> Principal | None:
        """The active staff member behind a command topic (cached for PRINCIPAL_TTL_S)."""
        now = time.monotonic()
        hit = self._known.get(user_id)
        if hit is not None and now - hit[0] < PRINCIPAL_TTL_S:
            return hit[1]
        who = await self.directory.principal(user_id)
        if who is None:
            self._known.pop(user_id, None)
        else:
            self._known[user_id] = (now, who)
        return who

    async def _force(self, who: Principal, msg: dict[str, Any],
                     reply: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        """A supervisor (or admin) forces an agent's state; allowed or not, it is audited."""
        action, target = msg.get("action"), str(msg.get("agent_id", ""))
        state_raw, reason = msg.get("state"), str(msg.get("reason") or "supervisor")

        async def refuse(error: str, **detail: Any) -> None:
            await self.directory.audit(who, "agent.force_state", target[:64] or None, False,
                                       state=str(state_raw)[:32], error=error, **detail)
            await reply({"ok": False, "error": error})

        if who.role not in ("supervisor", "admin"):
            return await refuse("forbidden")
        if action != "force" or not ID.match(target):
            return await reply({"ok": False, "error": "bad_command"})
        try:
            state = AgentState(str(state_raw))
        except ValueError:
            return await refuse("bad_state")
        whom = await self._who(target)
        if whom is None:
            return await refuse("no_such_agent")
        if target != who.user_id and not outranks(who, whom.role):
            return await refuse("forbidden", target_role=whom.role)

        async def audited(doc: dict[str, Any]) -> None:
            await self.directory.audit(who, "agent.force_state", target, bool(doc.get("ok")),
                                       state=state.value, reason=reason,
                                       error=None if doc.get("ok") else doc.get("error"))
            await reply(doc)

        inp = acd.SupervisorForce(agent_id=target, state=state, reason=reason)
        if not self.service.submit(Command(inp, actor=who.user_id, reply=audited)):
            return await audited({"ok": False, "error": "busy"})
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
        """The sender is the topic's id (the broker checked its credential). Counted by the
        login limiter before anything else, and audited whatever the outcome."""
        adm = await self.directory.admit_login(user_id)

        async def done(doc: dict[str, Any], *, credential_ok: bool, **detail: Any) -> None:
            await self.directory.finish_login(adm, kind=kind, allowed=bool(doc.get("ok")),
                                              credential_ok=credential_ok,
                                              error=doc.get("error"), **detail)
            await reply(doc)

        if adm.wait_s:
            log.warning("MQTT login rate-limited user_id=%s wait=%ss", user_id, adm.wait_s)
            return await done({"ok": False, "error": "rate_limited",
                               "retry_after_s": adm.wait_s}, credential_ok=False)
        if "password" in msg:  # refused unread: never checked, logged or kept
            log.warning("MQTT login with a password refused user_id=%s", user_id)
            return await done({"ok": False, "error": "password_refused",
                               "message": PASSWORD_REFUSED}, credential_ok=False)
        who = adm.who
        if who is None:
            log.warning("MQTT login refused: no active account %s", user_id)
            return await done({"ok": False, "error": "bad_credentials"}, credential_ok=False)
        if kind == "supervisors" and who.role not in ("supervisor", "admin"):
            return await done({"ok": False, "error": "forbidden"}, credential_ok=False)
        self._known[user_id] = (time.monotonic(), who)
        if kind == "agents":
            seat = str(msg.get("seat", ""))
            doc = await self.seat_login(who, seat)
            return await done(doc, credential_ok=True, seat=seat[:16])
        return await done({"ok": True}, credential_ok=True)

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
