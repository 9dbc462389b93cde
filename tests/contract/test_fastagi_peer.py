"""Contract tests of the FastAGI server and IVR session against a fake Asterisk over real TCP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from acd.calendar import Calendar, parse_hours
from ivr import agi_session, fastagi, say
from ivr.agi_session import IvrContext, make_ivr_handler
from ivr.engine import Engine
from ivr.fastagi import FastAgiServer
from ivr.schema import load_flow_dir
from outages.announce import Announcement
from prompts.catalog import load_catalog
from tests.support.fakes import Bill

ROOT = Path(__file__).resolve().parents[2]
CATALOG = load_catalog(ROOT / "prompts" / "catalog")
FLOWS = load_flow_dir(ROOT / "ivr" / "flows", CATALOG.has, required=["main"])
TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)

ACCOUNT = "3700081616"
CALLER = "13800138000"
LINKEDID = "1775008800.41"
UNIQUEID = "1775008800.42"
KEYS = "0123456789*#"
GET_INPUT = 'GET FULL VARIABLE "${HOTLINE_INPUT}|${READSTATUS}"'
DEAD = b"511 Command Not Permitted on a dead channel or intercept routine\n"
DEADLINE_S = 5.0
# what the dialplan passes on every AGI() call (?key=); a fake Asterisk runs as this test's own
# user, so these servers have no peer-uid check (tests/contract/test_fastagi_auth.py has both)
SECRET = "c0ffee" * 8


def headers(**over: str) -> dict[str, str]:
    h = {
        "agi_network": "yes", "agi_network_script": f"ivr?key={SECRET}",
        "agi_request": f"agi://127.0.0.1:4573/ivr?key={SECRET}",
        "agi_channel": "PJSIP/carrier-00000007",
        "agi_language": "zh", "agi_type": "PJSIP", "agi_uniqueid": UNIQUEID,
        "agi_version": "22.1.0", "agi_callerid": CALLER, "agi_calleridname": "Zhang San",
        "agi_callingpres": "0", "agi_callingani2": "0", "agi_callington": "0",
        "agi_callingtns": "0", "agi_dnid": "95598", "agi_rdnis": "unknown",
        "agi_context": "from-carrier", "agi_extension": "95598", "agi_priority": "6",
        "agi_enhanced": "0.0", "agi_accountcode": "", "agi_threadid": "140181",
        "agi_arg_1": LINKEDID,
    }
    h.update(over)
    return h


def header_block(h: dict[str, str]) -> bytes:
    return "".join(f"{k}: {v}\n" for k, v in h.items()).encode() + b"\n"


# ---------------------------------------------------------------------------------- the fakes


BILL = Bill(ACCOUNT, Decimal("45.60"), date(2026, 4, 15), None, None)


class FakePrompts:
    def asterisk_path(self, prompt_id: str, lang: str) -> str:
        return f"/p/{lang}/{prompt_id}"


class FakeServices:
    """The database port: bills by account; records what the IVR reports."""

    def __init__(self, bills: dict[str, Any] | None = None, *,
                 query: Callable[[str, dict[str, Any]], Awaitable[Any]] | None = None) -> None:
        self.bills = bills if bills is not None else {ACCOUNT: BILL}
        self._query = query
        self.queries: list[tuple[str, dict[str, Any]]] = []
        self.started: list[dict[str, Any]] = []
        self.finished: list[dict[str, Any]] = []
        self.finished_event = asyncio.Event()

    async def query(self, kind: str, args: dict[str, Any]) -> Any:
        self.queries.append((kind, args))
        if self._query is not None:
            return await self._query(kind, args)
        return self.bills.get(str(args.get("account"))) if kind == "bill" else None

    async def call_started(self, **kw: Any) -> None:
        self.started.append(kw)

    async def ivr_finished(self, **kw: Any) -> None:
        self.finished.append(kw)
        self.finished_event.set()

    lists: dict[str, frozenset[str]] = {}  # caller -> the inbound lists it is on
    lists_fail = False

    async def caller_lists(self, caller: str) -> frozenset[str]:
        if self.lists_fail:
            raise RuntimeError("the database is away")
        return self.lists.get(caller, frozenset())

    calendars_now: dict[str, Calendar] = {}  # skill -> its service hours (none: 7x24)
    calendars_fail = False

    async def calendars(self) -> dict[str, Calendar]:
        if self.calendars_fail:
            raise RuntimeError("the database is away")
        return self.calendars_now

    async def book_callback(self, **kw: Any) -> int:
        self.callbacks = [*getattr(self, "callbacks", []), kw]
        return 7


class FakeAsterisk:
    """Asterisk's side of one FastAGI connection.

    Sends the agi_ header block, then answers each command as Asterisk 22 does and records it.
    `reads` are the caller's answers to successive Read()s ('' = timeout); `keys` maps a prompt
    path to the key pressed while it plays. At the first command containing `hangup_at` the
    caller hangs up, the way `hangup` says: "511" (Asterisk's HANGUP line, then 511 for every
    command), "minus1" (the command fails with result=-1, then 511) or "close" (socket closed).
    """

    def __init__(self, reads: Iterable[str] = (), keys: dict[str, str] | None = None,
                 hangup_at: str | None = None, hangup: str = "511") -> None:
        self.reads = list(reads)
        self.keys = dict(keys or {})
        self.hangup_at = hangup_at
        self.hangup = hangup
        self.dead = False
        self.commands: list[str] = []

    def answer(self, cmd: str) -> bytes | None:
        if self.dead:
            return DEAD
        if self.hangup_at is not None and self.hangup_at in cmd:
            self.dead = True
            if self.hangup == "close":
                return None
            if self.hangup == "minus1":
                return b"200 result=-1 endpos=0\n" if cmd.startswith("STREAM") else \
                    b"200 result=-1\n"
            return b"HANGUP\n" + DEAD
        if cmd.startswith("STREAM FILE "):
            k = self.keys.pop(cmd.split(" ")[2], None)
            return f"200 result={ord(k) if k else 0} endpos=1234\n".encode()
        if cmd.startswith("EXEC Read "):
            return b"200 result=0\n"
        if cmd == GET_INPUT:
            digits = self.reads.pop(0) if self.reads else ""
            return f"200 result=1 ({digits}|{'OK' if digits else 'TIMEOUT'})\n".encode()
        if cmd.startswith("SET VARIABLE "):
            return b"200 result=1\n"
        if cmd == "CHANNEL STATUS":
            return b"200 result=6\n"
        if cmd == "NOOP" or cmd.startswith("SET MUSIC "):
            return b"200 result=0\n"
        if cmd.startswith("WAIT FOR DIGIT "):
            return b"200 result=0\n"  # no key within the wait
        return b"510 Invalid or unknown command\n"

    async def call(self, port: int, block: bytes | None = None) -> None:
        """Run the call until the IVR closes the connection (or the caller hangs up)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(block if block is not None else header_block(headers()))
            await writer.drain()
            while line := await reader.readline():
                cmd = line.decode("utf-8").rstrip("\n")
                self.commands.append(cmd)
                reply = self.answer(cmd)
                if reply is None:
                    return
                writer.write(reply)
                await writer.drain()
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass


