"""Only Asterisk drives the IVR (issue 10, defect 8): a fake "Asterisk" over real TCP, against
the FastAGI server on a real seeded database.

A request without the dialplan's secret, or with a wrong one, is refused before any flow runs:
no AGI command goes out, nothing is stored (no call, work order or work-order event row), a
warning without the secret is logged and counted, and the server serves the next valid call.
With the peer check on, a request with the right secret from a socket that is not Asterisk's
user is refused too (the uid is read from this host's /proc/net/tcp)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.ivr_services import DbIvrServices
from cti.db.models import Account, Call, WorkOrder, WorkOrderEvent
from cti.db.session import make_engine, make_session_factory
from hotline import doctor
from ivr.agi_peer import proc_peer_uid
from ivr.agi_session import IvrContext, make_ivr_handler
from ivr.engine import Engine
from ivr.fastagi import FastAgiServer
from tests.contract.test_fastagi_peer import (
    FLOWS,
    SECRET,
    TZ,
    FakeAsterisk,
    FakePrompts,
    header_block,
    headers,
    setvar,
)
from tests.support.seeded_db import SEED_NOW, SeededDb

NOW = SEED_NOW + timedelta(days=1)
DEADLINE_S = 10.0
WRONG = "0badc0de" * 6


@pytest.fixture
def sessions(seeded_db: SeededDb, tmp_path: Path) -> sessionmaker[Session]:
    engine = make_engine(seeded_db(tmp_path))
    try:
        yield make_session_factory(engine)  # type: ignore[misc]
    finally:
        engine.dispose()


def rows(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m)) or 0
                for m in (Call, WorkOrder, WorkOrderEvent)}


def an_account(sessions: sessionmaker[Session]) -> str:
    with sessions() as s:
        return str(s.scalars(select(Account.account_no).order_by(Account.id).limit(1)).one())


@asynccontextmanager
async def serving(sessions: sessionmaker[Session], *, peer_uid: int | None = None
                  ) -> AsyncIterator[tuple[FastAgiServer, int]]:
    ctx = IvrContext(engine_factory=lambda: Engine(FLOWS, "main", TZ), prompts=FakePrompts(),
                     services=DbIvrServices(sessions), clock=lambda: NOW)
    server = FastAgiServer({"ivr": make_ivr_handler(ctx)}, "127.0.0.1", 0, secret=SECRET,
                           peer_uid=peer_uid)
    await server.start()
    assert server._server is not None
    try:
        yield server, server._server.sockets[0].getsockname()[1]
    finally:
        await server.close()


def fault_reporter(account: str) -> FakeAsterisk:
    """A caller who picks Mandarin, 3 (fault report), 1 (confirm) and keys in the account: a
    served call files a repair work order."""
    return FakeAsterisk(reads=["1", "3", "1", account[0], account[1:]])


def network_script(key: str | None) -> dict[str, str]:
    script = "ivr" if key is None else f"ivr?key={key}"
    return headers(agi_network_script=script, agi_request=f"agi://127.0.0.1:4573/{script}",
                   agi_arg_1=f"1775008800.{len(script)}")


async def test_a_fake_asterisk_without_or_with_a_wrong_secret_is_refused_and_stores_nothing(
        sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ivr")
    account = an_account(sessions)
    before = rows(sessions)

    async with serving(sessions) as (server, port):
        for key in (None, WRONG, "", SECRET.upper()):
            intruder = fault_reporter(account)
            async with asyncio.timeout(DEADLINE_S):
                await intruder.call(port, header_block(network_script(key)))
            # closed at once: not one command that drives the call
            assert intruder.commands == [], (key, intruder.commands)
        assert rows(sessions) == before
        # an empty key is a wrong one, not a missing one
        assert server.refused == {"no_secret": 1, "wrong_secret": 3}
        assert server.active == 0

        # the server is still up, and Asterisk (the right secret) is served and stored
        asterisk = fault_reporter(account)
        async with asyncio.timeout(DEADLINE_S):
            await asterisk.call(port, header_block(network_script(SECRET)))
        assert asterisk.commands[-1] == setvar("HOTLINE_NEXT", "hangup")
        assert any("ivr.fault_created" in c for c in asterisk.commands)

    after = rows(sessions)
    assert after["calls"] == before["calls"] + 1
    assert after["work_orders"] == before["work_orders"] + 1
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 4 and all(r.levelno == logging.WARNING for r in refusals)
    assert "no secret" in refusals[0].getMessage()
    assert "wrong secret" in refusals[1].getMessage()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert SECRET not in logged and WRONG not in logged and SECRET.upper() not in logged


async def test_a_peer_that_is_not_asterisks_user_is_refused_even_with_the_secret(
        sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture) -> None:
    """This test's fake Asterisk runs as the test's uid: a server expecting another uid (as the
    CTI expects hotline-asterisk's) refuses it; one expecting this uid serves it."""
    caplog.set_level(logging.INFO, logger="ivr")
    account = an_account(sessions)
    me = os.geteuid()
    before = rows(sessions)

    async with serving(sessions, peer_uid=me + 1) as (server, port):
        intruder = fault_reporter(account)
        async with asyncio.timeout(DEADLINE_S):
            await intruder.call(port, header_block(network_script(SECRET)))
        assert intruder.commands == []
        assert server.refused == {"peer_uid": 1}
    assert rows(sessions) == before
    assert any(f"uid {me}, not Asterisk's {me + 1}" in r.getMessage() for r in caplog.records)

    async with serving(sessions, peer_uid=me) as (server, port):
        asterisk = fault_reporter(account)
        async with asyncio.timeout(DEADLINE_S):
            await asterisk.call(port, header_block(network_script(SECRET)))
        assert asterisk.commands[-1] == setvar("HOTLINE_NEXT", "hangup")
        assert server.refused == {}
    assert rows(sessions)["work_orders"] == before["work_orders"] + 1


async def test_the_peers_uid_is_read_from_this_hosts_proc_net_tcp() -> None:
    """The adapter on a real loopback connection, from the server's side: the client socket
    belongs to this process's uid; a port nobody is connected from has no owner."""
    accepted: asyncio.Queue[tuple[tuple[str, int], tuple[str, int]]] = asyncio.Queue()

    async def on_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put((writer.get_extra_info("peername")[:2],
                            writer.get_extra_info("sockname")[:2]))
        await reader.read()
        writer.close()

    for host in ("127.0.0.1", "::1"):
        server = await asyncio.start_server(on_accept, host, 0)
        port = server.sockets[0].getsockname()[1]
        _r, w = await asyncio.open_connection(host, port)
        try:
            async with asyncio.timeout(DEADLINE_S):
                peer, local = await accepted.get()
            assert proc_peer_uid(peer, local) == os.geteuid(), host
            assert proc_peer_uid((peer[0], 1), local) is None
        finally:
            w.close()
            await w.wait_closed()
            server.close()
            await server.wait_closed()


# ----------------------------------------------------------------- hotline doctor fastagi-auth


async def test_doctor_passes_a_fastagi_that_refuses_a_request_without_the_secret(
        sessions: sessionmaker[Session]) -> None:
    before = rows(sessions)
    async with serving(sessions) as (server, port):
        check = await asyncio.to_thread(doctor.check_fastagi_auth, "127.0.0.1", port)
        assert server.refused == {"no_secret": 1}
    assert (check.name, check.status) == ("fastagi-auth", doctor.PASS), check
    assert rows(sessions) == before


async def test_doctor_fails_a_fastagi_that_runs_the_ivr_without_the_secret() -> None:
    """What the CTI was before defect 8 was fixed: any header block starts the IVR."""
    async def unauthenticated(reader: asyncio.StreamReader,
                              writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\n\n")
        writer.write(b'STREAM FILE /p/zh/ivr.welcome "0123456789*#"\n')
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(unauthenticated, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        check = await asyncio.to_thread(doctor.check_fastagi_auth, "127.0.0.1", port)
    finally:
        server.close()
        await server.wait_closed()
    assert check.status == doctor.FAIL, check
    assert "STREAM FILE" in check.detail and "hotline up" in check.fix


async def test_doctor_warns_when_no_fastagi_server_answers() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()  # the port is free again: nothing listens there
    check = await asyncio.to_thread(doctor.check_fastagi_auth, "127.0.0.1", port)
    assert check.status == doctor.WARN, check
