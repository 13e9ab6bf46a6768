"""Load flow files, check them (every problem reported as `file:line: message`), and
generate their prompts ahead of the first caller.

An operator edits YAML by hand, so an error must point at the line to fix:
`ivr_flows/95598.yaml:42: node 'billing_menu': options.1: 'foo' is not a node`. The YAML
is read with a loader that remembers the line of every mapping and every key; schema
errors from pydantic and the whole-flow checks below are then mapped back to those lines.

Whole-flow checks (after the schema): references to nodes that do not exist, nodes that
cannot be reached from `start`, loops from which no exit (queue, transfer, hangup, survey,
callback offer) can be reached, queues that are not configured, variables used but never
set, prompt files that do not exist, English texts missing in an English flow, and two
flows claiming one number.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ccserver.errors import CCServerError
from ccserver.ivr.model import (
    BUILTIN_VARIABLES,
    KEY,
    KINDS,
    NODE_ID,
    NUMBER,
    QUEUE_NAME,
    VAR_NAME,
    BranchNode,
    Flow,
    Node,
    SayNode,
)
from ccserver.ivr.say import Slot, parse_template
from ccserver.logs import log
from ccserver.prompts import Prompts

logger = logging.getLogger("ccserver.ivr")

CONFIG_VARIABLES = frozenset({"billing_url"})
"""Names a lookup URL may use besides the flow's variables (from the `[ivr]` config)."""


class FlowError(CCServerError):
    """One or more flow files are invalid; the message lists every `file:line: problem`."""

    slug = "flow-invalid"
    status = 422


@dataclass(frozen=True, order=True)
class FlowIssue:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


# --- YAML with line numbers ----------------------------------------------------------------


class LineDict(dict[Any, Any]):
    """A YAML mapping that knows its line and the line of each key (1-based)."""

    line: int = 1
    key_lines: dict[str, int]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings are `LineDict`s; a duplicated key is an error (PyYAML
    would silently keep the last one, losing a node)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> Iterator[LineDict]:
    data = LineDict()
    data.line = node.start_mark.line + 1
    data.key_lines = {}
    yield data
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        name = str(key)
        if name in data.key_lines:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"duplicate key {name!r} (first on line {data.key_lines[name]})",
                key_node.start_mark,
            )
        data.key_lines[name] = key_node.start_mark.line + 1
        data[key] = loader.construct_object(value_node, deep=True)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line_of(raw: Any, path: Iterable[Any]) -> int:
    """The line of the deepest key of `path` found in the raw YAML (a part not in the data
    is skipped: the error is then shown at its parent's line)."""
    line = raw.line if isinstance(raw, LineDict) else 1
    node = raw
    for part in path:
        if isinstance(node, LineDict) and str(part) in node.key_lines:
            line = node.key_lines[str(part)]
            node = next(v for k, v in node.items() if str(k) == str(part))
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            line = node.line if isinstance(node, LineDict) else line
    return line


# --- schema errors -------------------------------------------------------------------------


_PATTERNS = {
    NODE_ID: "must be lower-case letters, digits and _, starting with a letter",
    VAR_NAME: "must be lower-case letters, digits and _, starting with a letter",
    QUEUE_NAME: "must be lower-case letters, digits, _ and -, starting with a letter",
    KEY: "must be one keypad key: 0-9, * or #",
    NUMBER: "must be digits only",
}
"""Regexes of the model, in words for the operator."""


def _schema_issue(file: str, raw: Any, err: Mapping[str, Any]) -> FlowIssue:
    loc = list(err["loc"])
    if len(loc) >= 3 and loc[0] == "nodes" and loc[2] in KINDS:
        del loc[2]  # the node kind pydantic puts in the path of a discriminated union
    if "[key]" in loc[1:]:  # a mapping key is wrong: name it, not its value (pydantic's
        loc = loc[: loc.index("[key]", 1)]  # marker; a top-level key of that name is a key)
    line = _line_of(raw, loc)
    where = ""
    if len(loc) >= 2 and loc[0] == "nodes":
        where, loc = f"node '{loc[1]}': ", loc[2:]
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "string_pattern_mismatch" and err["ctx"]["pattern"] in _PATTERNS:
        msg = f"{err['input']!r} {_PATTERNS[err['ctx']['pattern']]}"
    elif "instance of Prompt" in msg:
        msg = "a prompt is a text, {text: …, text_en: …} or {file: …}"
    elif err["type"] == "union_tag_invalid":
        msg = f"unknown node kind {err['ctx']['tag']!r} (known: {', '.join(KINDS)})"
    elif err["type"] == "union_tag_not_found":
        msg = f"no `kind:` (one of {', '.join(KINDS)})"
    elif err["type"] == "extra_forbidden":
        msg = f"unknown key {loc[-1]!r}"
        loc = loc[:-1]
    elif err["type"] == "missing":
        field = str(loc[-1])
        msg = "missing prompt" if field == "prompt" else f"missing `{field}`"
        loc = loc[:-1]
    path = ".".join(str(p) for p in loc)
    return FlowIssue(file, line, f"{where}{path + ': ' if path else ''}{msg}")


