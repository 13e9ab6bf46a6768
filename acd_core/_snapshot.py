"""Snapshot and restore, shared by both twins: a router to a plain JSON-able dict and back.

The format is the same for both twins, so a snapshot taken by one restores into the other
and the restored router makes the same decisions as the original would have.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from acd_core._spec import queue_config, relax_steps
from acd_core._types import AgentView, CallView, RouterError

FORMAT = 1


def take(router: Any) -> dict[str, Any]:
    queues = []
    for name in router._queue_names():
        spec, aht, ewt = router._queue_state(name)
        queues.append({**queue_config(spec), "aht_s": aht, "ewt": list(ewt)})
    calls = []
    for call_id in router.calls():
        answered_at, memory = router._call_extra(call_id)
        calls.append(
            {**router.call(call_id)._asdict(), "answered_at": answered_at, "memory": memory}
        )
    clock = router.clock
    return {
        "format": FORMAT,
        "rona_memory_s": router.rona_memory_s,
        "clock": clock if math.isfinite(clock) else None,
        "queues": queues,
        "agents": [router.agent(agent_id)._asdict() for agent_id in router.agents()],
        "calls": calls,
    }


def load(router: Any, data: Mapping[str, Any]) -> None:
    if router.agents() or router.calls() or router._queue_names():
        raise RouterError("restore-not-empty", "restore() needs a router with no state yet")
    try:
        if data["format"] != FORMAT:
            raise RouterError("snapshot-invalid", f"unknown snapshot format {data['format']!r}")
        router.rona_memory_s = float(data["rona_memory_s"])
        if data["clock"] is not None:
            router.clock = float(data["clock"])
        for q in data["queues"]:
            router.define_queue(
                q["name"],
                q["skills"],
                strategy=q["strategy"],
                relaxation=relax_steps(q["relaxation"]),
                wrap_up_s=q["wrap_up_s"],
                preferred_s=q["preferred_s"],
                aht_s=q["aht_s"],
            )
            router._load_queue_state(q["name"], float(q["aht_s"]), q["ewt"])
        for a in data["agents"]:
            router._load_agent(AgentView(**a))
        for c in data["calls"]:
            extra = {"answered_at": float(c["answered_at"]), "memory": dict(c["memory"])}
            view = CallView(**{k: v for k, v in c.items() if k not in extra})
            router._load_call(view, extra["answered_at"], extra["memory"])
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, RouterError):
            raise
        raise RouterError("snapshot-invalid", f"snapshot cannot be restored: {exc!r}") from exc
