"""Flow files are checked with every error pointing at its file and line: YAML syntax,
the schema, unknown kinds, dangling and unreachable nodes, missing prompts, loops with no
exit, unknown queues, unset variables, and two flows claiming one number."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from ccserver.ivr import model
from ccserver.ivr.loader import (
    FlowError,
    load_flows,
    load_outbound_flows,
    validate_dir,
    validate_file,
    validate_outbound_dir,
)

ROOT = Path(__file__).resolve().parents[2]
QUEUES = {"general", "billing", "repair", "business", "complaints"}

BASE = """\
flow: test
numbers: ["100"]
start: hello
nodes:
  hello:
    kind: play
    prompt: 你好
    next: main
  main:
    kind: menu
    prompt: {text: 报修请按2, text_en: Press 2 for repair}
    options:
      2: repair
    on_fail: agent
  repair:
    kind: queue
    queue: repair
    priority: 10
  agent:
    kind: queue
    queue: general
"""


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing `needle`."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def check(tmp_path: Path, text: str, name: str = "t.yaml") -> list[str]:
    file = tmp_path / name
    file.write_text(textwrap.dedent(text), encoding="utf-8")
    _, issues = validate_file(file, QUEUES)
    return [str(issue) for issue in issues]


def test_the_shipped_95598_flow_is_clean_and_serves_95598() -> None:
    flows, issues = validate_dir(ROOT / "ivr_flows", QUEUES)
    assert [str(i) for i in issues] == []
    flow = flows["95598"]
    assert flow.start == "welcome"
    assert {"main_menu", "account_lookup", "survey", "outage_notice"} <= set(flow.nodes)


def test_the_schema_file_is_generated_from_the_model_and_accepts_the_95598_flow() -> None:
    shipped = (ROOT / "ivr_flows" / "flow.schema.json").read_text(encoding="utf-8")
    assert shipped == model.schema_json(), "run `.venv/bin/python -m ccserver.ivr.model`"
    schema = json.loads(shipped)
    assert schema["required"] == ["flow", "start", "nodes"]  # numbers: inbound flows only
    flow = yaml.safe_load((ROOT / "ivr_flows" / "95598.yaml").read_text(encoding="utf-8"))
    # Editors read `1:` keys as text, as JSON has no other; so does the loader.
    for node in flow["nodes"].values():
        if "options" in node:
            node["options"] = {str(k): v for k, v in node["options"].items()}
    jsonschema.Draft202012Validator(schema).validate(flow)
    broken = {**flow, "start": "Welcome!"}
    assert not jsonschema.Draft202012Validator(schema).is_valid(broken)


def test_a_valid_flow_has_no_issues(tmp_path: Path) -> None:
    assert check(tmp_path, BASE) == []


def test_yaml_syntax_errors_give_the_line(tmp_path: Path) -> None:
    text = BASE.replace("    next: main", "    next: [main")
    (issue,) = check(tmp_path, text)
    assert issue.startswith(f"{tmp_path / 't.yaml'}:")
    assert "YAML syntax" in issue
    assert int(issue.split(":")[1]) >= line_of(text, "next: [main")


def test_a_duplicated_node_id_is_an_error_not_a_silent_overwrite(tmp_path: Path) -> None:
    text = BASE + "  hello:\n    kind: hangup\n"
    (issue,) = check(tmp_path, text)
    assert f":{len(text.splitlines()) - 1}: YAML syntax: duplicate key 'hello'" in issue
    assert "first on line 5" in issue


def test_unknown_node_kinds_point_at_the_node(tmp_path: Path) -> None:
    text = BASE.replace("kind: play", "kind: playback")
    assert check(tmp_path, text) == [
        f"{tmp_path / 't.yaml'}:{line_of(text, 'hello:')}: node 'hello': unknown node kind "
        "'playback' (known: play, menu, collect, lookup, say, set, branch, queue, "
        "callback_offer, transfer, survey, hangup, order, order_status)"
    ]


def test_schema_errors_point_at_the_offending_key(tmp_path: Path) -> None:
    text = BASE.replace("    priority: 10", "    priority: 1000\n    colour: red")
    file = tmp_path / "t.yaml"
    assert check(tmp_path, text) == [
        f"{file}:{line_of(text, 'priority: 1000')}: node 'repair': priority: "
        "Input should be less than or equal to 100",
        f"{file}:{line_of(text, 'colour')}: node 'repair': unknown key 'colour'",
    ]


def test_a_top_level_key_named_like_pydantic_s_key_marker_is_an_unknown_key(
    tmp_path: Path,
) -> None:
    """Found by the loader fuzz: `"[key]":` at the top once raised IndexError."""
    text = BASE + '"[key]": 1\n'
    assert check(tmp_path, text) == [
        f"{tmp_path / 't.yaml'}:{line_of(text, '[key]')}: unknown key '[key]'"
    ]


def test_missing_prompts_are_reported(tmp_path: Path) -> None:
    file = tmp_path / "t.yaml"
    text = BASE.replace("    prompt: 你好\n", "")
    assert check(tmp_path, text) == [
        f"{file}:{line_of(text, 'hello:')}: node 'hello': "
        "missing prompt: a play node has a `prompt` or `notice: true`"
    ]
    blank = "' '"
    text = BASE.replace(
        "prompt: {text: 报修请按2, text_en: Press 2 for repair}", "prompt: " + blank
    )
    assert check(tmp_path, text) == [
        f"{file}:{line_of(text, 'prompt: ' + blank)}: node 'main': prompt: "
        "missing prompt text: give `text` (Mandarin) or `file`"
    ]
    text = BASE.replace("    prompt: 你好", "    prompt: {file: sounds/hello.wav}")
    assert check(tmp_path, text) == [
        f"{file}:{line_of(text, 'sounds/hello')}: node 'hello': prompt: "
        f"prompt file '{tmp_path / 'sounds/hello.wav'}' does not exist"
    ]
    (tmp_path / "sounds").mkdir()
    (tmp_path / "sounds" / "hello.wav").write_bytes(b"RIFF")
    assert check(tmp_path, text) == []


def test_an_english_flow_needs_english_prompt_texts(tmp_path: Path) -> None:
    text = BASE.replace("start: hello", "language: en\nstart: hello")
    assert check(tmp_path, text) == [
        f"{tmp_path / 't.yaml'}:{line_of(text, 'prompt: 你好')}: node 'hello': prompt: "
        "missing prompt text_en (the flow is English)"
    ]


def test_dangling_references_name_the_field_and_its_line(tmp_path: Path) -> None:
    text = BASE.replace("      2: repair", "      2: repair\n      3: billing_menu")
    text = text.replace("start: hello", "start: hi")
    file = tmp_path / "t.yaml"
    assert check(tmp_path, text) == [
        f"{file}:{line_of(text, 'start: hi')}: start 'hi' is not a node",
        f"{file}:{line_of(text, '3: billing_menu')}: node 'main': options.3: "
        "'billing_menu' is not a node",
    ]


def test_unreachable_nodes_are_reported_at_their_line(tmp_path: Path) -> None:
    text = BASE + "  orphan:\n    kind: hangup\n"
    assert check(tmp_path, text) == [
        f"{tmp_path / 't.yaml'}:{line_of(text, 'orphan:')}: node 'orphan': "
        "unreachable from start 'hello'"
    ]


def test_loops_with_no_exit_are_reported(tmp_path: Path) -> None:
    text = BASE.replace("    next: main", "    next: again") + (
        "  again:\n    kind: menu\n    prompt: 请按1\n    options: {1: hello}\n    on_fail: hello\n"
    )
    file = tmp_path / "t.yaml"
    assert (
        f"{file}:{line_of(text, 'hello:')}: node 'hello': loop with no exit: "
        "hello → again → hello never reaches a queue, transfer or hangup"
    ) in check(tmp_path, text)
    exits = text.replace("options: {1: hello}", "options: {1: hello, 2: main}")
    assert check(tmp_path, exits) == []


def test_a_menu_repeating_itself_is_fine_when_its_retries_exit(tmp_path: Path) -> None:
    text = BASE.replace("      2: repair", "      2: main\n      9: main")
    assert "repair" in check(tmp_path, text)[0]  # only: the repair queue is unreachable now
    assert len(check(tmp_path, text)) == 1
    stuck = text.replace("on_fail: agent", "on_fail: main")
    assert (
        f"{tmp_path / 't.yaml'}:{line_of(stuck, 'on_fail: main')}: node 'main': on_fail: "
        "points to itself: a silent caller never leaves"
    ) in check(tmp_path, stuck)


def test_unknown_queues_are_reported(tmp_path: Path) -> None:
    text = BASE.replace("queue: repair", "queue: repairs")
    assert check(tmp_path, text) == [
        f"{tmp_path / 't.yaml'}:{line_of(text, 'queue: repairs')}: node 'repair': queue: "
        "'repairs' is not a configured queue (billing, business, complaints, general, repair)"
    ]


def test_variables_must_be_set_somewhere_in_the_flow(tmp_path: Path) -> None:
    text = BASE.replace(
        "    next: main",
        "    next: lookup\n"
        "  lookup:\n"
        "    kind: lookup\n"
        '    url: "{billing_url}/accounts/{acount}"\n'
        "    results: {balance: balance}\n"
        "    next: balance\n"
        "    on_miss: main\n"
        "    on_error: main\n"
        "  balance:\n"
        "    kind: say\n"
        "    text: 余额{balance:money}，{caller:digits}\n"
        "    next: main",
    )
    assert check(tmp_path, text) == [
        f"{tmp_path / 't.yaml'}:{line_of(text, 'url:')}: node 'lookup': url: "
        "variable 'acount' is never set"
    ]


def test_templates_with_unknown_formats_are_schema_errors(tmp_path: Path) -> None:
    text = BASE.replace(
        "    next: main",
        "    next: s\n  s:\n    kind: say\n    text: '{caller:phone}'\n    next: main",
    )
    (issue,) = check(tmp_path, text)
    assert f":{line_of(text, 'text:')}: node 's': text: unknown format 'phone'" in issue


def test_bare_numbers_must_be_quoted(tmp_path: Path) -> None:
    text = BASE.replace('numbers: ["100"]', "numbers: [100]")
    (issue,) = check(tmp_path, text)
    assert f":{line_of(text, 'numbers')}: numbers.0: write the number 100 in quotes" in issue


def test_two_flows_claiming_one_number_are_reported_and_neither_is_trusted(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.yaml").write_text(BASE, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(BASE.replace("flow: test", "flow: other"), encoding="utf-8")
    flows, issues = validate_dir(tmp_path, QUEUES)
    assert [str(i) for i in issues] == [
        f"{tmp_path / 'b.yaml'}:2: number '100' is already served by {tmp_path / 'a.yaml'}"
    ]
    assert flows["100"].flow == "test"
    with pytest.raises(FlowError) as caught:
        load_flows(tmp_path, QUEUES)
    assert caught.value.slug == "flow-invalid"
    assert "b.yaml:2: number '100'" in caught.value.message


def test_bad_names_keys_and_prompt_shapes_are_explained_in_words(tmp_path: Path) -> None:
    text = (
        BASE.replace("      2: repair", "      2: repair\n      x: repair")
        .replace("    queue: general", "    queue: General")
        .replace("    prompt: 你好", "    prompt: 12")
    )
    file = tmp_path / "t.yaml"
    assert check(tmp_path, text) == [
        f"{file}:{line_of(text, 'prompt: 12')}: node 'hello': prompt: "
        "a prompt is a text, {text: …, text_en: …} or {file: …}",
        f"{file}:{line_of(text, 'x: repair')}: node 'main': options.x: "
        "'x' must be one keypad key: 0-9, * or #",
        f"{file}:{line_of(text, 'General')}: node 'agent': queue: "
        "'General' must be lower-case letters, digits, _ and -, starting with a letter",
    ]


OUTBOUND = """\
flow: poll
direction: outbound
start: rate
nodes:
  rate:
    kind: survey
    prompt: 请打分
