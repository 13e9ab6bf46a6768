"""Generated Asterisk configuration: complete, loopback-bound, secrets only where needed."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from ccserver import config, secrets
from ccserver.errors import StackError
from ccserver.stack.render import ASTERISK_FILES, AsteriskLayout, fill, write_asterisk

Rendered = tuple[AsteriskLayout, secrets.Secrets, config.Config]


@pytest.fixture
def rendered(tmp_path: Path) -> Rendered:
    cfg = config.load(
        environ={
            "CCSERVER_STACK__RUN_DIR": str(tmp_path),
            "CCSERVER_PHONES__IDS": '["1001", "1002"]',
            "CCSERVER_PHONES__CONTACTS": '{ "1002" = "sip:1002@127.0.0.1:5999" }',
            "CCSERVER_HOTLINE__NUMBERS": '["95598", "12345"]',
        }
    )
    sec = secrets.load_or_create(tmp_path, cfg.phones.ids)
    layout = AsteriskLayout(tmp_path / "asterisk")
    write_asterisk(cfg, sec, layout)
    return layout, sec, cfg


def test_every_template_renders_without_leftover_placeholders(rendered: Rendered) -> None:
    layout, _, _ = rendered
    for name in ASTERISK_FILES:
        text = (layout.etc / name).read_text()
        assert "{{" not in text, name
        assert stat.S_IMODE((layout.etc / name).stat().st_mode) == 0o600


def test_nothing_is_bound_beyond_the_configured_address(rendered: Rendered) -> None:
    layout, _, cfg = rendered
    etc = layout.etc
    assert "bindaddr = 127.0.0.1" in (etc / "http.conf").read_text()
    assert "bindaddr = 127.0.0.1" in (etc / "manager.conf").read_text()
    assert f"bind = 127.0.0.1:{cfg.asterisk.sip_port}" in (etc / "pjsip.conf").read_text()
    assert not any("0.0.0.0" in (etc / n).read_text() for n in ASTERISK_FILES)
    noload = re.findall(r"noload => (\S+)", (etc / "modules.conf").read_text())
    assert {"chan_iax2.so", "chan_skinny.so", "chan_mgcp.so", "pbx_dundi.so"} <= set(noload)


def test_secrets_appear_only_in_the_files_that_need_them(rendered: Rendered) -> None:
    layout, sec, _ = rendered
    where = {
        sec.ari_password: {"ari.conf"},
        sec.ami_secret: {"manager.conf"},
        sec.agent_passwords["1001"]: {"pjsip.conf"},
    }
    for value, files in where.items():
        found = {n for n in ASTERISK_FILES if value in (layout.etc / n).read_text()}
        assert found == files


def test_agents_and_hotline_numbers_come_from_the_config(rendered: Rendered) -> None:
    layout, _, _ = rendered
    pjsip = (layout.etc / "pjsip.conf").read_text()
    assert "contact = sip:1001@127.0.0.1:5070" in pjsip  # the template
    assert "contact = sip:1002@127.0.0.1:5999" in pjsip  # the per-agent override
    ext = (layout.etc / "extensions.conf").read_text()
    assert "exten => 95598,1,Goto(ccserver-hotline,${EXTEN},1)" in ext
    assert "exten => 12345,1,Goto(ccserver-hotline,${EXTEN},1)" in ext
    assert "Stasis(ccserver,inbound,${EXTEN})" in ext


def test_data_dir_links_sounds_in_the_default_language(rendered: Rendered) -> None:
    layout, _, cfg = rendered
    assert (layout.data / "sounds" / "en").readlink() == cfg.asterisk.sounds_dir


def test_an_unknown_placeholder_is_a_template_bug() -> None:
    assert fill("a {{x}} ${EXTEN}", {"x": "1"}) == "a 1 ${EXTEN}"
    with pytest.raises(StackError, match=r"unknown placeholder \{\{y\}\}"):
        fill("{{y}}", {}, "t.conf")
