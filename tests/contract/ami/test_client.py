"""The client's session behaviour against a fake Asterisk over a real TCP socket.

No fixed sleeps: every wait is on an event (an action the fake server received, `ready`, an
on_connected call) under a deadline. An action answered on a connection is the barrier that
proves the server has read everything the client sent before it.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from cti.ami.client import (
    AmiActionError,
    AmiClient,
    AmiDisconnected,
    AmiTimeout,
    Backoff,
)
from tests.contract.ami.fake_ami import Conn, FakeAmi, drop_connection, no_answer, replay_answer
from tests.contract.ami.replay import recorded_answer

DEADLINE = 5.0
REDIRECT = {"Action": "Redirect", "Channel": "PJSIP/carrier-00000002",
            "Context": "hotline-connect", "Exten": "seat07", "Priority": "1"}
DBPUT = {"Action": "DBPut", "Family": "hotline", "Key": "heartbeat", "Val": "1795781260"}


async def _nothing(_client: AmiClient) -> None:
    return None


def make_client(fake: FakeAmi, on_connected: Callable[[AmiClient], Awaitable[None]] = _nothing,
                **kw: Any) -> AmiClient:
    kw.setdefault("backoff", Backoff(floor_s=0.01, cap_s=0.05))
    kw.setdefault("ping_interval_s", None)
    return AmiClient("127.0.0.1", fake.port, "hotline", "s3cret", on_connected=on_connected,
                     **kw)


@asynccontextmanager
async def running(client: AmiClient) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(client.run(), name="ami-client-under-test")
    try:
        yield task
    finally:
        task.cancel()
        results = await asyncio.gather(task, return_exceptions=True)
        assert isinstance(results[0], asyncio.CancelledError), results


async def ready(client: AmiClient) -> None:
    async with asyncio.timeout(DEADLINE):
        await client.ready.wait()


async def next_event(events: AsyncIterator[Any]) -> Any:
    async with asyncio.timeout(DEADLINE):
        return await anext(events)


def single(answer: Any) -> Any:
    """A single-answer action's Message (action() is typed Message | list[Message])."""
    assert not isinstance(answer, list), answer
    return answer


class Signal:
    """Counts calls; lets a test wait until the count reaches n."""

    def __init__(self) -> None:
        self.n = 0
        self._cond = asyncio.Condition()

    async def hit(self) -> None:
        async with self._cond:
            self.n += 1
            self._cond.notify_all()

    async def reach(self, n: int) -> None:
        async with asyncio.timeout(DEADLINE), self._cond:
            await self._cond.wait_for(lambda: self.n >= n)


# ----------------------------------------------------------------------- connect, resync


async def test_login_then_resync_before_ready_then_events(fake: FakeAmi) -> None:
    seen: list[tuple[str, object]] = []

    async def on_connected(client: AmiClient) -> None:
        seen.append(("ready during resync", client.ready.is_set()))
        answer = await client.action({"Action": "CoreShowChannels"}, idempotent=True)
        seen.append(("answer", type(answer)))

    client = make_client(fake, on_connected)
    async with running(client):
        await ready(client)
        assert seen == [("ready during resync", False), ("answer", list)]
        login = fake.actions("login")[0].action
        assert login["Username"] == "hotline" and login["Events"] == "on"
        events = client.events()
        assert (await next_event(events))["Event"] == "FullyBooted"
        fake.live.event("Newchannel", Channel="PJSIP/carrier-00000001", Linkedid="1.1")  # type: ignore[union-attr]
        ev = await next_event(events)
        assert (ev["Event"], ev["Linkedid"]) == ("Newchannel", "1.1")
        assert client.connects == 1 and client.resyncs == 1


