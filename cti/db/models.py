"""SQLAlchemy models of the 95598 database: topology, customers, billing, outages, orders, calls."""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from workorders.lifecycle import WORK_ORDER_TYPES

logger = logging.getLogger(__name__)

# Explicit constraint names keep migrations reproducible and let alembic compare and later drop
# constraints by name on both SQLite (batch mode) and PostgreSQL.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

AREA_KINDS: tuple[str, ...] = ("urban", "rural", "remote")
IMPORTANT_KINDS: tuple[str, ...] = ("hospital", "life_support", "government", "other")
OUTAGE_KINDS: tuple[str, ...] = ("planned", "fault")
# outages.scope.Cause (a test checks they agree; the database layer does not import the domain)
OUTAGE_CATEGORIES: tuple[str, ...] = ("fault", "planned", "storm_repair", "temporary", "upstream",
                                      "external_damage", "load_limiting", "reported")
# Statuses and event steps follow the DOMAIN.md lifecycle. They are not CHECK-constrained because
# the workflow will grow (reopened, escalated, ...) and that should not need a schema migration.
WORK_ORDER_STEPS: tuple[str, ...] = (
    "accepted",              # 受理
    "dispatched",            # 派发
    "department_accepted",   # 接单
    "on_site",               # 到达现场
    "resolved",              # 处理完成 / 回单
    "return_visit",          # 回访
    "archived",              # 归档
)
# work_order_events also records, besides these steps: urged (催办), escalated (an SLA alert),
# linked / child_linked (子单 / 主单); see workorders/service.py.
CHANNELS: tuple[str, ...] = ("ivr", "agent")
# deflected: the caller heard an outage notice before the menu and hung up in its window
# refused: a caller on the nuisance list heard the warning and the IVR ended the call
CALL_OUTCOMES: tuple[str, ...] = ("self_served", "transfer", "hangup", "fallback", "abandoned",
                                  "deflected", "refused")
# Why a call ended when neither the caller nor the agent ended it (calls.end_reason; NULL: they
# did): Asterisk restarted and said so (a Shutdown with Restart), or it vanished (crash, kill -9)
# and came back; the CTI writes it when its resync after the restart finds the call gone.
CALL_END_REASONS: tuple[str, ...] = ("pbx_restart", "pbx_lost")
# What a call was about, as the agent codes it in wrap-up (calls.disposition): the 95598
# business types (DOMAIN.md), with no_business for a call without one (silent, wrong number)
CALL_DISPOSITIONS: tuple[str, ...] = (
    "fault_repair", "bill_query", "outage_query", "consultation", "service_application",
    "complaint", "report", "suggestion", "praise", "urge", "no_business", "other")