@asynccontextmanager
async def serving(services: FakeServices, max_silence_s: float = 2.0,
                  rescue: Callable[[str], Awaitable[bool]] | None = None
                  ) -> AsyncIterator[tuple[FastAgiServer, int]]:
    ctx = IvrContext(engine_factory=lambda: Engine(FLOWS, "main", TZ), prompts=FakePrompts(),
                     services=services, clock=lambda: NOW, max_silence_s=max_silence_s,
                     rescue=rescue)
    server = FastAgiServer({"ivr": make_ivr_handler(ctx)}, "127.0.0.1", 0, secret=SECRET)
    await server.start()
    assert server._server is not None
    port = server._server.sockets[0].getsockname()[1]
    try:
        yield server, port
    finally:
        await server.close()


# -------------------------------------------------------------------------- AGI command forms


def stream(prompt_id: str, barge_in: bool = True, lang: str = "zh") -> str:
    return f'STREAM FILE /p/{lang}/{prompt_id} "{KEYS if barge_in else ""}"'


def read(prompt_id: str, digits: int, timeout: int, lang: str = "zh", term: str = "") -> str:
    """A Read that plays a prompt: a menu's key (no terminator) or a number's first key."""
    return f'EXEC Read "HOTLINE_INPUT,/p/{lang}/{prompt_id},{digits},t({term}),1,{timeout}"'


def read_rest(digits: int, timeout: int, term: str = "#") -> str:
    """The rest of a number after its first key, under the inter-digit timeout."""
    return f'EXEC Read "HOTLINE_INPUT,,{digits},t({term}),1,{timeout}"'


def setvar(name: str, value: str) -> str:
    return f'SET VARIABLE {name} "{value}"'


def pieces(before: str, ids: list[str]) -> list[str]:
    return [stream(before)] + [stream(i) for i in ids]


# -------------------------------------------------------------------------------- whole calls


