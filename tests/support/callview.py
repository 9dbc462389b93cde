"""What one caller got, read back from Asterisk's own AMI events (not from the IVR's intentions)."""

from __future__ import annotations

import re
import wave
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from prompts.index import PromptIndex

Event = dict[str, Any]
_PATH = re.compile(r"(/var/lib/hotline/prompts/[0-9a-f]+)")
# a prompt counts as heard when Asterisk spent at least this share of its length playing it
HEARD_SHARE = 0.85


@dataclass(frozen=True)
class Played:
    prompt: str  # prompt id
    lang: str
    command: str  # STREAM FILE | Read
    seconds: float  # how long the command ran in Asterisk (AGIExecStart -> AGIExecEnd)
    length: float  # the prompt file's own length
    start: float
    end: float

    @property
    def heard(self) -> bool:
        return self.command == "STREAM FILE" and self.seconds >= HEARD_SHARE * self.length


@cache
def _wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / float(w.getframerate())


def _ts(ev: Event) -> float:
    try:
        return float(ev.get("Timestamp") or ev["_received"])
    except (KeyError, ValueError):
        return float(ev["_received"])


def _one(v: Any) -> str:
    # a repeated header arrives joined by LF (cti.ami.protocol.parse_message): its first value
    return v[0] if isinstance(v, list) else str(v).split("\n")[0]


class CallView:
    """The AMI events of the call whose caller presented `number`."""

    def __init__(self, events: list[Event], number: str, index: PromptIndex) -> None:
        self.number = number
        self.index = index
        first = next((e for e in events if e.get("Event") == "Newchannel"
                      and e.get("CallerIDNum") == number), None)
        if first is None:
            raise AssertionError(f"Asterisk never saw a call from {number}")
        self.uniqueid = _one(first["Uniqueid"])
        self.linkedid = _one(first.get("Linkedid", self.uniqueid))
        self.events = [e for e in events if _one(e.get("Linkedid", "")) == self.linkedid
                       or _one(e.get("Uniqueid", "")) == self.uniqueid]

    def named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.get("Event") == name]

    def user_events(self, name: str) -> list[Event]:
        return [e for e in self.named("UserEvent") if e.get("UserEvent") == name]

    def agi(self) -> list[tuple[str, float, float]]:
        """(command, start, end) of each AGI command Asterisk ran for this call, in order."""
        starts: dict[str, tuple[str, float]] = {}
        out = []
        for e in self.events:
            if e.get("Event") == "AGIExecStart":
                starts[_one(e["CommandId"])] = (_one(e["Command"]), _ts(e))
            elif e.get("Event") == "AGIExecEnd" and _one(e.get("CommandId")) in starts:
                cmd, t0 = starts.pop(_one(e["CommandId"]))
                out.append((cmd, t0, _ts(e)))
        return out

    def played(self) -> list[Played]:
        out = []
        for cmd, t0, t1 in self.agi():
            kind = ("STREAM FILE" if cmd.startswith("STREAM FILE")
                    else "Read" if cmd.startswith("EXEC Read") else None)
            if kind is None:
                continue
            for path in _PATH.findall(cmd):
                decoded = self.index.lookup_path(path)
                if decoded is None:
                    raise AssertionError(f"Asterisk played {path}, which is no known prompt")
                pid, lang = decoded
                length = _wav_seconds(self.index.local_file(pid, lang))
                out.append(Played(pid, lang, kind, t1 - t0, length, t0, t1))
        return out

    def heard_ids(self) -> list[str]:
        return [p.prompt for p in self.played() if p.heard]

    def offered_ids(self) -> list[str]:
        return [p.prompt for p in self.played()]

    def set_vars(self) -> dict[str, str]:
        out = {}
        for cmd, _t0, _t1 in self.agi():
            m = re.match(r'SET VARIABLE (\S+) "(.*)"$', cmd)
            if m:
                out[m.group(1)] = m.group(2)
        return out

    def queue_joins(self) -> list[Event]:
        return self.named("QueueCallerJoin")

    def longest_gap(self) -> float:
        """The longest time between one AGI command ending and the next starting: dead air."""
        cmds = self.agi()
        return max((b[1] - a[2] for a, b in zip(cmds, cmds[1:], strict=False)), default=0.0)


def contains_run(seq: list[str], run: list[str]) -> bool:
    """`run` appears in `seq` as consecutive items."""
    n = len(run)
    return any(seq[i:i + n] == run for i in range(len(seq) - n + 1))
