"""How the IVR speaks numbers, digit strings, amounts, dates and times, as catalog piece ids.

Pure: no I/O. Every id returned exists in `prompts/catalog/pieces.yaml` for the language asked.

Piece id scheme, `<kind>.<lang>.<name>`:

- `num.zh.0`..`num.zh.9` 零..九, `num.zh.10` 十, `num.zh.100` 百, `num.zh.1000` 千,
  `num.zh.10000` 万, `num.zh.100000000` 亿, `num.zh.yao` 幺 (1 in phone and account numbers).
- `num.en.0`..`num.en.19`, `num.en.20`..`num.en.90` (tens), `num.en.hundred`, `num.en.thousand`,
  `num.en.million`, `num.en.billion`, `num.en.oh` ("oh", for 1905 and 3:05).
- `unit.zh.{yuan,jiao,fen,zheng,year,month,day,hour}` 元 角 分 整 年 月 日 点 (分 and 整 serve both
  money and clock time: one recording each); `unit.en.{yuan,fen}`.
- `date.en.month.1`..`date.en.month.12` month names; `date.en.day.1`..`date.en.day.31` ordinals.
- `time.zh.{dawn,morning,noon,afternoon,evening}` 凌晨 上午 中午 下午 晚上;
  `time.en.{am,pm,noon,midnight}`.
- `day.{zh,en}.{today,tomorrow}` 今天 明天; `word.en.and`, `word.en.at`.

Mandarin uses 二 for 2 everywhere (二百, 二万, 二点, 二角), never 两, as the product decided: one
rule, no exceptions. English numbers have no "and" inside them ("two thousand five", "one hundred
twenty three"); "and" only joins yuan and fen.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Protocol

LANGS: tuple[str, ...] = ("zh", "en")
MAX_NUMBER = 10**12
"""say_number and the yuan part of say_amount accept 0 <= n < MAX_NUMBER."""

_CENT = Decimal("0.01")


class _TextSource(Protocol):
    def text(self, prompt_id: str, lang: str) -> str: ...


def _check_lang(lang: str) -> None:
    if lang not in LANGS:
        raise ValueError(f"unsupported language {lang!r} (supported: {', '.join(LANGS)})")


def _check_int(n: int) -> None:
    # bool is an int subclass; True would otherwise be read as "one".
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"expected an int, got {type(n).__name__}")
    if not 0 <= n < MAX_NUMBER:
        raise ValueError(f"number out of range 0 <= n < 10^12: {n}")


# ---------------------------------------------------------------- numbers

def say_number(n: int, lang: str) -> list[str]:
    """Pieces for the cardinal number `n`, 0 <= n < 10^12.

    zh: 四位一节 grouping by 亿 and 万; one 零 for any run of missing places (一千零五, 一万零五十,
    一亿零一); no trailing 零 (一百一十, 十万); 十 alone at the very start (十二, 十二万) but 一十
    inside (一百一十二, 一万零一十). en: "one hundred twenty three", "two thousand five".
    """
    _check_lang(lang)
    _check_int(n)
    return _zh_number(n) if lang == "zh" else _en_number(n)


def _zh_number(n: int) -> list[str]:
    if n == 0:
        return ["num.zh.0"]
    out: list[str] = []
    gap = False
    for value, unit in ((n // 10**8, "num.zh.100000000"),
                        (n // 10**4 % 10**4, "num.zh.10000"),
                        (n % 10**4, None)):
        if value == 0:
            gap = gap or bool(out)
            continue
        # A lower section that lacks its thousands, or follows an all-zero section, starts with
        # 零: 一万零五十 (10050), 一亿零一 (100000001); 一亿一千万 has none.
        if out and (gap or value < 1000):
            out.append("num.zh.0")
        out.extend(_zh_section(value, leading=not out))
        if unit is not None:
            out.append(unit)
        gap = False
    return out


def _zh_section(value: int, *, leading: bool) -> list[str]:
    """0 < value < 10000, read with 千百十 and inner 零s."""
    out: list[str] = []
    started = False
    zero = False
    for place in (1000, 100, 10, 1):
        d = value // place % 10
        if d == 0:
            zero = zero or started
            continue
        if zero:
            out.append("num.zh.0")
            zero = False
        # 十二 rather than 一十二 only when nothing at all was said before it.
        if not (place == 10 and d == 1 and leading and not started):
            out.append(f"num.zh.{d}")
        if place > 1:
            out.append(f"num.zh.{place}")
        started = True
    return out


def _en_number(n: int) -> list[str]:
    if n == 0:
        return ["num.en.0"]
    out: list[str] = []
    for scale, name in ((10**9, "num.en.billion"), (10**6, "num.en.million"),
                        (10**3, "num.en.thousand")):
        q, n = divmod(n, scale)
        if q:
            out.extend(_en_below_1000(q))
            out.append(name)
    if n:
        out.extend(_en_below_1000(n))
    return out


def _en_below_1000(n: int) -> list[str]:
    out: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        out += [f"num.en.{hundreds}", "num.en.hundred"]
    if 0 < rest < 20:
        out.append(f"num.en.{rest}")
    elif rest:
        tens, ones = divmod(rest, 10)
        out.append(f"num.en.{tens * 10}")
        if ones:
            out.append(f"num.en.{ones}")
    return out


def say_digits(s: str, lang: str, phone_style: bool = True) -> list[str]:
    """Pieces for the ASCII digit string `s`, one per digit.

    zh: 0 is 零; 1 is 幺 when `phone_style` (phone, account and work-order numbers, where 一 and 七
    are easily confused) and 一 otherwise (years: 二零二六). en: "zero".."nine" either way.
    An empty string gives no pieces.
    """
    _check_lang(lang)
    if not (s.isascii() and s.isdigit()) and s:
        raise ValueError(f"not a digit string: {s!r}")
    if lang == "zh" and phone_style:
        return ["num.zh.yao" if c == "1" else f"num.zh.{c}" for c in s]
    return [f"num.{lang}.{c}" for c in s]


# ---------------------------------------------------------------- money

def say_amount(amount: Decimal, lang: str) -> list[str]:
    """Pieces for a non-negative yuan amount with at most two decimals (fen).

    zh, as Chinese bank and utility IVRs read 元角分:
      123.45 一百二十三元四角五分; 50.00 五十元整 (整 only when there is no 角/分);
      123.40 一百二十三元四角; 1008.05 一千零八元零五分 (零 stands for the missing 角);
      0.30 三角 and 0.05 五分 (no 零元 in front); 0.00 零元.
    en: 123.45 "one hundred twenty three yuan and forty five fen"; 50.00 "fifty yuan";
      0.30 "thirty fen"; 0.00 "zero yuan". Fen are read as a two-digit number, not as jiao.

    Raises TypeError for float (binary fractions are wrong for money) and ValueError for a
    negative, non-finite or sub-fen amount: the flow decides how to speak arrears or credit, and
    rounding is the billing system's job, not the voice's.
    """
    _check_lang(lang)
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        raise TypeError(f"expected a Decimal amount, got {type(amount).__name__}")
    value = Decimal(amount)
    if not value.is_finite() or value < 0:
        raise ValueError(f"amount must be finite and >= 0: {amount}")
    if value != value.quantize(_CENT):
        raise ValueError(f"amount has more than two decimals: {amount}")
    cents = int(value * 100)
    yuan, frac = divmod(cents, 100)
    if yuan >= MAX_NUMBER:
        raise ValueError(f"amount out of range (< 10^12 yuan): {amount}")
    return _zh_amount(yuan, frac) if lang == "zh" else _en_amount(yuan, frac)


def _zh_amount(yuan: int, frac: int) -> list[str]:
    if yuan == 0 and frac == 0:
        return ["num.zh.0", "unit.zh.yuan"]
    out: list[str] = []
    if yuan:
        out += _zh_number(yuan) + ["unit.zh.yuan"]
    if frac == 0:
        return out + ["unit.zh.zheng"]
    jiao, fen = divmod(frac, 10)
    if jiao:
        out += [f"num.zh.{jiao}", "unit.zh.jiao"]
    elif yuan:
        out.append("num.zh.0")
    if fen:
        out += [f"num.zh.{fen}", "unit.zh.fen"]
    return out


def _en_amount(yuan: int, frac: int) -> list[str]:
    if yuan == 0 and frac == 0:
        return ["num.en.0", "unit.en.yuan"]
    out: list[str] = []
    if yuan:
        out += _en_number(yuan) + ["unit.en.yuan"]
    if frac:
        if yuan:
            out.append("word.en.and")
        out += _en_number(frac) + ["unit.en.fen"]
    return out


# ---------------------------------------------------------------- dates and times

def say_date(d: date, lang: str, with_year: bool = False) -> list[str]:
    """Pieces for a calendar date.

    zh: 十一月二十七日; with the year read digit by digit: 二零二六年十一月二十七日.
    en: "November twenty seventh"; with the year: "November twenty seventh twenty twenty six"
    (years read as spoken: "two thousand five", "twenty ten", "nineteen oh five").
    """
    _check_lang(lang)
    if lang == "zh":
        year = say_digits(str(d.year), "zh", phone_style=False) + ["unit.zh.year"]
        return ((year if with_year else []) + _zh_number(d.month) + ["unit.zh.month"]
                + _zh_number(d.day) + ["unit.zh.day"])
    out = [f"date.en.month.{d.month}", f"date.en.day.{d.day}"]
    return out + _en_year(d.year) if with_year else out


def _en_year(year: int) -> list[str]:
    if year < 1000 or year % 1000 == 0 or 2000 <= year <= 2009:
        return _en_number(year)
    century, rest = divmod(year, 100)
    out = _en_number(century)
    if rest == 0:
        return out + ["num.en.hundred"]
    if rest < 10:
        return out + ["num.en.oh", f"num.en.{rest}"]
    return out + _en_number(rest)


def say_time(t: time, lang: str) -> list[str]:
    """Pieces for a clock time to the minute (seconds are not spoken).

    zh, 12-hour with the period of day: 凌晨 00-05 (凌晨零点整, 凌晨五点十分), 上午 06-11
    (2 o'clock is 两点, as in 凌晨两点 or 下午两点, never 二点),
    中午 12 (中午十二点整), 下午 13-17 (下午三点三十分, 下午三点整), 晚上 18-23; minutes 1-9 as
    零五分.
    en: "three thirty p.m.", "three oh five p.m.", "three p.m.", "twelve noon",
    "twelve midnight", "twelve thirty a.m.".
    """
    _check_lang(lang)
    return _zh_time(t.hour, t.minute) if lang == "zh" else _en_time(t.hour, t.minute)


def _zh_time(hour: int, minute: int) -> list[str]:
    if hour < 6:
        period, spoken_hour = "time.zh.dawn", hour
    elif hour < 12:
        period, spoken_hour = "time.zh.morning", hour
    elif hour < 13:
        period, spoken_hour = "time.zh.noon", hour
    elif hour < 18:
        period, spoken_hour = "time.zh.afternoon", hour - 12
    else:
        period, spoken_hour = "time.zh.evening", hour - 12
    # the hour is counted with a measure word, so 2 o'clock is 两点, never 二点
    hour_pieces = ["num.zh.liang"] if spoken_hour == 2 else _zh_number(spoken_hour)
    out = [period] + hour_pieces + ["unit.zh.hour"]
    if minute == 0:
        return out + ["unit.zh.zheng"]
    if minute < 10:
        out.append("num.zh.0")
    return out + _zh_number(minute) + ["unit.zh.fen"]


def _en_time(hour: int, minute: int) -> list[str]:
    if minute == 0 and hour in (0, 12):
        return ["num.en.12", "time.en.noon" if hour == 12 else "time.en.midnight"]
    out = [f"num.en.{hour % 12 or 12}"]
    if minute:
        if minute < 10:
            out.append("num.en.oh")
        out += _en_number(minute)
    return out + ["time.en.am" if hour < 12 else "time.en.pm"]


def say_datetime(dt: datetime, lang: str, now: datetime | None = None) -> list[str]:
    """Pieces for a date and time: the day, then the time.

    The day is 今天/"today" or 明天/"tomorrow" when `now` is given and `dt` falls on that day or
    the next; otherwise the date, with the year only when `now` is given and the year differs.
    zh: 今天下午三点三十分, 十一月二十八日上午九点整. en: "today at three thirty p.m.",
    "November twenty eighth at nine a.m.". If both are timezone-aware, `now` is converted to
    `dt`'s timezone first, so "today" means today where the caller is told the time.
    """
    _check_lang(lang)
    day: list[str]
    if now is not None and dt.tzinfo is not None and now.tzinfo is not None:
        now = now.astimezone(dt.tzinfo)
    delta = (dt.date() - now.date()).days if now is not None else None
    if delta == 0:
        day = [f"day.{lang}.today"]
    elif delta == 1:
        day = [f"day.{lang}.tomorrow"]
    else:
        day = say_date(dt.date(), lang, with_year=now is not None and now.year != dt.year)
    if lang == "zh":
        return day + say_time(dt.time(), lang)
    return day + ["word.en.at"] + say_time(dt.time(), lang)


# ---------------------------------------------------------------- text, for tests and logs

def render_text(pieces: Iterable[str], catalog: _TextSource, lang: str) -> str:
    """The catalog texts of `pieces` joined as read: no spaces in Mandarin, spaces in English."""
    texts: Sequence[str] = [catalog.text(p, lang) for p in pieces]
    return ("" if lang == "zh" else " ").join(texts)
