"""The staff watch (issue 15 §1): what an admin changed about a logged-in agent (the console,
`hotline staff`, any writer of the agents table) reaches the live ACD within one period,
without a restart. The console also tells the ACD at once; this catches every other writer.

Every few seconds: read the skills of the agents the ACD has logged in (one query), and
- submit acd AgentSkills for each whose skills differ from the ACD's: the ACD applies it from
  the agent's next offer (a ringing or connected call goes on);
- sign out of the ACD an agent whose account is disabled (or gone), once they are off any call
  (SupervisorForce logged_out, reason `disabled`): their web session already ended with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from acd.engine import AgentSkills, SupervisorForce
from acd.model import AgentState

if TYPE_CHECKING:
    from callcenter.acd_service import AcdView

log = logging.getLogger(__name__)

WATCH_EVERY_S = 3.0

# agent id -> their stored skills, or None: disabled (an id with no account: absent)
SkillsOf = Callable[[Iterable[str]], Mapping[str, Mapping[str, int] | None]]


class Acd(Protocol):
    @property
    def view(self) -> AcdView: ...
    def submit(self, item: Any) -> bool: ...


DISABLED = "disabled"


def changed(view: AcdView, stored: Mapping[str, Mapping[str, int] | None]
            ) -> list[AgentSkills | SupervisorForce]:
    """The inputs that bring the ACD's logged-in agents to what is stored (pure). Only the
    agents in `stored` are judged: one who logged in after the query is not in it, and is left
    alone until the next tick (never taken for disabled)."""
    out: list[AgentSkills | SupervisorForce] = []
    for agent_id, agent in sorted(view.agents.items()):
        if agent.state is AgentState.LOGGED_OUT or agent_id not in stored:
            continue
        want = stored[agent_id]
        if want is None:
            if agent.call_id is None:  # never cut a call: signed out after it
                out.append(SupervisorForce(agent_id=agent_id, state=AgentState.LOGGED_OUT,
                                           reason=DISABLED))
        elif dict(agent.skills) != dict(want):
            out.append(AgentSkills(agent_id=agent_id, skills=dict(want)))
    return out


class StaffWatch:
    def __init__(self, acd: Acd, skills_of: SkillsOf, every_s: float = WATCH_EVERY_S) -> None:
        self.acd, self.skills_of, self.every_s = acd, skills_of, every_s
        self.applied = 0  # inputs submitted

    async def tick(self) -> None:
        logged_in = [a for a, ag in self.acd.view.agents.items()
                     if ag.state is not AgentState.LOGGED_OUT]
        if not logged_in:
            return
        stored = await asyncio.to_thread(self.skills_of, logged_in)
        for inp in changed(self.acd.view, stored):
            if self.acd.submit(inp):
                self.applied += 1
                if isinstance(inp, AgentSkills):
                    log.info("skills of %s changed: %s", inp.agent_id, dict(inp.skills))
                else:
                    log.info("%s is disabled: signed out of the ACD", inp.agent_id)

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # the database away, say: try again next period
                log.exception("staff watch: tick failed")
            await asyncio.sleep(self.every_s)
