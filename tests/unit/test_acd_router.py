"""The routing contract of acd_core (its module docstring), run against both twins."""

from __future__ import annotations

import json
from typing import Any

import pytest

import acd_core
from acd_core import RelaxStep, RouterError


def make(router_cls: Any, **queues: dict[str, Any]) -> Any:
    r = router_cls(rona_memory_s=60.0)
    for name, spec in queues.items():
        spec = dict(spec)
        r.define_queue(name, spec.pop("skills"), **spec)
    return r


def pairs(assignments: list[acd_core.Assignment]) -> list[tuple[str, str]]:
    return [(a.call, a.agent) for a in assignments]


def test_implementation_flag_names_the_loaded_twin() -> None:
    assert acd_core.IMPLEMENTATION in ("python", "cython")
    assert acd_core.Router is acd_core.load(acd_core.IMPLEMENTATION)


def test_calls_go_to_the_longest_idle_qualified_agent(router_cls: Any) -> None:
    r = make(router_cls, billing={"skills": {"billing": 3}})
    r.login("a1", {"billing": 5}, 10.0)
    r.login("a2", {"billing": 5}, 5.0)
    r.login("a3", {"billing": 2}, 1.0)  # below the level: never offered
    r.login("a4", {"repair": 9}, 0.0)  # wrong skill
    r.enqueue("c1", "billing", 20.0)
    r.enqueue("c2", "billing", 21.0)
    r.enqueue("c3", "billing", 22.0)
    out = r.dispatch(22.0)
    assert pairs(out) == [("c1", "a2"), ("c2", "a1")]
    assert out[0].strategy == "longest-idle" and out[0].level == 5 and out[0].waited_s == 2.0
    assert r.agent("a2").state == "reserved" and r.call("c3").state == "waiting"
    assert r.dispatch(23.0) == []  # nobody else qualifies: c3 keeps waiting


def test_priority_then_original_arrival_then_id(router_cls: Any) -> None:
    r = make(router_cls, q={"skills": {"s": 1}})
    r.enqueue("late", "q", 10.0)
    r.enqueue("b-transfer", "q", 11.0, arrival=1.0)  # kept its original arrival
    r.enqueue("a-transfer", "q", 12.0, arrival=1.0)
    r.enqueue("vip", "q", 13.0, priority=5)
    for i in range(4):
        r.login(f"ag{i}", {"s": 1}, 14.0 + i)
    assert [a.call for a in r.dispatch(20.0)] == ["vip", "a-transfer", "b-transfer", "late"]


def test_a_call_nobody_can_take_does_not_block_the_calls_behind_it(router_cls: Any) -> None:
    r = make(router_cls, repair={"skills": {"repair": 8}}, general={"skills": {"general": 1}})
    r.enqueue("hard", "repair", 1.0, priority=9)
    r.enqueue("easy", "general", 2.0)
    r.login("a", {"general": 3, "repair": 4}, 3.0)
    assert pairs(r.dispatch(3.0)) == [("easy", "a")]


def test_strategies_most_skilled_and_least_calls(router_cls: Any) -> None:
    r = make(
        router_cls,
        skilled={"skills": {"x": 1, "y": 1}, "strategy": "most-skilled"},
        fair={"skills": {"x": 1}, "strategy": "least-calls"},
    )
    r.login("novice", {"x": 2, "y": 2}, 0.0)
    r.login("expert", {"x": 9, "y": 8}, 5.0)
    r.enqueue("c1", "skilled", 6.0)
    assert pairs(r.dispatch(6.0)) == [("c1", "expert")]
    r.answer("c1", 7.0)
    r.complete("c1", 8.0)  # expert: 1 call taken, ready again at 8.0
    r.enqueue("c2", "fair", 9.0)
    # novice has been idle longest anyway; make expert the longest idle to prove the rule
    r.set_not_ready("novice", "break", 9.0)
    r.set_ready("novice", 9.5)
    out = r.dispatch(10.0)
    assert pairs(out) == [("c2", "novice")] and out[0].strategy == "least-calls"


def test_relaxation_lowers_levels_and_adds_groups_over_time(router_cls: Any) -> None:
    r = make(
        router_cls,
        vip={
            "skills": {"billing": 8},
            "relaxation": [RelaxStep(30.0, lower_by=3), RelaxStep(60.0, add=({"general": 2},))],
        },
    )
    r.login("mid", {"billing": 5}, 0.0)
    r.login("generalist", {"general": 4}, 0.0)
    r.enqueue("c", "vip", 100.0)
    assert r.dispatch(100.0) == []
    assert r.next_timer() == 130.0
    assert r.dispatch(129.9) == []
    out = r.dispatch(130.0)
    assert pairs(out) == [("c", "mid")] and out[0].step == 1 and out[0].group == 0
    r.reject("c", "mid", 131.0)
    assert r.next_timer() == 160.0
    out = r.dispatch(160.0)
    assert pairs(out) == [("c", "generalist")]
    assert (out[0].step, out[0].group, out[0].level) == (2, 1, 4)


