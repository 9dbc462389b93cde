"""`hotline recordings list|reconcile|purge` and `hotline replay CALL_ID`."""

from __future__ import annotations

import sys
import wave
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from config.settings import Settings
from hotline import cli_common as common

_echo_json = common.echo_json


def parse_when(value: str | None, tz: ZoneInfo, *, end: bool = False) -> datetime | None:
    """`2026-11-27` (the whole local day; as an end, up to its midnight) or an ISO time."""
    if not value:
        return None
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            if end:  # up to the end of that day
                d = date.fromordinal(d.toordinal() + 1)
            return datetime.combine(d, time(0), tz)
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (2026-11-27) or an ISO time "
                                 "(2026-11-27T10:30:00+08:00)") from None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=tz)


@click.group()
def recordings() -> None:
    """Call recordings (录音): search, reconcile, retention purge."""


@recordings.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--from", "start", help="from this date or time (local time unless given)")
@click.option("--to", "end", help="up to this date (inclusive) or time")
@click.option("--agent", "agent_id")
@click.option("--caller", help="the caller's number")
@click.option("--account", help="10-digit account number (户号)")
@click.option("--work-order", "work_order", help="work order number (工单号)")
@click.option("--queue", help="skill queue, or hotline-agents for the failover queue")
@click.option("--min-duration", type=float, help="seconds")
@click.option("--max-duration", type=float, help="seconds")
@click.option("--text", help="words in the transcript (post-call transcription; spaces ignored)")
@click.option("--limit", default=100, show_default=True, type=common.LIMIT)
@click.option("--offset", default=0, show_default=True, type=common.OFFSET)
def recordings_list(as_json: bool, start: str | None, end: str | None, agent_id: str | None,
                    caller: str | None, account: str | None, work_order: str | None,
                    queue: str | None, min_duration: float | None, max_duration: float | None,
                    text: str | None, limit: int, offset: int) -> None:
    """Recordings matching every filter given, newest first."""
    from cti.db.recordings import RecordingQuery, search

    settings: Settings = common.settings()
    tz = ZoneInfo(settings.ivr.timezone)
    try:
        q = RecordingQuery(start=parse_when(start, tz), end=parse_when(end, tz, end=True),
                           agent_id=agent_id, caller=caller, account=account,
                           work_order=work_order, queue=queue, min_duration=min_duration,
                           max_duration=max_duration, text=text, limit=limit, offset=offset)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    with common.sessions(settings)() as s:
        rows = search(s, q)
    if as_json:
        _echo_json(rows)
        return
    common.echo_table(
        ["id", common.when_header("started", settings.ivr.timezone), "length", "agent",
         "caller", "queue", "call"],
        [[r["id"], common.local_time(r["started_at"], settings.ivr.timezone),
          f"{r['duration_s']:.1f}s", r["agent_id"], r["caller_number"], r["queue"],
          r["call_id"]] for r in rows],
        empty="no recordings match", right=["id", "length"])


@recordings.command("reconcile")
@click.option("--json", "as_json", is_flag=True)
@click.option("--index", is_flag=True,
              help="also index our finished files that have no row (the CTI does at start)")
def recordings_reconcile(as_json: bool, index: bool) -> None:
    """Files with no index row, rows whose file is missing, files whose checksum changed."""
    from cti.db.recorder_store import DbRecordingIndex
    from recorder.service import reconcile

    settings: Settings = common.settings()
    doc = reconcile(settings.recorder.storage_dir, DbRecordingIndex(common.sessions(settings)),
                    datetime.now(UTC), settings.recorder.settle_s, index=index)
    if as_json:
        _echo_json(doc)
    else:
        click.echo(f"ok {doc['ok']}, indexed {len(doc['indexed'])}, stray {len(doc['stray'])}, "
                   f"missing {len(doc['missing'])}, corrupt {len(doc['corrupt'])}, "
                   f"still recording {len(doc['still_open'])}")
        for key in ("stray", "missing", "corrupt"):
            for item in doc[key]:
                click.echo(f"  {key:8} {item['file']}")
    if not doc["clean"]:
        sys.exit(1)


@recordings.command("purge")
@click.option("--json", "as_json", is_flag=True)
@click.option("--dry-run", is_flag=True, help="list what retention would delete; delete nothing")
def recordings_purge(as_json: bool, dry_run: bool) -> None:
    """Delete recordings past their retention ([recorder.retention]); each deletion is logged."""
    from cti.db.recordings import purge, remove_deleted_files

    settings: Settings = common.settings()
    sessions = common.sessions(settings)
    with sessions.begin() as s:
        done = purge(s, settings.recorder.retention, datetime.now(UTC), "cli", dry_run=dry_run)
    if not dry_run:  # after the commit: never a deletion without its log line
        left = remove_deleted_files(sessions, settings.recorder.storage_dir)
        if left:
            raise click.ClickException(f"could not remove {len(left)} files (logged as "
                                       f"deleted; the next purge tries again): {left[:5]}")
    if as_json:
        _echo_json({"dry_run": dry_run, "deleted": done})
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {len(done)} recordings")
    for d in done:
        click.echo(f"  {d['file']}  ({d['category']}, {d['retention_days']} days)")


class NoSoundDevice(click.ClickException):
    exit_code = 3


def play_locally(path: Path) -> None:
    """Play a wav on this machine's speakers (sounddevice, an optional dependency)."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as exc:
        raise NoSoundDevice(
            "本机无法播放：未安装 sounddevice / cannot play here: sounddevice is not installed "
            f"(pip install 'hotline95598[sound]' and libportaudio2) ({exc})") from None
    try:
        sd.query_devices(kind="output")
    except (ValueError, sd.PortAudioError) as exc:
        raise NoSoundDevice(
            "本机没有声音输出设备 / no sound output device on this machine "
            f"({exc}); play it in the browser or on a supervisor phone instead") from None
    with wave.open(str(path), "rb") as w:
        rate, channels = w.getframerate(), w.getnchannels()
        data = w.readframes(w.getnframes())
    # a raw int16 stream: no numpy needed
    with sd.RawOutputStream(samplerate=rate, channels=channels, dtype="int16") as out:
        out.write(data)


@click.command("replay")
@click.argument("call_id")
@click.option("--leg", type=int, default=None, help="the leg's recording id (default: all legs)")
def replay(call_id: str, leg: int | None) -> None:
    """Play a call's recording(s) on this machine's speakers."""
    from sqlalchemy import select

    from cti.db.models_recordings import Recording
    from recorder.naming import resolve

    settings: Settings = common.settings()
    with common.sessions(settings)() as s:
        stmt = select(Recording).where(Recording.call_id == call_id,
                                       Recording.deleted_at.is_(None))
        if leg is not None:
            stmt = stmt.where(Recording.id == leg)
        recs = s.scalars(stmt.order_by(Recording.started_at)).all()
    if not recs:
        raise click.ClickException(f"no recording of call {call_id!r} "
                                   "(hotline recordings list shows what there is)")
    for r in recs:
        path = resolve(settings.recorder.storage_dir, r.rel_path)
        if not path.exists():
            raise click.ClickException(f"recording file missing: {path} "
                                       "(hotline recordings reconcile reports such files)")
        click.echo(f"▶ {r.call_id} {r.seat or r.kind} {r.duration_s:.1f}s {r.rel_path}")
        play_locally(path)
