"""The frozen configuration (`<run dir>/config.json`) holds absolute paths only, so the
controller, started with its working directory inside the run dir, finds the run dir's
files whatever directory `ccserver stack up` was run from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ccserver import secrets as secrets_mod
from ccserver.config import Config
from ccserver.stack import Stack

# What `ccserver serve --effective` does first: read the frozen config, then its secrets.
_CONTROLLER_START = """
import json, sys
from ccserver import config, secrets
cfg = config.load_effective(sys.argv[1])
secrets.load(cfg.run_dir)
print(json.dumps({"run_dir": str(cfg.run_dir), "history": str(cfg.controller.history_db)}))
"""


def test_a_relative_run_dir_is_frozen_absolute_and_read_from_inside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = tmp_path / "clone"
    checkout.mkdir()
    monkeypatch.chdir(checkout)
    config = Config.model_validate({"stack": {"run_dir": "var"}})
    stack = Stack(config)
    stack.run_dir.mkdir()
    secrets_mod.load_or_create(stack.run_dir, config.phones.ids, [a.id for a in config.agents])
    frozen = stack.freeze()

    assert json.loads(frozen.read_text())["stack"]["run_dir"] == str(checkout / "var")
    started = subprocess.run(
        [sys.executable, "-c", _CONTROLLER_START, str(frozen)],
        cwd=stack.run_dir,  # where Proc.start puts the controller
        capture_output=True,
        text=True,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    seen = json.loads(started.stdout)
    assert seen == {
        "run_dir": str(checkout / "var"),
        "history": str(checkout / "var" / "history.sqlite"),
    }
