"""The alert board: what Alertmanager's webhook payloads (version 4) leave firing."""

from __future__ import annotations

from typing import Any

import pytest

from ccserver.alerts import MAX_ALERTS, AlertBoard
from ccserver.errors import InputError


def alert(name: str, status: str = "firing", queue: str = "repair") -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, "severity": "critical", "queue": queue},
        "annotations": {"summary": f"{name} in {queue}"},
        "startsAt": "2026-12-07T10:00:00Z",
        "fingerprint": f"{name}-{queue}",
    }


def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "status": "firing", "receiver": "controller", "alerts": list(alerts)}


def test_an_alert_is_shown_while_it_fires_and_leaves_when_it_resolves() -> None:
    board = AlertBoard()
    board.receive(payload(alert("CcserverQueueOldestWaitHigh"), alert("CcserverAriDown")))
    assert [a["name"] for a in board.firing()] == [
        "CcserverQueueOldestWaitHigh",
        "CcserverAriDown",
    ]
    (first,) = [a for a in board.firing() if a["name"] == "CcserverAriDown"]
    assert (first["severity"], first["summary"]) == ("critical", "CcserverAriDown in repair")
    board.receive(payload(alert("CcserverAriDown", status="resolved")))
    assert [a["name"] for a in board.firing()] == ["CcserverQueueOldestWaitHigh"]
    board.receive(payload(alert("CcserverQueueOldestWaitHigh")))  # sent again: still one
    assert len(board.firing()) == 1


@pytest.mark.parametrize(
    "bad",
    [None, [], {"alerts": "x"}, {"alerts": [{"labels": {}, "status": "pending"}]}],
)
def test_a_payload_that_is_not_alertmanager_s_is_refused_and_changes_nothing(bad: Any) -> None:
    board = AlertBoard()
    board.receive(payload(alert("CcserverAriDown")))
    with pytest.raises(InputError):
        board.receive(bad)
    assert len(board.firing()) == 1


def test_the_board_keeps_at_most_its_bound_dropping_the_oldest() -> None:
    board = AlertBoard()
    board.receive(payload(*(alert("A", queue=str(n)) for n in range(MAX_ALERTS + 5))))
    kept = board.firing()
    assert len(kept) == MAX_ALERTS and kept[0]["labels"]["queue"] == "5"