AGENT_NOTE_MAX = 500
# the post-call survey's scale (calls.satisfaction): 1 very dissatisfied .. 5 very satisfied
SATISFACTION_MIN, SATISFACTION_MAX = 1, 5
ACCOUNT_NO_RE = re.compile(r"[0-9]{10}")
# staff roles (agents.role); department: a repair crew's, marketing's or metering's user, who
# works their department's orders (issue 15 §1) and has agents.department
AGENT_ROLES: tuple[str, ...] = ("agent", "supervisor", "admin", "department")
STAFF_DEPARTMENTS: tuple[str, ...] = ("repair", "marketing", "metering")
# a skill's name (agents.skills' keys, skills.name, a flow's transfer skill)
SKILL_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
# The states of a logged-in agent (acd.model.AgentState without logged_out: a closed session is
# logged out).
AGENT_STATES: tuple[str, ...] = ("ready", "not_ready", "reserved", "on_call", "wrap_up")
# The state log also records 签出, so a forced logout stays on the audit trail.
LOGGED_STATES: tuple[str, ...] = (*AGENT_STATES, "logged_out")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime, stored as UTC; SQLite has no time zones so it keeps naive UTC text."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            # A naive time is ambiguous (server local? UTC? Beijing?); refusing it is the only
            # way to keep SQLite and PostgreSQL rows comparable.
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def Money() -> Numeric[Decimal]:  # noqa: N802 - named like the type it stands for
    """Yuan with fen precision; Numeric so PostgreSQL keeps exact decimals."""
    return Numeric(12, 2)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class Area(Base):
    """A service area (供电区域); its kind sets the repair arrival commitment."""

    __tablename__ = "areas"
    __table_args__ = (CheckConstraint(_in("kind", AREA_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))

    feeders: Mapped[list[Feeder]] = relationship(back_populates="area")


class Feeder(Base):
    """A 10 kV feeder (线路) inside one area."""

    __tablename__ = "feeders"
    # (id, area_id) is unique so accounts and outage rows can reference a feeder *of their area*
    # with a composite foreign key: an account can never sit on another area's feeder.
    __table_args__ = (UniqueConstraint("id", "area_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id"), index=True)

    area: Mapped[Area] = relationship(back_populates="feeders")


class Customer(Base):
    """A customer (用户); important ones (重要客户) get outage notices and priority."""

    __tablename__ = "customers"
    __table_args__ = (
        CheckConstraint(
            f"(important AND {_in('important_kind', IMPORTANT_KINDS)})"
            " OR (NOT important AND important_kind IS NULL)",
            name="important_kind",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    important: Mapped[bool] = mapped_column(Boolean, default=False)
    important_kind: Mapped[str | None] = mapped_column(String(32))

    accounts: Mapped[list[Account]] = relationship(back_populates="customer")


class Account(Base):
    """An electricity account (户号) at one service address (用电地址)."""

    __tablename__ = "accounts"
    __table_args__ = (
        ForeignKeyConstraint(["feeder_id", "area_id"], ["feeders.id", "feeders.area_id"]),
        # SQLite and PostgreSQL have no common "digits only" test, so each gets its own.
        CheckConstraint("account_no GLOB '" + "[0-9]" * 10 + "'",
                        name="account_no_digits").ddl_if(dialect="sqlite"),
        CheckConstraint("account_no ~ '^[0-9]{10}$'",
                        name="account_no_digits").ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_no: Mapped[str] = mapped_column(String(10), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    service_address: Mapped[str] = mapped_column(String(255))
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id"), index=True)
    feeder_id: Mapped[int | None] = mapped_column(index=True)
    transformer_area: Mapped[str | None] = mapped_column(String(64))

    customer: Mapped[Customer] = relationship(back_populates="accounts")
    area: Mapped[Area] = relationship()
    feeder: Mapped[Feeder | None] = relationship(overlaps="area")

    @validates("account_no")
    def _check_account_no(self, _key: str, value: str) -> str:
        if not ACCOUNT_NO_RE.fullmatch(value):
            raise ValueError(f"account_no must be exactly 10 digits, got {value!r}")
        return value


class AccountPhone(Base):
    """A phone number known for an account; many-to-many, numbers stored normalized."""

    __tablename__ = "account_phones"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    phone: Mapped[str] = mapped_column(String(20), primary_key=True, index=True)


class Bill(Base):
    """A monthly bill; amount minus paid_amount is still owed while paid is false."""

    __tablename__ = "bills"
    __table_args__ = (
        UniqueConstraint("account_id", "period"),
        CheckConstraint("length(period) = 7 AND substr(period, 5, 1) = '-'", name="period"),
        CheckConstraint("paid_amount >= 0 AND amount >= 0 AND usage_kwh >= 0", name="amounts"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    period: Mapped[str] = mapped_column(String(7))
    usage_kwh: Mapped[int] = mapped_column(Integer)
    amount: Mapped[Decimal] = mapped_column(Money())
    due_date: Mapped[date] = mapped_column(Date)
    paid: Mapped[bool] = mapped_column(Boolean, default=False)
    paid_amount: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"))


class Payment(Base):
    """A payment received (缴费), by channel."""

    __tablename__ = "payments"
    __table_args__ = (Index(None, "account_id", "paid_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[Decimal] = mapped_column(Money())
    paid_at: Mapped[datetime] = mapped_column()
    channel: Mapped[str] = mapped_column(String(16))


class Outage(Base):
    """An outage notice: planned (计划停电) or fault (故障停电) by `kind`, and by `category` why
    (outages.scope.Cause; callers hear the category, agents also read the free-text `cause`).
    restored_at (the notice's close) is null while it lasts; expected_restore_at may be unknown,
    as for a suspected outage opened by incident detection (awaiting_confirmation until a
    supervisor confirms it, when detection is in confirm mode)."""

    __tablename__ = "outages"
    __table_args__ = (
        CheckConstraint(_in("kind", OUTAGE_KINDS), name="kind"),
        CheckConstraint(_in("category", OUTAGE_CATEGORIES), name="category"),
        CheckConstraint("expected_restore_at >= start_at", name="window"),
        CheckConstraint("schedule_end_at IS NULL OR schedule_end_at > start_at",
                        name="schedule"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    category: Mapped[str] = mapped_column(String(24))
    cause: Mapped[str] = mapped_column(String(255))
    start_at: Mapped[datetime] = mapped_column()
    expected_restore_at: Mapped[datetime | None] = mapped_column()
    schedule_end_at: Mapped[datetime | None] = mapped_column()
    restored_at: Mapped[datetime | None] = mapped_column()
    notice: Mapped[str] = mapped_column(Text, default="")
    # the repair work order (主单) that covers it; fault reports inside it become its children
    master_order_id: Mapped[int | None] = mapped_column(
        ForeignKey("work_orders.id", use_alter=True))
    awaiting_confirmation: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false())
    confirmed_by: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime | None] = mapped_column()

    areas: Mapped[list[OutageArea]] = relationship(
        back_populates="outage", cascade="all, delete-orphan", passive_deletes=True)


class OutageArea(Base):
    """Where an outage applies, one row each: a whole area (feeder and 台区 null), one feeder of
    it, or one 台区 (transformer area) named within it (transformer_area set, feeder null)."""

    __tablename__ = "outage_areas"
    __table_args__ = (
        ForeignKeyConstraint(["feeder_id", "area_id"], ["feeders.id", "feeders.area_id"]),
        Index(None, "area_id", "feeder_id"),
        Index(None, "area_id", "transformer_area"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    outage_id: Mapped[int] = mapped_column(
        ForeignKey("outages.id", ondelete="CASCADE"), index=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id"))
    feeder_id: Mapped[int | None] = mapped_column()
    transformer_area: Mapped[str | None] = mapped_column(String(64))

    outage: Mapped[Outage] = relationship(back_populates="areas")
    area: Mapped[Area] = relationship()


class OutageRevision(Base):
    """One row (id 1): bumped in the transaction of every change to a notice, so readers
    rebuild their index only when it moved (outages.scope.IndexCache)."""

    __tablename__ = "outage_revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class StormState(Base):
    """One row (id 1): storm mode, who or what switched it last, when and why."""

    __tablename__ = "storm_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    active: Mapped[bool] = mapped_column(Boolean)
    since: Mapped[datetime | None] = mapped_column()
    by: Mapped[str | None] = mapped_column(String(64))
    trigger: Mapped[str | None] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(String(255))


class WorkOrderCounter(Base):
    """The last work-order sequence handed out per local day; one row per day."""

    __tablename__ = "work_order_counters"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer)


class WorkOrder(Base):
    """A work order (工单): what the center accepted and must see handled."""

    __tablename__ = "work_orders"
    __table_args__ = (
        CheckConstraint(_in("type", WORK_ORDER_TYPES), name="type"),
        CheckConstraint(_in("channel", CHANNELS), name="channel"),
        CheckConstraint("length(number) = 11", name="number"),
        CheckConstraint("urge_count >= 0", name="urge_count"),
        CheckConstraint("satisfaction IS NULL OR satisfaction IN ('satisfied', 'unsatisfied')",
                        name="satisfaction"),
        # search by status; duplicate fault reports are found by area and time
        Index(None, "status", "created_at"),
        Index(None, "area_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(11), unique=True)
    type: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(24))
    caller_number: Mapped[str] = mapped_column(String(32))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    description: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(8))
    call_id: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    sla_due_at: Mapped[datetime | None] = mapped_column()
    master_id: Mapped[int | None] = mapped_column(ForeignKey("work_orders.id"), index=True)
    # the outage notice a fault report was linked into (its master is the outage's master order)
    outage_id: Mapped[int | None] = mapped_column(ForeignKey("outages.id"), index=True)
    # Lifecycle columns (0003_workorders; workorders.lifecycle has the rules):
    # fault_repair: line | meter | other; service_application: new_connection | capacity_change
    subtype: Mapped[str | None] = mapped_column(String(32))
    department: Mapped[str | None] = mapped_column(String(16))   # repair | marketing | metering
    urge_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_urged_at: Mapped[datetime | None] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column()
    satisfaction: Mapped[str | None] = mapped_column(String(16))  # from the return visit (回访)

    account: Mapped[Account | None] = relationship()
    area: Mapped[Area | None] = relationship()
    master: Mapped[WorkOrder | None] = relationship(remote_side="WorkOrder.id")
    events: Mapped[list[WorkOrderEvent]] = relationship(
        back_populates="work_order", order_by="WorkOrderEvent.id",
        cascade="all, delete-orphan", passive_deletes=True)


class WorkOrderEvent(Base):
    """One lifecycle step of a work order, with when and who."""

    __tablename__ = "work_order_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    work_order_id: Mapped[int] = mapped_column(
        ForeignKey("work_orders.id", ondelete="CASCADE"), index=True)
    step: Mapped[str] = mapped_column(String(24))
    # the work-order report reads a day's events (0016_report_tables)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)

    work_order: Mapped[WorkOrder] = relationship(back_populates="events")


class Call(Base):
    """One inbound call, identified by the Asterisk Linkedid, and what the IVR did with it."""

    __tablename__ = "calls"
    __table_args__ = (
        CheckConstraint(f"outcome IS NULL OR {_in('outcome', CALL_OUTCOMES)}", name="outcome"),
        CheckConstraint(f"end_reason IS NULL OR {_in('end_reason', CALL_END_REASONS)}",
                        name="end_reason"),
        CheckConstraint(f"disposition IS NULL OR {_in('disposition', CALL_DISPOSITIONS)}",
                        name="disposition"),
        CheckConstraint(f"satisfaction IS NULL OR satisfaction BETWEEN {SATISFACTION_MIN} "
                        f"AND {SATISFACTION_MAX}", name="satisfaction"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(64), unique=True)
    uniqueid: Mapped[str] = mapped_column(String(64))
    caller_number: Mapped[str] = mapped_column(String(32))
    dnis: Mapped[str] = mapped_column(String(32))
    language: Mapped[str | None] = mapped_column(String(8))
    started_at: Mapped[datetime] = mapped_column(index=True)
    # the workload reports read the calls that ended in an interval (0016_report_tables)
    ended_at: Mapped[datetime | None] = mapped_column(index=True)
    outcome: Mapped[str | None] = mapped_column(String(16))
    end_reason: Mapped[str | None] = mapped_column(String(16))  # CALL_END_REASONS
    # The number the caller keyed, not a foreign key: it may not exist, and the call record
    # must still keep it.
    account_no: Mapped[str | None] = mapped_column(String(10))
    skill: Mapped[str | None] = mapped_column(String(32))
    priority: Mapped[int | None] = mapped_column(Integer)
    ivr_path: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # the outage notices the caller heard before the menu (outages.id), null when none
    outage_ids: Mapped[list[int] | None] = mapped_column(JSON)
    # Filled by the ACD. agent_id is not a foreign key for the same reason as account_no: the
    # call record must be written whatever the ACD reports.
    queued_at: Mapped[datetime | None] = mapped_column()
    # a waiting caller who asked to be called back (the ACD's CallbackRequested; 0020): the
    # caller's own leg ends then, the record does not; answered_at is then the callback's
    # answer and ended_at the callback's end
    callback_requested_at: Mapped[datetime | None] = mapped_column()
    answered_at: Mapped[datetime | None] = mapped_column()
    agent_id: Mapped[str | None] = mapped_column(String(16), index=True)
    seat: Mapped[str | None] = mapped_column(String(16))
    # wrap-up (话后处理): the agent's code and note, who wrote them last and when
    disposition: Mapped[str | None] = mapped_column(String(24))  # CALL_DISPOSITIONS
    agent_note: Mapped[str | None] = mapped_column(String(AGENT_NOTE_MAX))
    disposed_by: Mapped[str | None] = mapped_column(String(16))
    disposed_at: Mapped[datetime | None] = mapped_column()
    # The post-call survey (满意度评价): when the caller was put to it (the agent hung up first
    # on a call whose skill has one), the agent and skill it rates (the agent who hung up and
    # the skill the call was for then, which a transfer may have changed since agent_id and
    # skill were written), and the caller's score, 1 (very dissatisfied) to 5 (very
    # satisfied); NULL while none came (no valid key, or the caller hung up on the survey).
    survey_at: Mapped[datetime | None] = mapped_column(index=True)
    survey_agent_id: Mapped[str | None] = mapped_column(String(16))
    survey_skill: Mapped[str | None] = mapped_column(String(32))
    satisfaction: Mapped[int | None] = mapped_column(SmallInteger)


class CallHold(Base):
    """One time the caller was on hold (保持): music on hold in hotline-hold, from the desktop's
    hold or a consult, to the caller's return to an agent or hang-up (callcenter/holds.py,
    from Asterisk's MusicOnHoldStart/Stop). Keyed by call and start, so a repeated write
    (a journal replay) adds nothing."""

    __tablename__ = "call_holds"

    call_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(primary_key=True)
    ended_at: Mapped[datetime] = mapped_column()


# Both databases support partial indexes, each under its own keyword.
_OPEN_SESSION = "logout_at IS NULL"


class Agent(Base):
    """An agent (坐席/话务员), supervisor (值长/班长) or admin who logs in to the CTI."""

    __tablename__ = "agents"
    __table_args__ = (
        CheckConstraint(_in("role", AGENT_ROLES), name="role"),
        # IS NOT NULL: a NULL in IN (...) is unknown, and a CHECK lets unknown pass
        CheckConstraint("(role = 'department' AND department IS NOT NULL AND "
                        + _in("department", STAFF_DEPARTMENTS)
                        + ") OR (role <> 'department' AND department IS NULL)",
                        name="department"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    # skill -> proficiency 1..5; checked in cti.db.agents, JSON has no portable CHECK.
    skills: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column()
    # a department user's department (STAFF_DEPARTMENTS); NULL for every other role
    department: Mapped[str | None] = mapped_column(String(16))
    # set by an admin's reset: the next login must choose a new password before anything else
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False,
                                                       server_default=false())


class Skill(Base):
    """A skill calls are routed by (技能组): what agents hold with a proficiency and flows
    transfer to. Created by an admin (issue 15 §1); never deleted, only set inactive."""

    __tablename__ = "skills"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    label_zh: Mapped[str] = mapped_column(String(32))
    label_en: Mapped[str] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(16))


class AgentSession(Base):
    """One login (签入) of an agent at a seat, until its logout (签出); its current state."""

    __tablename__ = "agent_sessions"
    __table_args__ = (
        CheckConstraint(_in("state", AGENT_STATES), name="state"),
        CheckConstraint("logout_at IS NULL OR logout_at >= login_at", name="window"),
        # At most one open session per agent and per seat. The database enforces it because two
        # logins can race (two desktops, a CTI restart); a check in Python alone would let both in.
        Index("uq_agent_sessions_open_agent", "agent_id", unique=True,
              sqlite_where=text(_OPEN_SESSION), postgresql_where=text(_OPEN_SESSION)),
        Index("uq_agent_sessions_open_seat", "seat", unique=True,
              sqlite_where=text(_OPEN_SESSION), postgresql_where=text(_OPEN_SESSION)),
        Index(None, "agent_id", "login_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.agent_id"))
    seat: Mapped[str] = mapped_column(String(16))
    login_at: Mapped[datetime] = mapped_column()
    logout_at: Mapped[datetime | None] = mapped_column()
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    state_since: Mapped[datetime] = mapped_column()
    call_id: Mapped[str | None] = mapped_column(String(64))


class AgentStateLog(Base):
    """Every agent state change, with who made it: the agent, 'acd', or a supervisor's id."""

    __tablename__ = "agent_state_log"
    __table_args__ = (
        CheckConstraint(_in("state", LOGGED_STATES), name="state"),
        Index(None, "agent_id", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.agent_id"))
    seat: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(index=True)
    call_id: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(64))


class AcdSnapshot(Base):
    """The ACD's state as one JSON document, so it survives a CTI restart; a single row."""

    __tablename__ = "acd_snapshots"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    saved_at: Mapped[datetime] = mapped_column()


# The screen-pop looks up a caller's open work orders by number on every call.
Index("ix_work_orders_caller_number", WorkOrder.caller_number)
