"""Test settings: hotline.toml with other ports and paths, so tests run beside `make up`."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w

REPO = Path(__file__).resolve().parents[2]


def write_test_settings(path: Path, overrides: dict[str, dict[str, Any]]) -> Path:
    """hotline.toml with `overrides` (per section), and no post-call survey unless they ask
    for one: the shipped file surveys the demo's skills, which changes how every call an agent
    hangs up ends (the caller stays on to rate it), and the tests' callers and phones expect
    the call to end there (tests/integration/test_survey.py turns it on)."""
    raw = tomllib.loads((REPO / "hotline.toml").read_text(encoding="utf-8"))
    raw.setdefault("acd", {})["survey_skills"] = []
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    path.write_text(tomli_w.dumps(raw), encoding="utf-8")
    return path
