"""Random agent/call event sequences: both twins make the same decisions, refuse the same
requests, hold the same state — and the routing invariants always hold."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import acd_core
from acd_core import RelaxStep, RouterError
from tests import fuzzing
from tests.conftest import compiled_available

AGENTS = [f"a{i}" for i in range(7)]
SKILLS = ["power", "bill", "repair", "biz"]
QUEUES: dict[str, dict[str, Any]] = {
    "general": {"skills": {"power": 1}},
    "billing": {
        "skills": {"bill": 6},
        "strategy": "most-skilled",
        "relaxation": [RelaxStep(10.0, 3), RelaxStep(20.0, 0, ({"power": 5},))],
        "wrap_up_s": 3.0,
    },
    "repair": {
        "skills": {"repair": 4, "power": 2},
        "strategy": "least-calls",
        "relaxation": [RelaxStep(5.0, 2)],
        "preferred_s": 8.0,
    },
    "business": {"skills": {"biz": 8}, "preferred_s": 4.0, "wrap_up_s": 1.0},
}


def required(queue: str, step: int, group: int) -> dict[str, int]:
    """The levels an agent needs in `group` at relaxation `step` (from the contract)."""
    spec = QUEUES[queue]
    steps = spec.get("relaxation", [])[:step]
    if group == 0:
        lowered = sum(s.lower_by for s in steps)
        return {k: max(1, v - lowered) for k, v in spec["skills"].items()}
    added = [g for s in steps for g in s.add]
    return dict(added[group - 1]) if group <= len(added) else {}


# Every agent has some "power" level so that the general queue is often servable.
skill_sets = st.builds(
    lambda power, more: {"power": power, **more},
    st.integers(1, 10),
    st.dictionaries(st.sampled_from(SKILLS[1:]), st.integers(1, 10), max_size=3),
)


class TwinsMachine(RuleBasedStateMachine):
    @initialize(memory=st.sampled_from([0.0, 7.0, 30.0]))
    def start(self, memory: float) -> None:
        self.routers = [acd_core.load(t)(rona_memory_s=memory) for t in ("python", "cython")]
        for name, spec in QUEUES.items():
            spec = dict(spec)
            self.both("define_queue", name, spec.pop("skills"), **spec)
        self.now = 0.0
        self.next_call = 0

    def both(self, method: str, *args: Any, **kwargs: Any) -> Any:
        results = []
        for r in self.routers:
            try:
                results.append(("ok", getattr(r, method)(*args, **kwargs)))
            except RouterError as exc:
                results.append(("error", exc.slug))
        assert results[0] == results[1], (method, args, results)
        return results[0]

    @rule(dt=st.sampled_from([0.0, 0.5, 1.0, 2.5, 6.0, 15.0]))
    def advance(self, dt: float) -> None:
        self.now += dt
        self.dispatch()

    def agents_in(self, *states: str) -> list[str]:
        r = self.routers[0]
        return [a for a in r.agents() if r.agent(a).state in states] if states else AGENTS

    def calls_in(self, *states: str) -> list[str]:
        r = self.routers[0]
        return [c for c in r.calls() if r.call(c).state in states]

    @rule(data=st.data(), skills=skill_sets, ready=st.booleans())
    def login(self, data: st.DataObject, skills: dict[str, int], ready: bool) -> None:
        out = [a for a in AGENTS if a not in self.agents_in(*acd_core.AGENT_STATES[1:])]
        agent = data.draw(st.sampled_from(out or AGENTS))
        self.both("login", agent, skills, self.now, ready=ready)
        self.dispatch()

    @rule(data=st.data(), event=st.sampled_from(["logout", "ready", "not-ready", "skills"]))
    def agent_event(self, data: st.DataObject, event: str) -> None:
        candidates = {
            "logout": self.agents_in("ready", "not-ready", "wrap-up", "reserved", "busy"),
            "ready": self.agents_in("not-ready", "wrap-up"),
            "not-ready": self.agents_in("ready", "wrap-up"),
            "skills": self.agents_in("ready", "not-ready"),
        }[event] or AGENTS
        agent = data.draw(st.sampled_from(candidates))
        if event == "logout":
            self.both("logout", agent, self.now)
        elif event == "ready":
            self.both("set_ready", agent, self.now)
        elif event == "not-ready":
            self.both(
                "set_not_ready", agent, data.draw(st.sampled_from(["break", "lunch"])), self.now
            )
        else:
            self.both("set_skills", agent, data.draw(skill_sets))
        self.dispatch()

    @rule(data=st.data(), seconds=st.sampled_from([1.0, 4.0]))
    def extend(self, data: st.DataObject, seconds: float) -> None:
        agent = data.draw(st.sampled_from(self.agents_in("wrap-up") or AGENTS))
        self.both("extend_wrap_up", agent, seconds, self.now)
        self.dispatch()

    @rule(
        queue=st.sampled_from(sorted(QUEUES)),
        priority=st.integers(0, 2),
        back=st.sampled_from([None, 0.0, 30.0]),
        preferred=st.none() | st.sampled_from(AGENTS),
    )
    def enqueue(self, queue: str, priority: int, back: float | None, preferred: str | None) -> None:
        self.next_call += 1
        arrival = None if back is None else self.now - back
        self.both(
            "enqueue", f"c{self.next_call}", queue, self.now,
            priority=priority, arrival=arrival, preferred_agent=preferred,
        )  # fmt: skip
        self.dispatch()

    @precondition(lambda self: self.next_call > 0)
    @rule(data=st.data(), event=st.sampled_from(["remove", "answer", "reject", "complete"]))
    def call_event(self, data: st.DataObject, event: str) -> None:
        valid = {
            "remove": self.calls_in("waiting", "offered"),
            "answer": self.calls_in("offered"),
            "reject": self.calls_in("offered"),
            "complete": self.calls_in("connected"),
        }[event]
        anyone = [f"c{i}" for i in range(1, self.next_call + 1)]
        call = data.draw(st.sampled_from(valid or anyone))
        if event == "reject":
            agent = self.routers[0].call(call).agent if call in valid else AGENTS[0]
            self.both("reject", call, agent, self.now)
        elif event == "complete":
            self.both("complete", call, self.now, wrap_up_s=data.draw(st.sampled_from([None, 0.0])))
        else:
            self.both(event, call, self.now)
        self.dispatch()

    @rule()
    def dispatch(self) -> None:
        """What the controller does after every event: route whatever can be routed."""
        _, out = self.both("dispatch", self.now)
        agents = [a.agent for a in out]
        assert len(agents) == len(set(agents)), "an agent got two offers in one dispatch"
        r = self.routers[0]
        for a in out:
            skills = r.agent(a.agent).skills
            need = required(a.queue, a.step, a.group)
            assert all(skills.get(k, 0) >= v for k, v in need.items()), (a, skills)
            assert a.level == min(skills[k] for k in need)
        self.nobody_left_idle()

    def nobody_left_idle(self) -> None:
        """After a dispatch no waiting call could go to a ready agent it may be offered to."""
        snap = self.routers[0].snapshot()
        ready = [a for a in snap["agents"] if a["state"] == "ready"]
        for call in snap["calls"]:
            if call["state"] != "waiting":
                continue
            spec = QUEUES[call["queue"]]
            groups = [required(call["queue"], call["step"], g) for g in range(4)]
            preferred = next(
                (a for a in snap["agents"] if a["id"] == call["preferred_agent"]), None
            )
            pinned = (
                preferred is not None
                and preferred["state"] != "logged-out"
                and self.now < call["queued_at"] + spec.get("preferred_s", 0.0)
                and call["memory"].get(preferred["id"], self.now) <= self.now
            )
            for agent in ready:
                if pinned and agent is not preferred:
                    continue
                if call["memory"].get(agent["id"], self.now) > self.now:
                    continue
                for need in groups:
                    if need and all(agent["skills"].get(k, 0) >= v for k, v in need.items()):
                        raise AssertionError(f"{call['id']} waits while {agent['id']} is ready")

    @invariant()
    def same_state_and_consistent(self) -> None:
        if not hasattr(self, "routers"):
            return
        snaps = [r.snapshot() for r in self.routers]
        assert snaps[0] == snaps[1]
        assert self.both("next_timer")
        by_agent = {a["id"]: a for a in snaps[0]["agents"]}
        for call in snaps[0]["calls"]:
            if call["state"] in ("offered", "connected") and call["agent"] is not None:
                holder = by_agent[call["agent"]]
                assert holder["call"] == call["id"]
                assert holder["state"] == ("reserved" if call["state"] == "offered" else "busy")


TwinsMachine.TestCase.settings = settings(
    max_examples=300 * fuzzing.scale(),
    stateful_step_count=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_twins_make_the_same_decisions = pytest.mark.skipif(
    not compiled_available(), reason="needs both twins (make test builds the compiled one)"
)(TwinsMachine.TestCase)


class Tee:
    """Both twins behind one router interface: every call goes to both, results compared."""

    def __init__(self) -> None:
        self.twins = [acd_core.load(t)(rona_memory_s=120.0) for t in ("python", "cython")]

    def __getattr__(self, method: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            results = [getattr(r, method)(*args, **kwargs) for r in self.twins]
            assert results[0] == results[1], (method, args, results)
            return results[0]

        return call


@pytest.mark.skipif(not compiled_available(), reason="needs both twins (make test builds it)")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_twins_agree_through_a_simulated_hotline_day(seed: int) -> None:
    from tests.bench.workloads import Probe, center_day

    tee = Tee()
    outcome = center_day(Probe(tee), seed, agents=40, skills=6, queues=5, hours=3, load=1.1)
    assert outcome["offered"] > 500 and outcome["rona"] > 0 and outcome["abandoned"] > 0
    snaps = [r.snapshot() for r in tee.twins]
    assert snaps[0] == snaps[1]
