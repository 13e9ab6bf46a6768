"""The restart drill at load: `kill -9` the controller with 100 live calls (40 talking, 60
waiting), start it again, and nobody notices — waiting callers keep their order and are
connected, talks go on and are closed when the agent hangs up, SIPp sees no failed call —
and the controller is routing again within ROUTING_AGAIN_S of its start, measured on its own
log from `controller.starting` (the program loaded, its config read) to `calls.resynced`: the
test client's pace cannot move that figure. The time from the kernel starting the process
(interpreter and imports included) is printed beside it.

Just before the kill the controller is frozen (SIGSTOP) while a few more callers come in:
Asterisk hands them to the Stasis app (the websocket is still open) but their StasisStart is
never read. The restarted controller finds them with `GET /channels` and adopts them, behind
the callers who were already waiting."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ccserver.calls.center import PERSIST_COALESCE_S
from ccserver.loadtest import sipp
from ccserver.stack.procs import wait_until
from tests.integration.conftest import LiveStack, free_port, start_stack
from tests.integration.drill_log import LogLine, read_log

pytestmark = pytest.mark.integration

TALKING, WAITING, UNSEEN = 40, 60, 3
CALLS = TALKING + WAITING
AGENTS = [str(n) for n in range(2001, 2001 + TALKING)]
ROUTING_AGAIN_S = 2.0
"""The bound docs/emergency-plan.md states: controller start → routing again (resynced)."""
LONG_TALK_MS = 20_000  # the talks going on across the kill and the restart
SHORT_TALK_MS = 1_500  # the waiting callers' talks after it: the drill stays short

# agent_answer.xml with its one talk pause made conditional: the first TALKING calls the
# pool answers are the talks under way at the kill, every later one is short.
TALK_BY_CALL_NUMBER = f"""<nop>
    <action>
      <assignstr assign_to="number" value="[call_number]"/>
      <todouble assign_to="n" variable="number"/>
      <test assign_to="long" variable="n" compare="less_than_equal" value="{TALKING}"/>
    </action>
  </nop>
  <nop test="long" next="10"/>
  <pause milliseconds="{SHORT_TALK_MS}" next="11"/>
  <label id="10"/>
  <pause milliseconds="{LONG_TALK_MS}"/>
  <label id="11"/>"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    yield from start_stack(tmp_path_factory.mktemp("restart"), {"answer": AGENTS})


def _agent_pool(live: LiveStack) -> sipp.Sipp:
    template = (sipp.SCENARIOS / "agent_answer.xml").read_text(encoding="latin-1")
    assert template.count("<pause/>") == 1, "agent_answer.xml changed: adapt this drill"
    scenario = live.work / "agent_long_then_short.xml"
    scenario.parent.mkdir(parents=True, exist_ok=True)
    scenario.write_text(template.replace("<pause/>", TALK_BY_CALL_NUMBER), encoding="latin-1")
    # The talk audio the scenario streams (as `sipp.agents` writes it): 1 s of PCMU silence.
    (live.work / sipp.TALK_AUDIO).write_bytes(b"\xff" * 8000)
    return sipp.Sipp(
        str(scenario),
        work_dir=live.work,
        name="agents-drill",
        local_port=live.agent_ports["answer"],
        media_port=free_port(),
    )


