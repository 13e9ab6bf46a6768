"""The knowledge base on a real history file: Chinese words found inside longer phrases
(bigrams), English words stemmed, ranking, validity, suggestions by tags, reads counted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ccserver.errors import CCServerError
from ccserver.history import History
from ccserver.records.knowledge import ArticleText, KnowledgeBase, match_expression, segment

T0 = 1_800_000_000.0
DAY = 86400.0


@pytest.fixture
def kb(tmp_path: Path) -> Iterator[KnowledgeBase]:
    history = History(tmp_path / "history.sqlite")
    yield KnowledgeBase(history)
    history.close()


def _seed(kb: KnowledgeBase) -> dict[str, int]:
    texts = {
        "bill": ArticleText(
            "电费缴纳方式",
            "客户可通过网上国网App、银行代扣或营业厅缴纳电费。Customers may pay online.",
            ("billing", "account_balance"),
        ),
        "outage": ArticleText(
            "计划停电查询",
            "计划检修停电提前七天公告，客户可拨打95598查询停电范围和恢复时间。",
            ("repair", "fault-reported"),
        ),
        "old": ArticleText(
            "2025年阶梯电价调整", "旧的阶梯电价方案，已废止。", ("billing",), valid_until=T0 + DAY
        ),
    }
    return {name: kb.add(text, who="sup", now=T0).id for name, text in texts.items()}


def test_segmenting_cuts_chinese_into_bigrams_and_leaves_the_rest() -> None:
    assert segment("电费查询 bills") == " 电费 费查 查询  bills"
    assert segment("停") == " 停 "
    assert match_expression("缴纳电费") == '"缴纳" AND "纳电" AND "电费"'
    assert match_expression("电") == '"电"*'
    assert match_expression('a"b') == '"a" AND "b"'
    assert match_expression("，。!") is None


def test_a_chinese_word_is_found_inside_a_longer_phrase_and_an_english_word_stemmed(
    kb: KnowledgeBase,
) -> None:
    ids = _seed(kb)
    assert [a.id for a, _ in kb.search("缴纳", now=T0)] == [ids["bill"]]  # in 缴纳电费
    assert [a.id for a, _ in kb.search("恢复时间", now=T0)] == [ids["outage"]]
    assert [a.id for a, _ in kb.search("paying", now=T0)] == [ids["bill"]]  # pay
    found = kb.search("电费", now=T0)  # a title match ranks first
    assert next(a.id for a, _ in found) == ids["bill"]
    snippet = dict((a.id, s) for a, s in found)[ids["bill"]]
    assert "电费" in snippet
    assert kb.search("燃气", now=T0) == []


def test_expired_articles_are_neither_found_nor_suggested(kb: KnowledgeBase) -> None:
    ids = _seed(kb)
    assert ids["old"] in [a.id for a, _ in kb.search("电价", now=T0)]
    later = T0 + 2 * DAY
    assert kb.search("电价", now=later) == []
    assert ids["old"] in [a.id for a, _ in kb.search("电价", now=later, valid_only=False)]
    assert [a.id for a in kb.suggest(["billing"], now=T0)] == [ids["bill"], ids["old"]]
    assert [a.id for a in kb.suggest(["billing"], now=later)] == [ids["bill"]]


def test_suggestions_rank_by_tags_shared_then_by_reads(kb: KnowledgeBase) -> None:
    ids = _seed(kb)
    extra = kb.add(ArticleText("报修流程", "…", ("repair",)), who="sup", now=T0)
    for _ in range(3):
        kb.read(extra.id, who="agent:1001", now=T0 + 10)
    call_tags = ["repair", "fault-reported", "main_menu"]
    assert [a.id for a in kb.suggest(call_tags, now=T0)] == [ids["outage"], extra.id]
    assert [a.id for a in kb.suggest(["repair"], now=T0)] == [extra.id, ids["outage"]]
    assert kb.suggest([], now=T0) == []


def test_reads_are_counted_and_kept_by_reader(kb: KnowledgeBase) -> None:
    ids = _seed(kb)
    kb.read(ids["bill"], who="agent:1001", now=T0 + 1)
    kb.read(ids["bill"], who="agent:1002", now=T0 + 2)
    kb.read(ids["outage"], who="agent:1001", now=T0 + 3)
    assert next(a.views for a in kb.articles() if a.id == ids["bill"]) == 2
    looked = kb.lookups(T0)
    assert [(row["id"], row["reads"], row["readers"]) for row in looked] == [
        (ids["bill"], 2, 2),
        (ids["outage"], 1, 1),
    ]
    assert [a.id for a in kb.articles()][:2] == [ids["bill"], ids["outage"]]


def test_updating_reindexes_and_deleting_forgets(kb: KnowledgeBase) -> None:
    ids = _seed(kb)
    kb.update(
        ids["outage"], ArticleText("临时停电", "抢修期间的临时停电。", ("Repair ",)), who="sup2"
    )
    assert kb.search("恢复时间", now=T0) == []
    ((found, _),) = kb.search("抢修", now=T0)
    assert (found.id, found.tags, found.updated_by) == (ids["outage"], ("repair",), "sup2")
    kb.delete(ids["outage"])
    assert kb.search("抢修", now=T0) == [] and kb.suggest(["repair"], now=T0) == []
    with pytest.raises(CCServerError) as gone:
        kb.read(ids["outage"], who="agent:1001")
    assert (gone.value.slug, gone.value.status) == ("article-unknown", 404)


def test_bad_input_is_refused_with_a_slug(kb: KnowledgeBase) -> None:
    with pytest.raises(CCServerError) as empty:
        kb.search("？！")
    assert empty.value.slug == "input-invalid"
    with pytest.raises(CCServerError) as period:
        kb.add(ArticleText("x", valid_from=T0, valid_until=T0), who="s")
    assert "valid_until must be after valid_from" in period.value.message
    with pytest.raises(CCServerError):
        kb.add(ArticleText("  "), who="s")
    assert kb.articles() == []