# --- whole-flow checks ---------------------------------------------------------------------


class _Checker:
    def __init__(self, file: str, raw: Any, flow: Flow, known_queues: set[str]) -> None:
        self.file, self.raw, self.flow, self.known_queues = file, raw, flow, known_queues
        self.issues: list[FlowIssue] = []

    def add(self, path: list[Any], message: str) -> None:
        self.issues.append(FlowIssue(self.file, _line_of(self.raw, path), message))

    def node_issue(self, node_id: str, label: str, message: str) -> None:
        path = ["nodes", node_id, *label.split(".")] if label else ["nodes", node_id]
        where = f"{label}: " if label else ""
        self.add(path, f"node '{node_id}': {where}{message}")

    def run(self) -> list[FlowIssue]:
        flow = self.flow
        if flow.start not in flow.nodes:
            self.add(["start"], f"start {flow.start!r} is not a node")
        edges: dict[str, list[str]] = {}
        set_anywhere = set(BUILTIN_VARIABLES)
        for node in flow.nodes.values():
            set_anywhere |= node.sets()
        for node_id, node in flow.nodes.items():
            edges[node_id] = []
            for label, target in node.targets().items():
                if target in flow.nodes:
                    edges[node_id].append(target)
                else:
                    self.node_issue(node_id, label, f"{target!r} is not a node")
            self._node(node_id, node, set_anywhere)
        self._graph(edges)
        return self.issues

    def _node(self, node_id: str, node: Node, set_anywhere: set[str]) -> None:
        for label, queue in node.queues().items():
            if queue not in self.known_queues:
                known = ", ".join(sorted(self.known_queues)) or "none"
                self.node_issue(node_id, label, f"{queue!r} is not a configured queue ({known})")
        for label, prompt in node.prompts().items():
            if prompt.file is not None and not (self.flow.base_dir / prompt.file).is_file():
                path = self.flow.base_dir / prompt.file
                self.node_issue(node_id, label, f"prompt file {str(path)!r} does not exist")
            if self.flow.language == "en" and prompt.text is not None and prompt.text_en is None:
                self.node_issue(node_id, label, "missing prompt text_en (the flow is English)")
        variables = set_anywhere | (CONFIG_VARIABLES if node.kind == "lookup" else set())
        for label, text in node.templates().items():
            for seg in parse_template(text):
                if isinstance(seg, Slot) and seg.name not in variables:
                    self.node_issue(node_id, label, f"variable {seg.name!r} is never set")
        for label, name in node.reads().items():
            if name not in variables:
                self.node_issue(node_id, label, f"variable {name!r} is never set")
        if isinstance(node, BranchNode):
            for i, case in enumerate(node.cases):
                if case.when.visits and case.when.visits.node not in self.flow.nodes:
                    label = f"cases.{i}.when.visits.node"
                    self.node_issue(node_id, label, f"{case.when.visits.node!r} is not a node")
        if getattr(node, "on_fail", None) == node_id:
            self.node_issue(node_id, "on_fail", "points to itself: a silent caller never leaves")

    def _graph(self, edges: dict[str, list[str]]) -> None:
        flow = self.flow
        reachable: set[str] = set()
        todo = [flow.start] if flow.start in flow.nodes else []
        while todo:
            node_id = todo.pop()
            if node_id not in reachable:
                reachable.add(node_id)
                todo.extend(edges[node_id])
        for node_id in flow.nodes:
            if node_id not in reachable and flow.start in flow.nodes:
                self.node_issue(node_id, "", f"unreachable from start {flow.start!r}")
        # Nodes from which some exit can be reached: walk the edges backwards from the exits.
        incoming: dict[str, list[str]] = {n: [] for n in flow.nodes}
        for source, targets in edges.items():
            for target in targets:
                incoming[target].append(source)
        can_exit = {n for n, node in flow.nodes.items() if node.exits}
        todo = list(can_exit)
        while todo:
            for source in incoming[todo.pop()]:
                if source not in can_exit:
                    can_exit.add(source)
                    todo.append(source)
        trapped = {n for n in reachable if n not in can_exit}
        for loop in _cycles(trapped, edges):
            order = sorted(loop, key=list(flow.nodes).index)
            ring = " → ".join([*order, order[0]])
            self.node_issue(
                order[0], "", f"loop with no exit: {ring} never reaches a queue, transfer or hangup"
            )


