"""Overload detection: shed new calls before the event loop falls behind.

A server that accepts more than it can answer answers everything late;
past T1 (500 ms) the peers retransmit, the extra load makes it later still,
and every call fails (the trigger benchmark showed this at 4000 calls/s).
Shedding new INVITEs with 503 and Retry-After while the loop is late keeps
the calls already in progress within their timers.

Two signals, either one sheds:
- the event loop's lag: a probe timer every ``probe_interval_s`` measures
  how late it fires; shedding starts above ``lag_high_s`` and stops when the
  lag is back under half of it (hysteresis, so it does not flap);
- the number of live transactions above ``max_transactions`` (memory).
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


class LoopLagMonitor:
    """Measures how late a periodic timer fires on ``loop``."""

    __slots__ = ("_expected", "_handle", "interval_s", "lag_s", "loop", "max_lag_s")

    def __init__(self, loop: asyncio.AbstractEventLoop, interval_s: float = 0.05) -> None:
        self.loop = loop
        self.interval_s = interval_s
        self.lag_s = 0.0
        self.max_lag_s = 0.0
        self._expected = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        if self._handle is None:
            self._expected = self.loop.time() + self.interval_s
            self._handle = self.loop.call_at(self._expected, self._probe)

    def _probe(self) -> None:
        now = self.loop.time()
        self.lag_s = max(0.0, now - self._expected)
        self.max_lag_s = max(self.max_lag_s, self.lag_s)
        self._expected = now + self.interval_s
        self._handle = self.loop.call_at(self._expected, self._probe)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class OverloadGuard:
    """Decides whether a new call is shed; counts what it shed."""

    __slots__ = ("lag_high_s", "max_transactions", "monitor", "shed_count", "shedding")

    def __init__(self, monitor: LoopLagMonitor | None, *, lag_high_s: float,
                 max_transactions: int) -> None:
        self.monitor = monitor
        self.lag_high_s = lag_high_s
        self.max_transactions = max_transactions
        self.shedding = False
        self.shed_count = 0

    def should_shed(self, live_transactions: int) -> bool:
        """True when a new INVITE should get 503 now."""
        over = self.max_transactions > 0 and live_transactions >= self.max_transactions
        if self.monitor is not None and self.lag_high_s > 0:
            lag = self.monitor.lag_s
            if not self.shedding and lag > self.lag_high_s:
                self.shedding = True
                log.warning("overload: event loop %.0f ms late; new calls get 503 until "
                            "it recovers", lag * 1000)
            elif self.shedding and lag < self.lag_high_s / 2:
                self.shedding = False
                log.warning("overload over: event loop %.0f ms late; %d calls were shed",
                            lag * 1000, self.shed_count)
        if over or self.shedding:
            self.shed_count += 1
            return True
        return False


__all__ = ["LoopLagMonitor", "OverloadGuard"]
