"""config/wallboard.py: the wallboard's thresholds, read and checked, and each figure's colour."""

from __future__ import annotations

import pytest

from config.wallboard import WallboardSettings, wallboard_levels, wallboard_settings

W = WallboardSettings()


@pytest.mark.parametrize(("figures", "expected"), [
    ({"longest_wait_s": 0.0, "service_level": 0.95, "abandon_rate": 0.0, "agents_ready": 5},
     {"longest_wait": "ok", "service_level": "ok", "abandon_rate": "ok", "agents_ready": "ok"}),
    ({"longest_wait_s": 15.0, "service_level": 0.84, "abandon_rate": 0.05, "agents_ready": 2},
     {"longest_wait": "amber", "service_level": "amber", "abandon_rate": "amber",
      "agents_ready": "amber"}),
    ({"longest_wait_s": 30.0, "service_level": 0.79, "abandon_rate": 0.10, "agents_ready": 0},
     {"longest_wait": "red", "service_level": "red", "abandon_rate": "red",
      "agents_ready": "red"}),
    # no call yet today: no service level or abandon rate to judge
    ({"longest_wait_s": 0.0, "service_level": None, "abandon_rate": None, "agents_ready": 3},
     {"longest_wait": "ok", "service_level": None, "abandon_rate": None, "agents_ready": "ok"}),
    # exactly on the amber service level is still fine; just below is not
    ({"longest_wait_s": 14.9, "service_level": 0.85, "abandon_rate": 0.0499,
      "agents_ready": 3},
     {"longest_wait": "ok", "service_level": "ok", "abandon_rate": "ok", "agents_ready": "ok"}),
])
def test_each_watched_figure_gets_its_colour(figures: dict[str, float],
                                             expected: dict[str, str | None]) -> None:
    assert wallboard_levels(W, **figures) == expected  # type: ignore[arg-type]


def test_the_table_is_read_and_defaults_fill_the_rest() -> None:
    w = wallboard_settings({"longest_wait_amber_s": 10, "service_level_red": 0.7})
    assert (w.longest_wait_amber_s, w.service_level_red, w.abandon_rate_red) == (10, 0.7, 0.10)
    assert wallboard_settings({}) == W


@pytest.mark.parametrize(("raw", "says"), [
    ({"longest_wait_amber": 10}, "unknown keys"),
    ({"service_level_red": 1.5}, "out of range"),
    ({"abandon_rate_amber": -0.1}, "out of range"),
    ({"agents_ready_red": 1.5}, "whole number"),
    ({"longest_wait_red_s": "30"}, "must be a number"),
    ({"longest_wait_red_s": True}, "must be a number"),
    ({"longest_wait_red_s": 10}, "longest_wait: the red threshold"),
    ({"service_level_red": 0.9}, "service_level: the red threshold"),
    ({"agents_ready_red": 3}, "agents_ready: the red threshold"),
    ([], "must be a table"),
])
def test_a_bad_table_is_refused_with_the_reason(raw: object, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        wallboard_settings(raw)  # type: ignore[arg-type]
