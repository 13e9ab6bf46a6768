"""`ccserver serve`: the controller process — ARI, AMI, Redis and the call lifecycle wired
together, plus an HTTP server (the REST API, `/healthz`, `/metrics`) bound to the configured
address.

AMI tells us what agents' phones are doing (DeviceStateChange): a phone that is
unregistered or busy with a call that is not ours is not offered calls (see `acd.py`).

Everything started here has a matching close in `run()`'s `finally`, so SIGTERM leaves no
task running and no half-written record.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from ccserver import licensing, metrics, recovery, seats, tls
from ccserver import secrets as secrets_mod
from ccserver.api.app import make_app
from ccserver.api.audit import AuditLog
from ccserver.calls import CallCenter
from ccserver.config import Config
from ccserver.desk import DeskBackend
from ccserver.history import History
from ccserver.ivr.loader import load_flows, warm_prompts
from ccserver.ivr.notices import NoticeBoard
from ccserver.logs import log
from ccserver.prompts import Prompts
from ccserver.store import Store
from ccserver.telephony.ami import AmiClient, AmiEvent
from ccserver.telephony.ari import AriClient, AriEvent

logger = logging.getLogger("ccserver.controller")


class Controller:
    def __init__(self, config: Config) -> None:
        self.config = config
        secrets = secrets_mod.load(config.run_dir)
        bind = config.stack.bind
        self.store = Store(bind, config.redis.port)
        trace = config.controller.ari_trace
        self.ari = AriClient(
            host=bind,
            port=config.asterisk.http_port,
            user=secrets.ari_user,
            password=secrets.ari_password,
            app=config.controller.app,
            on_event=self._on_ari_event,
            on_connected=self._on_ari_connected,
            trace_file=Path(trace) if trace else None,
        )
        self.ami = AmiClient(
            host=bind,
            port=config.asterisk.ami_port,
            user=secrets.ami_user,
            secret=secrets.ami_secret,
            on_event=self._on_ami_event,
        )
        self.prompts = Prompts(config.run_dir / "sounds" / "prompts")
        self.calls = CallCenter(config, self.ari, self.store, self.prompts)
        self.calls.pins = dict(secrets.agent_pins)
        self.history = History(config.run_dir / config.controller.history_db)
        self.calls.history = self.history
        self.api_tokens = dict(secrets.api_tokens)
        queues = {q.name for q in config.acd.queues}
        self.calls.flows = load_flows(config.ivr.resolved_flows_dir(), queues)
        self.calls.notices = NoticeBoard(self.store.redis, self.prompts)
        self.calls.acd.ledger = seats.SeatLedger(
            _license_in_force(config), expiry_warning_days=config.license.expiry_warning_days
        )
        self._device_tasks: set[asyncio.Task[None]] = set()

    def reload_license(self) -> None:
        """SIGHUP: the installed license file, again; a bad one is logged and ignored."""
        try:
            lic = seats.reload(self.calls.acd.ledger, self.config)
        except licensing.LicenseError as exc:
            log(logger, "license.reload_failed", logging.ERROR, slug=exc.slug, error=exc.message)
            return
        log(logger, "license.reloaded", license=lic.id, seats=lic.seats, by="signal:SIGHUP")

    async def _watch_expiry(self) -> None:
        """Warn (log) every hour once the license is within its expiry warning window."""
        while True:
            warning = self.calls.acd.ledger.expiry_warning()
            if warning is not None:
                log(logger, "license.expiry_warning", logging.WARNING, message=warning)
            await asyncio.sleep(3600)

    async def _on_ari_event(self, event: AriEvent) -> None:
        await self.calls.on_event(event)

    async def _on_ari_connected(self) -> None:
        await recovery.resync(self.calls)

    def _on_ami_event(self, event: AmiEvent) -> None:
        log(logger, "ami.event", name=event.name, **_ami_fields(event))
        device = event.fields.get("Device", "")
        if event.name == "DeviceStateChange" and device.startswith("PJSIP/"):
            phone, state = device.removeprefix("PJSIP/"), event.fields.get("State", "")
            if phone in self.config.phones.ids:
                task = asyncio.create_task(self._device_state(phone, state))
                self._device_tasks.add(task)
                task.add_done_callback(self._device_tasks.discard)

    async def _device_state(self, phone: str, state: str) -> None:
        async with self.calls.lock:
            if self.calls.acd.device_state(phone, state, time.time()) is not None:
                await self.calls.dispatch()
                self.calls.persist_soon()

    async def _links(self) -> dict[str, bool]:
        return {
            "ari": self.ari.connected.is_set(),
            "ami": self.ami.up,
            "redis": await self.store.ping(),
        }

    def _reconnects(self) -> dict[str, int]:
        return {"ari": self.ari.reconnects, "ami": self.ami.reconnects}

    async def _healthz(self, request: web.Request) -> web.Response:
        body = {
            "ari": self.ari.connected.is_set(),
            "ami": self.ami.up,
            **{f"{link}_reconnects": n for link, n in self._reconnects().items()},
            "redis": await self.store.ping(),
            "redis_failed_writes": self.store.failed_writes,
            # degraded: writes buffered in memory until Redis takes them (see store.py)
            "store": dataclasses.asdict(self.store.stats()),
            **self.calls.summary(),
        }
        return web.json_response(body)

    async def run(self, stop: asyncio.Event) -> None:
        audit = AuditLog(self.config.run_dir / "log" / "api-audit.jsonl")
        app = make_app(DeskBackend(self.calls), self.api_tokens, audit)
        app.router.add_get("/healthz", self._healthz)
        metrics.declare(q.name for q in self.config.acd.queues)
        app.router.add_get("/metrics", metrics.handler(self.calls, self._links, self._reconnects))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(
            runner,
            self.config.stack.bind,
            self.config.controller.http_port,
            ssl_context=tls.server_context(self.config),  # None: plain HTTP (TLS is off)
        )
        await site.start()
        self.calls.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        for flow in {id(f): f for f in self.calls.flows.values()}.values():
            await asyncio.to_thread(warm_prompts, flow, self.prompts)  # callers never wait
        await self.ami.start()
        await self.ari.start()
        self.calls.start_ticker()
        self.calls.spawn(self._watch_expiry(), "license-expiry")
        log(
            logger,
            "controller.started",
            http=self.config.controller.http_port,
            app=self.config.controller.app,
        )
        try:
            await stop.wait()
        finally:
            log(logger, "controller.stopping")
            await self.ari.close()
            await self.ami.close()
            self.calls.close()
            await self.calls.persist()  # what a cancelled `persist_soon` was about to write
            await runner.cleanup()
            await self.calls.http.close()
            await self.history.flush()
            self.history.close()
            await self.store.close()


def _license_in_force(config: Config) -> licensing.License:
    """The installed license; when its file is unusable the controller still starts (on the
    evaluation limits, loudly logged), since refusing to start would refuse every caller."""
    try:
        lic = licensing.load_configured(config, now=time.time())
    except licensing.LicenseError as exc:
        log(logger, "license.unusable", logging.ERROR, slug=exc.slug, error=exc.message)
        return licensing.EVALUATION
    log(logger, "license.in_force", license=lic.id, seats=lic.seats, ivr=lic.ivr_channels)
    return lic


def _ami_fields(event: AmiEvent) -> dict[str, str]:
    keep = ("AOR", "EndpointName", "ContactStatus", "Device", "State", "Status")
    return {k.lower(): v for k, v in event.fields.items() if k in keep}


def serve(config: Config) -> int:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log(logger, "controller.starting", pid=os.getpid())
        controller = Controller(config)
        loop.add_signal_handler(signal.SIGHUP, controller.reload_license)
        await controller.run(stop)

    asyncio.run(main())
    return 0
