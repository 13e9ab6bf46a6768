"""The load launchers' SIPp command lines and input checks, and the shipped scenarios and
IVR mix (checked against the 95598 flow they drive). No SIPp runs here: the integration
test tests/integration/test_loadtest_scenarios.py runs them on the real stack."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from ccserver.errors import InputError
from ccserver.loadtest import sipp

FLOW = Path(__file__).resolve().parents[2] / "ivr_flows" / "95598.yaml"
TARGET = "127.0.0.1:5060"


def key(argv: list[str], name: str) -> str:
    at = [i for i, arg in enumerate(argv) if arg == "-key" and argv[i + 1] == name]
    assert len(at) == 1, (name, argv)
    return argv[at[0] + 2]


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def callers(work: Path, **kwargs: object) -> sipp.Sipp:
    args: dict[str, object] = dict(
        target=TARGET,
        service="95598",
        run="42",
        calls=10,
        rate=2.5,
        limit=5,
        local_port=5071,
        media_port=6000,
        name="callers-42",
    )
    args.update(kwargs)
    return sipp.load_callers(work, **args)  # type: ignore[arg-type]


def test_load_callers_without_mix_go_straight_in_and_wait_for_the_far_end(tmp_path: Path) -> None:
    uac = callers(tmp_path)
    assert option(uac.argv, "-sf").endswith("load_caller.xml")
    assert (key(uac.argv, "run"), key(uac.argv, "abandon_max")) == ("42", "0")
    direct = Path(option(uac.argv, "-inf"))
    assert direct.read_text() == "SEQUENTIAL\ndirect;;0;;0;;0;\n"
    assert [option(uac.argv, o) for o in ("-s", "-m", "-r", "-l")] == ["95598", "10", "2.5", "5"]
    assert option(uac.argv, "-log_file") == str(tmp_path / "callers-42.timing.log")
    assert "-trace_logs" in uac.argv and uac.timing_file == tmp_path / "callers-42.timing.log"


def test_load_callers_walk_the_mix_and_abandon_in_the_given_range(tmp_path: Path) -> None:
    uac = callers(tmp_path, mix=sipp.IVR_MIX_95598, abandon_wait_ms=(2000, 9000))
    assert option(uac.argv, "-inf") == str(sipp.IVR_MIX_95598)
    assert (key(uac.argv, "abandon_min"), key(uac.argv, "abandon_max")) == ("2000", "9000")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"abandon_wait_ms": (9000, 2000)}, "abandon wait 9000-2000 ms"),
        ({"abandon_wait_ms": (0, 0)}, "abandon wait 0-0 ms"),
        ({"abandon_wait_ms": (-1, 5)}, "abandon wait -1-5 ms"),
        ({"mix": Path("/nonexistent/mix.csv")}, "no such file"),
        ({"calls": 0}, "must be > 0"),
        ({"rate": 0}, "must be > 0"),
        ({"target": "10.0.0.1:5060"}, "loopback addresses only"),
    ],
)
def test_bad_load_caller_input_is_refused_with_a_reason(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        callers(tmp_path, **kwargs)


def test_agent_pool_draws_talk_time_in_range_and_has_audio_to_send(tmp_path: Path) -> None:
    uas = sipp.agent_pool(tmp_path, port=5070, media_port=6002, talk_ms=(3000, 8000), name="a")
    assert option(uas.argv, "-sf").endswith("agent_pool.xml")
    assert (key(uas.argv, "talk_min"), key(uas.argv, "talk_max")) == ("3000", "8000")
    assert option(uas.argv, "-p") == "5070" and option(uas.argv, "-log_file").endswith(
        "a.timing.log"
    )
    assert (tmp_path / sipp.TALK_AUDIO).read_bytes() == b"\xff" * 8000
    with pytest.raises(InputError, match="talk time 5-1 ms"):
        sipp.agent_pool(tmp_path, port=5070, media_port=6002, talk_ms=(5, 1), name="a")


def test_the_other_agent_phones_get_the_audio_they_send_too(tmp_path: Path) -> None:
    sipp.agents(tmp_path, port=5070, media_port=6002, talk_ms=1000)
    assert (tmp_path / sipp.TALK_AUDIO).stat().st_size == 8000


def test_registrations_write_one_digest_row_a_phone(tmp_path: Path) -> None:
    uac = sipp.registrations(
        tmp_path,
        target=TARGET,
        phones={"1002": "pw-2", "1001": "pw_1"},
        local_port=5072,
        media_port=6004,
        name="phones",
    )
    assert option(uac.argv, "-sf").endswith("register.xml") and option(uac.argv, "-m") == "2"
    assert Path(option(uac.argv, "-inf")).read_text().splitlines() == [
        "SEQUENTIAL",
        "1001;[authentication username=1001 password=pw_1]",
        "1002;[authentication username=1002 password=pw-2]",
    ]
    for phones in ({}, {"1001": "a;b"}, {"1001": "a b"}, {"": "x"}):
        with pytest.raises(InputError):
            sipp.registrations(
                tmp_path, target=TARGET, phones=phones, local_port=1, media_port=2, name="p"
            )


@pytest.mark.parametrize(
    "scenario", ["agent_pool.xml", "load_caller.xml", "register.xml", "agent_answer.xml"]
)
def test_scenarios_are_well_formed_and_documented_at_the_top(scenario: str) -> None:
    path = sipp.SCENARIOS / scenario
    assert ET.parse(path).getroot().tag == "scenario"
    head = path.read_text(encoding="latin-1").split("-->")[0]
    assert f"<!--\n  {scenario}: " in head and head.count("\n") > 5


def test_agent_scenarios_send_the_talk_audio() -> None:
    for scenario in ("agent_pool.xml", "agent_answer.xml", "agent_refer.xml"):
        text = (sipp.SCENARIOS / scenario).read_text(encoding="latin-1")
        assert f'rtp_stream="{sipp.TALK_AUDIO},-1,0"' in text, scenario


def test_the_default_mix_fits_the_95598_flow() -> None:
    flow = yaml.safe_load(FLOW.read_text(encoding="utf-8"))
    flow_queues = {n["queue"] for n in flow["nodes"].values() if n["kind"] == "queue"}
    lines = sipp.IVR_MIX_95598.read_text(encoding="latin-1").splitlines()
    assert lines[0] in ("RANDOM", "SEQUENTIAL")
    rows = [line.split(";") for line in lines[1:] if line and not line.startswith("#")]
    assert len(rows) >= 10
    for row in rows:
        assert len(row) == 8, row
        assert row[1] in flow_queues, row
        waits, keys = [int(w) for w in row[2::2]], row[3::2]
        assert keys[0] and all(set(k) <= set("0123456789*#") for k in keys), row
        for i in (1, 2):
            if keys[i]:  # a step starts after the keys of the one before have been sent
                assert waits[i] > 400 * (len(keys[i - 1]) + 1), row
    branches = [row[0] for row in rows]
    assert branches.count("business") + branches.count("billing") > len(rows) / 2
