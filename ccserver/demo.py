"""`ccserver demo`: start the stack and put real SIP calls through it.

SIPp agents answer for the configured agents; SIPp callers dial the hotline a handful of
times and, when the hotline's IVR flow answers them, press 0 for an agent as soon as the
welcome starts (`DEMO_MIX`); callers beyond the license's IVR channels go straight to the
queue. The outcome printed comes from the controller's own call records in Redis (who took
which call, how long each caller waited, what they pressed), next to SIPp's view (calls
succeeded / failed). The billing demo backend runs beside the stack, so that a person who
dials in can try the self-service branch.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import redis

from ccserver import secrets, tls
from ccserver.config import Config
from ccserver.errors import InputError
from ccserver.ivr import billing_demo
from ccserver.loadtest import sipp
from ccserver.stack import Stack
from ccserver.store import CALL_KEY, CALLS_KEY, EVENTS_KEY

DEMO_MIX = "SEQUENTIAL\nagent;general;1500;0;0;;0;\n"
"""Every demo caller's IVR keys (load_caller.xml's CSV): 0, 1.5 s into the welcome."""
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
            since = min((r["arrived_at"] for r in mine), default=time.time())
            hangups = _agent_hangups(client, {r["id"] for r in mine}, since)
            for record in mine:
                record["agent_hangup_at"] = hangups.get(record["id"])
            return sorted(mine, key=lambda r: r["arrived_at"])
        time.sleep(0.2)


def _agent_hangups(client: redis.Redis, calls: set[str], since: float) -> dict[str, float]:
    """When the agent hung up each of `calls` (its `agent_hangup` event's stream id is the
    time it was written, in ms): a caller of the IVR stays on the line for the survey, so
    the end of the call is not the end of the talk. Only the events from `since` (the
    run's first arrival) on are read: the stream keeps every earlier demo's too."""
    found: dict[str, float] = {}
    for entry_id, fields in client.xrange(EVENTS_KEY, min=f"{int(since * 1000)}") or []:
        call = str((fields or {}).get("call"))
        if call in calls and (fields or {}).get("kind") == "agent_hangup" and call not in found:
            found[call] = int(str(entry_id).split("-")[0]) / 1000
    return found


def _ivr(record: dict[str, Any]) -> str:
    """What the caller did in the IVR: the keys pressed, or why it was skipped."""
    route = record.get("ivr_route")
    if not route:
        return "-"
    keys = " ".join(i["input"] for i in route.get("inputs", []) if i.get("result") == "ok")
    return f"pressed {keys}" if keys else "no keys"


def report(records: list[dict[str, Any]], stats: sipp.SippStats) -> str:
    lines = [
        f"{'caller':<16} {'ivr':<14} {'agent':<6} {'wait s':>7} {'talk s':>7}  outcome   attempts"
    ]
    waits = []
    for r in records:
        talk_end = r.get("agent_hangup_at") or r["ended_at"]
        talk = (talk_end - r["connected_at"]) if r.get("connected_at") else None
        if r.get("wait_s") is not None and r.get("connected_at"):
            waits.append(r["wait_s"])
        tries = ", ".join(f"{a['agent']}:{a['result']}" for a in r.get("attempts", []))
        wait = "-" if r.get("wait_s") is None else f"{r['wait_s']:.2f}"
        lines.append(
            f"{r['caller']:<16} {_ivr(r):<14} {r.get('agent') or '-':<6} {wait:>7} "
            f"{'-' if talk is None else f'{talk:.1f}':>7}  "
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
    if any(not r.get("ivr_route") for r in records):
        lines.append(
            "(ivr '-': straight to the queue — no flow for the number, or every licensed IVR "
            "channel was busy)"
        )
    return "\n".join(lines)


def where_to_look(stack: Stack, work: Path) -> str:
    """What a newcomer does next with the running stack: dial in, use the API, watch it."""
    config = stack.config
    sip = f"{config.stack.bind}:{config.asterisk.sip_port}"
    first = config.phones.ids[0]
    account = billing_demo.DEMO_ACCOUNTS[0].account
    return "\n".join(
        [
            "The stack is still running:",
            f"  dial in                a SIP softphone at {sip} (UDP) dials "
            f"{config.hotline.numbers[0]}; press 1, then {account}# to hear a bill",
            f"  be an agent            register phone {first} at {sip} with its password "
            f"from agent_passwords in {secrets.path_in(stack.run_dir)}",
            f"  agent desk             {tls.controller_url(config, '/desk/')} in Chromium or "
            f"Firefox: log in as agent {first} with its PIN (agent_pins in "
            f"{secrets.path_in(stack.run_dir)}); calls ring in the page",
            f"  wallboard              {tls.controller_url(config, '/wallboard/')} with the "
            f"supervisor token (api_tokens in {secrets.path_in(stack.run_dir)}); "
            "?tv=1 for the wall",
            f"  REST API               tokens (agent, supervisor, admin) under api_tokens in "
            f"{secrets.path_in(stack.run_dir)}; e.g. curl -H 'Authorization: Bearer …' "
            f"{tls.controller_url(config, '/api/v1/queues')}",
            f"  metrics                {tls.controller_url(config, '/metrics')}",
            *(
                [f"  Prometheus (alerts)    {stack.prometheus_url}/alerts"]
                if config.prometheus.enabled
                else []
            ),
            f"  controller log         tail -f {stack.run_dir / 'log' / 'controller.log'}",
            f"  Asterisk console       {stack.asterisk_bin} -C {stack.layout.conf} -r",
            "  status / stop          make status / make stop",
            f"  SIPp logs              {work}",
        ]
    )


def run(config: Config, calls: int, rate: float, talk_ms: int) -> int:
    stack = Stack(config)
    print("starting the stack (Redis, Asterisk, controller)…")
    for part in [*stack.up(), stack.start_billing_demo()]:
        print("  " + part.line())
    work = stack.run_dir / "demo"
    run_id = str(int(time.time()))
    bind = config.stack.bind
    answering = sipp.agents(
        work, port=agent_port(config), media_port=AGENT_MEDIA_PORT, talk_ms=talk_ms
    )
    mix = work / "demo-mix.csv"
    work.mkdir(parents=True, exist_ok=True)
    mix.write_text(DEMO_MIX, encoding="latin-1")
    callers = sipp.load_callers(
        work,
        target=f"{bind}:{config.asterisk.sip_port}",
        service=config.hotline.numbers[0],
        run=run_id,
        calls=calls,
        rate=rate,
        limit=calls,
        local_port=CALLER_PORT,
        media_port=CALLER_MEDIA_PORT,
        name="callers",
        mix=mix,
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
    print(where_to_look(stack, work))
    return 0 if stats.failed == 0 and stats.successful == calls else 1
