"""Run SIPp as a child process and read its statistics file.

The demo, the integration tests and (later) the load harness all place real calls through
this one wrapper. SIPp runs without its interactive screen (`-nostdin`, output to a log
file); a run is judged by its statistics file (`-trace_stat`: SuccessfulCall /
FailedCall), as the sandbox makes SIPp print harmless epoll warnings on stderr.
Traffic goes to loopback only: `remote` must be a 127.0.0.0/8 address.
"""

from __future__ import annotations

import csv
import ipaddress
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ccserver.errors import InputError
from ccserver.loadtest import dtmf

SCENARIOS = Path(__file__).resolve().parents[2] / "sipp_scenarios"
IVR_MIX_95598 = SCENARIOS / "ivr_mix_95598.csv"
"""The default branch mix of callers walking the 95598 flow (see load_caller.xml)."""
TIMING_SUFFIX = ".timing.log"
"""Per-event timing lines (SIPp `<log>` actions) of a process named `<name>` go to
`<name>.timing.log` in its work dir; `ccserver.loadtest.timing.collect` reads them."""
TALK_AUDIO = "agent-talk.pcmu"
"""What agents' phones send while talking (agent_*.xml `rtp_stream`, a path relative to the
work dir SIPp runs in): one second of PCMU silence, looped."""


@dataclass(frozen=True)
class SippStats:
    successful: int
    failed: int
    created: int

    @classmethod
    def read(cls, stat_file: Path) -> SippStats:
        """The last row of a `-trace_stat` CSV (semicolon separated, cumulative columns)."""
        try:
            with open(stat_file, newline="", encoding="latin-1") as f:
                rows = list(csv.reader(f, delimiter=";"))
        except FileNotFoundError:
            return cls(0, 0, 0)
        if len(rows) < 2:
            return cls(0, 0, 0)
        last = dict(zip(rows[0], rows[-1], strict=False))

        def num(column: str) -> int:
            try:
                return int(last.get(column, "0") or 0)
            except ValueError:
                return 0

        return cls(num("SuccessfulCall(C)"), num("FailedCall(C)"), num("TotalCallCreated"))


class Sipp:
    """One SIPp process: a UAC placing calls, or a UAS answering them."""

    def __init__(
        self,
        scenario: str,
        *,
        work_dir: Path,
        name: str,
        local_port: int,
        media_port: int,
        remote: str | None = None,
        extra: list[str] | None = None,
    ) -> None:
        if remote is not None:
            host = remote.rsplit(":", 1)[0]
            if not ipaddress.ip_address(host).is_loopback:
                raise InputError(f"SIPp target {remote}: load goes to loopback addresses only")
        self.name = name
        self.work_dir = work_dir
        self.stat_file = work_dir / f"{name}.stat.csv"
        self.error_file = work_dir / f"{name}.errors.log"
        self.log_file = work_dir / f"{name}.log"
        self.timing_file = work_dir / f"{name}{TIMING_SUFFIX}"
        work_dir.mkdir(parents=True, exist_ok=True)
        self.argv = (
            ["sipp"]
            + ([remote] if remote else [])
            + [
                "-sf",
                str(SCENARIOS / scenario),
                "-i",
                "127.0.0.1",
                "-p",
                str(local_port),
                "-mp",
                str(media_port),
                "-nostdin",
                "-trace_stat",
                "-stf",
                str(self.stat_file),
                "-fd",
                "1",
                "-trace_err",
                "-error_file",
                str(self.error_file),
            ]
            + (extra or [])
        )
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Sipp:
        for stale in (self.stat_file, self.error_file, self.timing_file):
            stale.unlink(missing_ok=True)
        with open(self.log_file, "wb") as log:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.work_dir,
            )
        return self

    def wait(self, timeout: float) -> SippStats:
        """Wait for a UAC to finish its calls (killing it at the bound) and read its stats."""
        assert self._proc is not None, "start() first"
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
        return self.stats()

    def quit_softly(self) -> None:
        """No new calls (SIGUSR1, SIPp's `q`); the calls up go on, then SIPp exits."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGUSR1)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> SippStats:
        """Stop a UAS (or a UAC early): SIGUSR1 asks SIPp to quit softly, then SIGKILL."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGUSR1)
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        return self.stats()

    def stats(self) -> SippStats:
        return SippStats.read(self.stat_file)

    def errors(self) -> str:
        """SIPp's error log without the sandbox's harmless epoll lines."""
        try:
            text = self.error_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(line for line in text.splitlines() if "epoll" not in line)


