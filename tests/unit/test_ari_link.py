"""The ARI event link's life cycle: reconnect with backoff, resync after every connection,
and a resync that fails drops the link and tries again rather than killing it.

The far end is a real websocket server in this process that replays the recorded Stasis
events (tests/fixtures/ari/call_flow.jsonl) to each connection, then closes it; the
integration drills (test_link_drills.py) do the same against Asterisk itself."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from ccserver.telephony.ari import BACKOFF_START_S, AriClient, AriEvent

TRANSCRIPT = Path(__file__).parents[1] / "fixtures" / "ari" / "call_flow.jsonl"
EVENTS = [line for line in TRANSCRIPT.read_text().splitlines() if line.strip()][:5]


class FakeAsterisk:
    """Serves `/ari/events`: each connection gets the recorded events, then is closed."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0

    async def events(self, request: web.Request) -> web.WebSocketResponse:
        self.connections += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for line in EVENTS:
            await ws.send_str(line)
        await ws.close()
        return ws


@pytest.fixture
async def asterisk() -> AsyncIterator[FakeAsterisk]:
    far = FakeAsterisk()
    app = web.Application()
    app.router.add_get("/ari/events", far.events)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    far.port = int(runner.addresses[0][1])
    yield far
    await runner.cleanup()


async def _client(
    far: FakeAsterisk, events: list[tuple[int, str]], resyncs: list[int], fail_first: bool
) -> AriClient:
    async def on_event(event: AriEvent) -> None:
        events.append((len(resyncs), event.type))  # which resync it came after

    async def on_connected() -> None:
        resyncs.append(far.connections)
        if fail_first and len(resyncs) == 1:
            raise RuntimeError("GET /channels answered nonsense")

    client = AriClient(
        host="127.0.0.1",
        port=far.port,
        user="u",
        password="p",
        app="ccserver",
        on_event=on_event,
        on_connected=on_connected,
    )
    await client.start()
    return client


async def _until(check: object, timeout: float) -> None:
    assert callable(check)
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_closed_link_reconnects_and_resyncs_each_time(
    asterisk: FakeAsterisk, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[tuple[int, str]] = []
    resyncs: list[int] = []
    caplog.set_level(logging.INFO, logger="ccserver.ari")
    client = await _client(asterisk, events, resyncs, fail_first=False)
    try:
        await _until(lambda: len(resyncs) >= 2, 5 * BACKOFF_START_S)
    finally:
        await client.close()
    assert resyncs[:2] == [1, 2]  # one resync per connection, after it is made
    assert client.reconnects >= 1
    assert [kind for _, kind in events[: len(EVENTS)]] == [json.loads(e)["type"] for e in EVENTS]
    ups = [r for r in caplog.records if r.getMessage() == "ari.link_up"]
    assert all(getattr(r, "fields", {})["local_port"] > 0 for r in ups)
    downs = [getattr(r, "fields", {}) for r in caplog.records if r.getMessage() == "ari.link_down"]
    assert downs[0]["retry_in_s"] == BACKOFF_START_S


async def test_a_failed_resync_drops_the_link_and_retries_with_backoff(
    asterisk: FakeAsterisk, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[tuple[int, str]] = []
    resyncs: list[int] = []
    caplog.set_level(logging.INFO, logger="ccserver.ari")
    client = await _client(asterisk, events, resyncs, fail_first=True)
    try:
        await _until(lambda: len(resyncs) >= 2, 5 * BACKOFF_START_S)
    finally:
        await client.close()
    assert resyncs[:2] == [1, 2]
    failed = [r for r in caplog.records if r.getMessage() == "ari.resync_failed"]
    assert len(failed) == 1 and failed[0].levelno == logging.ERROR
    downs = [getattr(r, "fields", {}) for r in caplog.records if r.getMessage() == "ari.link_down"]
    assert "ResyncFailed" in downs[0]["error"] and downs[0]["retry_in_s"] == BACKOFF_START_S
    # No event of the unsynced connection was handed on: the link was dropped first.
    assert all(after >= 2 for after, _ in events)