async def test_bill_lookup_command_sequence_ends_with_hangup() -> None:
    services = FakeServices()
    # '1' pressed during the welcome answers the language menu; then bill, the account, and
    # nothing more: the after-query menu times out twice and the IVR says goodbye
    peer = FakeAsterisk(reads=["1", ACCOUNT[0], ACCOUNT[1:], "", ""],
                        keys={"/p/zh/ivr.welcome": "1"})

    async with serving(services) as (server, port):
        async with asyncio.timeout(DEADLINE_S):
            await peer.call(port)
        # the server closes the socket after its handler is done: nothing is left running
        assert server.active == 0

    assert peer.commands == [
        "NOOP",  # the link probe (agi_session.run)
        stream("ivr.welcome"),
        setvar("CHANNEL(language)", "zh"), setvar("HOTLINE_LANG", "zh"),
        read("ivr.main_menu", 1, 6), GET_INPUT,
        read("ivr.enter_account", 1, 6, term="#"), GET_INPUT,
        read_rest(10, 4), GET_INPUT,
        *pieces("ivr.bill_amount_due", say.say_amount(Decimal("45.60"), "zh")),
        *pieces("ivr.bill_due_date", say.say_date(date(2026, 4, 15), "zh")),
        read("ivr.after_query_menu", 1, 5), GET_INPUT,
        read("ivr.after_query_menu", 1, 5), GET_INPUT,
        stream("ivr.goodbye", barge_in=False),
        setvar("HOTLINE_NEXT", "hangup"),
    ]
    # outage-first asks about the caller's number after the language choice: nothing found
    assert services.queries == [
        ("caller_outages", {"caller": CALLER, "lang": "zh", "tz": TZ, "now": NOW}),
        ("bill", {"account": ACCOUNT, "now": NOW})]
    assert services.started == [{"call_id": LINKEDID, "uniqueid": UNIQUEID, "caller": CALLER,
                                 "dnis": "95598", "now": NOW}]
    [done] = services.finished
    assert (done["call_id"], done["outcome"], done["lang"], done["account"]) == (
        LINKEDID, "self_served", "zh", ACCOUNT)
    assert {"node": "bill_account", "input": ACCOUNT} in done["path"]


async def test_a_caller_on_the_nuisance_list_hears_the_warning_and_the_ivr_ends_the_call(
        ) -> None:
    services = FakeServices()
    services.lists = {CALLER: frozenset({"nuisance"})}
    peer = FakeAsterisk(reads=[])

    async with serving(services) as (_server, port):
        async with asyncio.timeout(DEADLINE_S):
            await peer.call(port)

    # both languages (none is chosen yet), no key stops it, then the IVR's hangup exit
    assert peer.commands == [
        "NOOP",
        stream("callers.nuisance_warning", barge_in=False),
        stream("callers.nuisance_warning", barge_in=False, lang="en"),
        setvar("HOTLINE_NEXT", "hangup"),
    ]
    [done] = services.finished
    assert (done["outcome"], done["skill"]) == ("refused", None)


async def test_a_caller_list_lookup_that_fails_lets_the_caller_in() -> None:
    services = FakeServices()
    services.lists_fail = True
    peer = FakeAsterisk(reads=["1", "0"], keys={"/p/zh/ivr.welcome": "1"})

    async with serving(services) as (_server, port):
        async with asyncio.timeout(DEADLINE_S):
            await peer.call(port)

    assert peer.commands[:2] == ["NOOP", stream("ivr.welcome")]
    assert peer.commands[-1] == setvar("HOTLINE_NEXT", "transfer")


# English from the welcome, then 0 for an agent: the flow transfers to `english`. NOW is
# Wednesday 10:00 in Shanghai; english keeps 08:00-09:00, so it is closed until 08:00 tomorrow
ENGLISH_CALL = {"reads": ["0"], "keys": {"/p/zh/ivr.welcome": "2"}}
EARLY = (parse_hours("08:00-09:00"),) * 7
OPENS = datetime(2026, 4, 2, 8, 0, tzinfo=TZ)


def hours_fact() -> list[str]:
    return [stream("calendars.closed", barge_in=False, lang="en"),
            stream("calendars.opens_at", barge_in=False, lang="en"),
            *[stream(p, barge_in=False, lang="en")
              for p in say.say_datetime(OPENS, "en", now=NOW)]]


def transfer_to(skill: str) -> list[str]:
    return [setvar("HOTLINE_SKILL", skill), setvar("HOTLINE_PRIORITY", "0"),
            setvar("HOTLINE_ACCOUNT", ""), setvar("HOTLINE_REASON", "caller_choice"),
            setvar("HOTLINE_NEXT", "transfer")]


