"""`hotline reports`: the workload reports (工作量统计, issue 15 §4): recount a range of the
report tables (`rebuild`), catch up as the CTI's minute task does (`update`), and show the
call and work-order figures as tables or JSON (REPORTS.md defines them)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import click

from config.settings import Settings
from hotline import cli_common as common

PERIOD = click.Choice(["15", "30", "60", "day", "week", "month"])


def _service_level_s(settings: Settings) -> float:
    from hotline.wiring import acd_config
    return acd_config(settings).service_level_s


@click.group()
def reports() -> None:
    """Workload reports: rebuild, update, workload, workorders."""


@reports.command()
@click.option("--from", "first", required=True, help="the first day, 2026-11-27 (local)")
@click.option("--to", "last", help="the last day, included (default: --from)")
def rebuild(first: str, last: str | None) -> None:
    """Recount the report tables for those days (local) from the call records, the agent
    state log and the work orders: after a late write (a long database outage's journal) or
    a change of [ivr] timezone. Safe to repeat: a day is replaced, never added twice."""
    from cti.db import reports as workload
    from cti.db import workorder_reports

    settings = common.settings()
    tz = ZoneInfo(settings.ivr.timezone)
    start_day, end_day = common.day_range(first, last, tz)
    sessions = common.sessions(settings)
    start = datetime.combine(start_day, time(0), tz)
    end = datetime.combine(end_day + timedelta(days=1), time(0), tz)
    now = datetime.now(UTC)
    rows = workload.rebuild(sessions, start, min(end, workload.floor_interval(now)), tz=tz,
                            service_level_s=_service_level_s(settings)) if start < now else 0
    orders = workorder_reports.rebuild(sessions, start_day, end_day, tz=tz)
    click.echo(f"rebuilt {start_day} .. {end_day} ({settings.ivr.timezone}): "
               f"{rows} interval rows, {orders} work-order rows")


@reports.command()
def update() -> None:
    """Count what is due now (what the CTI does every minute), then say where the marks are."""
    from cti.db import reports as workload
    from cti.db import workorder_reports

    settings = common.settings()
    tz = ZoneInfo(settings.ivr.timezone)
    sessions = common.sessions(settings)
    now = datetime.now(UTC)
    workload.run_pending(sessions, now, tz=tz, service_level_s=_service_level_s(settings))
    workorder_reports.run_pending(sessions, now, tz=tz)
    mark = workload.mark_in(sessions)
    click.echo("calls counted up to "
               + (common.local_time(mark, settings.ivr.timezone) if mark else "- (no data)")
               + f" ({settings.ivr.timezone})")


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}".rstrip("0").rstrip(".") if abs(v) < 1 else f"{v:.1f}"
    return str(v)


SHOWN = ("offered", "answered", "abandoned", "abandoned_short", "service_level", "asa_s",
         "aht_s", "avg_hold_s", "occupancy", "utilisation", "rona", "transfers", "deflected",
         "callbacks_requested", "callbacks_connected", "satisfaction")


@reports.command()
@click.option("--from", "first", help="the first day, 2026-11-27 (default today, local)")
@click.option("--to", "last", help="the last day, included (default: --from)")
@click.option("--interval", "period", type=PERIOD, default="day", show_default=True)
@click.option("--by", type=click.Choice(["center", "skill", "agent"]), default="center",
              show_default=True)
@click.option("--json", "as_json", is_flag=True)
def workload(first: str | None, last: str | None, period: str, by: str,
             as_json: bool) -> None:
    """Call figures per period: offered, answered, abandoned (short ones apart), service
    level, ASA, AHT, occupancy, utilisation, RONA, transfers, deflected, satisfaction."""
    from cti.db import reports as workload_db

    settings = common.settings()
    tz = ZoneInfo(settings.ivr.timezone)
    start_day, end_day = common.day_range(first, last, tz)
    rows = workload_db.table_rows(workload_db.workload_report_in(
        common.sessions(settings), start_day, end_day, tz=tz, period=period, by=by))
    if as_json:
        common.echo_json({"from": start_day.isoformat(), "to": end_day.isoformat(),
                          "timezone": settings.ivr.timezone, "interval": period, "by": by,
                          "rows": rows})
        return
    columns = [common.when_header("period", settings.ivr.timezone), by, *SHOWN]
    common.echo_table(
        columns,
        [[r["period"][:16].replace("T", " "), r["key"] or "-", *(_num(r[c]) for c in SHOWN)]
         for r in rows],
        empty=f"no counted calls {start_day} .. {end_day} (see `hotline reports update`)",
        right=SHOWN)


@reports.command()
@click.option("--from", "first", help="the first day, 2026-11-27 (default today, local)")
@click.option("--to", "last", help="the last day, included (default: --from)")
@click.option("--interval", "period", type=click.Choice(["day", "week", "month"]),
              default="day", show_default=True)
@click.option("--by-type", is_flag=True, help="a row per order type")
@click.option("--json", "as_json", is_flag=True)
def workorders(first: str | None, last: str | None, period: str, by_type: bool,
               as_json: bool) -> None:
    """Work-order figures per period: created, SLA compliance per clock kind, overdue,
    urged, return-visit satisfaction, average time per lifecycle step."""
    from cti.db import workorder_reports

    settings = common.settings()
    tz = ZoneInfo(settings.ivr.timezone)
    start_day, end_day = common.day_range(first, last, tz)
    header, rows = workorder_reports.table_rows(workorder_reports.workorder_report_in(
        common.sessions(settings), start_day, end_day, period=period, by_type=by_type))
    if as_json:
        common.echo_json({"from": start_day.isoformat(), "to": end_day.isoformat(),
                          "timezone": settings.ivr.timezone, "interval": period,
                          "rows": rows})
        return
    common.echo_table(header, [[_num(r.get(c)) if c not in ("period", "type")
                                else (r.get(c) or "all") for c in header] for r in rows],
                      empty=f"no counted work orders {start_day} .. {end_day}",
                      right=header[2:])
