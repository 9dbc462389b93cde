"""[outages] settings (config/outages.py) through load_settings, and the outage alert payload
on hotline/supervisors/alerts (config/topics.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from config import topics
from config.outages import OutageSettings, outage_settings
from config.settings import SettingsError, load_settings
from cti.mqtt.outbox import PublishAfterCommit
from cti.notifier import SUPERVISOR_ALERTS_TOPIC, Notifier
from outages.incidents import DetectionSettings, Mode
from tests.support.fakes import FakeBus
from tests.support.settings import write_test_settings

NOW = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)


def test_the_defaults_are_five_reports_in_fifteen_minutes_confirmed() -> None:
    assert OutageSettings().detection() == DetectionSettings(5, timedelta(minutes=15),
                                                             Mode.CONFIRM)
    assert outage_settings({}) == OutageSettings()


def test_the_shipped_settings_file_has_the_defaults() -> None:
    assert load_settings(env={}).outages == OutageSettings()


def test_settings_are_read_and_passed_down(tmp_path: Path) -> None:
    path = write_test_settings(tmp_path / "hotline.toml", {"outages": {
        "detect_threshold": 3, "detect_window_min": 10, "detect_mode": "auto"}})
    got = load_settings(path, {}).outages.detection()
    assert got == DetectionSettings(3, timedelta(minutes=10), Mode.AUTO)


def test_detection_can_be_switched_off(tmp_path: Path) -> None:
    path = write_test_settings(tmp_path / "hotline.toml", {"outages": {"detect": False}})
    assert load_settings(path, {}).outages.detection() is None


@pytest.mark.parametrize(("raw", "message"), [
    ({"detect_threshold": 1}, r"detect_threshold must be at least 2 reports, not 1"),
    ({"detect_threshold": "5"}, r"detect_threshold must be a whole number, not '5'"),
    ({"detect_threshold": 5.5}, r"detect_threshold must be a whole number"),
    ({"detect_window_min": 0}, r"detect_window_min must be more than 0 and at most 1440"),
    ({"detect_window_min": 2000}, r"detect_window_min must be more than 0 and at most 1440"),
    ({"detect_window_min": True}, r"detect_window_min must be a number of minutes"),
    ({"detect_mode": "manual"}, r"detect_mode must be 'confirm' or 'auto', not 'manual'"),
    ({"detect": "yes"}, r"detect must be true or false, not 'yes'"),
    ({"threshold": 5}, r"\[outages\]: unknown setting\(s\) threshold; known: detect, "),
])
def test_bad_settings_fail_at_startup_with_the_file_and_the_reason(
        tmp_path: Path, raw: dict[str, Any], message: str) -> None:
    path = write_test_settings(tmp_path / "hotline.toml", {"outages": raw})
    with pytest.raises(SettingsError, match=message) as err:
        load_settings(path, {})
    assert str(path) in str(err.value)


def _alert(**over: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "level": "suspected", "outage_id": 7, "scope": "transformer_area", "area_id": 3,
        "area": "历下区", "feeder_id": None, "feeder": None, "transformer_area": "泉城路1号台区",
        "reports": 5, "window_min": 15.0, "master_number": "26112700001",
        "first_report_at": NOW - timedelta(minutes=4), "at": NOW}
    return topics.outage_alert_payload(**{**args, **over})


def test_the_outage_alert_payload() -> None:
    assert _alert() == {
        "kind": "outage", "level": "suspected", "outage_id": 7, "scope": "transformer_area",
        "area_id": 3, "area": "历下区", "feeder_id": None, "feeder": None,
        "transformer_area": "泉城路1号台区", "reports": 5, "window_min": 15.0,
        "master_number": "26112700001", "first_report_at": "2026-11-27T02:26:00.000+00:00",
        "at": "2026-11-27T02:30:00.000+00:00"}
    assert _alert(level="announced")["level"] == "announced"
    with pytest.raises(ValueError, match="unknown outage alert level 'loud'"):
        _alert(level="loud")
    with pytest.raises(ValueError, match="unknown outage scope 'area'"):
        _alert(scope="area")


def test_the_notifier_holds_the_outage_alert_until_the_commit() -> None:
    bus = FakeBus()
    notifier = Notifier(bus, outbox=PublishAfterCommit(bus))
    engine = create_engine("sqlite://")
    args = {k: v for k, v in _alert().items() if k != "kind"}
    args["first_report_at"], args["at"] = NOW - timedelta(minutes=4), NOW
    with Session(engine) as s:
        notifier.outage_alert(s, **args)
        s.rollback()
        assert bus.sent == []  # rolled back: dropped
        notifier.outage_alert(s, **args)
        assert bus.sent == []  # held until the commit
        s.commit()
    assert bus.sent == [(SUPERVISOR_ALERTS_TOPIC, _alert())]
    engine.dispose()
