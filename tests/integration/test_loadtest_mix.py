"""`ccserver loadtest --mix` through the real harness: callers walk the 95598 IVR along one
row per branch of the shipped mix, a fifth of them give up, and the report counts what
happened — every call asked for was placed, none failed and none was cut off, every branch
is in the per-branch table, and each answered call has its ring delay measured from its
queue entry (the controller's record), each caller its time in the IVR."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ccserver import config as config_mod
from ccserver.loadtest import harness, params, results, sipp
from ccserver.loadtest import mix as mix_mod
from ccserver.loadtest.cli import summary

pytestmark = pytest.mark.integration

CALLS = 20


def one_row_per_branch(target: Path) -> list[str]:
    """The shipped mix's first row of each branch, in SIPp's SEQUENTIAL order, so that 16
    callers walk every branch whatever the draw. Returns the branches."""
    rows: dict[str, str] = {}
    for line in sipp.IVR_MIX_95598.read_text(encoding="latin-1").splitlines()[1:]:
        if line.strip() and not line.startswith("#"):
            rows.setdefault(line.split(";", 1)[0], line)
    target.write_text("SEQUENTIAL\n" + "\n".join(rows.values()) + "\n", encoding="latin-1")
    return list(rows)


@pytest.fixture(scope="module")
def ccserver(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[str]]:
    out = tmp_path_factory.mktemp("loadtest-mix")
    branches = one_row_per_branch(out / "mix.csv")
    p = params.from_args(
        system="ccserver",
        cps=2.0,
        concurrency=None,
        calls=CALLS,
        duration=None,
        agents=None,
        pools=2,
        talk_ms="1000:2000",
        abandon_pct=20.0,
        abandon_wait_ms="1000:10000",
        mix=str(out / "mix.csv"),
        out=str(out),
        capacity=False,
        progress=False,
    )
    assert p.ivr_s == mix_mod.read(out / "mix.csv").longest_ivr_s > 30  # sized for the walk
    found = harness.run(p, config_mod.load(environ={}))
    print(summary(found))
    return found["systems"]["ccserver"], branches


def test_every_call_asked_for_is_placed_and_none_failed_or_cut_off(
    ccserver: tuple[dict[str, Any], list[str]],
) -> None:
    system, _ = ccserver
    calls = system["calls"]
    assert (calls["asked"], calls["offered"]) == (CALLS, CALLS), calls
    assert (calls["failed"], calls["cut_off"], calls["completed"]) == (0, 0, CALLS), calls
    assert system["warnings"] == []


def test_every_branch_is_in_the_table_and_each_caller_ended_one_way(
    ccserver: tuple[dict[str, Any], list[str]],
) -> None:
    system, branches = ccserver
    table = system["branches"]
    assert set(table) == set(branches)
    for branch, counts in table.items():
        ended = sum(counts[k] for k in results.BRANCH_OUTCOMES[1:])
        assert counts["callers"] == ended > 0, branch
        assert counts["cut_off"] == 0, branch
    assert sum(c["callers"] for c in table.values()) == CALLS
    assert sum(c["abandoned"] for c in table.values()) == system["calls"]["abandoned"]


def test_ring_delay_is_from_the_queue_and_the_ivr_time_is_its_own_column(
    ccserver: tuple[dict[str, Any], list[str]],
) -> None:
    system, _ = ccserver
    answered = sum(c["agent"] for c in system["branches"].values())
    assert answered > 0
    assert system["ring_delay_ms"]["n"] == answered
    assert system["ivr_ms"]["n"] == CALLS
    # Ring delay is routing, not the IVR walk that came before it.
    assert system["ring_delay_ms"]["p99"] < system["ivr_ms"]["p50"]
