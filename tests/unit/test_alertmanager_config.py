"""The stack's Alertmanager configuration without the stack: rendered for a plain and a TLS
controller, checked by Debian's `amtool check-config`; the webhook is the controller's, the
bearer token is read from its file and never written into the configuration; Prometheus is
pointed at Alertmanager only when it runs, and its configuration still passes promtool."""

from __future__ import annotations

import datetime
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ccserver import config, secrets, tls
from ccserver.stack.render import alertmanager_conf, prometheus_conf

NOW = datetime.datetime(2026, 11, 25, tzinfo=datetime.UTC)


def _config(run_dir: Path, **sections: Any) -> config.Config:
    return config.Config.model_validate({"stack": {"run_dir": str(run_dir)}, **sections})


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make setup` (deploy/apt-packages.txt)")
    return path


def _check(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, f"{' '.join(argv)} failed:\n{proc.stdout}{proc.stderr}"


def _render(cfg: config.Config) -> tuple[dict[str, Any], str, str]:
    """Write the token file and the configuration as `stack up` does, check the result with
    amtool; return it parsed, its text and the token."""
    token = secrets.load_or_create(cfg.run_dir, cfg.phones.ids).api_tokens["alertmanager"]
    directory = cfg.run_dir / "alertmanager"
    directory.mkdir(parents=True, exist_ok=True)
    token_file = directory / "token"
    token_file.write_text(token)
    text = alertmanager_conf(cfg, token_file)
    rendered = directory / "alertmanager.yml"
    rendered.write_text(text)
    _check([_tool("amtool"), "check-config", str(rendered)])
    return yaml.safe_load(text), text, token


def _webhook(parsed: dict[str, Any]) -> dict[str, Any]:
    (receiver,) = parsed["receivers"]
    assert receiver["name"] == "controller" == parsed["route"]["receiver"]
    (hook,) = receiver["webhook_configs"]
    assert isinstance(hook, dict)
    return hook


def test_alerts_go_to_the_controller_webhook_with_the_token_from_its_file(
    tmp_path: Path,
) -> None:
    cfg = _config(tmp_path)
    parsed, text, token = _render(cfg)
    hook = _webhook(parsed)
    port = cfg.controller.http_port
    assert hook["url"] == f"http://127.0.0.1:{port}/hooks/alertmanager"
    assert hook["send_resolved"] is True
    assert hook["http_config"] == {
        "authorization": {
            "type": "Bearer",
            "credentials_file": str(tmp_path / "alertmanager" / "token"),
        }
    }
    assert token not in text and "credentials:" not in text


def test_grouping_timings_and_inhibition_come_from_the_config(tmp_path: Path) -> None:
    timings = {"group_wait_s": 1, "group_interval_s": 5, "repeat_interval_s": 60}
    parsed, _, _ = _render(_config(tmp_path, alertmanager=timings))
    route = parsed["route"]
    assert route["group_by"] == ["alertname", "queue"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "1s",
        "5s",
        "60s",
    )
    (inhibit,) = parsed["inhibit_rules"]
    assert inhibit["source_matchers"] == ['severity="critical"']
    assert inhibit["target_matchers"] == ['severity="warning"']


def test_with_tls_the_webhook_is_https_verified_against_our_ca(tmp_path: Path) -> None:
    cfg = _config(tmp_path, tls={"enabled": True})
    tls.ensure(cfg, NOW)
    parsed, _, _ = _render(cfg)
    hook = _webhook(parsed)
    assert hook["url"] == f"https://127.0.0.1:{cfg.controller.http_port}/hooks/alertmanager"
    assert hook["http_config"]["tls_config"] == {"ca_file": str(tls.files(cfg).ca)}
    assert hook["http_config"]["authorization"]["type"] == "Bearer"


def test_prometheus_sends_to_alertmanager_only_when_it_runs(tmp_path: Path) -> None:
    cfg = _config(tmp_path, alertmanager={"port": 9193})
    assert cfg.alertmanager_runs
    parsed = yaml.safe_load(prometheus_conf(cfg))
    (manager,) = parsed["alerting"]["alertmanagers"]
    assert manager["static_configs"] == [{"targets": ["127.0.0.1:9193"]}]
    rendered = tmp_path / "prometheus.yml"
    rendered.write_text(prometheus_conf(cfg))
    _check([_tool("promtool"), "check", "config", "--syntax-only", str(rendered)])
    off = _config(tmp_path, alertmanager={"enabled": False})
    assert "alerting" not in yaml.safe_load(prometheus_conf(off))
    assert not _config(tmp_path, prometheus={"enabled": False}).alertmanager_runs


def test_alertmanager_settings_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="repeat_interval_s must be at least group_interval_s"):
        _config(tmp_path, alertmanager={"group_interval_s": 60, "repeat_interval_s": 30})
    with pytest.raises(ValueError, match=r"alertmanager\.port and prometheus\.port are both 9095"):
        _config(tmp_path, alertmanager={"port": 9095})
    # A disabled Alertmanager holds no port.
    _config(tmp_path, alertmanager={"enabled": False, "port": 9095})
