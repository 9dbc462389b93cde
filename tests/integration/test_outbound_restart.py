"""The outbound engine's two promises on the real stack (issue 14's done-when): no call is
placed outside the call window, and a CTI restart mid-campaign dials nobody twice.

- The window: the CTI is restarted with a window that opens hours from now; a return visit
  falls due, the engine ticks over it (cti.status.json counts its ticks and says the window is
  shut) and Asterisk sees no dial; back on the suite's any-hour window the same job is dialled
  at once, once.
- The restart: a return visit is answered by the SIPp customer, and the CTI is killed (-9)
  while the customer listens to the survey. Another order is resolved while it is down (its
  visit waits in the database). The restarted CTI finds its attempt's channel still up by its
  ChannelId and keeps it; the customer's key lands on that attempt; the second visit is dialled
  once. Every dial Asterisk saw is an attempt of its own, and each job has exactly one.

Waits are on AMI events, the CTI's status and database conditions, with deadlines.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import tomli_w
from sqlalchemy import update

from callcenter.outbound_service import attempt_of
from config.settings import load_settings
from cti.db import outbound as store
from cti.db.models_outbound import OutboundJob
from hotline import stack
from tests.integration.conftest import CUSTOMER_PORT, Backend, CtiProcess, ItEnv
from tests.integration.test_outbound_calls import _attempts, _job_of, _resolve_repair, _service
from tests.support.agent_phones import AgentPhones
from tests.support.ami import AmiRecorder, Event, send_action

pytestmark = pytest.mark.integration
serial = iter(range(1, 100_000))


def _number(backend: Backend) -> str:
    return f"{backend.prefix}85{next(serial):05d}"


def _dial(e: Event) -> bool:
    """A channel the outbound engine Originated (its ChannelId names the attempt)."""
    return e.get("Event") == "Newchannel" and attempt_of(str(e.get("Uniqueid", ""))) is not None


def _answered(ami: AmiRecorder, mark: int, attempts: set[int], what: str) -> Event:
    return ami.wait_for(lambda e: e.get("Event") == "UserEvent"
                        and e.get("UserEvent") == "HotlineOutboundAnswered"
                        and int(str(e.get("Attempt") or -1)) in attempts, 40, what, since=mark)


def _key(ami: AmiRecorder, mark: int, answered: Event, key: str) -> None:
    """The customer keys `key` during the survey; until the CTI has it on the attempt."""
    reply = send_action(ami, {"Action": "PlayDTMF", "Channel": answered["Channel"],
                              "Digit": key, "Duration": "200", "Receive": "yes"})
    assert reply.success, reply
    ami.wait_for(lambda e: e.get("Event") == "UserEvent"
                 and e.get("UserEvent") == "HotlineOutboundResult"
                 and e.get("Attempt") == answered["Attempt"], 30, f"key {key} heard",
                 since=mark)


def _job(backend: Backend, job_id: int) -> Any:
    with backend.sessions() as s:
        return store.get(s, job_id)


def _outbound(cti: CtiProcess) -> dict[str, Any]:
    """The outbound engine's part of the running CTI's status (cti.status.json); {} while the
    file is a previous process's (a killed CTI leaves its last one behind)."""
    st = cti.status()
    return (st.get("outbound") or {}) if st.get("pid") == cti.pid else {}


def _withdraw(backend: Backend, jobs: list[int]) -> None:
    """A failed test's visits not yet dialled are cancelled: a CTI started after it would dial
    them in a later test (a clean-clone run: the storm test's callback met one)."""
    with backend.sessions.begin() as s:
        s.execute(update(OutboundJob).where(OutboundJob.id.in_(jobs),
                                            OutboundJob.state == "scheduled")
                  .values(state="cancelled"))


def _idle(cti: CtiProcess) -> None:
    """Until the outbound engine runs (recovered) with no earlier test's attempt in flight."""
    stack.wait_until(lambda: _outbound(cti).get("recovered") is True, 30,
                     "the outbound engine running (recovered)")
    stack.wait_until(lambda: int(_outbound(cti).get("in_flight", 1)) == 0, 60,
                     "no earlier attempt in flight")


