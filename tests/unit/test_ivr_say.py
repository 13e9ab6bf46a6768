"""Numbers, money, dates and digit strings in words, checked by hand against how a
Mandarin or English speaker reads them, and the templates `say` nodes use."""

from __future__ import annotations

import pytest

from ccserver.ivr import say


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "零"),
        (7, "七"),
        (10, "十"),
        (15, "十五"),
        (20, "二十"),
        (101, "一百零一"),
        (110, "一百一十"),
        (1001, "一千零一"),
        (1010, "一千零一十"),
        (10010, "一万零一十"),
        (100000, "十万"),
        (120000, "十二万"),
        (1000_0001, "一千万零一"),
        (1_0001_0000, "一亿零一万"),
        (10_0000_0000, "十亿"),
        (-3, "负三"),
    ],
)
def test_mandarin_integers_read_zeros_once_and_drop_the_leading_one_of_ten(
    n: int, words: str
) -> None:
    assert say.zh_integer(n) == words


@pytest.mark.parametrize(
    ("value", "zh", "en"),
    [
        ("123.45", "一百二十三元四角五分", "one hundred twenty-three yuan and forty-five fen"),
        ("100", "一百元整", "one hundred yuan"),
        ("100.00", "一百元整", "one hundred yuan"),
        ("1.05", "一元零五分", "one yuan and five fen"),
        ("10.50", "十元五角", "ten yuan and fifty fen"),
        ("0.05", "五分", "five fen"),
        ("0.5", "五角", "fifty fen"),
        ("0", "零元", "zero yuan"),
        ("25600", "二万五千六百元整", "twenty-five thousand six hundred yuan"),
        ("1005.08", "一千零五元零八分", "one thousand five yuan and eight fen"),
        ("-12.30", "负十二元三角", "minus twelve yuan and thirty fen"),
        ("0.999", "一元整", "one yuan"),  # rounded to the fen, half up
    ],
)
def test_money_in_yuan_jiao_fen(value: str, zh: str, en: str) -> None:
    assert say.money(value, "zh") == zh
    assert say.money(value, "en") == en


@pytest.mark.parametrize(
    ("value", "zh", "en"),
    [
        ("42", "四十二", "forty-two"),
        ("3.14", "三点一四", "three point one four"),
        ("-2.50", "负二点五", "minus two point five"),
        ("1205", "一千二百零五", "one thousand two hundred five"),
        ("1000000", "一百万", "one million"),
    ],
)
def test_numbers_as_quantities(value: str, zh: str, en: str) -> None:
    assert say.number(value, "zh") == zh
    assert say.number(value, "en") == en


@pytest.mark.parametrize(
    ("value", "zh", "en"),
    [
        ("2025-08-15", "二零二五年八月十五日", "August fifteenth, two thousand twenty-five"),
        ("2024-01-01", "二零二四年一月一日", "January first, two thousand twenty-four"),
        (
            "2025-12-31T23:00:00+08:00",
            "二零二五年十二月三十一日",
            "December thirty-first, two thousand twenty-five",
        ),
        ("2030-02-22", "二零三零年二月二十二日", "February twenty-second, two thousand thirty"),
        ("2025-03-20", "二零二五年三月二十日", "March twentieth, two thousand twenty-five"),
    ],
)
def test_dates_as_spoken(value: str, zh: str, en: str) -> None:
    assert say.date(value, "zh") == zh
    assert say.date(value, "en") == en


def test_digit_strings_are_read_key_by_key_with_yao_for_one() -> None:
    assert say.digits("95598", "zh") == "九五五九八"
    assert say.digits("1000000001", "zh") == "幺零零零零零零零零幺"
    assert say.digits("12#", "en") == "one two hash"
    assert say.digits("*0", "zh") == "星号零"


@pytest.mark.parametrize(
    ("fmt", "value"),
    [
        ("money", "abc"),
        ("number", "1e"),
        ("number", "NaN"),
        ("date", "15/08/2025"),
        ("digits", "12a"),
    ],
)
def test_values_that_cannot_be_read_raise_say_error(fmt: str, value: str) -> None:
    with pytest.raises(say.SayError):
        say.render(value, fmt, "zh")


def test_templates_split_into_literals_and_slots_and_reject_bad_placeholders() -> None:
    segments = say.parse_template("应缴{balance:money}，截止{due:date}。{{注}}{name}")
    assert segments == [
        "应缴",
        say.Slot("balance", "money"),
        "，截止",
        say.Slot("due", "date"),
        "。{注}",
        say.Slot("name", ""),
    ]
    text = say.fill(segments, {"balance": "1.05", "due": "2025-08-15", "name": "张伟"}, "zh")
    assert "".join(text) == "应缴一元零五分，截止二零二五年八月十五日。{注}张伟"
    for bad in ("{balance:cash}", "{unclosed", "{0}", "{a!r}", "{}"):
        with pytest.raises(say.SayError):
            say.parse_template(bad)
