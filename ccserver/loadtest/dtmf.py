"""RFC 2833 key presses as pcap files for SIPp's `play_pcap_audio`.

SIPp ships one pcap per digit, but every copy carries the same RTP sequence numbers and
timestamps: replayed one after another in a call, Asterisk takes the later ones for
repeats of an event it has already seen and drops them (measured here: of "1001" only "1"
and "0" arrived). So we write our own: one file per key press, each with the digit's event
at its own place in one RTP stream (sequence and timestamp move on from press to press,
one SSRC), which Asterisk reads as a person typing. `*` and `#` are events 10 and 11, so
a flow's terminator key can be pressed too.
"""

from __future__ import annotations

import struct
from pathlib import Path

EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
PAYLOAD_TYPE = 101
SSRC = 0x43435356
PACKET_MS = 20
START_PACKETS = 5  # 100 ms of tone
END_PACKETS = 3  # the end packet is sent three times, as RFC 4733 advises


def write_press(path: Path, key: str, index: int) -> Path:
    """A pcap pressing `key`, the `index`-th press of the call (0-based)."""
    if key not in EVENTS:
        raise ValueError(f"no RFC 2833 event for key {key!r}")
    seq = 1000 + index * 20
    timestamp = 160_000 + index * 16_000  # 2 s of 8 kHz samples between presses
    packets = []
    for n in range(START_PACKETS + END_PACKETS):
        end = n >= START_PACKETS
        duration = 160 * (min(n, START_PACKETS - 1) + 1)
        marker = 0x80 if n == 0 else 0
        rtp = struct.pack("!BBHII", 0x80, marker | PAYLOAD_TYPE, seq + n, timestamp, SSRC)
        event = struct.pack("!BBH", EVENTS[key], (0x80 if end else 0) | 10, duration)
        packets.append((n * PACKET_MS, rtp + event))
    path.write_bytes(_pcap(packets))
    return path


def _pcap(packets: list[tuple[int, bytes]]) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]  # Ethernet link type
    for at_ms, payload in packets:
        udp = struct.pack("!HHHH", 6000, 6000, 8 + len(payload), 0) + payload
        ip = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(udp),
            0,
            0,
            64,
            17,
            0,
            bytes([127, 0, 0, 1]),
            bytes([127, 0, 0, 1]),
        )
        frame = b"\x00" * 12 + b"\x08\x00" + ip + udp
        seconds, micros = divmod(at_ms * 1000, 1_000_000)
        out.append(struct.pack("<IIII", seconds, micros, len(frame), len(frame)) + frame)
    return b"".join(out)
