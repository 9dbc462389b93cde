"""[call_control] (config/call_control.py): which outside numbers an agent may consult. The
trunk costs money, so anything that is not plainly a national number of the directory or of
the allowed pattern is refused (toll fraud: international, premium and service numbers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.call_control import (
    DEFAULT_OUTSIDE_PATTERN,
    CallControlSettings,
    OutsideNumber,
    OutsideNumberRefused,
    call_control_settings,
)
from config.settings import SettingsError, load_settings
from outbound.dnc import BadNumber

DIRECTORY = CallControlSettings(outside_numbers=(OutsideNumber("抢修调度", "01065550101"),))


@pytest.mark.parametrize(("typed", "number", "name"), [
    ("13900880001", "13900880001", ""),
    ("+86 139-0088-0001", "13900880001", ""),
    ("008613900880001", "13900880001", ""),
    ("010 6555 0101", "01065550101", "抢修调度"),
    ("+86 10 6555 0101", "01065550101", "抢修调度"),
    ("075512345678", "075512345678", ""),
])
def test_national_mobile_and_landline_numbers_and_the_directory_pass(
        typed: str, number: str, name: str) -> None:
    assert DIRECTORY.outside(typed) == OutsideNumber(name, number)


@pytest.mark.parametrize("typed", [
    "+1 650 555 0100",   # another country: its digits could pass for a national number
    "+44 20 7946 0958",
    "0016505550100",     # international access prefix
    "4008123456",        # 400/800: not a subscriber number
    "95598",             # service numbers
    "12590123456",       # 1259x: premium
    "110", "10086",
    "1390088000",        # a digit short
    "139008800011",      # a digit long
    "0101234567890",     # a landline too long
])
def test_international_premium_service_and_odd_numbers_are_refused(typed: str) -> None:
    with pytest.raises(OutsideNumberRefused):
        DIRECTORY.outside(typed)


@pytest.mark.parametrize("typed", ["", "abc", "000", "1" * 25])
def test_what_is_no_number_at_all(typed: str) -> None:
    with pytest.raises(BadNumber):
        DIRECTORY.outside(typed)


def test_an_empty_pattern_allows_the_directory_only() -> None:
    only = call_control_settings({"outside_pattern": "",
                                  "outside_numbers": [{"name": "计量班",
                                                       "number": "010-6555-0102"}]})
    assert only.outside("01065550102") == OutsideNumber("计量班", "01065550102")
    with pytest.raises(OutsideNumberRefused):
        only.outside("13900880001")


def test_defaults_and_the_shipped_file() -> None:
    assert call_control_settings({}) == CallControlSettings()
    assert CallControlSettings().outside_pattern == DEFAULT_OUTSIDE_PATTERN
    shipped = load_settings(env={}).call_control
    assert shipped.outside_pattern == DEFAULT_OUTSIDE_PATTERN
    assert [n.number for n in shipped.outside_numbers] == ["01065550101", "01065550102"]


@pytest.mark.parametrize("raw", [
    {"outside_pattern": "(["},
    {"outside_numbers": {"name": "x", "number": "1"}},
    {"outside_numbers": [{"name": "", "number": "01065550101"}]},
    {"outside_numbers": [{"name": "a\tb", "number": "01065550101"}]},
    {"outside_numbers": [{"name": "x", "number": "abc"}]},
    {"outside_numbers": [{"name": "x", "number": "01065550101", "cost": 1}]},
    {"outside_numbers": [{"name": "a", "number": "01065550101"},
                         {"name": "b", "number": "010 6555 0101"}]},
    {"outside": []},
])
def test_bad_settings_are_refused(raw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        call_control_settings(raw)


def test_a_bad_table_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "hotline.toml"
    text = (Path(__file__).resolve().parents[2] / "hotline.toml").read_text(encoding="utf-8")
    path.write_text(text.replace('\noutside_pattern = "', '\noutside_pattern = "([', 1),
                    encoding="utf-8")
    with pytest.raises(SettingsError, match="outside_pattern"):
        load_settings(path, env={})
