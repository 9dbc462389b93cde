"""SupervisionService with fakes at the AMI and bus ports and a real database (both backends):
the AMI actions it sends, the audit trail it writes, refusals, and channels it must hang up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cti.db import supervision as db
from cti.db.models_supervision import SupervisionSession
from cti.db.recorder_store import DbSupervisionAudit
from cti.notifier import Notifier
from recorder.supervision import SupervisionError, SupervisionService
from recorder.supervision_policy import Actor, LiveCall
from tests.support.fakes import Clock, FakeAmi, FakeBus, LiveCalls

CALL = LiveCall("1751333405.42", "connected", "A001", "seat07")
SUP = Actor("S01", "supervisor")


# every reading of the service's clock is a second later than the one before
START = datetime(2026, 9, 21, 14, 13, 21, tzinfo=UTC)


@pytest.fixture
def svc(session_factory: sessionmaker[Session]) -> tuple[SupervisionService, FakeAmi, FakeBus]:
    ami, bus = FakeAmi(), FakeBus()
    service = SupervisionService(ami, Notifier(bus), DbSupervisionAudit(session_factory),
                                 LiveCalls(CALL),
                                 {"sup01", "sup02"},
                                 clock=Clock(START, step=timedelta(seconds=1)).epoch)
    return service, ami, bus


async def _feed(service: SupervisionService, *events: dict[str, str]) -> None:
    for ev in events:
        service.on_ami_event(ev)
    while not service.inbox.empty():
        msg = service.inbox.get_nowait()
        async with service._lock:
            await service._ami_event(msg)


async def test_listen_whisper_barge_stop_trail(
        svc: tuple[SupervisionService, FakeAmi, FakeBus],
        session_factory: sessionmaker[Session]) -> None:
    service, ami, bus = svc
    view = await service.start(SUP, CALL.call_id, "listen", via="mqtt")
    sid = view["session_id"]
    chan = "hotline-spy-" + sid
    orig = ami.sent[0]
    assert orig["Action"] == "Originate" and orig["Channel"] == "PJSIP/sup01"
    assert orig["Context"] == "hotline-spy" and orig["ChannelId"] == chan
    assert "SPY_TARGET=PJSIP/seat07-" in orig["Variable"] and "SPY_OPTS=qESd" in orig["Variable"]
    assert view["state"] == "dialing"
    await _feed(service, {"Event": "UserEvent", "UserEvent": "HotlineSpy", "Uniqueid": chan},
                {"Event": "ChanSpyStart", "SpyerUniqueid": chan})
    assert service.get(sid).state == "active"  # type: ignore[union-attr]
    for mode, opts, key in (("whisper", "qESdw", "5"), ("barge", "qESdB", "6")):
        ami.sent.clear()
        await service.set_mode(SUP, sid, mode)
        assert [a["Action"] for a in ami.sent] == ["Setvar", "Setvar", "PlayDTMF"]
        assert ami.sent[0] == {"Action": "Setvar", "Channel": chan, "Variable": "SPY_OPTS",
                               "Value": opts}
        assert ami.sent[2] == {"Action": "PlayDTMF", "Channel": chan, "Digit": key,
                               "Duration": "100", "Receive": "yes"}
    # Asterisk reports the keys ChanSpy read: the CTI's own (4 at the start, 5, 6), then one
    # keyed on the supervisor's phone, which switches to whisper on record
    await _feed(service, *({"Event": "DTMFEnd", "Uniqueid": chan, "Digit": k,
                            "Direction": "Received"} for k in "4565"))
    assert service.get(sid).mode == "whisper"  # type: ignore[union-attr]
    ami.sent.clear()
    await service.stop(SUP, sid)
    assert ami.sent == [{"Action": "Hangup", "Channel": chan, "Cause": "16"}]
    assert service.get(sid) is None
    with session_factory() as s:
        doc = db.session_doc(s, sid)
    assert doc is not None and doc["end_reason"] == "stopped" and doc["answered_at"]
    assert [m["mode"] for m in doc["modes"]] == ["listen", "whisper", "barge", "whisper"]
    assert all(m["ended_at"] for m in doc["modes"])
    events = [p["event"] for t, p in bus.sent if t == f"hotline/supervision/{sid}"]
    assert events == ["requested", "started", "mode", "mode", "mode", "ended"]


async def test_agent_refused_and_audited(
        svc: tuple[SupervisionService, FakeAmi, FakeBus],
        session_factory: sessionmaker[Session]) -> None:
    service, ami, bus = svc
    with pytest.raises(SupervisionError) as err:
        await service.start(Actor("A002", "agent"), CALL.call_id, "listen", via="web")
    assert err.value.reason == "forbidden"
    assert ami.sent == []  # nothing rang
    with session_factory() as s:
        row = s.scalars(select(SupervisionSession)).one()
    assert (row.supervisor_id, row.outcome, row.refusal, row.call_id, row.mode) == (
        "A002", "refused", "forbidden", CALL.call_id, "listen")
    assert bus.sent[-1][1]["event"] == "refused"


async def test_call_hangup_ends_session_and_mode_needs_answer(
        svc: tuple[SupervisionService, FakeAmi, FakeBus]) -> None:
    service, ami, _ = svc
    sid = (await service.start(SUP, CALL.call_id, "barge", via="web"))["session_id"]
    with pytest.raises(SupervisionError, match="not_answered"):
        await service.set_mode(SUP, sid, "listen")
    with pytest.raises(SupervisionError, match="busy"):
        await service.start(SUP, CALL.call_id, "listen", via="web")
    with pytest.raises(SupervisionError, match="forbidden"):
        await service.stop(Actor("S02", "supervisor"), sid)
    # the seat's previous call hanging up late ends nothing
    await _feed(service, {"Event": "Hangup", "Channel": "PJSIP/seat07-00000010",
                          "Uniqueid": "1751333300.40", "Linkedid": "1751333300.39"})
    assert service.get(sid) is not None
    await _feed(service, {"Event": "Hangup", "Channel": "PJSIP/seat07-00000012",
                          "Uniqueid": "1751333405.43", "Linkedid": CALL.call_id})
    assert service.get(sid) is None
    assert ami.sent[-1]["Action"] == "Hangup"


async def test_unknown_spy_channel_is_hung_up(
        svc: tuple[SupervisionService, FakeAmi, FakeBus]) -> None:
    service, ami, _ = svc
    stray = "hotline-spy-" + "f" * 32
    await _feed(service, {"Event": "ChanSpyStart", "SpyerUniqueid": stray})
    assert ami.sent == [{"Action": "Hangup", "Channel": stray, "Cause": "16"}]
