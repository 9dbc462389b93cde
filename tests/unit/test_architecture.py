"""The shape of the tree (README "Where things are"), checked by walking every import with `ast`.

Imports inside functions count: a loop hidden by a late import is still a loop. Imports under
`if TYPE_CHECKING:` do not run, so they do not count.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("hotline", "bench", "config", "acd", "ivr", "workorders", "callcenter", "cti",
            "recorder", "agent_desktop", "asterisk_conf", "prompts", "outages", "speech",
            "outbound")
ROOTS = ("hotline", "bench")  # the composition root and the benchmarks: nothing imports them

# the pure cores: the modules and what they may import beyond the standard library
PURE = {
    "acd": ("acd",),
    "ivr.engine": ("ivr", "ivr.schema"),
    "ivr.schema": ("ivr",),
    "workorders.lifecycle": (),
    "outages": ("outages", "ivr.say"),  # announcements speak times with the IVR's pieces
    # speech's core (vosk itself is a library, not I/O): a flow and vosk agree on what a phrase is
    "speech": ("speech", "ivr.schema"),
    "outbound": ("outbound",),
}
# what a pure core may never import, even from the standard library
IO_MODULES = ("asyncio", "socket", "sqlalchemy", "panoramisk", "aiomqtt", "paho", "fastapi",
              "starlette", "uvicorn", "httpx", "subprocess", "psycopg")


def _modname(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if "migrations" in path.parts and "versions" in path.parts:
                continue  # alembic revisions are loaded by file, never imported
            found[_modname(path)] = path
    return found


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Line numbers of imports under `if TYPE_CHECKING:`."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                for inner in ast.walk(sub):
                    if isinstance(inner, ast.Import | ast.ImportFrom):
                        lines.add(inner.lineno)
    return lines


def _imported(mod: str, path: Path, *, type_checking: bool = False) -> Iterator[str]:
    """Every module `mod` imports (absolute names, stdlib and third party included); those
    under `if TYPE_CHECKING:` too when type_checking."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = set() if type_checking else _type_checking_only(tree)
    known = modules()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{target}.{alias.name}"
                yield sub if sub in known else target


@cache
def graph() -> dict[str, frozenset[str]]:
    """Project module -> project modules it imports."""
    known = modules()
    edges: dict[str, frozenset[str]] = {}
    for mod, path in known.items():
        out = set()
        for name in _imported(mod, path):
            # the nearest project module that name is, or lives in
            parts = name.split(".")
            while parts and ".".join(parts) not in known:
                parts.pop()
            if parts and ".".join(parts) != mod:
                out.add(".".join(parts))
        edges[mod] = frozenset(out)
    return edges


def _top(mod: str) -> str:
    return mod.split(".")[0]


def test_the_walk_sees_the_tree() -> None:
    g = graph()
    assert len(g) > 80
    assert "hotline.wiring" in g and "acd.engine" in g["callcenter.acd_service"]


