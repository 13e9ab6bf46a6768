"""The service records a call leaves behind: work orders (`orders`) and their chasing, and
the knowledge base agents answer from (`knowledge`).

They live in the history store (`ccserver.history`: same file, same versioned migrations)
and know nothing of calls in progress or of telephony: call control, the API and the CLI
use them, never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass

from ccserver.history import History
from ccserver.records.knowledge import KnowledgeBase
from ccserver.records.orders import Sla, WorkOrderBook


@dataclass(frozen=True)
class Records:
    """The records of one history store, as the API and the controller hold them."""

    orders: WorkOrderBook
    knowledge: KnowledgeBase

    @classmethod
    def open(cls, history: History, sla: Sla, *, warn_before_s: float) -> Records:
        return cls(WorkOrderBook(history, sla, warn_before_s=warn_before_s), KnowledgeBase(history))