def test_rona_sets_not_ready_keeps_the_place_and_remembers(router_cls: Any) -> None:
    r = make(router_cls, q={"skills": {"s": 1}})
    r.login("a", {"s": 1}, 0.0)
    r.enqueue("first", "q", 1.0)
    r.enqueue("second", "q", 2.0)
    assert pairs(r.dispatch(2.0)) == [("first", "a")]
    r.reject("first", "a", 10.0)
    view = r.agent("a")
    assert (view.state, view.reason) == ("not-ready", "RONA")
    assert r.position("first") == 1 and r.position("second") == 2
    r.set_ready("a", 11.0)
    # "first" must not go back to "a" within the memory: "a" takes "second" meanwhile
    assert pairs(r.dispatch(11.0)) == [("second", "a")]
    r.answer("second", 12.0)
    r.complete("second", 13.0)
    assert r.dispatch(13.0) == []
    assert r.next_timer() == 70.0
    assert pairs(r.dispatch(70.0)) == [("first", "a")]


def test_preferred_agent_is_waited_for_then_released(router_cls: Any) -> None:
    r = make(router_cls, q={"skills": {"s": 1}, "preferred_s": 20.0})
    r.login("last", {"s": 1}, 0.0, ready=False)
    r.login("other", {"s": 1}, 0.0)
    r.enqueue("c", "q", 100.0, preferred_agent="last")
    assert r.dispatch(105.0) == []  # waits for "last" although "other" is ready
    r.set_ready("last", 106.0)
    out = r.dispatch(106.0)
    assert pairs(out) == [("c", "last")] and out[0].strategy == "preferred"
    r.enqueue("d", "q", 200.0, preferred_agent="last")  # "last" is busy now
    assert r.dispatch(219.0) == []
    assert r.next_timer() == 220.0
    assert pairs(r.dispatch(220.0)) == [("d", "other")]


def test_preferred_agent_logged_out_is_not_waited_for(router_cls: Any) -> None:
    r = make(router_cls, q={"skills": {"s": 1}, "preferred_s": 20.0})
    r.login("last", {"s": 1}, 0.0)
    r.logout("last", 1.0)
    r.login("other", {"s": 1}, 0.0)
    r.enqueue("c", "q", 100.0, preferred_agent="last")
    assert pairs(r.dispatch(100.0)) == [("c", "other")]


def test_wrap_up_ends_by_timer_and_can_be_extended(router_cls: Any) -> None:
    r = make(router_cls, q={"skills": {"s": 1}, "wrap_up_s": 15.0})
    r.login("a", {"s": 1}, 0.0)
    r.enqueue("c1", "q", 1.0)
    r.dispatch(1.0)
    r.answer("c1", 2.0)
    r.complete("c1", 10.0)
    assert r.agent("a").state == "wrap-up" and r.agent("a").wrap_until == 25.0
    assert r.extend_wrap_up("a", 5.0, 12.0) == 30.0
    r.enqueue("c2", "q", 20.0)
    assert r.dispatch(29.0) == [] and r.next_timer() == 30.0
    assert pairs(r.dispatch(30.0)) == [("c2", "a")]
    assert r.agent("a").last_ready == 30.0 and r.agent("a").calls_taken == 1


def test_caller_hanging_up_while_ringing_frees_the_agent_with_its_idle_time(
    router_cls: Any,
) -> None:
    r = make(router_cls, q={"skills": {"s": 1}})
    r.login("a", {"s": 1}, 3.0)
    r.enqueue("c", "q", 5.0)
    r.dispatch(5.0)
    assert r.remove("c", 6.0) == "a"
    view = r.agent("a")
    assert (view.state, view.last_ready, view.call) == ("ready", 3.0, None)
    with pytest.raises(RouterError) as err:
        r.call("c")
    assert err.value.slug == "unknown-call"


def test_logout_while_ringing_puts_the_call_back_in_place(router_cls: Any) -> None:
    r = make(router_cls, q={"skills": {"s": 1}})
    r.login("a", {"s": 1}, 0.0)
    r.enqueue("c1", "q", 1.0)
    r.enqueue("c2", "q", 2.0)
    r.dispatch(2.0)
    assert r.logout("a", 3.0) == "c1"
    r.login("b", {"s": 1}, 4.0)
    assert pairs(r.dispatch(4.0)) == [("c1", "b")]


