"""Quality inspection (质检): which recorded calls inspectors listen to, the scoring form,
the scores, and an agent's one dispute of a score.

- **The form** is YAML (`forms/95598.yaml` ships the 95598 form of the source documents):
  sections with a cap (`points`), items that earn their points when ticked, deductions
  that subtract theirs from their section when ticked (once per tick: tick one twice for
  two occurrences). A section scores min(cap, ticked items) − deductions, never below 0;
  the total is the sum of the sections, out of the sum of the caps.
- **Sampling** fills the inspectors' queue from the recorded calls agents talked on, each
  call once, with the first rule that picks it: every call of the listed queues
  (complaints), every call the caller rated at most `csat_at_most`, every call longer than
  `longer_than_s`, then about `random_pct` % of each agent's calls of each week — a call
  is drawn when a hash of its id falls under the share, so a draw never changes when
  sampling runs again — and at least one call of each agent and week.
- **Scores** keep the ticked items and the section totals as computed when scored (a later
  change of the form does not rewrite them). An agent may dispute a score of its own once,
  with a reason.

Storage: the history store (`History.records()`, migration 5).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ccserver.errors import CCServerError, InputError
from ccserver.history import History

SHIPPED_FORM = Path(__file__).with_name("forms") / "95598.yaml"
_ID = r"^[a-z][a-z0-9_]{0,31}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FormItem(_Strict):
    id: str = Field(pattern=_ID)
    text: str = Field(min_length=1)
    points: int = Field(ge=1, le=100)


class FormSection(_Strict):
    id: str = Field(pattern=_ID)
    title: str = Field(min_length=1)
    points: int = Field(ge=1, le=100, description="the most the section can score")
    items: list[FormItem] = Field(min_length=1)
    deductions: list[FormItem] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct(self) -> FormSection:
        ids = [i.id for i in (*self.items, *self.deductions)]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"section {self.id}: item ids used twice: {', '.join(twice)}")
        return self


class Form(_Strict):
    form: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1)
    sections: list[FormSection] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> Form:
        ids = [s.id for s in self.sections]
        if len(set(ids)) != len(ids):
            raise ValueError("section ids must differ")
        return self

    @property
    def max_points(self) -> int:
        return sum(s.points for s in self.sections)

    def score(self, ticked: Iterable[str], deducted: Iterable[str]) -> dict[str, Any]:
        """The score sheet of `ticked` items and `deducted` deductions (ids as
        `section.item`; a deduction listed twice counts twice): per section its items,
        deductions and points, and the total. InputError naming every unknown id."""
        ticked, deducted = list(ticked), list(deducted)
        items = {f"{s.id}.{i.id}": i for s in self.sections for i in s.items}
        deductions = {f"{s.id}.{i.id}": i for s in self.sections for i in s.deductions}
        unknown = [t for t in ticked if t not in items] + [
            d for d in deducted if d not in deductions
        ]
        if unknown:
            raise InputError(
                f"not on the form {self.form}: {', '.join(sorted(set(unknown)))} "
                "(items and deductions are `section.item`)"
            )
        sections = []
        for section in self.sections:
            earned = sum(i.points for i in section.items if f"{section.id}.{i.id}" in set(ticked))
            taken = Counter(d for d in deducted if d.startswith(section.id + "."))
            lost = sum(deductions[d].points * n for d, n in taken.items())
            sections.append(
                {
                    "id": section.id,
                    "title": section.title,
                    "max": section.points,
                    "earned": earned,
                    "deducted": lost,
                    "points": max(0, min(section.points, earned) - lost),
                }
            )
        return {
            "form": self.form,
            "ticked": sorted(set(ticked)),
            "deducted": sorted(deducted),
            "sections": sections,
            "total": sum(s["points"] for s in sections),
            "max": self.max_points,
        }


class QaFormError(CCServerError):
    slug = "qa-form-invalid"
    exit_code = 2


def load_form(path: Path | None = None) -> Form:
    """The scoring form in `path` (None: the shipped 95598 form)."""
    source = path or SHIPPED_FORM
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
        return Form.model_validate(data)
    except OSError as exc:
        raise QaFormError(f"{source}: cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise QaFormError(f"{source}: not YAML ({exc})") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'form'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        )
        raise QaFormError(f"{source}: {problems}") from None


@dataclass(frozen=True)
class SamplingRules:
    queues: tuple[str, ...] = ("complaints",)
    csat_at_most: int | None = 2
    longer_than_s: float | None = 600.0
    random_pct: float = 5.0


def pick(calls: Sequence[dict[str, Any]], rules: SamplingRules, zone: dt.tzinfo) -> dict[str, str]:
    """The calls the rules pick, call id → the rule: `queue`, `csat`, `long`, `random` or
    `weekly` (the one call of an agent's week that nothing else picked). Each call has
    call_id, agent, queue, survey_score, talk_s, arrived_at."""
    picked: dict[str, str] = {}
    weeks: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for call in calls:
        year, week, _ = dt.datetime.fromtimestamp(call["arrived_at"], zone).isocalendar()
        weeks[(call["agent"], f"{year}-W{week:02d}")].append(call)
        rule = _rule_for(call, rules)
        if rule is not None:
            picked[call["call_id"]] = rule
    for week_calls in weeks.values():
        if not any(c["call_id"] in picked for c in week_calls):
            first = min(week_calls, key=lambda c: _draw(c["call_id"]))
            picked[first["call_id"]] = "weekly"
    return picked


def _rule_for(call: dict[str, Any], rules: SamplingRules) -> str | None:
    if call.get("queue") in rules.queues:
        return "queue"
    score = call.get("survey_score")
    if rules.csat_at_most is not None and score is not None and score <= rules.csat_at_most:
        return "csat"
    talk = call.get("talk_s")
    if rules.longer_than_s is not None and talk is not None and talk > rules.longer_than_s:
        return "long"
    if _draw(call["call_id"]) < rules.random_pct / 100.0:
        return "random"
    return None


def _draw(call_id: str) -> float:
    """A number in [0, 1) fixed by the call's id (the same on every run and machine)."""
    digest = hashlib.sha256(call_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


class ScoreUnknown(CCServerError):
    slug = "score-unknown"
    status = 404


class QaBook:
    """The inspectors' queue and the scores in the history store (synchronous; async
    callers use `asyncio.to_thread`)."""

    def __init__(self, history: History, form: Form, rules: SamplingRules, zone: dt.tzinfo) -> None:
        self.history, self.form, self.rules, self.zone = history, form, rules, zone

    def sample(self, since: float, *, now: float | None = None) -> int:
        """Fill the queue from the recorded calls that arrived since `since`; how many
        calls were added (a call already in the queue stays as it is)."""
        at = time.time() if now is None else now
        rows = self.history.query(
            "SELECT call_id, agent, queue, survey_score, talk_s, arrived_at FROM calls "
            "WHERE arrived_at >= ? AND recording IS NOT NULL AND agent IS NOT NULL "
            "AND connected_at IS NOT NULL ORDER BY arrived_at, call_id",
            (since,),
        )
        calls = [dict(row) for row in rows]
        picked = pick(calls, self.rules, self.zone)
        by_id = {c["call_id"]: c for c in calls}
        with self.history.records() as db:
            before = db.total_changes
            db.executemany(
                "INSERT INTO qa_queue (call_id, agent, queue, rule, queued_at, scored) "
                "VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (call_id) DO NOTHING",
                [
                    (call_id, by_id[call_id]["agent"], by_id[call_id]["queue"], rule, at)
                    for call_id, rule in sorted(picked.items())
                ],
            )
            return db.total_changes - before

    def queue(self, *, scored: bool = False, limit: int = 500) -> list[dict[str, Any]]:
        """The calls waiting for an inspector (or those scored), oldest first."""
        rows = self.history.query(
            "SELECT q.call_id, q.agent, q.queue, q.rule, q.queued_at, c.arrived_at, c.talk_s, "
            "c.survey_score, c.recording FROM qa_queue q "
            "LEFT JOIN calls c ON c.call_id = q.call_id "
            "WHERE q.scored = ? ORDER BY q.queued_at, q.call_id LIMIT ?",
            (int(scored), limit),
        )
        return [dict(row) for row in rows]

    def score(
        self,
        call_id: str,
        *,
        inspector: str,
        ticked: Iterable[str],
        deducted: Iterable[str],
        comment: str | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        """Score a call an agent talked on; the score with its sheet. Raises call-unknown
        (404: no such call, or no agent on it) and input-invalid (an id not on the form)."""
        sheet = self.form.score(ticked, deducted)
        rows = self.history.query("SELECT agent FROM calls WHERE call_id = ?", (call_id,))
        if not rows or not rows[0]["agent"]:
            raise CCServerError(
                f"no call {call_id} that an agent talked on", slug="call-unknown", status=404
            )
        at = time.time() if now is None else now
        with self.history.records() as db:
            cursor = db.execute(
                "INSERT INTO qa_scores (call_id, agent, inspector, form, sheet, total, "
                "max_points, comment, scored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    call_id,
                    rows[0]["agent"],
                    inspector,
                    self.form.form,
                    json.dumps(sheet, ensure_ascii=False),
                    sheet["total"],
                    sheet["max"],
                    comment,
                    at,
                ),
            )
            db.execute("UPDATE qa_queue SET scored = 1 WHERE call_id = ?", (call_id,))
            return _score(_load(db, int(cursor.lastrowid or 0)))

    def dispute(
        self, score_id: int, *, agent: str, reason: str, now: float | None = None
    ) -> dict[str, Any]:
        """The scored agent disputes a score, once: forbidden (403) for another agent's
        score, dispute-exists (409) the second time."""
        at = time.time() if now is None else now
        with self.history.records() as db:
            row = _load(db, score_id)
            if row["agent"] != agent:
                raise CCServerError(
                    f"score {score_id} is of agent {row['agent']}", slug="forbidden", status=403
                )
            if row["disputed_at"] is not None:
                raise CCServerError(
                    f"score {score_id} was disputed already; a score is disputed once",
                    slug="dispute-exists",
                    status=409,
                )
            db.execute(
                "UPDATE qa_scores SET dispute = ?, disputed_at = ? WHERE id = ?",
                (reason, at, score_id),
            )
            return _score(_load(db, score_id))

    def scores(
        self, *, agent: str | None = None, since: float | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Scores, newest first: of one agent or all, scored since `since`."""
        sql = f"SELECT {_SCORE_COLUMNS} FROM qa_scores WHERE scored_at >= ?"
        params: tuple[Any, ...] = (float("-inf") if since is None else since,)
        if agent is not None:
            sql, params = sql + " AND agent = ?", (*params, agent)
        rows = self.history.query(
            sql + " ORDER BY scored_at DESC, id DESC LIMIT ?", (*params, limit)
        )
        return [_score(row) for row in rows]

    def get(self, score_id: int) -> dict[str, Any]:
        rows = self.history.query(
            f"SELECT {_SCORE_COLUMNS} FROM qa_scores WHERE id = ?", (score_id,)
        )
        if not rows:
            raise ScoreUnknown(f"no score {score_id}")
        return _score(rows[0])


_SCORE_COLUMNS = (
    "id, call_id, agent, inspector, form, sheet, total, max_points, comment, scored_at, "
    "dispute, disputed_at"
)


def _load(db: sqlite3.Connection, score_id: int) -> sqlite3.Row:
    row = db.execute(f"SELECT {_SCORE_COLUMNS} FROM qa_scores WHERE id = ?", (score_id,)).fetchone()
    if row is None:
        raise ScoreUnknown(f"no score {score_id}")
    return row  # type: ignore[no-any-return]


def _score(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["sheet"] = json.loads(data["sheet"])
    data["share"] = round(data["total"] / data["max_points"], 4) if data["max_points"] else None
    return data