def test_kill_9_with_40_talking_and_60_waiting_loses_nobody_and_routes_again(
    live: LiveStack,
) -> None:
    run = live.next_run()
    health = live.stack.controller_health
    phones = _agent_pool(live).start()
    try:
        callers = live.caller(run, calls=CALLS, rate=20, limit=CALLS).start()
        assert wait_until(lambda: health()["calls"] == CALLS, 30), health()
        assert wait_until(lambda: health()["agents"].get("busy") == TALKING, 15), health()
        assert wait_until(lambda: health()["waiting"] == WAITING, 15), health()
        # The ACD state follows each change within PERSIST_COALESCE_S; give the last one
        # its write, so that exactly the callers who come while it is frozen are unseen.
        time.sleep(PERSIST_COALESCE_S * 5)
        before = live.records(run, expected=0, timeout=0)
        pid = live.stack.controller.pid()
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        late_run = live.next_run()
        late = live.caller(late_run, calls=UNSEEN, rate=10, limit=UNSEEN).start()
        assert wait_until(lambda: late.stats().created == UNSEEN, 10)
        assert wait_until(lambda: _in_stasis(live) >= CALLS + UNSEEN, 10), _in_stasis(live)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.time()
        assert wait_until(lambda: live.stack.controller.pid() is None, 5)
        started_at = time.time()
        live.stack.up()  # the controller again; returns once ARI is up, i.e. resynced
        new_pid = live.stack.controller.pid()
        assert new_pid is not None
        spawned_at = _process_start(new_pid)
        back = health()
        assert (back["calls"], back["agents"].get("busy")) == (CALLS + UNSEEN, TALKING)
        assert wait_until(lambda: health()["waiting"] == WAITING + UNSEEN, 10), health()
        stats = callers.wait(timeout=150)
        late_stats = late.wait(timeout=30)
    finally:
        phones.stop()
    assert (stats.successful, stats.failed) == (CALLS, 0), callers.errors()
    assert (late_stats.successful, late_stats.failed) == (UNSEEN, 0), late.errors()
    records = live.records(run, expected=CALLS, timeout=30)
    unseen = live.records(late_run, expected=UNSEEN)
    for group, size in ((records, CALLS), (unseen, UNSEEN)):  # one record a caller, closed
        assert len({r["caller"] for r in group}) == len(group) == size
        assert [r["outcome"] for r in group] == ["completed"] * size

    talking = [r for r in before if r["state"] == "connected"]
    waiting = sorted(
        (r for r in before if r["state"] == "waiting"), key=lambda r: (r["arrived_at"], r["id"])
    )
    assert (len(talking), len(waiting)) == (TALKING, WAITING)
    by_id = {r["id"]: r for r in records}
    for old in talking:  # the talks went on across the restart and were closed at their end
        new = by_id[old["id"]]
        assert (new["connected_at"], new["agent"]) == (old["connected_at"], old["agent"])
        assert new["hangup_by"] == "agent"
        assert new["ended_at"] - new["connected_at"] >= LONG_TALK_MS / 1000 - 0.5
    offered = [by_id[r["id"]]["attempts"][0]["at"] for r in waiting]
    offered += [r["attempts"][0]["at"] for r in unseen]  # adopted: behind those waiting
    assert offered == sorted(offered), "waiting callers were offered out of arrival order"
    assert all(at > started_at for at in offered)

    figures = _routing_back(live.config.run_dir / "log" / "controller.log", started_at)
    first_offer = waiting[0]["id"]
    assert figures.first_offer.fields["call"] == first_offer, "the head of the queue goes first"
    print(
        f"restart drill ({CALLS} calls): spawn {started_at - killed_at:.2f} s after the kill; "
        f"ARI up {figures.link_up.at - started_at:.2f} s after spawn; resync "
        f"{figures.resynced.fields['ms']} ms ({figures.resynced.fields['calls']} calls); "
        f"routing again {figures.resynced.at - figures.starting.at:.2f} s after the controller "
        f"started ({figures.resynced.at - spawned_at:.2f} s after its process did, "
        f"{figures.resynced.at - killed_at:.2f} s after the kill); first agent free -> "
        f"offer {(figures.first_offer.at - figures.first_free.at) * 1000:.0f} ms; "
        f"{figures.resynced.fields['adopted']} unseen callers adopted"
    )
    assert int(figures.resynced.fields["adopted"]) == UNSEEN
    assert figures.resynced.at - figures.starting.at <= ROUTING_AGAIN_S


def _process_start(pid: int) -> float:
    """When the kernel started `pid`, in epoch seconds: /proc/<pid>/stat's starttime counts
    clock ticks since boot, the clock CLOCK_BOOTTIME reads."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    return time.time() - age


def _in_stasis(live: LiveStack) -> int:
    """Callers' channels Asterisk has in our Stasis app (`core show channels` lines)."""
    lines = live.stack.asterisk_cli("core show channels concise").splitlines()
    return sum(1 for line in lines if "PJSIP/callers" in line and "!Stasis!" in line)


class RoutingBack:
    """The restarted controller's first steps, from its own log."""

    def __init__(self, lines: list[LogLine]) -> None:
        def first(event: str, **match: str) -> LogLine:
            for line in lines:
                if line.event == event and all(line.fields.get(k) == v for k, v in match.items()):
                    return line
            raise AssertionError(f"no {event} {match} in the restarted controller's log")

        self.starting = first("controller.starting")
        self.link_up = first("ari.link_up")
        self.resynced = first("calls.resynced")
        self.first_free = first("call.ended", hangup_by="agent")
        self.first_offer = first("call.ringing")
        order = [self.starting, self.link_up, self.resynced, self.first_free, self.first_offer]
        assert [line.index for line in order] == sorted(line.index for line in order), order


def _routing_back(log: Path, started_at: float) -> RoutingBack:
    return RoutingBack([line for line in read_log(log) if line.at >= started_at])
