"""An Asterisk for replaying recorded ARI events into a real CallCenter (unit and property
tests): the events come from a transcript or a fuzzer; the center's requests are accepted
and counted, as our Asterisk would accept them, and answered with nothing."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from ccserver.calls import CallCenter


class SilentAsterisk:
    """ARI that accepts every request and never sends an event of its own: what the
    CallCenter meets when the events it gets are all there is (the fuzzer sends them). It
    remembers the channels the center originated, so fuzzed events can name them, and
    every request, so a replay can give recorded playbacks the ids the center chose."""

    def __init__(self) -> None:
        self.originated: list[str] = []
        self.made: list[tuple[str, str]] = []  # (method, path)

    @property
    def requests(self) -> Counter[str]:
        """How many requests of each method the center made."""
        return Counter(method for method, _ in self.made)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        self.made.append((method, path))
        if method == "POST" and path.count("/") == 2 and path.startswith("/channels/"):
            self.originated.append(path.rsplit("/", 1)[1])
        return [] if method == "GET" else None


async def stop_center(center: CallCenter) -> int:
    """Cancel the center's tasks and wait for them; returns how many needed a second
    cancel. A session can need one at shutdown (seen with Python 3.11; the cause is not
    pinned down — `asyncio.wait_for` in `waiting.wait` and `asyncio.timeout` alike):
    counted here, and reported, rather than hung on."""
    stubborn = 0
    for _ in range(3):
        tasks = list(center._tasks)
        if not tasks:
            break
        center.close()
        _, pending = await asyncio.wait(tasks, timeout=2)
        stubborn += len(pending)
    assert not center._tasks, f"tasks that ignore cancellation: {center._tasks}"
    return stubborn