def test_no_import_loops() -> None:
    g = graph()
    loops: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(g[m]):
            if state.get(n) == 1:
                loops.append([*stack[stack.index(n):], n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)
    assert not loops, "import loops:\n" + "\n".join(" -> ".join(loop) for loop in loops)


def test_nothing_below_the_roots_imports_a_root() -> None:
    bad = [f"{m} -> {n}" for m, ns in graph().items() for n in ns
           if _top(m) not in ROOTS and _top(n) in ROOTS]
    assert not bad, bad


@pytest.mark.parametrize("core", sorted(PURE))
def test_pure_cores_do_no_io(core: str) -> None:
    allowed = PURE[core]
    for mod, path in modules().items():
        if mod != core and not mod.startswith(core + "."):
            continue
        for name in _imported(mod, path):
            top = _top(name)
            assert top not in IO_MODULES, f"{mod} imports {name}"
            if top in PACKAGES:
                assert any(name == a or name.startswith(a + ".") for a in allowed), \
                    f"{mod} imports {name}; a pure core may import only {allowed}"


# layer -> packages it may never import (beyond the roots, checked above)
FORBIDDEN = {
    "config": ("cti", "callcenter", "agent_desktop", "recorder.service", "recorder.supervision",
               "workorders.service", "ivr.fastagi", "ivr.agi_session", "asterisk_conf"),
    "acd": ("cti", "callcenter", "agent_desktop", "recorder", "workorders", "ivr", "config"),
    "workorders": ("callcenter", "agent_desktop", "recorder", "ivr"),
    "recorder": ("cti", "callcenter", "agent_desktop"),
    "callcenter": ("agent_desktop",),
    "cti": ("agent_desktop", "callcenter.agent_commands", "callcenter.call_control"),
    "ivr": ("cti", "callcenter", "agent_desktop", "recorder", "workorders"),
    "prompts": ("cti", "callcenter", "agent_desktop", "recorder", "workorders", "ivr"),
    "asterisk_conf": ("cti", "callcenter", "agent_desktop", "workorders", "ivr"),
    "outages": ("cti", "callcenter", "agent_desktop", "recorder", "workorders", "acd", "config",
                "prompts", "ivr.engine", "ivr.fastagi", "ivr.agi_session"),
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_only_downwards(layer: str) -> None:
    bad = [f"{m} -> {n}" for m, ns in graph().items() if _top(m) == layer for n in ns
           if any(n == f or n.startswith(f + ".") for f in FORBIDDEN[layer])]
    assert not bad, bad


# The desktop is a web app over services (README "Where things are"): its routes reach the
# database only through functions of the data layer (cti.db.web_sessions, web_queries,
# web_audit and the like), which own the unit of work. So it names no ORM, not even for a type
# hint, and never opens a session on its context's factory itself.
WEB = "agent_desktop"
WEB_MAY_NOT_IMPORT = ("sqlalchemy", "cti.db.models", "cti.db.session")  # models: models_* too


def _opens_a_session(node: ast.Call) -> bool:
    """`x.sessions()` or `x.sessions.begin()` (or on a bare `sessions`)."""
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr == "begin":
        func = func.value

    def is_sessions(n: ast.expr) -> bool:
        return (isinstance(n, ast.Attribute) and n.attr == "sessions") or \
            (isinstance(n, ast.Name) and n.id == "sessions")

    return is_sessions(func)


def test_the_desktop_does_not_touch_the_database() -> None:
    bad = []
    for mod, path in modules().items():
        if _top(mod) != WEB:
            continue
        bad += [f"{mod} imports {name}"
                for name in sorted(set(_imported(mod, path, type_checking=True)))
                if name.startswith(WEB_MAY_NOT_IMPORT)]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        bad += [f"{mod}:{node.lineno} opens a session: {ast.unparse(node)}"
                for node in ast.walk(tree)
                if isinstance(node, ast.Call) and _opens_a_session(node)]
    assert not bad, "the desktop touches the database itself; call a cti.db function:\n" + \
        "\n".join(bad)


def test_one_composition_root() -> None:
    """Services are constructed in hotline/wiring.py only (tests build their own fakes)."""
    constructors = ("AcdService.create(", "AcdService(", "WorkOrderService(", "RecorderService(",
                    "SupervisionService(", "AgentCommands(", "CallControl(", "DbIvrServices(",
                    "MqttBus(", "AmiClient(", "make_engine(", "make_session_factory(")
    found = []
    for mod, path in modules().items():
        if mod == "hotline.wiring":
            continue
        text = path.read_text(encoding="utf-8")
        for c in constructors:
            for line in text.splitlines():
                stripped = line.strip()
                if c in stripped and not stripped.startswith(("class ", "#", "def ")) \
                        and f"cls{c[c.index('('):]}" not in stripped:
                    found.append(f"{mod}: {stripped}")
    allowed = {  # adapters that open a short-lived AMI session of their own; the alembic env
        "hotline.stack", "bench.acd", "bench.ami_tap", "bench.events", "cti.ami.client",
        "cti.db.migrate", "cti.db.migrations.env",
    }
    bad = [f for f in found if f.split(":")[0] not in allowed]
    assert not bad, "services built outside hotline/wiring.py:\n" + "\n".join(bad)
