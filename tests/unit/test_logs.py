"""Structured log lines."""

from __future__ import annotations

import json
import logging

import pytest

from ccserver import logs


def _line(style: str, capsys: pytest.CaptureFixture[str], **fields: object) -> str:
    logs.setup(style)
    logs.log(logging.getLogger("t"), "call.queued", **fields)
    return capsys.readouterr().out.strip()


def test_kv_lines_are_greppable_and_quote_only_when_needed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = _line("kv", capsys, call="abc.1", caller="Li Wei", note='say "hi"', empty="")
    assert " event=call.queued call=abc.1 " in line
    assert 'caller="Li Wei"' in line and 'note="say \\"hi\\""' in line and 'empty=""' in line


def test_json_lines_carry_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads(_line("json", capsys, call="abc.1", position=3))
    assert doc["event"] == "call.queued" and doc["call"] == "abc.1" and doc["position"] == 3
    logs.setup("kv")


ODD = [
    "",
    " ",
    "a b",
    'say "hi"',
    "k=v",
    "tab\there",
    "line\nbreak",
    "cr\r",
    "bell\x07",
    "全角\u3000空格",
    "zero\u200bwidth",
    "\\",
    "é",
    "{}",
    "ts=1 level=x",
    "😀",
]


@pytest.mark.parametrize("value", ODD)
def test_every_kv_line_parses_back_to_its_fields(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.setup("kv")
    logs.log(logging.getLogger("t"), "call.queued", note=value, level=value, n=3)
    line = capsys.readouterr().out.rstrip("\n")
    assert "\n" not in line
    fields = logs.parse_line(line)
    assert list(fields)[:3] == ["ts", "level", "event"] and fields["level"] == "info"
    assert (fields["note"], fields["level_"], fields["n"]) == (value, value, "3")


def test_a_library_message_with_spaces_is_one_quoted_event(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.setup("kv")
    logging.getLogger("asyncio").error("Task exception was never retrieved")
    fields = logs.parse_line(capsys.readouterr().out.rstrip("\n"))
    assert fields["event"] == "Task exception was never retrieved"


@pytest.mark.parametrize(
    ("line", "column"),
    [
        ("ts=1 level=info", None),
        ("ts=1  level=info event=x", 6),
        ("ts=1 level=info event=x ", 24),
        ("ts=1 level=info event=x k", 25),
        ('ts=1 level=info event=x k="open', None),  # json says where
        ("ts=1 level=info event=x k=a k=b", 29),
        ("level=info ts=1 event=x", None),
    ],
)
def test_a_line_off_the_grammar_is_refused(line: str, column: int | None) -> None:
    with pytest.raises(ValueError) as refused:
        logs.parse_line(line)
    if column is not None:
        assert str(refused.value).startswith(f"column {column}:")
