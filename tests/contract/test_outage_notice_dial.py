"""An outage notice's dial (issue 14 §4) through the outbound service against a fake AMI and a
migrated SQLite database: the Originate goes into hotline-outage-notice carrying the notice as
prompt files from the prompt index (never text), cut in parts under AMI's line limit; the
dialplan's result (heard to the end or not, repeats) lands on the job, a forged field does not;
a notice whose outage was closed before its dial is cancelled, never dialled."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.outage_notices import PURPOSE, OutageNotices, missing_prompts, parts
from callcenter.outage_service import OutageService, Who
from callcenter.outbound_service import OutboundConfig, OutboundService
from cti.db import outbound as store
from cti.db.migrate import upgrade
from cti.db.models import Account, AccountPhone, Area, Customer
from cti.db.models_outbound import OutboundJob
from cti.db.outages import NoticeDraft
from cti.db.session import make_engine, make_session_factory
from outages.notice_calls import speech
from outages.scope import Cause
from outbound.jobs import State
from outbound.pacing import Capacity
from outbound.window import SHANGHAI
from prompts.catalog import load_catalog
from prompts.index import ASTERISK_PROMPT_DIR, PromptIndex
from tests.support.fakes import Clock, FakeAmi

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=SHANGHAI)
CATALOG = Path(__file__).resolve().parents[2] / "prompts" / "catalog"
SUP = Who("S01", "supervisor")


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def _index(tmp_path: Path) -> PromptIndex:
    """An index of every catalog prompt, keyed as the build keys them (hex file stems)."""
    catalog = load_catalog(CATALOG)
    prompts: dict[str, dict[str, str]] = {"zh": {}, "en": {}}
    for pid, lang, text in catalog.entries():
        prompts.setdefault(lang, {})[pid] = hashlib.sha1(
            f"{lang}:{text}".encode()).hexdigest()[:20]
    return PromptIndex(cache_dir=tmp_path, voices={}, rate=8000, prompts=prompts)


def _town(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as s:
        area = Area(code="T1", name="测试区", kind="urban")
        s.add(area)
        s.flush()
        c = Customer(name="测试医院", important=True, important_kind="hospital")
        s.add(c)
        s.flush()
        a = Account(account_no="3700001234", customer_id=c.id, service_address="测试路1号",
                    area_id=area.id)
        s.add(a)
        s.flush()
        s.add(AccountPhone(account_id=a.id, phone="13800138000"))
        return area.id


class World:
    def __init__(self, sessions: sessionmaker[Session], tmp_path: Path) -> None:
        self.sessions = sessions
        self.ami = FakeAmi()
        self.clock = Clock(T0)
        self.notices = OutageNotices(sessions, (7, 1), prompts=_index(tmp_path), tz=SHANGHAI)
        self.service = OutboundService(
            sessions, self.ami, OutboundConfig(trunk="carrier-out", ring_s=20),
            {PURPOSE.name: PURPOSE}, capacity=lambda: Capacity(active=0, channels_free=30),
            paused=lambda: False, clock=self.clock,
            results={PURPOSE.name: self.notices.on_result},
            variables={PURPOSE.name: self.notices.variables})
        assert asyncio.run(self.service.recover([])) == 0
        self.area = _town(sessions)
        self.outage = OutageService(sessions).publish(NoticeDraft(
            Cause.PLANNED, T0 + timedelta(hours=20), areas=frozenset({self.area}),
            schedule_end_at=T0 + timedelta(hours=29)), SUP, T0)
        assert self.notices.sync(T0)["created"] == 1
        with sessions() as s:
            self.job = int(s.scalars(select(OutboundJob.id)).one())

    def tick(self) -> list[int]:
        return asyncio.run(self.service.tick())

    def event(self, **headers: str) -> None:
        asyncio.run(self.service.on_ami_event(headers))


def test_the_dial_carries_the_notice_as_prompt_files_and_its_result_lands_on_the_job(
        sessions: sessionmaker[Session], tmp_path: Path) -> None:
    w = World(sessions, tmp_path)
    [attempt] = w.tick()
    [orig] = w.ami.named("Originate")
    assert orig["Context"] == "hotline-outage-notice"
    assert orig["Channel"] == "PJSIP/13800138000@carrier-out"
    variables = dict(v.split("=", 1) for v in orig["Variable"])
    assert variables["HOTLINE_LANG"] == "zh"
    notice = [k for k in sorted(variables) if k.startswith("HOTLINE_NOTICE_")
              and k[-1].isdigit()]
    assert len(notice) >= 2          # some 30 files: cut in parts ...
    assert all(len(f"Variable: {k}={variables[k]}") < 1024 for k in variables)  # ... for AMI
    files = "".join(variables[k] for k in notice).split("&")
    index = _index(tmp_path)
    ids = speech(Cause.PLANNED, T0 + timedelta(hours=20), T0 + timedelta(hours=29),
                 "3700001234", "zh", T0, SHANGHAI)
    assert files == [index.asterisk_path(p, "zh") for p in ids]
    assert all(f.startswith(f"{ASTERISK_PROMPT_DIR}/") for f in files)
    assert variables["HOTLINE_NOTICE_REPEAT"] == index.asterisk_path("notice.repeat", "zh")
    assert variables["HOTLINE_NOTICE_BYE"] == index.asterisk_path("notice.bye", "zh")

    chan = orig["ChannelId"]
    w.event(Event="OriginateResponse", Response="Success", Reason="4", Uniqueid=chan)
    # a field out of shape is left out; the result counts only from the attempt's channel
    w.event(Event="UserEvent", UserEvent="HotlineOutboundResult", Attempt=str(attempt),
            Key="none", Heard="1", Repeats="2\r\nEvent: x", Uniqueid=chan)
    with sessions() as s:
        assert s.get(OutboundJob, w.job).result == {"Key": "none", "Heard": "1"}  # type: ignore[union-attr]
    w.event(Event="UserEvent", UserEvent="HotlineOutboundResult", Attempt=str(attempt),
            Key="none", Heard="1", Repeats="2", Uniqueid=chan)
    w.event(Event="Hangup", Uniqueid=chan, Cause="16")
    with sessions() as s:
        job = store.get(s, w.job)
        row = s.get(OutboundJob, w.job)
    assert job is not None and job.state is State.DONE
    assert row is not None and row.result == {"Key": "none", "Heard": "1", "Repeats": "2"}


def test_a_notice_whose_outage_closed_before_its_dial_is_cancelled_not_dialled(
        sessions: sessionmaker[Session], tmp_path: Path) -> None:
    w = World(sessions, tmp_path)
    OutageService(sessions).close(w.outage, SUP, T0)
    assert w.tick() == []
    assert w.ami.named("Originate") == []
    with sessions() as s:
        job = store.get(s, w.job)
    assert job is not None and job.state is State.CANCELLED


def test_a_prompt_index_without_the_notice_phrases_is_named(tmp_path: Path) -> None:
    index = _index(tmp_path)
    assert missing_prompts(index) == []
    stale = PromptIndex(cache_dir=tmp_path, voices={}, rate=8000, prompts={
        lang: {p: k for p, k in ids.items() if p != "notice.intro"}
        for lang, ids in index.prompts.items()})
    assert missing_prompts(stale) == ["notice.intro/en", "notice.intro/zh"]


def test_parts_join_back_to_the_list_and_stay_under_the_line_limit() -> None:
    files = [f"{ASTERISK_PROMPT_DIR}/{i:020x}" for i in range(60)]
    cut = parts(files)
    assert list(cut) == [f"HOTLINE_NOTICE_{i}" for i in range(1, len(cut) + 1)]
    assert "".join(cut.values()).split("&") == files
    assert all(len(v) <= 900 for v in cut.values())
    assert parts(files[:1]) == {"HOTLINE_NOTICE_1": files[0]}
    with pytest.raises(ValueError):
        parts(files * 2)
