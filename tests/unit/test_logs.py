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
