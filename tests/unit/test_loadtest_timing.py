"""Joining per-call timing from SIPp timing logs recorded on the real stack
(tests/fixtures/sipp/README.md says how), including logs cut short by a killed SIPp."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ccserver.loadtest.timing import CallTiming, collect

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "sipp" / "timing"
IVR_RUN, ABANDON_RUN = "28281", "28282"


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    for log in RECORDED.glob("*.timing.log"):
        shutil.copy(log, tmp_path / log.name)
    return tmp_path


def test_ivr_callers_are_joined_with_the_agent_legs_that_rang_for_them(logs: Path) -> None:
    calls = collect(logs, IVR_RUN)
    assert [c.caller for c in calls] == [f"c{IVR_RUN}-{n}" for n in range(1, 8)]
    first = calls[0]
    assert first.answered_at == pytest.approx(1795602828.588980)
    assert first.agent_invite_at == pytest.approx(1795602843.129146)
    assert first.agent_answered_at == pytest.approx(1795602843.335366)
    assert first.answer_to_ring_s == pytest.approx(14.540166)
    assert first.wait_s == pytest.approx(14.746386)
    for call in calls:
        assert call.answer_to_ring_s is not None and call.answer_to_ring_s >= 0
        assert call.wait_s is not None and call.wait_s >= call.answer_to_ring_s
        assert call.ended_at is not None and call.agent_answered_at is not None
        assert call.ended_at > call.agent_answered_at
        assert call.answered_at is not None and call.agent_invite_at is not None
        assert call.ivr_done_at is not None
        assert call.answered_at <= call.ivr_done_at <= call.agent_invite_at
        assert call.ended_by == "far end"  # the agent hung up
        assert call.branch  # the mix row's branch, from the caller-answered line


def test_abandoners_have_no_agent_and_end_when_they_hung_up(logs: Path) -> None:
    calls = collect(logs, ABANDON_RUN)
    assert len(calls) == 4
    for call in calls:
        assert call.agent_invite_at is None and call.agent_answered_at is None
        assert call.answer_to_ring_s is None and call.wait_s is None
        assert call.answered_at is not None and call.ended_at is not None
        assert 1.5 <= call.ended_at - call.answered_at <= 4.5
        assert call.ended_by == "caller"


def test_other_runs_and_registration_lines_are_left_out(logs: Path) -> None:
    assert collect(logs, "999") == []
    assert collect(logs, "2828") == []  # a prefix of both runs, not a run
    everyone = {c.caller for run in (IVR_RUN, ABANDON_RUN) for c in collect(logs, run)}
    assert len(everyone) == 11


def test_a_log_cut_mid_line_and_garbage_lines_are_skipped(logs: Path) -> None:
    ivr = logs / f"ivr-{IVR_RUN}.timing.log"
    text = ivr.read_text()
    last = text.rstrip("\n").rsplit("\n", 1)[1]
    assert last.startswith("caller-bye-received")
    # Garbage lines, and the last line cut short (no newline) with its caller still whole.
    ivr.write_text("not a timing line\ncaller-answered x y z\n\n" + text.rstrip("\n")[:-3])
    complete = {c.caller: c for c in collect(logs, IVR_RUN)}
    cut_caller = last.split()[4]
    # The caller's cut end line is gone: its end falls back to the agent leg's end.
    recorded = {c.caller: c for c in collect(RECORDED, IVR_RUN)}
    assert complete[cut_caller].ended_at != recorded[cut_caller].ended_at
    assert complete[cut_caller].ended_at is not None
    assert complete[cut_caller].answered_at == recorded[cut_caller].answered_at
    others = [c for c in complete if c != cut_caller]
    assert all(complete[c] == recorded[c] for c in others)


def test_a_caller_without_its_own_lines_keeps_the_agent_side() -> None:
    call = CallTiming("c1-1", None, 10.0, 10.2, 20.0)
    assert call.answer_to_ring_s is None and call.wait_s is None
    call = CallTiming("c1-1", 5.0, 10.0, None, 20.0)
    assert call.answer_to_ring_s == 5.0 and call.wait_s is None
