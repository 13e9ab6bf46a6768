"""`ccserver demo` as a newcomer runs it: from a checkout whose config names a relative run
dir (the default `var`), it starts the stack and the billing demo, puts SIPp calls through,
and its summary says every call placed was offered and answered, with no SIPp failure."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from ccserver.loadtest.privstack import free_port
from tests.integration.conftest import rtp_ports

pytestmark = pytest.mark.integration

CALLS = 4
SUMMARY = re.compile(
    r"^offered (\d+), answered (\d+), abandoned (\d+), .*SIPp: (\d+) successful, (\d+) failed$",
    re.MULTILINE,
)


def _ccserver(cwd: Path, env: dict[str, str], *args: str, timeout: float) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ccserver", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"ccserver {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_demo_answers_every_call_it_places_from_a_relative_run_dir(tmp_path: Path) -> None:
    billing = free_port()
    rtp_start, rtp_end = rtp_ports()
    (tmp_path / "ccserver.toml").write_text(
        f"""
[stack]
run_dir = "var"
[asterisk]
sip_port = {free_port()}
http_port = {free_port()}
ami_port = {free_port()}
rtp_port_start = {rtp_start}
rtp_port_end = {rtp_end}
[redis]
port = {free_port()}
[prometheus]
enabled = false
[controller]
http_port = {free_port()}
[ivr]
billing_url = "http://127.0.0.1:{billing}"
"""
    )
    env = {**os.environ, "CCSERVER_CONFIG": str(tmp_path / "ccserver.toml")}
    try:
        out = _ccserver(tmp_path, env, "demo", "--calls", str(CALLS), timeout=240)
        summary = SUMMARY.search(out)
        assert summary, out
        offered, answered, abandoned, successful, failed = map(int, summary.groups())
        assert (offered, answered, abandoned) == (CALLS, CALLS, 0), out
        assert (successful, failed) == (CALLS, 0), out
        # Callers the IVR answered pressed 0 for an agent (the evaluation license has IVR
        # channels for some of them; the rest went straight to the queue).
        assert "pressed 0" in out, out
        # The self-service branch's backend runs, and the demo says where to look next.
        with urllib.request.urlopen(f"http://127.0.0.1:{billing}/accounts/1000000001") as r:
            assert json.load(r)["account"] == "1000000001"
        run_dir = tmp_path / "var"
        assert f"api_tokens in {run_dir / 'secrets.json'}" in out
        assert "press 1, then 1000000001#" in out
        frozen = json.loads((run_dir / "config.json").read_text())
        assert frozen["stack"]["run_dir"] == str(run_dir)
    finally:
        stopped = _ccserver(tmp_path, env, "stack", "down", timeout=60)
    assert "billing demo" in stopped and "controller" in stopped
