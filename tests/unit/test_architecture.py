"""The import rules and the one unit of work of docs/architecture.md hold for the whole tree:
`lint-imports` keeps the contracts in pyproject.toml (and breaks on a wrong import), no
module of ours is imported inside a function to hide a cycle, and no code outside
`CallCenter.move` assigns a call's state."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from ccserver.calls.model import TRANSITIONS

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
LAZY_COMMAND_MODULES = {
    "ccserver/cli.py",
    "ccserver/loadtest/cli.py",
    "ccserver/workforce/cli.py",
    "ccserver/workforce/plan_cli.py",
}
"""Command-line modules whose commands import their implementation when run, so that
`ccserver --help` and every other command do not pay for it (measured on the 2-core box:
the load harness takes 1.6 s to import, the controller 0.9 s, the forecast 0.6 s)."""


def _sources() -> list[Path]:
    return sorted((ROOT / "ccserver").rglob("*.py"))


def _lint_imports(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_tree_keeps_every_import_contract() -> None:
    result = _lint_imports(ROOT, ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_transport_module_that_imports_call_control_breaks_the_contracts(
    tmp_path: Path,
) -> None:
    # A copy of the sources with one wrong import: the ARI operations reaching up into the
    # call center, the kind of back-reference the layering exists to stop.
    for package in ("ccserver", "acd_core"):
        shutil.copytree(
            ROOT / package,
            tmp_path / package,
            ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__", "*.pyx"),
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    rest = tmp_path / "ccserver" / "telephony" / "rest.py"
    rest.write_text(rest.read_text() + "\nfrom ccserver.calls import center  # noqa\n")
    result = _lint_imports(tmp_path, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any("telephony transport imports nothing" in line for line in broken), result.stdout
    assert "ccserver.telephony.rest -> ccserver.calls.center" in result.stdout


def test_no_module_of_ours_is_imported_inside_a_function() -> None:
    found = []
    for path in _sources():
        name = str(path.relative_to(ROOT))
        tree = ast.parse(path.read_text(), name)
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                found.append(f"{name}:{node.lineno}: an import only for type checking")
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                module = _our_import(inner)
                if module is not None and name not in LAZY_COMMAND_MODULES:
                    found.append(f"{name}:{inner.lineno}: imports {module} in {node.name}()")
    assert not found, "\n".join(found)


def _our_import(node: ast.AST) -> str | None:
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        names = [node.module]
    elif isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        return None
    ours = [n for n in names if n.split(".")[0] in ("ccserver", "acd_core")]
    return ours[0] if ours else None


def test_a_call_state_is_assigned_only_by_the_center_s_move() -> None:
    assignments = []
    for path in sorted((ROOT / "ccserver" / "calls").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                targets = [node.target]
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Attribute) and leaf.attr == "state":
                        assignments.append(f"{path.name}:{node.lineno}")
    assert len(assignments) == 1 and assignments[0].startswith("center.py:"), assignments


def test_only_the_center_takes_its_lock() -> None:
    """Every other module changes calls and agents through `CallCenter.transaction()`."""
    taking = re.compile(r"\b(center|calls)\._?lock\b|asyncio\.Lock\(")
    users = [
        str(path.relative_to(ROOT))
        for path in [
            *(ROOT / "ccserver" / "calls").glob("*.py"),
            ROOT / "ccserver" / "controller.py",
        ]
        if path.name != "center.py" and taking.search(path.read_text())
    ]
    assert users == []


def test_the_documented_call_states_are_the_transition_table() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Call states", 1)[1].split("\n## ", 1)[0]
    documented = {}
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            documented[cells[0].strip("`")] = set(re.findall(r"`([a-z-]+)`", cells[2]))
    table = {str(state): {str(to) for to in moves} for state, moves in TRANSITIONS.items()}
    assert documented == table