def caller(
    work_dir: Path,
    *,
    target: str,
    service: str,
    run: str,
    calls: int,
    rate: float,
    limit: int,
    local_port: int,
    media_port: int,
    name: str = "callers",
    abandon_after_ms: int | None = None,
) -> Sipp:
    """A SIPp UAC placing `calls` calls to `service` at `rate` calls/s, `limit` at once;
    with `abandon_after_ms` each caller hangs up that long after being answered."""
    abandon = [] if abandon_after_ms is None else ["-d", str(abandon_after_ms)]
    return Sipp(
        "caller.xml" if abandon_after_ms is None else "caller_abandon.xml",
        work_dir=work_dir,
        name=name,
        local_port=local_port,
        media_port=media_port,
        remote=target,
        extra=[
            "-s",
            service,
            "-key",
            "run",
            run,
            "-m",
            str(calls),
            "-r",
            str(rate),
            "-l",
            str(limit),
            "-timeout",
            "180",
            "-timeout_error",
            *abandon,
        ],
    )


def agents(
    work_dir: Path,
    *,
    port: int,
    media_port: int,
    talk_ms: int,
    answer: bool = True,
    refer_to: str | None = None,
    name: str = "agents",
) -> Sipp:
    """A SIPp UAS answering (after `talk_ms` the agent hangs up, or with `refer_to`
    transfers the call there by REFER) or never answering."""
    if refer_to is not None:
        scenario, keys = "agent_refer.xml", ["-key", "refer_to", refer_to]
    else:
        scenario, keys = ("agent_answer.xml" if answer else "agent_noanswer.xml"), []
    _talk_audio(work_dir)
    return Sipp(
        scenario,
        work_dir=work_dir,
        name=name,
        local_port=port,
        media_port=media_port,
        extra=["-d", str(talk_ms), *keys],
    )


KEYS_MARK = "<!-- KEYS -->"
HANG_UP = "hangup"
"""A step of `caller_keys`: the caller hangs up there (caller_keys.xml's `hangup` label)."""


def phone_keys(
    work_dir: Path,
    *,
    target: str,
    phone: str,
    password: str,
    dial: str,
    keys: list[str | int],
    local_port: int,
    media_port: int,
    name: str,
) -> Sipp:
    """A phone (authenticating as `phone`) dials `dial` and presses `keys`: strings of
    keys (RFC 2833, 400 ms apart) and ints (pauses in ms), e.g. `[1500, "1001#", 3000]`."""
    extra = ["-key", "phone", phone, "-au", phone, "-ap", password]
    return _with_keys(
        "phone_keys.xml", work_dir, target, dial, keys, local_port, media_port, name, extra
    )


def caller_keys(
    work_dir: Path,
    *,
    target: str,
    dial: str,
    run: str,
    keys: list[str | int],
    local_port: int,
    media_port: int,
    name: str,
) -> Sipp:
    """One hotline caller (number c<run>-1) who presses `keys` as in `phone_keys`, and may
    hang up: a `HANG_UP` step ends the call from the caller's side."""
    extra = ["-key", "run", run]
    return _with_keys(
        "caller_keys.xml", work_dir, target, dial, keys, local_port, media_port, name, extra
    )


def customers(
    work_dir: Path, *, port: int, media_port: int, keys: list[str | int], name: str
) -> Sipp:
    """A SIPp UAS answering every call the center places to `port` (outbound calls) and
    pressing `keys` as in `phone_keys`; every call logs its INVITE and the center's BYE
    with the dialled number (`customer_calls`)."""
    extra = _timing(work_dir, name)
    return _with_keys(
        "customer_keys.xml", work_dir, None, None, keys, port, media_port, name, extra
    )


