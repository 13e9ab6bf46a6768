"""An Asterisk for replaying recorded ARI events into a real CallCenter (unit and property
tests): the events come from a transcript or a fuzzer; the center's requests are accepted
and counted, as our Asterisk would accept them, and answered with nothing."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from ccserver.acd import Acd
from ccserver.calls.center import CallCenter
from ccserver.calls.journal import Journal, LiveStore
from ccserver.calls.stasis import ROUTES
from ccserver.config import Config
from ccserver.prompts import Prompts
from ccserver.telephony.rest import Ari, AriRest


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


def started_center(
    config: Config, ari: Ari, store: LiveStore, prompts: Prompts, *, fresh: bool = True
) -> CallCenter:
    """A CallCenter as the controller makes it (without flows, notices or history), its
    auto-login agents ready as after the first connection (or, not `fresh`, as a
    restarted controller: its state loaded from Redis at the first resync), and strict: a
    call-state move the transition table forbids raises."""
    strict = config.controller.model_copy(update={"strict_states": True})
    config = config.model_copy(update={"controller": strict})
    center = CallCenter(
        config=config,
        ari=AriRest(ari),
        journal=Journal(store, None, short_abandon_s=config.reports.short_abandon_s),
        prompts=prompts,
        acd=Acd(config),
        routes=ROUTES,
    )
    if fresh:
        center.acd.start_fresh(time.time())
        center.loaded()
    return center


async def stop_center(center: CallCenter) -> int:
    """Cancel the center's tasks and wait for them; returns how many needed a second
    cancel. A session can need one at shutdown (seen with Python 3.11; the cause is not
    pinned down — `asyncio.wait_for` in `queueing.wait` and `asyncio.timeout` alike):
    counted here, and reported, rather than hung on."""
    stubborn = 0
    for _ in range(3):
        tasks = list(center.tasks)
        if not tasks:
            break
        center.close()
        _, pending = await asyncio.wait(tasks, timeout=2)
        stubborn += len(pending)
    assert not center.tasks, f"tasks that ignore cancellation: {center.tasks}"
    return stubborn
