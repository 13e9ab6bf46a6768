"""The CallCenter driven by ARI transcripts recorded from our own Asterisk
(tests/fixtures/record_transcripts.py), one recorded event at a time, with a real Redis."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from ccserver.calls import CallCenter
from ccserver.config import Config
from ccserver.prompts import Prompts
from ccserver.store import Store
from ccserver.telephony.ari import parse_event
from tests.replay import SilentAsterisk, stop_center

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


async def test_a_caller_who_hangs_up_in_the_greeting_never_enters_the_queue(
    redis_socket: Path, tmp_path: Path, prompts: Prompts
) -> None:
    # Recorded: the caller hangs up 0.5 s into the greeting. Asterisk sends the hang-up
    # request, then the greeting's PlaybackFinished (state "failed"), then StasisEnd, all
    # in the same millisecond. Woken by that PlaybackFinished as if the greeting had played
    # out, the session used to put the departed caller in the queue until StasisEnd came.
    (tmp_path / "no-flows").mkdir()
    config = Config.model_validate(
        {
            "stack": {"run_dir": str(tmp_path / "run")},
            "ivr": {"flows_dir": str(tmp_path / "no-flows")},
        }
    )
    assert config.controller.greeting  # the recorded call heard one
    ari = SilentAsterisk()
    store = Store(unix_socket=str(redis_socket))
    center = CallCenter(config, ari, store, prompts)
    center.acd.start_fresh(time.time())
    center.started = True
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
