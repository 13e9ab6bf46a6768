"""The ops room's view on the real stack: the stack's own Prometheus scrapes the controller
and Asterisk while SIPp calls run (answered and abandoned), and every panel of the shipped
Grafana dashboard, every recording rule and every alert expression is asked of it: each must
parse and return data. Alerts reach someone: Prometheus sends them to the stack's
Alertmanager, which delivers them to the controller (`GET /api/v1/alerts`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ccserver import tls
from ccserver.alerts import WEBHOOK_PATH
from ccserver.secrets import ALERTMANAGER_TOKEN_NAME
from ccserver.stack.procs import wait_until
from tests.grafana import ccserver_dashboard_exprs
from tests.integration.conftest import LiveStack, start_stack

pytestmark = pytest.mark.integration
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "rules"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    yield from start_stack(
        tmp_path_factory.mktemp("observability"),
        {"answer": ["1001", "1002"]},
        prometheus=True,
        alertmanager={"group_wait_s": 0, "group_interval_s": 1, "repeat_interval_s": 60},
    )


def _query(live: LiveStack, expr: str) -> dict[str, Any]:
    url = f"{live.stack.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            answer: dict[str, Any] = json.load(response)
    except urllib.error.HTTPError as exc:  # 400: the expression does not parse
        answer = json.load(exc)
    return answer


def _dashboard_exprs() -> list[tuple[str, str, bool]]:
    """(panel title, expression, must return data)."""
    return [(f"panel {title!r}", expr, True) for title, expr in ccserver_dashboard_exprs()]


def _rule_exprs() -> list[tuple[str, str, bool]]:
    """(rule name, expression, must return data): a recording rule must; an alert's
    expression is a condition that is empty while all is well."""
    found = []
    for path in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                name = rule.get("record") or f"alert {rule['alert']}"
                found.append((name, str(rule["expr"]), "record" in rule))
    return found


def test_every_dashboard_panel_and_rule_answers_from_the_live_stack(live: LiveStack) -> None:
    # Traffic first: answered calls, then callers who give up while both agents talk.
    live.place_calls(6, talk_ms=3000, rate=5, limit=6)
    run = live.next_run()
    talking = live.agents("answer", talk_ms=6000).start()
    try:
        busy = live.caller(run, calls=2, rate=10).start()
        assert wait_until(lambda: live.stack.controller_health()["calls"] == 2, 10)
        gone = live.caller(live.next_run(), calls=2, rate=10, abandon_after_ms=2000).start()
        gone.wait(timeout=30)
        busy.wait(timeout=60)
    finally:
        talking.stop()

    # Two scrapes after the traffic, so every rate() has its two samples.
    def scraped() -> bool:
        result = _query(live, 'ccserver_calls_offered_total{queue="general"}')["data"]["result"]
        return bool(result) and float(result[0]["value"][1]) >= 10

    assert wait_until(scraped, 30, 1.0)
    checked = _dashboard_exprs() + _rule_exprs()
    failures: list[str] = []

    def all_answer() -> bool:
        failures.clear()
        for name, expr, needs_data in checked:
            answer = _query(live, expr)
            if answer.get("status") != "success":
                failures.append(f"{name}: {answer.get('error')} — {expr}")
            elif needs_data and not answer["data"]["result"]:
                failures.append(f"{name}: no data — {expr}")
        return not failures

    # A rate() answers once two scrapes have seen the traffic: poll, don't guess how long.
    assert wait_until(all_answer, 60, 1.0) and len(checked) > 20, "\n".join(failures)


def _post_alert(live: LiveStack, alert: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{live.stack.alertmanager_url}/api/v2/alerts",
        data=json.dumps([alert]).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_alerts_go_from_prometheus_through_alertmanager_to_the_controller(
    live: LiveStack,
) -> None:
    """Prometheus has the stack's Alertmanager as its (only) target; an alert Alertmanager
    gets is delivered to the controller and listed until it resolves. (When each rule fires
    is proven by promtool's tests of deploy/prometheus/tests/.)"""
    url = f"{live.stack.prometheus_url}/api/v1/alertmanagers"

    def targets() -> list[str]:
        with urllib.request.urlopen(url, timeout=10) as response:
            found = json.load(response)["data"]["activeAlertmanagers"]
        return [str(a["url"]) for a in found]

    assert wait_until(lambda: bool(targets()), timeout=30)
    assert targets() == [f"{live.stack.alertmanager_url}/api/v2/alerts"]
    alert = {
        "labels": {"alertname": "CcserverOldestWaitHigh", "severity": "critical", "queue": "q1"},
        "annotations": {"summary": "a caller has waited over 120 s"},
    }
    _post_alert(live, alert)

    def listed() -> list[dict[str, Any]]:
        status, alerts = live.api("GET", "/alerts", token="supervisor")
        assert status == 200
        return [a for a in alerts if a["labels"].get("queue") == "q1"]

    assert wait_until(lambda: bool(listed()), timeout=30), "Alertmanager delivered nothing"
    (shown,) = listed()
    assert (shown["name"], shown["severity"]) == ("CcserverOldestWaitHigh", "critical")
    assert shown["summary"] == "a caller has waited over 120 s"
    _post_alert(live, {**alert, "endsAt": "2000-01-01T00:00:00Z"})  # resolved
    assert wait_until(lambda: not listed(), timeout=30), "the resolved alert stayed"
    assert live.api("GET", "/alerts", token="agent:1001")[0] == 403


def test_the_alert_hook_takes_only_alertmanager_s_token_and_payload(live: LiveStack) -> None:
    hook = tls.controller_url(live.config, WEBHOOK_PATH)
    token = live.secrets().api_tokens[ALERTMANAGER_TOKEN_NAME]
    for auth, body, expected in (
        ("Bearer wrong", b'{"alerts": []}', 401),
        (f"Bearer {live.secrets().api_tokens['admin']}", b'{"alerts": []}', 401),
        (f"Bearer {token}", b"[1, 2]", 400),
        (f"Bearer {token}", b"not json", 400),
        (f"Bearer {token}", b'{"alerts": []}', 200),
    ):
        request = urllib.request.Request(hook, data=body, method="POST")
        request.add_header("Authorization", auth)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        assert status == expected, (auth[:12], body)
