"""Editing the flows folder from outside the registry (the admin console): naming a flow file
safely, checking an edit with the whole set, its diff, and saving it as a file edit would be.

The registry's watch then reloads the folder exactly as after an editor's save; nothing here
touches the flows in service.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from ivr.schema import Flow, FlowError, FlowValidationError, load_flow_dir

# a flow file's name in the folder: what the console addresses a flow by (never a path)
FILE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\.yaml$")
MAX_TEXT = 256 * 1024  # a flow file larger than this is refused (main.yaml is ~16 KB)


class UnknownFlowFile(LookupError):
    """No flow file of that name in the folder listing."""


def flow_files(flows_dir: Path) -> list[str]:
    """The names of the flow files in the folder, sorted (what the registry loads)."""
    return sorted(p.name for p in flows_dir.glob("*.yaml")
                  if p.is_file() and not p.is_symlink() and FILE_NAME_RE.fullmatch(p.name))


def flow_path(flows_dir: Path, name: str) -> Path:
    """The path of a file named in the listing; anything else (a path, .., a link) refused."""
    if name not in flow_files(flows_dir):
        raise UnknownFlowFile(f"no flow file {name!r} in the flows folder")
    return flows_dir / name


def digest(text: str) -> str:
    """A text's version as the console compares it: the sha256 of its UTF-8 bytes, hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Check:
    """An edit checked with the whole set: the errors (file name, line, problem); the flow of
    the edited file when it is valid."""

    errors: tuple[FlowError, ...]
    flow: Flow | None

    @property
    def ok(self) -> bool:
        return not self.errors


def check_edit(flows_dir: Path, name: str, text: str, *, entry_flow: str,
               has_prompt: Callable[[str, str], bool] | None,
               skills: Collection[str] | None) -> Check:
    """Validate the folder as the registry would with `text` in place of file `name`: each
    file's schema, prompts and skills, flow ids unique, the entry flow present. Errors name the
    file by its name in the folder."""
    if len(text.encode("utf-8")) > MAX_TEXT:
        return Check((FlowError(name, 1, f"the flow is larger than {MAX_TEXT} bytes"),), None)
    try:
        flows = load_flow_dir(flows_dir, has_prompt, required=[entry_flow], skills=skills,
                              texts={name: text})
    except FlowValidationError as exc:
        return Check(tuple(FlowError(Path(e.file).name, e.line, e.message)
                           for e in exc.errors), None)
    mine = next(f for f in flows.flows.values() if Path(f.file).name == name)
    return Check((), mine)


def unified_diff(name: str, live: str, text: str) -> str:
    """The edit against the live file, as `diff -u` shows it ('' when the same)."""
    return "".join(difflib.unified_diff(live.splitlines(keepends=True),
                                        text.splitlines(keepends=True),
                                        fromfile=f"live/{name}", tofile=f"edited/{name}"))


def write_atomic(path: Path, text: str) -> None:
    """Replace the file in one rename (the watch never sees half a file), keeping its mode. The
    temporary file is hidden and not *.yaml, so the registry ignores it."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
