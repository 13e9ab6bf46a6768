"""An agent whose phone is busy with a call that is not a queue call is not offered queue
calls (AMI device state), and is ready again by itself when the phone is free."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ccserver.loadtest import sipp
from ccserver.stack.procs import wait_until
from tests.integration.conftest import LiveStack, free_port, start_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    yield from start_stack(tmp_path_factory.mktemp("device"), {"answer": ["1001", "1002"]})


def test_a_phone_busy_with_its_own_call_is_skipped_then_ready_again(live: LiveStack) -> None:
    phones = live.agents("answer", talk_ms=4000).start()
    # Phone 1001 itself calls the hotline (a call of its own, not one we offered it).
    own_call = sipp.phone_keys(
        live.work,
        target=f"127.0.0.1:{live.config.asterisk.sip_port}",
        phone="1001",
        password=live.secrets().agent_passwords["1001"],
        dial="95598",
        keys=[500],
        local_port=free_port(),
        media_port=free_port(),
        name="own-call",
    ).start()
    try:
        assert wait_until(
            lambda: (
                (live.agent("1001")["state"], live.agent("1001")["reason"])
                == ("not-ready", "device-busy")
            ),
            10,
        )
        stats = own_call.wait(timeout=60)
    finally:
        phones.stop()
    assert (stats.successful, stats.failed) == (1, 0)
    assert wait_until(lambda: live.agent("1001")["state"] == "ready", 10)
    calls = live.stack.redis_client().lrange("ccserver:calls", 0, -1)
    assert len(calls) == 1
    own = live.api("GET", f"/calls/{calls[0]}", token="supervisor")[1]
    assert own["agent"] == "1002"  # the queue call from 1001 never rang 1001 itself