async def test_a_closed_skill_tells_the_hours_and_routes_to_the_open_one() -> None:
    services = FakeServices()
    services.calendars_now = {"english": Calendar("english", EARLY, "route", "general")}
    peer = FakeAsterisk(**ENGLISH_CALL)  # type: ignore[arg-type]

    async with serving(services) as (_server, port):
        async with asyncio.timeout(DEADLINE_S):
            await peer.call(port)

    # the hours fact and the transfer notice instead of the flow's own transfer prompt
    assert peer.commands[peer.commands.index(hours_fact()[0]):] == [
        *hours_fact(), stream("calendars.routed", barge_in=False, lang="en"),
        *transfer_to("general")]
    assert stream("ivr.transfer", barge_in=False, lang="en") not in peer.commands
    [done] = services.finished
    assert (done["outcome"], done["skill"]) == ("transfer", "general")
    assert {"node": "after_hours", "skill": "english", "action": "route",
            "routed_to": "general", "hops": ["general"]} in done["path"]


async def test_a_closed_skill_books_a_callback_after_a_wrong_key() -> None:
    services = FakeServices()
    services.calendars_now = {"english": Calendar("english", EARLY)}
    peer = FakeAsterisk(reads=["0", "7", "1"], keys={"/p/zh/ivr.welcome": "2"})

    async with serving(services) as (_server, port):
        async with asyncio.timeout(DEADLINE_S):
            await peer.call(port)

    offer = read("calendars.callback_offer", 1, 6, lang="en")
    tail = peer.commands[peer.commands.index(hours_fact()[0]):]
    assert tail == [
        *hours_fact(), offer, GET_INPUT,
        stream("ivr.invalid", barge_in=False, lang="en"), "WAIT FOR DIGIT 400",
        offer, GET_INPUT,
        stream("calendars.callback_booked", barge_in=False, lang="en"),
        setvar("HOTLINE_NEXT", "hangup")]
    [booked] = services.callbacks
    assert (booked["caller"], booked["skill"], booked["at"], booked["lang"]) == (
        CALLER, "english", OPENS, "en")
    [done] = services.finished
    assert (done["outcome"], done["skill"]) == ("self_served", None)
    step = next(p for p in done["path"] if p.get("node") == "after_hours")
    assert (step["answer"], step["job"], step["callback_at"]) == (
        "book", 7, OPENS.isoformat())


async def test_a_callback_not_taken_goes_to_the_7x24_skill() -> None:
    services = FakeServices()
    services.calendars_now = {"english": Calendar("english", EARLY)}
    peer = FakeAsterisk(reads=["0", ""], keys={"/p/zh/ivr.welcome": "2"})

    async with serving(services) as (_server, port):
        async with asyncio.timeout(DEADLINE_S):
            await peer.call(port)

    assert peer.commands[-8:] == [
        read("calendars.callback_offer", 1, 6, lang="en"), GET_INPUT,
        stream("calendars.routed", barge_in=False, lang="en"), *transfer_to("general")]
    assert not hasattr(services, "callbacks")
    [done] = services.finished
    assert done["skill"] == "general"
    assert {"node": "after_hours", "skill": "english", "action": "callback", "answer": "none",
            "routed_to": "general"} in done["path"]


async def test_a_failed_calendar_lookup_lets_the_call_through_as_if_open() -> None:
    services = FakeServices()
    services.calendars_fail = True
    peer = FakeAsterisk(**ENGLISH_CALL)  # type: ignore[arg-type]

    async with serving(services) as (_server, port):
        async with asyncio.timeout(DEADLINE_S):
            await peer.call(port)

    assert peer.commands[-6:] == [stream("ivr.transfer", barge_in=False, lang="en"),
                                  *transfer_to("english")]
    assert services.finished[0]["skill"] == "english"


async def test_bill_lookup_then_agent_ends_with_transfer() -> None:
    services = FakeServices()
    peer = FakeAsterisk(reads=["1", "1", ACCOUNT[0], ACCOUNT[1:], "0"])

    async with serving(services) as (_server, port):
        async with asyncio.timeout(DEADLINE_S):
            await peer.call(port)

    assert peer.commands[:4] == ["NOOP", stream("ivr.welcome"), read("ivr.language_menu", 1, 4),
                                 GET_INPUT]
    assert peer.commands[-8:] == [
        read("ivr.after_query_menu", 1, 5), GET_INPUT,
        stream("ivr.transfer", barge_in=False),
        setvar("HOTLINE_SKILL", "general"), setvar("HOTLINE_PRIORITY", "0"),
        setvar("HOTLINE_ACCOUNT", ACCOUNT), setvar("HOTLINE_REASON", "caller_choice"),
        setvar("HOTLINE_NEXT", "transfer"),
    ]
    # HOTLINE_NEXT is set once, last: it commits the dialplan's exit
    assert [c for c in peer.commands if "HOTLINE_NEXT" in c] == [peer.commands[-1]]
    [done] = services.finished
    assert (done["outcome"], done["skill"], done["priority"], done["account"]) == (
        "transfer", "general", 0, ACCOUNT)


