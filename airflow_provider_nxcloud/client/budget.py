"""
The retry budget: when most recent requests fail transiently, stop retrying (NXCloud is down).

Per-request retries make an outage expensive: every message spends all its attempts and backoff
(measured before this: 64 ids, every answer HTTP 503, 135 s and 384 requests). This is gRPC's
retry throttling (gRFC A6: a token count that failures spend and successes earn back, retries
allowed only above half of it), as botocore's retry quota (``botocore/retries/quota.py``) does
with capacity: the tokens of a client start full; each request that fails transiently takes one,
each answer from a working NXCloud gives ``SUCCESS_CREDIT`` back. Below half the capacity the
budget is exhausted: the client stops retrying and the batch stops starting messages, so the try
ends in seconds and Airflow's retries, with their delay, take over.

With a credit of 1 it takes ``CAPACITY / 2`` more failures than successes, recently, to exhaust
it: random faults at 26 % of requests (``testing/fault_mix.py``) gain tokens on average and
never do. Throttles (HTTP 429, Meta's rate limits) neither take nor give: they say "too fast",
not "down", and the adaptive limiter answers them; a 5xx takes one even with a Retry-After. The
budget also refills with time (``REFILL_PER_SECOND``), so a long-lived client whose batches
stopped sending recovers.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_nxcloud.client.ratelimit import Log

CAPACITY = 100.0
SUCCESS_CREDIT = 1.0
# Slow, so that an outage of timeouts (a few failures a second at most) still exhausts it.
REFILL_PER_SECOND = 0.1
# Recovered only well above where it ran out: a budget hovering at half would log each crossing.
_RECOVER_AT = 0.75


class RetryBudget:
    """Tokens shared by every thread of a client; ``exhausted`` says whether to stop retrying."""

    def __init__(
        self,
        *,
        logger: Log,
        capacity: float = CAPACITY,
        success_credit: float = SUCCESS_CREDIT,
        refill_per_second: float = REFILL_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
        on_exhausted: Callable[[], None] | None = None,
    ) -> None:
        self._log = logger
        self._capacity = capacity
        self._credit = success_credit
        self._refill = refill_per_second
        self._clock = clock
        self._on_exhausted = on_exhausted
        self._tokens = capacity
        self._stamp = clock()
        self._exhausted = False
        self._failures = 0  # transient failures since it was last full, for the log line
        self._lock = threading.Lock()

    @property
    def exhausted(self) -> bool:
        with self._lock:
            self._update(0.0)
            return self._exhausted

    @property
    def tokens(self) -> float:
        with self._lock:
            self._update(0.0)
            return self._tokens

    def record(self, *, failed: bool) -> None:
        """One answer: ``failed`` when the request failed transiently (not a throttle)."""
        with self._lock:
            if failed:
                self._failures += 1
            elif self._tokens >= self._capacity:
                self._failures = 0
            just_exhausted = self._update(-1.0 if failed else self._credit)
        if just_exhausted and self._on_exhausted is not None:
            self._on_exhausted()  # outside the lock: it wakes the client's backoff waits

    def _update(self, change: float) -> bool:
        """Refill, apply ``change``, log a crossing; True when this made it exhausted."""
        now = self._clock()
        elapsed, self._stamp = now - self._stamp, now
        self._tokens = min(self._capacity, self._tokens + elapsed * self._refill + change)
        if not self._exhausted and self._tokens <= self._capacity / 2:
            self._exhausted = True
            self._log.warning(
                "NXCloud: retry budget exhausted (%d requests failed transiently, more than succeeded "
                "recently): not retrying, and batches start no new messages until requests succeed "
                "again",
                self._failures,
            )
            return True
        if self._exhausted and self._tokens >= self._capacity * _RECOVER_AT:
            self._exhausted = False
            self._log.info("NXCloud: retry budget recovered: retrying transient failures again")
        return False
