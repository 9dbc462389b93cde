"""Planned-outage notices by phone (issue 14 §4) through the outbound engine.

- `sync`: for each planned outage published and not begun, one `outage_notice` job per phone of
  each affected important customer and per lead ([outbound] outage_notice_days, 7 and 1 days
  before the start by default), due at its lead and expiring at the next; an outage closed,
  cancelled, begun or changed has its scheduled jobs cancelled or moved (outages.notice_calls).
  Idempotent: the CTI runs it whenever the notices' revision moved, and every minute for time
  passing; a restart changes nothing. The engine itself keeps the call window, pacing, the
  do-not-call list, retries and the deadline.
- `variables`: at the dial, what the dialplan (hotline-outage-notice) plays, as prompt files the
  CTI chose from the built prompt index: the notice (date, time window, the account's area),
  the repeat hint, goodbye. Nothing from the database reaches the dialplan as text.
- `on_result`: the dialplan's HotlineOutboundResult (heard to the end or hung up early, how
  many repeats) is already on the job's result; it is logged here per customer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from cti.db import notice_calls as store
from cti.db import outages as outage_store
from outages.notice_calls import PHRASES, by_outage, check_lead_days, reconcile, speech, wanted
from outbound.jobs import Job, Purpose
from prompts.index import ASTERISK_PROMPT_DIR, BUILD_HINT, PromptIndex

log = logging.getLogger(__name__)

PURPOSE = Purpose(store.PURPOSE, "hotline-outage-notice", priority=5)
SYNC_EVERY_S = 60.0   # time passing (a lead's expiry) without any change to the notices
CHECK_EVERY_S = 2.0   # the notices' revision is read this often (one primary-key read)
PART_CHARS = 900      # one channel variable's part of the notice (AMI's line limit: 1024)
MAX_PARTS = 4         # the dialplan joins HOTLINE_NOTICE_1..4


def missing_prompts(prompts: PromptIndex) -> list[str]:
    """`id/lang` of every notice phrase (and the pieces' languages) the index lacks."""
    return sorted(f"{pid}/{lang}" for pid, texts in PHRASES.items() for lang in texts
                  if not prompts.has(pid, lang))


def parts(files: Sequence[str]) -> dict[str, str]:
    """The notice's files as HOTLINE_NOTICE_1..MAX_PARTS: AMI refuses a header line longer than
    1024 bytes, and a notice is some 30 files, so the '&'-joined list is cut into parts that the
    dialplan joins back as they are (every part after the first starts with '&')."""
    out: dict[str, str] = {}
    current = ""
    for f in files:
        piece = f if not out and not current else f"&{f}"
        if current and len(current) + len(piece) > PART_CHARS:
            out[f"HOTLINE_NOTICE_{len(out) + 1}"] = current
            current = piece if piece.startswith("&") else f"&{piece}"
        else:
            current += piece
    if current:
        out[f"HOTLINE_NOTICE_{len(out) + 1}"] = current
    if len(out) > MAX_PARTS:
        raise ValueError(f"a notice of {len(files)} files is too long to pass")
    return out


class NoticeGone(LookupError):
    """The notice job's outage or account is gone, or the outage is closed: nothing to say."""


class OutageNotices:
    def __init__(self, sessions: sessionmaker[Session], lead_days: Sequence[int], *,
                 prompts: PromptIndex | None = None, tz: tzinfo | None = None) -> None:
        self.sessions = sessions
        self.lead_days = check_lead_days(lead_days)
        self.prompts = prompts
        self.tz = tz
        if prompts is not None and (missing := missing_prompts(prompts)):
            # every notice would fail at its dial (and be tried again each tick) until built
            log.error("outage notices cannot be said: %s not in the prompt index; %s",
                      ", ".join(missing), BUILD_HINT)

    # ------------------------------------------------------------------------- scheduling

    def sync(self, now: datetime, *, outage_ids: set[int] | None = None) -> dict[str, int]:
        """One pass; the counts of jobs created, moved and cancelled. `outage_ids`: only these
        outages (a test's own), else every planned outage."""
        with self.sessions.begin() as s:
            outages = [o for o in store.planned_outages(s, now)
                       if outage_ids is None or o.id in outage_ids]
            customers = store.important_customers(s) if outages else []
            have = by_outage(h for h in store.notice_jobs(s, [o.id for o in outages])
                             if outage_ids is None or h.key[0] in outage_ids)
            counts = {"created": 0, "moved": 0, "cancelled": 0}
            known = {o.id for o in outages}
            for o in outages:
                changes = reconcile(wanted(o, customers, self.lead_days, now), have.get(o.id, []))
                if changes:
                    counts["created"] += store.apply(s, changes, now)
                    counts["moved"] += len(changes.move)
                    counts["cancelled"] += len(changes.cancel)
            # outages no longer planned and ahead (closed, cancelled, begun, not planned): their
            # scheduled calls are cancelled
            for oid, jobs in have.items():
                if oid in known:
                    continue
                changes = reconcile([], jobs)
                if changes:
                    store.apply(s, changes, now)
                    counts["cancelled"] += len(changes.cancel)
        if any(counts.values()):
            log.info("outage notice calls: %s", counts)
        return counts

    async def run(self, clock: Callable[[], datetime]) -> None:
        """The named task: a pass whenever the notices' revision moved, and every minute."""
        seen: int | None = None
        last = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                version = await asyncio.to_thread(self._version)
                if version != seen or loop.time() - last >= SYNC_EVERY_S:
                    await asyncio.to_thread(self.sync, clock())
                    seen, last = version, loop.time()
            except Exception:  # the database away: the next pass tries again
                log.exception("outage notice scheduling failed")
            await asyncio.sleep(CHECK_EVERY_S)

    def _version(self) -> int:
        with self.sessions() as s:
            return outage_store.version(s)

    # ------------------------------------------------------------------------- the dial

    def prompt_ids(self, job_id: int, now: datetime) -> tuple[str, list[str]]:
        """(language, prompt ids) of a notice job's message, from the outage as it is now."""
        with self.sessions() as s:
            found = store.notice_of_job(s, job_id)
            if found is None:
                raise NoticeGone(f"job {job_id} is not an outage notice")
            outage_id, account_no, lang = found
            try:
                row = outage_store.get_notice(s, outage_id)
            except outage_store.NoticeNotFound:
                raise NoticeGone(f"outage {outage_id} is gone") from None
        if row.restored_at is not None:
            raise NoticeGone(f"outage {outage_id} is closed")
        n = row.notice
        lang = lang if lang in ("zh", "en") else "zh"
        return lang, speech(n.cause, n.start_at, n.restore_at, account_no, lang, now, self.tz)

    def _file(self, prompt_id: str, lang: str) -> str:
        assert self.prompts is not None
        path = self.prompts.asterisk_path(prompt_id, lang)
        # the index's keys are the build's own file stems; checked again, as they go into a
        # channel variable the dialplan plays
        stem = path.removeprefix(f"{ASTERISK_PROMPT_DIR}/")
        if not stem.isascii() or not stem.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"prompt file {path!r} is not one of the index's")
        return path

    async def variables(self, job: Job, now: datetime) -> dict[str, str] | None:
        """The channel variables of a notice call's Originate: HOTLINE_LANG, the files of the
        notice (HOTLINE_NOTICE_1.., see `parts`), the repeat hint and goodbye. None when there
        is nothing to say any more (the outage closed or gone): the engine cancels the job."""
        try:
            lang, ids = await asyncio.to_thread(self.prompt_ids, job.id, now)
        except NoticeGone as exc:
            log.info("outage notice job %s: %s; not called", job.id, exc)
            return None
        if self.prompts is None:
            raise RuntimeError("no prompt index: outage notices cannot be said")
        files = [self._file(p, lang) for p in ids]
        out = {"HOTLINE_LANG": lang,
               "HOTLINE_NOTICE_REPEAT": self._file("notice.repeat", lang),
               "HOTLINE_NOTICE_BYE": self._file("notice.bye", lang)}
        out.update(parts(files))
        return out


    # ------------------------------------------------------------------------- the outcome

    async def on_result(self, job: Job, result: dict[str, str], now: datetime) -> None:
        heard = result.get("Heard")
        log.info("outage notice job %s to %s: %s, %s repeat(s)", job.id, job.number,
                 "heard to the end" if heard == "1" else "hung up before the end",
                 result.get("Repeats", "0"))



def notice_calls(sessions: sessionmaker[Session], outage_id: int) -> list[dict[str, Any]]:
    """An outage's notice calls and their outcomes, for the console (closed outages too);
    cti.db.outages.NoticeNotFound when there is no such outage."""
    with sessions() as s:
        outage_store.get_notice(s, outage_id)
        return store.calls_of_outage(s, outage_id)
