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
import datetime as dt
import hmac
import logging
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ccserver import licensing, seats, tls
from ccserver import secrets as secrets_mod
from ccserver.acd import Acd
from ccserver.alerts import WEBHOOK_PATH, AlertBoard
from ccserver.api.app import make_app
from ccserver.api.sessions import Sessions
from ccserver.audit import AuditLog
from ccserver.calls import outbound, recovery, routing, stasis, work_orders
from ccserver.calls.board import Wallboard
from ccserver.calls.center import CallCenter
from ccserver.calls.desk import DeskFeed
from ccserver.calls.journal import Journal
from ccserver.center_backend import CenterBackend
from ccserver.config import BROWSER_PHONE_PREFIX, Config
from ccserver.desk_streams import RedisDeskStreams
from ccserver.errors import CCServerError, ConfigError, InputError
from ccserver.history import History
from ccserver.ivr.loader import load_flows, load_outbound_flows, warm_prompts
from ccserver.ivr.model import Flow
from ccserver.ivr.notices import NoticeBoard
from ccserver.logs import log
from ccserver.metrics import collector, instruments
from ccserver.metrics.collector import WorkOrderCounts
from ccserver.prompts import Prompts
from ccserver.records import Records, recordings
from ccserver.records.knowledge import KnowledgeBase
from ccserver.records.orders import FlowOrders, Sla, WorkOrderBook
from ccserver.records.outbound import OutboundBook
from ccserver.records.qa import QaBook, load_form
from ccserver.store import Store, StoreStats
from ccserver.telephony.ami import AmiClient, AmiEvent
from ccserver.telephony.ari import AriClient, AriEvent
from ccserver.telephony.rest import AriRest

logger = logging.getLogger("ccserver.controller")
DESK_VENDOR_DIR = Path(__file__).resolve().parents[1] / "web" / "node_modules"
"""The desk page's npm packages (`make web`), in the source tree ccserver runs from."""


