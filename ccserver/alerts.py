"""The alerts Alertmanager delivers to the controller, for the wallboard and `GET /alerts`.

Alertmanager (deploy/alertmanager/) posts its webhook payload (version 4) to
`/hooks/alertmanager` with the `alertmanager` API token; `AlertBoard.receive` keeps each
alert by its fingerprint while it fires and drops it when it resolves. Alertmanager sends the
whole group again at every group interval, so a controller that restarts (and forgot) knows
the firing alerts again within one interval; nothing is persisted.

Invariants: at most `MAX_ALERTS` alerts are kept (the oldest dropped first); a payload that is
not Alertmanager's raises InputError (400) and changes nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ccserver.errors import InputError

MAX_ALERTS = 500
WEBHOOK_PATH = "/hooks/alertmanager"
"""Where the controller takes Alertmanager's posts (outside the REST API: a machine's
endpoint with its own token, like `/metrics`)."""


class AlertBoard:
    def __init__(self) -> None:
        self._firing: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.received = 0  # payloads taken

    def receive(self, payload: Any) -> None:
        """Take one webhook payload: firing alerts are kept, resolved ones dropped."""
        if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
            raise InputError("not an Alertmanager webhook payload: no `alerts` list")
        alerts = [_alert(a) for a in payload["alerts"]]
        for alert in alerts:
            key = alert["fingerprint"]
            self._firing.pop(key, None)
            if alert["status"] == "firing":
                self._firing[key] = alert
        while len(self._firing) > MAX_ALERTS:
            self._firing.popitem(last=False)
        self.received += 1

    def firing(self) -> list[dict[str, Any]]:
        """The alerts firing now, oldest first: name, severity, summary, labels, since."""
        return sorted(self._firing.values(), key=lambda a: a["starts_at"])


def _alert(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InputError("an alert of the payload is not an object")
    labels, annotations = raw.get("labels"), raw.get("annotations") or {}
    status, fingerprint = raw.get("status"), raw.get("fingerprint")
    if not isinstance(labels, dict) or status not in ("firing", "resolved"):
        raise InputError("an alert needs `labels` and a `status` of firing or resolved")
    if not isinstance(annotations, dict):
        raise InputError("an alert's `annotations` is not an object")
    if not isinstance(fingerprint, str) or not fingerprint:
        fingerprint = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return {
        "fingerprint": fingerprint,
        "status": status,
        "name": str(labels.get("alertname", "")),
        "severity": str(labels.get("severity", "")),
        "summary": str(annotations.get("summary") or annotations.get("description") or ""),
        "labels": {str(k): str(v) for k, v in labels.items()},
        "starts_at": str(raw.get("startsAt", "")),
    }
