"""The shipped Grafana dashboard's queries, for the tests that check them (offline against
a throw-away Prometheus, and live against the stack's)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "ccserver-dashboard.json"
GRAFANA_DEFAULTS: Mapping[str, str] = {"queue": ".*"}
"""What Grafana puts in for the dashboard's variables with "All" selected."""


def ccserver_dashboard_exprs(
    path: Path = DASHBOARD, variables: Mapping[str, str] = GRAFANA_DEFAULTS
) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel of a Grafana dashboard, rows
    (collapsed ones too) included, with the dashboard's variables (`$queue`, `${queue}`)
    replaced as Grafana would with the given values — ready to send to Prometheus."""
    dashboard = json.loads(path.read_text(encoding="utf-8"))

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    def substitute(expr: str) -> str:
        for name, value in variables.items():
            expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
        return expr

    return [
        (panel.get("title", ""), substitute(target.get("expr", "")))
        for panel in panels(dashboard["panels"])
        if panel.get("type") != "row"
        for target in panel.get("targets", [])
    ]
