"""
Client-side rate limits: a fixed cap (even spacing, never exceeded) and an adaptive limiter that
finds the account's unknown limit from NXCloud's throttling and sends just under it.

The adaptive one mirrors botocore's "adaptive" retry mode (``botocore/retries/adaptive.py``,
``throttling.py``, ``bucket.py``): a measured rate in 0.5 s buckets, smoothed; a CUBIC limit
(C = 0.4, beta = 0.7) cut at each throttle and grown back between them; a token bucket at
``min(limit, 2 x measured)``, never below 0.5/s; off until the first throttle. Where it deviates,
the comment says why and what was measured (``benchmarks/adaptive.py``: 40/s account, burst 5,
50 ms latency, 32 workers, ``python -m benchmarks.adaptive``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

BUCKET_SECONDS = 0.5
SMOOTHING = 0.8
CUBIC_C = 0.4
CUBIC_BETA = 0.7
MIN_RATE = 0.5
MAX_MEASURED_SCALE = 2.0
# A rate rise smaller than this leaves waiting threads on their (slightly late) schedule rather
# than waking all of them to recompute it on every response.
_WAKE_ON_RISE = 1.1
# Logged when the limit has moved this much (either way) since the last line.
LOG_STEP = 0.2

log = logging.getLogger(__name__)


class Log(Protocol):
    """What the limiter logs to: a ``logging.Logger``, or the hook's Airflow task logger."""

    def info(self, msg: Any, /, *args: Any) -> Any: ...

    def warning(self, msg: Any, /, *args: Any) -> Any: ...


