"""`ccserver demo`: start the stack and put real SIP calls through it.

SIPp agents answer for the configured agents; a SIPp caller dials the hotline a handful of
times; the outcome printed comes from the controller's own call records in Redis (who took
which call, how long each caller waited), next to SIPp's view (calls succeeded / failed).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from ccserver import tls
from ccserver.config import Config
from ccserver.errors import InputError
from ccserver.loadtest import sipp
from ccserver.stack import Stack
from ccserver.store import CALL_KEY, CALLS_KEY

CALLER_PORT = 5061
AGENT_MEDIA_PORT = 16000
CALLER_MEDIA_PORT = 17000


def agent_port(config: Config) -> int:
    match = re.search(r"@[^:;>]+:(\d+)", config.phones.contact_template)
    if match is None:
        raise InputError("agents.contact_template has no port; the demo answers on a port")
    return int(match.group(1))


def run_records(
    stack: Stack, run: str, expected: int, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """The controller's records of this run's calls (callers `c<run>-<n>`), once all ended."""
    client = stack.redis_client()
    deadline = time.monotonic() + timeout
    while True:
        ids = [str(i) for i in client.lrange(CALLS_KEY, -5 * expected - 50, -1)]
        raws = client.mget([CALL_KEY.format(id=i) for i in ids]) if ids else []
        records = [json.loads(r) for r in raws if r]
        mine = [r for r in records if str(r.get("caller", "")).startswith(f"c{run}-")]
        if (len(mine) >= expected and all(r.get("state") == "ended" for r in mine)) or (
            time.monotonic() > deadline
        ):
            return sorted(mine, key=lambda r: r["arrived_at"])
        time.sleep(0.2)


def report(records: list[dict[str, Any]], stats: sipp.SippStats) -> str:
    lines = [f"{'caller':<16} {'agent':<6} {'wait s':>7} {'talk s':>7}  outcome   attempts"]
    waits = []
    for r in records:
        talk = (r["ended_at"] - r["connected_at"]) if r.get("connected_at") else None
        if r.get("wait_s") is not None and r.get("connected_at"):
            waits.append(r["wait_s"])
        tries = ", ".join(f"{a['agent']}:{a['result']}" for a in r.get("attempts", []))
        lines.append(
            f"{r['caller']:<16} {r.get('agent') or '-':<6} "
            f"{r['wait_s'] if r.get('wait_s') is not None else '-':>7} "
            f"{round(talk, 1) if talk is not None else '-':>7}  "
            f"{r.get('outcome') or '-':<9} {tries}"
        )
    answered = sum(1 for r in records if r.get("connected_at"))
    mean_wait = sum(waits) / len(waits) if waits else 0.0
    lines.append("")
    lines.append(
        f"offered {len(records)}, answered {answered}, "
        f"abandoned {sum(1 for r in records if r.get('outcome') == 'abandoned')}, "
        f"mean wait {mean_wait:.2f} s; SIPp: {stats.successful} successful, {stats.failed} failed"
    )
    return "\n".join(lines)


def run(config: Config, calls: int, rate: float, talk_ms: int) -> int:
    stack = Stack(config)
    print("starting the stack (Redis, Asterisk, controller)…")
    for part in stack.up():
        print("  " + part.line())
    work = stack.run_dir / "demo"
    run_id = str(int(time.time()))
    bind = config.stack.bind
    answering = sipp.agents(
        work, port=agent_port(config), media_port=AGENT_MEDIA_PORT, talk_ms=talk_ms
    )
    callers = sipp.caller(
        work,
        target=f"{bind}:{config.asterisk.sip_port}",
        service=config.hotline.numbers[0],
        run=run_id,
        calls=calls,
        rate=rate,
        limit=calls,
        local_port=CALLER_PORT,
        media_port=CALLER_MEDIA_PORT,
    )
    print(
        f"placing {calls} SIPp calls to {config.hotline.numbers[0]}; "
        f"{len(config.phones.ids)} SIPp agents answer and talk {talk_ms / 1000:.0f} s…"
    )
    answering.start()
    try:
        stats = callers.start().wait(timeout=120 + calls / rate)
    finally:
        answering.stop()
    print()
    print(report(run_records(stack, run_id, calls), stats))
    print()
    print("The stack is still running:")
    print(f"  watch the controller   tail -f {stack.run_dir / 'log' / 'controller.log'}")
    print(f"  its metrics            {tls.controller_url(config, '/metrics')}")
    if config.prometheus.enabled:
        print(f"  Prometheus (alerts)    {stack.prometheus_url}/alerts")
    print(f"  Asterisk console       {stack.asterisk_bin} -C {stack.layout.conf} -r")
    print("  status / stop          make status / make stop")
    print(f"  SIPp logs              {work}")
    return 0 if stats.failed == 0 and stats.successful == calls else 1
