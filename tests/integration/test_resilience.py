"""The controller rides out Asterisk going away (reconnecting with backoff: 1 s doubling to
32 s) and freezing, then serves calls again."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from itertools import pairwise

import pytest

from ccserver.stack.procs import wait_until
from ccserver.telephony.ari import BACKOFF_MAX_S, BACKOFF_START_S
from tests.integration.conftest import LiveStack, start_stack
from tests.integration.drill_log import read_log

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    yield from start_stack(tmp_path_factory.mktemp("resilience"), {"answer": ["1001", "1002"]})


def _one_call_works(live: LiveStack) -> None:
    (record,) = live.place_calls(1, talk_ms=500)
    assert record["outcome"] == "completed"


def _retries(live: LiveStack, since: float, event: str = "ari.link_down") -> list[float]:
    """The reconnect delays the controller announced since `since` (its log) in `event`
    lines: `ari.link_down`, or `ami.reconnecting`."""
    lines = read_log(live.config.run_dir / "log" / "controller.log")
    return [float(x.fields["retry_in_s"]) for x in lines if x.event == event and x.at >= since]


def test_after_an_asterisk_restart_the_controller_reconnects_with_backoff_and_calls_work(
    live: LiveStack,
) -> None:
    before = live.stack.controller_health()
    stopped_at = time.time()
    live.stack.asterisk.stop()
    assert wait_until(lambda: not live.stack.controller_health()["ari"], 15)
    # Stay down until the third delay is announced: 1 s, then 2 s, then 4 s.
    assert wait_until(lambda: len(_retries(live, stopped_at)) >= 3, 20), _retries(live, stopped_at)
    started_at = time.time()
    live.stack.up()  # Asterisk back; returns once the controller has ARI and AMI again
    back_at = time.time()
    after = live.stack.controller_health()
    assert after["ari"] and after["ami"]
    assert after["ari_reconnects"] > before["ari_reconnects"]
    assert after["ami_reconnects"] > before["ami_reconnects"]
    retries = _retries(live, stopped_at)
    assert retries[:3] == [BACKOFF_START_S, 2 * BACKOFF_START_S, 4 * BACKOFF_START_S]
    assert all(b == min(2 * a, BACKOFF_MAX_S) for a, b in pairwise(retries))
    ami = _retries(live, stopped_at, "ami.reconnecting")
    assert ami[:2] == [BACKOFF_START_S, 2 * BACKOFF_START_S], ami
    assert all(b == min(2 * a, BACKOFF_MAX_S) for a, b in pairwise(ami))
    print(
        f"asterisk restart: ARI retried after {retries} s, AMI after {ami} s; Asterisk up "
        f"and the controller resynced {back_at - started_at:.2f} s after Asterisk was started"
    )
    _one_call_works(live)


def test_a_frozen_asterisk_is_noticed_by_the_ami_watchdog(live: LiveStack) -> None:
    pid = live.stack.asterisk.pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # the TCP connection stays open: only a ping notices
    try:
        assert wait_until(lambda: not live.stack.controller_health()["ami"], 20)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert wait_until(lambda: live.stack.controller_health()["ami"], 20)
    assert wait_until(lambda: live.stack.controller_health()["ari"], 40)
    time.sleep(0.5)
    _one_call_works(live)
