"""A roster of named agents: who works which shift on which day, so that the requirement
per interval and skill is met within the labour rules (the problem: `roster_spec.py`).

The model is solved by OR-Tools' CP-SAT. Variables: `x[a, d, v]` — agent `a` works shift
variant `v` (a template with one start time and one lunch position) on day `d`; at each
interval the agents at work of each skill set are shared out among their skills. Hard rules
(Q/CSG22111-2010 §5.2 and Appendix B as the input states them):
- at most one shift a day, only on days the agent is available, no longer than
  `max_hours_day`;
- paid hours per week (the period's 7-day blocks) at most `max_hours_week` and the
  contract's hours, at least the contract's hours minus `contract_slack_h` (pro rata for
  days the agent is away and for a last, shorter week);
- at least `min_rest_h` between the end of one shift and the start of the next;
- at most `max_days_in_7` days worked in any 7 consecutive days (at least one day off);
- at most `max_consecutive_days` days in a row;
- at most `max_night_shifts_week` night shifts a week.

The objective is, in this order of weight, the least under-staffing (agent-intervals short
of the requirement), then the least over-staffing, then the fewest preference violations
(working on a preferred day off, working a shift template not preferred): an interval short
costs as much as a hundred over.

When the rules cannot all hold (e.g. a contract of more hours than the weekly maximum),
the model is solved again with one assumption literal per rule and agent, and CP-SAT's
sufficient assumptions name the rules that bind together (`Roster.binding`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import replace

from ortools.sat.python import cp_model

from ccserver.errors import InputError
from ccserver.workforce.roster_spec import (
    DAY_MIN,
    AgentSpec,
    Requirement,
    Roster,
    RosterInput,
    Shift,
    clashes,
    variants,
    week_bounds,
)

Expr = cp_model.LinearExpr | int
"""A linear expression of the model (numpy integers kept out, for the type checker)."""
UNDER_WEIGHT = 10_000
OVER_WEIGHT = 100
PREFERENCE_WEIGHT = 1


def _total(terms: Iterable[Expr]) -> cp_model.LinearExpr:
    return cp_model.LinearExpr.sum(list(terms))


class _Plan:
    """How many agents of each skill set work each variant each day (no names yet): a
    small model whose coverage is the requirement's, bounded by what the agents of each
    set can give (days, hours and nights a week, rest between days). `_Model` then puts
    named agents on it."""

    def __init__(self, spec: RosterInput, required: Requirement) -> None:
        self.model = cp_model.CpModel()
        self.variants = variants(spec.templates, spec.interval_min)
        self.y: dict[tuple[int, int, tuple[str, ...]], cp_model.IntVar] = {}
        per_day = DAY_MIN // spec.interval_min
        longest = spec.rules.max_hours_day * 60
        working: dict[tuple[int, tuple[str, ...]], list[Expr]] = defaultdict(list)
        for group in sorted({a.skills for a in spec.agents}):
            members = [a for a in spec.agents if a.skills == group]
            for d in range(spec.days):
                present = sum(1 for a in members if spec.day(d) not in a.unavailable)
                for v, variant in enumerate(self.variants):
                    if present and variant.paid_min <= longest:
                        y = self.model.new_int_var(0, present, f"y{d}_{v}_{group}")
                        self.y[(d, v, group)] = y
                        for offset in variant.intervals(spec.interval_min):
                            working[(d * per_day + offset, group)].append(y)
                self.model.add(_total(self._on(d, group)) <= present)
            self._limits(spec, group, members)
        self.cover = _Cover(self.model, working, required, len(spec.agents))
        self.model.minimize(self.cover.cost())

    def _on(
        self, d: int, group: tuple[str, ...], night: bool | None = None
    ) -> list[cp_model.IntVar]:
        return [
            y
            for (day, v, g), y in self.y.items()
            if day == d and g == group and (night is None or self.variants[v].night == night)
        ]

    def _limits(self, spec: RosterInput, group: tuple[str, ...], members: list[AgentSpec]) -> None:
        rules = spec.rules
        for week in spec.weeks():
            bounds = [week_bounds(spec, a, week) for a in members]
            minutes = sum(
                self.variants[v].paid_min * y
                for (d, v, g), y in self.y.items()
                if g == group and d in week
            )
            self.model.add(minutes <= sum(most for _, most in bounds))
            self.model.add(minutes >= sum(least for least, _ in bounds))
            days = sum(_total(self._on(d, group)) for d in week)
            most_days = min(rules.max_days_in_7, len(week))
            self.model.add(days <= most_days * len(members))
            nights = sum(_total(self._on(d, group, night=True)) for d in week)
            self.model.add(nights <= rules.max_night_shifts_week * len(members))
        for d in range(spec.days - 1):
            for v1, first in enumerate(self.variants):
                late = self.y.get((d, v1, group))
                if late is None:
                    continue
                early = [
                    y
                    for v2, second in enumerate(self.variants)
                    if clashes(first, second, rules.min_rest_h)
                    and (y := self.y.get((d + 1, v2, group))) is not None
                ]
                if early:
                    self.model.add(late + sum(early) <= len(members))

    def solve(
        self, time_limit_s: float, workers: int
    ) -> dict[tuple[int, int, tuple[str, ...]], int]:
        solver = _solver(time_limit_s, workers)
        if solver.solve(self.model) not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return {}
        return {key: int(solver.value(y)) for key, y in self.y.items() if solver.value(y)}


class _Model:
    """The CP-SAT model of one roster problem; `diagnose` puts every hard rule behind an
    assumption literal (per rule and agent) so that an infeasible core can be named."""

    def __init__(
        self,
        spec: RosterInput,
        required: Requirement,
        *,
        diagnose: bool = False,
        plan: Mapping[tuple[int, int, tuple[str, ...]], int] | None = None,
    ) -> None:
        """With `plan` (agents per day, variant and skill set, from `_Plan`), agents are
        put on the planned shifts (missing or extra ones cost) instead of being weighed
        against the requirement interval by interval."""
        self.spec, self.required, self.diagnose = spec, required, diagnose
        self.model = cp_model.CpModel()
        self.variants = variants(spec.templates, spec.interval_min)
        self.rule_literals: dict[str, cp_model.IntVar] = {}
        self.x: dict[tuple[int, int, int], cp_model.IntVar] = {}
        self.preferences: list[Expr] = []
        for a, agent in enumerate(spec.agents):
            self._agent(a, agent)
        self.cover = _Cover(self.model, self._working(), required, len(spec.agents))
        if plan is None:
            self.model.minimize(self.cover.cost() + PREFERENCE_WEIGHT * _total(self.preferences))
        else:
            self.model.minimize(self._follow(plan) + PREFERENCE_WEIGHT * _total(self.preferences))

    def _working(self) -> dict[tuple[int, tuple[str, ...]], list[Expr]]:
        per_day = DAY_MIN // self.spec.interval_min
        working: dict[tuple[int, tuple[str, ...]], list[Expr]] = defaultdict(list)
        for (a, d, v), var in self.x.items():
            skills = self.spec.agents[a].skills
            for offset in self.variants[v].intervals(self.spec.interval_min):
                working[(d * per_day + offset, skills)].append(var)
        return working

    def _follow(self, plan: Mapping[tuple[int, int, tuple[str, ...]], int]) -> Expr:
        """The cost of straying from the plan: a planned shift nobody works costs as much
        as its intervals short; an extra one (to reach an agent's contract hours) less."""
        taken: dict[tuple[int, int, tuple[str, ...]], list[cp_model.IntVar]] = defaultdict(list)
        for (a, d, v), var in self.x.items():
            taken[(d, v, self.spec.agents[a].skills)].append(var)
        cost: list[Expr] = []
        for key in set(taken) | set(plan):
            d, v, _ = key
            size = len(self.variants[v].intervals(self.spec.interval_min))
            missing = self.model.new_int_var(0, plan.get(key, 0), f"missing{key}")
            extra = self.model.new_int_var(0, len(taken.get(key, [])), f"extra{key}")
            self.model.add(_total(taken.get(key, [])) + missing - extra == plan.get(key, 0))
            cost += [UNDER_WEIGHT * size * missing, OVER_WEIGHT * size * extra]
        return _total(cost)

    def _enforced(self, rule: str, agent: AgentSpec, constraint: cp_model.Constraint) -> None:
        if self.diagnose:
            constraint.only_enforce_if(self._literal(f"{rule} (agent {agent.id})"))

    def _literal(self, name: str) -> cp_model.IntVar:
        if name not in self.rule_literals:
            self.rule_literals[name] = self.model.new_bool_var(name)
        return self.rule_literals[name]

    def _agent(self, a: int, agent: AgentSpec) -> None:
        spec, rules = self.spec, self.spec.rules
        longest = rules.max_hours_day * 60
        works: list[Expr] = []
        by_variant: list[list[Expr]] = []
        for d in range(spec.days):
            day_terms: list[cp_model.IntVar] = []
            per_variant: list[Expr] = []
            away = spec.day(d) in agent.unavailable
            for v, variant in enumerate(self.variants):
                if away or variant.paid_min > longest:
                    per_variant.append(0)
                    continue
                var = self.model.new_bool_var(f"x{a}_{d}_{v}")
                self.x[(a, d, v)] = var
                per_variant.append(var)
                day_terms.append(var)
                liked = (
                    not agent.preferred_templates or variant.template in agent.preferred_templates
                )
                if not liked:
                    self.preferences.append(var)
            self.model.add_at_most_one(day_terms)
            works.append(_total(day_terms))
            by_variant.append(per_variant)
            if spec.day(d).weekday() in agent.preferred_days_off:
                self.preferences.append(_total(day_terms))
        self._weekly(a, agent, by_variant)
        self._rest(agent, by_variant)
        for size, most, rule in (
            (7, rules.max_days_in_7, "a day off in 7"),
            (rules.max_consecutive_days + 1, rules.max_consecutive_days, "max consecutive days"),
        ):
            for first in range(0, spec.days - size + 1):
                self._enforced(
                    rule, agent, self.model.add(_total(works[first : first + size]) <= most)
                )

    def _weekly(self, a: int, agent: AgentSpec, by_variant: list[list[Expr]]) -> None:
        spec, rules = self.spec, self.spec.rules
        for week in spec.weeks():
            minutes = sum(
                self.variants[v].paid_min * by_variant[d][v]
                for d in week
                for v in range(len(self.variants))
            )
            least, most = week_bounds(spec, agent, week)
            self._enforced("max hours a week", agent, self.model.add(minutes <= most))
            self._enforced("contract hours", agent, self.model.add(minutes >= least))
            nights = sum(
                by_variant[d][v] for d in week for v, var in enumerate(self.variants) if var.night
            )
            self._enforced(
                "night shifts a week", agent, self.model.add(nights <= rules.max_night_shifts_week)
            )

    def _rest(self, agent: AgentSpec, by_variant: list[list[Expr]]) -> None:
        for d in range(self.spec.days - 1):
            for v1, first in enumerate(self.variants):
                clash = [
                    by_variant[d + 1][v2]
                    for v2, second in enumerate(self.variants)
                    if clashes(first, second, self.spec.rules.min_rest_h)
                ]
                if clash:
                    constraint = self.model.add(by_variant[d][v1] + _total(clash) <= 1)
                    self._enforced("rest between shifts", agent, constraint)


class _Cover:
    """Coverage of the requirement per interval and skill. The agents at work of each
    skill set are shared out among their skills interval by interval (`shares`: a
    multi-skilled agent takes whichever queue needs them); each skill's share meets its
    requirement, short (`under`) or over."""

    def __init__(
        self,
        model: cp_model.CpModel,
        working: Mapping[tuple[int, tuple[str, ...]], list[Expr]],
        required: Requirement,
        most: int,
    ) -> None:
        self.under: list[cp_model.IntVar] = []
        self.over: list[cp_model.IntVar] = []
        self.covered: dict[tuple[int, str], list[Expr]] = defaultdict(list)
        for (t, skills), present in working.items():
            if len(skills) == 1:
                self.covered[(t, skills[0])].append(_total(present))
                continue
            shares = [model.new_int_var(0, most, f"share{t}{k}") for k in skills]
            model.add(_total(shares) == _total(present))
            for skill, share in zip(skills, shares, strict=True):
                self.covered[(t, skill)].append(share)
        for key in set(self.covered) | set(required):
            need = int(required.get(key, 0))
            have = _total(self.covered.get(key, []))
            under = model.new_int_var(0, max(need, 0), f"under{key}")
            over = model.new_int_var(0, most, f"over{key}")
            model.add(have + under - over == need)
            self.under.append(under)
            self.over.append(over)

    def cost(self) -> Expr:
        return UNDER_WEIGHT * _total(self.under) + OVER_WEIGHT * _total(self.over)


def solve(
    spec: RosterInput, required: Requirement, *, time_limit_s: float = 60.0, workers: int = 2
) -> Roster:
    """The best roster found within about `time_limit_s`, in steps: a plan of how many
    agents of each skill set work each shift (a tenth of the time: it is small); named
    agents put on it within every rule (seven tenths: the hard part); that roster weighed
    interval by interval; then the whole model, started from it, looks for a better one in
    the time left (kept only when it is better). "optimal" when the last solve proves it."""
    if not spec.agents:
        raise InputError("no agents to roster")
    started = time.monotonic()
    plan = _Plan(spec, required).solve(time_limit_s * 0.1, workers)
    follow = _Model(spec, required, plan=plan)
    solver = _solver(time_limit_s * 0.7, workers)
    status = solver.solve(follow.model)
    if status == cp_model.INFEASIBLE:
        binding = _binding(spec, required, time_limit_s)
        return Roster("infeasible", (), 0, 0, 0, time.monotonic() - started, binding=binding)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return Roster("unknown", (), 0, 0, 0, time.monotonic() - started)
    chosen = {key for key, var in follow.x.items() if solver.boolean_value(var)}
    fixed = _Model(spec, required)
    for key, var in fixed.x.items():
        fixed.model.add(var == (key in chosen))
    solver = _solver(max(1.0, time_limit_s * 0.05), workers)
    best = _roster(spec, fixed, solver, solver.solve(fixed.model), started, proven=False)
    remaining = time_limit_s - (time.monotonic() - started)
    if remaining < 1.0:
        return best
    full = _Model(spec, required)
    for key, var in full.x.items():
        full.model.add_hint(var, key in chosen)
    solver = _solver(remaining, workers)
    status = solver.solve(full.model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return best
    better = _roster(spec, full, solver, status, started, proven=True)
    kept = better if _cost(better) <= _cost(best) else best
    return replace(kept, solve_s=time.monotonic() - started)


def _cost(roster: Roster) -> int:
    return (
        UNDER_WEIGHT * roster.under
        + OVER_WEIGHT * roster.over
        + PREFERENCE_WEIGHT * roster.preference_violations
    )


def _roster(
    spec: RosterInput,
    built: _Model,
    solver: cp_model.CpSolver,
    status: cp_model.CpSolverStatus,
    started: float,
    *,
    proven: bool,
) -> Roster:
    shifts = tuple(
        Shift(spec.agents[a].id, d, spec.agents[a].skills, built.variants[v])
        for (a, d, v), var in built.x.items()
        if solver.boolean_value(var)
    )
    covered = {
        key: sum(int(solver.value(term)) for term in terms)
        for key, terms in built.cover.covered.items()
    }
    return Roster(
        "optimal" if proven and status == cp_model.OPTIMAL else "feasible",
        tuple(sorted(shifts, key=lambda s: (s.agent, s.day))),
        under=sum(int(solver.value(u)) for u in built.cover.under),
        over=sum(int(solver.value(o)) for o in built.cover.over),
        preference_violations=sum(int(solver.value(p)) for p in built.preferences),
        solve_s=time.monotonic() - started,
        covered={k: v for k, v in covered.items() if v},
    )


def _solver(time_limit_s: float, workers: int) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = 0
    return solver


def _binding(spec: RosterInput, required: Requirement, time_limit_s: float) -> tuple[str, ...]:
    built = _Model(spec, required, diagnose=True)
    built.model.add_assumptions(list(built.rule_literals.values()))
    solver = _solver(time_limit_s, workers=1)  # sufficient assumptions need one worker
    if solver.solve(built.model) != cp_model.INFEASIBLE:
        return ("the rules only fail together with the time limit; give the solver more time",)
    core = solver.sufficient_assumptions_for_infeasibility()
    names = {built.model.proto.variables[i].name for i in core}
    return tuple(sorted(names))
