"""Unit tests of ivr.registry: a bad flow change never replaces the flows in service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from ivr.registry import FlowRegistry, ReloadStatus
from ivr.schema import FlowValidationError
from prompts.catalog import load_catalog

ROOT = Path(__file__).resolve().parents[2]
CATALOG = load_catalog(ROOT / "prompts" / "catalog")
DEADLINE_S = 10.0

MAIN = """\
flow: main
entry: menu
nodes:
  menu:
    type: menu
    prompt: [ivr.main_menu]
    options: {"0": agent}
    on_fail: agent
  agent:
    type: transfer
    skill: general
"""


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def flows_dir(tmp_path: Path) -> Path:
    d = tmp_path / "flows"
    d.mkdir()
    write(d / "main.yaml", MAIN)
    return d


def test_load_serves_the_flows_in_the_folder(flows_dir: Path) -> None:
    reg = FlowRegistry(flows_dir, "main", CATALOG.has)

    status = reg.load()

    assert status == ReloadStatus(ok=True, at=status.at, version=1)
    assert reg.last is status
    assert reg.current.get("main").entry == "menu"


def test_a_transfer_to_an_unconfigured_skill_is_refused_and_the_old_set_serves(
        flows_dir: Path) -> None:
    skills = {"general"}
    reg = FlowRegistry(flows_dir, "main", CATALOG.has, skills=lambda: set(skills))
    assert reg.load().ok
    write(flows_dir / "main.yaml", MAIN.replace("skill: general", "skill: vip"))
    status = reg.load()
    assert not status.ok and reg.version == 1
    assert len(status.errors) == 1 and "skill 'vip' is not configured (skills: general)" in \
        status.errors[0] and status.errors[0].startswith(f"{flows_dir / 'main.yaml'}:11:")
    skills.add("vip")  # an admin adds it: the next reload takes the flow
    assert reg.load().ok and reg.version == 2


def test_an_unreadable_skills_table_leaves_the_rest_checked(flows_dir: Path) -> None:
    def broken() -> set[str]:
        raise OSError("database away")

    reg = FlowRegistry(flows_dir, "main", CATALOG.has, skills=broken)
    assert reg.load().ok


def test_the_shipped_flows_load() -> None:
    reg = FlowRegistry(ROOT / "ivr" / "flows", "main", CATALOG.has)

    assert reg.load().ok
    assert reg.current.get("main").entry == "welcome"


def test_nothing_served_before_a_first_load(flows_dir: Path) -> None:
    reg = FlowRegistry(flows_dir, "main", CATALOG.has)

    with pytest.raises(RuntimeError):
        _ = reg.current


def test_an_invalid_first_load_fails_loudly(flows_dir: Path) -> None:
    write(flows_dir / "main.yaml", MAIN.replace("on_fail: agent", "on_fail: nowhere"))
    reg = FlowRegistry(flows_dir, "main", CATALOG.has)

    with pytest.raises(FlowValidationError):
        reg.load()

    assert not reg.last.ok
    assert reg.last.errors == (f"{flows_dir / 'main.yaml'}:8: node 'menu': unknown node "
                               "'nowhere' in on_fail",)


def test_a_bad_change_keeps_the_old_flows_and_reports_file_and_line(flows_dir: Path) -> None:
    reg = FlowRegistry(flows_dir, "main", CATALOG.has)
    reg.load()
    serving = reg.current

    write(flows_dir / "main.yaml", MAIN.replace("prompt: [ivr.main_menu]",
                                                "prompt: [ivr.main_menu_v2]"))
    status = reg.load()

    assert not status.ok
    assert status.version == 1
    assert status.errors == (f"{flows_dir / 'main.yaml'}:6: node 'menu': missing prompt "
                             "'ivr.main_menu_v2' (zh, en)",)
    assert reg.last is status
    assert reg.current is serving
    assert reg.version == 1


def test_a_bad_new_file_rejects_the_whole_change(flows_dir: Path) -> None:
    reg = FlowRegistry(flows_dir, "main", CATALOG.has)
    reg.load()
    serving = reg.current

    write(flows_dir / "main.yaml", MAIN.replace('{"0": agent}', '{"0": agent, "9": menu}'))
    write(flows_dir / "extra.yaml", "flow: extra\nentry: a\nnodes:\n  a:\n\ttype: hangup\n")
    status = reg.load()

    assert not status.ok
    assert [e.split(": ")[0] for e in status.errors] == [f"{flows_dir / 'extra.yaml'}:5"]
    assert reg.current is serving
    assert "9" not in reg.current.get("main").nodes["menu"].options


def test_deleting_the_entry_flow_keeps_it_in_service(flows_dir: Path) -> None:
    reg = FlowRegistry(flows_dir, "main", CATALOG.has)
    reg.load()
    serving = reg.current

    (flows_dir / "main.yaml").unlink()
    status = reg.load()

    assert not status.ok
    assert "no flow with id 'main'" in status.errors[0]
    assert reg.current is serving


def test_a_good_change_after_a_bad_one_is_served(flows_dir: Path) -> None:
    reg = FlowRegistry(flows_dir, "main", CATALOG.has)
    reg.load()
    write(flows_dir / "main.yaml", "flow: main\nentry: [broken\n")
    assert not reg.load().ok

    write(flows_dir / "main.yaml", MAIN.replace('{"0": agent}', '{"0": agent, "9": menu}'))
    status = reg.load()

    assert status.ok and status.errors == ()
    assert status.version == reg.version == 2
    assert set(reg.current.get("main").nodes["menu"].options) == {"0", "9"}


# ------------------------------------------------------------------------------------ watch()


@pytest.fixture
async def watching(flows_dir: Path) -> AsyncIterator[tuple[FlowRegistry, asyncio.Event]]:
    """A registry whose watch() runs as a task; the event is set after every reload."""
    reg = FlowRegistry(flows_dir, "main", CATALOG.has)
    reg.load()
    reloaded = asyncio.Event()
    load = reg.load

    def load_and_tell() -> ReloadStatus:
        status = load()
        reloaded.set()
        return status

    reg.load = load_and_tell  # type: ignore[method-assign]
    task = asyncio.create_task(reg.watch(), name="flow-watch")
    try:
        yield reg, reloaded
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def change_until_reloaded(reloaded: asyncio.Event, change: Callable[[int], None],
                                done: Callable[[], bool]) -> None:
    """Make the change, and make it again while the watcher has not seen it yet (it may not be
    watching yet when the first write lands), until `done` holds or the deadline passes."""
    async with asyncio.timeout(DEADLINE_S):
        attempt = 0
        while not done():
            reloaded.clear()
            change(attempt)
            attempt += 1
            try:
                async with asyncio.timeout(1.0):
                    await reloaded.wait()
            except TimeoutError:
                continue


async def test_watch_serves_a_changed_flow(flows_dir: Path,
                                           watching: tuple[FlowRegistry, asyncio.Event]) -> None:
    reg, reloaded = watching
    changed = MAIN.replace('{"0": agent}', '{"0": agent, "9": menu}')

    await change_until_reloaded(
        reloaded, lambda n: write(flows_dir / "main.yaml", changed + f"# edit {n}\n"),
        lambda: reg.version >= 2)

    assert reg.last.ok
    assert set(reg.current.get("main").nodes["menu"].options) == {"0", "9"}


async def test_watch_keeps_serving_through_a_bad_change(
        flows_dir: Path, watching: tuple[FlowRegistry, asyncio.Event]) -> None:
    reg, reloaded = watching
    serving = reg.current
    bad = MAIN.replace("on_fail: agent", "on_fail: agnet")

    await change_until_reloaded(
        reloaded, lambda n: write(flows_dir / "main.yaml", bad + f"# edit {n}\n"),
        lambda: not reg.last.ok)

    assert reg.last.errors == (f"{flows_dir / 'main.yaml'}:8: node 'menu': unknown node "
                               "'agnet' in on_fail",)
    assert reg.current is serving
    assert reg.version == 1
