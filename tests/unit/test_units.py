"""The systemd units of `ccserver install-service` run exactly the stack's parts and
command lines, in its order, as an unprivileged user, restarted on failure and hardened;
`systemd-analyze verify` accepts every file (the programs they name exist here: the
cached Asterisk, Redis, Prometheus, Alertmanager, this Python)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ccserver.cli import main
from ccserver.config import Config
from ccserver.stack import Stack, units


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    return Stack(Config.model_validate({"stack": {"run_dir": str(tmp_path / "run")}}))


def _field(unit: str, key: str) -> str:
    (line,) = [line for line in unit.splitlines() if line.startswith(f"{key}=")]
    return line.split("=", 1)[1]


def test_each_part_is_a_service_running_the_stacks_command_after_what_it_needs(
    stack: Stack, tmp_path: Path
) -> None:
    prepare = [sys.executable, "-m", "ccserver", "stack", "prepare"]
    written = units.render(stack, user="ccserver", prepare=prepare, workdir=tmp_path)
    parts = list(stack.commands())
    assert parts[:3] == ["redis", "asterisk", "controller"]
    assert set(written) == {
        "ccserver.target",
        "ccserver-prepare.service",
        *(f"ccserver-{part}.service" for part in parts),
    }
    for part, argv in stack.commands().items():
        unit = written[f"ccserver-{part}.service"]
        assert _field(unit, "ExecStart") == " ".join(argv)
        assert _field(unit, "User") == "ccserver" and _field(unit, "Restart") == "on-failure"
        assert _field(unit, "ProtectSystem") == "strict"
        assert _field(unit, "ReadWritePaths") == str(stack.run_dir)
        assert "ccserver-prepare.service" in _field(unit, "After")
    after = _field(written["ccserver-controller.service"], "After").split()
    assert {"ccserver-redis.service", "ccserver-asterisk.service"} <= set(after)
    assert _field(written["ccserver-prepare.service"], "ExecStart") == " ".join(prepare)


def test_systemd_analyze_verify_accepts_the_units(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CCSERVER_CONFIG", raising=False)
    monkeypatch.setenv("CCSERVER_STACK__RUN_DIR", str(tmp_path / "run"))
    dest = tmp_path / "units"
    assert main(["install-service", "--dest", str(dest)]) == 0  # as the default user
    out = capsys.readouterr().out
    assert out.startswith("wrote ") and "systemctl daemon-reload" in out
    files = sorted(str(p) for p in dest.iterdir())
    checked = subprocess.run(
        ["systemd-analyze", "verify", *files], capture_output=True, text=True, check=False
    )
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


def test_a_word_systemd_would_expand_or_split_is_escaped() -> None:
    assert units._command(["/bin/x", "a b", "100%", "$HOME", ""]) == (
        '/bin/x "a b" 100%% $$HOME ""'
    )
