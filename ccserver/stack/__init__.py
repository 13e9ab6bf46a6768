"""`ccserver stack up|down|status|prepare`: the runtime stack, started by the project itself.

`up` generates every config into the run dir (`prepare`, alone, does only that: the
systemd units of `ccserver install-service` run it first), then starts Redis (own port,
own dir, AOF), Asterisk (from the cached build, foreground, `maxcalls`), the controller,
and, when enabled, Alertmanager and then the Prometheus that feeds it, waiting until each
is healthy before starting the next. `down` stops exactly what `up` started, in reverse
order. Tests start private stacks on their own ports and run dirs.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from ccserver import secrets as secrets_mod
from ccserver import tls
from ccserver.config import Config
from ccserver.errors import StackError
from ccserver.stack.procs import Proc, require, wait_until
from ccserver.stack.render import (
    AsteriskLayout,
    alertmanager_conf,
    alertmanager_host,
    prometheus_conf,
    redis_conf,
    write_asterisk,
)

START_TIMEOUT_S = 60.0


@dataclass
class PartStatus:
    name: str
    pid: int | None
    healthy: bool
    detail: str

    def line(self) -> str:
        state = "up" if self.healthy else ("starting/unhealthy" if self.pid else "down")
        pid = f"pid {self.pid}" if self.pid else "-"
        return f"{self.name:<12} {state:<18} {pid:<10} {self.detail}"


class Stack:
    def __init__(self, config: Config) -> None:
        # Anchored here, once: the frozen config.json and every file rendered from it carry
        # absolute paths, whatever the working directory of the processes that read them.
        self.config = config = config.anchored()
        self.run_dir = config.run_dir
        self.layout = AsteriskLayout(self.run_dir / "asterisk")
        self.redis = Proc("redis", self.run_dir, "redis-server")
        self.asterisk = Proc("asterisk", self.run_dir, str(self.layout.conf))
        self.controller = Proc("controller", self.run_dir, "ccserver")
        self.prometheus = Proc("prometheus", self.run_dir, "prometheus")
        self.alertmanager_dir = self.run_dir / "alertmanager"
        # Marked by its config file: "prometheus" is in its program's name too.
        self.alertmanager = Proc(
            "alertmanager", self.run_dir, str(self.alertmanager_dir / "alertmanager.yml")
        )
        self.billing = Proc("billing", self.run_dir, "billing-demo")

    # --- paths and clients ---------------------------------------------------------------
    @property
    def effective_config(self) -> Path:
        return self.run_dir / "config.json"

    @property
    def asterisk_bin(self) -> Path:
        return self.config.asterisk.resolved_prefix() / "sbin" / "asterisk"

    def asterisk_cli(self, command: str, timeout: float = 15.0) -> str:
        """Run one Asterisk CLI command against this instance (`asterisk -rx`)."""
        result = subprocess.run(
            [str(self.asterisk_bin), "-C", str(self.layout.conf), "-rx", command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"asterisk -rx {command!r} failed: {result.stderr.strip()}")
        return result.stdout

    def redis_client(self) -> redis.Redis:
        return redis.Redis(
            host=self.config.stack.bind,
            port=self.config.redis.port,
            socket_timeout=2.0,
            decode_responses=True,
        )

    def controller_health(self) -> dict[str, Any]:
        url = tls.controller_url(self.config, "/healthz")
        context = tls.client_context(self.config)
        with urllib.request.urlopen(url, timeout=2.0, context=context) as response:
            data: dict[str, Any] = json.load(response)
            return data

    def freeze(self) -> Path:
        """Write config.json, the configuration the controller runs with: exactly the one
        that rendered Asterisk's files, every path in it absolute."""
        self.effective_config.write_text(self.config.model_dump_json(indent=2))
        return self.effective_config

    # --- up / down / status --------------------------------------------------------------
    def prepare(self) -> dict[str, list[str]]:
        """Everything `up` does before it starts a process: the run dir, the secrets, the
        frozen configuration and every file rendered from it. Returns each part's command
        line in start order (`commands`)."""
        self._preflight()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("run", "log", "redis"):
            (self.run_dir / sub).mkdir(exist_ok=True)
        secrets = secrets_mod.load_or_create(
            self.run_dir, self.config.phones.ids, [a.id for a in self.config.agents]
        )
        self.freeze()
        tls.ensure(self.config)  # before the files that name the certificate
        write_asterisk(self.config, secrets, self.layout)
        (self.run_dir / "redis" / "redis.conf").write_text(
            redis_conf(self.config, self.run_dir / "redis")
        )
        if self.config.alertmanager_runs:
            self._write_alertmanager(secrets.api_tokens[secrets_mod.ALERTMANAGER_TOKEN_NAME])
        if self.config.prometheus.enabled:
            (self.run_dir / "prometheus").mkdir(exist_ok=True)
            (self.run_dir / "prometheus" / "prometheus.yml").write_text(
                prometheus_conf(self.config)
            )
        return self.commands()

    def commands(self) -> dict[str, list[str]]:
        """Each part's command line, in start order: what `up` starts, and what the
        systemd units run (`ccserver.stack.units`). Programs are absolute paths."""
        parts = {
            "redis": [_program("redis-server"), str(self.run_dir / "redis" / "redis.conf")],
            "asterisk": [str(self.asterisk_bin), "-C", str(self.layout.conf), "-f", "-n"],
            "controller": [
                sys.executable,
                "-m",
                "ccserver",
                "serve",
                "--effective",
                str(self.effective_config),
            ],
        }
        if self.config.alertmanager_runs:
            directory = self.alertmanager_dir
            parts["alertmanager"] = [
                _program("prometheus-alertmanager"),
                f"--config.file={directory / 'alertmanager.yml'}",
                f"--storage.path={directory / 'data'}",
                f"--web.listen-address={self.config.stack.bind}:{self.config.alertmanager.port}",
                "--cluster.listen-address=",
            ]
        if self.config.prometheus.enabled:
            p, directory = self.config.prometheus, self.run_dir / "prometheus"
            parts["prometheus"] = [
                _program("prometheus"),
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--storage.tsdb.retention.time={p.retention}",
                f"--web.listen-address={self.config.stack.bind}:{p.port}",
                "--web.enable-lifecycle",  # POST /-/reload after a rules change
            ]
        return parts

    def up(self) -> list[PartStatus]:
        commands = self.prepare()
        self._start(self.redis, commands["redis"], self._redis_ok, "PING", 0.1)
        self._start(self.asterisk, commands["asterisk"], self._asterisk_ok, "fully booted", 0.5)
        self._start(self.controller, commands["controller"], self._controller_ok, "/healthz")
        if "alertmanager" in commands:
            self._start(self.alertmanager, commands["alertmanager"], self._alertmanager_ok, "ready")
        if "prometheus" in commands:
            self._start(self.prometheus, commands["prometheus"], self._prometheus_ok, "ready")
        return self.status()

    def start_billing_demo(self) -> PartStatus:
        """`ccserver billing-demo` where `ivr.billing_url` points, so that the 95598 flow's
        self-service branch answers in the demo. Only for a loopback `billing_url`: a real
        billing system is somebody else's to run."""
        url = urllib.parse.urlsplit(self.config.ivr.billing_url)
        host, port = url.hostname or "", url.port or 80
        if not _is_loopback(host):
            raise StackError(
                f"ivr.billing_url {self.config.ivr.billing_url} is not on this machine; "
                "the demo billing backend serves only a loopback billing_url"
            )
        if self.billing.pid() is None:
            argv = [sys.executable, "-m", "ccserver", "billing-demo"]
            self.billing.start([*argv, "--host", host, "--port", str(port)])
        require(wait_until(self._billing_ok, START_TIMEOUT_S, 0.1), self.billing, "/healthz")
        return self._billing_status()

    def _billing_ok(self) -> bool:
        if self.billing.pid() is None:
            raise StackError(f"billing demo exited during start:\n{self.billing.tail()}")
        try:
            with urllib.request.urlopen(self.config.ivr.billing_url + "/healthz", timeout=2.0):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def _billing_status(self) -> PartStatus:
        pid = self.billing.pid()
        ok = pid is not None and self._billing_ok()
        return PartStatus("billing", pid, ok, f"{self.config.ivr.billing_url} (demo accounts)")

    def down(self) -> list[str]:
        stopped = []
        if self.billing.stop(timeout=10.0):
            stopped.append("billing demo")
        if self.prometheus.stop(timeout=10.0):
            stopped.append("prometheus")
        if self.alertmanager.stop(timeout=10.0):
            stopped.append("alertmanager")
        if self.controller.stop(timeout=10.0):
            stopped.append("controller")
        asterisk = self.asterisk.pid()
        if asterisk is not None:
            stopped.append("asterisk")
            # A clean shutdown first; the SIGTERM of stop() covers the case where it fails.
            with contextlib.suppress(StackError, subprocess.TimeoutExpired):
                self.asterisk_cli("core stop now", timeout=10.0)
            self.asterisk.stop(timeout=15.0, known=asterisk)
        if self.redis.stop(timeout=10.0):
            stopped.append("redis")
        return stopped

    def status(self) -> list[PartStatus]:
        parts = [self._redis_status(), self._asterisk_status(), self._controller_status()]
        if self.config.alertmanager_runs:
            parts.append(self._alertmanager_status())
        if self.config.prometheus.enabled:
            parts.append(self._prometheus_status())
        if self.billing.pid() is not None:  # only the demo starts it
            parts.append(self._billing_status())
        return parts

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.config.stack.bind}:{self.config.prometheus.port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://{alertmanager_host(self.config)}:{self.config.alertmanager.port}"

    # --- parts ---------------------------------------------------------------------------
    def _preflight(self) -> None:
        if not self.asterisk_bin.exists():
            raise StackError(
                f"no Asterisk at {self.asterisk_bin}; run `make setup` "
                "(deploy/asterisk/build.sh) or set asterisk.prefix"
            )
        _program("redis-server")

    def _start(
        self,
        proc: Proc,
        argv: list[str],
        healthy: Callable[[], bool],
        what: str,
        every_s: float = 0.2,
    ) -> None:
        """Start a part unless it runs, and wait until it is healthy (`what` it awaits)."""
        if proc.pid() is None:
            proc.start(argv)
        require(wait_until(healthy, START_TIMEOUT_S, every_s), proc, what)

    def _redis_ok(self) -> bool:
        try:
            return bool(self.redis_client().ping())
        except redis.RedisError:
            return False

    def _asterisk_ok(self) -> bool:
        if self.asterisk.pid() is None:
            raise StackError(f"asterisk exited during start:\n{self.asterisk.tail()}")
        try:
            return "fully booted" in self.asterisk_cli("core waitfullybooted", timeout=5.0).lower()
        except (StackError, subprocess.TimeoutExpired):
            return False

    def _controller_ok(self) -> bool:
        if self.controller.pid() is None:
            raise StackError(f"controller exited during start:\n{self.controller.tail()}")
        try:
            health = self.controller_health()
        except (urllib.error.URLError, OSError, ValueError):
            return False
        return bool(health.get("ari")) and bool(health.get("ami"))

    def _prometheus_ok(self) -> bool:
        if self.prometheus.pid() is None:
            raise StackError(f"prometheus exited during start:\n{self.prometheus.tail()}")
        try:
            with urllib.request.urlopen(self.prometheus_url + "/-/ready", timeout=2.0) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _write_alertmanager(self, token: str) -> None:
        """Alertmanager's configuration; the webhook's bearer token goes into a 0600 file
        it names. Alertmanager runs on `stack.bind`, its state in the run dir, with no
        cluster gossip (a single instance: an empty `--cluster.listen-address`)."""
        directory = self.alertmanager_dir
        directory.mkdir(mode=0o700, exist_ok=True)
        token_file = directory / "token"
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(token)
        os.chmod(token_file, 0o600)  # a file left by an older run keeps its own mode
        (directory / "alertmanager.yml").write_text(alertmanager_conf(self.config, token_file))

    def _alertmanager_ok(self) -> bool:
        if self.alertmanager.pid() is None:
            raise StackError(f"alertmanager exited during start:\n{self.alertmanager.tail()}")
        try:
            with urllib.request.urlopen(self.alertmanager_url + "/-/ready", timeout=2.0) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _alertmanager_status(self) -> PartStatus:
        pid = self.alertmanager.pid()
        ok = pid is not None and self._alertmanager_ok()
        return PartStatus("alertmanager", pid, ok, self.alertmanager_url)

    def _prometheus_status(self) -> PartStatus:
        pid = self.prometheus.pid()
        ok = pid is not None and self._prometheus_ok()
        return PartStatus("prometheus", pid, ok, self.prometheus_url)

    def _redis_status(self) -> PartStatus:
        ok = self.redis.pid() is not None and self._redis_ok()
        detail = f"{self.config.stack.bind}:{self.config.redis.port} (AOF)"
        return PartStatus("redis", self.redis.pid(), ok, detail)

    def _asterisk_status(self) -> PartStatus:
        pid = self.asterisk.pid()
        ok = False
        if pid is not None:
            try:
                ok = "fully booted" in self.asterisk_cli("core waitfullybooted", 5.0).lower()
            except (StackError, subprocess.TimeoutExpired):
                ok = False
        a = self.config.asterisk
        detail = f"SIP udp {a.sip_port}, ARI http {a.http_port}, AMI {a.ami_port}"
        if self.config.tls.enabled:
            detail += f", SIP tls {self.config.tls.sip_port}"
        return PartStatus("asterisk", pid, ok, detail)

    def _controller_status(self) -> PartStatus:
        pid = self.controller.pid()
        scheme = "https" if self.config.tls.enabled else "http"
        detail = f"{scheme} {self.config.controller.http_port}"
        ok = False
        if pid is not None:
            try:
                health = self.controller_health()
                ok = bool(health.get("ari")) and bool(health.get("ami"))
                detail += f", ari={health.get('ari')} ami={health.get('ami')}"
            except (urllib.error.URLError, OSError, ValueError):
                detail += ", not answering"
        return PartStatus("controller", pid, ok, detail)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _program(name: str) -> str:
    """The absolute path of a program the stack runs, or StackError saying how to get it."""
    found = shutil.which(name)
    if found is None:
        raise StackError(f"{name} not found; run `make setup`")
    return found
