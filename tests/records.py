"""The service records of a history file, as the controller assembles them (the shipped
QA form and sampling rules, Beijing time), for tests of the API, the desk and QA."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from ccserver.history import History
from ccserver.records import Records
from ccserver.records.knowledge import KnowledgeBase
from ccserver.records.orders import Sla, WorkOrderBook
from ccserver.records.outbound import OutboundBook
from ccserver.records.qa import QaBook, SamplingRules, load_form

ZONE = ZoneInfo("Asia/Shanghai")


def records_of(
    history: History,
    sla: Sla | None = None,
    *,
    warn_before_s: float = 0.0,
    rules: SamplingRules | None = None,
) -> Records:
    return Records(
        orders=WorkOrderBook(history, sla or Sla([]), warn_before_s=warn_before_s),
        knowledge=KnowledgeBase(history),
        qa=QaBook(history, load_form(), rules or SamplingRules(), ZONE),
        outbound=OutboundBook(history),
    )
