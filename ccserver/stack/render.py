"""Generate the run dir's configuration from the templates in `deploy/asterisk/templates/`.

Templates use `{{name}}` placeholders (Asterisk's own `${VAR}` syntax must pass through
untouched). An unknown placeholder is a bug in a template and fails loudly.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from ccserver import tls
from ccserver.alerts import WEBHOOK_PATH
from ccserver.config import SUPERVISOR_TOKENS, Config, browser_phone, supervisor_phone
from ccserver.errors import StackError
from ccserver.secrets import Secrets
from ccserver.telephony.ami import WATCHED_EVENTS

_PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")
REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = REPO_ROOT / "deploy" / "asterisk" / "templates"
ASTERISK_FILES = (
    "asterisk.conf",
    "modules.conf",
    "logger.conf",
    "http.conf",
    "ari.conf",
    "manager.conf",
    "rtp.conf",
    "musiconhold.conf",
    "prometheus.conf",
    "queues.conf",
    "stasis.conf",
    "pjsip.conf",
    "extensions.conf",
    "pjproject.conf",
    "websocket_client.conf",
    "res_http_media_cache.conf",
    "cli_aliases.conf",
)
FALLBACK_TRIES = 3
FALLBACK_WAIT_S = 5


def fill(template: str, values: dict[str, str], name: str = "template") -> str:
    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise StackError(f"{name}: unknown placeholder {{{{{key}}}}}")
        return values[key]

    return _PLACEHOLDER.sub(replace, template)


@dataclass(frozen=True)
class AsteriskLayout:
    """Where one self-contained Asterisk instance keeps its files inside the run dir."""

    root: Path

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def lib(self) -> Path:
        return self.root / "lib"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def log(self) -> Path:
        return self.root / "log"

    @property
    def conf(self) -> Path:
        return self.etc / "asterisk.conf"

    def dirs(self) -> list[Path]:
        return [
            self.etc,
            self.data,
            self.lib / "keys",
            self.spool / "recording",
            self.spool / "monitor",
            self.run,
            self.log,
        ]


def asterisk_values(config: Config, secrets: Secrets, layout: AsteriskLayout) -> dict[str, str]:
    prefix = config.asterisk.resolved_prefix()
    agent_part = (TEMPLATES / "agent.conf.part").read_text(encoding="utf-8")
    agents = "".join(
        fill(
            agent_part,
            {
                "id": agent_id,
                "contact": config.phones.contact(agent_id),
                "password": secrets.agent_passwords[agent_id],
                "media_encryption": SRTP_LINES if config.tls.srtp else "",
                "rtp_timeout": str(config.phones.rtp_timeout_s),
            },
            "agent.conf.part",
        )
        for agent_id in config.phones.ids
    )
    browser_part = (TEMPLATES / "webrtc.conf.part").read_text(encoding="utf-8")
    owners = [(browser_phone(a.id), f"agent {a.id}", f"Agent {a.id}", a.id) for a in config.agents]
    owners += [
        (supervisor_phone(name), f"the {name} token", "Supervisor", name)
        for name in SUPERVISOR_TOKENS
    ]
    browsers = "".join(
        fill(
            browser_part,
            {
                "id": endpoint,
                "who": who,
                "name": name,
                "number": number,
                "bind": config.stack.bind,
                "password": secrets.agent_passwords[endpoint],
                "rtp_timeout": str(config.phones.rtp_timeout_s),
            },
            "webrtc.conf.part",
        )
        for endpoint, who, name, number in owners
    )
    hotline = "\n".join(
        f"exten => {number},1,Goto(ccserver-hotline,${{EXTEN}},1)"
        for number in config.hotline.numbers
    )
    baseline = "\n".join(
        f"exten => {number},1,Goto(ccserver-app-queue,${{EXTEN}},1)"
        for number in config.asterisk.app_queue_numbers
    )
    return {
        "app_queue_extens": baseline,
        "app_queue_queue": app_queue_queue(config),
        "etc_dir": str(layout.etc),
        "mod_dir": str(prefix / "lib" / "asterisk" / "modules"),
        "lib_dir": str(layout.lib),
        "data_dir": str(layout.data),
        "spool_dir": str(layout.spool),
        "ast_run_dir": str(layout.run),
        "log_dir": str(layout.log),
        "sbin_dir": str(prefix / "sbin"),
        "maxcalls": str(config.asterisk.maxcalls),
        "bind": config.stack.bind,
        "sip_port": str(config.asterisk.sip_port),
        "http_port": str(config.asterisk.http_port),
        "ami_port": str(config.asterisk.ami_port),
        "rtp_port_start": str(config.asterisk.rtp_port_start),
        "rtp_port_end": str(config.asterisk.rtp_port_end),
        "moh_dir": str(config.asterisk.moh_dir),
        "ari_user": secrets.ari_user,
        "ari_password": secrets.ari_password,
        "ami_user": secrets.ami_user,
        "ami_secret": secrets.ami_secret,
        "ami_events": "|".join(WATCHED_EVENTS),
        "caller_match": config.stack.bind,
        "agent_endpoints": agents,
        "browser_endpoints": browsers,
        "tls_transport": tls_transport(config),
        "hotline_extens": hotline,
        "app": config.controller.app,
        "fallback_tries": str(FALLBACK_TRIES),
        "fallback_wait_s": str(FALLBACK_WAIT_S),
    }


def app_queue_queue(config: Config) -> str:
    """queues.conf's `baseline` queue for `asterisk.app_queue_numbers` (empty without them):
    every phone a static member, set up as close to ccserver's routing as app_queue goes —
    leastrecent is longest-idle, no wrap-up, a busy phone is not rung, no announcements."""
    if not config.asterisk.app_queue_numbers:
        return ""
    members = "".join(f"member => PJSIP/{phone}\n" for phone in config.phones.ids)
    return (
        "[baseline]\n"
        "strategy = leastrecent\n"
        "ringinuse = no\n"
        f"timeout = {config.controller.ring_timeout_s}\n"
        "retry = 1\n"
        "wrapuptime = 0\n"
        "autofill = yes\n"
        "joinempty = yes\n"
        "leavewhenempty = no\n"
        f"musicclass = {config.controller.moh_class}\n"
        "announce-frequency = 0\n"
        "announce-holdtime = no\n"
        "announce-position = no\n"
        "periodic-announce-frequency = 0\n"
        "reportholdtime = no\n"
        f"{members}"
    )


SRTP_LINES = """\
; tls.srtp: media is SRTP with SDES keys; a plain RTP offer is refused (488).
media_encryption = sdes
media_encryption_optimistic = no
"""


def tls_transport(config: Config) -> str:
    """The PJSIP TLS transport section when TLS is on (the files exist by then: `stack up`
    calls `tls.ensure` first), else nothing."""
    if not config.tls.enabled:
        return ""
    found = tls.files(config)
    lines = [
        "; tls.enabled: SIP over TLS for softphones (docs/security.md).",
        "[transport-tls]",
        "type = transport",
        "protocol = tls",
        f"bind = {config.stack.bind}:{config.tls.sip_port}",
        f"cert_file = {found.cert}",
        f"priv_key_file = {found.key}",
        *([f"ca_list_file = {found.ca}"] if found.ca else []),
        "method = tlsv1_2",  # pjproject's default here is TLS 1.0, which clients refuse
        "verify_client = no",
        "",
    ]
    return "\n".join(lines)


def _link(link: Path, target: Path) -> None:
    if link.is_symlink() and link.readlink() == target:
        return
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def write_asterisk(config: Config, secrets: Secrets, layout: AsteriskLayout) -> None:
    """Write every Asterisk config file (mode 0600: some hold secrets) and the data dir."""
    for directory in layout.dirs():
        directory.mkdir(parents=True, exist_ok=True)
    values = asterisk_values(config, secrets, layout)
    for name in ASTERISK_FILES:
        text = fill((TEMPLATES / name).read_text(encoding="utf-8"), values, name)
        target = layout.etc / name
        target.write_text(text, encoding="utf-8")
        target.chmod(0o600)
    shipped = config.asterisk.resolved_prefix() / "var" / "lib" / "asterisk"
    (layout.data / "sounds").mkdir(exist_ok=True)
    _link(layout.data / "sounds" / "en", config.asterisk.sounds_dir)
    _link(layout.data / "moh", config.asterisk.moh_dir)
    for name in ("documentation", "rest-api", "static-http", "keys"):
        if (shipped / name).exists():
            _link(layout.data / name, shipped / name)
    (layout.data / "agi-bin").mkdir(exist_ok=True)


PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
ALERTMANAGER_DIR = REPO_ROOT / "deploy" / "alertmanager"


def prometheus_conf(config: Config) -> str:
    """The stack's Prometheus configuration: the shipped template with this stack's ports,
    the shipped recording and alerting rules, and the stack's Alertmanager when it runs."""
    bind = config.stack.bind
    template = (PROMETHEUS_DIR / "prometheus.yml.tmpl").read_text()
    values = {
        "controller_target": f"{bind}:{config.controller.http_port}",
        "asterisk_target": f"{bind}:{config.asterisk.http_port}",
        "rules_dir": str(PROMETHEUS_DIR / "rules"),
        "alerting": _alerting(config),
    }
    return _scrape_controller_over_tls(config, fill(template, values, "prometheus.yml.tmpl"))


