"""The demo city: realistic, deterministic, idempotent, and its demo accounts tell the truth."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from cti.db.agents import create_agent, verify_login
from cti.db.ivr_queries import accounts_for_phone, bill_info, outages_for_account
from cti.db.models import (
    Account,
    AccountPhone,
    Agent,
    Area,
    Bill,
    Customer,
    Feeder,
    Outage,
    OutageArea,
    Payment,
)
from hotline.demo_seed import DEMO_PASSWORD, DEMO_PURPOSES, MIN_ACCOUNTS, demo_accounts, seed_demo

if TYPE_CHECKING:
    from conftest import World

SMALL = 300
MOBILE = re.compile(r"1(3[0-9]|5[0-35-9]|8[0-9])[0-9]{8}")


def _fingerprint(session: Session) -> dict[str, Any]:
    """Everything seeded, by natural keys (surrogate ids differ between databases)."""
    accounts = session.execute(
        select(Account.account_no, Customer.name, Customer.important_kind,
               Account.service_address, Area.code, Feeder.code, Account.transformer_area)
        .join(Customer, Customer.id == Account.customer_id)
        .join(Area, Area.id == Account.area_id)
        .outerjoin(Feeder, Feeder.id == Account.feeder_id)
        .order_by(Account.account_no)).all()
    phones = session.execute(
        select(Account.account_no, AccountPhone.phone).join(Account)
        .order_by(Account.account_no, AccountPhone.phone)).all()
    bills = session.execute(
        select(Account.account_no, Bill.period, Bill.usage_kwh, Bill.amount, Bill.due_date,
               Bill.paid, Bill.paid_amount).join(Account)
        .order_by(Account.account_no, Bill.period)).all()
    payments = session.execute(
        select(Account.account_no, Payment.amount, Payment.paid_at, Payment.channel)
        .join(Account).order_by(Account.account_no, Payment.paid_at)).all()
    outages = session.execute(
        select(Outage.kind, Outage.cause, Outage.start_at, Outage.expected_restore_at,
               Outage.restored_at, Outage.notice, Area.code, OutageArea.feeder_id.is_(None))
        .join(OutageArea, OutageArea.outage_id == Outage.id)
        .join(Area, Area.id == OutageArea.area_id)
        .order_by(Outage.start_at, Area.code)).all()
    agents = session.execute(
        select(Agent.agent_id, Agent.name, Agent.role, Agent.skills, Agent.active)
        .order_by(Agent.agent_id)).all()
    return {"accounts": accounts, "phones": phones, "bills": bills, "payments": payments,
            "outages": outages, "agents": agents}


def test_default_seed_is_a_realistic_city(session: Session, now: datetime) -> None:
    summary = seed_demo(session, now=now)
    session.commit()
    assert summary["accounts"] == 5000
    assert summary["areas"] == 12
    assert summary["feeders"] >= 24
    assert summary["bills"] == 6 * 5000
    assert 0.12 <= summary["accounts_in_arrears"] / 5000 <= 0.18
    assert summary["important_customers"] >= 3
    kinds = dict(session.execute(select(Area.kind, func.count()).group_by(Area.kind)).all())
    assert set(kinds) == {"urban", "rural", "remote"}
    assert session.scalar(select(func.count()).select_from(Account)) == 5000
    # Residential bills: mostly tens to a few hundred yuan a month.
    median = sorted(session.scalars(select(Bill.amount)).all())[len(range(30000)) // 2]
    assert Decimal("40") < median < Decimal("250")


def test_seed_contents_look_real(session: Session, now: datetime) -> None:
    seed_demo(session, now=now, n_accounts=SMALL)
    session.commit()
    account_nos = session.scalars(select(Account.account_no)).all()
    assert len(account_nos) == SMALL and all(re.fullmatch(r"[0-9]{10}", n) for n in account_nos)
    phones = session.scalars(select(AccountPhone.phone)).all()
    assert phones and all(MOBILE.fullmatch(p) for p in phones)
    addresses = session.scalars(select(Account.service_address)).all()
    assert any(re.fullmatch(r".+区.+路[0-9]+号[0-9]单元[0-9]+室", a) for a in addresses)
    assert any(re.search(r"(镇|街道).+[0-9]+号$", a) for a in addresses)
    assert all(session.scalars(select(Account.transformer_area)).all())
    hospital = session.scalars(
        select(Customer.name).where(Customer.important_kind == "hospital")).first()
    assert hospital is not None and hospital.endswith("医院")
    names = session.scalars(select(Customer.name).where(Customer.important.is_(False))).all()
    assert all(re.fullmatch(r"[\u4e00-\u9fff（）]+", n) for n in names)
    # A bill's paid_amount never exceeds it; every payment precedes now.
    for amount, paid_amount in session.execute(select(Bill.amount, Bill.paid_amount)):
        assert Decimal(0) <= paid_amount <= amount
    last_payment = session.scalar(select(func.max(Payment.paid_at)))
    assert last_payment is not None and last_payment <= now

    outages = session.scalars(select(Outage)).all()
    current = [o for o in outages if o.restored_at is None and o.start_at <= now]
    planned_now = [o for o in current if o.kind == "planned" and o.expected_restore_at > now]
    planned_soon = [o for o in outages if o.kind == "planned"
                    and timedelta(days=2) < o.start_at - now <= timedelta(days=4)]
    faults = [o for o in current if o.kind == "fault"]
    assert len(planned_now) >= 1 and len(planned_soon) >= 1 and len(faults) >= 2
    assert {"10kV线路故障", "大风导致树障"} <= {o.cause for o in faults}
    assert all(o.expected_restore_at > now for o in faults)


def test_seed_is_deterministic(session_factory: sessionmaker[Session],
                               wipe: Callable[[], None], now: datetime) -> None:
    prints = []
    for _ in range(2):
        with session_factory() as s:
            seed_demo(s, now=now, n_accounts=SMALL)
            s.commit()
            prints.append(_fingerprint(s))
        wipe()
    assert prints[0] == prints[1]
    with session_factory() as s:
        seed_demo(s, now=now, n_accounts=SMALL, rng_seed=1)
        s.commit()
        assert _fingerprint(s)["accounts"] != prints[0]["accounts"]


def test_seed_twice_changes_nothing(session_factory: sessionmaker[Session],
                                    now: datetime) -> None:
    with session_factory() as s:
        first = seed_demo(s, now=now, n_accounts=SMALL)
        s.commit()
        before = _fingerprint(s)
    with session_factory() as s:
        # Other parameters do not matter once the city exists.
        again = seed_demo(s, now=now + timedelta(days=1), n_accounts=2 * SMALL, rng_seed=7)
        s.commit()
        assert again == first
        assert _fingerprint(s) == before


def test_seed_refuses_too_few_accounts(session: Session, now: datetime) -> None:
    with pytest.raises(ValueError, match="n_accounts"):
        seed_demo(session, now=now, n_accounts=MIN_ACCOUNTS - 1)


@pytest.mark.parametrize("n_accounts", [MIN_ACCOUNTS, SMALL])
def test_demo_accounts_cover_every_purpose_truthfully(session: Session, now: datetime,
                                                      n_accounts: int) -> None:
    seed_demo(session, now=now, n_accounts=n_accounts)
    session.commit()
    demos = demo_accounts(session, now)
    assert [d["purpose"] for d in demos] == list(DEMO_PURPOSES)
    assert demo_accounts(session, now) == demos  # deterministic
    assert len({d["account_no"] for d in demos}) == len(demos)
    by = {d["purpose"]: d for d in demos}
    today = now.date()

    for d in demos:
        assert set(d) == {"purpose", "account_no", "phone", "amount_due", "outages"}
        assert re.fullmatch(r"[0-9]{10}", d["account_no"]) and MOBILE.fullmatch(d["phone"])
        if d["purpose"] == "unknown_account":
            continue
        info = bill_info(session, d["account_no"])
        outages = outages_for_account(session, d["account_no"], now)
        assert info is not None and outages is not None
        assert d["amount_due"] == f"{info.amount_due:.2f}"
        assert d["outages"] == [{"kind": o.kind, "cause": o.cause,
                                 "expected_restore_at": o.expected_restore_at.isoformat()}
                                for o in outages]
        linked = accounts_for_phone(session, d["phone"])
        if d["purpose"] == "phone_multiple_accounts":
            assert d["account_no"] in linked and len(linked) >= 2
        else:
            assert linked == [d["account_no"]]

    def outages_of(purpose: str) -> list[Any]:
        found = outages_for_account(session, by[purpose]["account_no"], now)
        assert found is not None
        return found

    fault = outages_of("outage_fault")
    assert [o.kind for o in fault] == ["fault"]
    planned = outages_of("outage_planned")
    assert [o.kind for o in planned] == ["planned"] and planned[0].start_at <= now
    upcoming = outages_of("outage_planned_upcoming")
    assert [o.kind for o in upcoming] == ["planned"] and upcoming[0].start_at > now
    for purpose in ("bill_arrears", "bill_paid_up", "no_outage"):
        assert outages_of(purpose) == []
    arrears = bill_info(session, by["bill_arrears"]["account_no"])
    assert arrears is not None and arrears.amount_due > 0
    assert arrears.due_date is not None and arrears.due_date < today
    paid_up = bill_info(session, by["bill_paid_up"]["account_no"])
    assert paid_up is not None and paid_up.amount_due == 0
    assert paid_up.last_payment_at is not None
    important = session.scalar(
        select(Customer.important_kind).join(Account)
        .where(Account.account_no == by["important_customer"]["account_no"]))
    assert important == "hospital"
    unknown = by["unknown_account"]
    assert bill_info(session, unknown["account_no"]) is None
    assert outages_for_account(session, unknown["account_no"], now) is None
    assert accounts_for_phone(session, unknown["phone"]) == []
    assert (unknown["amount_due"], unknown["outages"]) == ("0.00", [])


def test_demo_staff(session: Session, now: datetime) -> None:
    summary = seed_demo(session, now=now, n_accounts=MIN_ACCOUNTS)
    session.commit()
    assert (summary["agents"], summary["supervisors"]) == (50, 5)
    everyone = session.scalars(select(Agent).order_by(Agent.agent_id)).all()
    # the departments' users (issue 15 §1): a repair crew, marketing and metering
    depts = [a for a in everyone if a.role == "department"]
    assert [(a.agent_id, a.department, a.skills) for a in depts] == [
        ("J01", "metering", {}), ("M01", "marketing", {}), ("R01", "repair", {})]
    staff = [a for a in everyone if a.role != "department"]
    assert [a.agent_id for a in staff] == (
        [f"A{n:03d}" for n in range(1, 51)] + [f"S{n:02d}" for n in range(1, 6)] + ["admin"])
    assert {a.role for a in staff[:50]} == {"agent"} and {a.role for a in staff[50:55]} == {
        "supervisor"} and staff[55].role == "admin"
    assert all(a.department is None for a in staff)
    names = [a.name for a in staff]
    assert len(set(names)) == 56 and all(re.fullmatch(r"[\u4e00-\u9fff]{2,3}", n) for n in names)
    assert all(a.active and a.created_at == now for a in staff)
    levels = [lvl for a in staff for lvl in a.skills.values()]
    assert levels and all(isinstance(v, int) and 1 <= v <= 5 for v in levels)
    agents = staff[:50]

    def having(skill: str) -> int:
        return sum(skill in a.skills for a in agents)

    assert having("general") >= 40 and having("billing") >= 40
    assert 14 <= having("repair") <= 20 and 2 <= having("english") <= 6
    assert all(a.skills for a in agents)
    # One argon2id hash made once, shared by everyone: seeding stays fast.
    hashes = {a.password_hash for a in everyone}
    assert len(hashes) == 1 and next(iter(hashes)).startswith("$argon2id$")
    for agent_id in ("A001", "S05", "admin"):
        info = verify_login(session, agent_id, DEMO_PASSWORD)
        assert info is not None and info.agent_id == agent_id
    assert verify_login(session, "A001", "12345") is None


def test_staff_added_to_an_older_demo_database(session: Session, now: datetime) -> None:
    first = seed_demo(session, now=now, n_accounts=MIN_ACCOUNTS)
    session.commit()
    city = _fingerprint(session)
    # A demo database from before agents existed.
    session.execute(delete(Agent))
    session.commit()
    assert seed_demo(session, now=now, n_accounts=MIN_ACCOUNTS) == first
    session.commit()
    assert _fingerprint(session) == city


def test_staff_not_seeded_when_agents_exist(session: Session, now: datetime) -> None:
    create_agent(session, agent_id="A001", name="王芳", role="admin", password="secret",
                 skills={}, now=now)
    summary = seed_demo(session, now=now, n_accounts=MIN_ACCOUNTS)
    assert (summary["agents"], summary["supervisors"]) == (0, 0)
    assert session.scalars(select(Agent.agent_id)).all() == ["A001"]


def test_no_demo_logins_in_a_real_database(world: World, session: Session,
                                           now: datetime) -> None:
    world.area("urban", name="某市城区")
    summary = seed_demo(session, now=now, n_accounts=MIN_ACCOUNTS)
    assert (summary["areas"], summary["agents"], summary["supervisors"]) == (1, 0, 0)
    assert session.scalars(select(Agent.id)).first() is None