def busy_customers(work_dir: Path, *, port: int, media_port: int, name: str) -> Sipp:
    """A SIPp UAS answering every call to `port` with 486 Busy Here (logged per number)."""
    return Sipp(
        "customer_busy.xml",
        work_dir=work_dir,
        name=name,
        local_port=port,
        media_port=media_port,
        extra=_timing(work_dir, name),
    )


def customer_calls(sipp: Sipp) -> list[tuple[str, float, float | None]]:
    """The calls a `customers` UAS took: (dialled number, INVITE at, BYE at or None), in
    the order they came (unix seconds, from SIPp's `[timestamp]`)."""
    calls: list[tuple[str, float, float | None]] = []
    open_calls: dict[str, int] = {}
    text = sipp.timing_file.read_text(encoding="latin-1") if sipp.timing_file.exists() else ""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 5 or parts[0] not in ("customer-invite", "customer-bye"):
            continue  # a line cut by a kill, or another scenario's
        try:
            at = float(parts[3])
        except ValueError:
            continue
        if parts[0] == "customer-invite":
            open_calls[parts[4]] = len(calls)
            calls.append((parts[4], at, None))
        elif parts[4] in open_calls:
            index = open_calls.pop(parts[4])
            calls[index] = (calls[index][0], calls[index][1], at)
    return calls