def _alerting(config: Config) -> str:
    """Prometheus' `alerting` section: the stack's own Alertmanager, plain HTTP on the
    address it listens on (a wildcard bind is reached on loopback); nothing without it."""
    if not config.alertmanager_runs:
        return ""
    target = f"{alertmanager_host(config)}:{config.alertmanager.port}"
    return "\n".join(
        [
            "alerting:",
            "  alertmanagers:",
            "    - scheme: http",
            "      static_configs:",
            f'        - targets: ["{target}"]',
            "",
            "",
        ]
    )


def alertmanager_host(config: Config) -> str:
    """Where the stack's own clients reach Alertmanager: its bind address, or loopback when
    that is a wildcard."""
    bind = config.stack.bind
    return "127.0.0.1" if ipaddress.ip_address(bind).is_unspecified else bind


def alertmanager_conf(config: Config, token_file: Path) -> str:
    """The stack's Alertmanager configuration: one receiver, the controller's alert webhook
    (https against the CA in use when TLS is on), authenticated with the bearer token in
    `token_file`. The token itself never appears in the result."""
    am = config.alertmanager
    template = (ALERTMANAGER_DIR / "alertmanager.yml.tmpl").read_text()
    values = {
        "webhook_url": tls.controller_url(config, WEBHOOK_PATH),
        "token_file": str(token_file),
        "webhook_tls": _webhook_tls(config),
        "group_wait": f"{am.group_wait_s}s",
        "group_interval": f"{am.group_interval_s}s",
        "repeat_interval": f"{am.repeat_interval_s}s",
    }
    return fill(template, values, "alertmanager.yml.tmpl")


