"""Link drills: the controller away while calls come in (the dialplan's fallback holds them
and retries Stasis until it is back), and the ARI websocket cut under Asterisk's feet (the
controller reconnects and resyncs: no call lost, none counted twice, order kept)."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from ccserver.stack.procs import wait_until
from ccserver.stack.render import FALLBACK_TRIES, FALLBACK_WAIT_S
from tests.integration.conftest import LiveStack, start_stack
from tests.integration.drill_log import read_log

pytestmark = pytest.mark.integration

AGENTS = ["1001", "1002", "1003", "1004", "1005", "1006"]
RESYNC_AFTER_CUT_S = 2.0
"""The bound docs/emergency-plan.md states: link down seen → resynced, on the controller's
own log (its first reconnect waits the 1 s of the backoff's first step)."""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    yield from start_stack(tmp_path_factory.mktemp("links"), {"answer": AGENTS})


class StasisRefusals:
    """Counts the calls Asterisk could not hand to our Stasis app (no controller connected:
    the app "doesn't exist" or is "not active"), each of which took the dialplan fallback."""

    def __init__(self, live: LiveStack) -> None:
        self.log = live.stack.asterisk.log_file
        self.offset = self.log.stat().st_size

    def count(self) -> int:
        with open(self.log, "rb") as f:
            f.seek(self.offset)
            text = f.read().decode(errors="replace")
        return sum(1 for line in text.splitlines() if "Stasis app 'ccserver'" in line)


def _one_record_per_caller(records: list[dict[str, Any]]) -> None:
    counts = Counter(r["caller"] for r in records)
    assert [c for c, n in counts.items() if n > 1] == [], "a call was counted twice"
    assert len({r["id"] for r in records}) == len(records)


def test_calls_placed_while_the_controller_is_away_are_held_then_served(
    live: LiveStack,
) -> None:
    assert FALLBACK_TRIES * FALLBACK_WAIT_S >= 10, "the fallback must outlast a restart"
    run = live.next_run()
    refusals = StasisRefusals(live)
    live.stack.controller.stop()
    phones = live.agents("answer", talk_ms=1_000).start()
    try:
        callers = live.caller(run, calls=3, rate=3, limit=3).start()
        # Answered by the dialplan's fallback (no controller: Stasis fails), on hold.
        assert wait_until(lambda: callers.stats().created == 3, 10)
        assert wait_until(lambda: refusals.count() >= 3, 10)  # each caller took the fallback
        assert live.records(run, expected=0, timeout=0) == []
        live.stack.up()
        stats = callers.wait(timeout=60)
    finally:
        phones.stop()
    assert (stats.successful, stats.failed) == (3, 0), callers.errors()
    records = live.records(run, expected=3)
    assert [r["outcome"] for r in records] == ["completed"] * 3
    _one_record_per_caller(records)


def test_with_no_controller_the_fallback_retries_then_says_all_busy_and_hangs_up(
    live: LiveStack,
) -> None:
    """The dialplan fallback run to exhaustion, as a SIPp caller meets it: answered, "please
    hold" and music between FALLBACK_TRIES retries of Stasis, then "all busy", "goodbye"
    and a BYE from Asterisk (SIPp counts the call successful only if that BYE came)."""
    run = live.next_run()
    refusals = StasisRefusals(live)
    live.stack.controller.stop()
    try:
        started = time.monotonic()
        caller = live.caller(run, calls=1).start()
        heard = _applications_until_gone(live, timeout=FALLBACK_TRIES * FALLBACK_WAIT_S + 40)
        stats = caller.wait(timeout=30)
        took_s = time.monotonic() - started
    finally:
        live.stack.up()
    assert (stats.successful, stats.failed) == (1, 0), caller.errors()
    assert refusals.count() == FALLBACK_TRIES + 1  # the first try, then each retry
    # What the caller's channel ran, in order (a step seen once per run of it).
    retry = ["Playback(pls-hold-while-try)", f"MusicOnHold(default,{FALLBACK_WAIT_S})"]
    assert heard == retry * FALLBACK_TRIES + ["Playback(tt-allbusy)", "Playback(vm-goodbye)"]
    assert took_s >= FALLBACK_TRIES * FALLBACK_WAIT_S
    assert live.records(run, expected=0, timeout=0) == []  # no controller saw it


def _applications_until_gone(live: LiveStack, timeout: float) -> list[str]:
    """The prompts and music a caller's channel plays, in order, polled from `core show
    channels concise` until the channel is gone (the instant steps between them — Stasis,
    Set, Answer, GotoIf — are left out)."""
    seen: list[str] = []
    last = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = live.stack.asterisk_cli("core show channels concise").splitlines()
        mine = [line.split("!") for line in lines if line.startswith("PJSIP/callers")]
        if not mine and seen:
            return seen
        if mine:
            step = f"{mine[0][5]}({mine[0][6]})"
            if step != last and step.startswith(("Playback(", "MusicOnHold(")):
                seen.append(step)
            last = step
        time.sleep(0.1)
    raise AssertionError(f"the caller's channel was still up after {timeout} s: {seen}")


def test_a_cut_ari_websocket_is_resynced_with_no_call_lost_or_doubled(live: LiveStack) -> None:
    run = live.next_run()
    health = live.stack.controller_health
    log = live.config.run_dir / "log" / "controller.log"
    before_health, before_metrics = health(), live.metrics()
    refusals = StasisRefusals(live)
    phones = live.agents("answer", talk_ms=6_000).start()
    try:
        # Callers keep coming across the cut: some reach Stasis while the link is down
        # (the fallback holds them) or just as it comes back (adopted by the resync).
        callers = live.caller(run, calls=16, rate=4, limit=16).start()
        assert wait_until(lambda: health()["agents"].get("busy") == len(AGENTS), 15), health()
        assert wait_until(lambda: health()["waiting"] >= 2, 10), health()
        at_cut = live.records(run, expected=0, timeout=0)
        port = [line for line in read_log(log) if line.event == "ari.link_up"][-1]
        cut_at = time.time()
        _cut(int(port.fields["local_port"]), live.config.asterisk.http_port)
        assert wait_until(lambda: health()["ari_reconnects"] > before_health["ari_reconnects"], 15)
        assert wait_until(lambda: health()["ari"], 15)
        back_at = time.time()
        stats = callers.wait(timeout=90)
    finally:
        phones.stop()
    assert (stats.successful, stats.failed) == (16, 0), callers.errors()
    records = live.records(run, expected=16)
    assert len(records) == 16
    assert [r["outcome"] for r in records] == ["completed"] * 16
    _one_record_per_caller(records)

    by_id = {r["id"]: r for r in records}
    talking = [r for r in at_cut if r["state"] == "connected"]
    for old in talking:  # talks went on across the cut
        new = by_id[old["id"]]
        assert (new["connected_at"], new["hangup_by"]) == (old["connected_at"], "agent")
    waiting = sorted(
        (r for r in at_cut if r["state"] == "waiting"), key=lambda r: (r["arrived_at"], r["id"])
    )
    offered = [by_id[r["id"]]["attempts"][0]["at"] for r in waiting]
    assert offered == sorted(offered), "waiting callers were offered out of arrival order"

    metrics = live.metrics()
    reconnects = 'ccserver_link_reconnects_total{link="ari"}'
    resyncs = "ccserver_resync_seconds_count"
    assert metrics[reconnects] == health()["ari_reconnects"] > before_metrics[reconnects]
    assert metrics[resyncs] > before_metrics[resyncs]

    after = [line for line in read_log(log) if line.at >= cut_at]
    events = [line.event for line in after]
    assert "ari.link_down" in events and "calls.resynced" in events
    assert events.index("ari.link_down") < events.index("calls.resynced")
    down = next(line for line in after if line.event == "ari.link_down")
    resynced = next(line for line in after if line.event == "calls.resynced")
    adopted = sum(int(x.fields.get("adopted", 0)) for x in after if x.event == "calls.resynced")
    assert resynced.at - down.at <= RESYNC_AFTER_CUT_S
    print(
        f"websocket cut: link down seen {down.at - cut_at:.2f} s after the cut, resynced "
        f"{resynced.at - cut_at:.2f} s after it (resync {resynced.fields['ms']} ms, "
        f"{adopted} adopted); healthy again within {back_at - cut_at:.2f} s; "
        f"{refusals.count()} Stasis entries refused meanwhile (held by the fallback)"
    )


def _cut(local_port: int, http_port: int) -> None:
    """Abort the controller's event websocket (and only it) as a broken network would: the
    kernel kills the socket and the peer gets a reset; Asterisk itself runs on."""
    result = subprocess.run(
        ["ss", "-K", "-tn", f"sport = :{local_port} and dport = :{http_port}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    assert result.returncode == 0, result.stderr
    assert f":{local_port}" in result.stdout, f"no socket was cut: {result.stdout}"
