"""Configuration: one TOML file read into pydantic models, overridable by the environment.

Layers, later wins: built-in defaults < the TOML file < `CCSERVER_<SECTION>__<KEY>`
environment variables (double underscore between levels, e.g.
`CCSERVER_ASTERISK__SIP_PORT=5160`; values are parsed as TOML values when they can be, so
`CCSERVER_AGENTS__IDS='["1001","1002"]'` is a list). `CCSERVER_CONFIG` names the file.

Every error is reported with its key path and the layer it came from, so that
`ccserver check-config` can say exactly what to fix; nothing here raises a traceback at a
user.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ccserver.errors import ConfigError

ENV_PREFIX = "CCSERVER_"
DEFAULT_FILE = "ccserver.toml"
Port = int


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _port(default: int) -> Any:
    return Field(default=default, ge=1, le=65535)


class StackConfig(_Section):
    """Where the stack lives and what it binds to."""

    run_dir: Path = Path("var")
    bind: str = "127.0.0.1"

    @field_validator("bind")
    @classmethod
    def _is_ip(cls, value: str) -> str:
        ipaddress.ip_address(value)  # ValueError carries a readable message
        return value


class AsteriskConfig(_Section):
    prefix: Path = Path("~/.cache/ccserver/asterisk")
    sip_port: Port = _port(5060)
    http_port: Port = _port(8088)
    ami_port: Port = _port(5038)
    rtp_port_start: Port = _port(10000)
    rtp_port_end: Port = _port(10999)
    maxcalls: int = Field(default=400, ge=1, le=100_000)
    sounds_dir: Path = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
    moh_dir: Path = Path("/usr/share/asterisk/moh")

    @model_validator(mode="after")
    def _rtp_range(self) -> AsteriskConfig:
        if self.rtp_port_end - self.rtp_port_start < 10:
            raise ValueError("rtp_port_end must be at least 10 above rtp_port_start")
        return self

    def resolved_prefix(self) -> Path:
        return self.prefix.expanduser()


class RedisConfig(_Section):
    port: Port = _port(6390)


class ControllerConfig(_Section):
    app: str = Field(default="ccserver", pattern=r"^[A-Za-z0-9_-]+$")
    http_port: Port = _port(8090)
    ring_timeout_s: int = Field(default=15, ge=1, le=120)
    rona_cooldown_s: float = Field(default=30.0, ge=0)
    greeting: str = "hello-world"
    moh_class: str = "default"
    log_format: str = Field(default="kv", pattern=r"^(kv|json)$")
    ari_trace: Path | None = None


class HotlineConfig(_Section):
    numbers: list[str] = Field(default_factory=lambda: ["95598"], min_length=1)

    @field_validator("numbers")
    @classmethod
    def _digits(cls, numbers: list[str]) -> list[str]:
        for number in numbers:
            if not number.isdigit():
                raise ValueError(f"hotline number {number!r} must be digits only")
        return numbers


class AgentsConfig(_Section):
    """Agents are PJSIP endpoints; a static contact lets a SIPp UAS (or any fixed phone)
    answer for them, and they may also register as softphones with a generated password."""

    ids: list[str] = Field(default_factory=lambda: [str(n) for n in range(1001, 1006)])
    contact_template: str = "sip:{id}@127.0.0.1:5070"
    contacts: dict[str, str] = Field(default_factory=dict)

    @field_validator("ids")
    @classmethod
    def _ids(cls, ids: list[str]) -> list[str]:
        for agent_id in ids:
            if not agent_id.isdigit() or not 3 <= len(agent_id) <= 8:
                raise ValueError(f"agent id {agent_id!r} must be 3 to 8 digits")
        if len(set(ids)) != len(ids):
            raise ValueError("agent ids must be unique")
        return ids

    @model_validator(mode="after")
    def _contacts_known(self) -> AgentsConfig:
        unknown = sorted(set(self.contacts) - set(self.ids))
        if unknown:
            raise ValueError(f"contacts given for unknown agent ids: {', '.join(unknown)}")
        return self

    def contact(self, agent_id: str) -> str:
        return self.contacts.get(agent_id) or self.contact_template.format(id=agent_id)


class Config(_Section):
    stack: StackConfig = StackConfig()
    asterisk: AsteriskConfig = AsteriskConfig()
    redis: RedisConfig = RedisConfig()
    controller: ControllerConfig = ControllerConfig()
    hotline: HotlineConfig = HotlineConfig()
    agents: AgentsConfig = AgentsConfig()

    @model_validator(mode="after")
    def _ports_distinct(self) -> Config:
        ports = {
            "asterisk.sip_port": self.asterisk.sip_port,
            "asterisk.http_port": self.asterisk.http_port,
            "asterisk.ami_port": self.asterisk.ami_port,
            "redis.port": self.redis.port,
            "controller.http_port": self.controller.http_port,
        }
        seen: dict[int, str] = {}
        for key, port in ports.items():
            if port in seen:
                raise ValueError(f"{key} and {seen[port]} are both {port}; ports must differ")
            if self.asterisk.rtp_port_start <= port <= self.asterisk.rtp_port_end:
                raise ValueError(f"{key}={port} lies inside the RTP port range")
            seen[port] = key
        return self

    @property
    def run_dir(self) -> Path:
        return self.stack.run_dir.expanduser().resolve()

    def is_loopback_only(self) -> bool:
        return ipaddress.ip_address(self.stack.bind).is_loopback


def _defaults() -> dict[str, Any]:
    return Config().model_dump(mode="python")


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """`CCSERVER_A__B=v` → {"a": {"b": v}}; `CCSERVER_CONFIG` is the file, not a key."""
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        if len(path) < 2 or not all(path):
            raise ConfigError(
                f"environment variable {name}: use CCSERVER_<SECTION>__<KEY>, "
                "e.g. CCSERVER_ASTERISK__SIP_PORT=5160"
            )
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _parse_env_value(raw)
    return tree


def _format_errors(exc: ValidationError, origin: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling and section)"
        given = err.get("input")
        shown = "" if isinstance(given, dict | list) or given is None else f" (got {given!r})"
        lines.append(f"{origin}: {loc}: {msg}{shown}")
    return "\n".join(lines)


def load(path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the layered configuration; raise ConfigError with every problem listed."""
    environ = os.environ if environ is None else environ
    explicit = path is not None or "CCSERVER_CONFIG" in environ
    file = Path(path if path is not None else environ.get("CCSERVER_CONFIG", DEFAULT_FILE))
    data = _defaults()
    if file.exists():
        try:
            from_file = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: cannot be read: {exc}") from None
        try:
            Config.model_validate(_merge(_defaults(), from_file))
        except ValidationError as exc:
            raise ConfigError(_format_errors(exc, str(file))) from None
        data = _merge(data, from_file)
    elif explicit:
        raise ConfigError(f"{file}: no such configuration file")
    overrides = env_overrides(environ)
    try:
        return Config.model_validate(_merge(data, overrides))
    except ValidationError as exc:
        origin = "environment (CCSERVER_*)" if overrides else str(file)
        raise ConfigError(_format_errors(exc, origin)) from None


def load_effective(path: Path | str) -> Config:
    """Read the frozen configuration `stack up` wrote into the run dir (config.json)."""
    file = Path(path)
    try:
        return Config.model_validate_json(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{file}: cannot be read: {exc}") from None
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, str(file))) from None