def test_expected_wait_quotes_and_measures_its_error(router_cls: Any) -> None:
    r = make(router_cls, q={"skills": {"s": 1}, "aht_s": 100.0})
    r.login("a", {"s": 1}, 0.0)
    r.login("b", {"s": 1}, 0.0)
    assert r.enqueue("c1", "q", 1.0) == 0.0  # an agent is ready
    r.dispatch(1.0)
    r.enqueue("c2", "q", 1.0)
    r.dispatch(1.0)
    assert r.expected_wait("q") == 50.0  # both busy: 1 × 100 s / 2 agents
    assert r.enqueue("c3", "q", 2.0) == 50.0
    assert r.enqueue("c4", "q", 2.0) == 100.0
    assert r.enqueue("vip", "q", 2.0, priority=1) == 50.0
    r.answer("c1", 2.0)
    r.complete("c1", 42.0)  # handle time 40 s: AHT moves 10 % of the way
    out = r.dispatch(42.0)
    assert pairs(out) == [("vip", "a")]
    r.answer("vip", 43.0)  # quoted 50, waited 41 -> error -9; c1: quoted 0, waited 1
    assert r.ewt_stats("q") == (2, -4.0, 5.0)


def test_invariants_no_double_offer_and_no_underqualified_agent(router_cls: Any) -> None:
    r = make(router_cls, q={"skills": {"s": 4}}, p={"skills": {"s": 2, "t": 2}})
    for i in range(10):
        r.login(f"a{i}", {"s": i + 1, "t": 10 - i}, float(i))
    for i in range(30):
        r.enqueue(f"c{i}", "q" if i % 2 else "p", 10.0 + i)
    out = r.dispatch(50.0)
    agents = [a.agent for a in out]
    assert len(agents) == len(set(agents))
    for a in out:
        skills = r.agent(a.agent).skills
        need = {"q": {"s": 4}, "p": {"s": 2, "t": 2}}[a.queue]
        assert all(skills.get(k, 0) >= v for k, v in need.items())


@pytest.mark.parametrize(
    ("call", "slug"),
    [
        (lambda r: r.define_queue("x", {"s": 11}), "invalid-level"),
        (lambda r: r.define_queue("x", {}), "invalid-skills"),
        (lambda r: r.define_queue("x", {"s": 1}, strategy="random"), "invalid-strategy"),
        (
            lambda r: r.define_queue("x", {"s": 1}, relaxation=[RelaxStep(9), RelaxStep(5)]),
            "invalid-relaxation",
        ),
        (lambda r: r.login("a", {"s": 0}, 0.0), "invalid-level"),
        (lambda r: r.enqueue("c", "nowhere", 0.0), "unknown-queue"),
        (lambda r: r.enqueue("c", "q", float("nan")), "invalid-time"),
        (lambda r: r.set_ready("ghost", 0.0), "unknown-agent"),
        (lambda r: r.answer("ghost", 0.0), "unknown-call"),
        (lambda r: (r.enqueue("c", "q", 0.0), r.enqueue("c", "q", 1.0)), "duplicate-call"),
        (lambda r: (r.login("a", {"s": 1}, 0.0), r.login("a", {"s": 1}, 0.0)), "agent-logged-in"),
        (lambda r: (r.enqueue("c", "q", 0.0), r.answer("c", 1.0)), "invalid-state"),
    ],
)
def test_bad_requests_raise_router_errors_with_slugs(router_cls: Any, call: Any, slug: str) -> None:
    r = make(router_cls, q={"skills": {"s": 1}})
    with pytest.raises(RouterError) as err:
        call(r)
    assert err.value.slug == slug


def busy_router(router_cls: Any) -> Any:
    r = make(
        router_cls,
        q={"skills": {"s": 3}, "relaxation": [RelaxStep(30.0, 2)], "wrap_up_s": 10.0},
        p={"skills": {"t": 1}, "preferred_s": 50.0, "strategy": "least-calls"},
    )
    r.login("a", {"s": 5, "t": 1}, 0.0)
    r.login("b", {"s": 1}, 1.0)
    r.login("c", {"t": 2}, 2.0, ready=False)
    for i in range(6):
        r.enqueue(f"q{i}", "q", 10.0 + i, priority=i % 2)
    r.enqueue("p0", "p", 12.0, preferred_agent="c")
    r.dispatch(12.0)
    r.answer("q1", 13.0)
    return r


@pytest.mark.parametrize("target", ["python", "cython"])
def test_snapshot_round_trips_through_json_into_either_twin(router_cls: Any, target: str) -> None:
    from tests.conftest import compiled_available

    if target == "cython" and not compiled_available():
        pytest.skip("acd_core._router is not compiled here (make test requires it)")
    r = busy_router(router_cls)
    data = json.loads(json.dumps(r.snapshot()))
    other = acd_core.load(target)()
    other.restore(data)
    assert other.snapshot() == data
    for router in (r, other):
        router.complete("q1", 20.0)
        router.set_ready("c", 21.0)
    assert pairs(other.dispatch(45.0)) == pairs(r.dispatch(45.0))
    assert other.snapshot() == r.snapshot()


def test_restore_refuses_a_router_with_state_and_a_broken_snapshot(router_cls: Any) -> None:
    r = make(router_cls, q={"skills": {"s": 1}})
    with pytest.raises(RouterError) as err:
        r.restore(r.snapshot())
    assert err.value.slug == "restore-not-empty"
    with pytest.raises(RouterError) as err:
        router_cls().restore({"format": 1, "queues": "nope"})
    assert err.value.slug == "snapshot-invalid"
