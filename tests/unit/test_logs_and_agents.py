"""Structured log lines and the foundation's choice of agent."""

from __future__ import annotations

import json
import logging

import pytest

from ccserver import logs
from ccserver.agents import AgentState, Roster


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


def test_longest_idle_ready_agent_is_picked_ties_by_id() -> None:
    roster = Roster(["1003", "1001", "1002"], now=100.0)
    assert roster.pick().id == "1001"  # type: ignore[union-attr]
    roster.ready(roster.agents["1001"], now=200.0)
    assert roster.pick().id == "1002"  # type: ignore[union-attr]
    roster.not_ready(roster.agents["1002"], "rona-no-answer")
    roster.ring(roster.agents["1003"], "call-1")
    assert roster.pick().id == "1001"  # type: ignore[union-attr]
    roster.busy(roster.agents["1003"])
    assert roster.agents["1003"].calls_taken == 1
    assert roster.counts() == {"ready": 1, "ringing": 0, "busy": 1, "not-ready": 1}
    roster.not_ready(roster.agents["1001"], "break")
    assert roster.pick() is None
    assert roster.agents["1002"].state is AgentState.NOT_READY