async def test_on_connected_runs_again_before_ready_after_every_reconnect(fake: FakeAmi
                                                                          ) -> None:
    ready_during_resync: list[bool] = []

    async def on_connected(client: AmiClient) -> None:
        ready_during_resync.append(client.ready.is_set())
        await client.action({"Action": "Status"}, idempotent=True)

    client = make_client(fake, on_connected)
    async with running(client):
        for n in range(1, 5):
            await fake.wait_action("login", n)
            await ready(client)  # cleared when connection n-1 was lost, so this is session n
            assert client.resyncs == n
            if n < 4:
                fake.drop_all()
    assert ready_during_resync == [False] * 4
    # each session's resync happened on that session, after its login
    for n in range(1, 5):
        assert [r.name for r in fake.received if r.conn == n][:2] == ["login", "status"]


async def test_a_failing_resync_is_retried_on_a_new_session(fake: FakeAmi) -> None:
    calls = Signal()

    async def on_connected(client: AmiClient) -> None:
        await calls.hit()
        if calls.n == 1:
            raise RuntimeError("the CTI could not rebuild its picture")

    client = make_client(fake, on_connected)
    async with running(client):
        await ready(client)
    assert calls.n == 2 and client.connects == 2


async def test_refused_login_is_retried_with_backoff_and_never_ready(fake: FakeAmi) -> None:
    fake.login_ok = False
    client = make_client(fake)
    async with running(client):
        await fake.wait_action("login", 3)
        assert not client.ready.is_set() and client.connects == 0


async def test_shutdown_event_means_reconnect(fake: FakeAmi) -> None:
    client = make_client(fake)
    async with running(client):
        await ready(client)
        fake.live.event("Shutdown", Shutdown="Cleanly", Restart="True")  # type: ignore[union-attr]
        await fake.wait_action("login", 2)
        await ready(client)


# -------------------------------------------------------------------------------- actions


async def test_action_timeout_raises_ami_timeout(fake: FakeAmi) -> None:
    fake.handlers["queueadd"] = no_answer
    client = make_client(fake, action_timeout_s=0.3)
    async with running(client):
        await ready(client)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(AmiTimeout):
            await client.action({"Action": "QueueAdd", "Queue": "hotline-agents",
                                 "Interface": "PJSIP/seat07"}, idempotent=False, timeout=0.2)
        assert 0.2 <= loop.time() - t0 < 2
        with pytest.raises(AmiTimeout):  # the client's default deadline
            await client.action({"Action": "QueueAdd"}, idempotent=False)
        # the session is fine; nothing of the abandoned actions is still pending
        assert single(await client.action({"Action": "Ping"}, idempotent=False))["Ping"] == "Pong"
        assert client._proto is not None and not client._proto.responses


async def test_redirect_pending_when_the_connection_drops_fails_and_is_not_resent(
        fake: FakeAmi) -> None:
    fake.handlers["redirect"] = drop_connection
    client = make_client(fake)
    async with running(client):
        await ready(client)
        with pytest.raises(AmiDisconnected):
            await client.action(REDIRECT, idempotent=False, timeout=3)
        await fake.wait_action("login", 2)
        await ready(client)
        # answered on connection 2: the server has read all the client sent after reconnecting
        await client.action({"Action": "Ping"}, idempotent=False)
        assert [r.conn for r in fake.actions("redirect")] == [1]
        assert [r.name for r in fake.received if r.conn == 2] == ["login", "ping"]


async def test_non_idempotent_action_without_a_session_fails_at_once(fake: FakeAmi) -> None:
    client = make_client(fake)
    with pytest.raises(AmiDisconnected):
        await client.action(REDIRECT, idempotent=False)
    assert fake.received == []


async def test_idempotent_action_is_resent_once_after_reconnect_and_resync(fake: FakeAmi
                                                                           ) -> None:
    def dbput(conn: Conn, action: dict[str, str]) -> None:
        if conn.index == 1:
            conn.drop()
        else:
            conn.respond(action)

    fake.handlers["dbput"] = dbput

    async def on_connected(client: AmiClient) -> None:
        await client.action({"Action": "CoreShowChannels"}, idempotent=True)

    client = make_client(fake, on_connected)
    async with running(client):
        await ready(client)
        answer = single(await client.action(DBPUT, idempotent=True, timeout=DEADLINE))
        assert answer["Response"] == "Success"
    assert [r.conn for r in fake.actions("dbput")] == [1, 2]
    assert [r.name for r in fake.received if r.conn == 2] == ["login", "coreshowchannels",
                                                               "dbput"]