def _cycles(nodes: set[str], edges: dict[str, list[str]]) -> list[set[str]]:
    """Strongly connected sets of `nodes` that hold a cycle (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(t for t in edges[root] if t in nodes))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(t for t in edges[child] if t in nodes)))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1 or node in edges[node]:
                    found.append(group)
    return found


# --- files ---------------------------------------------------------------------------------


def _read(path: Path, known_queues: set[str]) -> tuple[Any, Flow | None, list[FlowIssue]]:
    file = str(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_LineLoader)
    except OSError as exc:
        return None, None, [FlowIssue(file, 1, f"cannot be read: {exc.strerror}")]
    except UnicodeDecodeError:
        return None, None, [FlowIssue(file, 1, "is not UTF-8 text")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        return None, None, [FlowIssue(file, line, f"YAML syntax: {problem}")]
    if not isinstance(raw, dict):
        issue = FlowIssue(file, 1, "a flow file is a mapping (flow:, numbers:, start:, nodes:)")
        return raw, None, [issue]
    try:
        flow = Flow.model_validate(raw)
    except ValidationError as exc:
        return raw, None, sorted({_schema_issue(file, raw, err) for err in exc.errors()})
    flow.with_base_dir(path.parent)
    return raw, flow, sorted(set(_Checker(file, raw, flow, known_queues).run()))


def validate_file(path: Path, known_queues: set[str]) -> tuple[Flow | None, list[FlowIssue]]:
    """Read and check one flow file: the flow (None if it could not be built) and every
    issue found (a flow with issues must not be run)."""
    _, flow, issues = _read(path, known_queues)
    return flow, issues


def validate_dir(path: Path, known_queues: set[str]) -> tuple[dict[str, Flow], list[FlowIssue]]:
    """Check every `*.yaml` flow in `path`. Returns the valid flows by dialled number and
    every issue (sorted by file and line), including numbers claimed by two flows."""
    if not path.is_dir():
        return {}, [FlowIssue(str(path), 1, "is not a directory of flow files")]
    flows: dict[str, Flow] = {}
    issues: list[FlowIssue] = []
    claimed: dict[str, str] = {}
    for file in sorted([*path.glob("*.yaml"), *path.glob("*.yml")]):
        raw, flow, found = _read(file, known_queues)
        issues += found
        if flow is None:
            continue
        if flow.direction == "outbound":
            message = "an outbound flow belongs in outbound.flows_dir (ivr_flows/outbound)"
            found.append(FlowIssue(str(file), _line_of(raw, ["direction"]), message))
            issues.append(found[-1])
        for number in flow.numbers:
            if number in claimed:
                message = f"number {number!r} is already served by {claimed[number]}"
                found.append(FlowIssue(str(file), _line_of(raw, ["numbers"]), message))
                issues.append(found[-1])
            else:
                claimed[number] = str(file)
        if not found:
            flows.update({number: flow for number in flow.numbers})
    return flows, sorted(issues)


def load_flows(path: Path, known_queues: set[str]) -> dict[str, Flow]:
    """The flows by dialled number, or FlowError listing every issue (for the controller's
    start: it refuses to run with a broken flow rather than drop callers mid-menu)."""
    flows, issues = validate_dir(path, known_queues)
    if issues:
        raise FlowError("\n".join(str(issue) for issue in issues))
    log(logger, "ivr.flows-loaded", dir=str(path), numbers=",".join(sorted(flows)))
    return flows


def validate_outbound_dir(path: Path) -> tuple[dict[str, Flow], list[FlowIssue]]:
    """Check every outbound flow in `path`. Returns the valid ones by flow name, and every
    issue (a name used twice, an inbound flow)."""
    flows: dict[str, Flow] = {}
    if not path.is_dir():
        return flows, [FlowIssue(str(path), 1, "is not a directory of flow files")]
    issues: list[FlowIssue] = []
    for file in sorted([*path.glob("*.yaml"), *path.glob("*.yml")]):
        raw, flow, found = _read(file, set())
        if flow is not None and flow.direction != "outbound":  # its other issues are moot
            found = [FlowIssue(str(file), 1, "a flow here needs `direction: outbound`")]
        if flow is not None and flow.flow in flows:
            found.append(FlowIssue(str(file), _line_of(raw, ["flow"]), f"{flow.flow!r} twice"))
        issues += found
        if flow is not None and not found:
            flows[flow.flow] = flow
    return flows, sorted(issues)


def load_outbound_flows(path: Path) -> dict[str, Flow]:
    """The outbound flows by name, or FlowError listing every issue."""
    flows, issues = validate_outbound_dir(path)
    if issues:
        raise FlowError("\n".join(str(issue) for issue in issues))
    log(logger, "ivr.outbound-flows-loaded", dir=str(path), flows=",".join(flows))
    return flows


def flow_texts(flow: Flow) -> set[tuple[str, str]]:
    """Every fixed (text, language) a flow can speak: prompts and the literal parts of
    `say` sentences. `warm_prompts` generates them ahead of the first caller."""
    texts: set[tuple[str, str]] = set()
    for node in flow.nodes.values():
        for prompt in node.prompts().values():
            if prompt.text:
                texts.add((prompt.text, "zh"))
            if prompt.text_en:
                texts.add((prompt.text_en, "en"))
        if isinstance(node, SayNode):
            for text, language in ((node.text, "zh"), (node.text_en, "en")):
                for seg in parse_template(text or ""):
                    if isinstance(seg, str) and any(ch.isalnum() for ch in seg):
                        texts.add((seg, language))
    return texts


def warm_prompts(flow: Flow, prompts: Prompts) -> int:
    """Generate every fixed prompt of `flow` now (blocking: call it in a thread at start
    or from check-config); returns how many texts there are."""
    texts = flow_texts(flow)
    for text, language in sorted(texts):
        prompts.sound(text, language)
    return len(texts)
