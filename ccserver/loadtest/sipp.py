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
        for stale in (self.stat_file, self.error_file):
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
    return Sipp(
        scenario,
        work_dir=work_dir,
        name=name,
        local_port=port,
        media_port=media_port,
        extra=["-d", str(talk_ms), *keys],
    )


KEYS_MARK = "<!-- KEYS -->"


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
    """One hotline caller (number c<run>-1) who presses `keys` as in `phone_keys`."""
    extra = ["-key", "run", run]
    return _with_keys(
        "caller_keys.xml", work_dir, target, dial, keys, local_port, media_port, name, extra
    )


def _with_keys(
    template_name: str,
    work_dir: Path,
    target: str,
    dial: str,
    keys: list[str | int],
    local_port: int,
    media_port: int,
    name: str,
    extra: list[str],
) -> Sipp:
    work_dir.mkdir(parents=True, exist_ok=True)
    steps = []
    presses = 0
    for key in keys:
        if isinstance(key, int):
            steps.append(f'<pause milliseconds="{key}"/>')
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
        extra=[*extra, "-s", dial, "-m", "1", "-timeout", "90"],
    )
