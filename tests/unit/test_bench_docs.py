"""The benchmark tables of docs/benchmarks.md and docs/routing.md are what docs/bench/*.json
give (scripts/bench_docs.py): figures come from files, not from memory."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_docs", ROOT / "scripts" / "bench_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_docs", module)
    spec.loader.exec_module(module)
    return module


bench_docs = _load_generator()


def _copy_tree(tmp_path: Path) -> Path:
    """The docs with generated sections and their JSON, copied into tmp_path."""
    docs = {section.doc for section in bench_docs.SECTIONS}
    for doc in docs:
        (tmp_path / doc).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / doc, tmp_path / doc)
    shutil.copytree(ROOT / bench_docs.BENCH_DIR, tmp_path / bench_docs.BENCH_DIR)
    return tmp_path


def test_every_json_has_meta() -> None:
    for section in bench_docs.SECTIONS:
        path = ROOT / bench_docs.BENCH_DIR / section.source
        if section.optional and not path.exists():
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        source = section.source
        meta = data["meta"]
        assert {"commit", "dirty", "date", "cpu", "cores", "python"} <= set(meta), source
        assert meta["commit"] and meta["date"], source


def test_the_docs_agree_with_their_json() -> None:
    text = bench_docs.diff(ROOT)
    assert text == "", "run `.venv/bin/python scripts/bench_docs.py`:\n" + text


def test_check_mode_passes_on_the_committed_tree(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_docs.main(["--check"]) == 0
    assert capsys.readouterr().out == ""


def test_every_section_has_its_markers_and_a_meta_line() -> None:
    for section in bench_docs.SECTIONS:
        text = (ROOT / section.doc).read_text(encoding="utf-8")
        begin = f"<!-- bench:{section.marker} begin -->"
        end = f"<!-- bench:{section.marker} end -->"
        assert text.count(begin) == 1 and text.count(end) == 1, section.marker
    for doc in {section.doc for section in bench_docs.SECTIONS}:
        assert "measured at commit `" in (ROOT / doc).read_text(encoding="utf-8"), doc


@pytest.mark.parametrize(
    ("source", "path", "value"),
    [
        ("vs_app_queue.json", ("systems", "ccserver", "ring_delay_ms", "p99"), 99.9),
        ("vs_app_queue.json", ("capacity", 0, "completed"), 74),
        ("vs_app_queue.json", ("meta", "commit"), "0" * 40),
        ("router.json", ("results", 0, "dispatch_p50_ns"), 123_456),
        ("router.json", ("meta", "cores"), 64),
    ],
)
def test_a_tampered_json_fails_the_check(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    source: str,
    path: tuple[str | int, ...],
    value: object,
) -> None:
    root = _copy_tree(tmp_path)
    assert bench_docs.main(["--check", "--root", str(root)]) == 0
    target = root / bench_docs.BENCH_DIR / source
    data = json.loads(target.read_text(encoding="utf-8"))
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    target.write_text(json.dumps(data), encoding="utf-8")

    assert bench_docs.main(["--check", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("--- ") and "(from the JSON)" in out

    # Regenerating brings the doc back in line with the (tampered) file.
    assert bench_docs.main(["--root", str(root)]) == 0
    assert bench_docs.main(["--check", "--root", str(root)]) == 0


def test_a_missing_marker_or_json_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy_tree(tmp_path)
    (root / bench_docs.BENCH_DIR / "router.json").unlink()
    assert bench_docs.main(["--check", "--root", str(root)]) == 2
    assert "router.json does not exist" in capsys.readouterr().err

    root = _copy_tree(tmp_path / "again")
    doc = root / "docs" / "routing.md"
    doc.write_text(
        doc.read_text(encoding="utf-8").replace("<!-- bench:router-table end -->", ""),
        encoding="utf-8",
    )
    assert bench_docs.main(["--check", "--root", str(root)]) == 2
    assert "router-table" in capsys.readouterr().err


def _capacity_goal(failed: int = 0) -> dict[str, object]:
    """A capacity_goal.json as tests/bench/test_capacity_goal.py writes it."""
    return {
        "meta": {
            "commit": "a" * 40,
            "dirty": False,
            "date": "2026-12-01T10:00:00+00:00",
            "cpu": "Test CPU",
            "cores": 8,
            "python": "3.12.3",
        },
        "step": {"concurrency": 150, "cps": 20, "calls": 300},
        "row": {
            "system": "ccserver",
            "concurrency": 150,
            "cps": 20,
            "calls": 300,
            "completed": 300 - failed,
            "failed": failed,
            "ok": failed == 0,
            "asterisk_cpu_pct": 17.25,
            "controller_cpu_pct": 21.5,
            "peak_active": 151,
            "ring_delay_p99_ms": 8.9,
        },
        "ring_delay_ms": {"n": 300, "p50": 4.04, "p90": 5.5, "p99": 8.9, "max": 39.6},
        "wait_ms": {"n": 300, "p50": 209.4, "p90": 211.0, "p99": 214.2, "max": 230.0},
        "cpu": {
            "asterisk_pct_mean": 17.25,
            "asterisk_pct_max": 25.0,
            "controller_pct_mean": 21.5,
            "controller_pct_max": 30.0,
            "controller_to_asterisk": 1.2464,
        },
    }


def _goal_root(tmp_path: Path, data: dict[str, object] | None) -> Path:
    """A tmp root with docs/ and docs/bench/ holding only the capacity-goal section."""
    (tmp_path / "docs" / "bench").mkdir(parents=True)
    (tmp_path / "docs" / "benchmarks.md").write_text(
        "# x\n\n<!-- bench:capacity-goal begin -->\nold\n<!-- bench:capacity-goal end -->\n",
        encoding="utf-8",
    )
    if data is not None:
        (tmp_path / "docs" / "bench" / "capacity_goal.json").write_text(
            json.dumps(data), encoding="utf-8"
        )
    return tmp_path


def _goal_body(root: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    section = next(s for s in bench_docs.SECTIONS if s.marker == "capacity-goal")
    monkeypatch.setattr(bench_docs, "SECTIONS", (section,))
    assert bench_docs.main(["--root", str(root)]) == 0
    assert bench_docs.main(["--check", "--root", str(root)]) == 0
    text = (root / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    return text.split("<!-- bench:capacity-goal begin -->\n")[1].split("\n<!-- bench:")[0]


def test_the_capacity_goal_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = _goal_body(_goal_root(tmp_path, _capacity_goal()), monkeypatch)
    assert body.startswith("_`make bench`, tests/bench/test_capacity_goal.py: measured at commit")
    assert "`aaaaaaaaaa` on 2026-12-01, Test CPU, 8 cores, Python 3.12.3._" in body
    assert "| 150 | 20 | 300 | 300 | 0 | 151 | 4.0 / 8.9 ms | 209 / 214 ms | 17.2 / 21.5 % |" in (
        body
    )
    assert body.endswith(
        "Against the goal (150 concurrent calls at 20 CPS, 0 failed): **0 failed: met**."
    )


def test_the_capacity_goal_not_met(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = _goal_body(_goal_root(tmp_path, _capacity_goal(failed=3)), monkeypatch)
    assert "| 150 | 20 | 300 | 297 | 3 |" in body
    assert "**3 failed: not met**" in body
    assert "met**" not in body.replace("not met**", "")


def test_a_missing_capacity_goal_json_is_not_measured_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _goal_root(tmp_path, None)
    section = next(s for s in bench_docs.SECTIONS if s.marker == "capacity-goal")
    monkeypatch.setattr(bench_docs, "SECTIONS", (section,))
    # The doc still holds the old body: stale, but not an error.
    assert bench_docs.main(["--check", "--root", str(root)]) == 1
    assert "+_not measured yet: run `make bench`._" in capsys.readouterr().out
    assert _goal_body(root, monkeypatch) == "_not measured yet: run `make bench`._"


def test_only_the_capacity_goal_json_may_be_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy_tree(tmp_path)
    (root / bench_docs.BENCH_DIR / "capacity_goal.json").unlink(missing_ok=True)
    assert bench_docs.main(["--root", str(root)]) == 0
    assert bench_docs.main(["--check", "--root", str(root)]) == 0
    (root / bench_docs.BENCH_DIR / "vs_app_queue.json").unlink()
    assert bench_docs.main(["--check", "--root", str(root)]) == 2
    assert "vs_app_queue.json does not exist" in capsys.readouterr().err


def test_significant_figures() -> None:
    assert bench_docs.ns(470) == "470 ns"
    assert bench_docs.ns(2_000) == "2.00 µs"
    assert bench_docs.ns(16_900) == "16.9 µs"
    assert bench_docs.ns(285_000) == "285 µs"
    assert bench_docs.rate(1_880_000) == "1.88 M"
    assert bench_docs.rate(38_000) == "38.0 k"
