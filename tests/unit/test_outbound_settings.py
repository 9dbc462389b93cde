"""[outbound]: defaults, what each setting builds (window, retries, pacing) and clear errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from config.outbound import OutboundSettings, outbound_settings
from outbound.outcome import Outcome


def test_defaults_are_the_issues() -> None:
    s = outbound_settings({})
    assert s == OutboundSettings()
    w = s.window()
    assert w.allows(datetime(2026, 12, 7, 0, 0, tzinfo=UTC))        # 08:00 in Shanghai
    assert not w.allows(datetime(2026, 12, 7, 13, 0, tzinfo=UTC))   # 21:00
    assert s.retry().max_attempts == 3
    assert s.retry().wait_after(Outcome.NO_ANSWER, 1) == timedelta(minutes=15)
    assert s.retry().wait_after(Outcome.BUSY, 2) == timedelta(minutes=5)
    assert s.pacing().max_concurrent == 4 and s.pacing().reserve_channels == 2
    assert s.return_visit_delay == timedelta(hours=1)


def test_a_whole_day_window_and_quiet_days() -> None:
    s = outbound_settings({"window_opens": "00:00", "window_closes": "24:00",
                           "quiet_days": ["2027-02-06"], "quiet_weekdays": [6]},
                          timezone="Asia/Shanghai")
    w = s.window()
    assert w.allows(datetime(2026, 12, 7, 15, 59, 59, tzinfo=UTC))  # 23:59:59 local
    assert date(2027, 2, 6) in w.quiet_days and w.quiet_weekdays == {6}


@pytest.mark.parametrize(("raw", "message"), [
    ({"retries": 3}, "unknown setting"),
    ({"enabled": "yes"}, "enabled must be true or false"),
    ({"max_attempts": 0}, "max_attempts must be a whole number of at least 1"),
    ({"ring_s": 1}, "ring_s must be a number of at least 5"),
    ({"backoff_min": []}, "backoff_min must be a list of minutes"),
    ({"quiet_days": "2027-02-06"}, "quiet_days must be a list"),
    ({"quiet_days": ["6 Feb"]}, "call window"),
    ({"window_opens": "8 am"}, "call window"),
    ({"window_opens": "09:00", "window_closes": "09:00"}, "call window"),
    ({"quiet_weekdays": [7]}, "call window"),
])
def test_bad_settings_are_named(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        outbound_settings(raw)
