"""The service records a call leaves behind: work orders (`orders`) and their chasing, the
knowledge base agents answer from (`knowledge`), quality inspection (`qa`), and the
outbound calls — orders' follow-ups and survey campaigns — with their results
(`outbound`).

They live in the history store (`ccserver.history`: same file, same versioned migrations)
and know nothing of calls in progress or of telephony: call control, the API and the CLI
use them, never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass

from ccserver.records.knowledge import KnowledgeBase
from ccserver.records.orders import WorkOrderBook
from ccserver.records.outbound import OutboundBook
from ccserver.records.qa import QaBook


@dataclass(frozen=True)
class Records:
    """The records of one history store, as the API and the controller hold them."""

    orders: WorkOrderBook
    knowledge: KnowledgeBase
    qa: QaBook
    outbound: OutboundBook
