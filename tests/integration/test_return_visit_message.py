"""A voice message left on a return visit (回访留言, issue 14 §2), on real Asterisk: the CTI's
outbound engine calls a SIPp customer (tests/integration/conftest.py: the trunk is
CUSTOMER_PORT) about their resolved repair.

- Not satisfied: the customer keys 2 (RFC 2833 in the phone's own RTP), talks (a tone) after the
  message prompt and its tone, and ends with #. The message is a wav of real audio in the
  recordings folder, named like the recorder's files (<day>/<call>_<leg>_msg.wav), indexed as a
  recording of the return-visit call, and linked to the order (its return-visit messages, the
  recordings search by work order, the console's list: cti.db.recordings, which the web API
  serves).
- Satisfied: the customer keys 1 and hangs up during the offer; no message is left.

The customer's RTP is a pcap played as the call is answered, timed from the built prompts'
lengths (the key during the survey, talking from before the message's tone until well after).
Waits are on AMI events and database conditions with deadlines, never sleeps.
"""

from __future__ import annotations

import itertools
import math
import wave
from array import array
from pathlib import Path

import pytest
from sqlalchemy import select

from bench.sipp import scenario
from callcenter.outbound_service import attempt_of
from cti.db import recordings
from cti.db.models_recordings import Recording
from hotline import stack
from prompts.index import PromptIndex
from tests.integration.conftest import CUSTOMER_PORT, Backend, CtiProcess, ItEnv
from tests.integration.test_outbound_calls import _job_of, _resolve_repair, _service
from tests.support.agent_phones import HangingUpPhones, SippUas
from tests.support.ami import AmiRecorder, Event
from tests.support.rtp import write_call_pcap

pytestmark = pytest.mark.integration
serial = itertools.count(1)
KEY_AT_MS = 2500       # into the survey's question (Read takes a key while it plays)
SLACK_MS = 3000        # Asterisk's own pace: answering, the key's end, the gaps between prompts
TALK_MS = 4000         # how long the customer talks into the message


def _prompt_ms(index: PromptIndex, prompt_id: str, lang: str = "zh") -> int:
    with wave.open(str(index.cache_dir / f"{index.prompts[lang][prompt_id]}.wav")) as w:
        return int(w.getnframes() * 1000 / w.getframerate())


def _play(pcap: Path) -> str:
    return f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'


def _answered(ami: AmiRecorder, mark: int, order: str) -> Event:
    return ami.wait_for(lambda e: e.get("Event") == "UserEvent"
                        and e.get("UserEvent") == "HotlineOutboundAnswered"
                        and attempt_of(str(e.get("Uniqueid", ""))) is not None,
                        40, f"the return visit of {order} answered", since=mark)


def _ended(ami: AmiRecorder, mark: int, answered: Event) -> None:
    ami.wait_for(lambda e: e.get("Event") == "Hangup"
                 and e.get("Uniqueid") == answered["Uniqueid"], 90, "the visit over",
                 since=mark)


def _rows(backend: Backend, call_id: str) -> list[Recording]:
    with backend.sessions() as s:
        return list(s.scalars(select(Recording).where(Recording.call_id == call_id)
                              .order_by(Recording.id)))