@pytest.fixture
def shut_window(cti: CtiProcess, it_env: ItEnv) -> Iterator[CtiProcess]:
    """The CTI restarted with a one-hour window that opens three hours from now (the center's
    local time); the suite's any-hour window again afterwards."""
    raw = tomllib.loads(it_env.settings_path.read_text(encoding="utf-8"))
    local = datetime.now(ZoneInfo(raw["ivr"]["timezone"]))
    opens, closes = ((local + timedelta(hours=h)).hour for h in (3, 4))
    raw["outbound"].update({"window_opens": f"{opens:02d}:00",
                            "window_closes": "24:00" if closes == 0 else f"{closes:02d}:00"})
    path = it_env.state / "hotline-shut-window.toml"
    path.write_text(tomli_w.dumps(raw), encoding="utf-8")
    path.chmod(0o644)
    saved = (cti.settings, cti.env)
    cti.stop()
    cti.env = {**saved[1], "HOTLINE_SETTINGS": str(path)}
    cti.settings = load_settings(path, cti.env)
    assert not cti.settings.outbound.window().allows(datetime.now(ZoneInfo("UTC")))
    cti.start()
    try:
        yield cti
    finally:
        cti.stop()
        cti.settings, cti.env = saved
        cti.start()


def test_nothing_is_dialled_outside_the_window(shut_window: CtiProcess, cti: CtiProcess,
                                               ami: AmiRecorder, backend: Backend,
                                               tmp_path: Path) -> None:
    svc = _service(backend)
    phone = AgentPhones(CUSTOMER_PORT, tmp_path / "customer", answer=True, ring_ms=500)
    job = -1
    try:
        stack.wait_until(lambda: _outbound(shut_window).get("recovered") is True, 30,
                         "the outbound engine running (recovered)")
        mark = ami.mark()
        order = _resolve_repair(svc, _number(backend))
        job = _job_of(backend, order)
        assert _job(backend, job).not_before <= datetime.now(ZoneInfo("UTC"))  # due now
        # the engine ticks (once a second) over the due job with the window shut
        ticks = int(_outbound(shut_window)["ticks"])
        stack.wait_until(lambda: int(_outbound(shut_window).get("ticks", 0)) >= ticks + 5, 30,
                         "five ticks of the outbound engine with the visit due")
        st = _outbound(shut_window)
        assert st["window_open"] is False and st["in_flight"] == 0, st
        assert [e for e in ami.events()[mark:] if _dial(e)] == []
        assert _attempts(backend, job) == []
        assert str(_job(backend, job).state) == "scheduled"
    finally:
        phone.stop()
        # withdrawn, so that the any-hour window the fixture puts back does not dial it
        _withdraw(backend, [job])


