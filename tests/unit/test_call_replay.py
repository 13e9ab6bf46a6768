"""The CallCenter driven by ARI transcripts recorded from our own Asterisk
(tests/fixtures/record_transcripts.py), one recorded event at a time, with a real Redis."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from ccserver.calls.center import CallCenter
from ccserver.config import Config
from ccserver.prompts import Prompts
from ccserver.store import Store
from ccserver.telephony.ari import AriError, parse_event
from tests.replay import SilentAsterisk, started_center, stop_center

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def center_on(
    tmp_path: Path, ari: SilentAsterisk, store: Store, prompts: Prompts, **sections: Any
) -> CallCenter:
    """A CallCenter on `ari` without IVR flows, its auto-login agents ready, as after the
    controller's first connection; `sections` are added to the configuration."""
    (tmp_path / "no-flows").mkdir()
    config = Config.model_validate(
        {
            "stack": {"run_dir": str(tmp_path / "run")},
            "ivr": {"flows_dir": str(tmp_path / "no-flows")},
            **sections,
        }
    )
    return started_center(config, ari, store, prompts)


async def test_a_caller_who_hangs_up_in_the_greeting_never_enters_the_queue(
    redis_socket: Path, tmp_path: Path, prompts: Prompts
) -> None:
    # Recorded: the caller hangs up 0.5 s into the greeting. Asterisk sends the hang-up
    # request, then the greeting's PlaybackFinished (state "failed"), then StasisEnd, all
    # in the same millisecond. Woken by that PlaybackFinished as if the greeting had played
    # out, the session used to put the departed caller in the queue until StasisEnd came.
    ari = SilentAsterisk()
    store = Store(unix_socket=str(redis_socket))
    center = center_on(tmp_path, ari, store, prompts)
    assert center.config.controller.greeting  # the recorded call heard one
    lines = (FIXTURES / "ari" / "hangup_in_greeting.jsonl").read_text().splitlines()
    kinds = [event.type for event in map(parse_event, lines) if event is not None]
    assert kinds[-3:] == ["ChannelHangupRequest", "PlaybackFinished", "StasisEnd"]
    caller = parse_event(lines[0])
    assert caller is not None and caller.channel_id is not None
    playbacks: dict[str, str] = {}  # recorded playback id -> the one the center chose
    try:
        for line in lines:
            recorded = parse_event(line)
            assert recorded is not None
            if recorded.type == "PlaybackStarted":
                started = [path.rsplit("/", 1)[1] for _, path in ari.made if "/play/" in path]
                playbacks[recorded.data["playback"]["id"]] = started[len(playbacks)]
            for theirs, ours in playbacks.items():
                line = line.replace(theirs, ours)
            event = parse_event(line)
            assert event is not None
            await center.on_event(event)
            await asyncio.sleep(0.05)  # the session takes its steps (its Redis writes too)
        record = await store.load_call(caller.channel_id)
    finally:
        await stop_center(center)
        await store.close()
    assert record is not None
    assert (record["outcome"], record["hangup_by"]) == ("abandoned", "caller")
    assert (record["queue"], record["queued_at"], record["wait_s"]) == (None, None, None)
    assert not [path for _, path in ari.made if path.endswith("/addChannel")]  # never held


class BridgingAsterisk(SilentAsterisk):
    """SilentAsterisk that keeps the bridges the center makes, refuses a second bridge of
    an id (409, as Asterisk does), and refuses the first addChannel to a call's bridge with
    Asterisk's "400 Channel not found": what the bench met when an overloaded controller
    answered an agent leg whose phone had already hung up."""

    def __init__(self) -> None:
        super().__init__()
        self.bridges: set[str] = set()
        self.refuse_adds = 1

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        answer = await super().request(method, path, params=params, body=body)
        if method == "POST" and path == "/bridges":
            bridge = str((params or {})["bridgeId"])
            if bridge in self.bridges:
                raise AriError(f"POST /bridges: 409 Bridge with id '{bridge}' exists", status=409)
            self.bridges.add(bridge)
        elif method == "DELETE" and path.startswith("/bridges/"):
            self.bridges.discard(path.rsplit("/", 1)[1])
        elif (
            path.startswith("/bridges/call-") and path.endswith("/addChannel") and self.refuse_adds
        ):
            self.refuse_adds -= 1
            raise AriError(f"POST {path}: 400 Channel not found", status=400)
        return answer


async def test_a_connection_that_fails_half_way_puts_the_caller_back_on_hold(
    redis_socket: Path, tmp_path: Path, prompts: Prompts
) -> None:
    ari = BridgingAsterisk()
    store = Store(unix_socket=str(redis_socket))
    center = center_on(
        tmp_path,
        ari,
        store,
        prompts,
        controller={"greeting": ""},
        phones={"ids": ["1001", "1002"]},
    )
    recorded = (FIXTURES / "ari" / "call_flow.jsonl").read_text().splitlines()
    caller = "1795572338.2"
    arrives = next(line for line in recorded if '"StasisStart"' in line and caller in line)
    answers = next(line for line in recorded if '"StasisStart"' in line and '"agent",' in line)
    destroyed = next(line for line in recorded if '"ChannelDestroyed"' in line and "agent-" in line)

    async def feed(line: str, leg: str | None = None) -> None:
        if leg is not None:  # the recorded leg's id becomes the one the center chose
            line = re.sub(r"agent-[0-9a-f]{32}", leg, line).replace("1795572339.3", caller)
        event = parse_event(line)
        assert event is not None
        await center.on_event(event)
        await asyncio.sleep(0.05)

    def rung() -> list[str]:
        return [leg for leg in ari.originated if leg.startswith("agent-")]

    try:
        await feed(arrives)
        first = rung()[-1]
        await feed(answers, first)  # the bridge is made, the caller leaves the music, the add fails
        made = ari.made[-4:]
        assert ("DELETE", f"/bridges/call-{caller}") in made  # no bridge left behind
        assert ("POST", "/bridges/ccserver-holding/addChannel") in made  # back on hold
        assert ("DELETE", f"/channels/{first}") in made
        first_agent = center.calls[caller].agent or ""
        await feed(destroyed, first)  # the failed leg ends: the caller is offered again
        # The agent answered: the failure is not theirs, so they are ready, not RONA.
        assert center.acd.agent_view(first_agent)["reason"] != "RONA"
        second = rung()[-1]
        assert second != first
        await feed(answers, second)
        record = await store.load_call(caller)
    finally:
        await stop_center(center)
        await store.close()
    assert record is not None
    assert record["state"] == "connected", record
    assert [a["result"] for a in record["attempts"]] == ["bridge-failed", "answered"]
