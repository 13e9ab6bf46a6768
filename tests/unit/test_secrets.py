"""Secrets: generated at first start, 0600, stable, never defaults."""

from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path

import pytest

from ccserver import secrets
from ccserver.errors import ConfigError


def test_secrets_are_generated_once_and_kept(tmp_path: Path) -> None:
    first = secrets.load_or_create(tmp_path, ["1001"])
    again = secrets.load_or_create(tmp_path, ["1001"])
    assert first == again
    assert len(first.ari_password) >= 32 and first.ari_password != first.ami_secret
    mode = stat.S_IMODE(secrets.path_in(tmp_path).stat().st_mode)
    assert mode == 0o600


def test_two_run_dirs_never_share_secrets(tmp_path: Path) -> None:
    a = secrets.load_or_create(tmp_path / "a", ["1001"])
    b = secrets.load_or_create(tmp_path / "b", ["1001"])
    assert a.ari_password != b.ari_password
    assert a.agent_passwords["1001"] != b.agent_passwords["1001"]


def test_a_new_agent_gets_a_password_and_old_ones_keep_theirs(tmp_path: Path) -> None:
    first = secrets.load_or_create(tmp_path, ["1001"])
    grown = secrets.load_or_create(tmp_path, ["1001", "1002"])
    assert grown.agent_passwords["1001"] == first.agent_passwords["1001"]
    assert grown.agent_passwords["1002"]


def test_missing_or_corrupt_secrets_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run `ccserver stack up` first"):
        secrets.load(tmp_path)
    secrets.path_in(tmp_path).write_text("{not json")
    with pytest.raises(ConfigError, match="move it away to regenerate"):
        secrets.load(tmp_path)


def test_alertmanager_gets_a_token_and_an_older_file_gains_it(tmp_path: Path) -> None:
    first = secrets.load_or_create(tmp_path, ["1001"])
    assert len(first.api_tokens["alertmanager"]) >= 32
    older = secrets.load(tmp_path)
    del older.api_tokens["alertmanager"]
    secrets.path_in(tmp_path).write_text(json.dumps(dataclasses.asdict(older)))
    again = secrets.load_or_create(tmp_path, ["1001"])
    assert again.api_tokens["alertmanager"] != first.api_tokens["alertmanager"]
    assert again.api_tokens["admin"] == first.api_tokens["admin"]
    assert stat.S_IMODE(secrets.path_in(tmp_path).stat().st_mode) == 0o600