async def test_idempotent_action_is_resent_at_most_once(fake: FakeAmi) -> None:
    fake.handlers["dbput"] = drop_connection
    client = make_client(fake)
    async with running(client):
        await ready(client)
        with pytest.raises(AmiDisconnected):
            await client.action(DBPUT, idempotent=True, timeout=DEADLINE)
        await fake.wait_action("login", 3)
        await ready(client)
        await client.action({"Action": "Ping"}, idempotent=False)
    assert [r.conn for r in fake.actions("dbput")] == [1, 2]


async def test_idempotent_action_waits_for_the_session(fake: FakeAmi) -> None:
    client = make_client(fake)
    early = asyncio.create_task(client.action(DBPUT, idempotent=True, timeout=DEADLINE),
                                name="early-dbput")
    with pytest.raises(AmiTimeout):  # nobody connects it in time
        await client.action(DBPUT, idempotent=True, timeout=0.1)
    async with running(client):
        assert single(await early)["Response"] == "Success"
    assert [r.name for r in fake.received] == ["login", "dbput"]


@pytest.mark.parametrize("name", ["Originate", "Redirect", "originate", "BlindTransfer"])
async def test_idempotent_true_is_refused_for_actions_that_move_calls(fake: FakeAmi,
                                                                      name: str) -> None:
    client = make_client(fake)
    with pytest.raises(ValueError, match="never idempotent"):
        await client.action({"Action": name, "Channel": "PJSIP/seat07"}, idempotent=True)


async def test_headers_that_would_break_the_framing_are_refused(fake: FakeAmi) -> None:
    client = make_client(fake)
    with pytest.raises(ValueError):
        await client.action({"Action": "Setvar", "Variable": "X",
                             "Value": "a\r\nAction: Hangup"}, idempotent=True)
    with pytest.raises(ValueError):
        await client.action({"Channel": "PJSIP/seat07"}, idempotent=True)


async def test_error_response_raises_with_its_headers(fake: FakeAmi) -> None:
    fake.handlers["hangup"] = lambda conn, a: conn.respond(a, "Error", Message="No such channel")
    client = make_client(fake)
    async with running(client):
        await ready(client)
        with pytest.raises(AmiActionError) as err:
            await client.action({"Action": "Hangup", "Channel": "PJSIP/x"}, idempotent=True)
        assert err.value.response["Response"] == "Error"


async def test_recorded_answers_over_the_socket(fake: FakeAmi) -> None:
    for rid in ("rec-queueadd", "rec-originate"):
        fake.handlers[rid.split("-")[1]] = replay_answer(recorded_answer("local_and_actions",
                                                                         rid), rid)
    fake.handlers["queuestatus"] = replay_answer(
        recorded_answer("offer_rona_answer", "rec-queuestatus-talking"), "rec-queuestatus-talking")
    client = make_client(fake)
    async with running(client):
        await ready(client)
        added = single(await client.action({"Action": "QueueAdd", "Queue": "hotline-agents",
                                            "Interface": "PJSIP/sup01"}, idempotent=True))
        assert added["Response"] == "Success"  # one Message: QueueAdd is not a list
        status = await client.action({"Action": "QueueStatus", "Queue": "hotline-agents"},
                                     idempotent=True)
        assert isinstance(status, list) and len(status) == 53
        events = client.events()
        assert (await next_event(events))["Event"] == "FullyBooted"
        originated = single(await client.action({"Action": "Originate", "Channel": "Local/x@y",
                                                 "Async": "true"}, idempotent=False))
        assert originated["Response"] == "Success"
        # the recorded OriginateResponse carried the recorded ActionID: an ordinary event
        while (await next_event(events))["Event"] != "OriginateResponse":
            pass


