"""AmiConnection, the one-shot connection of the readiness probe and the trace recorder,
against a fake Asterisk over a real TCP socket: it logs in, waits for FullyBooted, answers
actions under a deadline, and never reconnects or re-sends."""

from __future__ import annotations

from typing import Any

import pytest

from cti.ami.client import (
    AmiActionError,
    AmiConnection,
    AmiDisconnected,
    AmiLoginError,
    AmiTimeout,
)
from tests.contract.ami.fake_ami import FakeAmi, drop_connection, no_answer, replay_answer
from tests.contract.ami.replay import recorded_answer


async def test_logs_in_waits_for_fully_booted_and_keeps_the_raw_bytes(fake: FakeAmi) -> None:
    raw = bytearray()
    events: list[Any] = []
    async with await AmiConnection.open("127.0.0.1", fake.port, "hotline", "s3cret",
                                        events="system", on_event=events.append,
                                        on_bytes=raw.extend) as conn:
        await conn.fully_booted(timeout=5)
        assert conn.version == "11.0.0"
        pong = await conn.action({"Action": "Ping"})
        assert not isinstance(pong, list) and pong["Ping"] == "Pong"
    login = fake.actions("Login")[0].action
    assert (login["Username"], login["Secret"], login["Events"]) == ("hotline", "s3cret",
                                                                     "system")
    assert raw.startswith(b"Asterisk Call Manager/11.0.0\r\n") and b"FullyBooted" in raw
    assert [e["Event"] for e in events] == ["FullyBooted"]
    assert conn.closed and len(fake.actions("Logoff")) == 1


async def test_a_refused_login_raises_and_closes(fake: FakeAmi) -> None:
    fake.login_ok = False
    with pytest.raises(AmiLoginError):
        await AmiConnection.open("127.0.0.1", fake.port, "hotline", "wrong")
    await fake.wait_for(lambda _r: fake.live is None)


async def test_list_actions_and_errors_as_the_client_has_them(fake: FakeAmi) -> None:
    fake.handlers["queuestatus"] = replay_answer(
        recorded_answer("offer_rona_answer", "rec-queuestatus-talking"),
        "rec-queuestatus-talking")
    fake.handlers["dbget"] = lambda conn, a: conn.respond(a, "Error", Message="not found")
    async with await AmiConnection.open("127.0.0.1", fake.port, "hotline", "s3cret") as conn:
        listing = await conn.action({"Action": "QueueStatus"})
        assert isinstance(listing, list) and listing[-1]["EventList"] == "Complete"
        with pytest.raises(AmiActionError):
            await conn.action({"Action": "DBGet", "Family": "x", "Key": "y"})


async def test_an_unanswered_action_times_out_and_a_lost_one_is_never_resent(
        fake: FakeAmi) -> None:
    fake.handlers["queueadd"] = no_answer
    fake.handlers["redirect"] = drop_connection
    async with await AmiConnection.open("127.0.0.1", fake.port, "hotline", "s3cret") as conn:
        with pytest.raises(AmiTimeout):
            await conn.action({"Action": "QueueAdd", "Queue": "q", "Interface": "PJSIP/a"},
                              timeout=0.2)
        with pytest.raises(AmiDisconnected):
            await conn.action({"Action": "Redirect", "Channel": "PJSIP/x", "Context": "c",
                               "Exten": "s", "Priority": "1"})
        with pytest.raises(AmiDisconnected):
            await conn.action({"Action": "Ping"})
    assert len(fake.actions("Redirect")) == 1 and len(fake.conns) == 1


async def test_the_stack_readiness_probe_uses_it(fake: FakeAmi) -> None:
    from types import SimpleNamespace

    from hotline import stack

    settings: Any = SimpleNamespace(ami=SimpleNamespace(
        host="127.0.0.1", port=fake.port, username="hotline", secret="s3cret"))
    await stack._ami_fully_booted(settings, 5)
    assert [r.name for r in fake.received] == ["login", "logoff"]
    fake.login_ok = False
    with pytest.raises(stack.StackError, match="rejected the secret"):
        await stack._ami_fully_booted(settings, 5)
