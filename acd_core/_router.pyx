# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled router: the same contract as `_router_py.py` (see `acd_core`), in C data.

Bitsets are uint64 arrays: one row per (skill, level) holding the agents at that level or
above, one for ready and one for staffed agents. With few ready agents (the usual case in a
busy center) candidates come from the list of ready agents instead of a bitset scan. Class
heaps and the timer heap are Python lists of typed objects ordered by C comparisons.
Validation, views and snapshots reuse the shared pure-Python modules.
"""

from libc.math cimport isfinite
from libc.stdint cimport uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy

from acd_core import _snapshot
from acd_core._spec import SkillTable, check_id, check_levels, check_time, compile_queue
from acd_core._types import (
    AGENT_STATES,
    AHT_ALPHA,
    CALL_STATES,
    MAX_SKILLS,
    STRATEGIES,
    AgentView,
    Assignment,
    CallView,
    EwtStats,
    RouterError,
)

cdef extern from *:
    int __builtin_popcountll(unsigned long long) nogil
    int __builtin_ctzll(unsigned long long) nogil

cdef enum:
    LOGGED_OUT, READY, RESERVED, BUSY, WRAP_UP, NOT_READY
cdef enum:
    WAITING, OFFERED, CONNECTED, GONE
cdef enum:
    T_RELAX, T_UNPIN, T_WRAP, T_MEMORY
cdef enum:
    S_LONGEST_IDLE, S_MOST_SKILLED, S_LEAST_CALLS
cdef enum:
    NSKILLS = 256
    NLEVELS = 11
    MAXG = 16
    SMALL_READY = 32  # up to this many ready agents, scan them instead of bitsets

cdef double _AHT_ALPHA = AHT_ALPHA
assert MAX_SKILLS == NSKILLS

cdef class _Call
cdef class _Class
cdef class _Queue


cdef class _Agent:
    cdef str id
    cdef int idx, state, gen, ready_pos
    cdef object reason
    cdef double last_ready, wrap_until
    cdef long calls
    cdef _Call call
    cdef list skills  # skill indices held, for views and for clearing bits
    cdef unsigned char levels[256]

    def __cinit__(self, str agent_id, int idx):
        self.id = agent_id
        self.idx = idx
        self.state = LOGGED_OUT
        self.ready_pos = -1
        self.skills = []
        for s in range(NSKILLS):
            self.levels[s] = 0


cdef class _Call:
    cdef str id
    cdef _Queue queue
    cdef long priority
    cdef double arrival, queued_at, ewt, answered_at
    cdef _Agent preferred, agent
    cdef int state, step, gen
    cdef _Class cls
    cdef bint pinned
    cdef dict memory


cdef inline bint _before(_Call a, _Call b):
    """Service order: higher priority, earlier arrival, smaller id."""
    if a.priority != b.priority:
        return a.priority > b.priority
    if a.arrival != b.arrival:
        return a.arrival < b.arrival
    return a.id < b.id


cdef class _Class:
    cdef _Queue queue
    cdef int step, ngroups
    cdef object groups
    cdef list heap
    cdef int gsize[16]
    cdef int gskill[16][16]
    cdef int glevel[16][16]

    def __cinit__(self, _Queue queue, int step, tuple groups):
        self.queue = queue
        self.step = step
        self.groups = groups
        self.heap = []
        self.ngroups = len(groups)
        for g in range(self.ngroups):
            group = groups[g]
            self.gsize[g] = len(group)
            for k in range(len(group)):
                self.gskill[g][k] = group[k][0]
                self.glevel[g][k] = group[k][1]

    cdef _Call head(self):
        cdef list heap = self.heap
        cdef _Call call
        while heap:
            call = <_Call>heap[0]
            if call.state == WAITING and call.cls is self and not call.pinned:
                return call
            _heap_pop(heap)
        return None

    cdef int first_group(self, _Agent a):
        """Index of the first group the agent meets, or -1."""
        cdef int g, k
        for g in range(self.ngroups):
            for k in range(self.gsize[g]):
                if a.levels[self.gskill[g][k]] < self.glevel[g][k]:
                    break
            else:
                return g
        return -1


cdef void _heap_push(list heap, _Call item):
    heap.append(item)
    cdef Py_ssize_t pos = len(heap) - 1, parent
    while pos > 0:
        parent = (pos - 1) >> 1
        if _before(item, <_Call>heap[parent]):
            heap[pos] = heap[parent]
            pos = parent
        else:
            break
    heap[pos] = item


cdef _Call _heap_pop(list heap):
    cdef _Call top = <_Call>heap[0]
    cdef _Call last = <_Call>heap.pop()
    cdef Py_ssize_t n = len(heap), pos = 0, child
    if n == 0:
        return top
    while True:
        child = 2 * pos + 1
        if child >= n:
            break
        if child + 1 < n and _before(<_Call>heap[child + 1], <_Call>heap[child]):
            child += 1
        if _before(<_Call>heap[child], last):
            heap[pos] = heap[child]
            pos = child
        else:
            break
    heap[pos] = last
    return top


cdef class _Queue:
    cdef object spec
    cdef str name, strategy_name
    cdef double aht, wrap_up_s, preferred_s
    cdef int strategy
    cdef tuple step_after
    cdef list classes
    cdef dict by_priority
    cdef long ewt_n
    cdef double ewt_sum, ewt_abs

    def __cinit__(self, spec):
        self.spec = spec
        self.name = spec.name
        self.strategy_name = spec.strategy
        self.aht = spec.aht_s
        self.wrap_up_s = spec.wrap_up_s
        self.preferred_s = spec.preferred_s
        self.strategy = STRATEGIES.index(spec.strategy)
        self.step_after = spec.step_after
        self.classes = [_Class(self, k, g) for k, g in enumerate(spec.step_groups)]
        self.by_priority = {}


cdef class _Timer:
    cdef double t
    cdef long seq
    cdef int kind, gen
    cdef object obj


cdef inline bint _timer_before(_Timer a, _Timer b):
    return a.t < b.t or (a.t == b.t and a.seq < b.seq)


cdef class Router:
    """Skill-based router, compiled. See the `acd_core` module docstring for the contract."""

    cdef public double rona_memory_s, clock
    cdef object _skills
    cdef dict _queues, _agents, _calls
    cdef list _by_idx, _timers, _classes
    cdef set _pinned
    cdef uint64_t* _lv  # [skill][level][word]
    cdef uint64_t* _ready_bits
    cdef uint64_t* _staffed_bits
    cdef int* _ready_list
    cdef int _nready, _words, _cap_words
    cdef long _waiting, _seq
    cdef int _pick_group
    cdef bint _pick_excluded
    cdef _Agent _best
    cdef double _best_k1, _best_k2

    def __cinit__(self, *, double rona_memory_s=300.0):
        self.rona_memory_s = rona_memory_s
        self.clock = float("-inf")
        self._skills = SkillTable()
        self._queues = {}
        self._agents = {}
        self._calls = {}
        self._by_idx = []
        self._timers = []
        self._classes = []
        self._pinned = set()
        self._grow(64)

    def __dealloc__(self):
        free(self._lv)
        free(self._ready_bits)
        free(self._staffed_bits)
        free(self._ready_list)

    cdef void _grow(self, int agents) except *:
        """Make room for `agents` agents in every bitset row and in the ready list."""
        cdef int words = (agents + 63) // 64
        cdef int row, old = self._cap_words
        cdef uint64_t* lv
        if words <= old:
            return
        words = max(words, 2 * old)
        lv = <uint64_t*>calloc(<size_t>NSKILLS * NLEVELS * words, sizeof(uint64_t))
        if lv == NULL:
            raise MemoryError()
        if self._lv != NULL:
            for row in range(NSKILLS * NLEVELS):
                memcpy(lv + row * words, self._lv + row * old, old * sizeof(uint64_t))
            free(self._lv)
        self._lv = lv
        self._ready_bits = self._grown(self._ready_bits, old, words)
        self._staffed_bits = self._grown(self._staffed_bits, old, words)
        cdef int* ready_list = <int*>realloc(self._ready_list, words * 64 * sizeof(int))
        if ready_list == NULL:
            raise MemoryError()
        self._ready_list = ready_list
        self._cap_words = words

    cdef uint64_t* _grown(self, uint64_t* bits, int old, int words) except NULL:
        cdef uint64_t* new = <uint64_t*>calloc(words, sizeof(uint64_t))
        if new == NULL:
            raise MemoryError()
        if bits != NULL:
            memcpy(new, bits, old * sizeof(uint64_t))
            free(bits)
        return new

    cdef inline uint64_t* _row(self, int skill, int level):
        return self._lv + (skill * NLEVELS + level) * self._cap_words

    # ---- configuration -------------------------------------------------------------------

    def define_queue(self, name, skills, *, strategy="longest-idle", relaxation=(),
                     wrap_up_s=0.0, preferred_s=0.0, aht_s=180.0):
        spec = compile_queue(
            name, skills, self._skills, strategy=strategy, relaxation=relaxation,
            wrap_up_s=wrap_up_s, preferred_s=preferred_s, aht_s=aht_s,
        )
        cdef _Queue old = self._queues.get(name)
        cdef _Queue queue = _Queue(spec)
        cdef _Call call
        self._queues[name] = queue
        self._classes = [cls for q in self._queues.values() for cls in (<_Queue>q).classes]
        if old is not None:
            queue.aht = old.aht
            queue.ewt_n, queue.ewt_sum, queue.ewt_abs = old.ewt_n, old.ewt_sum, old.ewt_abs
            for call in self._calls.values():
                if call.queue is old:
                    call.queue = queue
                    if call.state == WAITING:
                        queue.by_priority[call.priority] = queue.by_priority.get(call.priority, 0) + 1
                        self._file(call, self.clock)

    # ---- agents -----------------------------------------------------------------------------

    def login(self, agent, skills, now, *, ready=True):
        cdef double t = self._tick(now)
        levels = check_levels(skills, f"agent {agent!r}")
        cdef _Agent a = self._agents.get(check_id(agent, "agent"))
        if a is None:
            a = _Agent(agent, len(self._by_idx))
            self._grow(a.idx + 1)
            self._agents[agent] = a
            self._by_idx.append(a)
        elif a.state != LOGGED_OUT:
            raise RouterError("agent-logged-in", f"agent {agent!r} is already logged in")
        self._set_levels(a, levels)
        if ready:
            self._make_ready(a, t)
        else:
            self._set_state(a, NOT_READY, "login")

    def set_skills(self, agent, skills):
        cdef _Agent a = self._agent(agent)
        if a.state == LOGGED_OUT:
            raise RouterError("agent-logged-out", f"agent {agent!r} is not logged in")
        self._set_levels(a, check_levels(skills, f"agent {agent!r}"))

    def logout(self, agent, now):
        cdef double t = self._tick(now)
        cdef _Agent a = self._agent(agent)
        cdef _Call call = a.call, c
        returned = None
        if call is not None:
            call.agent = None
            if a.state == RESERVED:
                returned = call.id
                self._requeue(call, t)
        a.call = None
        self._set_levels(a, {})
        self._set_state(a, LOGGED_OUT, None)
        for c in list(self._pinned):
            if c.preferred is a:
                self._unpin(c)
        return returned

    def set_ready(self, agent, now):
        cdef double t = self._tick(now)
        cdef _Agent a = self._agent(agent)
        if a.state == READY:
            return
        if a.state == RESERVED or a.state == BUSY or a.state == LOGGED_OUT:
            raise RouterError(
                "invalid-state", f"agent {agent!r} is {AGENT_STATES[a.state]}, cannot be ready"
            )
        self._make_ready(a, t)

    def set_not_ready(self, agent, reason, now):
        self._tick(now)
        cdef _Agent a = self._agent(agent)
        if a.state == RESERVED or a.state == BUSY or a.state == LOGGED_OUT:
            raise RouterError(
                "invalid-state", f"agent {agent!r} is {AGENT_STATES[a.state]}, cannot be not-ready"
            )
        self._set_state(a, NOT_READY, check_id(reason, "reason"))

    def extend_wrap_up(self, agent, seconds, now):
        self._tick(now)
        cdef _Agent a = self._agent(agent)
        if a.state != WRAP_UP:
            raise RouterError("invalid-state", f"agent {agent!r} is not in wrap-up")
        cdef double until = a.wrap_until + check_time(seconds, "seconds")
        self._start_wrap(a, until)
        return until

    # ---- calls ------------------------------------------------------------------------------

    def enqueue(self, call, queue, now, *, priority=0, arrival=None, preferred_agent=None):
        cdef double t = self._tick(now)
        check_id(call, "call")
        if call in self._calls:
            raise RouterError("duplicate-call", f"call {call!r} is already routed")
        cdef _Queue q = self._queue(queue)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise RouterError("invalid-priority", f"priority must be an int, not {priority!r}")
        cdef _Call c = _Call.__new__(_Call)
        c.id = call
        c.queue = q
        c.priority = priority
        c.arrival = t if arrival is None else check_time(arrival, "arrival")
        c.queued_at = t
        c.memory = {}
        if preferred_agent is not None:
            c.preferred = self._agents.get(preferred_agent)
        c.ewt = self._ewt(q, self._ahead(q, priority))
        self._calls[call] = c
        self._enter_waiting(c)
        self._file(c, t)
        return c.ewt

    def remove(self, call, now):
        self._tick(now)
        cdef _Call c = self._call(call)
        cdef _Agent a
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
            self._ready_add(a)
        self._drop(c)
        return freed

    def answer(self, call, now):
        cdef double t = self._tick(now)
        cdef _Call c = self._call(call)
        if c.state != OFFERED:
            raise RouterError("invalid-state", f"call {call!r} is {CALL_STATES[c.state]}")
        c.state = CONNECTED
        c.answered_at = t
        cdef _Queue q = c.queue
        cdef double err = (t - c.queued_at) - c.ewt
        q.ewt_n += 1
        q.ewt_sum += err
        q.ewt_abs += abs(err)
        if c.agent is not None:
            c.agent.calls += 1
            self._set_state(c.agent, BUSY, None)

    def reject(self, call, agent, now):
        cdef double t = self._tick(now)
        cdef _Call c = self._call(call)
        cdef _Agent a = self._agent(agent)
        if c.state != OFFERED or c.agent is not a:
            raise RouterError("invalid-state", f"call {call!r} is not ringing agent {agent!r}")
        a.call = None
        self._set_state(a, NOT_READY, "RONA")
        cdef double until = t + self.rona_memory_s
        c.memory[a.idx] = until
        self._timer(until, T_MEMORY, c, 0)
        self._requeue(c, t)

    def complete(self, call, now, *, wrap_up_s=None):
        cdef double t = self._tick(now)
        cdef _Call c = self._call(call)
        if c.state != CONNECTED:
            raise RouterError("invalid-state", f"call {call!r} is {CALL_STATES[c.state]}")
        cdef _Queue q = c.queue
        cdef double wrap = q.wrap_up_s if wrap_up_s is None else check_time(wrap_up_s, "wrap_up_s")
        q.aht += _AHT_ALPHA * ((t - c.answered_at) + wrap - q.aht)
        cdef _Agent a = c.agent
        self._drop(c)
        if a is None:
            return
        a.call = None
        if wrap > 0:
            self._start_wrap(a, t + wrap)
        else:
            self._make_ready(a, t)

    # ---- routing ----------------------------------------------------------------------------

    def dispatch(self, now):
        cdef double t = self._tick(now)
        self._run_timers(t)
        cdef list out = []
        if self._nready == 0 or self._waiting == 0:
            return out
        cdef list classes = [], pins = [], skipped = []
        cdef _Queue q
        cdef _Class cls
        cdef _Call c, head, best
        cdef _Agent a
        cdef Py_ssize_t i, best_i
        cdef bint best_pin
        for cls in self._classes:
            if cls.heap and self._can_serve(cls) and cls.head() is not None:
                classes.append(cls)
        if self._pinned:
            for c in self._pinned:
                if c.state == WAITING:
                    pins.append(c)
        while (classes or pins) and self._nready:
            best = None
            for i in range(len(classes)):
                head = <_Call>(<_Class>classes[i]).heap[0]
                if best is None or _before(head, best):
                    best, best_i, best_pin = head, i, False
            for i in range(len(pins)):
                head = <_Call>pins[i]
                if best is None or _before(head, best):
                    best, best_i, best_pin = head, i, True
            a = self._pick(best, t)
            if best_pin:
                if a is not None:
                    out.append(self._offer(best, a, t))
                pins.pop(best_i)
                continue
            cls = <_Class>classes[best_i]
            if a is not None:
                out.append(self._offer(best, a, t))
            elif self._pick_excluded:
                _heap_pop(cls.heap)
                skipped.append(best)
            else:
                classes.pop(best_i)
                continue
            if cls.head() is None:
                classes.pop(best_i)
        for c in skipped:
            _heap_push(c.cls.heap, c)
        return out

    def next_timer(self):
        cdef list timers = self._timers
        while timers and not self._timer_live(<_Timer>timers[0]):
            self._timer_pop()
        return (<_Timer>timers[0]).t if timers else None

    # ---- queries ----------------------------------------------------------------------------

    def expected_wait(self, queue, priority=0):
        cdef _Queue q = self._queue(queue)
        return self._ewt(q, self._ahead(q, priority))

    def position(self, call):
        cdef _Call c = self._call(call), o
        if c.state != WAITING:
            return 0
        cdef long n = 1
        for o in self._calls.values():
            if o.queue is c.queue and o.state == WAITING and _before(o, c):
                n += 1
        return n

    def waiting(self, queue=None):
        if queue is None:
            return self._waiting
        return sum(self._queue(queue).by_priority.values())

    def agent(self, agent):
        cdef _Agent a = self._agent(agent)
        names = self._skills.names
        return AgentView(
            id=a.id,
            state=AGENT_STATES[a.state],
            reason=a.reason,
            skills={names[s]: a.levels[s] for s in sorted(a.skills)},
            last_ready=a.last_ready,
            calls_taken=a.calls,
            call=a.call.id if a.call is not None else None,
            wrap_until=a.wrap_until if a.state == WRAP_UP else None,
        )

    def call(self, call):
        cdef _Call c = self._call(call)
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

    def agents(self):
        return sorted(self._agents)

    def calls(self):
        return sorted(self._calls)

    def ewt_stats(self, queue):
        cdef _Queue q = self._queue(queue)
        n = q.ewt_n
        return EwtStats(n, q.ewt_sum / n if n else 0.0, q.ewt_abs / n if n else 0.0)

    def snapshot(self):
        return _snapshot.take(self)

    def restore(self, data):
        _snapshot.load(self, data)

    # ---- snapshot hooks (used by acd_core._snapshot) ------------------------------------------

    def _queue_names(self):
        return list(self._queues)

    def _queue_state(self, name):
        cdef _Queue q = self._queue(name)
        return q.spec, q.aht, (q.ewt_n, q.ewt_sum, q.ewt_abs)

    def _load_queue_state(self, name, aht, ewt):
        cdef _Queue q = self._queue(name)
        q.aht = aht
        q.ewt_n, q.ewt_sum, q.ewt_abs = int(ewt[0]), float(ewt[1]), float(ewt[2])

    def _call_extra(self, call):
        cdef _Call c = self._call(call)
        return c.answered_at, {(<_Agent>self._by_idx[i]).id: u for i, u in sorted(c.memory.items())}

    def _load_agent(self, view):
        cdef int state = AGENT_STATES.index(view.state)
        if state == LOGGED_OUT:
            self.login(view.id, {}, self.clock, ready=False)
            self.logout(view.id, self.clock)
        else:
            self.login(view.id, view.skills, self.clock, ready=False)
        cdef _Agent a = self._agents[view.id]
        a.calls = view.calls_taken
        a.last_ready = view.last_ready
        if state == READY:
            self._set_state(a, READY, None)
            self._ready_add(a)
        elif state == WRAP_UP:
            self._start_wrap(a, float(view.wrap_until or 0.0))
        elif state == NOT_READY or state == RESERVED or state == BUSY:
            self._set_state(a, state, view.reason if state == NOT_READY else None)

    def _load_call(self, view, answered_at, memory):
        cdef _Queue q = self._queue(view.queue)
        cdef _Call c = _Call.__new__(_Call)
        cdef _Agent a
        c.id = view.id
        c.queue = q
        c.priority = view.priority
        c.arrival = view.arrival
        c.queued_at = view.queued_at
        c.memory = {}
        c.ewt = view.ewt_quoted
        c.answered_at = answered_at
        if view.preferred_agent is not None:
            c.preferred = self._agents.get(view.preferred_agent)
        for agent_id, until in memory.items():
            if agent_id in self._agents:
                c.memory[(<_Agent>self._agents[agent_id]).idx] = until
                self._timer(until, T_MEMORY, c, 0)
        self._calls[c.id] = c
        cdef int state = CALL_STATES.index(view.state)
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

    cdef double _tick(self, now) except? -1.0:
        cdef double t
        if type(now) is float and isfinite(<double>now):
            t = <double>now
        else:
            t = check_time(now)
        if t > self.clock:
            self.clock = t
        return t

    cdef _Agent _agent(self, agent):
        a = self._agents.get(agent)
        if a is None:
            raise RouterError("unknown-agent", f"no agent {agent!r}")
        return <_Agent>a

    cdef _Call _call(self, call):
        c = self._calls.get(call)
        if c is None:
            raise RouterError("unknown-call", f"no call {call!r}")
        return <_Call>c

    cdef _Queue _queue(self, queue):
        q = self._queues.get(queue)
        if q is None:
            raise RouterError("unknown-queue", f"no queue {queue!r}")
        return <_Queue>q

    cdef void _set_levels(self, _Agent a, levels) except *:
        cdef int w = a.idx >> 6, s, level
        cdef uint64_t bit = (<uint64_t>1) << (a.idx & 63)
        for s in a.skills:
            for level in range(1, a.levels[s] + 1):
                self._row(s, level)[w] &= ~bit
            a.levels[s] = 0
        a.skills = []
        for name, lvl in levels.items():
            s = self._skills.get(name)
            a.levels[s] = lvl
            a.skills.append(s)
            for level in range(1, lvl + 1):
                self._row(s, level)[w] |= bit
        self._words = (len(self._by_idx) + 63) // 64

    cdef void _ready_add(self, _Agent a):
        self._ready_bits[a.idx >> 6] |= (<uint64_t>1) << (a.idx & 63)
        if a.ready_pos < 0:
            a.ready_pos = self._nready
            self._ready_list[self._nready] = a.idx
            self._nready += 1

    cdef void _ready_del(self, _Agent a):
        cdef int pos = a.ready_pos
        cdef _Agent last
        self._ready_bits[a.idx >> 6] &= ~((<uint64_t>1) << (a.idx & 63))
        if pos >= 0:
            self._nready -= 1
            if pos != self._nready:
                last = <_Agent>self._by_idx[self._ready_list[self._nready]]
                self._ready_list[pos] = last.idx
                last.ready_pos = pos
            a.ready_pos = -1

    cdef void _set_state(self, _Agent a, int state, reason):
        cdef uint64_t bit = (<uint64_t>1) << (a.idx & 63)
        self._ready_del(a)
        if state == READY or state == RESERVED or state == BUSY or state == WRAP_UP:
            self._staffed_bits[a.idx >> 6] |= bit
        else:
            self._staffed_bits[a.idx >> 6] &= ~bit
        a.state = state
        a.reason = reason
        a.gen += 1

    cdef void _make_ready(self, _Agent a, double now):
        self._set_state(a, READY, None)
        a.last_ready = now
        self._ready_add(a)

    cdef void _start_wrap(self, _Agent a, double until) except *:
        self._set_state(a, WRAP_UP, None)
        a.wrap_until = until
        self._timer(until, T_WRAP, a, a.gen)

    cdef long _ahead(self, _Queue q, priority) except -1:
        cdef long n = 0
        for p, k in q.by_priority.items():
            if p >= priority:
                n += k
        return n

    cdef void _enter_waiting(self, _Call c) except *:
        c.state = WAITING
        cdef dict bp = c.queue.by_priority
        bp[c.priority] = bp.get(c.priority, 0) + 1
        self._waiting += 1

    cdef void _leave_waiting(self, _Call c) except *:
        cdef dict bp = c.queue.by_priority
        bp[c.priority] -= 1
        self._waiting -= 1

    cdef void _drop(self, _Call c) except *:
        c.state = GONE
        c.agent = None
        self._pinned.discard(c)
        del self._calls[c.id]

    cdef void _requeue(self, _Call c, double now) except *:
        c.agent = None
        self._enter_waiting(c)
        self._file(c, now)

    cdef void _file(self, _Call c, double now) except *:
        c.gen += 1
        cdef _Queue q = c.queue
        cdef tuple after = q.step_after
        cdef int step = 0, nsteps = len(after)
        while step < nsteps and c.queued_at + <double>after[step] <= now:
            step += 1
        c.step = step
        c.cls = <_Class>q.classes[step]
        if step < nsteps:
            self._timer(c.queued_at + <double>after[step], T_RELAX, c, c.gen)
        cdef _Agent p = c.preferred
        cdef double pin_until = c.queued_at + q.preferred_s
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
            _heap_push(c.cls.heap, c)

    cdef void _unpin(self, _Call c) except *:
        c.pinned = False
        self._pinned.discard(c)
        if c.state == WAITING:
            _heap_push(c.cls.heap, c)

    cdef void _timer(self, double t, int kind, obj, int gen) except *:
        cdef _Timer timer = _Timer.__new__(_Timer)
        self._seq += 1
        timer.t = t
        timer.seq = self._seq
        timer.kind = kind
        timer.obj = obj
        timer.gen = gen
        cdef list heap = self._timers
        heap.append(timer)
        cdef Py_ssize_t pos = len(heap) - 1, parent
        while pos > 0:
            parent = (pos - 1) >> 1
            if _timer_before(timer, <_Timer>heap[parent]):
                heap[pos] = heap[parent]
                pos = parent
            else:
                break
        heap[pos] = timer

    cdef _Timer _timer_pop(self):
        cdef list heap = self._timers
        cdef _Timer top = <_Timer>heap[0]
        cdef _Timer last = <_Timer>heap.pop()
        cdef Py_ssize_t n = len(heap), pos = 0, child
        if n == 0:
            return top
        while True:
            child = 2 * pos + 1
            if child >= n:
                break
            if child + 1 < n and _timer_before(<_Timer>heap[child + 1], <_Timer>heap[child]):
                child += 1
            if _timer_before(<_Timer>heap[child], last):
                heap[pos] = heap[child]
                pos = child
            else:
                break
        heap[pos] = last
        return top

    cdef bint _timer_live(self, _Timer timer):
        cdef _Agent a
        cdef _Call c
        if timer.kind == T_WRAP:
            a = <_Agent>timer.obj
            return a.state == WRAP_UP and a.gen == timer.gen
        c = <_Call>timer.obj
        if timer.kind == T_MEMORY:
            return c.state == WAITING or c.state == OFFERED
        return c.state == WAITING and c.gen == timer.gen

    cdef void _run_timers(self, double now) except *:
        cdef list timers = self._timers
        cdef _Timer timer
        cdef _Call c
        while timers and (<_Timer>timers[0]).t <= now:
            timer = self._timer_pop()
            if not self._timer_live(timer):
                continue
            if timer.kind == T_WRAP:
                self._make_ready(<_Agent>timer.obj, timer.t)
                continue
            c = <_Call>timer.obj
            if timer.kind == T_RELAX:
                if c.pinned:
                    self._pinned.discard(c)
                self._file(c, now)
            elif timer.kind == T_UNPIN:
                self._unpin(c)
            else:
                c.memory = {i: u for i, u in c.memory.items() if u > now}

    cdef bint _can_serve(self, _Class cls):
        cdef int i, g, k, w
        cdef uint64_t m
        if self._nready <= SMALL_READY:
            for i in range(self._nready):
                if cls.first_group(<_Agent>self._by_idx[self._ready_list[i]]) >= 0:
                    return True
            return False
        for g in range(cls.ngroups):
            for w in range(self._words):
                m = self._ready_bits[w]
                for k in range(cls.gsize[g]):
                    m &= self._row(cls.gskill[g][k], cls.glevel[g][k])[w]
                if m:
                    return True
        return False

    cdef _Agent _pick(self, _Call c, double now):
        """Best ready agent for the call (None if none); sets _pick_group and
        _pick_excluded (whether RONA memory excluded someone)."""
        cdef _Class cls = c.cls
        cdef _Agent a
        cdef int i, g, k, w, bit
        cdef uint64_t m, bits
        self._best = None
        self._pick_group = 0
        self._pick_excluded = False
        if c.pinned:
            a = c.preferred
            if a is not None and a.state == READY:
                self._consider(c, a, cls.first_group(a), now)
            return self._best
        if self._nready <= SMALL_READY:
            for i in range(self._nready):
                a = <_Agent>self._by_idx[self._ready_list[i]]
                self._consider(c, a, cls.first_group(a), now)
            return self._best
        for w in range(self._words):
            m = 0
            for g in range(cls.ngroups):
                bits = self._ready_bits[w]
                for k in range(cls.gsize[g]):
                    bits &= self._row(cls.gskill[g][k], cls.glevel[g][k])[w]
                m |= bits
            while m:
                bit = __builtin_ctzll(m)
                m &= m - 1
                a = <_Agent>self._by_idx[w * 64 + bit]
                self._consider(c, a, cls.first_group(a), now)
        return self._best

    cdef void _consider(self, _Call c, _Agent a, int g, double now) except *:
        """Keep `a` as the pick if it beats the best so far under the queue's strategy."""
        cdef double k1, k2
        cdef int k, score = 0
        cdef _Class cls = c.cls
        if g < 0:
            return
        if c.memory:
            until = c.memory.get(a.idx)
            if until is not None and <double>until > now:
                self._pick_excluded = True
                return
        if c.queue.strategy == S_LONGEST_IDLE:
            k1, k2 = a.last_ready, 0.0
        elif c.queue.strategy == S_LEAST_CALLS:
            k1, k2 = a.calls, a.last_ready
        else:
            for k in range(cls.gsize[g]):
                score += a.levels[cls.gskill[g][k]]
            k1, k2 = -score, a.last_ready
        cdef _Agent best = self._best
        if best is None or k1 < self._best_k1 or (
            k1 == self._best_k1 and (k2 < self._best_k2 or (k2 == self._best_k2 and a.id < best.id))
        ):
            self._best = a
            self._best_k1 = k1
            self._best_k2 = k2
            self._pick_group = g

    cdef object _offer(self, _Call c, _Agent a, double now):
        cdef bint pinned = c.pinned
        cdef _Class cls = c.cls
        cdef _Queue q = c.queue
        cdef int g = self._pick_group, k, level = 99
        if pinned:
            self._pinned.discard(c)
            c.pinned = False
        else:
            _heap_pop(cls.heap)
        self._leave_waiting(c)
        c.state = OFFERED
        c.agent = a
        a.call = c
        self._set_state(a, RESERVED, None)
        for k in range(cls.gsize[g]):
            level = min(level, a.levels[cls.gskill[g][k]])
        return tuple.__new__(Assignment, (
            c.id, a.id, q.name, "preferred" if pinned else q.strategy_name, c.step, g, level,
            now - c.queued_at,
        ))

    cdef double _ewt(self, _Queue q, long ahead) except? -1.0:
        cdef _Class cls = <_Class>q.classes[0]
        if ahead == 0 and self._can_serve(cls):
            return 0.0
        cdef long n = 0
        cdef int w, k
        cdef uint64_t m
        for w in range(self._words):
            m = self._staffed_bits[w]
            for k in range(cls.gsize[0]):
                m &= self._row(cls.gskill[0][k], cls.glevel[0][k])[w]
            n += __builtin_popcountll(m)
        return (ahead + 1) * q.aht / max(1, n)
