"""The [call_control] settings: which outside numbers an agent may consult, transfer to or bring
into a conference (issue 14 §5). An outside number goes out on the carrier trunk at the
hotline's cost, so an agent must not be able to dial just anything through it (toll fraud):
a number is taken only in its national form (outbound.dnc.national), digits only, and only if
it is one of the directory's named numbers (`outside_numbers`: the repair crew's dispatch,
metering, ..., the desktop's picker) or matches `outside_pattern` (default: a national mobile
number or a landline with its area code; no international, no 10/11/12/16/17xxx service or
premium numbers). `outside_pattern = ""` allows the directory only."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from outbound.dnc import BadNumber, national

# a mobile number (1 then 3-9, 11 digits) or a landline (0, an area code that is not 0, and
# the subscriber number: 10 to 12 digits in all)
DEFAULT_OUTSIDE_PATTERN = r"1[3-9][0-9]{9}|0[1-9][0-9]{8,10}"
# what reaches the trunk at most, whatever the pattern says (a number of the national plan)
NUMBER = re.compile(r"[0-9]{3,15}")
NAME_MAX = 32


class OutsideNumberRefused(ValueError):
    """The number is well formed but not one an agent may dial (not in the directory and not
    of the allowed pattern); args[0] says so without echoing more than the number."""


@dataclass(frozen=True)
class OutsideNumber:
    name: str  # as the desktop shows it: 抢修调度, 计量班, ...
    number: str  # national form, digits only


@dataclass(frozen=True)
class CallControlSettings:
    outside_numbers: tuple[OutsideNumber, ...] = ()
    outside_pattern: str = DEFAULT_OUTSIDE_PATTERN

    def outside(self, raw: str) -> OutsideNumber:
        """The number an agent asked for, checked: its national form, and its directory name
        ("" when it is allowed by the pattern only). BadNumber: not a number at all;
        OutsideNumberRefused: a number, but not one to dial."""
        number = national(raw)
        if raw.strip().startswith("+") and not raw.strip()[1:].lstrip().startswith("86"):
            # another country's number: national() keeps its digits, which could then pass
            # for a national one; never dialled
            raise OutsideNumberRefused(f"{number}: international numbers are not called")
        if not NUMBER.fullmatch(number):
            raise BadNumber(f"{number!r} is not a national telephone number")
        for known in self.outside_numbers:
            if known.number == number:
                return known
        if self.outside_pattern and re.fullmatch(self.outside_pattern, number):
            return OutsideNumber("", number)
        raise OutsideNumberRefused(f"{number} is not a number the hotline may call out to "
                                   "([call_control] outside_numbers / outside_pattern)")


def call_control_settings(raw: Mapping[str, Any]) -> CallControlSettings:
    """Build from the [call_control] table; unknown keys and bad values raise ValueError (the
    settings loader turns it into SettingsError with the file name)."""
    if not isinstance(raw, Mapping):
        raise ValueError("[call_control] must be a table")
    unknown = set(raw) - {"outside_numbers", "outside_pattern"}
    if unknown:
        raise ValueError(f"[call_control] unknown keys {sorted(unknown)}")
    pattern = str(raw.get("outside_pattern", DEFAULT_OUTSIDE_PATTERN))
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"[call_control] outside_pattern is not a regular expression: "
                         f"{exc}") from None
    entries = raw.get("outside_numbers", [])
    if not isinstance(entries, list):
        raise ValueError("[call_control] outside_numbers must be a list of "
                         "{name = ..., number = ...}")
    numbers: list[OutsideNumber] = []
    for i, e in enumerate(entries):
        if not isinstance(e, Mapping) or set(e) != {"name", "number"}:
            raise ValueError(f"[call_control] outside_numbers #{i + 1} must be "
                             "{name = ..., number = ...}")
        name = str(e["name"]).strip()
        if not name or len(name) > NAME_MAX or not name.isprintable():
            raise ValueError(f"[call_control] outside_numbers #{i + 1}: a name of 1 to "
                             f"{NAME_MAX} printable characters")
        try:
            number = national(str(e["number"]))
        except BadNumber as exc:
            raise ValueError(f"[call_control] outside_numbers #{i + 1}: {exc}") from None
        if not NUMBER.fullmatch(number):
            raise ValueError(f"[call_control] outside_numbers #{i + 1}: {number!r} is not a "
                             "national telephone number")
        numbers.append(OutsideNumber(name, number))
    if len({n.number for n in numbers}) != len(numbers):
        raise ValueError("[call_control] outside_numbers: a number is listed twice")
    return CallControlSettings(outside_numbers=tuple(numbers), outside_pattern=pattern)
