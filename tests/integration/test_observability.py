"""The ops room's view on the real stack: the stack's own Prometheus scrapes the controller
and Asterisk while SIPp calls run (answered and abandoned), and every panel of the shipped
Grafana dashboard, every recording rule and every alert expression is asked of it: each must
parse and return data."""

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