async def test_english_caller_hears_english_prompts() -> None:
    services = FakeServices()
    peer = FakeAsterisk(reads=["2", "0"])

    async with serving(services) as (_server, port):
        async with asyncio.timeout(DEADLINE_S):
            await peer.call(port)

    assert peer.commands[4:] == [  # after the probe, the welcome and the language menu
        setvar("CHANNEL(language)", "en"), setvar("HOTLINE_LANG", "en"),
        read("ivr.main_menu", 1, 6, lang="en"), GET_INPUT,
        stream("ivr.transfer", barge_in=False, lang="en"),
        setvar("HOTLINE_SKILL", "english"), setvar("HOTLINE_PRIORITY", "0"),
        setvar("HOTLINE_ACCOUNT", ""), setvar("HOTLINE_REASON", "caller_choice"),
        setvar("HOTLINE_NEXT", "transfer"),
    ]
    assert services.finished[0]["lang"] == "en"


def in_order(wanted: list[str], commands: list[str]) -> bool:
    """Whether `wanted` appear in `commands` in this order (other commands may come between)."""
    it = iter(commands)
    return all(any(c == w for c in it) for w in wanted)


async def test_garbage_at_the_main_menu_is_refused_then_the_menu_is_asked_again() -> None:
    services = FakeServices()
    peer = FakeAsterisk(reads=["1", "*", "0"])

    async with serving(services) as (_server, port):
        async with asyncio.timeout(DEADLINE_S):
            await peer.call(port)

    assert in_order([read("ivr.main_menu", 1, 6), GET_INPUT,
                     stream("ivr.invalid", barge_in=False),
                     read("ivr.main_menu", 1, 6), GET_INPUT,
                     stream("ivr.transfer", barge_in=False),
                     setvar("HOTLINE_NEXT", "transfer")], peer.commands), peer.commands
    assert services.finished[0]["outcome"] == "transfer"


async def test_truncated_utf8_caller_name_does_not_crash_the_session() -> None:
    services = FakeServices()
    peer = FakeAsterisk(reads=["1", "0"])
    # 张三 cut in the middle of 三's three bytes, as the carrier delivers long names
    block = header_block(headers()).replace(b"agi_calleridname: Zhang San",
                                            b"agi_calleridname: \xe5\xbc\xa0\xe4\xb8")

    async with serving(services) as (_server, port):
        async with asyncio.timeout(DEADLINE_S):
            await peer.call(port, block)

    assert peer.commands[:2] == ["NOOP", stream("ivr.welcome")]
    assert peer.commands[-1] == setvar("HOTLINE_NEXT", "transfer")
    assert services.started[0]["caller"] == CALLER
    assert services.finished[0]["outcome"] == "transfer"


# ----------------------------------------------------------------------- connections that are not


async def test_bare_connects_and_silent_peers_neither_spin_nor_stall_the_server(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastagi, "HEADER_TIMEOUT_S", 0.5)
    services = FakeServices()

    async with serving(services) as (server, port):
        for _ in range(20):  # connect, then close at once
            _r, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            await w.wait_closed()
        silent_r, silent_w = await asyncio.open_connection("127.0.0.1", port)
        partial_r, partial_w = await asyncio.open_connection("127.0.0.1", port)
        partial_w.write(b"agi_network: yes\nagi_network_script: ivr\n")  # never the blank line
        await partial_w.drain()
        cpu0, wall0 = time.process_time(), time.monotonic()

        # a real call is served promptly meanwhile
        peer = FakeAsterisk(reads=["1", "0"])
        async with asyncio.timeout(1.0):
            await peer.call(port)
        assert peer.commands[-1] == setvar("HOTLINE_NEXT", "transfer")

        # the two that never finish their headers are closed by the server
        async with asyncio.timeout(DEADLINE_S):
            assert await silent_r.read() == b""
            assert await partial_r.read() == b""
        # and no handler of the bare connections is still running
        assert server.active == 0
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        for w in (silent_w, partial_w):
            w.close()
            await w.wait_closed()

    assert wall >= 0.4
    assert cpu < wall / 2, f"the server burnt {cpu:.2f}s of CPU in {wall:.2f}s: spinning"
    assert services.started == [services.started[0]]  # only the real call reached the IVR


