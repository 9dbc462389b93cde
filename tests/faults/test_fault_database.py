"""The database unreachable for 30 s under a steady load (issue 11): SQLite locked (a second
connection holding BEGIN EXCLUSIVE), and PostgreSQL stopped (`pg_ctl stop -m immediate`, a
private cluster of this module's own: the machine's shared PostgreSQL on 5432 is never
touched).

Beside the harness's callers (who ask for an agent), a SIPp process of this module's own keeps
fault reporters on the line: Mandarin, 3 (fault report), 1 (confirm), a 10-digit account and
`#`. During the outage their reports are journalled (callcenter/journal.py) and they are told
their number comes later; once the database is back the journal is replayed.

Asserted: nobody silent longer than SILENCE_MAX_S; every call of the outage ends in exactly one
outcome with a closed call record (and a recording if answered); every fault report taken
during the outage is in the database exactly once; the journal is empty after the replay.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from bench.sipp import scenario
from bench.sipp_load import stop, write_silence_pcap
from callcenter.journal import JOURNAL_NAME, FileJournal
from cti.db.models import Account, Call, WorkOrder
from hotline import stack
from tests.faults.calls import CallerView
from tests.faults.checks import SILENCE_MAX_S, outcomes_and_recordings, report, silence
from tests.faults.conftest import PREFIX, Hotline, running_hotline
from tests.support.ports import SLOT, port

pytestmark = pytest.mark.integration

OUTAGE_S = 30
REPORTERS = 6  # fault reporters on the line at once
REPORTER_PREFIX = f"{PREFIX}{SLOT}8"  # in the harness's book (PREFIX), apart from its callers
FAULT_PREFIX, LOOKUP_PREFIX = f"{REPORTER_PREFIX}1", f"{REPORTER_PREFIX}2"  # report; bill
REPORTERS_SIP, REPORTERS_MEDIA = port(21077), port(22336)
PG_PORT = port(25432, 10)  # the private cluster's: no other test uses 2543x-2548x


# ------------------------------------------------------------------------ the fault reporters


def _reporter_xml(pcap: Path, account: str) -> str:
    """Mandarin (1), then the menu keys from the numbers file: a fault report (3, confirm 1)
    or a bill lookup (9 hears the menu again, 1 bill); the account and #. The IVR then speaks
    (the order's number, "recorded, the number comes later", the bill, or an apology and an
    agent) and the IVR or the agent hangs up."""
    num = "[field0]"
    cseq = iter(range(2, 100))
    keys = [("1", 1500), ("[field1]", 1500), ("[field2]", 2500)] + \
        [(d, 300) for d in account] + [("#", 300)]
    steps = [f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n']
    for digit, pause in keys:
        steps.append(f'  <pause milliseconds="{pause}"/>\n')
        steps.append(scenario("caller_info", number=num, cseq=next(cseq), digit=digit))
    steps.append(scenario("caller_awaits_bye"))
    return scenario("caller", title="fault reporter", invite=scenario("caller_invite", number=num),
                    steps="".join(steps))


def start_reporters(h: Hotline, account: str) -> subprocess.Popen[bytes]:
    wd = h.workdir / "reporters"
    wd.mkdir(exist_ok=True)
    pcap = wd / "silence.pcap"
    write_silence_pcap(pcap, 120)
    (wd / "reporters.xml").write_text(_reporter_xml(pcap, account), encoding="iso-8859-1")
    (wd / "numbers.csv").write_text(
        "SEQUENTIAL\n" + "".join(
            f"{LOOKUP_PREFIX}{i:04d};9;1;\n" if i % 3 == 2 else f"{FAULT_PREFIX}{i:04d};3;1;\n"
            for i in range(2000)),
        encoding="ascii")
    return subprocess.Popen(
        ["sipp", h.sip_target, "-sf", str(wd / "reporters.xml"), "-inf", str(wd / "numbers.csv"),
         "-s", "95598", "-m", "2000", "-l", str(REPORTERS), "-r", "1", "-rp", "2000",
         "-i", "127.0.0.1", "-p", str(REPORTERS_SIP), "-mp", str(REPORTERS_MEDIA),
         "-cp", str(REPORTERS_SIP + 1), "-recv_timeout", "120000", "-nostdin",
         "-trace_err", "-error_file", str(wd / "reporters.err")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, cwd=wd)


def quit_reporters(proc: subprocess.Popen[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"q", ("127.0.0.1", REPORTERS_SIP + 1))


# ------------------------------------------------------------------------ a private PostgreSQL


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(p.split("/")[4]))
    assert found, f"PostgreSQL's {name} is not installed: run `make test` (it installs it)"
    return found[-1]


class PrivatePostgres:
    """A throwaway cluster: initdb into a temp dir as `postgres`, its own port (PG_PORT), its
    unix socket in the temp dir, password (scram) logins only."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"hotline-faults-pg-slot{SLOT}-", dir="/tmp"))
        self.data = self.root / "data"
        self.password = secrets.token_urlsafe(16)
        pg = pwd.getpwnam("postgres")
        os.chown(self.root, pg.pw_uid, pg.pw_gid)
        os.chmod(self.root, 0o700)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n", encoding="ascii")
        os.chown(pwfile, pg.pw_uid, pg.pw_gid)
        os.chmod(pwfile, 0o600)
        self._as_pg([_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--pwfile",
                     str(pwfile), "--auth-local=scram-sha-256", "--auth-host=scram-sha-256",
                     "-E", "UTF8", "--locale=C.UTF-8"])
        pwfile.unlink()

    def _as_pg(self, cmd: list[str], timeout: float = 120) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True, timeout=timeout,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.root)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres:{self.password}@127.0.0.1:{PG_PORT}/hotline"

    def start(self) -> None:
        self._as_pg([_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.root / "pg.log"),
                     "-w", "-t", "60", "-o",
                     f"-p {PG_PORT} -k {self.root} -c listen_addresses=127.0.0.1 "
                     "-c max_connections=100 -c fsync=on", "start"])

    def stop_immediate(self) -> None:
        self._as_pg([_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                     "stop"])

    def create_database(self) -> None:
        admin = create_engine(make_url(self.url).set(database="postgres"),
                              isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql("CREATE DATABASE hotline")
        finally:
            admin.dispose()

    def destroy(self) -> None:
        try:
            self._as_pg([_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"])
        except subprocess.CalledProcessError:
            pass  # not running
        shutil.rmtree(self.root, ignore_errors=True)


# ------------------------------------------------------------------------ the stacks


# one stack at a time (they share the harness's ports): each test builds and ends its own
@pytest.fixture
def sqlite_hotline() -> Iterator[Hotline]:
    with running_hotline() as h:
        yield h


@pytest.fixture
def pg() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    try:
        cluster.start()
        cluster.create_database()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def pg_hotline(pg: PrivatePostgres) -> Iterator[Hotline]:
    with running_hotline(db_url=pg.url) as h:
        yield h


def _sqlite_lock(h: Hotline) -> tuple[Callable[[], None], Callable[[], None]]:
    """A second connection holding BEGIN EXCLUSIVE: every writer waits, then fails."""
    path = make_url(h.db_url).database
    assert path
    holder: list[sqlite3.Connection] = []

    def lock() -> None:
        con = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        con.execute("BEGIN EXCLUSIVE")
        holder.append(con)

    def unlock() -> None:
        con = holder.pop()
        con.execute("ROLLBACK")
        con.close()
    return lock, unlock


# ------------------------------------------------------------------------ the fault


def _an_account(h: Hotline) -> str:
    with h.sessions() as s:
        account = s.scalars(select(Account.account_no).order_by(Account.id).limit(1)).one()
    assert len(account) == 10 and account.isdigit(), account
    return account


def _journal(h: Hotline) -> FileJournal:
    return FileJournal(h.settings.state_dir / JOURNAL_NAME)


def _outage(h: Hotline, name: str, inject: Callable[[], None], restore: Callable[[], None]
            ) -> None:
    reporters = start_reporters(h, _an_account(h))
    h.extra_sipp.append(reporters)  # stopped by the stack's teardown if this test fails
    try:
        h.steady()
        # the reporters have reached the IVR before the fault (one of theirs is on the line)
        h.until(lambda b: any(c.number.startswith(REPORTER_PREFIX) for c in b.calls.values()),
                60, "a fault reporter on the line")
        t_down = time.time()
        in_flight = h.catch_up().in_flight(t_down)
        inject()
        # the fault itself: the database away for 30 s (a deadline on the clock)
        h.through(t_down + OUTAGE_S, f"{OUTAGE_S} s without the database")
        journalled_at_restore = len(_journal(h).pending())
        restore()
        t_back = time.time()
        journal = _journal(h)
        stack.wait_until(lambda: journal.pending() == [] and journal.path.stat().st_size == 0,
                         60, "the journal to be replayed", interval=0.2)
        t_replayed = time.time()
    finally:
        quit_reporters(reporters)
    book = h.catch_up()
    started = [c for c in book.calls.values() if t_down <= c.created < t_back]
    everyone = {c.uid: c for c in [*in_flight, *started]}
    book = h.ended(set(everyone), 180, "the calls of the outage to end")
    stack.wait_until(lambda: reporters.poll() is not None, 120, "the fault reporters to end")
    stop(reporters)
    calls: list[CallerView] = [book.calls[u] for u in everyone]
    reporter_calls = [c for c in calls if c.number.startswith(REPORTER_PREFIX)]
    waiting = [c for c in calls if not c.number.startswith(REPORTER_PREFIX) and c.queued]
    lost = [c.number for c in waiting if not c.answered]
    worst, who = silence(calls)
    # the fault reports: each reporter call whose IVR reached fault_create has exactly one order
    with h.sessions() as s:
        recs = {r.call_id: r for r in s.scalars(
            select(Call).where(Call.call_id.in_([c.uid for c in reporter_calls])))}
        orders = {call_id: n for call_id, n in s.execute(
            select(WorkOrder.call_id, func.count()).where(
                WorkOrder.call_id.in_([c.uid for c in reporter_calls]))
            .group_by(WorkOrder.call_id)).all()}
    reported = {uid: step for uid, r in recs.items() for step in (r.ivr_path or [])
                if isinstance(step, dict) and step.get("node") == "fault_create"}
    # a bill lookup the outage made fail: an apology and an agent (the flow's lookup_failed)
    failed_lookups = {uid: r for uid, r in recs.items() if any(
        isinstance(step, dict) and step.get("query") == "bill" and step.get("error")
        and step.get("node") == "bill_lookup" for step in (r.ivr_path or []))}
    not_to_agent = [book.calls[uid].number for uid, r in failed_lookups.items()
                    if not (r.outcome == "transfer" and r.answered_at is not None and any(
                        isinstance(step, dict) and step.get("reason") == "lookup_failed"
                        for step in r.ivr_path))]
    journalled = [uid for uid, step in reported.items() if step.get("workorder") == ""]
    wrong = {uid: orders.get(uid, 0) for uid in reported if orders.get(uid, 0) != 1}
    row: dict[str, Any] = {
        "fault": name, "calls_in_flight": len(in_flight), "calls_during_outage": len(started),
        "fault_reporters": len(reporter_calls), "fault_reports": len(reported),
        "fault_reports_journalled": len(journalled),
        "lookups_failed_to_agent": len(failed_lookups) - len(not_to_agent),
        "journal_entries_at_restore": journalled_at_restore,
        "work_orders_lost_or_doubled": len(wrong), "calls_lost": len(lost),
        "journal_replayed_s": round(t_replayed - t_back, 2), "max_silence_s": round(worst, 2)}
    try:
        row.update(outcomes_and_recordings(h, calls))
    finally:
        report(row)
    assert journalled, "no fault report was taken (and journalled) during the outage"
    assert not wrong, f"fault reports not in the database exactly once: {wrong}"
    assert failed_lookups, "no bill lookup met the outage"
    assert not not_to_agent, f"failed lookups not put through to an agent: {not_to_agent}"
    assert not lost, f"callers who never reached an agent: {lost}"
    assert worst <= SILENCE_MAX_S, f"{who and who.number} heard {worst:.1f}s of silence"
    assert _journal(h).pending() == []


def test_sqlite_locked_30s_fault_reports_journalled_and_replayed_once(
        sqlite_hotline: Hotline) -> None:
    lock, unlock = _sqlite_lock(sqlite_hotline)
    _outage(sqlite_hotline, "database unreachable 30 s (SQLite locked)", lock, unlock)


def test_postgresql_stopped_30s_fault_reports_journalled_and_replayed_once(
        pg: PrivatePostgres, pg_hotline: Hotline) -> None:
    _outage(pg_hotline, "database unreachable 30 s (PostgreSQL stopped)", pg.stop_immediate,
            pg.start)
    assert pg_hotline.cti.status().get("pid"), "the CTI stopped during the outage"
