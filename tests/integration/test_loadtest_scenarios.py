"""The load harness's SIPp scenarios on the real stack with the 95598 flow: IVR callers from
the shipped mix reach their queues, random abandoners give up, agent pools talk for a time
in range while sending RTP, softphones register, and the timing logs join per caller."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ccserver.loadtest import privstack, sipp, timing
from tests.integration.conftest import LiveStack, free_port, start_stack

pytestmark = pytest.mark.integration
TALK_MS = (1000, 2500)
ABANDON_MS = (1500, 3500)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    port = free_port()
    # No survey: a caller's call ends when the agent hangs up.
    acd, ivr = privstack.ivr_center(f"http://127.0.0.1:{port}", survey=False)
    pools = {"a": ["1001", "1002", "1003"], "b": ["1004", "1005"]}
    with privstack.billing_demo(port):
        yield from start_stack(tmp_path_factory.mktemp("loadsc"), pools, acd=acd, ivr=ivr)


def quick_mix(target: Path) -> list[list[str]]:
    """Each branch of the shipped mix once, in order, with the listening shortened (keys
    pressed over the prompts; each wait still outlasts the keys before it)."""
    rows: dict[str, list[str]] = {}
    for line in sipp.IVR_MIX_95598.read_text(encoding="latin-1").splitlines()[1:]:
        if line and not line.startswith("#"):
            row = line.split(";")
            rows.setdefault(row[0], row)
    quick = []
    for row in rows.values():
        keys = [row[3], row[5], row[7]]
        waits = ["1500"] + [str(400 * (len(keys[i - 1]) + 1) + 2500) for i in (1, 2)]
        steps = [x for i in range(3) for x in (waits[i] if keys[i] else "0", keys[i])]
        quick.append(row[:2] + steps)
    target.write_text(
        "SEQUENTIAL\n" + "".join(";".join(r) + "\n" for r in quick), encoding="latin-1"
    )
    return quick


def test_mix_callers_abandoners_agent_pools_and_registrations(live: LiveStack) -> None:
    work = live.work
    target = f"127.0.0.1:{live.config.asterisk.sip_port}"
    work.mkdir(parents=True, exist_ok=True)
    mix = quick_mix(work / "quick-mix.csv")
    pools = [
        sipp.agent_pool(
            work, port=live.agent_ports[p], media_port=free_port(), talk_ms=TALK_MS, name=p
        ).start()
        for p in ("a", "b")
    ]
    ivr_run, abandon_run = live.next_run(), live.next_run()
    passwords = live.secrets().agent_passwords  # the browser desks' (`web…`) too
    desk_phones = {p: passwords[p] for p in live.config.phones.ids}
    try:
        phones = sipp.registrations(
            work,
            target=target,
            phones=desk_phones,
            local_port=free_port(),
            media_port=free_port(),
            name="phones",
        ).start()
        callers = sipp.load_callers(
            work,
            target=target,
            service="95598",
            run=ivr_run,
            calls=len(mix),
            rate=3,
            limit=20,
            local_port=free_port(),
            media_port=free_port(),
            name=f"ivr-{ivr_run}",
            mix=work / "quick-mix.csv",
        ).start()
        abandoners = sipp.load_callers(
            work,
            target=target,
            service="95598",
            run=abandon_run,
            calls=4,
            rate=4,
            limit=20,
            local_port=free_port(),
            media_port=free_port(),
            name=f"abandon-{abandon_run}",
            abandon_wait_ms=ABANDON_MS,
        ).start()
        registered = phones.wait(timeout=30)
        abandoned = abandoners.wait(timeout=40)
        walked = callers.wait(timeout=90)
    finally:
        answered = [pool.stop() for pool in pools]
    assert (registered.successful, registered.failed) == (5, 0), phones.errors()
    assert (abandoned.successful, abandoned.failed) == (4, 0), abandoners.errors()
    assert (walked.successful, walked.failed) == (len(mix), 0), callers.errors()
    assert sum(s.successful for s in answered) == len(mix)
    assert sum(s.failed for s in answered) == 0

    # IVR callers reached the queue their row names, and talked to an agent.
    records = {r["caller"]: r for r in live.records(ivr_run, expected=len(mix), timeout=30)}
    queues = {c: r["queue"] for c, r in records.items()}
    assert queues == {f"c{ivr_run}-{n}": row[1] for n, row in enumerate(mix, start=1)}
    assert all(r["outcome"] == "completed" and r["agent"] for r in records.values())

    # Timing joined per caller: ring delay >= 0, wait >= ring delay, talk time in range.
    walks = timing.collect(work, ivr_run)
    assert [t.caller for t in walks] == sorted(records, key=lambda c: int(c.split("-")[1]))
    for t in walks:
        assert t.answer_to_ring_s is not None and t.answer_to_ring_s >= 0, t
        assert t.wait_s is not None and t.wait_s >= t.answer_to_ring_s, t
        assert t.ended_at is not None and t.agent_answered_at is not None
        assert t.ivr_done_at is not None and t.answered_at is not None
        talk = t.ended_at - t.agent_answered_at
        assert TALK_MS[0] / 1000 <= talk <= TALK_MS[1] / 1000 + 1.0, t
    print("ring delay incl. IVR (s):", sorted(round(t.answer_to_ring_s or 0, 2) for t in walks))

    # Abandoners hung up themselves within their range, before any agent answered.
    gave_up = timing.collect(work, abandon_run)
    assert len(gave_up) == 4
    for t in gave_up:
        assert t.answered_at is not None and t.ended_at is not None and t.agent_answered_at is None
        waited = t.ended_at - t.answered_at
        assert ABANDON_MS[0] / 1000 <= waited <= ABANDON_MS[1] / 1000 + 1.0, t
    lines = (work / f"abandon-{abandon_run}{sipp.TIMING_SUFFIX}").read_text()
    assert lines.count("caller-bye-sent") == 4 and "caller-bye-received" not in lines
    print(
        "abandoned after (s):",
        sorted(round((t.ended_at or 0) - (t.answered_at or 0), 2) for t in gave_up),
    )