async def test_unknown_script_is_closed_without_commands() -> None:
    services = FakeServices()
    peer = FakeAsterisk()

    async with serving(services) as (_server, port):
        async with asyncio.timeout(DEADLINE_S):
            await peer.call(port,
                            header_block(headers(agi_network_script=f"billing?key={SECRET}")))

    assert peer.commands == []
    assert services.started == []


# ------------------------------------------------------------------------- caller hangs up


@pytest.mark.parametrize("how", ["511", "minus1", "close"])
@pytest.mark.parametrize("where", ["enter_account", "ivr.bill_due_date"],
                         ids=["during-read", "during-prompt"])
async def test_caller_hanging_up_mid_session_ends_it_cleanly(how: str, where: str) -> None:
    services = FakeServices()
    peer = FakeAsterisk(reads=["1", "1", ACCOUNT[0], ACCOUNT[1:]], hangup_at=where, hangup=how)

    async with serving(services) as (server, port):
        async with asyncio.timeout(DEADLINE_S):
            await peer.call(port)
            await services.finished_event.wait()
        assert server.active == 0

    hung_up_at = next(i for i, c in enumerate(peer.commands) if where in c)
    after = peer.commands[hung_up_at + 1:]
    # at most a CHANNEL STATUS to tell a dead channel from a missing file, then nothing
    assert after in ([], ["CHANNEL STATUS"])
    assert not any("HOTLINE_NEXT" in c for c in peer.commands)
    [done] = services.finished
    assert done["outcome"] == "hangup"
    assert done["call_id"] == LINKEDID


# ----------------------------------------------------------------------- a broken database


async def test_lookup_that_raises_sends_the_caller_to_an_agent() -> None:
    async def broken(kind: str, args: dict[str, Any]) -> Any:
        raise ConnectionRefusedError("database is down")

    services = FakeServices(query=broken)
    peer = FakeAsterisk(reads=["1", "1", ACCOUNT[0], ACCOUNT[1:]])

    async with serving(services) as (_server, port):
        async with asyncio.timeout(DEADLINE_S):
            await peer.call(port)

    assert peer.commands[-10:] == [
        read("ivr.enter_account", 1, 6, term="#"), GET_INPUT,
        read_rest(10, 4), GET_INPUT,
        stream("ivr.lookup_failed", barge_in=False),
        setvar("HOTLINE_SKILL", "general"), setvar("HOTLINE_PRIORITY", "0"),
        setvar("HOTLINE_ACCOUNT", ACCOUNT), setvar("HOTLINE_REASON", "lookup_failed"),
        setvar("HOTLINE_NEXT", "transfer"),
    ]
    assert services.finished[0]["outcome"] == "transfer"
    assert {"node": "bill_lookup", "query": "bill", "found": False,
            "error": "ConnectionRefusedError"} in services.finished[0]["path"]


async def test_lookup_that_hangs_past_the_timeout_sends_the_caller_to_an_agent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agi_session, "QUERY_TIMEOUT_S", 0.2)
    never = asyncio.Event()

    async def stuck(kind: str, args: dict[str, Any]) -> Any:
        await never.wait()

    services = FakeServices(query=stuck)
    peer = FakeAsterisk(reads=["1", "1", ACCOUNT[0], ACCOUNT[1:]])

    async with serving(services) as (_server, port):
        async with asyncio.timeout(2.0):
            await peer.call(port)

    assert peer.commands[-6:] == [
        stream("ivr.lookup_failed", barge_in=False),
        setvar("HOTLINE_SKILL", "general"), setvar("HOTLINE_PRIORITY", "0"),
        setvar("HOTLINE_ACCOUNT", ACCOUNT), setvar("HOTLINE_REASON", "lookup_failed"),
        setvar("HOTLINE_NEXT", "transfer"),
    ]
    assert {"node": "bill_lookup", "query": "bill", "found": False,
            "error": "timeout"} in services.finished[0]["path"]


class StuckRecords(FakeServices):
    """The call-record writes hang (a locked table), until released."""

    def __init__(self, stuck: str) -> None:
        super().__init__()
        self.stuck = stuck
        self.release = asyncio.Event()

    async def call_started(self, **kw: Any) -> None:
        if self.stuck == "call_started":
            await self.release.wait()
        await super().call_started(**kw)

    async def ivr_finished(self, **kw: Any) -> None:
        if self.stuck == "ivr_finished":
            await self.release.wait()
        await super().ivr_finished(**kw)


