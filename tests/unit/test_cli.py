"""The command line: user errors are one precise line and exit 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ccserver.cli import main


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccserver", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def test_check_config_accepts_the_defaults(tmp_path: Path) -> None:
    result = run_cli("check-config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "config ok" in result.stdout


def test_check_config_reports_bad_keys_with_exit_2_and_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "ccserver.toml").write_text("[asterisk]\nsip_port = 99999\nfoo = 1\n")
    result = run_cli("check-config", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error[config-invalid]: ccserver.toml: asterisk.sip_port")
    assert "asterisk.foo: unknown key" in result.stderr


def test_check_config_warns_about_a_non_loopback_bind(tmp_path: Path) -> None:
    (tmp_path / "ccserver.toml").write_text("[stack]\nbind = '10.1.2.3'\n")
    result = run_cli("check-config", cwd=tmp_path)
    assert result.returncode == 0
    assert "not a loopback address" in result.stderr


def test_stack_status_of_a_stack_never_started_says_down(tmp_path: Path) -> None:
    env_file = tmp_path / "c.toml"
    env_file.write_text(f"[stack]\nrun_dir = '{tmp_path / 'run'}'\n[redis]\nport = 1\n")
    result = run_cli("stack", "status", "--config", str(env_file), cwd=tmp_path)
    assert result.returncode == 3
    assert all(" down " in line for line in result.stdout.splitlines()), result.stdout


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["no-such-command"])
    assert caught.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_demo_rejects_nonsense_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--calls", "0"]) == 2
    assert "error[input-invalid]" in capsys.readouterr().err


def test_check_config_reports_a_broken_flow_with_file_and_line_and_exit_2(
    tmp_path: Path,
) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "x.yaml").write_text(
        "flow: x\nnumbers: ['12345']\nstart: hello\nnodes:\n"
        "  hello:\n    kind: queue\n    queue: nowhere\n"
    )
    (tmp_path / "ccserver.toml").write_text(f"[ivr]\nflows_dir = '{flows}'\n")
    result = run_cli("check-config", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"error[flow-invalid]: {flows / 'x.yaml'}:" in result.stderr
    assert "nowhere" in result.stderr