# --------------------------------------------------------------------- events, decoding


async def test_event_queue_overflow_drops_counts_and_resyncs(fake: FakeAmi) -> None:
    resyncs = Signal()

    async def on_connected(_client: AmiClient) -> None:
        await resyncs.hit()

    client = make_client(fake, on_connected, event_queue_size=5)
    async with running(client):
        await ready(client)
        conn = fake.live
        assert conn is not None
        for i in range(20):
            conn.event("Newstate", Uniqueid=f"1.{i}", Linkedid="1.0")
        await client.action({"Action": "Ping"}, idempotent=False)  # all 20 have arrived
        assert client.dropped_events == 21 - 5  # FullyBooted + 20, 5 kept
        await resyncs.reach(2)
        events = client.events()
        kept = [await next_event(events) for _ in range(5)]
    assert [e.get("Uniqueid") for e in kept] == [None, "1.0", "1.1", "1.2", "1.3"]
    assert client.connects == 1  # a resync on the live session, not a reconnect


async def test_truncated_utf8_over_tcp_is_replaced_and_split_characters_survive(
        fake: FakeAmi) -> None:
    # (every split point is covered without a socket in test_protocol; this is the real path)
    client = make_client(fake)
    async with running(client):
        await ready(client)
        conn = fake.live
        assert conn is not None
        events = client.events()
        await next_event(events)  # FullyBooted
        cut = "王小明".encode()[:-1]
        whole = "张三".encode()
        conn.send(b"Event: Newchannel\r\nCallerIDName: " + cut + b"\r\nLinkedid: 1.1\r\n\r\n"
                  b"Event: Newchannel\r\nCallerIDName: " + whole[:4])
        await conn.writer.drain()
        conn.send(whole[4:] + b"\r\nLinkedid: 1.2\r\n\r\n")
        first, second = await next_event(events), await next_event(events)
        assert single(await client.action({"Action": "Ping"}, idempotent=False))["Ping"] == "Pong"
    assert (first["CallerIDName"], first["Linkedid"]) == ("王小\ufffd", "1.1")
    assert (second["CallerIDName"], second["Linkedid"]) == ("张三", "1.2")


async def test_unanswered_ping_drops_a_dead_connection(fake: FakeAmi) -> None:
    def ping(conn: Conn, action: dict[str, str]) -> None:
        if conn.index > 1:
            conn.respond(action, Ping="Pong")

    fake.handlers["ping"] = ping
    client = make_client(fake, ping_interval_s=0.05, action_timeout_s=0.3)
    async with running(client):
        await fake.wait_action("login", 2)
        await ready(client)


# ------------------------------------------------------------------------------- backoff


def test_backoff_grows_with_jitter_within_its_bounds() -> None:
    seqs = []
    for seed in range(5):
        b = Backoff(rng=random.Random(seed))
        seqs.append([b.next_delay() for _ in range(12)])
    for delays in seqs:
        assert delays[0] == 0.2
        assert all(0.2 <= d <= 10.0 for d in delays)
        assert delays[:6] == sorted(delays[:6])  # never shrinks on the way up to the cap
        assert all(d <= 0.2 * 2 ** i for i, d in enumerate(delays))
        assert all(5.0 <= d for d in delays[6:])  # at the cap: between half of it and all
    assert len({tuple(s) for s in seqs}) == len(seqs)  # jitter: no two clients in lockstep
    b = Backoff(rng=random.Random(1))
    for _ in range(6):
        b.next_delay()
    b.reset()
    assert b.next_delay() == 0.2


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_reconnect_attempts_back_off(fake: FakeAmi) -> None:
    delays: list[float] = []
    enough = asyncio.Event()

    async def sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) >= 8:
            enough.set()
        await asyncio.sleep(0)

    client = AmiClient("127.0.0.1", closed_port(), "hotline", "s3cret", on_connected=_nothing,
                       ping_interval_s=None, backoff=Backoff(rng=random.Random(7)), sleep=sleep)
    async with running(client):
        async with asyncio.timeout(DEADLINE):
            await enough.wait()
    assert delays[0] == 0.2 and delays[:6] == sorted(delays[:6])
    assert delays[5] >= 0.2 * 2 ** 4 and min(delays[6:]) >= 5 and max(delays) <= 10
    assert any(d != 0.2 * 2 ** i for i, d in enumerate(delays[1:8], start=1))


