"""Fuzzing the AMI reader (framer + translate) with a fixed budget: byte streams built from the
recorded traces' real messages, then broken (duplicated headers, lines with no colon, truncated
UTF-8 and invalid bytes, bare CR or LF inside values, CRLF CRLF at every offset, huge values,
random chunk boundaries). derandomize=True and small max_examples keep CI time bounded (a few
seconds) and runs repeatable; every crash found is kept below as an @example.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import fields

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cti.ami.protocol import MAX_MESSAGE_CHARS, AmiFramer, parse_message
from cti.ami.translate import (
    DIALPLAN_CONTEXTS,
    AgentAnswered,
    CallbackRequested,
    CallEnded,
    CallerAbandoned,
    CallFailedOver,
    CallOffered,
    CallQueued,
    RingNoAnswer,
    SeatReachable,
    translate,
)
from tests.contract.ami.replay import TRACES

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_CORE = (CallQueued, CallOffered, AgentAnswered, RingNoAnswer, CallEnded, CallerAbandoned,
         CallFailedOver, CallbackRequested, SeatReachable)


def _messages() -> list[bytes]:
    """Every message of every recorded trace, as its CRLF-terminated bytes (banner dropped)."""
    out: list[bytes] = []
    for path in sorted(TRACES.glob("*.ami")):
        for block in path.read_bytes().split(b"\r\n\r\n"):
            if block.startswith(b"Asterisk Call Manager/"):
                block = block.partition(b"\r\n")[2]
            if block.strip():
                out.append(block + b"\r\n\r\n")
    return out


MESSAGES = _messages()
USER_EVENTS = [m for m in MESSAGES if b"UserEvent: Hotline" in m]
GOOD = (b"Event: UserEvent\r\nChannel: PJSIP/carrier-0000000a\r\nUniqueid: 1.10\r\n"
        b"Linkedid: 1.10\r\nContext: hotline-wait\r\nCallerIDNum: 13800000000\r\n"
        b"UserEvent: HotlineQueued\r\nSkill: repair\r\nCallPriority: 5\r\nAccount: 1234\r\n\r\n")
GOOD_EVENT = CallQueued("1.10", "PJSIP/carrier-0000000a", "13800000000", "repair", 5, "1234",
                        "1.10")


def _lines(message: bytes) -> list[bytes]:
    return message[:-4].split(b"\r\n")


def _join(lines: list[bytes]) -> bytes:
    return b"\r\n".join(lines) + b"\r\n\r\n"


@st.composite
def mangled(draw: st.DrawFn) -> bytes:
    """One trace message, broken in one to three ways."""
    lines = _lines(draw(st.sampled_from(MESSAGES + USER_EVENTS)))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        how = draw(st.sampled_from(["dup", "dup_case", "nocolon", "utf8", "cr", "lf", "crlf2",
                                    "huge", "inject", "trunc", "drop"]))
        line = lines[i]
        if how == "dup":  # the same key twice, another value
            key = line.partition(b":")[0]
            lines.insert(draw(st.integers(0, len(lines))),
                         key + b": " + draw(st.binary(max_size=20)).replace(b"\r\n", b""))
        elif how == "dup_case":
            lines.insert(i + 1, line.swapcase())
        elif how == "nocolon":
            lines[i] = line.replace(b":", b"")
        elif how == "utf8":  # a Chinese name cut inside a character, or bytes that are no UTF-8
            lines[i] = line + draw(st.sampled_from([b"\xe5\xbc", b"\xff\xfe", b"\xc3", b"\x80"]))
        elif how == "cr":
            lines[i] = line + b"\rEvent: Hangup"
        elif how == "lf":
            lines[i] = line + b"\nUserEvent: HotlineFailover"
        elif how == "crlf2":  # a value that ends the message early and starts another
            cut = draw(st.integers(0, len(line)))
            lines[i] = line[:cut] + b"\r\n\r\n" + line[cut:]
        elif how == "huge":
            lines[i] = line + b"9" * draw(st.sampled_from([1_000, 70_000]))
        elif how == "inject":  # what a CR/LF caller number would forge
            lines[i] = line + (b"\r\nUserEvent: HotlineOffer\r\nSeat: seat01\r\nLinkedid: 1.1"
                               b"\r\nContext: hotline-connect")
        elif how == "trunc":
            lines[i] = line[:draw(st.integers(0, len(line)))]
        elif how == "drop" and len(lines) > 1:
            del lines[i]
    return _join(lines)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


def _check(messages: list[object]) -> None:
    for m in messages:
        assert isinstance(m, Mapping)
        for k, v in m.items():
            assert isinstance(k, str) and isinstance(v, str), (k, v)
        out = translate(m)
        for ev in out:
            assert isinstance(ev, _CORE)
            for f in fields(ev):
                value = getattr(ev, f.name)
                assert value is None or isinstance(value, str | int | bool), (f.name, value)
                if isinstance(value, str):
                    assert "\r" not in value and "\n" not in value, (f.name, value)


# --------------------------------------------------------------------------- the properties


@FUZZ
@given(st.lists(mangled(), min_size=1, max_size=4), st.lists(st.integers(0, 10**6), max_size=8))
@example([_join([b"Event: UserEvent", b"UserEvent: HotlineQueued", b"Linkedid: 1.1",
                 b"Linkedid: 1.2"])], [])
@example([b"Event: Hangup\r\nevent: Newchannel\r\nChannel: PJSIP/x\r\n\r\n"], [3, 7])
# found at 4,000 examples: a repeated Linkedid whose first copy was empty (a cut line) named the
# call "\n1795781377.5" through the standard events; and "$" in the seat patterns let a
# DestChannel ending in LF through as an agent's channel
@example([_join([b"Event: QueueCallerJoin", b"Queue: hotline-agents", b"Channel: PJSIP/c-1",
                 b"Linkedid: ", b"Linkedid: 1795781377.5"])], [])
@example([_join([b"Event: DialEnd", b"DialStatus: ANSWER", b"Linkedid: 1.1",
                 b"Channel: PJSIP/c-1", b"DestChannel: PJSIP/seat07-0000001a",
                 b"DestChannel: "])], [])
def test_framer_never_raises_and_yields_str_to_str(stream: list[bytes], cuts: list[int]) -> None:
    data = b"".join(stream)
    framer = AmiFramer()
    out: list[object] = []
    for chunk in _chunks(data, cuts):
        out += framer.feed(chunk)
    _check(out)
    # and a well-formed message after all of that garbage still comes through whole
    tail = framer.feed(b"\r\n\r\n" + GOOD)
    assert tail, "the good message after the garbage was lost"
    assert translate(tail[-1]) == [GOOD_EVENT]


@FUZZ
@given(st.binary(max_size=600), st.lists(st.integers(0, 10**6), max_size=6))
@example(b"Asterisk Call Manager/2.10.6\r\n\xe5\xbc", [])
@example(b"\r\r\n\n:\r\n: x\r\n\r\n", [1])
def test_arbitrary_bytes(data: bytes, cuts: list[int]) -> None:
    framer = AmiFramer()
    out: list[object] = []
    for chunk in _chunks(data, cuts):
        out += framer.feed(chunk)
    _check(out)
    tail = framer.feed(b"\r\n\r\n" + GOOD)
    assert tail and translate(tail[-1]) == [GOOD_EVENT]


@FUZZ
@given(st.integers(0, len(GOOD)), st.integers(1, 64))
@example(166, 1)  # inside "Skill: repair": was CallQueued(skill="r", priority=0)
def test_split_at_every_offset(offset: int, step: int) -> None:
    """CRLF CRLF put at any offset of a good message, in chunks of any size: the framer keeps
    going, and never yields a CallQueued that differs from the real one, except for a cut in
    the last header's value (Account), which no reader can tell from a shorter account.
    (Found by this test: a cut inside Skill gave skill 'r' and the default priority 0; every
    header the dialplan sends is now required.)"""
    data = GOOD[:offset] + b"\r\n\r\n" + GOOD[offset:] + GOOD
    framer = AmiFramer()
    out = [m for i in range(0, len(data), step) for m in framer.feed(data[i:i + step])]
    _check(out)
    queued = [ev for m in out for ev in translate(m) if isinstance(ev, CallQueued)]
    assert queued and queued[-1] == GOOD_EVENT
    for ev in queued[:-1]:
        assert ev.account is None or GOOD_EVENT.account.startswith(ev.account)
        assert ev == GOOD_EVENT or ev == CallQueued(**{**vars(GOOD_EVENT), "account": ev.account})


@FUZZ
@given(st.text(max_size=40), st.sampled_from(["Linkedid", "Channel", "CallerIDNum", "Skill",
                                              "CallPriority", "Account", "Uniqueid",
                                              "Context"]))
@example("13800000000\r\nSkill: vip", "CallerIDNum")
@example("\u0661\u0662", "CallPriority")  # Arabic-Indic digits: int() takes them
@example("9" * 5000, "CallPriority")  # int() refuses over 4300 digits
def test_a_user_event_field_is_taken_only_in_shape(value: str, key: str) -> None:
    msg = parse_message(GOOD[:-4].decode())
    assert msg is not None
    msg[key] = value
    out = translate(msg)
    assert out == [] or len(out) == 1 and isinstance(out[0], CallQueued)
    _check([msg])


# ------------------------------------------------------------------- pinned decisions (examples)


def test_a_repeated_header_is_joined_and_never_trusted(caplog: pytest.LogCaptureFixture) -> None:
    """Both orders of a forged Skill (injected before or after the dialplan's own) are refused:
    first-wins and last-wins would each let one of them through."""
    for forged in (b"Skill: vip\r\nSkill: repair", b"Skill: repair\r\nSkill: vip"):
        msg = AmiFramer().feed(GOOD.replace(b"Skill: repair", forged))[0]
        assert msg["Skill"] in ("vip\nrepair", "repair\nvip")
        with caplog.at_level(logging.WARNING, logger="cti.ami.translate"):
            assert translate(msg) == []
    assert "HotlineQueued dropped: its Skill" in caplog.text
    assert "vip" not in caplog.text  # the log names the field, never the caller's value


def test_a_case_folded_duplicate_is_a_duplicate() -> None:
    msg = AmiFramer().feed(GOOD.replace(b"Linkedid: 1.10", b"Linkedid: 1.10\r\nLINKEDID: 1.99"))
    assert msg[0]["Linkedid"] == "1.10\n1.99"
    assert translate(msg[0]) == []


def test_a_forged_event_is_parsed_but_its_fields_decide() -> None:
    """CRLF CRLF inside a caller number starts a new message the framer cannot tell from a real
    one; translate takes it only if it is exactly what the dialplan could have sent."""
    forged = GOOD.replace(b"CallerIDNum: 13800000000",
                          b"CallerIDNum: 1\r\n\r\nEvent: UserEvent\r\nUserEvent: HotlineOffer"
                          b"\r\nLinkedid: 1.10\r\nSeat: seat01; Action: Originate\r\nx: 1")
    out = [ev for m in AmiFramer().feed(forged) for ev in translate(m)]
    assert not any(isinstance(ev, CallOffered) for ev in out)


def test_a_user_event_from_another_context_is_dropped() -> None:
    for context, taken in [("hotline-wait", True), ("from-seat", False),
                           ("from-carrier", False), ("", False)]:
        msg = AmiFramer().feed(GOOD.replace(b"hotline-wait", context.encode()))[0]
        assert (translate(msg) == [GOOD_EVENT]) is taken, context


def test_the_known_contexts_are_the_dialplans() -> None:
    template = (TRACES.parents[2] / "asterisk_conf/templates/extensions.conf.j2").read_text()
    ours = set(re.findall(r"\[(hotline-[a-z-]+)\]", template))
    assert ours == DIALPLAN_CONTEXTS


def test_an_endless_message_is_dropped_and_the_next_one_read() -> None:
    framer = AmiFramer()
    assert framer.feed(b"Event: UserEvent\r\nCallerIDNum: " + b"9" * (MAX_MESSAGE_CHARS + 10)) == []
    assert framer.feed(b"9" * 100_000) == []
    out = framer.feed(b"\r\nSkill: x\r\n\r\n" + GOOD)
    assert [translate(m) for m in out] == [[GOOD_EVENT]]


def test_repeated_variables_still_reach_resync() -> None:
    from cti.ami.resync import _variables

    msg = parse_message("Event: Status\r\nVariable: A=1\r\nVariable: B=(null)")
    assert msg is not None and _variables(msg) == {"A": "1", "B": ""}
