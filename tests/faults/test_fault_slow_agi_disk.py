"""Two faults of issue 11 under the harness's steady load, on one stack of their own:

- FastAGI 5 s slow replies: a TCP proxy (tests/support/delay_proxy.py) sits between Asterisk and
  the CTI's FastAGI port from the start (an nftables rule sends Asterisk's connections to it),
  and for 30 s holds every command the CTI sends for 5 s. Callers whose IVR starts in that window
  must hear no more than [ivr] max_silence_s of dead air (plus 1 s slack), then the dialplan's
  fallback (apology, queue); callers already in the IVR when it starts too; nothing hangs.
- Recording disk full: the recordings folder is a 64 MB ext4 loop mount (a tmpfs is refused
  by the recorder, and Asterisk's private mount namespace sees only what was mounted before it
  started); it is filled for 30 s, then the filler is removed. Calls go on; every answered leg
  without a whole recording has a logged reason (audit_log) and a supervisor alert; recording
  resumes when space returns.

The dead air in the IVR is read from Asterisk's AMI events: AGI commands that play or listen
(AGIExecStart/End), music on hold, from the caller's channel to its first UserEvent of the
agent side; calls.CallBook counts silence from the queue on.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from asterisk_conf.render import ASTERISK_USER
from hotline import stack
from tests.faults.calls import Event, ts
from tests.faults.checks import (
    SILENCE_MAX_S,
    outcomes_and_recordings,
    report,
    silence,
    unrecorded_reasons,
)
from tests.faults.conftest import PORTS, Hotline, running_hotline
from tests.support.delay_proxy import DelayProxy, delay_proxy
from tests.support.ports import SLOT, port

pytestmark = pytest.mark.integration

PROXY_PORT = port(24674, 10)  # in the harness's FastAGI block, beside the CTI's own
DELAY_S = 5.0
FAULT_S = 30.0
MAX_SILENCE_S = 2.0  # [ivr] max_silence_s of this stack
DISK_MB = 64  # the module records about 40 MB (10 legs at 16 kB/s for 4 min)
MIN_FREE_MB = 1
# AGI commands during which the caller hears a prompt or is asked for keys
AUDIBLE = ("STREAM FILE", "EXEC READ", "EXEC PLAYBACK", "EXEC BACKGROUND", "GET DATA",
           "CONTROL STREAM FILE", "SAY ")
IVR_ENDS = frozenset({"HotlineFallback", "HotlineTransfer", "HotlineQueued"})


# --------------------------------------------------------------------- the IVR's dead air


def ivr_dead_air(events: Iterable[Event], uid: str) -> tuple[float, float | None]:
    """(longest dead air in s, when it began) of one caller channel in the IVR: from its
    Newchannel to its first UserEvent of the agent side (or its hangup), the time no prompt
    or Read ran (AGIExecStart .. AGIExecEnd of an AUDIBLE command) and no music played. A
    prompt stops the music (Asterisk deactivates the generator), whatever events say."""
    start: float | None = None
    music = playing = False
    since: float | None = None
    worst, worst_at = 0.0, None

    def close(t: float) -> None:
        nonlocal since, worst, worst_at
        if since is not None and t - since > worst:
            worst, worst_at = t - since, since
        since = None

    for e in events:
        if str(e.get("Uniqueid", "")) != uid:
            continue
        name, t = e.get("Event"), ts(e)
        if name == "Newchannel":
            start, since = t, t
            continue
        if start is None:
            continue
        if name == "Hangup" or (name == "UserEvent" and e.get("UserEvent") in IVR_ENDS):
            close(t)
            return worst, worst_at
        if name == "MusicOnHoldStart":
            music = True
        elif name == "MusicOnHoldStop":
            music = False
        elif name == "AGIExecStart" and str(e.get("Command", "")).upper().startswith(AUDIBLE):
            playing, music = True, False
        elif name == "AGIExecEnd" and playing:
            playing = False
        if music or playing:
            close(t)
        elif since is None:
            since = t
    return worst, worst_at


def _uids_with(events: Iterable[Event], user_event: str) -> set[str]:
    return {str(e.get("Uniqueid")) for e in events
            if e.get("Event") == "UserEvent" and e.get("UserEvent") == user_event}


# ------------------------------------------------------------------------------ the stack


@pytest.fixture(scope="module")
def small_disk() -> Iterator[Path]:
    """A small ext4 file system in a loop file, for the recordings (for this module only)."""
    for tool in ("mkfs.ext4", "mount", "umount"):
        assert shutil.which(tool), f"{tool} is not installed"
    assert os.geteuid() == 0, "the disk-full fault mounts a file system: run as root"
    where = Path(tempfile.mkdtemp(prefix="hotline-faults-disk-", dir="/tmp"))
    where.chmod(0o755)  # the CTI (user hotline) and Asterisk reach the mount through it
    image, mnt = where / "recordings.img", where / "recordings"
    mnt.mkdir()
    with image.open("wb") as f:
        f.truncate(DISK_MB * 1024 * 1024)
    # no reserved blocks (Asterisk is not root) and no journal: all of it is for recordings
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", str(image)],
                   check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
    (mnt / "lost+found").rmdir()  # the reconciler walks the folder
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        shutil.rmtree(where, ignore_errors=True)


@contextmanager
def asterisk_agi_through(proxy_port: int, agi_port: int) -> Iterator[None]:
    """Asterisk's FastAGI connections (its uid, to agi_port) redirected to the proxy, by an
    nftables rule of this slot's own; the proxy (root) still reaches the CTI on agi_port. (Not
    a re-rendered dialplan: `dialplan reload` clears the globals, the CTI's heartbeat among
    them, and every waiting caller would fail over at once.)"""
    assert shutil.which("nft"), "nft is not installed"
    uid = pwd.getpwnam(ASTERISK_USER).pw_uid
    table = f"hotline_faults_slot{SLOT}"
    subprocess.run(["nft", "-f", "-"], check=True, text=True, input=(
        f"table ip {table} {{\n chain out {{\n  type nat hook output priority -100;\n"
        f"  meta skuid {uid} ip daddr 127.0.0.1 tcp dport {agi_port} "
        f"redirect to :{proxy_port}\n }}\n}}\n"))
    try:
        yield
    finally:
        subprocess.run(["nft", "delete", "table", "ip", table], check=False)


@pytest.fixture(scope="module")
def slow_hotline(small_disk: Path) -> Iterator[tuple[Hotline, DelayProxy, Path]]:
    # the proxy connects as root, not as Asterisk's user: the peer-uid check is off on this
    # stack, the dialplan's secret still applies (issue 10, defect 8)
    settings: dict[str, Any] = {
        "fastagi": {"peer_uid": False},
        "ivr": {"max_silence_s": MAX_SILENCE_S},
        "recorder": {"storage_dir": str(small_disk), "min_free_mb": MIN_FREE_MB},
    }
    with delay_proxy(PROXY_PORT, PORTS["fastagi"]) as proxy, \
            asterisk_agi_through(PROXY_PORT, PORTS["fastagi"]), \
            running_hotline(settings=settings) as h:
        stack.wait_until(lambda: proxy.connections > 0, 30, "a call through the proxy")
        yield h, proxy, small_disk


# ------------------------------------------------------------------------------ the faults


def test_fastagi_5s_slow_replies_callers_hear_music_then_the_fallback(
        slow_hotline: tuple[Hotline, DelayProxy, Path]) -> None:
    h, proxy, _disk = slow_hotline
    h.steady()
    a0 = len(h.ami.events())
    t0 = time.time()
    mid = [c for c in h.catch_up().in_flight(t0) if c.queued is None]  # in the IVR now
    proxy.delay_s = DELAY_S
    # the fault itself: 30 s of a slow FastAGI path (a deadline on the clock)
    h.through(t0 + FAULT_S, f"{FAULT_S:.0f} s of {DELAY_S:.0f} s slow FastAGI replies")
    proxy.delay_s = 0.0
    t1 = time.time()
    book = h.catch_up()
    started = [c for c in book.calls.values() if t0 <= c.created < t1]
    everyone = {c.uid: c for c in [*mid, *started]}
    # nothing hangs: every caller of the fault ends (answered and talked, or gone)
    book = h.ended(set(everyone), 240, "the callers of the slow-FastAGI fault to end")
    events = h.ami.events()
    fell_back = _uids_with(events[a0:], "HotlineFallback")
    calls = [book.calls[u] for u in everyone]
    dead = {c.uid: ivr_dead_air(events, c.uid)[0] for c in calls}
    # a new session that met the slow path (its first command left after t0)
    new = [c for c in started if c.created >= t0 + 0.5]
    new_worst = max((dead[c.uid] for c in new), default=0.0)
    mid_worst = max((dead[c.uid] for c in mid), default=0.0)
    not_fallen = [c.number for c in new if c.uid not in fell_back]
    lost = [c.number for c in calls if not c.answered]
    q_worst, who = silence(calls)
    # after the fault, the IVR serves again: a call that starts now transfers, no fallback
    t_after = time.time()
    book = h.until(lambda b: any(c.created > t_after and c.queued for c in b.calls.values()),
                   90, "a call after the fault to reach the agent side")
    after = [c for c in book.calls.values() if c.created > t_after and c.queued]
    events = h.ami.events()
    served_by_ivr = [c for c in after if c.uid in _uids_with(events, "HotlineTransfer")]
    row = {"fault": f"FastAGI {DELAY_S:.0f} s slow replies, {FAULT_S:.0f} s",
           "calls_in_flight": len(mid) + sum(1 for c in book.in_flight(t0) if c.queued),
           "in_ivr_at_start": len(mid), "ivr_sessions_in_fault": len(new),
           "fell_back": sum(1 for c in calls if c.uid in fell_back),
           "ivr_dead_air_new_s": round(new_worst, 2), "ivr_dead_air_mid_s": round(mid_worst, 2),
           "calls_lost": len(lost), "work_orders_lost": None,
           "max_silence_s": round(q_worst, 2), "delayed_chunks": proxy.delayed_chunks}
    try:
        row.update(outcomes_and_recordings(h, calls))
    finally:
        report(row)
    assert new, "no IVR session started during the slow window"
    assert new_worst <= MAX_SILENCE_S + 1.0, (
        f"a caller whose IVR began on the slow path heard {new_worst:.1f}s of dead air")
    assert not not_fallen, f"callers of the slow path who did not take the fallback: {not_fallen}"
    # a session the slow path caught mid-way gives up after the budget and moves its caller
    # over AMI (the command in flight, and the close, would reach Asterisk 5 s late)
    assert mid_worst <= MAX_SILENCE_S + 1.0, (
        f"a caller in the IVR when the path slowed heard {mid_worst:.1f}s of dead air")
    assert not lost, f"callers who never reached an agent: {lost}"
    assert q_worst <= SILENCE_MAX_S, f"{who and who.number} heard {q_worst:.1f}s of silence"
    assert served_by_ivr, "after the fault no call went through the IVR again"


def _fill(disk: Path) -> Path:
    """Take every free byte of the disk with one file (root writes past nothing: -m 0)."""
    filler = disk / ".filler"
    with filler.open("wb") as f:
        chunk = b"\0" * (1 << 20)
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError:
            pass
        try:  # the last partial MiB
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        except OSError:
            pass
    return filler


def test_recording_disk_full_calls_go_on_each_unrecorded_leg_has_a_reason_and_an_alert(
        slow_hotline: tuple[Hotline, DelayProxy, Path]) -> None:
    h, _proxy, disk = slow_hotline
    h.steady()
    m0 = h.mqtt.mark()
    t0 = time.time()
    in_flight = h.catch_up().in_flight(t0)
    free_before = shutil.disk_usage(disk).free
    assert free_before > 4 * MIN_FREE_MB * 1024 * 1024, "the disk filled before the fault"
    filler = _fill(disk)
    free_at_fault = shutil.disk_usage(disk).free
    # the fault itself: 30 s of a full recordings disk (a deadline on the clock)
    book = h.through(t0 + FAULT_S, f"{FAULT_S:.0f} s of a full recordings disk")
    filler.unlink()
    t_back = time.time()

    def alerts(level: str) -> list[dict[str, Any]]:
        return [m.payload for m in h.mqtt.messages()[m0:]
                if m.topic == "hotline/supervisors/alerts" and isinstance(m.payload, dict)
                and m.payload.get("kind") == "recording" and m.payload.get("level") == level]

    stack.wait_until(lambda: alerts("disk_ok"), 15, "the recorder to see the disk has room",
                     interval=0.2)
    t_ok = time.time()
    # recording resumes: calls answered from now on are recorded whole
    book = h.until(lambda b: sum(1 for c in b.calls.values() if c.answered
                                 and c.answered > t_ok + 1 and c.ended) >= 3, 120,
                   "three calls answered after the disk had room to end")
    resumed = [c for c in book.calls.values() if c.answered and c.answered > t_ok + 1
               and c.ended]
    during = [c for c in book.calls.values() if t0 <= c.created < t_back]
    everyone = {c.uid: c for c in [*in_flight, *during]}
    book = h.ended(set(everyone), 240, "the calls of the disk-full fault to end")
    calls = [book.calls[u] for u in everyone]
    # legs talking while the disk was full: answered before the space came back, ended after
    # the disk filled
    hit = [c for c in calls if c.answered and c.answered < t_back and c.ended
           and c.ended > t0]
    lost = [c.number for c in calls if not c.answered]
    worst, who = silence(calls)
    row: dict[str, Any] = {
        "fault": f"recording disk full {FAULT_S:.0f} s ({DISK_MB} MB ext4 loop)",
        "calls_in_flight": len(in_flight), "calls_during_fault": len(during),
        "legs_on_full_disk": len(hit), "calls_lost": len(lost), "work_orders_lost": None,
        "free_mb_before": round(free_before / 2**20, 1),
        "free_bytes_at_fault": free_at_fault, "disk_full_alerts": len(alerts("disk_full")),
        "resume_alert_s_after_space": round(t_ok - t_back, 2),
        "max_silence_s": round(worst, 2)}
    try:
        row.update(outcomes_and_recordings(h, calls, 60, reason_will_do=True))
        reasons = unrecorded_reasons(h, {c.uid for c in calls})
        row["legs_with_reason"] = sum(1 for r in reasons.values() if r)
        unalerted = [u for u, r in reasons.items() if r
                     and not any(a.get("call_id") == u for a in alerts("unrecorded"))]
        row["reasons_without_alert"] = len(unalerted)
        outcomes_and_recordings(h, resumed)  # strict: these have their recording
    finally:
        report(row)
    assert free_at_fault < MIN_FREE_MB * 1024 * 1024, row
    assert len(alerts("disk_full")) == 1, "one supervisor alert when the recordings disk filled"
    assert all(a["at"] < alerts("disk_ok")[0]["at"] for a in alerts("disk_full")), row
    assert row["legs_with_reason"] > 0, f"no leg recorded on the full disk was logged: {row}"
    assert all(r[0]["reason"] == "disk_full" for r in reasons.values() if r), reasons
    assert not unalerted, f"unrecorded legs with no supervisor alert: {unalerted}"
    assert not lost, f"callers who never reached an agent: {lost}"
    assert worst <= SILENCE_MAX_S, f"{who and who.number} heard {worst:.1f}s of silence"
