"""Fuzzing the Asterisk event paths with bad input: the AMI stream (truncated, unknown
events, repeated headers, huge fields, binary junk) through the real panoramisk protocol
and our dispatcher, and ARI events (unknown types, missing fields, wrong JSON types, huge
strings) through `parse_event` and the CallCenter's event handling.

The property everywhere: nothing raises. A bad message is dropped with a logged rejection
(`ami.message_rejected`, `ari.event_rejected`) or handled as the unknown thing it is; no
handler fails (`ari.event_failed`, `task.failed`). The inputs start from the transcripts
recorded from our own Asterisk (tests/fixtures/), so most of them are nearly valid and
reach deep into the handlers. Counts of inputs tried are printed (`pytest -s`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from panoramisk.ami_protocol import AMIProtocol

from ccserver.config import Config
from ccserver.prompts import Prompts
from ccserver.store import Store
from ccserver.telephony.ami import WATCHED_EVENTS, AmiClient, AmiEvent, parse_message
from ccserver.telephony.ari import AriEvent, parse_event
from tests.fuzzing import fuzz
from tests.replay import SilentAsterisk, started_center, stop_center

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
AMI_MESSAGES = (FIXTURES / "ami" / "session.txt").read_bytes().split(b"\r\n\r\n")
ARI_EVENTS = [
    json.loads(line) for line in (FIXTURES / "ari" / "call_flow.jsonl").read_text().splitlines()
]
REFER = {
    "type": "ChannelTransfer",
    "state": "invalid",
    "refer_to": {"requested_destination": {"destination": "billing"}},
    "referred_by": {"source_channel": {"id": "agent-leg"}},
}
"""A phone's blind REFER as `transfers.on_refer` reads it (the recording has no transfer);
its source channel is pointed at a leg the center originated."""


CALLER_IDS = ["1795572338.2", "1795572339.3", "cb-y", ""]
"""The recorded callers' channel ids, a callback-like one and an empty one."""
LEGS = ["<leg-1>", "<leg-2>", "<leg-3>"]
HUGE = st.integers(10_000, 200_000).map(lambda n: "x" * n)
texts = st.one_of(st.text(max_size=40), HUGE, st.sampled_from(["", ":", "\r\n", "\x00", "é"]))


def _protocol(received: list[AmiEvent]) -> tuple[AmiClient, AMIProtocol]:
    client = AmiClient(host="127.0.0.1", port=1, user="u", secret="s", on_event=received.append)
    protocol = client._manager.config["protocol_factory"]()
    protocol.connection_made(transport=None)
    protocol.factory = client._manager
    return client, protocol


# --- AMI -------------------------------------------------------------------------------------


@st.composite
def ami_streams(draw: st.DrawFn) -> bytes:
    """A stretch of the recorded stream, each message possibly mutated: header lines
    dropped, duplicated (a repeated `Event:` or `ActionID:`), renamed to an unknown event,
    given a huge value, or replaced by junk; cut anywhere at the end."""
    start = draw(st.integers(0, len(AMI_MESSAGES) - 1))
    out: list[bytes] = []
    for message in AMI_MESSAGES[start : start + draw(st.integers(1, 12))]:
        lines = message.split(b"\r\n")
        how = draw(st.sampled_from(["keep", "drop", "repeat", "rename", "huge", "junk", "raw"]))
        if how == "drop" and lines:
            del lines[draw(st.integers(0, len(lines) - 1))]
        elif how == "repeat" and lines:
            lines.insert(0, draw(st.sampled_from(lines)))
        elif how == "rename":
            lines = [b"Event: " + draw(st.text(max_size=30)).encode(), *lines[1:]]
        elif how == "huge":
            name = draw(st.sampled_from([b"Device", b"State", b"Event", b"ActionID", b"X"]))
            lines.append(name + b": " + draw(HUGE).encode())
        elif how == "junk":
            lines = [draw(st.binary(max_size=200))]
        elif how == "raw":
            lines = [
                f"{draw(texts)}: {draw(texts)}".encode(errors="ignore")
                for _ in range(draw(st.integers(0, 6)))
            ]
        out.append(b"\r\n".join(lines))
    data = b"\r\n\r\n".join(out) + b"\r\n\r\n"
    return data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data


