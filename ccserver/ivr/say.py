"""Numbers, money, dates and digit strings as words, and the `{variable:format}` templates
that `say`, `set` and `lookup` nodes use.

Prompts are spoken by espeak-ng from text, and a TTS voice reads "123.45" or "2025-08-15"
unpredictably (as a date? digit by digit?), so values are turned into the words a person
would say before they reach the voice: `money("123.45", "zh")` → 一百二十三元四角五分,
`money("123.45", "en")` → "one hundred twenty-three yuan and forty-five fen".
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

FORMATS = ("digits", "number", "money", "date")
"""What may follow the colon in `{variable:format}`; no format means the text as it is."""


class SayError(ValueError):
    """A value cannot be read in the requested format (e.g. "abc" as money)."""


# --- Mandarin ------------------------------------------------------------------------------

_ZH = "零一二三四五六七八九"
_ZH_PHONE = "零幺二三四五六七八九"
"""Digit strings (account and phone numbers) are read with 幺 for 1, as on the telephone."""
_ZH_BIG = ("", "万", "亿", "万亿")


def _zh_group(n: int) -> str:
    """1…9999 with inner zeros read once: 1001 → 一千零一, 1010 → 一千零一十."""
    out, pending_zero = "", False
    for digit, unit in zip(f"{n:04d}", ("千", "百", "十", ""), strict=True):
        if digit == "0":
            pending_zero = bool(out)
            continue
        if pending_zero:
            out += "零"
            pending_zero = False
        out += _ZH[int(digit)] + unit
    return out


def zh_integer(n: int) -> str:
    """A whole number in Mandarin, up to 10^16: 10010 → 一万零一十, 100000 → 十万."""
    if n < 0:
        return "负" + zh_integer(-n)
    if n >= 10**16:
        raise SayError(f"{n} is too large to say")
    if n == 0:
        return "零"
    groups = []
    while n:
        groups.append(n % 10000)
        n //= 10000
    parts: list[str] = []
    skipped = False
    for index in reversed(range(len(groups))):
        group = groups[index]
        if group == 0:
            skipped = True
            continue
        if parts and (skipped or group < 1000):
            parts.append("零")
        parts.append(_zh_group(group) + _ZH_BIG[index])
        skipped = False
    text = "".join(parts)
    return text[1:] if text.startswith("一十") else text  # 十五, not 一十五


# --- English -------------------------------------------------------------------------------

_EN_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_EN_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_EN_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_EN_ORDINAL = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_EN_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_EN_KEYS = {"*": "star", "#": "hash"}
_ZH_KEYS = {"*": "星号", "#": "井号"}


def _en_under_1000(n: int) -> str:
    words = []
    if n >= 100:
        words.append(f"{_EN_ONES[n // 100]} hundred")
        n %= 100
    if n >= 20:
        tens, ones = divmod(n, 10)
        words.append(_EN_TENS[tens] + (f"-{_EN_ONES[ones]}" if ones else ""))
    elif n or not words:
        words.append(_EN_ONES[n])
    return " ".join(words)


def en_integer(n: int) -> str:
    """A whole number in English words (American, no "and"): 1205 → one thousand two
    hundred five."""
    if n < 0:
        return "minus " + en_integer(-n)
    if n >= 10**15:
        raise SayError(f"{n} is too large to say")
    words = []
    for size, name in _EN_SCALES:
        if n >= size:
            words.append(f"{_en_under_1000(n // size)} {name}")
            n %= size
    if n or not words:
        words.append(_en_under_1000(n))
    return " ".join(words)


def _en_ordinal(n: int) -> str:
    words = en_integer(n)
    head, sep, last = words.rpartition("-") if "-" in words else ("", "", words)
    if last in _EN_ORDINAL:
        last = _EN_ORDINAL[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


# --- formats -------------------------------------------------------------------------------


def _decimal(value: str) -> Decimal:
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise SayError(f"{value!r} is not a number") from None
    if not number.is_finite():
        raise SayError(f"{value!r} is not a finite number")
    return number


def digits(value: str, language: str) -> str:
    """Key by key: "95598" → 九五五九八 / "nine five five nine eight"."""
    value = value.strip()
    if not value or any(c not in "0123456789*#" for c in value):
        raise SayError(f"{value!r} is not a string of keypad digits")
    if language == "zh":
        return "".join(_ZH_KEYS.get(c) or _ZH_PHONE[int(c)] for c in value)
    return " ".join(_EN_KEYS.get(c) or _EN_ONES[int(c)] for c in value)


def number(value: str, language: str) -> str:
    """A number as a quantity: "-12.5" → 负十二点五 / "minus twelve point five"."""
    amount = _decimal(value)
    sign, whole = ("-" if amount < 0 else ""), abs(amount)
    integer = int(whole)
    fraction = format(whole, "f").partition(".")[2].rstrip("0")
    if language == "zh":
        decimals = "".join(_ZH[int(c)] for c in fraction)
        text = zh_integer(integer) + ("点" + decimals if fraction else "")
        return ("负" if sign else "") + text
    text = en_integer(integer) + (" point " + digits(fraction, "en") if fraction else "")
    return ("minus " if sign else "") + text


def money(value: str, language: str) -> str:
    """Yuan, rounded to the fen: "123.45" → 一百二十三元四角五分, "100" → 一百元整,
    "1.05" → 一元零五分 / "one hundred twenty-three yuan and forty-five fen"."""
    amount = _decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    negative, fen_total = amount < 0, int(abs(amount) * 100)
    yuan, cents = divmod(fen_total, 100)
    jiao, fen = divmod(cents, 10)
    if language == "zh":
        text = zh_integer(yuan) + "元" if yuan else ""
        if jiao:
            text += _ZH[jiao] + "角"
        elif fen and yuan:
            text += "零"
        if fen:
            text += _ZH[fen] + "分"
        if not cents:
            text = text + "整" if yuan else "零元"
        return ("负" if negative else "") + text
    parts = [f"{en_integer(yuan)} yuan"] if yuan or not cents else []
    if cents:
        parts.append(f"{en_integer(cents)} fen")
    return ("minus " if negative else "") + " and ".join(parts)


def date(value: str, language: str) -> str:
    """An ISO date (or datetime): "2025-08-15" → 二零二五年八月十五日 /
    "August fifteenth, two thousand twenty-five"."""
    try:
        day = dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        raise SayError(f"{value!r} is not an ISO date (YYYY-MM-DD)") from None
    if language == "zh":
        year = "".join(_ZH[int(c)] for c in f"{day.year:04d}")
        return f"{year}年{zh_integer(day.month)}月{zh_integer(day.day)}日"
    return f"{_EN_MONTHS[day.month - 1]} {_en_ordinal(day.day)}, {en_integer(day.year)}"


_RENDERERS: dict[str, Callable[[str, str], str]] = {
    "digits": digits,
    "number": number,
    "money": money,
    "date": date,
}


def render(value: str, fmt: str, language: str) -> str:
    """`value` in words for `language` ("zh" or "en"); an empty `fmt` returns it as it is."""
    if not fmt:
        return value
    try:
        renderer = _RENDERERS[fmt]
    except KeyError:
        raise SayError(f"unknown format {fmt!r} (use {', '.join(FORMATS)})") from None
    return renderer(value, "zh" if language == "zh" else "en")


# --- templates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """`{name:fmt}` in a template."""

    name: str
    fmt: str


Segment = str | Slot


def parse_template(text: str) -> list[Segment]:
    """ "余额{balance:money}元" → ["余额", Slot("balance", "money"), "元"]; `{{` is a brace.

    Raises SayError for unbalanced braces, empty names, conversions (`!r`) or unknown
    formats, so that a flow's templates are checked when the flow is loaded."""
    segments: list[Segment] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise SayError(f"bad template {text!r}: {exc}") from None
    for literal, name, fmt, conversion in parsed:
        if literal and segments and isinstance(segments[-1], str):
            segments[-1] += literal  # `{{` splits a literal in two
        elif literal:
            segments.append(literal)
        if name is None:
            continue
        if not name.isidentifier() or conversion:
            raise SayError(f"bad placeholder {{{name}}} in {text!r}: use {{name}} or {{name:fmt}}")
        if fmt and fmt not in FORMATS:
            raise SayError(f"unknown format {fmt!r} in {text!r} (use {', '.join(FORMATS)})")
        segments.append(Slot(name, fmt or ""))
    return segments


def fill(segments: list[Segment], values: Mapping[str, str], language: str) -> list[str]:
    """The segments as texts, slots rendered (a missing variable is read as empty)."""
    return [
        seg if isinstance(seg, str) else render(values.get(seg.name, ""), seg.fmt, language)
        for seg in segments
    ]
