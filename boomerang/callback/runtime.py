"""The callback service as ``boomerang run`` starts it.

``start_callbacks(config, manager, store)`` checks the licence, builds the
flow runner, the service and the durable scheduler (which recovers every
unfinished job from the database before it returns), serves the metrics
when ``service.metrics_listen`` is set, and logs what the licence grants
and which mobiles it leaves out. ``Callbacks.drain`` / ``close`` stop it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..config import Config
from ..flow.context import FlowContext, NullObserver
from ..flow.runner import FlowRunner
from ..store import CallbackJob, JobState, Store
from .licence import LicenceError, describe, entitlement, load_for_config
from .metrics import ServiceMetrics
from .rates import RateTableError, load_rates
from .scheduler import CallbackScheduler, NullSchedulerObserver
from .service import CallbackService

if TYPE_CHECKING:
    from ..call.manager import CallManager

log = logging.getLogger(__name__)


class StartRefused(Exception):
    """The service cannot start as configured (a licence that fails to verify)."""


class MetricsObserver(NullObserver):
    """Counts digits and bridged calls for Prometheus."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def digit(self, context: FlowContext, call_id: str, digit: str, source: str) -> None:
        self.metrics.digits.labels(source=source).inc()


class MetricsSchedulerObserver(NullSchedulerObserver):
    """The start-time error of callbacks and the jobs waiting."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics
        self.scheduler: CallbackScheduler | None = None

    def _count(self) -> None:
        if self.scheduler is not None:
            self.metrics.pending.set(len(self.scheduler.pending()))

    def job_scheduled(self, job: CallbackJob) -> None:
        self._count()

    def attempt_started(self, job: CallbackJob, delay_s: float) -> None:
        self.metrics.start_delay.observe(max(0.0, delay_s))
        self._count()

    def job_finished(self, job: CallbackJob, state: JobState) -> None:
        self._count()


@dataclass(slots=True)
class Callbacks:
    service: CallbackService
    scheduler: CallbackScheduler
    metrics_server: asyncio.Server | None

    async def drain(self, grace_s: float, abort: asyncio.Event | None = None) -> None:
        """No new triggers or claims; calls in progress get up to ``grace_s``."""
        self.service.begin_drain()
        waiting = [asyncio.ensure_future(self.scheduler.stop(grace_s)),
                   asyncio.ensure_future(self.service.drain(grace_s))]
        aborted = asyncio.ensure_future(abort.wait()) if abort is not None else None
        try:
            await asyncio.wait(waiting + ([aborted] if aborted else []),
                               return_when=asyncio.ALL_COMPLETED if aborted is None
                               else asyncio.FIRST_COMPLETED)
            if aborted is None or not aborted.done():
                await asyncio.gather(*waiting)
        finally:
            if aborted is not None:
                aborted.cancel()

    async def close(self) -> None:
        await self.scheduler.stop(0.0)
        if self.metrics_server is not None:
            self.metrics_server.close()
            await self.metrics_server.wait_closed()


def node_id_for(config: Config) -> str:
    return config.service.node_id or socket.gethostname()


async def start_callbacks(config: Config, manager: CallManager, store: Store) -> Callbacks:
    try:
        licence = load_for_config(config, today=datetime.now(UTC).date())
    except LicenceError as error:
        raise StartRefused(f"licence: {error}") from error
    granted = entitlement(config.extensions, licence)
    for line in describe(granted):
        (log.warning if "refused" in line or "no callback" in line else log.info)("%s", line)
    try:
        rates = load_rates(config.records)
    except RateTableError as error:
        raise StartRefused("\n".join(error.problems)) from error
    metrics = ServiceMetrics()
    runner = FlowRunner(manager, config, observer=MetricsObserver(metrics))
    service = CallbackService(manager, config, store=store, runner=runner,
                              entitled=granted.allowed, metrics=metrics, rates=rates,
                              wall_clock=time.time)
    observer = MetricsSchedulerObserver(metrics)
    scheduler = CallbackScheduler(store.jobs, place=service.place,
                                  node_id=node_id_for(config), lease_s=config.service.lease_s,
                                  poll_interval_s=config.service.poll_interval_s,
                                  observer=observer)
    observer.scheduler = scheduler
    service.install(scheduler)
    await scheduler.start()
    server = None
    listen = config.service.metrics_listen
    if listen:
        from ..web.metrics_http import serve_metrics

        host, _, port = listen.rpartition(":")
        server = await serve_metrics(host.strip("[]"), int(port), metrics.text)
    return Callbacks(service=service, scheduler=scheduler, metrics_server=server)


__all__ = ["Callbacks", "MetricsObserver", "MetricsSchedulerObserver", "StartRefused",
           "node_id_for", "start_callbacks"]
