"""Retention: how long a recording is kept, by the categories of the work orders of its call.

A call may have several work orders (a consultation that became a complaint); the recording is
kept as long as its longest-kept category asks. A call with no work order is kept for the
default. Zero days is not allowed: deleting evidence by a typo is worse than a full disk.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta


class RetentionError(ValueError):
    """The retention settings are invalid."""


# a deleted recording's file, when its removal failed, is tried again by the daily purge for
# this many days (the purge's work then does not grow with every deletion ever made)
FILE_RETRY_DAYS = 30


@dataclass(frozen=True)
class RetentionPolicy:
    default_days: int
    by_category: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, object],
                     known_categories: Iterable[str] | None = None) -> RetentionPolicy:
        """`{"default": 180, "complaint": 730, ...}` as in [recorder.retention]."""
        known = set(known_categories) if known_categories is not None else None
        days: dict[str, int] = {}
        for key, value in raw.items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise RetentionError(f"recorder.retention.{key}: days must be an integer, "
                                     f"got {value!r}")
            if value < 1:
                raise RetentionError(f"recorder.retention.{key}: days must be at least 1, "
                                     f"got {value}")
            if key != "default" and known is not None and key not in known:
                raise RetentionError(f"recorder.retention.{key}: unknown work-order category "
                                     f"(known: {', '.join(sorted(known))})")
            days[key] = value
        if "default" not in days:
            raise RetentionError("recorder.retention.default: missing (days to keep a "
                                 "recording whose call has no work order)")
        default = days.pop("default")
        return cls(default, days)

    def keep_days(self, categories: Iterable[str]) -> tuple[int, str]:
        """(days, the category that decided) for a call with these work-order categories."""
        ruled = [(self.by_category[c], c) for c in set(categories) if c in self.by_category]
        if not ruled:
            return self.default_days, "default"
        # a category's own rule wins over the default even when shorter (a consultation kept
        # 90 days is not kept 180 because the default is longer); among categories, the longest
        return max(ruled)

    def shortest_days(self) -> int:
        """No recording runs out sooner than this: the purge reads only older ones."""
        return min([self.default_days, *self.by_category.values()])

    def expires_at(self, started_at: datetime, categories: Iterable[str]) -> datetime:
        days, _ = self.keep_days(categories)
        return started_at + timedelta(days=days)

    def expired(self, started_at: datetime, categories: Iterable[str], now: datetime) -> bool:
        return now >= self.expires_at(started_at, categories)
