"""Every version pinned, transitive ones too: pyproject.toml pins what the project asks for
(==), and constraints.txt, which scripts/install.sh installs with, pins every package of the
tested venv. The two must agree, or CI would install something the suite never ran on."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _pyproject_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs.extend(extra)
    return [Requirement(r) for r in reqs]


def _constraints() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", line)
        assert m, f"constraints.txt: not a name==version pin: {line!r}"
        pins[canonicalize_name(m[1])] = m[2]
    return pins


def test_pyproject_pins_every_requirement_exactly() -> None:
    loose = [str(r) for r in _pyproject_requirements()
             if [s.operator for s in r.specifier] != ["=="]]
    assert loose == []


def test_constraints_hold_every_requirement_at_the_same_version() -> None:
    pins = _constraints()
    differ = {r.name: (str(r.specifier), pins.get(canonicalize_name(r.name)))
              for r in _pyproject_requirements()
              if pins.get(canonicalize_name(r.name)) != next(iter(r.specifier)).version}
    assert differ == {}, "pyproject.toml and constraints.txt disagree (or one lacks it)"


def test_the_installer_uses_the_constraints() -> None:
    install = (ROOT / "scripts" / "install.sh").read_text(encoding="utf-8")
    assert "-c constraints.txt" in install
