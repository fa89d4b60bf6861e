"""Prometheus metrics of the callback service (``prometheus-client``).

One ``ServiceMetrics`` per service, on its own ``CollectorRegistry`` (no
process-wide state, so tests and several services in one process do not
mix). ``boomerang run`` serves it at ``service.metrics_listen`` (GET
/metrics, text format 0.0.4).

| metric                                     | labels          | what                            |
|--------------------------------------------|-----------------|---------------------------------|
| ``boomerang_triggers_total``               | result, reason  | trigger calls: accepted,        |
|                                            |                 | duplicate or refused (reason:   |
|                                            |                 | authorise.py's table,           |
|                                            |                 | unknown_did, draining,          |
|                                            |                 | store_error)                    |
| ``boomerang_callbacks_placed_total``       |                 | callback attempts started       |
| ``boomerang_callbacks_total``              | outcome         | attempts by outcome (answered,  |
|                                            |                 | busy, no_answer, failed...)     |
| ``boomerang_callback_start_delay_seconds`` |                 | actual minus scheduled start    |
| ``boomerang_digits_total``                 | source          | DTMF digits received            |
| ``boomerang_bridged_calls_total``          |                 | destination legs bridged        |
| ``boomerang_call_duration_seconds``        | kind            | leg durations (answer to end)   |
| ``boomerang_callbacks_pending``            |                 | jobs waiting in this node       |
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

DURATION_BUCKETS_S = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
DELAY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.triggers = Counter("boomerang_triggers", "Trigger calls by result and reason",
                                ["result", "reason"], registry=registry)
        self.callbacks_placed = Counter("boomerang_callbacks_placed",
                                        "Callback attempts started", registry=registry)
        self.callbacks = Counter("boomerang_callbacks", "Callback attempts by outcome",
                                 ["outcome"], registry=registry)
        self.start_delay = Histogram("boomerang_callback_start_delay_seconds",
                                     "Callback start: actual minus scheduled",
                                     buckets=DELAY_BUCKETS_S, registry=registry)
        self.digits = Counter("boomerang_digits", "DTMF digits received", ["source"],
                              registry=registry)
        self.bridged = Counter("boomerang_bridged_calls", "Calls bridged to a destination",
                               registry=registry)
        self.durations = Histogram("boomerang_call_duration_seconds",
                                   "Answered leg durations", ["kind"],
                                   buckets=DURATION_BUCKETS_S, registry=registry)
        self.pending = Gauge("boomerang_callbacks_pending", "Callback jobs waiting",
                             registry=registry)

    def trigger(self, result: str, reason: str) -> None:
        self.triggers.labels(result=result, reason=reason).inc()

    def text(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["ServiceMetrics"]
