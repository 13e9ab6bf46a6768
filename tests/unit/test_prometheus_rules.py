"""Prometheus as code: the scrape config template, the recording rules and alerts, their
promtool unit tests, and the Grafana dashboard's queries.

promtool and prometheus come from Debian's `prometheus` package (deploy/apt-packages.txt,
installed by `make setup`). Without them these tests fail rather than skip: a skipped check
of the alerts would pass CI with broken alerts.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ccserver.loadtest.privstack import free_port
from ccserver.stack.render import fill
from tests.grafana import DASHBOARD, ccserver_dashboard_exprs

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
TEMPLATE = PROMETHEUS_DIR / "prometheus.yml.tmpl"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
PROMTOOL_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))


# The controller's metric contract (docs/observability.md), by type.
CONTRACT_COUNTERS = {
    "ccserver_calls_offered_total",
    "ccserver_calls_answered_total",
    "ccserver_calls_abandoned_total",
    "ccserver_calls_abandoned_short_total",
    "ccserver_calls_overflowed_total",
    "ccserver_callbacks_total",
    "ccserver_transfers_total",
    "ccserver_rona_total",
    "ccserver_ivr_sessions_total",
    "ccserver_ivr_self_service_total",
    "ccserver_license_refusals_total",
    "ccserver_license_grace_overshoots_total",
    "ccserver_store_write_failures_total",
    "ccserver_store_replayed_total",
    "ccserver_store_dropped_total",
    "ccserver_call_state_errors_total",
    "ccserver_work_order_overdue_total",
    "ccserver_recordings_deleted_total",
}
CONTRACT_GAUGES = {
    "ccserver_calls_waiting",
    "ccserver_oldest_wait_seconds",
    "ccserver_agents",
    "ccserver_agents_logged_in",
    "ccserver_ivr_sessions_active",
    "ccserver_ari_up",
    "ccserver_ami_up",
    "ccserver_redis_up",
    "ccserver_store_degraded",
    "ccserver_store_buffered_writes",
    "ccserver_license_seats",
    "ccserver_license_seats_in_use",
    "ccserver_license_grace_seats",
    "ccserver_license_grace_in_use",
    "ccserver_license_ivr_channels",
    "ccserver_license_ivr_in_use",
    "ccserver_license_evaluation",
    "ccserver_license_expiry_timestamp_seconds",
    "ccserver_notices_active",
    "ccserver_work_orders",
    "ccserver_work_orders_overdue",
    "ccserver_recordings_bytes",
}
CONTRACT_HISTOGRAMS = {
    "ccserver_queue_wait_seconds",
    "ccserver_ring_seconds",
    "ccserver_talk_seconds",
    "ccserver_wrap_up_seconds",
    "ccserver_routing_decision_seconds",
    "ccserver_ari_request_seconds",
    "ccserver_ewt_error_seconds",
}
# What Asterisk 22's res_prometheus serves with core metrics on (res/prometheus/*.c).
ASTERISK_METRICS = {
    "asterisk_channels_count",
    "asterisk_calls_count",
    "asterisk_calls_sum",
    "asterisk_bridges_count",
    "asterisk_bridges_channels_count",
    "asterisk_endpoints_count",
    "asterisk_core_uptime_seconds",
    "asterisk_core_last_reload_seconds",
}
_METRIC_TOKEN = re.compile(r"\b(?:ccserver[_:]|asterisk_)[A-Za-z0-9_:]*")


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not installed: run `make setup` (it installs Debian's `prometheus` "
            "package, listed in deploy/apt-packages.txt)"
        )
    return path


def _run_promtool(*args: str) -> None:
    proc = subprocess.run(
        [_promtool(), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, (
        f"promtool {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
    )


def _rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    ]


def _promtool_cases() -> list[dict[str, Any]]:
    return [
        case
        for path in PROMTOOL_TESTS
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]
    ]


def _known_metric_names() -> set[str]:
    histogram_series = {
        f"{name}{suffix}"
        for name in CONTRACT_HISTOGRAMS
        for suffix in ("_bucket", "_sum", "_count")
    }
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    return CONTRACT_COUNTERS | CONTRACT_GAUGES | histogram_series | recorded | ASTERISK_METRICS


# -- scrape config ---------------------------------------------------------------------------


def test_rendered_scrape_config_passes_promtool_check_config(tmp_path: Path) -> None:
    values = {
        "controller_target": "127.0.0.1:8090",
        "asterisk_target": "127.0.0.1:8088",
        "rules_dir": str(RULES_DIR),
        "alerting": "",  # no Alertmanager: test_alertmanager_config.py checks the section
    }
    text = fill(TEMPLATE.read_text(encoding="utf-8"), values, TEMPLATE.name)
    assert "{{" not in text
    rendered = tmp_path / "prometheus.yml"
    rendered.write_text(text, encoding="utf-8")
    _run_promtool("check", "config", str(rendered))

    config = yaml.safe_load(text)
    assert config["global"]["scrape_interval"] == "5s"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"ccserver", "asterisk"}
    assert jobs["ccserver"]["static_configs"][0]["targets"] == ["127.0.0.1:8090"]
    assert jobs["asterisk"]["static_configs"][0]["targets"] == ["127.0.0.1:8088"]
    assert all(job["metrics_path"] == "/metrics" for job in jobs.values())


# -- rules -----------------------------------------------------------------------------------


def test_rule_files_pass_promtool_check_rules() -> None:
    assert {p.name for p in RULE_FILES} == {"recording.yml", "alerts.yml"}
    _run_promtool("check", "rules", *map(str, RULE_FILES))


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    assert PROMTOOL_TESTS, "no promtool tests in deploy/prometheus/tests"
    _run_promtool("test", "rules", *map(str, PROMTOOL_TESTS))


def test_every_alert_is_tested_both_firing_and_not_firing() -> None:
    alerts = {rule["alert"] for rule in _rules() if "alert" in rule}
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in _promtool_cases():
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert alerts - firing == set(), "alerts never tested firing"
    assert alerts - quiet == set(), "alerts never tested not firing"
    assert (firing | quiet) - alerts == set(), "tests of alerts that do not exist"


def test_every_recording_rule_value_is_tested() -> None:
    records = {rule["record"] for rule in _rules() if "record" in rule}
    tested = " ".join(
        check["expr"]
        for case in _promtool_cases()
        for check in case.get("promql_expr_test", [])
        if check.get("exp_samples")
    )
    assert {name for name in records if not re.search(rf"\b{re.escape(name)}\b", tested)} == set()


def test_every_alert_has_a_severity_and_says_what_to_do() -> None:
    for rule in _rules():
        if "alert" not in rule:
            continue
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert len(rule["annotations"]["description"]) > 40, rule["alert"]


def test_rules_and_dashboard_use_only_metrics_that_exist() -> None:
    known = _known_metric_names()
    exprs = [rule["expr"] for rule in _rules()]
    exprs += [expr for _, expr in ccserver_dashboard_exprs()]
    used = {name for expr in exprs for name in _METRIC_TOKEN.findall(expr)}
    assert used - known == set(), "unknown metric names (typo, or not in the contract)"


# -- dashboard -------------------------------------------------------------------------------


def test_dashboard_is_templated_on_its_datasource_and_every_panel_has_a_query() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 14
    for panel in panels:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
    exprs = ccserver_dashboard_exprs()
    assert not [(title, e) for title, e in exprs if "$" in e], "unsubstituted variables"


def _get_json(url: str) -> dict[str, Any]:
    """GET a Prometheus API URL; its JSON body, also for 4xx answers (errors come as JSON)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body: dict[str, Any] = json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            body = json.load(error)
    return body


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throw-away Prometheus on a free loopback port: no scrape jobs, empty storage."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: run `make setup` (Debian package `prometheus`)")
    workdir = tmp_path_factory.mktemp("prometheus")
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\n", encoding="utf-8")
    log_path = workdir / "prometheus.log"
    port = free_port()
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"prometheus did not start:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_every_dashboard_query_parses_in_prometheus(prometheus_url: str) -> None:
    failures = []
    for title, expr in ccserver_dashboard_exprs():
        query = urllib.parse.urlencode({"query": expr})
        answer = _get_json(f"{prometheus_url}/api/v1/query?{query}")
        if answer.get("status") != "success":
            failures.append(f"{title}: {expr}\n  {answer.get('errorType')}: {answer.get('error')}")
    assert not failures, "\n".join(failures)


def test_a_broken_query_is_reported_as_bad_data(prometheus_url: str) -> None:
    """The check above can fail: Prometheus answers a parse error with `bad_data`."""
    query = urllib.parse.urlencode({"query": "sum by (queue (ccserver_calls_waiting)"})
    answer = _get_json(f"{prometheus_url}/api/v1/query?{query}")
    assert answer["status"] == "error"
    assert answer["errorType"] == "bad_data"