class RateLimiter:
    """
    Hands out evenly spaced send slots, ``1 / per_second`` apart, across all threads.

    Slots are reserved under a lock and waited for outside it, so a slow sender never delays the
    others and no 1-second window holds more than ``per_second`` (+1 for the window's edge) sends.
    """

    def __init__(
        self,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not per_second > 0:
            raise ValueError(f"max_requests_per_second must be positive, got {per_second!r}")
        self._interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next_slot = float("-inf")
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
        if slot > now:
            self._sleep(slot - now)


class RateMeter:
    """
    Pure: the smoothed rate of events, in buckets of ``bucket_seconds``.

    The limiter counts the answers NXCloud accepted, where botocore counts every answer, 429s
    included: while throttled, that is the rate offered (32 workers at 50 ms: ~600/s), not the
    rate the account allows (40/s), so its cuts start far too high. Deviations from botocore's
    ``RateClocker``, each for the first throttle of a batch, where the first cut comes from:

    - Buckets start when the first request is sent (``start``), not at a whole second of the
      clock, and until the first one closes the rate is events / time since that first send.
      botocore reports 0 until a bucket closes; 32 workers emptying a small account bucket get
      their 429s ~50 ms in, so its first cut lands on the 0.5/s floor and the batch crawls for
      seconds. (Measuring from the first *response* instead divides by ~0: the answers of that
      first burst arrive within a millisecond of each other.)
    - The first closed bucket is taken as it is, not smoothed with the 0 that came before it
      (botocore's first value is 0.8 x the real rate).
    """

    def __init__(self, *, bucket_seconds: float = BUCKET_SECONDS, smoothing: float = SMOOTHING) -> None:
        self._bucket_seconds = bucket_seconds
        self._smoothing = smoothing
        self._started: float | None = None
        self._bucket_start = 0.0
        self._count = 0
        self._rate: float | None = None  # None until the first bucket closes

    @property
    def settled(self) -> bool:
        """Whether a whole bucket has been measured (before that, the first burst weighs in)."""
        return self._rate is not None

    def start(self, now: float) -> None:
        """The first request is sent: measure from here (later calls change nothing)."""
        if self._started is None:
            self._started = self._bucket_start = now

    def record(self, now: float) -> float:
        """Count one event at ``now``; return the rate."""
        self.start(now)
        self._close_buckets(now)
        self._count += 1
        return self.rate(now)

    def rate(self, now: float) -> float:
        self._close_buckets(now)
        if self._rate is not None:
            return self._rate
        elapsed = now - self._bucket_start
        return self._count / elapsed if elapsed > 0 else 0.0

    def _close_buckets(self, now: float) -> None:
        if self._started is None:
            return
        elapsed = now - self._bucket_start
        if elapsed < self._bucket_seconds:
            return
        # Every whole bucket since the last close, idle ones included, shares the count.
        span = (elapsed // self._bucket_seconds) * self._bucket_seconds
        current = self._count / span
        if self._rate is None:
            self._rate = current
        else:
            self._rate = self._smoothing * current + (1 - self._smoothing) * self._rate
        self._bucket_start += span
        self._count = 0


class Cubic:
    """
    Pure: CUBIC's limit over time, as botocore's ``CubicCalculator`` (``C``, ``beta``).

    Not added: CUBIC's "fast convergence" (RFC 8312, 4.6: throttled below the previous throttle,
    plateau lower to leave room for another sender). Measured with two task instances on one
    40/s account, it did not make their shares reliably fairer (0.94, 0.82, 0.55 against 0.84,
    0.82 without), while a lone task's throttle rate wanders enough from cut to cut that it
    fired anyway: 0.97x -> 0.88x of a 40/s limit, and at 15/s goodput never settled.
    """

    def __init__(self, *, c: float = CUBIC_C, beta: float = CUBIC_BETA) -> None:
        self._c = c
        self._beta = beta
        self.w_max = 0.0  # the rate throttled at, last time
        self._plateau = 0.0  # where the curve flattens: w_max, or the cut after an estimate
        self._k = 0.0
        self._last_cut = 0.0

    def cut(self, rate: float, now: float, *, estimate: bool = False) -> float:
        """
        Throttled while sending at ``rate``: the new limit, ``beta x rate``. An ``estimate`` (a
        rate measured over less than a bucket) is not remembered as the rate to return to: the
        curve starts flat at the cut and only then climbs.
        """
        self.w_max = rate
        self._plateau = rate * self._beta if estimate else rate
        # The curve starts at the cut (beta x rate) and flattens at the plateau.
        self._k = ((self._plateau - rate * self._beta) / self._c) ** (1 / 3)
        self._last_cut = now
        return rate * self._beta

    def limit(self, now: float) -> float:
        """Concave back up to ``w_max`` (reached after ``K`` s), then convex beyond it."""
        return self._c * (now - self._last_cut - self._k) ** 3 + self._plateau


class TokenBucket:
    """
    Pure: ``rate`` tokens per second, at most ``max(rate, 1)`` saved (botocore's capacity).

    Each caller takes a place in line (``take``) and may send once the bucket has produced that
    many tokens (``wait``). botocore's bucket has no line: each waiter sleeps on its own estimate
    and all of them wake at once. Here a waiter asks again after every change of rate, so a place
    taken at an old rate never fires at it: the line moves at whatever the rate is now.
    """

    def __init__(self, *, rate: float, now: float) -> None:
        self._produced = 0.0  # tokens produced so far, capped at ``_taken + capacity``
        self._taken = 0
        self._stamp = now
        self.rate = self._capacity = 0.0
        self.set_rate(rate, now)

    def set_rate(self, rate: float, now: float) -> None:
        self._refill(now)  # tokens until now accrue at the old rate
        self.rate = max(rate, MIN_RATE)
        self._capacity = max(self.rate, 1.0)
        self._produced = min(self._produced, self._taken + self._capacity)

    def take(self, now: float) -> int:
        self._refill(now)
        self._taken += 1
        return self._taken

    def wait(self, place: int, now: float) -> float:
        """Seconds until ``place`` may send at the current rate (0: now)."""
        self._refill(now)
        shortfall = place - self._produced
        # A rounding error's worth of a token is none: waiting for it would never end.
        return shortfall / self.rate if shortfall > 1e-9 else 0.0

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._stamp)
        self._produced = min(self._produced + elapsed * self.rate, self._taken + self._capacity)
        self._stamp = now


def _wait_on(condition: threading.Condition, seconds: float) -> None:
    condition.wait(seconds)


class AdaptiveRateLimiter:
    """
    One per client and one per business number, shared by its threads: off until NXCloud first
    throttles, then a token bucket whose rate follows CUBIC under ``ceiling``
    (``max_requests_per_second``, if any). ``scope`` names what it slows, in the log.

    ``acquire()`` before each attempt returns the send time; ``record(sent_at, throttled=...)``
    after each answer (not after a network error: that says nothing about the rate).
    """

    def __init__(
        self,
        *,
        ceiling: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[threading.Condition, float], None] = _wait_on,
        logger: Log = log,
        scope: str = "every request",
    ) -> None:
        self._scope = scope
        self._ceiling = ceiling if ceiling is not None else float("inf")
        self._clock = clock
        self._wait = wait
        self._log = logger
        self._meter = RateMeter()
        self._cubic = Cubic()
        self._bucket: TokenBucket | None = None  # None: not engaged yet
        self._last_cut = float("-inf")
        self._logged_rate = 0.0
        self._woken_rate = 0.0
        self._cancelled = False
        self._meter_started = False
        self._changed = threading.Condition(threading.Lock())

    @property
    def engaged(self) -> bool:
        return self._bucket is not None

    @property
    def limit_found(self) -> float | None:
        """The accepted rate NXCloud last throttled at (requests/s), or None if it never did."""
        return round(self._cubic.w_max, 1) if self._bucket is not None else None

    @property
    def rate(self) -> float | None:
        """The rate requests are let through at now; None while not engaged (no limit)."""
        return self._bucket.rate if self._bucket is not None else None

    def acquire(self) -> float:
        """Wait for this hook's turn to send; returns the send time (for ``record``)."""
        if self._bucket is None:  # not engaged: an unthrottled account pays one clock read
            now = self._clock()
            if not self._meter_started:
                with self._changed:
                    self._meter.start(now)
                    self._meter_started = True
            return now
        with self._changed:
            now = self._clock()
            bucket = self._bucket
            place = bucket.take(now)
            while not self._cancelled:
                delay = bucket.wait(place, now)
                if delay <= 0:
                    break
                self._wait(self._changed, delay)
                now = self._clock()
            return now

    def record(self, sent_at: float, *, throttled: bool) -> None:
        """One answer to a request sent at ``sent_at``: throttled (told to slow down) or not."""
        with self._changed:
            now = self._clock()
            if not throttled:
                measured = self._meter.record(now)
                if self._bucket is None:
                    return
                limit = self._cubic.limit(now)
            elif sent_at < self._last_cut:
                # Sent before the last cut: its 429 judges the old rate, which is already cut.
                # botocore cuts again for every one: the 27 429s of one burst of 32 against a
                # burst of 5 would take it to 0.7^27 of the rate, the floor.
                return
            else:
                measured = self._meter.rate(now)
                if measured <= 0:
                    # Nothing accepted yet (another task drained the account): no rate to cut
                    # to. botocore cuts to the 0.5/s floor and needs seconds to climb back; the
                    # backoff of the refused requests is enough until a rate is measured.
                    return
                current = self._bucket.rate if self._bucket is not None else measured
                # Measured over the first round trips only, the rate includes the account's burst
                # (5 extra answers in 50 ms are +100/s): returning to it overshot to ~50-75/s at
                # a 40/s account and cost ~30 more 429s in the first seconds.
                estimate = not self._meter.settled
                limit = self._cubic.cut(max(min(measured, current), MIN_RATE), now, estimate=estimate)
                self._last_cut = now
                self._log_limit_found()
            self._set_rate(min(limit, MAX_MEASURED_SCALE * measured, self._ceiling), now)

    def cancel(self) -> None:
        """Release every waiting thread now (the task is being killed)."""
        with self._changed:
            self._cancelled = True
            self._changed.notify_all()

    def _log_limit_found(self) -> None:
        # The limit found (the rate throttled at), not the rate of the moment: that one saws
        # between 0.7x and 1x of it every few seconds, which would be two lines per cycle.
        found = self._cubic.w_max
        if self._bucket is None:
            self._log.warning(
                "NXCloud is throttling %s at %.1f requests/s: they now go at most %.1f/s and probe upwards",
                self._scope,
                found,
                found * CUBIC_BETA,
            )
        elif abs(found - self._logged_rate) > LOG_STEP * self._logged_rate:
            self._log.info(
                "NXCloud rate limit moved: %s throttled at %.1f requests/s now", self._scope, found
            )
        else:
            return
        self._logged_rate = found

    def _set_rate(self, rate: float, now: float) -> None:
        rate = max(rate, MIN_RATE)
        if self._bucket is None:
            self._bucket = TokenBucket(rate=rate, now=now)
            self._woken_rate = rate
            return
        self._bucket.set_rate(rate, now)
        if rate > _WAKE_ON_RISE * self._woken_rate:
            self._changed.notify_all()  # waiters recompute their turn at the higher rate
            self._woken_rate = rate
        elif rate < self._woken_rate:
            self._woken_rate = rate  # waiters find out on waking; a later rise counts from here
