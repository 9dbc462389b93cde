"""Do-not-call: numbers the hotline never calls, whatever the purpose.

Numbers are compared in one form, the national one: digits only, China's country code (+86,
0086) dropped, so "+86 138-0013-8000", "008613800138000" and "13800138000" are one number.
A landline keeps its trunk prefix 0 and area code ("010 6512 3456" is 01065123456).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_NOT_DIGITS = re.compile(r"\D")
MAX_DIGITS = 20


class BadNumber(ValueError):
    """Not a telephone number: no digits, or too many."""


def national(number: str) -> str:
    """The number's national form (raises BadNumber)."""
    raw = number.strip()
    digits = _NOT_DIGITS.sub("", raw)
    international = None
    if raw.startswith("+") and digits.startswith("86"):
        international = digits[2:]
    elif digits.startswith("0086"):
        international = digits[4:]
    elif len(digits) == 13 and digits.startswith("861"):
        international = digits[2:]  # 86 and an 11-digit mobile number, without the +
    if international is not None:
        # a mobile number is 11 digits from 1; anything else is an area code and a number,
        # written nationally after the trunk prefix 0 (+86 10 ... is 010 ...)
        mobile = len(international) == 11 and international.startswith("1")
        digits = international if mobile else "0" + international
    if not digits.strip("0") or len(digits) > MAX_DIGITS:
        raise BadNumber(f"{number!r} is not a telephone number")
    return digits


class DoNotCall:
    def __init__(self, numbers: Iterable[str] = ()) -> None:
        self._numbers = {national(n) for n in numbers}

    def __len__(self) -> int:
        return len(self._numbers)

    def blocks(self, number: str) -> bool:
        """True when `number` must not be called (also when it is not a number at all)."""
        try:
            return national(number) in self._numbers
        except BadNumber:
            return True
