"""The digital twin against queueing theory, and what only the real router can show."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ccserver.cli import main
from ccserver.errors import InputError
from ccserver.workforce import erlang
from ccserver.workforce.simulate import QueueMix, SimConfig, Tally, simulate


def pooled(configs: list[SimConfig]) -> Tally:
    """Independent replications pooled: one long run's estimate with less autocorrelation."""
    total = Tally()
    for cfg in configs:
        t = simulate(cfg).total
        for name in ("offered", "answered", "abandoned", "within_target", "wait_sum_s"):
            setattr(total, name, getattr(total, name) + getattr(t, name))
    return total


def test_single_skill_mmn_matches_erlang_c() -> None:
    runs = [
        SimConfig(agents=14, rates_per_s=(10 / 180,), interval_s=1_500_000.0, seed=s)
        for s in range(1, 7)
    ]
    sim = pooled(runs)
    sl, asa = erlang.service_level(10, 14, 180, 20), erlang.asa(10, 14, 180)
    print(f"M/M/14 at 10 E: SL {sim.service_level():.4f} vs {sl:.4f}", end=", ")
    print(f"ASA {sim.asa():.2f} vs {asa:.2f}")
    assert abs(sim.service_level() - sl) <= 0.02
    assert abs(sim.asa() - asa) <= 0.05 * asa


def test_with_patience_matches_erlang_a() -> None:
    rate = 12 / 180
    runs = [
        SimConfig(agents=14, rates_per_s=(rate,), interval_s=1_500_000.0, patience_s=120.0, seed=s)
        for s in range(1, 7)
    ]
    sim = pooled(runs)
    a = erlang.erlang_a(rate, 180.0, 120.0, 14, 20.0)
    print(f"M/M/14+M at 12 E: SL {sim.service_level():.4f} vs {a.service_level:.4f}", end=", ")
    print(f"ASA {sim.asa():.2f} vs {a.asa:.2f}", end=", ")
    print(f"abandon {sim.abandon_rate():.4f} vs {a.p_abandon:.4f}")
    assert abs(sim.service_level() - a.service_level) <= 0.02
    assert abs(sim.asa() - a.asa) <= 0.05 * a.asa
    assert abs(sim.abandon_rate() - a.p_abandon) <= 0.01


def test_seeded_runs_are_reproducible_and_more_agents_never_worse() -> None:
    def run(agents: int) -> Tally:
        cfg = SimConfig(agents=agents, rates_per_s=(0.05, 0.08), patience_s=90.0, seed=3)
        return simulate(cfg).total

    assert run(14) == run(14)
    levels = [run(n).service_level() for n in (12, 14, 16, 18)]
    assert levels == sorted(levels)


def test_skills_and_rona_are_in_the_answer() -> None:
    """Same staff count: a queue only a few agents are skilled for suffers; RONA costs SL."""
    queues = (
        QueueMix("general", {"general": 1}, share=0.8),
        QueueMix("repair", {"repair": 5}, share=0.2),
    )
    skills = ({"general": 5},) * 4 + ({"general": 5, "repair": 6},)  # 1 agent in 5 does repair
    cfg = SimConfig(
        agents=20, rates_per_s=(0.08,) * 4, interval_s=3600.0, queues=queues,
        agent_skills=skills, patience_s=120.0, seed=5,
    )  # fmt: skip
    result = simulate(cfg)
    assert result.queues["repair"].service_level() < result.queues["general"].service_level()
    assert (
        len(result.intervals) == 4
        and sum(t.offered for t in result.intervals) == result.total.offered
    )
    ringing = SimConfig(agents=20, rates_per_s=(0.08,) * 4, interval_s=3600.0, ring_s=4.0, seed=5)
    clean = simulate(ringing)
    rona = simulate(dataclasses.replace(ringing, rona_prob=0.2))
    assert rona.total.service_level() < clean.total.service_level()


@pytest.mark.parametrize(
    "cfg",
    [
        SimConfig(agents=0, rates_per_s=(0.1,)),
        SimConfig(agents=3, rates_per_s=()),
        SimConfig(agents=3, rates_per_s=(-1.0,)),
        SimConfig(agents=3, rates_per_s=(0.1,), handle="uniform"),
        SimConfig(agents=3, rates_per_s=(0.1,), rona_prob=1.0),
        SimConfig(agents=3, rates_per_s=(0.1,), queues=(QueueMix("q", {"s": 11}),)),
    ],
)
def test_impossible_input_is_an_input_error(cfg: SimConfig) -> None:
    with pytest.raises(InputError):
        simulate(cfg)


def test_simulate_command_answers_the_license_question(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "--example", "95598", "--agents", "71", "112", "--format", "json"])
    assert code == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [r["agents"] for r in runs] == [71, 112]
    assert runs[1]["service_level"] > 0.8 > runs[0]["service_level"]
    assert main(["simulate", "--agents", "3"]) == 2
    assert "error[input-invalid]" in capsys.readouterr().err
