"""Unit tests of ivr.say: readings of numbers, digits, amounts, dates and times in zh and en."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.say import (
    MAX_NUMBER,
    render_text,
    say_amount,
    say_date,
    say_datetime,
    say_digits,
    say_number,
    say_time,
)
from prompts.catalog import Catalog, load_catalog_files

PIECES = Path(__file__).resolve().parents[2] / "prompts" / "catalog" / "pieces.yaml"
CATALOG: Catalog = load_catalog_files([PIECES])
LANGS = ("zh", "en")


def zh(pieces: list[str]) -> str:
    return render_text(pieces, CATALOG, "zh")


def en(pieces: list[str]) -> str:
    return render_text(pieces, CATALOG, "en")


# ---------------------------------------------------------------- tables

@pytest.mark.parametrize(
    ("n", "mandarin", "english"),
    [
        (0, "零", "zero"),
        (5, "五", "five"),
        (10, "十", "ten"),
        (12, "十二", "twelve"),
        (19, "十九", "nineteen"),
        (20, "二十", "twenty"),
        (21, "二十一", "twenty one"),
        (100, "一百", "one hundred"),
        (101, "一百零一", "one hundred one"),
        (110, "一百一十", "one hundred ten"),
        (112, "一百一十二", "one hundred twelve"),
        (1005, "一千零五", "one thousand five"),
        (1010, "一千零一十", "one thousand ten"),
        (2005, "二千零五", "two thousand five"),
        (10000, "一万", "ten thousand"),
        (10010, "一万零一十", "ten thousand ten"),
        (10050, "一万零五十", "ten thousand fifty"),
        (11000, "一万一千", "eleven thousand"),
        (100000, "十万", "one hundred thousand"),
        (120034, "十二万零三十四", "one hundred twenty thousand thirty four"),
        (1010000, "一百零一万", "one million ten thousand"),
        (100000001, "一亿零一", "one hundred million one"),
        (100010000, "一亿零一万", "one hundred million ten thousand"),
        (110000000, "一亿一千万", "one hundred ten million"),
        (2000000000, "二十亿", "two billion"),
        (999999999999, "九千九百九十九亿九千九百九十九万九千九百九十九",
         "nine hundred ninety nine billion nine hundred ninety nine million "
         "nine hundred ninety nine thousand nine hundred ninety nine"),
    ],
)
def test_numbers(n: int, mandarin: str, english: str) -> None:
    assert zh(say_number(n, "zh")) == mandarin
    assert en(say_number(n, "en")) == english


@pytest.mark.parametrize("bad", [-1, MAX_NUMBER])
def test_numbers_out_of_range_are_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        say_number(bad, "zh")


def test_non_int_and_unknown_language_are_refused() -> None:
    with pytest.raises(TypeError):
        say_number(True, "zh")
    with pytest.raises(ValueError, match="unsupported language 'fr'"):
        say_number(1, "fr")


@pytest.mark.parametrize(
    ("digits", "phone_style", "mandarin", "english"),
    [
        ("95598", True, "九五五九八", "nine five five nine eight"),
        ("0101", True, "零幺零幺", "zero one zero one"),
        ("0101", False, "零一零一", "zero one zero one"),
        ("", True, "", ""),
    ],
)
def test_digits(digits: str, phone_style: bool, mandarin: str, english: str) -> None:
    assert zh(say_digits(digits, "zh", phone_style=phone_style)) == mandarin
    assert en(say_digits(digits, "en", phone_style=phone_style)) == english


@pytest.mark.parametrize("bad", ["12a", "1 2", "１２", "-1"])
def test_non_ascii_digit_strings_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a digit string"):
        say_digits(bad, "zh")


@pytest.mark.parametrize(
    ("amount", "mandarin", "english"),
    [
        ("0.00", "零元", "zero yuan"),
        ("0", "零元", "zero yuan"),
        ("0.05", "五分", "five fen"),
        ("0.30", "三角", "thirty fen"),
        ("0.35", "三角五分", "thirty five fen"),
        ("1", "一元整", "one yuan"),
        ("10.50", "十元五角", "ten yuan and fifty fen"),
        ("50.00", "五十元整", "fifty yuan"),
        ("123.45", "一百二十三元四角五分", "one hundred twenty three yuan and forty five fen"),
        ("123.40", "一百二十三元四角", "one hundred twenty three yuan and forty fen"),
        ("1008.05", "一千零八元零五分", "one thousand eight yuan and five fen"),
        ("20000.01", "二万元零一分", "twenty thousand yuan and one fen"),
    ],
)
def test_amounts(amount: str, mandarin: str, english: str) -> None:
    assert zh(say_amount(Decimal(amount), "zh")) == mandarin
    assert en(say_amount(Decimal(amount), "en")) == english


@pytest.mark.parametrize("bad", [Decimal("-0.01"), Decimal("1.005"), Decimal("NaN"),
                                 Decimal("Infinity"), Decimal(MAX_NUMBER)])
def test_unspeakable_amounts_are_refused(bad: Decimal) -> None:
    with pytest.raises(ValueError):
        say_amount(bad, "zh")


def test_float_amounts_are_refused() -> None:
    with pytest.raises(TypeError, match="Decimal"):
        say_amount(0.1, "zh")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("day", "mandarin", "english", "mandarin_year", "english_year"),
    [
        (date(2026, 11, 27), "十一月二十七日", "November twenty seventh",
         "二零二六年十一月二十七日", "November twenty seventh twenty twenty six"),
        (date(2026, 1, 1), "一月一日", "January first",
         "二零二六年一月一日", "January first twenty twenty six"),
        (date(2005, 2, 10), "二月十日", "February tenth",
         "二零零五年二月十日", "February tenth two thousand five"),
        (date(2000, 12, 31), "十二月三十一日", "December thirty first",
         "二零零零年十二月三十一日", "December thirty first two thousand"),
        (date(2010, 5, 20), "五月二十日", "May twentieth",
         "二零一零年五月二十日", "May twentieth twenty ten"),
        (date(1905, 7, 22), "七月二十二日", "July twenty second",
         "一九零五年七月二十二日", "July twenty second nineteen oh five"),
        (date(1900, 8, 3), "八月三日", "August third",
         "一九零零年八月三日", "August third nineteen hundred"),
    ],
)
def test_dates(day: date, mandarin: str, english: str, mandarin_year: str,
               english_year: str) -> None:
    assert zh(say_date(day, "zh")) == mandarin
    assert en(say_date(day, "en")) == english
    assert zh(say_date(day, "zh", with_year=True)) == mandarin_year
    assert en(say_date(day, "en", with_year=True)) == english_year


@pytest.mark.parametrize(
    ("clock", "mandarin", "english"),
    [
        (time(0, 0), "凌晨零点整", "twelve midnight"),
        (time(0, 30), "凌晨零点三十分", "twelve thirty a.m."),
        (time(5, 59), "凌晨五点五十九分", "five fifty nine a.m."),
        (time(6, 0), "上午六点整", "six a.m."),
        (time(9, 5), "上午九点零五分", "nine oh five a.m."),
        (time(11, 10), "上午十一点十分", "eleven ten a.m."),
        (time(12, 0), "中午十二点整", "twelve noon"),
        (time(12, 30), "中午十二点三十分", "twelve thirty p.m."),
        (time(14, 0), "下午两点整", "two p.m."),
        (time(2, 5), "凌晨两点零五分", "two oh five a.m."),
        (time(13, 0), "下午一点整", "one p.m."),
        (time(15, 0), "下午三点整", "three p.m."),
        (time(15, 30, 59), "下午三点三十分", "three thirty p.m."),
        (time(18, 0), "晚上六点整", "six p.m."),
        (time(23, 45), "晚上十一点四十五分", "eleven forty five p.m."),
    ],
)
def test_times(clock: time, mandarin: str, english: str) -> None:
    assert zh(say_time(clock, "zh")) == mandarin
    assert en(say_time(clock, "en")) == english


NOW = datetime(2026, 11, 27, 10, 0)


@pytest.mark.parametrize(
    ("when", "now", "mandarin", "english"),
    [
        (datetime(2026, 11, 27, 15, 30), NOW, "今天下午三点三十分", "today at three thirty p.m."),
        (datetime(2026, 11, 27, 0, 5), NOW, "今天凌晨零点零五分", "today at twelve oh five a.m."),
        (datetime(2026, 11, 28, 9, 0), NOW, "明天上午九点整", "tomorrow at nine a.m."),
        (datetime(2026, 11, 29, 12, 0), NOW, "十一月二十九日中午十二点整",
         "November twenty ninth at twelve noon"),
        (datetime(2026, 11, 26, 20, 0), NOW, "十一月二十六日晚上八点整",
         "November twenty sixth at eight p.m."),
        (datetime(2027, 1, 2, 8, 0), NOW, "二零二七年一月二日上午八点整",
         "January second twenty twenty seven at eight a.m."),
        (datetime(2026, 12, 31, 23, 0), datetime(2026, 12, 30, 22, 0), "明天晚上十一点整",
         "tomorrow at eleven p.m."),
        (datetime(2026, 11, 27, 15, 30), None, "十一月二十七日下午三点三十分",
         "November twenty seventh at three thirty p.m."),
    ],
)
def test_datetimes(when: datetime, now: datetime | None, mandarin: str, english: str) -> None:
    assert zh(say_datetime(when, "zh", now=now)) == mandarin
    assert en(say_datetime(when, "en", now=now)) == english


def test_today_is_judged_in_the_timezone_of_the_time_spoken() -> None:
    beijing = timezone(timedelta(hours=8))
    when = datetime(2026, 11, 28, 7, 0, tzinfo=beijing)
    now_utc = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)  # 07:30 on the 28th in Beijing

    assert zh(say_datetime(when, "zh", now=now_utc)) == "今天上午七点整"


# ---------------------------------------------------------------- properties

ZH_DIGIT = dict(zip("零一二三四五六七八九", range(10), strict=True))
ZH_PLACE = {"十": 10, "百": 100, "千": 1000}


def parse_zh(text: str) -> int:
    """An independent reader of Mandarin numerals, to check say_number round-trips."""
    total = section = digit = 0
    for ch in text:
        if ch in ZH_DIGIT:
            digit = ZH_DIGIT[ch]
        elif ch in ZH_PLACE:
            section += (digit or 1) * ZH_PLACE[ch]
            digit = 0
        elif ch == "万":
            total += (section + digit) * 10**4
            section = digit = 0
        elif ch == "亿":
            total += (section + digit) * 10**8
            section = digit = 0
        else:
            raise AssertionError(f"unexpected {ch!r} in {text!r}")
    return total + section + digit


EN_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split())}
EN_WORDS.update({w: 10 * i for i, w in enumerate(
    "twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2)})
EN_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9}


def parse_en(text: str) -> int:
    total = group = 0
    for word in text.split():
        if word in EN_WORDS:
            group += EN_WORDS[word]
        elif word == "hundred":
            group *= 100
        elif word in EN_SCALES:
            total += group * EN_SCALES[word]
            group = 0
        else:
            raise AssertionError(f"unexpected {word!r} in {text!r}")
    return total + group


numbers = st.integers(min_value=0, max_value=MAX_NUMBER - 1) | st.sampled_from(
    [0, 10, 100, 1000, 10**4, 10**5, 10**8, 10**8 + 1, 10**11])


@given(numbers)
def test_numbers_round_trip_and_zh_zero_rules(n: int) -> None:
    mandarin = zh(say_number(n, "zh"))
    assert parse_zh(mandarin) == n
    assert parse_en(en(say_number(n, "en"))) == n
    assert "零零" not in mandarin
    if n > 0:
        assert not mandarin.endswith("零")
        assert not mandarin.startswith("一十")
    assert "两" not in mandarin


amounts = st.decimals(min_value=0, max_value=Decimal(MAX_NUMBER) - Decimal("0.01"), places=2,
                      allow_nan=False, allow_infinity=False)
dates = st.dates(min_value=date(1000, 1, 1))
times = st.times()


@given(n=numbers, digits=st.text("0123456789", max_size=20), amount=amounts, day=dates,
       clock=times,
       when=st.datetimes(min_value=datetime(1000, 1, 4), max_value=datetime(9999, 12, 28)),
       offset=st.timedeltas(min_value=timedelta(days=-3), max_value=timedelta(days=3)),
       phone_style=st.booleans(), with_year=st.booleans())
def test_every_piece_exists_in_the_catalog(n: int, digits: str, amount: Decimal, day: date,
                                           clock: time, when: datetime, offset: timedelta,
                                           phone_style: bool, with_year: bool) -> None:
    for lang in LANGS:
        produced = [
            *say_number(n, lang),
            *say_digits(digits, lang, phone_style=phone_style),
            *say_amount(amount, lang),
            *say_date(day, lang, with_year=with_year),
            *say_time(clock, lang),
            *say_datetime(when, lang, now=when + offset),
            *say_datetime(when, lang),
        ]
        missing = sorted({p for p in produced if not CATALOG.has(p, lang)})
        assert missing == [], lang


def parse_zh_amount(text: str) -> int:
    """Mandarin 元角分 back to fen."""
    yuan = 0
    if "元" in text:
        head, text = text.split("元")
        yuan = parse_zh(head)
    text = text.removesuffix("整").removeprefix("零")
    jiao = fen = 0
    if "角" in text:
        head, text = text.split("角")
        jiao = ZH_DIGIT[head]
    if "分" in text:
        head, text = text.split("分")
        fen = ZH_DIGIT[head]
    assert text == ""
    return yuan * 100 + jiao * 10 + fen


def parse_en_amount(text: str) -> int:
    yuan_part, _, fen_part = text.partition(" and ")
    if yuan_part.endswith(" fen"):
        yuan_part, fen_part = "", yuan_part
    yuan = parse_en(yuan_part.removesuffix(" yuan")) if yuan_part else 0
    fen = parse_en(fen_part.removesuffix(" fen")) if fen_part else 0
    return yuan * 100 + fen


@given(amount=amounts)
def test_amounts_read_back_and_zh_has_no_double_zero(amount: Decimal) -> None:
    mandarin = zh(say_amount(amount, "zh"))
    cents = int(amount * 100)
    assert "零零" not in mandarin
    assert parse_zh_amount(mandarin) == cents
    assert parse_en_amount(en(say_amount(amount, "en"))) == cents