def test_a_restart_mid_campaign_dials_nobody_twice(cti: CtiProcess, ami: AmiRecorder,
                                                   backend: Backend, tmp_path: Path) -> None:
    svc = _service(backend)
    phone = AgentPhones(CUSTOMER_PORT, tmp_path / "customer", answer=True, ring_ms=500)
    jobs: list[int] = []
    try:
        _idle(cti)
        mark = ami.mark()
        first = _job_of(backend, _resolve_repair(svc, _number(backend)))
        jobs.append(first)
        stack.wait_until(lambda: len(_attempts(backend, first)) == 1, 20, "the first visit dialled")
        [a1] = _attempts(backend, first)
        answered1 = _answered(ami, mark, {a1["id"]}, "the first visit answered")

        cti.kill9()  # mid-survey: the customer is listening, the key not pressed yet
        second = _job_of(backend, _resolve_repair(svc, _number(backend)))  # while it is down
        jobs.append(second)
        assert _attempts(backend, second) == []
        with backend.sessions.begin() as s:  # an English-speaking customer, this one
            s.execute(update(OutboundJob).where(OutboundJob.id == second).values(lang="en"))
        cti.start()
        stack.wait_until(lambda: _outbound(cti).get("recovered") is True, 30,
                         "the restarted engine recovered")
        # the first call is still up and still the first attempt's: the key lands on it
        _key(ami, mark, answered1, "1")
        stack.wait_until(lambda: str(_job(backend, first).state) == "done", 20,
                         "the first visit done with the customer's key")
        # the visit that fell due while the CTI was down is dialled now, once
        stack.wait_until(lambda: len(_attempts(backend, second)) == 1, 30,
                         "the second visit dialled")
        [a2] = _attempts(backend, second)
        answered2 = _answered(ami, mark, {a2["id"]}, "the second visit answered")
        # the survey is said in the customer's language (the channel's, on its events)
        assert (answered1["Language"], answered2["Language"]) == ("zh", "en")
        _key(ami, mark, answered2, "1")
        stack.wait_until(lambda: str(_job(backend, second).state) == "done", 20,
                         "the second visit done")

        # nobody dialled twice: each job one attempt, and every dial Asterisk saw one of them
        assert [a["outcome"] for a in _attempts(backend, first)] == ["answered"]
        assert [a["outcome"] for a in _attempts(backend, second)] == ["answered"]
        assert _job(backend, first).attempts == 1 and _job(backend, second).attempts == 1
        dials = [attempt_of(str(e["Uniqueid"])) for e in ami.events()[mark:] if _dial(e)]
        mine = [d for d in dials if d in (a1["id"], a2["id"])]
        assert len(mine) == 2 and set(mine) == {a1["id"], a2["id"]}, dials
    finally:
        phone.stop()
        _withdraw(backend, jobs)


def test_a_key_pressed_while_the_cti_is_down_is_not_lost_nor_dialled_again(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, tmp_path: Path) -> None:
    """The customer answers, the CTI dies, the customer keys 1 and hangs up before it is
    back: the dialplan kept the key in AstDB, the restarted CTI reads it, the visit is scored
    on the order by the system, and the customer is not called again."""
    svc = _service(backend)
    phone = AgentPhones(CUSTOMER_PORT, tmp_path / "customer", answer=True, ring_ms=500)
    job = -1
    try:
        _idle(cti)
        mark = ami.mark()
        order = _resolve_repair(svc, _number(backend))
        job = _job_of(backend, order)
        stack.wait_until(lambda: len(_attempts(backend, job)) == 1, 20, "the visit dialled")
        [a] = _attempts(backend, job)
        answered = _answered(ami, mark, {a["id"]}, "the visit answered")
        cti.kill9()
        _key(ami, mark, answered, "1")   # heard by the dialplan alone
        ami.wait_for(lambda e: e.get("Event") == "Hangup"
                     and e.get("Uniqueid") == answered["Uniqueid"], 30,
                     "the visit over while the CTI is down", since=mark)
        cti.start()
        stack.wait_until(lambda: str(_job(backend, job).state) == "done", 30,
                         "the visit settled from the kept key")
        assert [x["outcome"] for x in _attempts(backend, job)] == ["answered"]
        stack.wait_until(lambda: svc.get(order)["status"] == "return_visit", 10,
                         "the order scored")
        doc = svc.get(order)
        assert doc["satisfaction"] == "satisfied"
        assert [e["actor"] for e in doc["events"] if e["step"] == "return_visit"] == ["system"]
        # a few ticks later still nobody dialled again
        ticks = int(_outbound(cti)["ticks"])
        stack.wait_until(lambda: int(_outbound(cti).get("ticks", 0)) >= ticks + 4, 20,
                         "four more ticks")
        dials = [attempt_of(str(e["Uniqueid"])) for e in ami.events()[mark:] if _dial(e)]
        assert dials == [a["id"]], dials
    finally:
        phone.stop()
        _withdraw(backend, [job])
