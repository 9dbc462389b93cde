"""Holds the flows in service and swaps in a new version only when the whole set validates."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import watchfiles

from ivr.schema import FlowSet, FlowValidationError, load_flow_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReloadStatus:
    ok: bool
    at: str
    version: int
    errors: tuple[str, ...] = ()


class FlowRegistry:
    """The current FlowSet. Sessions take a snapshot at their start and keep it to the end."""

    def __init__(self, flows_dir: Path, entry_flow: str,
                 has_prompt: Callable[[str, str], bool] | None,
                 skills: Callable[[], Collection[str]] | None = None) -> None:
        self.flows_dir = flows_dir
        self.entry_flow = entry_flow
        self.has_prompt = has_prompt
        # the configured skills, read at each load (the skills table: an admin adds them)
        self.skills = skills
        self.version = 0
        self._current: FlowSet | None = None
        self.last = ReloadStatus(ok=False, at="", version=0, errors=("not loaded",))

    @property
    def current(self) -> FlowSet:
        if self._current is None:
            raise RuntimeError("no flows loaded")
        return self._current

    def load(self) -> ReloadStatus:
        """Validate the folder; on success swap, on failure keep serving the old set."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        skills = None
        if self.skills is not None:
            try:
                skills = self.skills()
            except Exception as exc:  # the database away: the rest is still checked
                log.warning("flow check without the skills table (unreadable: %s)", exc)
        try:
            flows = load_flow_dir(self.flows_dir, self.has_prompt, required=[self.entry_flow],
                                  skills=skills)
        except FlowValidationError as exc:
            self.last = ReloadStatus(ok=False, at=now, version=self.version,
                                     errors=tuple(str(x) for x in exc.errors))
            if self._current is None:
                raise
            for err in exc.errors:
                log.error("flow change rejected, version %d keeps serving: %s", self.version, err)
            return self.last
        self._current = flows
        self.version += 1
        self.last = ReloadStatus(ok=True, at=now, version=self.version)
        log.info("flows loaded from %s: version %d (%s)", self.flows_dir, self.version,
                 ", ".join(sorted(flows.flows)))
        return self.last

    async def watch(self) -> None:
        """Reload whenever a flow file changes. Runs until cancelled."""
        async for _changes in watchfiles.awatch(self.flows_dir, debounce=200, step=50,
                                                watch_filter=lambda _c, p: p.endswith(".yaml")):
            self.load()