async def test_a_stuck_call_record_write_does_not_leave_the_caller_in_silence(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A lookup that hangs is cut off after QUERY_TIMEOUT_S; a record write that hangs must not
    hold the caller either: not before the welcome, not before the transfer."""
    monkeypatch.setattr(agi_session, "QUERY_TIMEOUT_S", 0.2)
    at_start, at_end = StuckRecords("call_started"), StuckRecords("ivr_finished")
    peers = [FakeAsterisk(reads=["1", "0"]), FakeAsterisk(reads=["1", "0"])]

    async with serving(at_start) as (_s1, port1), serving(at_end) as (_s2, port2):
        calls = [asyncio.create_task(peers[0].call(port1)),
                 asyncio.create_task(peers[1].call(port2))]
        try:
            # well past QUERY_TIMEOUT_S, and the 5 s default any record timeout would take
            done, _pending = await asyncio.wait(calls, timeout=6.0)
            heard = [list(p.commands) for p in peers]
        finally:
            at_start.release.set()
            at_end.release.set()
            async with asyncio.timeout(DEADLINE_S):
                await asyncio.gather(*calls, return_exceptions=True)

    silences = []
    if heard[0][:2] != ["NOOP", stream("ivr.welcome")]:
        silences.append("call_started hangs: the welcome never came")
    if heard[1][-1:] != [setvar("HOTLINE_NEXT", "transfer")]:
        silences.append(f"ivr_finished hangs: no transfer after {heard[1][-1:]}")
    assert silences == []
    assert len(done) == 2


# ------------------------------------------------- slow lookups and a slow FastAGI path (issue 11)


class MusicWatcher(FakeAsterisk):
    """Sets `music` when the IVR starts the music (SET MUSIC on)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.music = asyncio.Event()

    def answer(self, cmd: str) -> bytes | None:
        if cmd.startswith("SET MUSIC on"):
            self.music.set()
        return super().answer(cmd)


async def test_a_lookup_slower_than_the_silence_budget_plays_music_until_it_answers() -> None:
    peer = MusicWatcher(reads=["1", "1", ACCOUNT[0], ACCOUNT[1:], "0"])

    async def slow(kind: str, args: dict[str, Any]) -> Any:
        if kind == "caller_outages":
            return None  # no outage notice for this caller
        # answers only once the caller hears music: slower than the budget by construction
        await peer.music.wait()
        return BILL

    services = FakeServices(query=slow)

    async with serving(services, max_silence_s=0.2) as (_server, port):
        async with asyncio.timeout(DEADLINE_S):
            await peer.call(port)

    at = peer.commands.index(read_rest(10, 4))
    # the lookup runs after the account's GET_INPUT: music, then the bill is read out
    assert peer.commands[at + 1:at + 5] == [GET_INPUT, "SET MUSIC on default", "SET MUSIC off",
                                            stream("ivr.bill_amount_due")]
    assert services.finished[0]["outcome"] == "transfer"


async def test_a_lookup_past_its_deadline_plays_music_then_apologises_and_transfers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agi_session, "QUERY_TIMEOUT_S", 0.6)
    never = asyncio.Event()

    async def stuck(kind: str, args: dict[str, Any]) -> Any:
        await never.wait()

    services = FakeServices(query=stuck)
    peer = FakeAsterisk(reads=["1", "1", ACCOUNT[0], ACCOUNT[1:]])

    async with serving(services, max_silence_s=0.2) as (_server, port):
        async with asyncio.timeout(DEADLINE_S):
            await peer.call(port)

    assert peer.commands[-8:] == [
        "SET MUSIC on default", "SET MUSIC off",
        stream("ivr.lookup_failed", barge_in=False),
        setvar("HOTLINE_SKILL", "general"), setvar("HOTLINE_PRIORITY", "0"),
        setvar("HOTLINE_ACCOUNT", ACCOUNT), setvar("HOTLINE_REASON", "lookup_failed"),
        setvar("HOTLINE_NEXT", "transfer"),
    ]


class SlowAsterisk(FakeAsterisk):
    """A FastAGI path that delivers our commands late: every reply is held until `late` is set
    (here: once the IVR has given up on the path), so it is later than any silence budget."""

    def __init__(self, late: asyncio.Event, **kw: Any) -> None:
        super().__init__(**kw)
        self.late = late

    async def call(self, port: int, block: bytes | None = None) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(header_block(headers()))
            await writer.drain()
            while line := await reader.readline():
                self.commands.append(line.decode("utf-8").rstrip("\n"))
                await self.late.wait()
                writer.write(self.answer(self.commands[-1]) or b"")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