def _webhook_tls(config: Config) -> str:
    """The webhook's `tls_config` under its `http_config`: our CA when TLS is on and the
    certificate is ours (or the operator named its CA); else none (plain HTTP, or the
    system's trusted CAs)."""
    ca = tls.files(config).ca if config.tls.enabled else None
    if ca is None:
        return ""
    indent = " " * 10
    return f'{indent}tls_config:\n{indent}  ca_file: "{ca}"'


def _scrape_controller_over_tls(config: Config, rendered: str) -> str:
    """With TLS on the controller answers HTTPS only: its scrape job switches to https and
    verifies against the CA in use (Asterisk's own /metrics stays plain, on loopback)."""
    if not config.tls.enabled:
        return rendered
    target = re.escape(f'["{config.stack.bind}:{config.controller.http_port}"]')
    job = re.compile(rf"( +)scheme: http\n(\s+static_configs:\n\s+- targets: {target}\n)")
    ca = tls.files(config).ca

    def https(m: re.Match[str]) -> str:
        indent = m.group(1)
        verify = f"{indent}tls_config:\n{indent}  ca_file: {ca}\n" if ca else ""
        return f"{indent}scheme: https\n{verify}{m.group(2)}"

    patched, found = job.subn(https, rendered)
    if found != 1:
        raise StackError("prometheus.yml.tmpl: the ccserver job's `scheme: http` line is gone")
    return patched


def redis_conf(config: Config, directory: Path) -> str:
    """Our own Redis: own port, own dir, AOF on (everysec), loopback by default."""
    return "\n".join(
        [
            f"bind {config.stack.bind}",
            "protected-mode yes",
            f"port {config.redis.port}",
            f"dir {directory}",
            "daemonize no",
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            "loglevel notice",
            "logfile ''",
            "",
        ]
    )