def test_an_unsatisfied_customer_leaves_a_message_linked_to_the_order(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, it_env: ItEnv,
        prompt_index: PromptIndex, tmp_path: Path) -> None:
    # the message's tone comes after the apology and the message prompt; the customer talks
    # from before it (the prompts take no audio) until well after it, then keys #
    record_from = (KEY_AT_MS + _prompt_ms(prompt_index, "sys.return_visit_sorry")
                   + _prompt_ms(prompt_index, "sys.return_visit_message") + 400)
    hash_at = record_from + SLACK_MS + TALK_MS
    pcap = tmp_path / "unsatisfied.pcap"
    write_call_pcap(pcap, [(KEY_AT_MS, "2"), (hash_at, "#")], hash_at + 3000,
                    talk=[(KEY_AT_MS + 1000, hash_at)])
    phone = SippUas(scenario("phone_answer", ring_ms=500, while_talking=_play(pcap)),
                    CUSTOMER_PORT, tmp_path / "customer", name="customer-msg")
    svc = _service(backend)
    try:
        mark = ami.mark()
        order = _resolve_repair(svc, f"{backend.prefix}93{next(serial):05d}")
        _job_of(backend, order)
        answered = _answered(ami, mark, order)
        call_id = answered["Uniqueid"]
        result = ami.wait_for(lambda e: e.get("Event") == "UserEvent"
                              and e.get("UserEvent") == "HotlineOutboundResult"
                              and e.get("Attempt") == answered["Attempt"], 30, "key 2 heard",
                              since=mark)
        assert result["Key"] == "2"
        left = ami.wait_for(lambda e: e.get("Event") == "UserEvent"
                            and e.get("UserEvent") == "HotlineReturnVisitMessage"
                            and e.get("Attempt") == answered["Attempt"], 60,
                            "the message recorded", since=mark)
        assert left["Status"] == "DTMF", left       # ended by the customer's #
        _ended(ami, mark, answered)

        def message() -> Recording | None:
            return next((r for r in _rows(backend, call_id) if r.seat == "msg"), None)

        stack.wait_until(lambda: message() is not None, 20, "the message indexed")
        rec = message()
        assert rec is not None and rec.kind == "ivr" and rec.indexed_by == "event"
        assert rec.rel_path.endswith(f"/{call_id}_{call_id}_msg.wav")
        # real audio: the customer's talking, a few seconds of it, not silence
        path = it_env.settings.recorder.storage_dir / rec.rel_path
        with wave.open(str(path)) as w:
            frames = w.readframes(w.getnframes())
            seconds = w.getnframes() / w.getframerate()
            assert w.getsampwidth() == 2
        assert TALK_MS / 1000 - 1.5 <= seconds <= (SLACK_MS + TALK_MS) / 1000 + 1.5, seconds
        assert abs(rec.duration_s - seconds) < 0.1 and rec.size_bytes == path.stat().st_size
        samples = array("h", frames)
        assert math.sqrt(sum(x * x for x in samples) / len(samples)) > 500
        # the call's IVR recording is there too, as for every return visit
        assert sorted(str(r.seat) for r in _rows(backend, call_id)) == ["None", "msg"]

        # linked to the order: its history, the recordings search, the console's list
        stack.wait_until(lambda: svc.get(order)["status"] == "dispatched", 10,
                         "the unsatisfied order reopened")
        [msg] = recordings.order_messages(backend.sessions, order)
        assert (msg["recording_id"], msg["call_id"]) == (rec.id, call_id)
        with backend.sessions() as s:
            found = recordings.search(s, recordings.RecordingQuery(work_order=order))
        recent = recordings.latest_messages(backend.sessions, 100)
        assert {(r["id"], r["message"]) for r in found} >= {(rec.id, True)}
        assert [o["number"] for r in found if r["id"] == rec.id
                for o in r["work_orders"]] == [order]
        mine = [m for m in recent if m["number"] == order]
        assert [(m["recording_id"], m["satisfaction"]) for m in mine] == [
            (rec.id, "unsatisfied")]
    finally:
        phone.stop()


def test_a_satisfied_customer_who_hangs_up_leaves_no_message(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, it_env: ItEnv,
        tmp_path: Path) -> None:
    pcap = tmp_path / "satisfied.pcap"
    write_call_pcap(pcap, [(KEY_AT_MS, "1")], KEY_AT_MS + 3000)
    # the customer hangs up 2 s after keying 1, during the offer of a message
    phone = HangingUpPhones(CUSTOMER_PORT, tmp_path / "customer-1", ring_ms=500,
                            talk_ms=KEY_AT_MS + 2000, while_talking=_play(pcap))
    svc = _service(backend)
    try:
        mark = ami.mark()
        order = _resolve_repair(svc, f"{backend.prefix}93{next(serial):05d}")
        _job_of(backend, order)
        answered = _answered(ami, mark, order)
        call_id = answered["Uniqueid"]
        result = ami.wait_for(lambda e: e.get("Event") == "UserEvent"
                              and e.get("UserEvent") == "HotlineOutboundResult"
                              and e.get("Attempt") == answered["Attempt"], 30, "key 1 heard",
                              since=mark)
        assert result["Key"] == "1"
        _ended(ami, mark, answered)
        # the call's IVR recording is indexed from the same hangup as a message would be
        # (its handler runs after the message's), so by then a message would be there
        stack.wait_until(lambda: bool(_rows(backend, call_id)), 20, "the call's recording")
        stack.wait_until(lambda: svc.get(order)["status"] == "return_visit", 10,
                         "the satisfied visit on the order")
        assert [r.seat for r in _rows(backend, call_id)] == [None]
        assert not list(it_env.settings.recorder.storage_dir.rglob(f"{call_id}_*_msg.wav"))
        assert recordings.order_messages(backend.sessions, order) == []
        assert not [e for e in ami.events()[mark:]
                    if e.get("UserEvent") == "HotlineReturnVisitMessage"
                    and e.get("Attempt") == answered["Attempt"]]
    finally:
        phone.stop()