def _with_keys(
    template_name: str,
    work_dir: Path,
    target: str | None,
    dial: str | None,
    keys: list[str | int],
    local_port: int,
    media_port: int,
    name: str,
    extra: list[str],
) -> Sipp:
    """`template_name` with its KEYS mark replaced by `keys`: a UAC placing one call to
    `dial` at `target`, or (both None) a UAS answering every call at `local_port`."""
    work_dir.mkdir(parents=True, exist_ok=True)
    steps = []
    presses = 0
    for key in keys:
        if isinstance(key, int):
            steps.append(f'<pause milliseconds="{key}"/>')
            continue
        if key == HANG_UP and template_name == "caller_keys.xml":
            steps.append('<nop next="hangup"/>')
            continue
        for char in key:
            if char not in dtmf.EVENTS:
                raise InputError(f"no RFC 2833 key {char!r}")
            pcap = dtmf.write_press(work_dir / f"{name}-key{presses}.pcap", char, presses)
            presses += 1
            steps.append(f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>')
            steps.append('<pause milliseconds="400"/>')
    template = (SCENARIOS / template_name).read_text(encoding="latin-1")
    scenario = work_dir / f"{name}.xml"
    scenario.write_text(template.replace(KEYS_MARK, "\n  ".join(steps)), encoding="latin-1")
    return Sipp(
        str(scenario),
        work_dir=work_dir,
        name=name,
        local_port=local_port,
        media_port=media_port,
        remote=target,
        extra=extra if dial is None else [*extra, "-s", dial, "-m", "1", "-timeout", "90"],
    )


def load_callers(
    work_dir: Path,
    *,
    target: str,
    service: str,
    run: str,
    calls: int,
    rate: float,
    limit: int,
    local_port: int,
    media_port: int,
    name: str,
    mix: Path | None = None,
    abandon_wait_ms: tuple[int, int] | None = None,
) -> Sipp:
    """A SIPp UAC for load runs (load_caller.xml): `calls` calls c<run>-<n> to `service` at
    `rate` calls/s, `limit` at once. With `mix` (an injection CSV of IVR key steps, e.g.
    IVR_MIX_95598) each caller walks the IVR along its row; with `abandon_wait_ms` each
    hangs up after a uniform random wait in that range counted from the answer, unless the
    far end hung up first. Every caller logs its timing to `<name>.timing.log`."""
    if calls < 1 or rate <= 0 or limit < 1:
        raise InputError(f"load callers: calls {calls}, rate {rate}, limit {limit} must be > 0")
    low, high = _range("abandon wait", abandon_wait_ms) if abandon_wait_ms else (0, 0)
    if mix is None:
        work_dir.mkdir(parents=True, exist_ok=True)
        mix = work_dir / f"{name}.direct.csv"
        mix.write_text("SEQUENTIAL\ndirect;;0;;0;;0;\n", encoding="latin-1")
    elif not mix.is_file():
        raise InputError(f"IVR mix {mix}: no such file (rows: branch;queue;wait;keys;...)")
    # Room for the longest IVR walk and wait (180 s) of the last call placed.
    bound = int(calls / rate) + 300
    return Sipp(
        "load_caller.xml",
        work_dir=work_dir,
        name=name,
        local_port=local_port,
        media_port=media_port,
        remote=target,
        extra=[
            "-s",
            service,
            "-key",
            "run",
            run,
            "-key",
            "abandon_min",
            str(low),
            "-key",
            "abandon_max",
            str(high),
            "-inf",
            str(mix.resolve()),
            "-m",
            str(calls),
            "-r",
            str(rate),
            "-l",
            str(limit),
            "-timeout",
            str(bound),
            "-timeout_error",
            *_timing(work_dir, name),
        ],
    )


def agent_pool(
    work_dir: Path, *, port: int, media_port: int, talk_ms: tuple[int, int], name: str
) -> Sipp:
    """A SIPp UAS (agent_pool.xml) answering for every agent whose static contact points at
    `port`; each call talks (sending RTP) for a uniform random time in `talk_ms`, then the
    agent hangs up. Every call logs its timing, keyed by the caller's number."""
    low, high = _range("talk time", talk_ms)
    _talk_audio(work_dir)
    return Sipp(
        "agent_pool.xml",
        work_dir=work_dir,
        name=name,
        local_port=port,
        media_port=media_port,
        extra=[
            "-key",
            "talk_min",
            str(low),
            "-key",
            "talk_max",
            str(high),
            *_timing(work_dir, name),
        ],
    )


def registrations(
    work_dir: Path,
    *,
    target: str,
    phones: dict[str, str],
    local_port: int,
    media_port: int,
    name: str,
) -> Sipp:
    """A SIPp UAC (register.xml) registering each phone id once with digest auth (password
    from `phones`), then unregistering it, so agents' static contacts stay their only ones."""
    if not phones:
        raise InputError("registrations: no phones given")
    rows = ["SEQUENTIAL"]
    for phone, password in sorted(phones.items()):
        if not phone or any(c in phone + password for c in " \t;[]\r\n"):
            raise InputError(f"phone {phone!r}: ids and passwords cannot hold ; [ ] or spaces")
        rows.append(f"{phone};[authentication username={phone} password={password}]")
    work_dir.mkdir(parents=True, exist_ok=True)
    csv_file = work_dir / f"{name}.phones.csv"
    csv_file.write_text("\n".join(rows) + "\n", encoding="latin-1")
    return Sipp(
        "register.xml",
        work_dir=work_dir,
        name=name,
        local_port=local_port,
        media_port=media_port,
        remote=target,
        extra=[
            "-inf",
            str(csv_file),
            "-m",
            str(len(phones)),
            "-r",
            "50",
            "-l",
            "100",
            "-timeout",
            str(len(phones) // 50 + 60),
            "-timeout_error",
            *_timing(work_dir, name),
        ],
    )


def _range(what: str, bounds: tuple[int, int]) -> tuple[int, int]:
    low, high = bounds
    if not 0 <= low <= high or high == 0:
        raise InputError(f"{what} {low}-{high} ms: give 0 <= min <= max, max > 0")
    return low, high


def _timing(work_dir: Path, name: str) -> list[str]:
    return ["-trace_logs", "-log_file", str(work_dir / f"{name}{TIMING_SUFFIX}")]


def _talk_audio(work_dir: Path) -> None:
    """Write the agents' talk audio: 8000 bytes of PCMU silence (0xFF), one second at
    8 kHz; SIPp loops it for as long as the call lasts."""
    work_dir.mkdir(parents=True, exist_ok=True)
    audio = work_dir / TALK_AUDIO
    if not audio.exists():
        audio.write_bytes(b"\xff" * 8000)
