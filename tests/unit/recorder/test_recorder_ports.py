"""The recorder over its ports alone: an in-memory recording index and a fake AMI, no database
and no cti/ code (the port contract the CTI's adapters fulfil)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from config.recorder import RecorderSettings
from cti.ami.protocol import AmiActionError, AmiDisconnected, AmiTimeout
from recorder import service as recorder_service
from recorder.naming import IN_CHROOT_DIR
from recorder.ports import (
    UNAVAILABLE,
    RecordingFacts,
    RecordingIndex,
    UnrecordedLeg,
    is_refusal,
)
from recorder.reconcile import IndexRow
from recorder.retention import RetentionPolicy
from recorder.service import RecorderService, RecordingAlerts, reconcile
from tests.support.fakes import FakeAmi
from tests.support.wav import write_tone_wav

T0 = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)
REL = "20261127/pbx1-1764210600.7_pbx1-1764210612.9_seat07.wav"


class MemoryIndex:
    """RecordingIndex in a dict."""

    def __init__(self) -> None:
        self.facts: dict[str, RecordingFacts] = {}
        self.deleted: set[str] = set()

    def rows(self) -> dict[str, IndexRow]:
        return {rel: IndexRow(i, rel, f.sha256, f.size)
                for i, (rel, f) in enumerate(sorted(self.facts.items()), 1)
                if rel not in self.deleted}

    def deleted_paths(self) -> set[str]:
        return set(self.deleted)

    def index(self, facts: RecordingFacts, now: datetime) -> None:
        self.facts.setdefault(facts.rel_path, facts)

    def purge(self, policy: RetentionPolicy, now: datetime, actor: str, *,
              dry_run: bool = False) -> list[dict[str, Any]]:
        return []

    def remove_deleted_files(self, storage_dir: Path,
                             since: datetime | None = None) -> list[str]:
        return []


def test_the_memory_index_is_a_recording_index() -> None:
    index: RecordingIndex = MemoryIndex()  # mypy checks the port's shape here
    assert index.rows() == {}


def test_refusals_and_unavailability_are_told_apart_without_cti_types() -> None:
    assert is_refusal(AmiActionError("DBGet", {"Response": "Error"}))  # type: ignore[arg-type]
    assert not is_refusal(AmiTimeout("x")) and not is_refusal(ValueError("x"))
    assert isinstance(AmiTimeout("x"), UNAVAILABLE)
    assert isinstance(AmiDisconnected("x"), UNAVAILABLE)


def test_reconcile_indexes_a_file_of_a_systemname_call_through_the_port(tmp_path: Path
                                                                         ) -> None:
    write_tone_wav(tmp_path / REL, 1.0)
    index = MemoryIndex()
    doc = reconcile(tmp_path, index, T0, settle_s=0.0)
    assert doc["indexed"] == [REL] and doc["clean"]
    assert index.facts[REL].indexed_by == "reconcile"
    again = reconcile(tmp_path, index, T0, settle_s=0.0)
    assert again["indexed"] == [] and again["ok"] == 1


async def test_the_service_reads_astdb_metadata_by_day_through_the_ami_port(
        tmp_path: Path) -> None:
    write_tone_wav(tmp_path / REL, 1.0)
    index = MemoryIndex()
    ami = FakeAmi(astdb={"hotline-rec/20261127/pbx1-1764210600.7_pbx1-1764210612.9":
                         "13900001111|general|1764210600"})
    svc = RecorderService(RecorderSettings(storage_dir=tmp_path, settle_s=0.0), index,
                          ami=ami, clock=lambda: T0)
    doc = await svc.reconcile()
    assert doc["indexed"] == [REL]
    facts = index.facts[REL]
    assert (facts.caller_number, facts.queue) == ("13900001111", "general")
    assert [a["Family"] for a in ami.named("DBGet")] == ["hotline-rec/20261127"]
    assert ami.named("DBDel") == []  # the dialplan drops a day's notes (hotline-rec-tidy)


async def test_an_unreachable_pbx_leaves_indexing_to_the_file_alone(tmp_path: Path) -> None:
    class DownAmi:
        async def action(self, action: Any, *, timeout: float | None = None,
                         idempotent: bool, as_list: bool | None = None) -> Any:
            raise AmiDisconnected("AMI is not connected")

    write_tone_wav(tmp_path / REL, 1.0)
    index = MemoryIndex()
    svc = RecorderService(RecorderSettings(storage_dir=tmp_path, settle_s=0.0), index,
                          ami=DownAmi(), clock=lambda: T0)
    assert (await svc.reconcile())["indexed"] == [REL]
    assert index.facts[REL].caller_number is None


async def test_a_programming_error_behind_the_port_is_not_swallowed(tmp_path: Path) -> None:
    class BrokenAmi:
        async def action(self, action: Any, *, timeout: float | None = None,
                         idempotent: bool, as_list: bool | None = None) -> Any:
            raise KeyError("bug")

    write_tone_wav(tmp_path / REL, 1.0)
    svc = RecorderService(RecorderSettings(storage_dir=tmp_path, settle_s=0.0), MemoryIndex(),
                          ami=BrokenAmi(), clock=lambda: T0)
    with pytest.raises(KeyError):
        await svc.reconcile()


class MemoryAlerts:
    """RecordingAlerts in lists: the facts the recorder hands over (the notifier makes them
    messages in the CTI)."""

    def __init__(self, fail: bool = False) -> None:
        self.disk: list[tuple[bool, int, int, datetime]] = []
        self.legs: list[tuple[UnrecordedLeg, datetime]] = []
        self.fail = fail

    def recording_disk(self, *, full: bool, free_bytes: int, min_free_bytes: int,
                       at: datetime) -> None:
        if self.fail:
            raise ConnectionError("bus gone")
        self.disk.append((full, free_bytes, min_free_bytes, at))

    def unrecorded_leg(self, leg: UnrecordedLeg, *, at: datetime) -> None:
        self.legs.append((leg, at))


async def test_the_recorder_hands_alert_facts_to_its_port(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    free = [0]
    monkeypatch.setattr(recorder_service, "free_bytes", lambda _path: free[0])
    alerts = MemoryAlerts()
    port: RecordingAlerts = alerts  # mypy checks the port's shape here
    svc = RecorderService(RecorderSettings(storage_dir=tmp_path, min_free_mb=1.0,
                                           index_wait_s=0.01), MemoryIndex(), clock=lambda: T0)
    svc.alerts = port
    assert svc.check_disk() and svc.check_disk()  # full, and still full: one alert
    await svc.index_event({"File": f"{IN_CHROOT_DIR}/{REL}", "Seat": "seat07",
                           "StartEpoch": "1764210600", "EndEpoch": "1764210612"})
    free[0] = 2 * 1024 * 1024
    assert not svc.check_disk()
    assert alerts.disk == [(True, 0, 1048576, T0), (False, 2097152, 1048576, T0)]
    [(leg, at)] = alerts.legs
    assert (leg.call_id, leg.leg_id, leg.seat, leg.rel_path, leg.reason, at) == (
        "pbx1-1764210600.7", "pbx1-1764210612.9", "seat07", REL, "disk_full", T0)


def test_an_alert_that_cannot_go_out_does_not_stop_the_recorder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
        ) -> None:
    monkeypatch.setattr(recorder_service, "free_bytes", lambda _path: 0)
    svc = RecorderService(RecorderSettings(storage_dir=tmp_path, min_free_mb=1.0),
                          MemoryIndex(), clock=lambda: T0)
    svc.alerts = MemoryAlerts(fail=True)
    assert svc.check_disk() is True
    assert "recording alert not sent: disk full" in caplog.text
