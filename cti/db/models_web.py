"""ORM classes of the agent desktop: web sessions and login attempts (migration 0003_web)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cti.db.models import Base


class WebSession(Base):
    """One browser login. Only the SHA-256 of the cookie token is stored: a copy of the table
    does not let anyone in."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index(None, "user_id", "expires_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("agents.agent_id"))
    role: Mapped[str] = mapped_column(String(16))
    seat: Mapped[str | None] = mapped_column(String(16))
    lang: Mapped[str] = mapped_column(String(8), default="zh")
    created_at: Mapped[datetime] = mapped_column()
    last_seen: Mapped[datetime] = mapped_column()
    # absolute end (created + session_absolute_s); the idle end is last_seen + session_idle_s
    expires_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()


class WebLoginAttempt(Base):
    """Every login attempt, kept in the database rather than in memory: it is the login audit
    trail too, and a CTI restart does not reset an attacker's count."""

    __tablename__ = "web_login_attempts"
    __table_args__ = (Index(None, "user_id", "at"), Index(None, "client_ip", "at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32))
    client_ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column()
    ok: Mapped[bool] = mapped_column()


class WebLoginLimit(Base):
    """One login counter (migration 0006_login_limits): per known account ("user:A001") or, for
    logins naming no known account, per client address ("ip:10.0.0.7"). Counted in the same
    transaction that lets an attempt through (cti.db.login_limits), so concurrent attempts
    cannot all pass one check."""

    __tablename__ = "web_login_limits"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column()
    blocked_until: Mapped[datetime | None] = mapped_column()


class FlowVersion(Base):
    """One text of an IVR flow file the admin console published (or found on disk before a
    publish, source 'disk'), with who and when (migration 0015_flow_versions). Never changed or
    deleted: a rollback publishes an old text again as a new version."""

    __tablename__ = "flow_versions"
    __table_args__ = (Index(None, "file", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file: Mapped[str] = mapped_column(String(80))  # its name in the flows folder
    flow_id: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # publish | rollback | disk
    rollback_of: Mapped[int | None] = mapped_column(Integer)
    published_by: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime] = mapped_column()