async def test_backoff_starts_over_after_a_good_session(fake: FakeAmi) -> None:
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)
        await asyncio.sleep(0)

    client = make_client(fake, backoff=Backoff(rng=random.Random(3)), sleep=sleep)
    client._backoff.attempt = 5  # as if earlier attempts had failed
    async with running(client):
        await ready(client)
        fake.drop_all()
        await fake.wait_action("login", 2)
    assert delays == [0.2]


# ---------------------------------------------------------------------- Asterisk restarts


async def _restart_seen(fake: FakeAmi, fault: Callable[[], None], uptime_after: str
                        ) -> list[Any]:
    """pbx_restart as each session's on_connected saw it, with the fault between two."""
    seen: list[Any] = []

    async def on_connected(client: AmiClient) -> None:
        seen.append(client.pbx_restart)

    fake.uptime = "600"  # up ten minutes when the CTI first meets it
    client = make_client(fake, on_connected)
    async with running(client):
        await ready(client)
        fake.uptime = uptime_after
        fault()
        await fake.wait_action("login", 2)
        await ready(client)
        assert client.resyncs == 2
    return seen


async def test_restart_that_said_so_is_pbx_restart_from_its_first_shutdown_hangup(
        fake: FakeAmi) -> None:
    """`core restart now`: channels hung up with Cause 4 (AST_SOFTHANGUP_SHUTDOWN), a Shutdown
    event (Restart: True) a second later; the new Asterisk has just booted."""
    def fault() -> None:
        live = fake.live
        assert live is not None
        live.event("SoftHangupRequest", Channel="PJSIP/carrier-00000001", Cause="4",
                   Timestamp="1796468767.557")
        live.event("Shutdown", Shutdown="Cleanly", Restart="True", Timestamp="1796468768.759")

    seen = await _restart_seen(fake, fault, uptime_after="0")
    assert seen[0] is None  # the first session has nothing to compare with
    assert seen[1] is not None and seen[1].reason == "pbx_restart"
    assert seen[1].lost_at == 1796468767.557  # Asterisk's own time of the first hangup


async def test_asterisk_that_vanished_and_came_back_is_pbx_lost(fake: FakeAmi) -> None:
    seen = await _restart_seen(fake, fake.drop_all, uptime_after="0")
    assert seen[0] is None and seen[1] is not None and seen[1].reason == "pbx_lost"


async def test_a_lost_connection_to_the_same_asterisk_is_no_restart(fake: FakeAmi) -> None:
    seen = await _restart_seen(fake, fake.drop_all, uptime_after="601")
    assert seen == [None, None]


async def test_new_calls_after_hangups_mean_no_shutdown_began(fake: FakeAmi) -> None:
    """A Cause 4 hangup, then Asterisk takes a new call: it is not going away (a shutdown
    refuses new channels), so a later loss of the connection is measured from then."""
    def fault() -> None:
        live = fake.live
        assert live is not None
        live.event("SoftHangupRequest", Channel="PJSIP/carrier-00000001", Cause="4",
                   Timestamp="1000.0")
        live.event("Newchannel", Channel="PJSIP/carrier-00000002", Linkedid="2.2")
        live.event("Ping")  # the drop below comes after both are read
        fake.drop_all()

    seen = await _restart_seen(fake, fault, uptime_after="0")
    assert seen[1] is not None and seen[1].reason == "pbx_lost" and seen[1].lost_at > 1000.0
