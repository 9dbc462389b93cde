"""config/callers.py: the [callers] table, read and checked."""

from __future__ import annotations

from datetime import timedelta

import pytest

from config.callers import CallerSettings, caller_settings


def test_defaults_and_a_table() -> None:
    assert caller_settings({}) == CallerSettings()
    c = caller_settings({"nuisance_after": 5, "nuisance_window_days": 30})
    assert (c.nuisance_after, c.nuisance_window) == (5, timedelta(days=30))


@pytest.mark.parametrize(("raw", "says"), [
    ({"nuisance_afterr": 3}, "unknown keys"),
    ({"nuisance_after": 0}, "at least 1"),
    ({"nuisance_after": "3"}, "whole number"),
    ({"nuisance_window_days": True}, "whole number"),
    ([], "must be a table"),
])
def test_a_bad_table_is_refused(raw: object, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        caller_settings(raw)  # type: ignore[arg-type]
