"""Private stacks for integration tests: real Redis, Asterisk, controller and SIPp.

Each test module starts its own stack on free ports in its own run dir, so tests never
touch a developer's `var/` stack and modules don't leak state into each other.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from ccserver import config as config_mod
from ccserver import licensing, logs, tls
from ccserver import secrets as secrets_mod
from ccserver.loadtest import sipp
from ccserver.loadtest.privstack import free_port
from ccserver.stack import Stack
from ccserver.store import CALL_KEY, CALLS_KEY

_rtp_block = count()


def rtp_ports() -> tuple[int, int]:
    """An RTP port range of 400 for the next stack this process starts: 12000 + 400 × n,
    clear of the default stack's 10000–10999. Each stack gets its own block, so a stack
    never meets RTP a stopped one left behind."""
    start = 12000 + 400 * next(_rtp_block)
    return start, start + 399


@dataclass
class LiveStack:
    """A started stack plus what a test needs to place calls against it."""

    stack: Stack
    work: Path
    agent_ports: dict[str, int]
    runs: count[int] = field(default_factory=lambda: count(1))

    @property
    def config(self) -> config_mod.Config:
        return self.stack.config

    def next_run(self) -> str:
        return f"{int(time.time()) % 100000}{next(self.runs)}"

    def caller(
        self,
        run: str,
        calls: int,
        rate: float = 5.0,
        limit: int = 50,
        abandon_after_ms: int | None = None,
        service: str | None = None,
    ) -> sipp.Sipp:
        return sipp.caller(
            self.work,
            target=f"127.0.0.1:{self.config.asterisk.sip_port}",
            service=service or self.config.hotline.numbers[0],
            run=run,
            calls=calls,
            rate=rate,
            limit=limit,
            local_port=free_port(),
            media_port=free_port(),
            name=f"callers-{run}",
            abandon_after_ms=abandon_after_ms,
        )

    def call_in(self, rtp_port: int, dial: str) -> sipp.Sipp:
        """A caller to `dial` whose media is the RTP phone on `rtp_port` (desk_caller.xml:
        SIPp signals, the test's `rtp_phone.RtpPhone` sends and hears)."""
        run = self.next_run()
        return self._scripted_phone(
            "desk_caller.xml",
            f"desk-caller-{run}",
            {"RTP_PORT": rtp_port},
            remote=f"127.0.0.1:{self.config.asterisk.sip_port}",
            extra=["-key", "run", run, "-s", dial, "-m", "1", "-timeout", "300"],
        )

    def phone_at(self, pool: str, rtp_port: int, hangup_ms: int = 300_000) -> sipp.Sipp:
        """The phones of `pool`, answering with media on the RTP phone at `rtp_port`
        (desk_phone.xml); the phone hangs up after `hangup_ms` unless the far end has."""
        return self._scripted_phone(
            "desk_phone.xml",
            f"desk-phone-{pool}-{self.next_run()}",
            {"RTP_PORT": rtp_port, "HANGUP_MS": hangup_ms},
            local_port=self.agent_ports[pool],
            extra=["-m", "1"],
        )

    def _scripted_phone(
        self,
        scenario: str,
        name: str,
        values: dict[str, int],
        *,
        remote: str | None = None,
        local_port: int | None = None,
        extra: list[str],
    ) -> sipp.Sipp:
        self.work.mkdir(parents=True, exist_ok=True)
        text = (sipp.SCENARIOS / scenario).read_text(encoding="latin-1")
        for key, value in values.items():
            text = text.replace(key, str(value))
        (self.work / f"{name}.xml").write_text(text, encoding="latin-1")
        return sipp.Sipp(
            str(self.work / f"{name}.xml"),
            work_dir=self.work,
            name=name,
            local_port=local_port or free_port(),
            media_port=free_port(),
            remote=remote,
            extra=extra,
        )

    def agents(
        self, pool: str, talk_ms: int, answer: bool = True, refer_to: str | None = None
    ) -> sipp.Sipp:
        return sipp.agents(
            self.work,
            port=self.agent_ports[pool],
            media_port=free_port(),
            talk_ms=talk_ms,
            answer=answer,
            refer_to=refer_to,
            name=f"agents-{pool}-{talk_ms}",
        )

    def place_calls(
        self,
        calls: int,
        *,
        talk_ms: int,
        rate: float = 5.0,
        limit: int = 50,
        silent: str | None = None,
        timeout: float = 60.0,
        service: str | None = None,
    ) -> list[dict[str, Any]]:
        """Place `calls` SIPp calls while the "answer" pool talks `talk_ms` per call (and
        the pool `silent`, if named, never answers); check that SIPp saw every call succeed
        and return the controller's records of this run."""
        run = self.next_run()
        with contextlib.ExitStack() as phones:
            for pool, answer in (("answer", True), (silent, False)):
                if pool is not None:
                    uas = self.agents(pool, talk_ms=talk_ms, answer=answer).start()
                    phones.callback(uas.stop)
            callers = self.caller(run, calls, rate, limit, service=service)
            stats = callers.start().wait(timeout=timeout)
        assert (stats.successful, stats.failed) == (calls, 0), self.work
        return self.records(run, expected=calls)

    def records(self, run: str, expected: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """This run's call records, waiting until `expected` of them have ended."""
        client = self.stack.redis_client()
        deadline = time.monotonic() + timeout
        while True:
            ids = [str(i) for i in client.lrange(CALLS_KEY, 0, -1)]
            raw = client.mget([CALL_KEY.format(id=i) for i in ids]) if ids else []
            mine = [
                json.loads(r)
                for r in raw
                if r and json.loads(r).get("caller", "").startswith(f"c{run}-")
            ]
            ended = [r for r in mine if r.get("state") == "ended"]
            if len(ended) >= expected or time.monotonic() > deadline:
                return sorted(mine, key=lambda r: (r["arrived_at"], r["caller"]))
            time.sleep(0.2)

    def secrets(self) -> secrets_mod.Secrets:
        return secrets_mod.load(self.config.run_dir)

    def api(
        self, method: str, path: str, body: dict[str, Any] | None = None, token: str = "admin"
    ) -> tuple[int, Any]:
        """One REST API request with the named token; returns (status, JSON body)."""
        url = tls.controller_url(self.config, f"/api/v1{path}")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.secrets().api_tokens[token]}")
        request.add_header("Content-Type", "application/json")
        try:
            context = tls.client_context(self.config)
            with urllib.request.urlopen(request, timeout=10, context=context) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def agent(self, agent_id: str) -> dict[str, Any]:
        status, body = self.api("GET", f"/agents/{agent_id}")
        assert status == 200, body
        return dict(body)

    def press(self, phone: str, dial: str, keys: list[str | int], timeout: float = 60) -> None:
        """Phone `phone` dials `dial` and presses `keys`; the controller hangs up after its
        spoken confirmation, which SIPp counts as a successful call."""
        run = self.next_run()
        sipp_run = sipp.phone_keys(
            self.work,
            target=f"127.0.0.1:{self.config.asterisk.sip_port}",
            phone=phone,
            password=self.secrets().agent_passwords[phone],
            dial=dial,
            keys=keys,
            local_port=free_port(),
            media_port=free_port(),
            name=f"keys-{run}",
        )
        stats = sipp_run.start().wait(timeout=timeout)
        assert (stats.successful, stats.failed) == (1, 0), sipp_run.errors()

    def metrics(self) -> dict[str, float]:
        """The controller's /metrics, as {sample with its labels: value}."""
        url = tls.controller_url(self.config, "/metrics")
        context = tls.client_context(self.config)
        with urllib.request.urlopen(url, timeout=10, context=context) as response:
            text = response.read().decode()
        samples = (line.rsplit(" ", 1) for line in text.splitlines() if line[:1] not in "#")
        return {name: float(value) for name, value in samples}

    def caller_keys(self, run: str, keys: list[str | int], dial: str | None = None) -> sipp.Sipp:
        """One caller (c<run>-1) to `dial` (the first hotline number) who presses `keys`."""
        return sipp.caller_keys(
            self.work,
            target=f"127.0.0.1:{self.config.asterisk.sip_port}",
            dial=dial or self.config.hotline.numbers[0],
            run=run,
            keys=keys,
            local_port=free_port(),
            media_port=free_port(),
            name=f"caller-keys-{run}",
        )

    def events(self, call_id: str) -> list[dict[str, str]]:
        entries = self.stack.redis_client().xrange("ccserver:events")
        return [fields for _, fields in entries if fields.get("call") == call_id]


ONE_QUEUE = {"queues": [{"name": "general", "skills": {"general": 1}, "wrap_up_s": 0.0}]}
"""The simplest center: one queue, no wrap-up (so an agent takes calls back to back)."""


def install_license(
    config: config_mod.Config, keys: Path, *, seats: int, ivr_channels: int, **extra: Any
) -> bytes:
    """Sign a license with the throw-away key pair in `keys/` (made on first use; the stack's
    config trusts its public half) and put it where the controller reads it. Returns the
    file, for tests that install it themselves."""
    private, public = keys / "vendor.key", keys / "vendor.pub"
    if not private.exists():
        keys.mkdir(parents=True, exist_ok=True)
        licensing.generate_keypair(private, public)
    lic = licensing.new_license(
        customer_id="test",
        customer_name="integration tests",
        seats=seats,
        ivr_channels=ivr_channels,
        days=30,
        now=time.time(),
        **extra,
    )
    data = licensing.sign(lic, licensing.load_private_key(private))
    target = config.license.resolved_path(config.run_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return data


def start_stack(
    tmp: Path,
    pools: dict[str, list[str]],
    *,
    acd: dict[str, Any] | None = None,
    hotline: list[str] | None = None,
    ivr: dict[str, Any] | None = None,
    prometheus: bool = False,
    tls: dict[str, Any] | None = None,
    phones: dict[str, Any] | None = None,
    asterisk: dict[str, Any] | None = None,
    supervision: dict[str, Any] | None = None,
    alertmanager: dict[str, Any] | None = None,
    work_orders: dict[str, Any] | None = None,
    qa: dict[str, Any] | None = None,
    outbound: dict[str, Any] | None = None,
    **controller: Any,
) -> Iterator[LiveStack]:
    """Start a private stack whose phones are split into SIPp pools (one UAS port each);
    `acd` replaces the queue and agent set-up (default: `ONE_QUEUE`, one agent per phone);
    `ivr` the IVR section (default: no flows, so calls go straight to their queue);
    `prometheus` starts the stack's Prometheus too (off by default: it costs a second);
    `tls` is the `[tls]` section (default: off); `phones` adds to the phones section,
    `asterisk` to the asterisk one, `alertmanager` to that one (it runs with Prometheus),
    `supervision` is that section, `work_orders`, `qa` and `outbound` those (default: as
    shipped)."""
    no_flows = tmp / "no-flows"
    no_flows.mkdir(exist_ok=True)
    ports = {pool: free_port() for pool in pools}
    contacts = {
        agent: f"sip:{agent}@127.0.0.1:{ports[pool]}"
        for pool, members in pools.items()
        for agent in members
    }
    rtp_start, rtp_end = rtp_ports()
    data: dict[str, Any] = {
        "stack": {"run_dir": str(tmp / "run")},
        "asterisk": {
            "sip_port": free_port(),
            "http_port": free_port(),
            "ami_port": free_port(),
            "rtp_port_start": rtp_start,
            "rtp_port_end": rtp_end,
            "maxcalls": 300,
            **(asterisk or {}),
        },
        "redis": {"port": free_port()},
        "prometheus": {"enabled": prometheus, "port": free_port()},
        "alertmanager": {"port": free_port(), **(alertmanager or {})},
        # strict_states: a call-state move the transition table forbids fails the call
        # loudly (a `call.state_error` and a traceback in the controller's log).
        "controller": {
            "http_port": free_port(),
            "ring_timeout_s": 4,
            "strict_states": True,
            **controller,
        },
        "phones": {"ids": sorted(contacts), "contacts": contacts, **(phones or {})},
        "acd": acd if acd is not None else ONE_QUEUE,
        "hotline": {"numbers": hotline or ["95598"]},
        "ivr": ivr if ivr is not None else {"flows_dir": str(no_flows)},
        "license": {"trusted_keys": [str(tmp / "keys" / "vendor.pub")]},
        "tls": tls or {},
        "supervision": supervision or {},
        "work_orders": work_orders or {},
        "qa": qa or {},
        "outbound": outbound or {},
    }
    config = config_mod.Config.model_validate(data)
    # Room for every test's agents and callers; the licensing tests install their own.
    install_license(config, tmp / "keys", seats=500, ivr_channels=200)
    stack = Stack(config)
    if not stack.asterisk_bin.exists():
        pytest.fail(f"no Asterisk at {stack.asterisk_bin}: run `make setup` first")
    try:
        stack.up()
        yield LiveStack(stack, tmp / "sipp", ports)
    finally:
        stack.down()
    log = config.run_dir / "log" / "controller.log"
    lines = log.read_text().splitlines() if log.exists() else []
    errors = [line for line in lines if "call.state_error" in line]
    assert not errors, "call-state moves outside the table:\n" + "\n".join(errors[:5])
    # Every key=value line of the controller parses by the stated grammar (logs.parse_line);
    # a line not starting with ts= is the process's raw stderr (Python's own warnings).
    unparsed = []
    for line in (line for line in lines if line.startswith("ts=")):
        try:
            logs.parse_line(line)
        except ValueError as exc:
            unparsed.append(f"{exc}: {line[:300]}")
    assert not unparsed, "log lines off the grammar:\n" + "\n".join(unparsed[:5])
