"""Turning query results into json.dumps-able values without losing precision."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

CENT = Decimal("0.01")


def json_ready(value: Any) -> Any:
    """ISO strings for dates and times, Decimal as an exact string, containers recursively."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


def yuan(value: Decimal) -> str:
    """Money as a string with fen: SQLite hands NUMERIC back through float, so quantize first."""
    return str(value.quantize(CENT))
