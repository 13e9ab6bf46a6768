"""Managed processes: pid files, health of a pid, and never signalling a stranger."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ccserver.stack.procs import Proc


def test_start_and_stop_a_real_process(tmp_path: Path) -> None:
    proc = Proc("sleeper", tmp_path, "ccserver-test-sleeper")
    pid = proc.start([sys.executable, "-c", "import time; time.sleep(60)", "ccserver-test-sleeper"])
    assert proc.pid() == pid
    assert proc.pid_file.read_text().strip() == str(pid)
    assert proc.stop(timeout=5) is True
    assert proc.pid() is None and not proc.pid_file.exists()
    assert proc.stop() is False  # stopping twice is harmless


def test_a_process_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    proc = Proc("stubborn", tmp_path, "ccserver-test-stubborn")
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    proc.start([sys.executable, "-c", code, "ccserver-test-stubborn"])
    assert proc.stop(timeout=0.5) is True
    assert proc.pid() is None


def test_a_recycled_pid_running_something_else_is_not_ours(tmp_path: Path) -> None:
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        proc = Proc("redis", tmp_path, "redis-server")
        proc.pid_file.parent.mkdir(parents=True)
        proc.pid_file.write_text(str(stranger.pid))
        assert proc.pid() is None
        assert proc.stop() is False
        assert stranger.poll() is None  # never signalled
    finally:
        stranger.kill()
        stranger.wait()


def test_a_stale_pid_file_is_cleaned(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    proc = Proc("asterisk", tmp_path, "asterisk")
    proc.pid_file.parent.mkdir(parents=True)
    proc.pid_file.write_text(str(gone.pid))
    assert proc.pid() is None
    assert not proc.pid_file.exists()
    assert "(no log)" in proc.tail()
