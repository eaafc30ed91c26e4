"""NxCloudClient: settings in, signed calls to NXCloud out, with retries, rate limits and a clock fix."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_nxcloud.client.api import (
    CLOCK_SKEW_CODE,
    DEFAULT_BASE_URL,
    MARK_READ_PATH,
    READ_ACTION,
    TYPING_INDICATOR_PATH,
    WHATSAPP_BIZ_TYPE,
    explain,
    is_auth_code,
    mark_read_body,
    typing_indicator_body,
)
from airflow_provider_nxcloud.client.budget import RetryBudget
from airflow_provider_nxcloud.client.config import (
    DEFAULT_ADAPTIVE_RATE,
    DEFAULT_ALGORITHM,
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_WAIT,
    DEFAULT_TIMEOUT,
    DEFAULT_VERIFY,
    ClientSettings,
    require_appkey,
)
from airflow_provider_nxcloud.client.errors import (
    NxCloudApiError,
    NxCloudAuthError,
    NxCloudConfigError,
    NxCloudRetryBudgetError,
    NxCloudTransientError,
)
from airflow_provider_nxcloud.client.ratelimit import AdaptiveRateLimiter, RateLimiter
from airflow_provider_nxcloud.client.responses import NxCloudResponse, interpret
from airflow_provider_nxcloud.client.retries import transient_retrying
from airflow_provider_nxcloud.client.signing import serialise_body, signed_headers
from airflow_provider_nxcloud.client.transport import PooledTransport

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_provider_nxcloud.client.api import CodeKey, ThrottleScope
    from airflow_provider_nxcloud.client.ratelimit import Log
    from airflow_provider_nxcloud.client.signing import Algorithm

# Connections kept open when no batch said how many threads share the client.
DEFAULT_POOL_SIZE = 10
_NO_OVERRIDES: Mapping[CodeKey, bool] = {}


class NxCloudClient:
    """
    Signed, retried, rate-limited access to NXCloud's HTTP API, in plain Python (no Airflow).

    Safe to share between threads: every thread of a batch shares one connection pool, one rate
    cap and what the adaptive limiter learnt. Building it sends nothing.

    :param access_key: NXCloud's accessKey.
    :param access_secret: NXCloud's accessSecret; it signs requests and is never sent.
    :param base_url: the API's base URL; https, or http to a loopback sandbox.
    :param business_phone: default merchant WhatsApp number (digits with country code).
    :param appkey: the NXCloud WhatsApp application's appkey; needed only for the typing indicator.
    :param algorithm: ``md5`` or ``sha256`` signatures.
    :param timeout: connect and read timeout of each request, in seconds.
    :param verify: verify TLS certificates (or a CA bundle path).
    :param proxies: requests-style proxies, e.g. ``{"https": "http://proxy:3128"}``.
    :param max_requests_per_second: cap on all requests of this client, retries included.
    :param adaptive_rate: when NXCloud throttles, slow every request of this client to just under
        the rate it accepts (under the cap, if any).
    :param max_retries: retries of transient failures (code -1/9001/9007, HTTP 429/5xx, network),
        while the client's retry budget lasts: when most recent requests fail transiently (an
        outage), it stops retrying (``NxCloudRetryBudgetError``) until requests succeed again.
    :param retry_wait: initial and maximum backoff between retries, in seconds.
    :param logger: where retries and rate findings are logged (an Airflow hook passes its own).
    """

    def __init__(
        self,
        *,
        access_key: str,
        access_secret: str,
        base_url: str = DEFAULT_BASE_URL,
        business_phone: str | None = None,
        appkey: str | None = None,
        algorithm: Algorithm = DEFAULT_ALGORITHM,
        timeout: float = DEFAULT_TIMEOUT,
        verify: bool | str = DEFAULT_VERIFY,
        proxies: Mapping[str, str] | None = None,
        max_requests_per_second: float | None = None,
        adaptive_rate: bool = DEFAULT_ADAPTIVE_RATE,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_wait: tuple[float, float] = DEFAULT_RETRY_WAIT,
        logger: Log | None = None,
    ) -> None:
        settings = ClientSettings(
            access_key=access_key,
            access_secret=access_secret,
            base_url=base_url,
            business_phone=business_phone,
            algorithm=algorithm,
            timeout=timeout,
            verify=verify,
            proxies=dict(proxies or {}),
            max_requests_per_second=max_requests_per_second,
            adaptive_rate=adaptive_rate,
            max_retries=max_retries,
            retry_wait=retry_wait,
            appkey=appkey,
        )
        self._setup(settings, logger or logging.getLogger(__name__))

    @classmethod
    def from_settings(cls, settings: ClientSettings, *, logger: Log | None = None) -> NxCloudClient:
        """A client from settings already checked (an Airflow connection resolved by the hook)."""
        client = cls.__new__(cls)
        client._setup(settings, logger or logging.getLogger(__name__))
        return client

    def _setup(self, settings: ClientSettings, logger: Log) -> None:
        self.settings = settings
        self._log = logger
        self._clock_offset_ms = 0
        self._cancelled = threading.Event()
        # Ends backoff waits early: set when cancelled, and when the retry budget runs out.
        self._wake = threading.Event()
        self._requests_sent = 0
        self._retries_sent = 0
        self._throttled_answers = 0
        self._lock = threading.Lock()
        self._transport = self._new_transport(DEFAULT_POOL_SIZE)
        rate = settings.max_requests_per_second
        self._rate_limiter = RateLimiter(rate) if rate else None
        # One per client: every thread of a batch, and every retry, shares what it learnt. Another
        # per business number, for WhatsApp's per-number throughput limit (Meta's 130429): one
        # throttled number must not slow a batch's other numbers.
        self._adaptive_limiter = (
            AdaptiveRateLimiter(ceiling=rate, logger=logger) if settings.adaptive_rate else None
        )
        self._number_limiters: dict[str, AdaptiveRateLimiter] = {}
        # Shared by every thread, like the limiters: an outage seen by one is seen by all.
        self._budget = RetryBudget(logger=logger, on_exhausted=self._wake.set)
        self._retrying = transient_retrying(
            max_retries=settings.max_retries,
            wait=settings.retry_wait,
            cancelled=self._cancelled,
            log=logger,
            sleep=self._backoff,
        )

    def _new_transport(self, pool_size: int) -> PooledTransport:
        return PooledTransport(
            base_url=self.settings.base_url,
            proxies=self.settings.proxies,
            verify=self.settings.verify,
            timeout=self.settings.timeout,
            pool_size=pool_size,
        )

    @property
    def business_phone(self) -> str | None:
        return self.settings.business_phone

    @property
    def appkey(self) -> str | None:
        return self.settings.appkey

    @property
    def requests_sent(self) -> int:
        """HTTP requests this client has sent: every attempt, retries and re-signed ones included."""
        return self._requests_sent

    @property
    def retries_sent(self) -> int:
        """Of ``requests_sent``, those that repeated a request already sent (a retry or a re-signing)."""
        return self._retries_sent

    @property
    def throttled_answers(self) -> int:
        """Answers that said "too fast" (HTTP 429, Meta's rate-limit codes): each was retried or failed."""
        return self._throttled_answers

    @property
    def rate_limit_found(self) -> float | None:
        """The rate (requests/s) NXCloud last throttled this client at; None if it never did."""
        return self._adaptive_limiter.limit_found if self._adaptive_limiter is not None else None

    def ready_for_threads(self, workers: int) -> None:
        """Keep ``workers`` connections open, for that many threads sharing this client."""
        with self._lock:
            if workers > self._transport.pool_size:
                self._transport = self._new_transport(workers)

    def cancel(self) -> None:
        """
        Give up retrying, from any thread (the task is being killed): backoff waits end now and
        no request is sent again. Requests in flight finish within their timeout.
        """
        self._cancelled.set()
        self._wake.set()
        with self._lock:
            limiters = [self._adaptive_limiter, *self._number_limiters.values()]
        for limiter in limiters:
            if limiter is not None:
                limiter.cancel()

    def _backoff(self, seconds: float) -> None:
        if self._wake.wait(seconds) and not self._cancelled.is_set() and not self._budget.exhausted:
            self._wake.clear()  # the budget recovered since it ran out: waits last again

    def call(
        self,
        path: str,
        *,
        action: str,
        biz_type: str,
        body: Mapping[str, Any],
        retry_overrides: Mapping[CodeKey, bool] = _NO_OVERRIDES,
    ) -> NxCloudResponse:
        """
        Send one signed POST to an NXCloud endpoint and return its answer when ``code`` is 0.

        Transient failures (``api.classify``, HTTP 429/5xx, network errors, bodies that are not
        NXCloud JSON) are retried with backoff, each attempt freshly signed, while the client's
        retry budget (``budget.py``) lasts; ``retry_overrides`` retries a code, or a Meta code
        (``"meta:131009"``), (True) or not (False) whatever ``classify`` says. On code 1004 the
        clock offset is learnt from the server's ``Date`` and the request re-signed once. A final
        Meta error logs Meta's ``fbtrace_id``, which support asks for; it is kept out of the
        error's text.

        :raises NxCloudAuthError: codes 1000-1099.
        :raises NxCloudRetryBudgetError: failed transiently, not retried: the retry budget ran out.
        :raises NxCloudTransientError: still failing after ``max_retries``.
        :raises NxCloudApiError: any other non-zero code, or an unusable HTTP answer.
        """
        payload = serialise_body(body)
        phone = body.get("business_phone")
        failures: list[NxCloudTransientError] = []

        def attempt() -> NxCloudResponse:
            # gRPC's rule: no retry while the budget is exhausted; checked after the failure and
            # again after the backoff, during which it may have run out.
            if failures and self._budget.exhausted:
                raise _not_retried(failures[-1])
            try:
                return self._attempt(path, action, biz_type, payload, retry_overrides, phone, bool(failures))
            except NxCloudTransientError as error:
                if self._budget.exhausted and not self._cancelled.is_set():
                    raise _not_retried(error) from None
                failures.append(error)
                raise

        try:
            response = self._retrying(attempt)
            if response.code == CLOCK_SKEW_CODE and self._learn_clock_offset(response):
                response = self._retrying(attempt)
            if response.code == 0:
                return response
            meta = response.meta
            error_type = NxCloudAuthError if is_auth_code(response.code) else NxCloudApiError
            raise error_type(
                explain(response.code, response.message, meta),
                code=response.code,
                http_status=response.http_status,
                meta_code=meta.code if meta is not None else None,
                fbtrace_id=meta.fbtrace_id if meta is not None else None,
            )
        except NxCloudApiError as error:
            if error.fbtrace_id is not None:
                self._log.warning(
                    "NXCloud code %s for message %s, Meta %s: fbtrace_id %s (for NXCloud's support)",
                    error.code,
                    body.get("message_id", "?"),
                    error.meta_code,
                    error.fbtrace_id,
                )
            raise

    def mark_message_as_read(
        self,
        message_id: str,
        business_phone: str | None = None,
        *,
        typing_indicator: bool = False,
        retry_overrides: Mapping[CodeKey, bool] = _NO_OVERRIDES,
    ) -> NxCloudResponse:
        """
        Mark one inbound WhatsApp message (and the earlier ones of its conversation) as read.

        ``typing_indicator=True`` also shows the customer that the business is typing, until it
        replies or 25 s pass (NXCloud's ``typingIndicator``; it needs the client's ``appkey``).
        Meta's advice: show it only when a reply follows. The answer means what a mark-read
        answer means: the same codes, retries and throttles.
        """
        phone = business_phone or self.settings.business_phone
        if not phone:
            raise NxCloudConfigError("business_phone is not set: pass it, or set the client's business_phone")
        body: dict[str, Any]
        if typing_indicator:
            path = TYPING_INDICATOR_PATH
            body = typing_indicator_body(require_appkey(self.settings.appkey), phone, message_id)
        else:
            path, body = MARK_READ_PATH, mark_read_body(phone, message_id)
        return self.call(
            path, action=READ_ACTION, biz_type=WHATSAPP_BIZ_TYPE, body=body, retry_overrides=retry_overrides
        )

    def _attempt(
        self,
        path: str,
        action: str,
        biz_type: str,
        payload: bytes,
        retry_overrides: Mapping[CodeKey, bool],
        business_phone: str | None,
        retry: bool,
    ) -> NxCloudResponse:
        settings = self.settings
        limiters = self._limiters_for(business_phone)
        sent_at = [limiter.acquire() for _, limiter in limiters]
        if self._rate_limiter is not None:
            self._rate_limiter.acquire()
        if self._cancelled.is_set():  # also when it happened while waiting for a turn
            raise NxCloudTransientError("not sent: the client was cancelled (task killed)")
        headers = signed_headers(
            access_key=settings.access_key,
            action=action,
            biz_type=biz_type,
            ts_ms=int(time.time() * 1000) + self._clock_offset_ms,
            body=payload,
            access_secret=settings.access_secret,
            algorithm=settings.algorithm,
        )
        with self._lock:  # += is not atomic across threads
            self._requests_sent += 1
            self._retries_sent += retry
        try:
            answer = self._transport.post(path, headers, payload)
        except NxCloudTransientError:
            self._budget.record(failed=True)
            raise
        throttle: ThrottleScope | None = None
        try:
            response = interpret(answer, retry_overrides)
        except NxCloudTransientError as error:
            throttle = error.throttle
            if throttle is not None:
                with self._lock:
                    self._throttled_answers += 1
            # A throttle says "too fast", not "down": the adaptive limiter's, not the budget's. But
            # a 5xx is "down" even with a Retry-After (a gateway in maintenance sends one on every
            # answer): counting it as a throttle alone left such an outage unbounded.
            if throttle is None or (error.http_status or 0) >= 500:
                self._budget.record(failed=True)
            raise
        finally:
            for (scope, limiter), at in zip(limiters, sent_at, strict=True):
                limiter.record(at, throttled=throttle == scope)
        self._budget.record(failed=False)  # any NXCloud code: NXCloud is up
        return response

    def _limiters_for(self, business_phone: str | None) -> list[tuple[ThrottleScope, AdaptiveRateLimiter]]:
        """The adaptive limiters a request waits for, each with the throttle that slows it."""
        if self._adaptive_limiter is None:
            return []
        limiters: list[tuple[ThrottleScope, AdaptiveRateLimiter]] = [("account", self._adaptive_limiter)]
        if business_phone is not None:
            number = self._number_limiters.get(business_phone)
            if number is None:
                with self._lock:
                    number = self._number_limiters.setdefault(
                        business_phone,
                        AdaptiveRateLimiter(
                            ceiling=self.settings.max_requests_per_second,
                            logger=self._log,
                            scope=f"business number {business_phone}",
                        ),
                    )
            limiters.append(("business_phone", number))
        return limiters

    def _learn_clock_offset(self, response: NxCloudResponse) -> bool:
        """Adopt the server's clock after a 1004; False when it cannot be learnt."""
        if response.server_time is None:
            return False
        offset_ms = int((response.server_time - time.time()) * 1000)
        self._clock_offset_ms = offset_ms
        self._log.warning(
            "NXCloud rejected our timestamp (1004): this machine's clock is %.1f s %s the server's. "
            "Signing with the server's time from now on; fix the clock (NTP).",
            abs(offset_ms) / 1000,
            "behind" if offset_ms > 0 else "ahead of",
        )
        return True


def _not_retried(error: NxCloudTransientError) -> NxCloudRetryBudgetError:
    return NxCloudRetryBudgetError(
        f"{error.message}; not retried: the retry budget is exhausted (most recent requests failed"
        " transiently)",
        code=error.code,
        http_status=error.http_status,
        meta_code=error.meta_code,
        fbtrace_id=error.fbtrace_id,
    )
