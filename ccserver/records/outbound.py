"""Outbound calls: the follow-up call (回访) of every closed work order, and survey
campaigns over a list of numbers — what is to be dialled, what each try gave, the result.

- A **target** is one number to call: a closed order's caller (`campaign` None, the
  order in `work_order`) or a row of a campaign's list. States: pending (due at
  `next_at`) → dialing (a call is up) → done, with `result`:
  "answered" (the flow ran; `rating` and `answers` hold what the customer keyed),
  "unreachable" (every try was busy, unanswered or rejected), "stopped" (its campaign was
  stopped first). A try that does not reach the customer goes back to pending, due
  `retry_s × 2^(tries−1)` later, until the campaign's `attempts` are spent.
- Every try is in the target's `tries`: when, and what it gave ("busy", "no-answer",
  "rejected", "failed", "answered", "interrupted" — the controller stopped mid-call).
- A follow-up's result is written on its order (`orders.record_followup`) in the same
  transaction as the target's.
- **Campaigns** carry their own flow, concurrency cap, calls-per-second cap and retry
  policy; the dialer (`ccserver.calls.outbound`) applies them, the global caps and the
  allowed hours. A campaign is "running" until every target is done ("finished") or it is
  stopped ("stopped": its pending targets are done with result "stopped").

Storage: the history store (`History.records()` transactions, migration 6).
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import time
from dataclasses import asdict, dataclass
from typing import Any

from ccserver.errors import CCServerError, InputError
from ccserver.history import History
from ccserver.records import orders

NUMBER = re.compile(r"^\+?[0-9]{3,20}$")
UNREACHED = ("busy", "no-answer", "rejected", "failed")
"""What a try that did not reach the customer gave."""
_TARGET_COLUMNS = (
    "id, campaign, work_order, number, state, result, rating, answers, tries, next_at, updated_at"
)
_CAMPAIGN_COLUMNS = (
    "id, name, flow, max_concurrent, cps, attempts, retry_s, state, created_at, created_by"
)


@dataclass(frozen=True)
class Policy:
    """How a campaign (or the follow-ups) dials."""

    flow: str
    max_concurrent: int
    cps: float
    attempts: int
    retry_s: float


@dataclass(frozen=True)
class Target:
    id: int
    campaign: int | None
    work_order: int | None
    number: str
    state: str
    result: str | None
    rating: int | None
    answers: dict[str, str]
    tries: list[dict[str, Any]]
    next_at: float
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Campaign:
    id: int
    name: str
    flow: str
    max_concurrent: int
    cps: float
    attempts: int
    retry_s: float
    state: str
    created_at: float
    created_by: str
    progress: dict[str, int]
    """Targets by state and result: {"pending": 3, "dialing": 2, "answered": 20, …}."""

    @property
    def policy(self) -> Policy:
        return Policy(self.flow, self.max_concurrent, self.cps, self.attempts, self.retry_s)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CampaignUnknown(CCServerError):
    slug = "campaign-unknown"
    status = 404


def parse_numbers(text: str) -> list[str]:
    """The numbers of a campaign list: CSV whose first column is the number (a first row
    that is not a number is a header); blank lines skipped, duplicates kept once. Raises
    InputError naming the first bad line."""
    numbers: dict[str, None] = {}
    for line, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cell = row[0].strip() if row else ""
        if not cell:
            continue
        if not NUMBER.match(cell):
            if line == 1:
                continue  # a header
            raise InputError(f"line {line}: {cell[:40]!r} is not a phone number (digits, 3-20)")
        numbers[cell] = None
    if not numbers:
        raise InputError("the list has no phone numbers")
    return list(numbers)


class OutboundBook:
    """The outbound targets and campaigns in the history store; see the module docstring.
    Every method is synchronous (async callers use `asyncio.to_thread`)."""

    def __init__(self, history: History) -> None:
        self.history = history

    # --- what to dial --------------------------------------------------------------------
    def schedule_followups(self, now: float, *, delay_s: float, enabled: bool) -> list[Target]:
        """Targets for the orders closed since the last call (due `delay_s` from now);
        with follow-ups off, the orders are marked "none" instead. Called every second:
        a write transaction is opened only when there is something to take."""
        if not orders.closed_waiting(self.history):
            return []
        with self.history.records() as db:
            taken = orders.take_closed(db, now, follow_up=enabled)
            return [
                _insert(db, number, now + delay_s, now, work_order=order) for order, number in taken
            ]

    def due(self, now: float, limit: int) -> list[Target]:
        """Pending targets due by `now` (of running campaigns, and follow-ups), oldest
        first."""
        rows = self.history.query(
            f"SELECT {_TARGET_COLUMNS} FROM outbound_calls WHERE state = 'pending' "
            "AND next_at <= ? AND (campaign IS NULL OR campaign IN "
            "(SELECT id FROM campaigns WHERE state = 'running')) ORDER BY next_at, id LIMIT ?",
            (now, limit),
        )
        return [_target(row) for row in rows]

    def dialing(self, target_id: int, now: float) -> Target | None:
        """A call to the target is being placed; None (nothing changed) when the target
        is not pending any more (its campaign was stopped)."""
        with self.history.records() as db:
            target = _load(db, target_id)
            if target.state != "pending":
                return None
            tries = [*target.tries, {"at": now, "result": "dialing"}]
            db.execute(
                "UPDATE outbound_calls SET state = 'dialing', tries = ?, updated_at = ? "
                "WHERE id = ?",
                (json.dumps(tries), now, target_id),
            )
            return _load(db, target_id)

    def unreached(self, target_id: int, result: str, now: float, policy: Policy) -> Target:
        """The try did not reach the customer (`result` one of `UNREACHED`): pending again
        with back-off, or done "unreachable" once the policy's attempts are spent."""
        with self.history.records() as db:
            target = _load(db, target_id)
            tries = _ended(target.tries, result)
            if len(tries) < policy.attempts:
                retry_at = now + policy.retry_s * 2 ** (len(tries) - 1)
                db.execute(
                    "UPDATE outbound_calls SET state = 'pending', tries = ?, next_at = ?, "
                    "updated_at = ? WHERE id = ?",
                    (json.dumps(tries), retry_at, now, target_id),
                )
            else:
                _finish(db, target, tries, "unreachable", None, {}, now)
            return _load(db, target_id)

    def answered(
        self, target_id: int, rating: int | None, answers: dict[str, str], now: float
    ) -> Target:
        """The customer answered and the flow ran: done "answered" with what they keyed."""
        with self.history.records() as db:
            target = _load(db, target_id)
            _finish(db, target, _ended(target.tries, "answered"), "answered", rating, answers, now)
            return _load(db, target_id)

    def interrupted(self, now: float) -> int:
        """At start: calls left "dialing" by a controller that stopped are pending again,
        due now (the try is kept as "interrupted"); returns how many."""
        with self.history.records() as db:
            rows = db.execute(
                f"SELECT {_TARGET_COLUMNS} FROM outbound_calls WHERE state = 'dialing'"
            ).fetchall()
            for row in rows:
                tries = _ended(_target(row).tries, "interrupted")
                db.execute(
                    "UPDATE outbound_calls SET state = 'pending', tries = ?, next_at = ?, "
                    "updated_at = ? WHERE id = ?",
                    (json.dumps(tries), now, now, row["id"]),
                )
            return len(rows)

    # --- campaigns -----------------------------------------------------------------------
    def create_campaign(
        self, name: str, numbers: list[str], policy: Policy, *, who: str, now: float | None = None
    ) -> Campaign:
        at = time.time() if now is None else now
        with self.history.records() as db:
            cursor = db.execute(
                "INSERT INTO campaigns (name, flow, max_concurrent, cps, attempts, retry_s, "
                "state, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?)",
                (
                    name,
                    policy.flow,
                    policy.max_concurrent,
                    policy.cps,
                    policy.attempts,
                    policy.retry_s,
                    at,
                    who,
                ),
            )
            campaign_id = int(cursor.lastrowid or 0)
            for number in numbers:
                _insert(db, number, at, at, campaign=campaign_id)
            return _campaign(db, campaign_id)

    def stop_campaign(self, campaign_id: int, now: float | None = None) -> Campaign:
        """Dial no more of it: pending targets are done "stopped" (calls up finish)."""
        at = time.time() if now is None else now
        with self.history.records() as db:
            campaign = _campaign(db, campaign_id)
            if campaign.state == "running":
                db.execute("UPDATE campaigns SET state = 'stopped' WHERE id = ?", (campaign_id,))
                db.execute(
                    "UPDATE outbound_calls SET state = 'done', result = 'stopped', "
                    "updated_at = ? WHERE campaign = ? AND state = 'pending'",
                    (at, campaign_id),
                )
            return _campaign(db, campaign_id)

    def campaign(self, campaign_id: int) -> Campaign:
        with self.history.records() as db:
            return _campaign(db, campaign_id)

    def campaigns(self) -> list[Campaign]:
        with self.history.records() as db:
            ids = [r["id"] for r in db.execute("SELECT id FROM campaigns ORDER BY id DESC")]
            return [_campaign(db, campaign_id) for campaign_id in ids]

    def policies(self) -> dict[int, Policy]:
        """The running campaigns' dialling policies."""
        rows = self.history.query(
            f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE state = 'running'"
        )
        return {
            int(r["id"]): Policy(
                r["flow"], r["max_concurrent"], r["cps"], r["attempts"], r["retry_s"]
            )
            for r in rows
        }

    def targets(
        self, *, campaign: int | None = None, work_order: int | None = None
    ) -> list[Target]:
        """A campaign's targets (in list order), or an order's follow-up target(s)."""
        where = "campaign = ?" if campaign is not None else "work_order = ?"
        value = campaign if campaign is not None else work_order
        rows = self.history.query(
            f"SELECT {_TARGET_COLUMNS} FROM outbound_calls WHERE {where} ORDER BY id", (value,)
        )
        return [_target(row) for row in rows]


