"""ARI and AMI parsing, replayed from transcripts recorded from our own Asterisk 22
(see tests/fixtures/record_transcripts.py for how they were recorded)."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pytest
from panoramisk.ami_protocol import AMIProtocol

from ccserver.telephony.ami import WATCHED_EVENTS, AmiClient, AmiEvent
from ccserver.telephony.ari import parse_event

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_every_recorded_ari_event_parses() -> None:
    lines = (FIXTURES / "ari" / "call_flow.jsonl").read_text().splitlines()
    events = [parse_event(line) for line in lines]
    assert all(e is not None for e in events)
    types = Counter(e.type for e in events if e is not None)
    assert types["StasisStart"] == 4  # two callers, two answered agent legs
    assert types["PlaybackFinished"] == 2  # the greetings


def test_recorded_stasis_start_carries_our_arguments_and_caller() -> None:
    lines = (FIXTURES / "ari" / "call_flow.jsonl").read_text().splitlines()
    starts = [e for e in map(parse_event, lines) if e is not None and e.type == "StasisStart"]
    inbound = [e for e in starts if e.args[:1] == ["inbound"]]
    agent = [e for e in starts if e.args[:1] == ["agent"]]
    assert [e.args for e in inbound] == [["inbound", "95598"], ["inbound", "95598"]]
    assert {e.channel["caller"]["number"] for e in inbound} == {"crec-1", "crec-2"}
    # An agent leg names the caller's channel id, which is the call id.
    assert {e.args[1] for e in agent} == {e.channel_id for e in inbound}


def test_recorded_unanswered_agent_leg_ends_with_cause_no_answer() -> None:
    lines = (FIXTURES / "ari" / "call_flow.jsonl").read_text().splitlines()
    events = [e for e in map(parse_event, lines) if e is not None]
    destroyed = [e for e in events if e.type == "ChannelDestroyed"]
    causes = {e.channel["name"].split("-")[0]: e.int_field("cause") for e in destroyed}
    assert causes.get("PJSIP/1001") == 19  # the phone that never answered


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not json", "not-json"),
        (b"\xff\xfe", "not-json"),
        ("[1, 2]", "no-type"),
        ('{"type": 5}', "no-type"),
        ('{"type": "StasisStart", "channel": "x"}', "bad-channel"),
    ],
)
def test_malformed_ari_events_are_rejected_and_logged(
    raw: str | bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ccserver.ari"):
        assert parse_event(raw) is None
    assert any(getattr(r, "fields", {}).get("reason") == reason for r in caplog.records)


def test_ari_event_accessors_tolerate_wrong_types() -> None:
    event = parse_event(json.dumps({"type": "X", "args": [1], "cause": "19"}))
    assert event is not None
    assert event.args == [] and event.int_field("cause") is None and event.channel_id is None


def _replay_ami(chunk: int) -> list[AmiEvent]:
    received: list[AmiEvent] = []
    client = AmiClient(host="127.0.0.1", port=1, user="u", secret="s", on_event=received.append)
    protocol = AMIProtocol()
    protocol.connection_made(transport=None)
    protocol.factory = client._manager
    data = (FIXTURES / "ami" / "session.txt").read_bytes()
    for start in range(0, len(data), chunk):
        protocol.data_received(data[start : start + chunk])
    return received


@pytest.mark.parametrize("chunk", [1, 7, 100, 4096, 1 << 20])
def test_recorded_ami_stream_gives_the_watched_events_whatever_the_framing(chunk: int) -> None:
    received = _replay_ami(chunk)
    names = Counter(e.name for e in received)
    assert set(names) <= set(WATCHED_EVENTS)
    assert names["DeviceStateChange"] == 12
    device_states = {(e.fields["Device"], e.fields["State"]) for e in received}
    assert ("PJSIP/1002", "INUSE") in device_states
    assert ("PJSIP/1002", "NOT_INUSE") in device_states


def test_ami_replay_does_not_depend_on_chunking() -> None:
    assert [e.fields for e in _replay_ami(3)] == [e.fields for e in _replay_ami(65536)]


def test_recorded_callers_leave_with_stasis_end_and_no_channel_destroyed() -> None:
    """The fact the call lifecycle relies on: a channel that entered Stasis from the
    dialplan (a caller) returns there when it hangs up, so ARI says StasisEnd and nothing
    more; agent legs we originated end with ChannelDestroyed and a cause."""
    lines = (FIXTURES / "ari" / "call_flow.jsonl").read_text().splitlines()
    events = [e for e in map(parse_event, lines) if e is not None]
    callers = {e.channel_id for e in events if e.type == "StasisStart" and e.args[0] == "inbound"}
    ended = {e.channel_id for e in events if e.type == "StasisEnd"}
    destroyed = {e.channel_id for e in events if e.type == "ChannelDestroyed"}
    assert callers <= ended
    assert not callers & destroyed
    assert len(destroyed) == 3  # the unanswered leg and the two answered agent legs
