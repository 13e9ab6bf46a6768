"""The load test's own stack: Redis, Asterisk and the controller on free ports in a run dir
under the output directory, never the user's `var/` stack.

A load test must not disturb a running center, and must measure a center set up for the
measurement: one queue `general` without wrap-up or announcements (so ccserver and the
app_queue baseline do the same work), one agent per phone logged in at start, phones split
into SIPp pools (one UAS port each), Asterisk with room for the calls (`maxcalls`, RTP
ports), and a license large enough, signed with a throw-away key that only this stack
trusts. With an IVR mix the shipped 95598 flow and its queues are used instead, with the
demo billing backend the flow looks bills up in.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccserver import config as config_mod
from ccserver import licensing
from ccserver.errors import StackError
from ccserver.stack import Stack

HOTLINE = "95598"
APP_QUEUE = "95599"
FLOWS = Path(__file__).resolve().parents[2] / "ivr_flows"
IVR_QUEUES = ("general", "billing", "repair", "business", "complaints")
FIRST_PHONE = 20001
RTP_BASE = 20000
"""Below `PORT_BAND` (where `free_port` finds SIP and HTTP ports) and above the blocks the
integration tests' stacks use (12000 + 400 per stack)."""
PORT_BAND = (26000, 32768)
"""Where `free_port` looks: below the kernel's ephemeral range (32768–60999 by default,
/proc/sys/net/ipv4/ip_local_port_range), which the kernel draws from for outgoing
connections and binds to port 0. A port checked free here therefore stays free until the
service binds it, unless some program asks for that very number; a port found by binding
port 0 could be taken in that window by any outgoing connection."""
PORT_STEP = 4
"""Ports go out in blocks of four, all checked free: SIPp puts RTCP and its echo beside
its media port."""


def _port_band() -> range:
    low, high = PORT_BAND
    try:
        ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = high
    return range(low, min(high, ephemeral) - PORT_STEP + 1, PORT_STEP)


_band = _port_band()
# Each process starts at its own place in the band (and walks it in turn), so that quick
# successive runs do not meet the ports the last one left in TIME_WAIT.
_next = itertools.count(os.getpid() % max(len(_band), 1))
_handed_out: set[int] = set()


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """A port free for TCP and UDP on 127.0.0.1 now (with the three above it), from
    `PORT_BAND`, never handed out before by this process."""
    for _ in range(len(_band)):
        port = _band[next(_next) % len(_band)]
        if port not in _handed_out and all(_bindable(p) for p in range(port, port + PORT_STEP)):
            _handed_out.add(port)
            return port
    raise StackError(f"no free port left in {PORT_BAND[0]}–{PORT_BAND[1] - 1} on 127.0.0.1")


@dataclass(frozen=True)
class Plan:
    """What the stack must hold: `agents` phones in `pools` SIPp pools, up to
    `concurrency` calls at once, the IVR flow or not."""

    agents: int
    pools: int
    concurrency: int
    ivr: bool = False

    @property
    def maxcalls(self) -> int:
        """Two channels a call (caller and agent) and a margin."""
        return 2 * self.concurrency + 50

    @property
    def ivr_channels(self) -> int:
        """Licensed IVR channels, and `ivr.max_sessions` of an IVR plan: every call may be
        in the IVR at once, with a margin."""
        return self.concurrency + 10

    @property
    def rtp_ports(self) -> int:
        """Two ports (RTP, RTCP) a channel, at least the 400 the test stacks use."""
        return max(400, 2 * self.maxcalls + 100)


def phone_pools(plan: Plan) -> list[list[str]]:
    """Phone ids split round-robin into the pools, so each pool answers its share."""
    phones = [str(FIRST_PHONE + n) for n in range(plan.agents)]
    return [phones[k :: plan.pools] for k in range(plan.pools)]