def _insert(
    db: sqlite3.Connection,
    number: str,
    next_at: float,
    now: float,
    *,
    campaign: int | None = None,
    work_order: int | None = None,
) -> Target:
    cursor = db.execute(
        "INSERT INTO outbound_calls (campaign, work_order, number, state, answers, tries, "
        "next_at, updated_at) VALUES (?, ?, ?, 'pending', '{}', '[]', ?, ?)",
        (campaign, work_order, number, next_at, now),
    )
    return _load(db, int(cursor.lastrowid or 0))


def _ended(tries: list[dict[str, Any]], result: str) -> list[dict[str, Any]]:
    """The tries with the last one's result set (a try is opened by `dialing`)."""
    if not tries or tries[-1].get("result") != "dialing":
        return [*tries, {"at": None, "result": result}]
    return [*tries[:-1], {**tries[-1], "result": result}]


def _finish(
    db: sqlite3.Connection,
    target: Target,
    tries: list[dict[str, Any]],
    result: str,
    rating: int | None,
    answers: dict[str, str],
    now: float,
) -> None:
    db.execute(
        "UPDATE outbound_calls SET state = 'done', result = ?, rating = ?, answers = ?, "
        "tries = ?, updated_at = ? WHERE id = ?",
        (result, rating, json.dumps(answers), json.dumps(tries), now, target.id),
    )
    if target.work_order is not None:
        orders.record_followup(
            db, target.work_order, now, result=result, rating=rating, answers=answers
        )
    if target.campaign is not None:
        left = db.execute(
            "SELECT count(*) FROM outbound_calls WHERE campaign = ? AND state != 'done'",
            (target.campaign,),
        ).fetchone()[0]
        if not left:
            db.execute(
                "UPDATE campaigns SET state = 'finished' WHERE id = ? AND state = 'running'",
                (target.campaign,),
            )


def _load(db: sqlite3.Connection, target_id: int) -> Target:
    row = db.execute(
        f"SELECT {_TARGET_COLUMNS} FROM outbound_calls WHERE id = ?", (target_id,)
    ).fetchone()
    if row is None:
        raise InputError(f"no outbound call {target_id}")
    return _target(row)


def _target(row: sqlite3.Row) -> Target:
    fields = dict(row)
    fields["answers"] = json.loads(fields["answers"])
    fields["tries"] = json.loads(fields["tries"])
    return Target(**fields)


def _campaign(db: sqlite3.Connection, campaign_id: int) -> Campaign:
    row = db.execute(
        f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ?", (campaign_id,)
    ).fetchone()
    if row is None:
        raise CampaignUnknown(f"no campaign {campaign_id}")
    progress: dict[str, int] = {}
    for state, result, count in db.execute(
        "SELECT state, result, count(*) FROM outbound_calls WHERE campaign = ? "
        "GROUP BY state, result",
        (campaign_id,),
    ):
        key = result if state == "done" else state
        progress[key] = progress.get(key, 0) + count
    return Campaign(**dict(row), progress=progress)