def test_ami_stream_fuzz_never_raises_and_passes_on_only_watched_events(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tried: Counter[str] = Counter()

    @fuzz(300)
    @given(data=ami_streams(), chunk=st.sampled_from([1, 13, 500, 1 << 20]))
    def run(data: bytes, chunk: int) -> None:
        assume(b"shutdown" not in data.lower())  # the link-level path: a reconnect, not parsing
        received: list[AmiEvent] = []
        _, protocol = _protocol(received)
        chunk = max(chunk, len(data) // 200)  # panoramisk re-joins its buffer per read: O(n²)
        for start in range(0, len(data), chunk):
            protocol.data_received(data[start : start + chunk])
        tried["streams"] += 1
        tried["bytes"] += len(data)
        tried["events"] += len(received)
        for event in received:
            assert event.name in WATCHED_EVENTS
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in event.fields.items())

    with caplog.at_level(logging.WARNING, logger="ccserver.ami"):
        run()
    tried["rejections logged"] = sum(r.msg == "ami.message_rejected" for r in caplog.records)
    print(f"AMI stream fuzz: {dict(tried)}")
    assert tried["streams"] >= 100 and tried["events"] > 0


def test_ami_repeated_event_header_is_rejected_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """panoramisk turns a repeated header into a list, on which its dispatcher raises
    inside data_received (AttributeError for `Event`, TypeError for `ActionID`), and asyncio
    then drops the whole AMI connection. We drop that one message and say so."""
    received: list[AmiEvent] = []
    _, protocol = _protocol(received)
    bad = b"Event: DeviceStateChange\r\nEvent: Reload\r\nDevice: PJSIP/1001\r\n\r\n"
    bad_id = b"Response: Success\r\nActionID: a\r\nActionID: b\r\n\r\n"
    good = b"Event: DeviceStateChange\r\nDevice: PJSIP/1001\r\nState: INUSE\r\n\r\n"
    with caplog.at_level(logging.WARNING, logger="ccserver.ami"):
        protocol.data_received(bad + bad_id + good)
    assert [e.fields.get("State") for e in received] == ["INUSE"]
    reasons = [r.fields["reason"] for r in caplog.records if r.msg == "ami.message_rejected"]
    assert reasons == ["repeated-header", "repeated-header"]


@fuzz(200)
@given(
    headers=st.dictionaries(
        st.sampled_from(["Event", "Device", "State", "ActionID", "Response", "X"]) | st.text(),
        texts | st.lists(texts, max_size=3),
    )
)
def test_ami_parse_message_takes_any_headers(headers: dict[str, Any]) -> None:
    from panoramisk.message import Message

    event = parse_message(Message(headers))
    if event is not None:
        assert isinstance(event.name, str) and event.name
        assert all(isinstance(v, str) for v in event.fields.values())


# --- ARI: parse_event ----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@st.composite
def mutated_events(draw: st.DrawFn, channel_ids: list[str] | None = None) -> dict[str, Any]:
    """A recorded ARI event with fields dropped, retyped, made huge, or its type unknown;
    channel ids (and args naming them) come from a small pool so events meet each other."""
    event = json.loads(json.dumps(draw(st.sampled_from([*ARI_EVENTS, REFER]))))
    if event["type"] == "ChannelTransfer":
        if channel_ids:
            event["referred_by"]["source_channel"]["id"] = draw(st.sampled_from(channel_ids))
        if draw(st.booleans()):  # its nested objects are what on_refer digs into
            outer = draw(st.sampled_from(["refer_to", "referred_by"]))
            inner = "requested_destination" if outer == "refer_to" else "source_channel"
            if draw(st.booleans()):
                event[outer] = draw(json_values)
            else:
                event[outer][inner] = draw(json_values)
    for _ in range(draw(st.integers(0, 3))):
        target = event
        if isinstance(event.get("channel"), dict) and draw(st.booleans()):
            target = event["channel"]
        key = draw(st.sampled_from(sorted(target) or ["type"]))
        how = draw(st.sampled_from(["drop", "retype", "huge"]))
        if how == "drop":
            target.pop(key, None)
        elif how == "retype":
            target[key] = draw(json_values)
        else:
            target[key] = draw(HUGE)
    if draw(st.integers(0, 9)) == 0:
        event["type"] = draw(st.text(max_size=20) | HUGE)
    if channel_ids is not None and isinstance(event.get("channel"), dict):
        event["channel"]["id"] = draw(st.sampled_from(channel_ids))
        if draw(st.booleans()):
            kinds = ["inbound", "inbound", "agent", "agent", "callback", "feature", "", "x"]
            kind = draw(st.sampled_from(kinds))
            event["args"] = [kind, draw(st.sampled_from([*channel_ids, "95598", ""]))]
    return event


def test_ari_parse_event_fuzz_returns_an_event_or_logs_a_rejection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tried: Counter[str] = Counter()

    @fuzz(400)
    @given(
        raw=mutated_events().map(json.dumps)
        | st.binary(max_size=300)
        | json_values.map(json.dumps)
        | mutated_events().map(lambda e: json.dumps(e)[: len(json.dumps(e)) // 2])
        | st.integers(1, 100_000).map(lambda n: '{"type": "X", "a": ' + "[" * n)
        | st.integers(1, 100_000).map(lambda n: "[" * n + "]" * n)
    )
    def run(raw: str | bytes) -> None:
        caplog.clear()
        event = parse_event(raw)
        tried["inputs"] += 1
        if event is None:
            tried["rejected"] += 1
            assert any(r.msg == "ari.event_rejected" for r in caplog.records)
        else:
            tried["parsed"] += 1
            assert isinstance(event.type, str)
            assert event.channel_id is None or isinstance(event.channel_id, str)
            assert all(isinstance(a, str) for a in event.args)

    with caplog.at_level(logging.WARNING, logger="ccserver.ari"):
        run()
    print(f"ARI parse_event fuzz: {dict(tried)}")
    assert tried["parsed"] > 0 and tried["rejected"] > 0


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("[" * 100_000, "not-json"),  # json.loads raised RecursionError out of the parser
        ('{"type": "StasisStart", "channel": {"id": ""}, "args": ["inbound"]}', "bad-channel"),
        ('{"type": "StasisEnd", "channel": {"id": 7}}', "bad-channel"),
        ('{"type": "ChannelTransfer", "referred_by": "1001"}', "bad-object"),
        ('{"type": "ChannelTransfer", "refer_to": {"requested_destination": [1]}}', "bad-object"),
    ],
)
def test_ari_events_the_fuzzer_broke_handlers_with_are_rejected(
    raw: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by the fuzzers above: a nesting deeper than Python's stack (the exception
    escaped `parse_event` and ended the websocket task), an empty channel id (a session
    for call "" failed in the router), a `referred_by` that is not an object (on_refer
    raised AttributeError)."""
    with caplog.at_level(logging.WARNING, logger="ccserver.ari"):
        assert parse_event(raw) is None
    assert [r.fields["reason"] for r in caplog.records] == [reason]


def test_ari_null_sub_objects_count_as_absent() -> None:
    event = parse_event('{"type": "ChannelTransfer", "refer_to": null, "referred_by": {}}')
    assert event is not None and event.type == "ChannelTransfer"


# --- ARI: the CallCenter -------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Generating overly large repr")  # the huge fields
def test_call_center_takes_fuzzed_event_sequences(
    redis_socket: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = Config.model_validate(
        {
            "stack": {"run_dir": str(tmp_path / "run")},
            "controller": {"greeting": ""},
            "acd": {"announce_every_s": 0},
        }
    )
    prompts = Prompts(tmp_path / "prompts")
    tried: Counter[str] = Counter()
    loop = asyncio.new_event_loop()

    @fuzz(150)
    @given(data=st.data(), steps=st.integers(1, 12))
    def run(data: st.DataObject, steps: int) -> None:
        caplog.clear()
        store = Store(unix_socket=str(redis_socket))
        ari = SilentAsterisk()
        center = started_center(config, ari, store, prompts)

        async def feed(event: AriEvent) -> None:
            # Bounded: a handler that waits for Asterisk under the lock would stall them all.
            await asyncio.wait_for(center.on_event(event), 10)
            for _ in range(3):
                await asyncio.sleep(0)  # let the sessions the events started take a step

        async def stop() -> int:
            stubborn = await stop_center(center)
            await store.close()
            return stubborn

        try:
            for _ in range(steps):
                drawn = json.dumps(data.draw(mutated_events([*CALLER_IDS, *LEGS])))
                # A placeholder names the n-th last leg the center originated (drawing does
                # not depend on that state: hypothesis replays draws to shrink a failure).
                for n, leg in enumerate(LEGS, 1):
                    if len(ari.originated) >= n:
                        drawn = drawn.replace(leg, ari.originated[-n])
                raw = drawn
                event = parse_event(raw)
                tried["events"] += 1
                if event is not None:
                    tried["events handled"] += 1
                    loop.run_until_complete(feed(event))
        finally:
            tried["tasks needing a second cancel"] += loop.run_until_complete(stop())
        tried["sequences"] += 1
        tried["ari requests made"] += sum(ari.requests.values())
        tried["agent legs originated"] += len(ari.originated)
        failed = [r for r in caplog.records if r.msg in ("task.failed", "ari.event_failed")]
        failed += [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
        assert not failed, [(r.getMessage(), getattr(r, "fields", {})) for r in failed]

    try:
        with caplog.at_level(logging.INFO):
            run()
    finally:
        loop.close()
    print(f"CallCenter event fuzz: {dict(tried)}")
    assert tried["sequences"] >= 100