class Controller:
    """The running controller: owns the links, the stores and the `CallCenter`, and is the
    `CenterView` its metrics read. Made inside the event loop (it opens HTTP sessions)."""

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
            on_request=_time_ari_request,
        )
        self.ami = AmiClient(
            host=bind,
            port=config.asterisk.ami_port,
            user=secrets.ami_user,
            secret=secrets.ami_secret,
            on_event=self._on_ami_event,
        )
        self.prompts = Prompts(config.run_dir / "sounds" / "prompts")
        self.history = History(config.run_dir / config.controller.history_db)
        self.records = Records(
            orders=WorkOrderBook(
                self.history,
                Sla(rule.rule() for rule in config.work_orders.sla),
                warn_before_s=config.work_orders.warn_before_s,
            ),
            knowledge=KnowledgeBase(self.history),
            qa=QaBook(
                self.history, load_form(config.qa.form), config.qa.rules(), config.ivr.zone()
            ),
            outbound=OutboundBook(self.history),
        )
        self.api_tokens = {
            name: token
            for name, token in secrets.api_tokens.items()
            if name != secrets_mod.ALERTMANAGER_TOKEN_NAME
        }
        self.alertmanager_token = secrets.api_tokens.get(secrets_mod.ALERTMANAGER_TOKEN_NAME, "")
        self.alerts = AlertBoard()
        self.notices = NoticeBoard(self.store.redis, self.prompts)
        self.lookups = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        ledger = seats.SeatLedger(
            _license_in_force(config), expiry_warning_days=config.license.expiry_warning_days
        )
        self.desk = DeskFeed(
            RedisDeskStreams(self.store.redis),
            history=self.history,
            notices=self.notices,
            history_days=config.desk.history_days,
            queues={q.name: q for q in config.acd.queues},
            records=self.records,
        )
        self.sip_passwords = dict(secrets.agent_passwords)
        self.audit = AuditLog(config.run_dir / "log" / "api-audit.jsonl")
        self.board = Wallboard(config, self.history)
        self.board.load(time.time())
        self.center = CallCenter(
            config=config,
            ari=AriRest(self.ari),
            journal=Journal(
                self.store,
                self.history,
                short_abandon_s=config.reports.short_abandon_s,
                counter=self.board.count,
            ),
            prompts=self.prompts,
            acd=Acd(config, ledger),
            routes=stasis.ROUTES,
            flows=load_flows(config.ivr.resolved_flows_dir(), {q.name for q in config.acd.queues}),
            notices=self.notices,
            pins=dict(secrets.agent_pins),
            lookups=self.lookups,
            desk=self.desk,
            audit=self.audit,
            board=self.board,
            orders=FlowOrders(self.records.orders),
            outbound=self.records.outbound,
            outbound_flows=outbound_flows(config),
        )
        self._device_tasks: set[asyncio.Task[None]] = set()

    def reload_license(self) -> None:
        """SIGHUP: the installed license file, again; a bad one is logged and ignored."""
        try:
            lic = seats.reload(self.center.acd.ledger, self.config)
        except licensing.LicenseError as exc:
            log(logger, "license.reload_failed", logging.ERROR, slug=exc.slug, error=exc.message)
            return
        log(logger, "license.reloaded", license=lic.id, seats=lic.seats, by="signal:SIGHUP")

    async def _watch_expiry(self) -> None:
        """Warn (log) every hour once the license is within its expiry warning window."""
        while True:
            warning = self.center.acd.ledger.expiry_warning()
            if warning is not None:
                log(logger, "license.expiry_warning", logging.WARNING, message=warning)
            await asyncio.sleep(3600)

    async def _on_ari_event(self, event: AriEvent) -> None:
        await self.center.on_event(event)

    async def _on_ari_connected(self) -> None:
        await recovery.resync(self.center)

    def _on_ami_event(self, event: AmiEvent) -> None:
        log(logger, "ami.event", name=event.name, **_ami_fields(event))
        device = event.fields.get("Device", "")
        if event.name == "DeviceStateChange" and device.startswith("PJSIP/"):
            phone, state = device.removeprefix("PJSIP/"), event.fields.get("State", "")
            if phone in self.config.phones.ids or phone.startswith(BROWSER_PHONE_PREFIX):
                task = asyncio.create_task(self._device_state(phone, state))
                self._device_tasks.add(task)
                task.add_done_callback(self._device_tasks.discard)

    async def _device_state(self, phone: str, state: str) -> None:
        async with self.center.transaction() as unit:
            if self.center.acd.device_state(phone, state, time.time()) is None:
                unit.routing_unchanged()  # no agent's state moved

    # --- what the metrics read (`collector.CenterView`) -----------------------------------
    def queue_views(self, now: float) -> list[dict[str, Any]]:
        return [self.center.acd.queue_view(q.name, now) for q in self.config.acd.queues]

    def agent_counts(self) -> dict[str, int]:
        return self.center.acd.counts()

    def license_usage(self) -> dict[str, Any]:
        return self.center.acd.ledger.usage()

    def store_stats(self) -> StoreStats:
        return self.store.stats()

    async def links(self) -> dict[str, bool]:
        return {
            "ari": self.ari.connected.is_set(),
            "ami": self.ami.up,
            "redis": await self.store.ping(),
        }

    def reconnects(self) -> dict[str, int]:
        return {"ari": self.ari.reconnects, "ami": self.ami.reconnects}

    async def notices_active(self) -> int:
        return await self.notices.active_count(dt.datetime.now(dt.UTC))

    async def work_orders(self) -> WorkOrderCounts:
        try:
            return WorkOrderCounts(
                await asyncio.to_thread(self.records.orders.counts),
                await asyncio.to_thread(self.records.orders.overdue),
            )
        except (CCServerError, sqlite3.Error) as exc:  # /metrics answers without them
            log(logger, "metrics.orders_failed", logging.WARNING, error=repr(exc)[:200])
            return WorkOrderCounts({}, {})

    async def _sample_qa(self) -> None:
        """Fill the inspectors' queue from the recent recorded calls, now and then."""
        settings = self.config.qa
        while True:
            since = time.time() - settings.sample_days * 86400.0
            try:
                added = await asyncio.to_thread(self.records.qa.sample, since)
            except (CCServerError, sqlite3.Error) as exc:  # tried again next time
                log(logger, "qa.sample_failed", logging.WARNING, error=repr(exc)[:200])
            else:
                if added:
                    log(logger, "qa.sampled", added=added)
            await asyncio.sleep(settings.sample_every_s)

    async def _sweep_recordings(self) -> None:
        """Delete recordings (and, when configured, history) past their retention, now and
        then; count what is kept."""
        settings = self.config.recordings
        while True:
            done = await asyncio.to_thread(
                recordings.sweep, self.center.recordings, settings.retention_days
            )
            instruments.RECORDINGS_BYTES.set(done.kept_bytes)
            if done.deleted:
                instruments.RECORDINGS_DELETED.inc(done.deleted)
                self.audit.action(
                    "recordings.deleted",
                    who="system",
                    files=done.deleted,
                    bytes=done.deleted_bytes,
                    retention_days=settings.retention_days,
                )
                log(logger, "recordings.deleted", files=done.deleted, bytes=done.deleted_bytes)
            if settings.history_days:
                await self._sweep_history(settings.history_days)
            await asyncio.sleep(settings.sweep_every_s)

    async def _sweep_history(self, days: int) -> None:
        """Delete the calls and events older than `days`; a store that fails is logged and
        tried again at the next sweep."""
        try:
            deleted = await asyncio.to_thread(
                self.history.delete_before, time.time() - days * 86400.0
            )
        except (CCServerError, sqlite3.Error) as exc:
            log(logger, "history.retention_failed", logging.WARNING, error=repr(exc)[:200])
            return
        for table, rows in deleted.items():
            instruments.HISTORY_DELETED.labels(table).inc(rows)
        if any(deleted.values()):
            self.audit.action("history.deleted", who="system", retention_days=days, **deleted)
            log(logger, "history.deleted", **deleted)

    async def _healthz(self, request: web.Request) -> web.Response:
        body = {
            "ari": self.ari.connected.is_set(),
            "ami": self.ami.up,
            **{f"{link}_reconnects": n for link, n in self.reconnects().items()},
            "redis": await self.store.ping(),
            "redis_failed_writes": self.store.failed_writes,
            # degraded: writes buffered in memory until Redis takes them (see store.py)
            "store": dataclasses.asdict(self.store.stats()),
            **self.center.summary(),
        }
        return web.json_response(body)

    async def _alert_hook(self, request: web.Request) -> web.Response:
        """Alertmanager's webhook (deploy/alertmanager/), with the `alertmanager` token.
        Mounted on the API's app, so its refusals get the API's error shape and audit."""
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        expected = self.alertmanager_token
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise CCServerError(
                "Alertmanager's token is expected", slug="token-invalid", status=401
            )
        try:
            payload = await request.json()
        except ValueError as exc:
            raise InputError(f"the body is not JSON: {exc}") from None
        self.alerts.receive(payload)
        return web.json_response({"firing": len(self.alerts.firing())})

    async def run(self, stop: asyncio.Event) -> None:
        app = make_app(
            CenterBackend(self.center, sip_passwords=self.sip_passwords, alerts=self.alerts),
            self.api_tokens,
            self.audit,
            sessions=Sessions(self.store.redis, self.config.desk.session_ttl_s),
            vendor_dir=DESK_VENDOR_DIR,
            records=self.records,
        )
        app.router.add_get("/healthz", self._healthz)
        app.router.add_post(WEBHOOK_PATH, self._alert_hook)
        instruments.declare(q.name for q in self.config.acd.queues)
        app.router.add_get("/metrics", collector.handler(self))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(
            runner,
            self.config.stack.bind,
            self.config.controller.http_port,
            ssl_context=tls.server_context(self.config),  # None: plain HTTP (TLS is off)
        )
        await site.start()
        flows = [*self.center.flows.values(), *self.center.outbound_flows.values()]
        for flow in {id(f): f for f in flows}.values():
            await asyncio.to_thread(warm_prompts, flow, self.prompts)  # callers never wait
        self.center.spawn(self.desk.run(a.id for a in self.config.agents), "desk-feed")
        await self.ami.start()
        await self.ari.start()
        self.center.spawn(routing.tick_forever(self.center), "acd-ticker")
        self.center.spawn(self._watch_expiry(), "license-expiry")
        every = self.config.work_orders.check_every_s
        self.center.spawn(
            work_orders.chase_forever(self.center, self.records.orders, every), "orders"
        )
        self.center.spawn(outbound.dial_forever(self.center, self.records.outbound), "dialer")
        self.center.spawn(self._sample_qa(), "qa-sampling")
        self.center.spawn(self._sweep_recordings(), "recordings-retention")
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
            self.center.close()
            await self.center.persist()  # what a cancelled `persist_soon` was about to write
            await runner.cleanup()
            await self.lookups.close()
            await self.history.flush()
            self.history.close()
            await self.store.close()


def outbound_flows(config: Config) -> dict[str, Flow]:
    """The outbound flows by name; FlowError when one is broken, and ConfigError when
    follow-ups are on but their flow is missing (a closed order would never be called)."""
    folder = config.outbound.resolved_flows_dir()
    flows = load_outbound_flows(folder)
    wanted = config.outbound.follow_up_flow
    if config.outbound.follow_up and wanted not in flows:
        known = ", ".join(sorted(flows)) or "none"
        raise ConfigError(
            f"outbound.follow_up_flow = {wanted!r} is not an outbound flow in {folder} "
            f"(known: {known})"
        )
    return flows


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


def _time_ari_request(method: str, seconds: float) -> None:
    instruments.ARI_REQUEST.labels(method).observe(seconds)


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
