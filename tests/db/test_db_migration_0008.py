"""Migration 0008_outage_notices keeps what references the tables it rebuilds: on SQLite, batch
mode recreates outages and work_orders, and dropping the old table cascaded (ON DELETE CASCADE)
to every outage's scope rows and every work order's history, clocks and escalations."""

from __future__ import annotations

from datetime import datetime, timedelta

from alembic import command
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from cti.db.migrate import migrating, upgrade
from cti.db.models import Outage, OutageArea, WorkOrder, WorkOrderEvent
from cti.db.models_workorders import WorkOrderClock, WorkOrderEscalation

H = timedelta(hours=1)
TABLES = ("outages", "outage_areas", "work_orders", "work_order_events", "work_order_clocks",
          "work_order_escalations")


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() or 0)
                for t in TABLES}


def test_0008_up_and_down_keeps_outage_scopes_and_work_order_history(
        db_url: str, engine: Engine, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    with migrating(db_url) as cfg:
        command.downgrade(cfg, "0007_call_end_reason")
    at = {"at": now, "due": now + H}
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO areas (id, code, name, kind) "
                          "VALUES (1, 'M01', '历下区', 'urban')"))
        conn.execute(text("INSERT INTO outages (id, kind, cause, start_at, expected_restore_at, "
                          "notice) VALUES (1, 'fault', '10kV线路故障', :at, :due, '')"), at)
        conn.execute(text("INSERT INTO outage_areas (outage_id, area_id) VALUES (1, 1)"))
        conn.execute(text(
            "INSERT INTO work_orders (id, number, type, status, caller_number, description, "
            "channel, created_at, urge_count) VALUES (1, '26112700001', 'fault_repair', "
            "'accepted', '13800000001', '家中无电', 'ivr', :at, 0)"), at)
        conn.execute(text("INSERT INTO work_order_events (work_order_id, step, at, actor) "
                          "VALUES (1, 'accepted', :at, 'ivr')"), at)
        conn.execute(text(
            "INSERT INTO work_order_clocks (id, work_order_id, name, started_at, due_at, "
            "stops_at, warn_at, next_alert_at) VALUES (1, 1, 'arrival', :at, :due, 'on_site', "
            ":at, :at)"), at)
        conn.execute(text("INSERT INTO work_order_escalations (clock_id, percent, level, "
                          "crossed_at, alerted_at) VALUES (1, 80, 'warning', :at, :at)"), at)
    before = _counts(engine)
    assert set(before.values()) == {1}
    upgrade(db_url)
    assert _counts(engine) == before
    with session_factory() as s:
        assert s.scalars(select(OutageArea.area_id)).all() == [1]
        assert [e.step for e in s.scalars(select(WorkOrderEvent))] == ["accepted"]
        assert s.scalar(select(WorkOrderClock.name)) == "arrival"
        assert s.scalar(select(WorkOrderEscalation.percent)) == 80
        # the new columns work: the order linked into the outage, the outage's master order
        s.get_one(WorkOrder, 1).outage_id = 1
        s.get_one(Outage, 1).master_order_id = 1
        s.commit()
    with migrating(db_url) as cfg:  # and back, with the links set
        command.downgrade(cfg, "0007_call_end_reason")
    assert _counts(engine) == before
    upgrade(db_url)
    assert _counts(engine) == before
