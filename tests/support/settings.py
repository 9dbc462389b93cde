"""Test settings: hotline.toml with other ports and paths, so tests run beside `make up`."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w

REPO = Path(__file__).resolve().parents[2]


def write_test_settings(path: Path, overrides: dict[str, dict[str, Any]]) -> Path:
    raw = tomllib.loads((REPO / "hotline.toml").read_text(encoding="utf-8"))
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    path.write_text(tomli_w.dumps(raw), encoding="utf-8")
    return path
