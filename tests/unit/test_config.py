"""Configuration: defaults < file < CCSERVER_* environment, and precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccserver import config
from ccserver.errors import ConfigError


def test_defaults_are_valid_and_bind_to_loopback_only() -> None:
    cfg = config.load(environ={})
    assert cfg.stack.bind == "127.0.0.1"
    assert cfg.is_loopback_only()
    assert cfg.hotline.numbers == ["95598"]
    assert cfg.phones.ids == ["1001", "1002", "1003", "1004", "1005"]
    assert [q.name for q in cfg.acd.queues] == [
        "general",
        "billing",
        "repair",
        "business",
        "complaints",
    ]
    assert [a.id for a in cfg.agents] == cfg.phones.ids  # one agent per phone by default


def test_file_then_environment_override_in_that_order(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text('[asterisk]\nsip_port = 5160\nhttp_port = 8188\n[phones]\nids = ["2001"]\n')
    cfg = config.load(file, environ={"CCSERVER_ASTERISK__SIP_PORT": "5260"})
    assert cfg.asterisk.sip_port == 5260  # environment wins over the file
    assert cfg.asterisk.http_port == 8188  # the file wins over the defaults
    assert cfg.asterisk.ami_port == 5038  # defaults fill the rest
    assert cfg.phones.ids == ["2001"]


def test_environment_values_are_parsed_as_toml_values() -> None:
    env = {"CCSERVER_PHONES__IDS": '["3001", "3002"]', "CCSERVER_CONTROLLER__GREETING": "hi"}
    cfg = config.load(environ=env)
    assert cfg.phones.ids == ["3001", "3002"]
    assert cfg.controller.greeting == "hi"  # not valid TOML: taken as a plain string


def test_config_file_named_by_environment(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text("[redis]\nport = 7001\n")
    assert config.load(environ={"CCSERVER_CONFIG": str(file)}).redis.port == 7001


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[asterisk]\nsip_port = 70000\n", "asterisk.sip_port: Input should be less than or equal"),
        ("[asterisk]\nsip_prot = 5060\n", "asterisk.sip_prot: unknown key"),
        ("[stack]\nbind = 'localhost'\n", "stack.bind: Value error"),
        ("[redis]\nport = 5038\n", "redis.port and asterisk.ami_port are both 5038"),
        ("[redis]\nport = 10500\n", "redis.port=10500 lies inside the RTP port range"),
        ("[phones]\nids = ['12']\n", "phone id '12' must be 3 to 8 digits"),
        ("[phones]\ncontacts = { '9999' = 'sip:x@127.0.0.1' }\n", "unknown phone ids: 9999"),
        ("[acd]\ndefault_queue = 'sales'\n", "default_queue 'sales' is not a queue"),
        (
            "[[acd.queues]]\nname = 'a'\nskills = { a = 11 }\n",
            "level of 'a' must be 1 to 10, not 11",
        ),
        (
            "[[acd.queues]]\nname='general'\nskills={g=1}\nmax_wait_s=9\non_max_wait='overflow'\n",
            "on_max_wait = 'overflow' needs overflow_to",
        ),
        (
            "[[acd.agents]]\nid = '2001'\nskills = { g = 1 }\nphone = '9'\n",
            "agent 2001: phone '9' is not in phones.ids",
        ),
        ("[hotline]\nnumbers = ['95-598']\n", "must be digits only"),
        ("[controller]\nring_timeout_s = 'soon'\n", "controller.ring_timeout_s: Input should"),
    ],
)
def test_invalid_values_are_reported_with_file_and_key_path(
    tmp_path: Path, toml: str, expected: str
) -> None:
    file = tmp_path / "bad.toml"
    file.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        config.load(file, environ={})
    assert str(file) in caught.value.message
    assert expected in caught.value.message
    assert caught.value.slug == "config-invalid"


def test_toml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    file = tmp_path / "bad.toml"
    file.write_text("[asterisk]\nsip_port = = 1\n")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML: .*line 2"):
        config.load(file, environ={})


def test_missing_explicit_file_is_an_error_but_a_missing_default_is_not(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        config.load(tmp_path / "absent.toml", environ={})
    assert config.load(environ={"CCSERVER_STACK__RUN_DIR": str(tmp_path)}).run_dir == tmp_path


def test_environment_errors_name_the_environment() -> None:
    with pytest.raises(ConfigError, match=r"environment \(CCSERVER_\*\): redis.port"):
        config.load(environ={"CCSERVER_REDIS__PORT": "0"})
    with pytest.raises(ConfigError, match="use CCSERVER_<SECTION>__<KEY>"):
        config.load(environ={"CCSERVER_REDISPORT": "1"})


def test_several_errors_are_all_reported_at_once(tmp_path: Path) -> None:
    file = tmp_path / "bad.toml"
    file.write_text("[asterisk]\nsip_port = 0\nhttp_port = 0\n")
    with pytest.raises(ConfigError) as caught:
        config.load(file, environ={})
    assert "asterisk.sip_port" in caught.value.message
    assert "asterisk.http_port" in caught.value.message


def test_effective_config_round_trips(tmp_path: Path) -> None:
    cfg = config.load(environ={"CCSERVER_ASTERISK__SIP_PORT": "5999"}).anchored(tmp_path)
    frozen = tmp_path / "config.json"
    frozen.write_text(cfg.model_dump_json())
    assert config.load_effective(frozen) == cfg
    frozen.write_text('{"redis": {"port": -1}}')
    with pytest.raises(ConfigError, match=r"redis\.port"):
        config.load_effective(frozen)


def test_a_frozen_config_with_a_relative_path_is_refused_by_name(tmp_path: Path) -> None:
    frozen = tmp_path / "config.json"
    frozen.write_text("{}")  # every default path but sounds/moh is relative
    with pytest.raises(ConfigError, match=r"stack\.run_dir.*run `ccserver stack up` again"):
        config.load_effective(frozen)


def test_anchoring_makes_every_path_absolute_and_is_idempotent(tmp_path: Path) -> None:
    raw = config.Config.model_validate(
        {
            "stack": {"run_dir": "var"},
            "controller": {"ari_trace": "log/ari.jsonl"},
            "license": {"path": "lic/license.json", "trusted_keys": ["keys/dev.pub"]},
            "tls": {"cert_file": "tls/c.pem", "key_file": "tls/k.pem"},
        }
    )
    assert "stack.run_dir" in raw.relative_paths()
    anchored = raw.anchored(tmp_path)
    assert anchored.relative_paths() == []
    assert anchored.anchored(tmp_path / "elsewhere") == anchored
    run_dir = tmp_path / "var"
    assert anchored.stack.run_dir == run_dir
    assert anchored.controller.history_db == run_dir / "history.sqlite"
    assert anchored.controller.ari_trace == run_dir / "log" / "ari.jsonl"
    assert anchored.license.path == run_dir / "lic" / "license.json"
    assert anchored.license.trusted_keys == [tmp_path / "keys" / "dev.pub"]
    assert anchored.tls.cert_file == run_dir / "tls" / "c.pem"
    assert anchored.asterisk.resolved_prefix() == raw.asterisk.resolved_prefix().resolve()


def test_the_example_config_lists_exactly_the_defaults() -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "ccserver.example.toml"
    assert config.load(example, environ={}) == config.Config()