def build_config(
    base: config_mod.Config, run_dir: Path, plan: Plan, pool_ports: list[int], billing_port: int
) -> config_mod.Config:
    """The private stack's configuration; `base` only lends where Asterisk is installed."""
    pools = phone_pools(plan)
    contacts = {
        phone: f"sip:{phone}@127.0.0.1:{port}"
        for phones, port in zip(pools, pool_ports, strict=True)
        for phone in phones
    }
    if plan.ivr:
        # SIPp callers press no survey keys: the survey would hold each line ~55 s. Every
        # caller of the mix walks the IVR (as many sessions as the license's IVR channels):
        # with the default 20, the rest would skip it and their rows would mean nothing.
        acd, ivr = ivr_center(f"http://127.0.0.1:{billing_port}", survey=False)
        ivr["max_sessions"] = plan.ivr_channels
    else:
        no_flows = run_dir.parent / "no-flows"
        no_flows.mkdir(parents=True, exist_ok=True)
        acd = {
            "queues": [{"name": "general", "skills": {"general": 1}, "wrap_up_s": 0.0}],
            "announce_every_s": 0.0,
        }
        ivr = {"flows_dir": str(no_flows)}
    data: dict[str, Any] = {
        "stack": {"run_dir": str(run_dir)},
        "asterisk": {
            "prefix": str(base.asterisk.prefix),
            "sounds_dir": str(base.asterisk.sounds_dir),
            "moh_dir": str(base.asterisk.moh_dir),
            "sip_port": free_port(),
            "http_port": free_port(),
            "ami_port": free_port(),
            "rtp_port_start": RTP_BASE,
            "rtp_port_end": RTP_BASE + plan.rtp_ports - 1,
            "maxcalls": plan.maxcalls,
            "app_queue_numbers": [APP_QUEUE],
        },
        "redis": {"port": free_port()},
        "prometheus": {"enabled": False, "port": free_port()},
        # No greeting: the caller enters the queue on answer, as in app_queue's baseline.
        "controller": {"http_port": free_port(), "greeting": ""},
        "phones": {"ids": sorted(contacts), "contacts": contacts},
        "acd": acd,
        "hotline": {"numbers": [HOTLINE]},
        "ivr": ivr,
        "license": {"trusted_keys": [str(run_dir.parent / "keys" / "vendor.pub")]},
    }
    return config_mod.Config.model_validate(data)


def ivr_center(billing_url: str, *, survey: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """The 95598 center as the shipped flow expects it: one queue per branch (repair at
    priority 10), no position announcements, the flows of `ivr_flows/` looking bills up at
    `billing_url`. Returns the `acd` and `ivr` config sections."""
    acd = {
        "queues": [
            {
                "name": q,
                "skills": {q: 1},
                "wrap_up_s": 0.0,
                **({"priority": 10} if q == "repair" else {}),
            }
            for q in IVR_QUEUES
        ],
        "announce_every_s": 0.0,
    }
    return acd, {"flows_dir": str(FLOWS), "billing_url": billing_url, "survey": survey}


@contextlib.contextmanager
def billing_demo(port: int, log: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """`ccserver billing-demo` on `port` (the backend the 95598 flow looks accounts up in)
    for the duration of the block."""
    with contextlib.ExitStack() as cleanup:
        out = cleanup.enter_context(open(log, "wb")) if log else subprocess.DEVNULL
        proc = subprocess.Popen(
            [sys.executable, "-m", "ccserver", "billing-demo", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        cleanup.callback(_stop, proc)
        yield proc


def install_license(config: config_mod.Config, keys: Path, plan: Plan) -> None:
    """A license for every agent and every call in the IVR at once, signed by a key pair
    made here: the evaluation license (5 seats) cannot carry a load test."""
    private, public = keys / "vendor.key", keys / "vendor.pub"
    if not private.exists():
        keys.mkdir(parents=True, exist_ok=True)
        licensing.generate_keypair(private, public)
    lic = licensing.new_license(
        customer_id="loadtest",
        customer_name="ccserver loadtest",
        seats=plan.agents + 10,
        ivr_channels=plan.ivr_channels,
        days=2,
        now=time.time(),
    )
    target = config.license.resolved_path(config.run_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(licensing.sign(lic, licensing.load_private_key(private)))


@dataclass
class PrivateStack:
    """A started private stack and the SIPp ports of its agent pools."""

    stack: Stack
    pools: list[tuple[int, list[str]]]

    @property
    def config(self) -> config_mod.Config:
        return self.stack.config

    @property
    def sip_target(self) -> str:
        return f"127.0.0.1:{self.config.asterisk.sip_port}"

    def pids(self) -> dict[str, int]:
        """The processes whose CPU the harness samples."""
        found = {"asterisk": self.stack.asterisk.pid(), "controller": self.stack.controller.pid()}
        missing = [name for name, pid in found.items() if pid is None]
        if missing:
            raise StackError(f"{', '.join(missing)} not running in {self.stack.run_dir}")
        return {name: pid for name, pid in found.items() if pid is not None}

    def active_channels(self) -> int | None:
        """Asterisk's active channel count, None when the CLI does not answer."""
        try:
            text = self.stack.asterisk_cli("core show channels count", timeout=10.0)
        except (StackError, subprocess.TimeoutExpired):
            return None
        for line in text.splitlines():
            if "active channel" in line:
                return int(line.split()[0])
        return None


@contextlib.contextmanager
def started(base: config_mod.Config, out: Path, plan: Plan) -> Iterator[PrivateStack]:
    """Start the private stack under `out` and always stop it (and the billing backend)."""
    pool_ports = [free_port() for _ in range(plan.pools)]
    billing_port = free_port()
    config = build_config(base, out / "run", plan, pool_ports, billing_port)
    install_license(config, out / "keys", plan)
    stack = Stack(config)
    with contextlib.ExitStack() as cleanup:
        if plan.ivr:
            cleanup.enter_context(billing_demo(billing_port, out / "billing-demo.log"))
        cleanup.callback(stack.down)
        stack.up()
        yield PrivateStack(stack, list(zip(pool_ports, phone_pools(plan), strict=True)))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