"""


def test_outbound_flows_have_no_numbers_and_never_hand_the_customer_on(tmp_path: Path) -> None:
    (tmp_path / "poll.yaml").write_text(OUTBOUND, encoding="utf-8")
    flows, issues = validate_outbound_dir(tmp_path)
    assert issues == [] and list(flows) == ["poll"]
    assert check(tmp_path, OUTBOUND.replace("start:", 'numbers: ["100"]\nstart:')) == [
        f"{tmp_path / 't.yaml'}:1: an outbound flow serves no dialled `numbers`: remove them"
    ]
    queued = OUTBOUND.replace("    kind: survey\n    prompt: 请打分", "    kind: queue")
    (issue,) = check(tmp_path, queued)
    assert "node 'rate': an outbound flow cannot use a queue node" in issue
    inbound = BASE.replace('numbers: ["100"]\n', "")
    (issue,) = check(tmp_path, inbound)
    assert issue.endswith("an inbound flow needs `numbers` (the dialled numbers it serves)")


def test_each_kind_of_flow_is_refused_in_the_other_s_directory(tmp_path: Path) -> None:
    inbound_dir, outbound_dir = tmp_path / "in", tmp_path / "out"
    inbound_dir.mkdir(), outbound_dir.mkdir()
    (inbound_dir / "poll.yaml").write_text(OUTBOUND, encoding="utf-8")
    (outbound_dir / "base.yaml").write_text(BASE, encoding="utf-8")
    flows, issues = validate_dir(inbound_dir, QUEUES)
    assert [str(i) for i in issues] == [
        f"{inbound_dir / 'poll.yaml'}:2: an outbound flow belongs in outbound.flows_dir "
        "(ivr_flows/outbound)"
    ]
    flows, issues = validate_outbound_dir(outbound_dir)
    assert flows == {} and [str(i) for i in issues] == [
        f"{outbound_dir / 'base.yaml'}:1: a flow here needs `direction: outbound`"
    ]
    with pytest.raises(FlowError, match="needs `direction: outbound`"):
        load_outbound_flows(outbound_dir)
