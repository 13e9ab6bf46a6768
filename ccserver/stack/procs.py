"""Start, watch and stop the stack's processes, each in its own session with a pid file.

Every part runs in the foreground of its own process (Asterisk `-f`, Redis
`daemonize no`, the controller) so that its pid is the real one; `down` stops exactly the
pids `up` wrote, after checking that each still runs the program we started (a recycled pid
is never signalled).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ccserver.errors import StackError

# Processes this interpreter started, kept so that they are reaped (and never garbage
# collected while running); a later `ccserver` invocation finds them by pid file instead.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Proc:
    """One managed process: its name, pid file, log file and a marker of its command line."""

    name: str
    run_dir: Path
    marker: str  # a substring of /proc/<pid>/cmdline that proves the pid is ours

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "log" / f"{self.name}.log"

    def pid(self) -> int | None:
        """The running pid, or None when not running (stale pid files are removed)."""
        _reap()
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            self.pid_file.unlink(missing_ok=True)
            return None
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            self.pid_file.unlink(missing_ok=True)
            return None
        # A pid that runs something else is not ours (recycled): never signal it.
        return pid if self.marker in cmdline else None

    def start(self, argv: Sequence[str], env: dict[str, str] | None = None) -> int:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                cwd=self.run_dir,
            )
        _children[proc.pid] = proc
        self.pid_file.write_text(f"{proc.pid}\n")
        # Until exec() is done /proc shows our own command line, not the program's.
        wait_until(lambda: self.pid() is not None or proc.poll() is not None, 5.0, 0.02)
        return proc.pid

    def stop(self, timeout: float = 10.0, known: int | None = None) -> bool:
        """SIGTERM, wait, then SIGKILL. Returns True when something was stopped. `known`
        is the pid seen before the program was asked to stop itself: it may have removed
        its pid file already while it is still shutting down."""
        pid = self.pid()
        if pid is None and known is not None and _alive(known):
            pid = known
        if pid is None:
            return False
        _signal(pid, signal.SIGTERM)
        if not wait_until(lambda: not _alive(pid), timeout):
            _signal(pid, signal.SIGKILL)
            wait_until(lambda: not _alive(pid), 5.0)
        self.pid_file.unlink(missing_ok=True)
        return True

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap() -> None:
    """Collect our children that have exited: a program may remove its own pid file as it
    stops (Asterisk does), after which nothing else would poll it and Python would warn
    at exit that it is "still running"."""
    for pid, child in list(_children.items()):
        if child.poll() is not None:
            del _children[pid]


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:  # our own child: poll() reaps it, so no zombie lingers
        if child.poll() is None:
            return True
        del _children[pid]
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return True
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def require(ok: bool, proc: Proc, what: str) -> None:
    if not ok:
        raise StackError(
            f"{proc.name} did not become healthy ({what}); last log lines:\n"
            f"{proc.tail()}\n(full log: {proc.log_file})"
        )
