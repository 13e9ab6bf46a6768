"""The controller rides out Asterisk going away and freezing, then serves calls again."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from ccserver.stack.procs import wait_until
from tests.integration.conftest import LiveStack, start_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    yield from start_stack(tmp_path_factory.mktemp("resilience"), {"answer": ["1001", "1002"]})


def _one_call_works(live: LiveStack) -> None:
    (record,) = live.place_calls(1, talk_ms=500)
    assert record["outcome"] == "completed"


def test_after_an_asterisk_restart_the_controller_reconnects_and_calls_work(
    live: LiveStack,
) -> None:
    before = live.stack.controller_health()
    live.stack.asterisk.stop()
    assert wait_until(lambda: not live.stack.controller_health()["ari"], 15)
    live.stack.up()  # Asterisk back; returns once the controller has ARI and AMI again
    after = live.stack.controller_health()
    assert after["ari"] and after["ami"]
    assert after["ari_reconnects"] > before["ari_reconnects"]
    assert after["ami_reconnects"] > before["ami_reconnects"]
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
