"""The pure-Python router: the reference twin of `_router.pyx` (see `acd_core` for the contract).

Bitsets are Python ints (bit i = agent index i): one per (skill, level) holding the agents at
that level or above, one for the ready agents and one for the staffed agents. Waiting calls
sit in one heap per (queue, relaxation step) — a "class" whose calls all accept the same
agents — so a dispatch looks at class heads, not at every call.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from typing import Any

from acd_core import _snapshot
from acd_core._spec import (
    QueueSpec,
    SkillTable,
    check_id,
    check_levels,
    check_time,
    compile_queue,
)
from acd_core._types import (
    AGENT_STATES,
    AHT_ALPHA,
    CALL_STATES,
    MAX_LEVEL,
    AgentView,
    Assignment,
    CallView,
    EwtStats,
    RelaxStep,
    RouterError,
)

LOGGED_OUT, READY, RESERVED, BUSY, WRAP_UP, NOT_READY = range(6)
WAITING, OFFERED, CONNECTED, GONE = range(4)
T_RELAX, T_UNPIN, T_WRAP, T_MEMORY = range(4)


class _Agent:
    __slots__ = (
        "call", "calls", "gen", "id", "idx", "last_ready", "levels", "reason", "state",
        "wrap_until",
    )  # fmt: skip

    def __init__(self, agent_id: str, idx: int) -> None:
        self.id = agent_id
        self.idx = idx
        self.levels: dict[int, int] = {}
        self.state = LOGGED_OUT
        self.reason: str | None = None
        self.last_ready = 0.0
        self.calls = 0
        self.call: _Call | None = None
        self.wrap_until = 0.0
        self.gen = 0  # bumped on every state change; stale wrap-up timers compare it


class _Call:
    __slots__ = (
        "agent", "answered_at", "arrival", "cls", "ewt", "gen", "id", "memory", "pinned",
        "preferred", "priority", "queue", "queued_at", "state", "step",
    )  # fmt: skip

    def __init__(self, call_id: str, queue: _Queue, priority: int, arrival: float, now: float):
        self.id = call_id
        self.queue = queue
        self.priority = priority
        self.arrival = arrival
        self.queued_at = now
        self.preferred: _Agent | None = None
        self.state = WAITING
        self.agent: _Agent | None = None
        self.step = 0
        self.cls: _Class | None = None
        self.pinned = False
        self.memory: dict[int, float] = {}
        self.ewt = 0.0
        self.answered_at = 0.0
        self.gen = 0  # bumped on every (re)filing; stale relax/unpin timers compare it

    def key(self) -> tuple[int, float, str]:
        return (-self.priority, self.arrival, self.id)


class _Class:
    """The waiting calls of one queue at one relaxation step, in service order."""

    __slots__ = ("groups", "heap", "queue", "step")

    def __init__(self, queue: _Queue, step: int, groups: tuple[Any, ...]) -> None:
        self.queue = queue
        self.step = step
        self.groups = groups
        self.heap: list[tuple[tuple[int, float, str], _Call]] = []

    def head(self) -> _Call | None:
        """The first live call, dropping entries of calls that left this class."""
        heap = self.heap
        while heap:
            call = heap[0][1]
            if call.state == WAITING and call.cls is self and not call.pinned:
                return call
            heapq.heappop(heap)
        return None


class _Queue:
    __slots__ = ("aht", "by_priority", "classes", "ewt_abs", "ewt_n", "ewt_sum", "spec")

    def __init__(self, spec: QueueSpec) -> None:
        self.spec = spec
        self.aht = spec.aht_s
        self.classes = [_Class(self, k, g) for k, g in enumerate(spec.step_groups)]
        self.by_priority: dict[int, int] = {}
        self.ewt_n = 0
        self.ewt_sum = 0.0
        self.ewt_abs = 0.0


def _bits(mask: int) -> list[int]:
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


class Router:
    """Skill-based router, pure Python. See the `acd_core` module docstring for the contract."""

    def __init__(self, *, rona_memory_s: float = 300.0) -> None:
        self.rona_memory_s = float(rona_memory_s)
        self._skills = SkillTable()
        self._queues: dict[str, _Queue] = {}
        self._agents: dict[str, _Agent] = {}
        self._by_idx: list[_Agent] = []
        self._calls: dict[str, _Call] = {}
        self._classes: list[_Class] = []  # every queue's classes, in definition order
        self._pinned: set[_Call] = set()
        self._level_bits: list[list[int]] = []  # [skill][level] -> agents at level or above
        self._ready = 0
        self._staffed = 0
        self._waiting = 0
        self._timers: list[tuple[float, int, int, Any, int]] = []
        self._seq = 0
        self.clock = float("-inf")

    # ---- configuration -------------------------------------------------------------------

    def define_queue(
        self,
        name: str,
        skills: Mapping[str, int],
        *,
        strategy: str = "longest-idle",
        relaxation: Sequence[RelaxStep] = (),
        wrap_up_s: float = 0.0,
        preferred_s: float = 0.0,
        aht_s: float = 180.0,
    ) -> None:
        spec = compile_queue(
            name, skills, self._skills, strategy=strategy, relaxation=relaxation,
            wrap_up_s=wrap_up_s, preferred_s=preferred_s, aht_s=aht_s,
        )  # fmt: skip
        while len(self._level_bits) < len(self._skills.names):
            self._level_bits.append([0] * (MAX_LEVEL + 1))
        old = self._queues.get(name)
        queue = _Queue(spec)
        self._queues[name] = queue
        self._classes = [cls for q in self._queues.values() for cls in q.classes]
        if old is not None:
            queue.aht = old.aht
            queue.ewt_n, queue.ewt_sum, queue.ewt_abs = old.ewt_n, old.ewt_sum, old.ewt_abs
            for call in self._calls.values():
                if call.queue is old:
                    call.queue = queue
                    if call.state == WAITING:
                        queue.by_priority[call.priority] = (
                            queue.by_priority.get(call.priority, 0) + 1
                        )
                        self._file(call, self.clock)

    # ---- agents -----------------------------------------------------------------------------

    def login(
        self, agent: str, skills: Mapping[str, int], now: float, *, ready: bool = True
    ) -> None:
        now = self._tick(now)
        levels = check_levels(skills, f"agent {agent!r}")
        a = self._agents.get(check_id(agent, "agent"))
        if a is None:
            a = _Agent(agent, len(self._by_idx))
            self._agents[agent] = a
            self._by_idx.append(a)
        elif a.state != LOGGED_OUT:
            raise RouterError("agent-logged-in", f"agent {agent!r} is already logged in")
        self._set_levels(a, levels)
        self._staffed |= 1 << a.idx
        if ready:
            self._make_ready(a, now)
        else:
            self._set_state(a, NOT_READY, "login")

    def set_skills(self, agent: str, skills: Mapping[str, int]) -> None:
        a = self._agent(agent)
        if a.state == LOGGED_OUT:
            raise RouterError("agent-logged-out", f"agent {agent!r} is not logged in")
        self._set_levels(a, check_levels(skills, f"agent {agent!r}"))

    def logout(self, agent: str, now: float) -> str | None:
        """Log out in any state. A call ringing this agent goes back to its place (returned);
        a connected call stays connected but no longer belongs to the agent."""
        now = self._tick(now)
        a = self._agent(agent)
        returned = None
        call = a.call
        if call is not None:
            call.agent = None
            if a.state == RESERVED:
                returned = call.id
                self._requeue(call, now)
        a.call = None
        self._set_levels(a, {})
        self._staffed &= ~(1 << a.idx)
        self._set_state(a, LOGGED_OUT, None)
        for c in list(self._pinned):
            if c.preferred is a:
                self._unpin(c)
        return returned

    def set_ready(self, agent: str, now: float) -> None:
        now = self._tick(now)
        a = self._agent(agent)
        if a.state in (READY,):
            return
        if a.state in (RESERVED, BUSY, LOGGED_OUT):
            raise RouterError(
                "invalid-state", f"agent {agent!r} is {AGENT_STATES[a.state]}, cannot be ready"
            )
        self._make_ready(a, now)

    def set_not_ready(self, agent: str, reason: str, now: float) -> None:
        self._tick(now)
        a = self._agent(agent)
        if a.state in (RESERVED, BUSY, LOGGED_OUT):
            raise RouterError(
                "invalid-state", f"agent {agent!r} is {AGENT_STATES[a.state]}, cannot be not-ready"
            )
        self._set_state(a, NOT_READY, check_id(reason, "reason"))

    def extend_wrap_up(self, agent: str, seconds: float, now: float) -> float:
        """Lengthen the agent's wrap-up by `seconds`; returns when it now ends."""
        self._tick(now)
        a = self._agent(agent)
        if a.state != WRAP_UP:
            raise RouterError("invalid-state", f"agent {agent!r} is not in wrap-up")
        until = a.wrap_until + check_time(seconds, "seconds")
        self._start_wrap(a, until)
        return until

    # ---- calls ------------------------------------------------------------------------------

    def enqueue(
        self,
        call: str,
        queue: str,
        now: float,
        *,
        priority: int = 0,
        arrival: float | None = None,
        preferred_agent: str | None = None,
    ) -> float:
        """Queue a call; returns the expected wait quoted to it (seconds)."""
        now = self._tick(now)
        check_id(call, "call")
        if call in self._calls:
            raise RouterError("duplicate-call", f"call {call!r} is already routed")
        q = self._queue(queue)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise RouterError("invalid-priority", f"priority must be an int, not {priority!r}")
        c = _Call(
            call, q, priority, now if arrival is None else check_time(arrival, "arrival"), now
        )
        if preferred_agent is not None:
            c.preferred = self._agents.get(preferred_agent)
        c.ewt = self._ewt(q, sum(n for p, n in q.by_priority.items() if p >= priority))
        self._calls[call] = c
        self._enter_waiting(c)
        self._file(c, now)
        return c.ewt

    def remove(self, call: str, now: float) -> str | None:
        """The caller left (or was taken elsewhere) before being connected. Returns the agent
        whose offer was withdrawn, who goes back to ready without losing their idle time."""
        self._tick(now)
        c = self._call(call)
        if c.state == CONNECTED:
            raise RouterError("invalid-state", f"call {call!r} is connected; complete() it")
        freed = None
        if c.state == WAITING:
            self._leave_waiting(c)
        elif c.agent is not None:
            a = c.agent
            freed = a.id
            a.call = None
            self._set_state(a, READY, None)
            self._ready |= 1 << a.idx
        self._drop(c)
        return freed

    def answer(self, call: str, now: float) -> None:
        now = self._tick(now)
        c = self._call(call)
        if c.state != OFFERED:
            raise RouterError("invalid-state", f"call {call!r} is {CALL_STATES[c.state]}")
        c.state = CONNECTED
        c.answered_at = now
        q = c.queue
        err = (now - c.queued_at) - c.ewt
        q.ewt_n += 1
        q.ewt_sum += err
        q.ewt_abs += abs(err)
        if c.agent is not None:
            c.agent.calls += 1
            self._set_state(c.agent, BUSY, None)

    def reject(self, call: str, agent: str, now: float) -> None:
        """RONA: the agent did not answer. The agent goes not-ready("RONA"); the call goes
        back to its place and is not offered to this agent for `rona_memory_s`."""
        now = self._tick(now)
        c = self._call(call)
        a = self._agent(agent)
        if c.state != OFFERED or c.agent is not a:
            raise RouterError("invalid-state", f"call {call!r} is not ringing agent {agent!r}")
        a.call = None
        self._set_state(a, NOT_READY, "RONA")
        until = now + self.rona_memory_s
        c.memory[a.idx] = until
        self._timer(until, T_MEMORY, c, 0)
        self._requeue(c, now)

    def complete(self, call: str, now: float, *, wrap_up_s: float | None = None) -> None:
        """The connected call ended: its agent goes to wrap-up (the queue's time unless
        given), or straight to ready when the wrap-up is 0."""
        now = self._tick(now)
        c = self._call(call)
        if c.state != CONNECTED:
            raise RouterError("invalid-state", f"call {call!r} is {CALL_STATES[c.state]}")
        q = c.queue
        wrap = q.spec.wrap_up_s if wrap_up_s is None else check_time(wrap_up_s, "wrap_up_s")
        q.aht += AHT_ALPHA * ((now - c.answered_at) + wrap - q.aht)
        a = c.agent
        self._drop(c)
        if a is None:
            return
        a.call = None
        if wrap > 0:
            self._start_wrap(a, now + wrap)
        else:
            self._make_ready(a, now)

    # ---- routing ----------------------------------------------------------------------------

    def dispatch(self, now: float) -> list[Assignment]:
        now = self._tick(now)
        self._run_timers(now)
        out: list[Assignment] = []
        if not self._ready or not self._waiting:
            return out
        sources: list[Any] = []  # _Class or pinned _Call, each with a head call
        for cls in self._classes:
            if cls.heap and self._can_serve(cls.groups) and cls.head() is not None:
                sources.append(cls)
        sources.extend(c for c in self._pinned if c.state == WAITING)
        skipped: list[_Call] = []
        while sources and self._ready:
            best_i, best_key = 0, None
            for i, src in enumerate(sources):
                head = src if isinstance(src, _Call) else src.heap[0][1]
                key = head.key()
                if best_key is None or key < best_key:
                    best_i, best_key = i, key
            src = sources[best_i]
            call = src if isinstance(src, _Call) else src.heap[0][1]
            agent, group, excluded = self._pick(call, now)
            if agent is not None:
                out.append(self._offer(call, agent, group, now))
            elif excluded and not isinstance(src, _Call):
                heapq.heappop(src.heap)
                skipped.append(call)
            else:
                sources.pop(best_i)
                continue
            if isinstance(src, _Call) or src.head() is None:
                sources.pop(best_i)
        for call in skipped:
            self._push(call)
        return out

    def next_timer(self) -> float | None:
        """When a wrap-up, relaxation, preferred-agent wait or RONA memory next ends."""
        timers = self._timers
        while timers and not self._timer_live(timers[0]):
            heapq.heappop(timers)
        return timers[0][0] if timers else None

    # ---- queries ----------------------------------------------------------------------------

    def expected_wait(self, queue: str, priority: int = 0) -> float:
        q = self._queue(queue)
        return self._ewt(q, sum(n for p, n in q.by_priority.items() if p >= priority))

    def position(self, call: str) -> int:
        """1-based place of a waiting call among its queue's waiting calls (O(queue))."""
        c = self._call(call)
        if c.state != WAITING:
            return 0
        key = c.key()
        return 1 + sum(
            1
            for o in self._calls.values()
            if o.queue is c.queue and o.state == WAITING and o.key() < key
        )

    def waiting(self, queue: str | None = None) -> int:
        if queue is None:
            return self._waiting
        return sum(self._queue(queue).by_priority.values())

    def agent(self, agent: str) -> AgentView:
        a = self._agent(agent)
        names = self._skills.names
        return AgentView(
            id=a.id,
            state=AGENT_STATES[a.state],
            reason=a.reason,
            skills={names[s]: lvl for s, lvl in sorted(a.levels.items())},
            last_ready=a.last_ready,
            calls_taken=a.calls,
            call=a.call.id if a.call is not None else None,
            wrap_until=a.wrap_until if a.state == WRAP_UP else None,
        )

    def call(self, call: str) -> CallView:
        c = self._call(call)
        return CallView(
            id=c.id,
            queue=c.queue.spec.name,
            state=CALL_STATES[c.state],
            priority=c.priority,
            arrival=c.arrival,
            queued_at=c.queued_at,
            step=c.step,
            agent=c.agent.id if c.agent is not None else None,
            preferred_agent=c.preferred.id if c.preferred is not None else None,
            ewt_quoted=c.ewt,
        )

    def agents(self) -> list[str]:
        return sorted(self._agents)

    def calls(self) -> list[str]:
        return sorted(self._calls)

    def ewt_stats(self, queue: str) -> EwtStats:
        q = self._queue(queue)
        n = q.ewt_n
        return EwtStats(n, q.ewt_sum / n if n else 0.0, q.ewt_abs / n if n else 0.0)

    def snapshot(self) -> dict[str, Any]:
        return _snapshot.take(self)

    def restore(self, data: Mapping[str, Any]) -> None:
        _snapshot.load(self, data)

    # ---- snapshot hooks (used by acd_core._snapshot) ------------------------------------------

    def _queue_names(self) -> list[str]:
        return list(self._queues)

    def _queue_state(self, name: str) -> tuple[QueueSpec, float, tuple[int, float, float]]:
        q = self._queue(name)
        return q.spec, q.aht, (q.ewt_n, q.ewt_sum, q.ewt_abs)

    def _load_queue_state(self, name: str, aht: float, ewt: Sequence[float]) -> None:
        q = self._queue(name)
        q.aht = aht
        q.ewt_n, q.ewt_sum, q.ewt_abs = int(ewt[0]), float(ewt[1]), float(ewt[2])

    def _call_extra(self, call: str) -> tuple[float, dict[str, float]]:
        c = self._call(call)
        return c.answered_at, {self._by_idx[i].id: t for i, t in sorted(c.memory.items())}

    def _load_agent(self, view: AgentView) -> None:
        state = AGENT_STATES.index(view.state)
        if state == LOGGED_OUT:
            self.login(view.id, {}, self.clock, ready=False)
            self.logout(view.id, self.clock)
        else:
            self.login(view.id, view.skills, self.clock, ready=False)
        a = self._agents[view.id]
        a.calls = view.calls_taken
        a.last_ready = view.last_ready
        if state == READY:
            self._set_state(a, READY, None)
            self._ready |= 1 << a.idx
        elif state == WRAP_UP:
            self._start_wrap(a, float(view.wrap_until or 0.0))
        elif state in (NOT_READY, RESERVED, BUSY):
            self._set_state(a, state, view.reason if state == NOT_READY else None)

    def _load_call(self, view: CallView, answered_at: float, memory: Mapping[str, float]) -> None:
        q = self._queue(view.queue)
        c = _Call(view.id, q, view.priority, view.arrival, view.queued_at)
        c.ewt = view.ewt_quoted
        c.answered_at = answered_at
        if view.preferred_agent is not None:
            c.preferred = self._agents.get(view.preferred_agent)
        for agent_id, until in memory.items():
            if agent_id in self._agents:
                c.memory[self._agents[agent_id].idx] = until
                self._timer(until, T_MEMORY, c, 0)
        self._calls[c.id] = c
        state = CALL_STATES.index(view.state)
        if state == WAITING:
            self._enter_waiting(c)
            self._file(c, self.clock)
            return
        c.state = state
        c.step = view.step
        if view.agent is not None:
            a = self._agents[view.agent]
            c.agent = a
            a.call = c

    # ---- internals --------------------------------------------------------------------------

    def _tick(self, now: float) -> float:
        now = check_time(now)
        if now > self.clock:
            self.clock = now
        return now

    def _agent(self, agent: str) -> _Agent:
        a = self._agents.get(agent)
        if a is None:
            raise RouterError("unknown-agent", f"no agent {agent!r}")
        return a

    def _call(self, call: str) -> _Call:
        c = self._calls.get(call)
        if c is None:
            raise RouterError("unknown-call", f"no call {call!r}")
        return c

    def _queue(self, queue: str) -> _Queue:
        q = self._queues.get(queue)
        if q is None:
            raise RouterError("unknown-queue", f"no queue {queue!r}")
        return q

    def _set_levels(self, a: _Agent, levels: Mapping[str, int]) -> None:
        bit = 1 << a.idx
        for s, lvl in a.levels.items():
            row = self._level_bits[s]
            for level in range(1, lvl + 1):
                row[level] &= ~bit
        a.levels = {}
        for name, lvl in levels.items():
            s = self._skills.get(name)
            while len(self._level_bits) <= s:
                self._level_bits.append([0] * (MAX_LEVEL + 1))
            a.levels[s] = lvl
            row = self._level_bits[s]
            for level in range(1, lvl + 1):
                row[level] |= bit

    def _set_state(self, a: _Agent, state: int, reason: str | None) -> None:
        bit = 1 << a.idx
        self._ready &= ~bit
        if state in (READY, RESERVED, BUSY, WRAP_UP):
            self._staffed |= bit
        else:
            self._staffed &= ~bit
        a.state = state
        a.reason = reason
        a.gen += 1

    def _make_ready(self, a: _Agent, now: float) -> None:
        self._set_state(a, READY, None)
        a.last_ready = now
        self._ready |= 1 << a.idx

    def _start_wrap(self, a: _Agent, until: float) -> None:
        self._set_state(a, WRAP_UP, None)
        a.wrap_until = until
        self._timer(until, T_WRAP, a, a.gen)

    def _enter_waiting(self, c: _Call) -> None:
        c.state = WAITING
        q = c.queue
        q.by_priority[c.priority] = q.by_priority.get(c.priority, 0) + 1
        self._waiting += 1

    def _leave_waiting(self, c: _Call) -> None:
        q = c.queue
        q.by_priority[c.priority] -= 1
        self._waiting -= 1

    def _drop(self, c: _Call) -> None:
        c.state = GONE
        c.agent = None
        self._pinned.discard(c)
        del self._calls[c.id]

    def _requeue(self, c: _Call, now: float) -> None:
        c.agent = None
        self._enter_waiting(c)
        self._file(c, now)

    def _file(self, c: _Call, now: float) -> None:
        """Put a waiting call in the class of its current relaxation step (or pin it to its
        preferred agent) and schedule the next change."""
        c.gen += 1
        spec = c.queue.spec
        step = 0
        while step < len(spec.step_after) and c.queued_at + spec.step_after[step] <= now:
            step += 1
        c.step = step
        c.cls = c.queue.classes[step]
        if step < len(spec.step_after):
            self._timer(c.queued_at + spec.step_after[step], T_RELAX, c, c.gen)
        p = c.preferred
        pin_until = c.queued_at + spec.preferred_s
        if (
            p is not None
            and p.state != LOGGED_OUT
            and now < pin_until
            and c.memory.get(p.idx, now) <= now
        ):
            c.pinned = True
            self._pinned.add(c)
            self._timer(pin_until, T_UNPIN, c, c.gen)
        else:
            c.pinned = False
            self._pinned.discard(c)
            self._push(c)

    def _push(self, c: _Call) -> None:
        assert c.cls is not None
        heapq.heappush(c.cls.heap, (c.key(), c))

    def _unpin(self, c: _Call) -> None:
        c.pinned = False
        self._pinned.discard(c)
        if c.state == WAITING:
            self._push(c)

    def _timer(self, t: float, kind: int, obj: Any, gen: int) -> None:
        self._seq += 1
        heapq.heappush(self._timers, (t, self._seq, kind, obj, gen))

    def _timer_live(self, timer: tuple[float, int, int, Any, int]) -> bool:
        _, _, kind, obj, gen = timer
        if kind == T_WRAP:
            return bool(obj.state == WRAP_UP and obj.gen == gen)
        if kind == T_MEMORY:
            return obj.state in (WAITING, OFFERED)
        return bool(obj.state == WAITING and obj.gen == gen)

    def _run_timers(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            timer = heapq.heappop(timers)
            if not self._timer_live(timer):
                continue
            t, _, kind, obj, _gen = timer
            if kind == T_WRAP:
                self._make_ready(obj, t)
            elif kind == T_RELAX:
                if obj.pinned:
                    self._pinned.discard(obj)
                self._file(obj, now)
            elif kind == T_UNPIN:
                self._unpin(obj)
            else:
                obj.memory = {i: u for i, u in obj.memory.items() if u > now}

    def _can_serve(self, groups: tuple[Any, ...]) -> bool:
        bits = self._level_bits
        for group in groups:
            mask = self._ready
            for s, level in group:
                mask &= bits[s][level]
            if mask:
                return True
        return False

    def _pick(self, c: _Call, now: float) -> tuple[_Agent | None, int, bool]:
        """Best ready agent for the call: (agent, group matched, whether RONA memory
        excluded someone)."""
        groups = c.cls.groups if c.cls is not None else ()
        strategy = c.queue.spec.strategy
        seen = 0
        best: _Agent | None = None
        best_key: tuple[Any, ...] | None = None
        best_group = 0
        excluded = False
        memory = c.memory
        allowed = self._ready
        if c.pinned and c.preferred is not None:
            allowed &= 1 << c.preferred.idx
        for gi, group in enumerate(groups):
            mask = allowed & ~seen
            for s, level in group:
                mask &= self._level_bits[s][level]
            seen |= mask
            for idx in _bits(mask):
                a = self._by_idx[idx]
                if memory and memory.get(idx, now) > now:
                    excluded = True
                    continue
                if strategy == "longest-idle":
                    key: tuple[Any, ...] = (a.last_ready, a.id)
                elif strategy == "least-calls":
                    key = (a.calls, a.last_ready, a.id)
                else:
                    key = (-sum(a.levels[s] for s, _ in group), a.last_ready, a.id)
                if best_key is None or key < best_key:
                    best, best_key, best_group = a, key, gi
        return best, best_group, excluded

    def _offer(self, c: _Call, a: _Agent, group: int, now: float) -> Assignment:
        pinned = c.pinned
        if pinned:
            self._pinned.discard(c)
            c.pinned = False
        else:
            assert c.cls is not None
            heapq.heappop(c.cls.heap)
        self._leave_waiting(c)
        c.state = OFFERED
        c.agent = a
        a.call = c
        self._set_state(a, RESERVED, None)
        assert c.cls is not None
        levels = a.levels
        return Assignment(
            call=c.id,
            agent=a.id,
            queue=c.queue.spec.name,
            strategy="preferred" if pinned else c.queue.spec.strategy,
            step=c.step,
            group=group,
            level=min(levels[s] for s, _ in c.cls.groups[group]),
            waited_s=now - c.queued_at,
        )

    def _ewt(self, q: _Queue, ahead: int) -> float:
        groups = q.classes[0].groups
        if ahead == 0 and self._can_serve(groups):
            return 0.0
        mask = self._staffed
        for s, level in groups[0]:
            mask &= self._level_bits[s][level]
        return (ahead + 1) * q.aht / max(1, mask.bit_count())
