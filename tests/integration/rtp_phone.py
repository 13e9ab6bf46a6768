"""The media half of a scriptable test caller: SIPp places the call (`desk_caller.xml`,
whose SDP names this phone's UDP port) and this object is its RTP.

It sends a steady PCMU tone (or silence), RFC 2833 key presses, and keeps every packet it
receives with its arrival time, so a test asserts what the caller *heard*: packets, and the
dominant frequency of the audio in a time window (a 440 Hz music-on-hold tone, the agent's
1000 Hz microphone).

Asterisk sends to the port of the SDP (this socket) from the answer on, so the phone
learns Asterisk's address from the first packet and answers from the same socket (the
callers endpoint has `rtp_symmetric = yes`).
"""

from __future__ import annotations

import cmath
import contextlib
import math
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass

PCMU, EVENT = 0, 101
FRAME = 160  # 20 ms at 8 kHz
SILENCE = 0xFF  # µ-law zero


def _ulaw_decode(byte: int) -> int:
    value = ~byte & 0xFF
    sign, exponent, mantissa = value & 0x80, (value >> 4) & 0x07, value & 0x0F
    sample = ((mantissa << 3) + 0x84) << exponent
    sample -= 0x84
    return -sample if sign else sample


def _ulaw_encode(sample: int) -> int:
    sign = 0x80 if sample < 0 else 0
    sample = min(abs(sample), 32635) + 0x84
    exponent = max(0, sample.bit_length() - 8)
    exponent = min(exponent, 7)
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


DECODE = [_ulaw_decode(b) for b in range(256)]


@dataclass(frozen=True)
class Heard:
    packets: int
    peak_hz: float  # the strongest frequency, 0 when silent
    share: float  # of the energy within ±25 Hz of the peak
    rms: float
    spectrum: tuple[tuple[float, float], ...] = ()  # (hz, power) in 5 Hz bins

    def share_at(self, hz: float) -> float:
        """The share of the energy within ±25 Hz of `hz` (0 when silent): a mix of two
        tones of equal loudness gives each about one half."""
        total = sum(p for _, p in self.spectrum) or 1.0
        return sum(p for f, p in self.spectrum if abs(f - hz) <= 25) / total


class RtpPhone:
    def __init__(self, host: str = "127.0.0.1", tone_hz: float = 600.0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.received: list[tuple[float, int, bytes]] = []  # arrival, payload type, payload
        self.peer: tuple[str, int] | None = None
        self.tone_hz = tone_hz  # what it sends
        self._keys: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._receive, daemon=True),
            threading.Thread(target=self._send, daemon=True),
        ]

    def start(self) -> RtpPhone:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(2)
        self.sock.close()

    def press(self, keys: str) -> None:
        """Send each key as an RFC 2833 event (after the keys queued before)."""
        with self._lock:
            self._keys.extend(keys)

    def keys_pending(self) -> int:
        with self._lock:
            return len(self._keys)

    def heard(self, since: float, until: float | None = None) -> Heard:
        """What arrived as PCMU between `since` and `until` (time.time())."""
        end = time.time() if until is None else until
        samples: list[int] = []
        packets = 0
        for at, pt, payload in list(self.received):
            if since <= at < end and pt == PCMU:
                packets += 1
                samples.extend(DECODE[b] for b in payload)
        return _analyse(samples, packets)

    # --- threads ---------------------------------------------------------------------------
    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(2048)
            except (TimeoutError, OSError):
                continue
            if len(data) > 12:
                self.peer = self.peer or source
                self.received.append((time.time(), data[1] & 0x7F, data[12:]))

    def _send(self) -> None:
        while self.peer is None and not self._stop.is_set():
            time.sleep(0.01)
        seq, ts, ssrc = random.randrange(65536), random.randrange(2**31), random.randrange(2**31)
        phase, started = 0.0, time.monotonic()
        frames = 0
        while not self._stop.is_set():
            with self._lock:
                key = self._keys.pop(0) if self._keys else None
            if key is not None:
                seq, ts = self._send_key(key, seq, ts, ssrc, started, frames)
                frames += 25
                continue
            payload = bytearray()
            for _ in range(FRAME):
                payload.append(_ulaw_encode(int(8000 * math.sin(phase))))
                phase += 2 * math.pi * self.tone_hz / 8000
            self._packet(PCMU, seq, ts, ssrc, bytes(payload), marker=False)
            seq, ts, frames = (seq + 1) & 0xFFFF, ts + FRAME, frames + 1
            _sleep_until(started + frames * 0.02)

    def _send_key(
        self, key: str, seq: int, ts: int, ssrc: int, started: float, frames: int
    ) -> tuple[int, int]:
        """One key: 10 event packets (200 ms), 3 end packets, then 12 frames of silence."""
        event = "0123456789*#".index(key)
        for n in range(13):
            end = n >= 10
            duration = min(n + 1, 10) * FRAME
            body = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
            self._packet(EVENT, seq, ts, ssrc, body, marker=n == 0)
            seq = (seq + 1) & 0xFFFF
            _sleep_until(started + (frames + min(n + 1, 10)) * 0.02)
        ts += 10 * FRAME
        for n in range(12):
            self._packet(PCMU, seq, ts, ssrc, bytes([SILENCE]) * FRAME, marker=False)
            seq, ts = (seq + 1) & 0xFFFF, ts + FRAME
            _sleep_until(started + (frames + 13 + n) * 0.02)
        return seq, ts

    def _packet(
        self, pt: int, seq: int, ts: int, ssrc: int, payload: bytes, *, marker: bool
    ) -> None:
        header = struct.pack(
            "!BBHII", 0x80, (0x80 if marker else 0) | pt, seq, ts & 0xFFFFFFFF, ssrc
        )
        with contextlib.suppress(OSError):  # the phone is stopping
            self.sock.sendto(header + payload, self.peer)  # type: ignore[arg-type]


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _analyse(samples: list[int], packets: int) -> Heard:
    """The strongest frequency of the audio by a DFT over 5 Hz bins from 100 to 3500 Hz,
    on its last quarter of a second (plain Python, no numpy)."""
    if not samples:
        return Heard(packets, 0.0, 0.0, 0.0)
    points = samples[-2000:]
    rms = math.sqrt(sum(s * s for s in points) / len(points))
    if rms < 50:
        return Heard(packets, 0.0, 0.0, rms)
    powers: dict[float, float] = {}
    for hz in range(100, 3500, 5):
        w = cmath.exp(-2j * math.pi * hz / 8000)
        acc, z = 0j, 1 + 0j
        for s in points:
            acc += s * z
            z *= w
        powers[float(hz)] = abs(acc) ** 2
    peak = max(powers, key=lambda hz: powers[hz])
    total = sum(powers.values()) or 1.0
    near = sum(p for hz, p in powers.items() if abs(hz - peak) <= 25)
    return Heard(packets, peak, near / total, rms, tuple(powers.items()))
