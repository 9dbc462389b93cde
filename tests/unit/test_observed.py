"""The AMI stream's observers (hotline.wiring.observed): every event passes on unchanged and in
order, each observer sees each one, and one observer's error costs the others nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from hotline.wiring import observed


def test_each_observer_sees_each_event_and_a_failing_one_stops_nothing() -> None:
    seen: list[tuple[str, Any]] = []

    def broken(event: Any) -> None:
        raise RuntimeError("a bug in one observer")

    async def source() -> AsyncIterator[dict[str, str]]:
        for n in range(3):
            yield {"Event": "Hangup", "n": str(n)}

    async def run() -> list[Any]:
        return [e async for e in observed(source(), lambda e: seen.append(("a", e["n"])),
                                          None, broken, lambda e: seen.append(("b", e["n"])))]

    out = asyncio.run(run())
    assert [e["n"] for e in out] == ["0", "1", "2"]
    assert seen == [("a", "0"), ("b", "0"), ("a", "1"), ("b", "1"), ("a", "2"), ("b", "2")]
