"""Validation and compilation of router input, shared by both twins (not on the hot path).

A queue definition is compiled into one list of skill groups per relaxation step; a group is
a tuple of (skill index, minimum level) pairs an agent must all meet.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from acd_core._types import (
    MAX_GROUP_SKILLS,
    MAX_GROUPS,
    MAX_LEVEL,
    MAX_SKILLS,
    MIN_LEVEL,
    STRATEGIES,
    RelaxStep,
    RouterError,
)

Group = tuple[tuple[int, int], ...]


class QueueSpec(NamedTuple):
    name: str
    skills: dict[str, int]
    strategy: str
    relaxation: tuple[RelaxStep, ...]
    wrap_up_s: float
    preferred_s: float
    aht_s: float
    step_after: tuple[float, ...]
    """`step_after[k]` is when step k+1 starts, in seconds since the call was queued."""
    step_groups: tuple[tuple[Group, ...], ...]
    """`step_groups[k]` are the groups accepted at step k (index 0 = no relaxation yet)."""


class SkillTable:
    """Skill names to dense indices, in order of first use."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.names: list[str] = []

    def get(self, name: str) -> int:
        idx = self.index.get(name)
        if idx is None:
            if not isinstance(name, str) or not name:
                raise RouterError(
                    "invalid-skill", f"a skill name must be a non-empty string: {name!r}"
                )
            if len(self.names) >= MAX_SKILLS:
                raise RouterError("too-many-skills", f"at most {MAX_SKILLS} skills")
            idx = len(self.names)
            self.index[name] = idx
            self.names.append(name)
        return idx


def _number(value: Any, what: str, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RouterError("invalid-number", f"{what} must be a finite number, not {value!r}")
    if value < minimum:
        raise RouterError("invalid-number", f"{what} must be >= {minimum}, not {value!r}")
    return float(value)


def check_time(value: Any, what: str = "now") -> float:
    """Times are finite floats (any epoch); the router never reads a clock itself."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RouterError(
            "invalid-time", f"{what} must be a finite number of seconds, not {value!r}"
        )
    return float(value)


def check_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise RouterError("invalid-id", f"{what} id must be a non-empty string, not {value!r}")
    return value


def check_levels(skills: Mapping[str, int], what: str) -> dict[str, int]:
    if not isinstance(skills, Mapping):
        raise RouterError("invalid-skills", f"{what}: skills must be a mapping name -> level")
    out: dict[str, int] = {}
    for name, level in skills.items():
        if isinstance(level, bool) or not isinstance(level, int):
            raise RouterError("invalid-level", f"{what}: level of {name!r} must be an integer")
        if not MIN_LEVEL <= level <= MAX_LEVEL:
            raise RouterError(
                "invalid-level",
                f"{what}: level of {name!r} is {level}, must be {MIN_LEVEL}..{MAX_LEVEL}",
            )
        out[check_id(name, "skill")] = level
    return out


def _group(skills: Mapping[str, int], table: SkillTable, what: str) -> Group:
    levels = check_levels(skills, what)
    if not levels:
        raise RouterError("invalid-skills", f"{what}: a skill group needs at least one skill")
    if len(levels) > MAX_GROUP_SKILLS:
        raise RouterError("queue-too-complex", f"{what}: at most {MAX_GROUP_SKILLS} skills a group")
    return tuple(sorted((table.get(name), level) for name, level in levels.items()))


def compile_queue(
    name: str,
    skills: Mapping[str, int],
    table: SkillTable,
    *,
    strategy: str,
    relaxation: Sequence[RelaxStep],
    wrap_up_s: float,
    preferred_s: float,
    aht_s: float,
) -> QueueSpec:
    check_id(name, "queue")
    if strategy not in STRATEGIES:
        raise RouterError(
            "invalid-strategy", f"queue {name!r}: strategy {strategy!r} is not one of {STRATEGIES}"
        )
    primary = _group(skills, table, f"queue {name!r}")
    groups: list[Group] = [primary]
    step_groups = [tuple(groups)]
    step_after: list[float] = []
    lowered = 0
    steps = tuple(RelaxStep(*step) for step in relaxation)
    for k, step in enumerate(steps, start=1):
        after = _number(step.after_s, f"queue {name!r} relaxation step {k} after_s")
        if after <= (step_after[-1] if step_after else 0.0):
            raise RouterError(
                "invalid-relaxation",
                f"queue {name!r}: relaxation step {k} must start later than the one before it",
            )
        if isinstance(step.lower_by, bool) or not isinstance(step.lower_by, int):
            raise RouterError("invalid-relaxation", f"queue {name!r}: lower_by must be an int")
        lowered += step.lower_by
        groups[0] = tuple((s, max(MIN_LEVEL, level - lowered)) for s, level in primary)
        for extra in step.add:
            groups.append(_group(extra, table, f"queue {name!r} relaxation step {k}"))
        if len(groups) > MAX_GROUPS:
            raise RouterError("queue-too-complex", f"queue {name!r}: at most {MAX_GROUPS} groups")
        step_after.append(after)
        step_groups.append(tuple(groups))
    return QueueSpec(
        name=name,
        skills=check_levels(skills, f"queue {name!r}"),
        strategy=strategy,
        relaxation=steps,
        wrap_up_s=_number(wrap_up_s, f"queue {name!r} wrap_up_s"),
        preferred_s=_number(preferred_s, f"queue {name!r} preferred_s"),
        aht_s=_number(aht_s, f"queue {name!r} aht_s", minimum=1e-9),
        step_after=tuple(step_after),
        step_groups=tuple(step_groups),
    )


def queue_config(spec: QueueSpec) -> dict[str, Any]:
    """The keyword arguments that rebuild `spec` with `define_queue` (used by snapshots)."""
    return {
        "name": spec.name,
        "skills": dict(spec.skills),
        "strategy": spec.strategy,
        "relaxation": [
            [step.after_s, step.lower_by, [dict(group) for group in step.add]]
            for step in spec.relaxation
        ],
        "wrap_up_s": spec.wrap_up_s,
        "preferred_s": spec.preferred_s,
    }


def relax_steps(raw: Sequence[Any]) -> list[RelaxStep]:
    """Snapshot form of a relaxation schedule back to RelaxSteps."""
    return [RelaxStep(float(a), int(b), tuple(dict(g) for g in c)) for a, b, c in raw]