async def test_a_fastagi_path_slower_than_the_silence_budget_goes_to_the_dialplan_fallback(
        ) -> None:
    """The link probe times out: no prompt is sent, HOTLINE_NEXT stays empty, the caller is
    moved to the dialplan's fallback over the other path (AMI: the close itself comes late),
    and the call is recorded as fallback."""
    services = FakeServices()
    gave_up = asyncio.Event()
    peer = SlowAsterisk(gave_up, reads=["1", "0"])
    moved: list[str] = []

    async def rescue(channel: str) -> bool:
        moved.append(channel)
        gave_up.set()  # the path's replies arrive only now: after the IVR gave up on it
        return True

    async with serving(services, max_silence_s=0.2, rescue=rescue) as (server, port):
        async with asyncio.timeout(DEADLINE_S):
            await peer.call(port)
        assert server.active == 0

    assert peer.commands == ["NOOP"]
    assert moved == ["PJSIP/carrier-00000007"]
    assert [f["outcome"] for f in services.finished] == ["fallback"]


# ------------------------------------------------------------------------------- outage-first

NOTICE = Announcement(prompts=("outage.here", "outage.cause.fault", "outage.restore_unknown",
                               "outage.hangup_hint"), notice_ids=(7,), accounts=(ACCOUNT,))


def notice_services(answer: Callable[[], Awaitable[Any]] | None = None) -> FakeServices:
    async def query(kind: str, args: dict[str, Any]) -> Any:
        if kind == "caller_outages":
            return await answer() if answer is not None else NOTICE
        return None
    return FakeServices(query=query)


@pytest.mark.parametrize("hangup_at", ["/p/zh/outage.cause.fault", "/p/zh/outage.hangup_hint"],
                         ids=["during-notice", "in-window"])
async def test_a_caller_who_hangs_up_at_the_notice_is_deflected(hangup_at: str) -> None:
    services = notice_services()
    peer = FakeAsterisk(reads=["1"], hangup_at=hangup_at)

    async with serving(services) as (_server, port):
        async with asyncio.timeout(DEADLINE_S):
            await peer.call(port)
        await asyncio.wait_for(services.finished_event.wait(), DEADLINE_S)

    assert stream("outage.here") in peer.commands
    [done] = services.finished
    assert (done["outcome"], list(done["outage_ids"])) == ("deflected", [7])


async def test_1_after_the_notice_goes_to_the_menu_and_the_call_keeps_what_it_heard() -> None:
    services = notice_services()
    peer = FakeAsterisk(reads=["1", "1", "0"])

    async with serving(services) as (_server, port):
        async with asyncio.timeout(DEADLINE_S):
            await peer.call(port)

    assert in_order([stream("outage.here"), stream("outage.cause.fault"),
                     stream("outage.restore_unknown"), read("outage.hangup_hint", 1, 4),
                     GET_INPUT, read("ivr.main_menu", 1, 6), GET_INPUT,
                     setvar("HOTLINE_NEXT", "transfer")], peer.commands), peer.commands
    [done] = services.finished
    assert (done["outcome"], list(done["outage_ids"])) == ("transfer", [7])


async def test_a_hang_up_at_the_menu_after_the_window_is_a_plain_hangup() -> None:
    services = notice_services()
    peer = FakeAsterisk(reads=["1", ""], hangup_at="/p/zh/ivr.main_menu")

    async with serving(services) as (_server, port):
        async with asyncio.timeout(DEADLINE_S):
            await peer.call(port)
        await asyncio.wait_for(services.finished_event.wait(), DEADLINE_S)

    [done] = services.finished
    assert (done["outcome"], list(done["outage_ids"])) == ("hangup", [7])


async def test_a_slow_outage_lookup_gives_up_for_the_menu_without_music() -> None:
    """Outage-first was not asked for: past its own 1.5 s the caller gets the menu; the music
    never starts when the lookup's limit is within the silence budget."""
    never = asyncio.Event()

    async def stuck() -> Any:
        await never.wait()

    services = notice_services(stuck)
    peer = FakeAsterisk(reads=["1", "0"])
    loop = asyncio.get_running_loop()

    async with serving(services, max_silence_s=2.0) as (_server, port):
        t0 = loop.time()
        async with asyncio.timeout(DEADLINE_S):
            await peer.call(port)
        took = loop.time() - t0

    assert not [c for c in peer.commands if c.startswith("SET MUSIC")]
    assert in_order([GET_INPUT, read("ivr.main_menu", 1, 6)], peer.commands)
    assert stream("outage.here") not in peer.commands
    assert 1.4 < took < 3.0, took
    [done] = services.finished
    assert done["outcome"] == "transfer" and not list(done["outage_ids"])
    assert {"node": "outage_first", "query": "caller_outages", "found": False,
            "error": "timeout"} in done["path"]
