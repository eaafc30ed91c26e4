"""NxCloudHook: an Airflow connection of type ``nxcloud`` -> signed, retried HTTP calls to NXCloud.

Wiring only (settings, transport, limiters, retries, the 2.x form, the endpoints); the logic is
in the modules it imports. A little over 300 lines, most of it the documented public methods.
"""

from __future__ import annotations

import threading
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_nxcloud.batch.engine import mark_messages
from airflow_provider_nxcloud.batch.options import BatchOptions
from airflow_provider_nxcloud.client.api import (
    CLOCK_SKEW_CODE,
    MARK_READ_PATH,
    READ_ACTION,
    TRANSIENT_CODES,
    WHATSAPP_BIZ_TYPE,
    describe_code,
    is_auth_code,
    mark_read_body,
)
from airflow_provider_nxcloud.client.errors import (
    NxCloudApiError,
    NxCloudAuthError,
    NxCloudConfigError,
    NxCloudTransientError,
)
from airflow_provider_nxcloud.client.ratelimit import AdaptiveRateLimiter, RateLimiter
from airflow_provider_nxcloud.client.responses import NxCloudResponse, interpret, is_throttle
from airflow_provider_nxcloud.client.retries import transient_retrying
from airflow_provider_nxcloud.client.signing import Algorithm, serialise_body, signed_headers
from airflow_provider_nxcloud.client.transport import PooledTransport
from airflow_provider_nxcloud.get_provider_info import (
    CONN_FIELDS,
    CONN_TYPE,
    DEFAULT_CONN_ID,
    HOOK_NAME,
    UI_FIELD_BEHAVIOUR,
)
from airflow_provider_nxcloud.settings import NxCloudSettings, resolve_settings
from airflow_provider_nxcloud.version_compat import BaseHook

if TYPE_CHECKING:
    from collections.abc import Mapping

    import requests
    from tenacity import Retrying

    from airflow_provider_nxcloud.batch.options import CodeActions
    from airflow_provider_nxcloud.batch.results import BatchResult

TEST_MESSAGE_ID = "airflow-connection-test-not-a-real-message"


class NxCloudHook(BaseHook):
    """
    Signed access to NXCloud's HTTP API through an Airflow connection of type ``nxcloud``.

    Connection: login = access key, password = access secret, host = API base URL (empty:
    ``https://api2.nxcloud.com``). Extras: ``business_phone``, ``algorithm``, ``timeout``,
    ``verify``, ``max_requests_per_second``, ``adaptive_rate``, ``max_retries``, ``proxies``
    (their defaults are the connection form's, in ``get_provider_info``). Arguments given here
    override the extras. Nothing is looked up until the first request.

    :param nxcloud_conn_id: The Airflow connection id.
    :param business_phone: Default merchant WhatsApp number (digits with country code).
    :param algorithm: ``md5`` or ``sha256`` signatures.
    :param timeout: Connect and read timeout of each request, in seconds.
    :param verify: Verify TLS certificates (or a CA bundle path).
    :param max_requests_per_second: Cap on all requests of this hook, retries included.
    :param adaptive_rate: When NXCloud throttles, slow all requests of this hook to just under the
        rate it accepts (under the cap, if any); False: only the cap and per-request backoff.
    :param max_retries: Retries of transient failures (code -1/9001, HTTP 429/5xx, network).
    :param retry_wait: Initial and maximum backoff between retries, in seconds.
    """

    conn_name_attr = "nxcloud_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = HOOK_NAME

    def __init__(
        self,
        *,
        nxcloud_conn_id: str = default_conn_name,
        business_phone: str | None = None,
        algorithm: Algorithm | None = None,
        timeout: float | None = None,
        verify: bool | str | None = None,
        max_requests_per_second: float | None = None,
        max_retries: int | None = None,
        retry_wait: tuple[float, float] = (0.5, 30.0),
        adaptive_rate: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.nxcloud_conn_id = nxcloud_conn_id
        self._overrides: dict[str, Any] = {
            "business_phone": business_phone,
            "algorithm": algorithm,
            "timeout": timeout,
            "verify": verify,
            "max_requests_per_second": max_requests_per_second,
            "max_retries": max_retries,
            "adaptive_rate": adaptive_rate,
        }
        self.retry_wait = retry_wait
        self._clock_offset_ms = 0
        self._pool_size = 10
        self._transport_lock = threading.Lock()
        self._cancelled = threading.Event()
        self._requests_sent = 0
        self._requests_lock = threading.Lock()

    # -- connection form (Airflow 2.x; 3.2+ reads the same definition from provider metadata) --

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, IntegerField, PasswordField, StringField
        from wtforms.validators import Optional

        widgets: dict[str, Any] = {}
        for name, spec in CONN_FIELDS.items():
            types = spec["schema"]["type"]
            label = lazy_gettext(spec["label"])
            if "boolean" in types:
                widgets[name] = BooleanField(label, default=spec["schema"].get("default"))
            elif "integer" in types:
                widgets[name] = IntegerField(label, validators=[Optional()])
            elif spec["schema"].get("format") == "password":
                widgets[name] = PasswordField(label, widget=BS3PasswordFieldWidget())
            else:
                widgets[name] = StringField(label, widget=BS3TextFieldWidget())
        return widgets

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {key.replace("-", "_"): value for key, value in UI_FIELD_BEHAVIOUR.items()}

    # -- settings --

    @cached_property
    def settings(self) -> NxCloudSettings:
        """The resolved connection (one lookup per hook). Raises NxCloudConfigError when unusable."""
        return resolve_settings(
            self.get_connection(self.nxcloud_conn_id), self.nxcloud_conn_id, self._overrides
        )

    @property
    def business_phone(self) -> str | None:
        return self.settings.business_phone

    # -- transport --

    def ready_for_threads(self, workers: int) -> None:
        """
        Size the connection pool for ``workers`` threads and build everything lazy now, in the
        caller's thread, so that the threads sharing this hook never race to build it.
        """
        with self._transport_lock:
            if workers > self._pool_size:
                self._pool_size = workers
                self.__dict__.pop("_transport", None)
        _ = self._transport, self._rate_limiter, self._adaptive_limiter, self._retrying

    @cached_property
    def _transport(self) -> PooledTransport:
        settings = self.settings
        return PooledTransport(
            base_url=settings.base_url,
            proxies=settings.proxies,
            verify=settings.verify,
            timeout=settings.timeout,
            pool_size=self._pool_size,
        )

    def get_conn(self) -> requests.Session:
        """
        A ``requests.Session`` with this hook's proxies, TLS settings and pool, for calls of your
        own; the hook's own requests go straight to that pool (``transport.py``).
        """
        return self._transport.session

    @cached_property
    def _rate_limiter(self) -> RateLimiter | None:
        rate = self.settings.max_requests_per_second
        return RateLimiter(rate) if rate else None

    @cached_property
    def _adaptive_limiter(self) -> AdaptiveRateLimiter | None:
        # One per hook: every thread of a batch, and every retry, shares what it learnt.
        if not self.settings.adaptive_rate:
            return None
        return AdaptiveRateLimiter(ceiling=self.settings.max_requests_per_second, logger=self.log)

    @property
    def rate_limit_found(self) -> float | None:
        """The rate (requests/s) NXCloud last throttled this hook at; None if it never did."""
        limiter = self.__dict__.get("_adaptive_limiter")
        return limiter.limit_found if limiter is not None else None

    @cached_property
    def _retrying(self) -> Retrying:
        return transient_retrying(
            max_retries=self.settings.max_retries,
            wait=self.retry_wait,
            cancelled=self._cancelled,
            log=self.log,
        )

    @property
    def requests_sent(self) -> int:
        """HTTP requests this hook has sent: every attempt, retries and re-signed ones included."""
        return self._requests_sent

    def cancel(self) -> None:
        """
        Give up retrying, from any thread (the task is being killed): backoff waits end now and
        no request is sent again. Requests in flight finish within their timeout.
        """
        self._cancelled.set()
        limiter = self.__dict__.get("_adaptive_limiter")  # only one that exists has waiters
        if limiter is not None:
            limiter.cancel()

    # -- requests --

    def call(
        self,
        path: str,
        *,
        action: str,
        biz_type: str,
        body: Mapping[str, Any],
        retry_codes: frozenset[int] = TRANSIENT_CODES,
    ) -> NxCloudResponse:
        """
        Send one signed POST to an NXCloud endpoint and return its answer when ``code`` is 0.

        Transient failures (``retry_codes``, HTTP 429/5xx, network errors, bodies that are not
        NXCloud JSON) are retried with backoff, each attempt freshly signed. On code 1004 the
        clock offset is learnt from the server's ``Date`` and the request re-signed once.

        :raises NxCloudAuthError: codes 1000-1099.
        :raises NxCloudTransientError: still failing after ``max_retries``.
        :raises NxCloudApiError: any other non-zero code, or an unusable HTTP answer.
        """
        payload = serialise_body(body)
        response = self._retrying(self._attempt, path, action, biz_type, payload, retry_codes)
        if response.code == CLOCK_SKEW_CODE and self._learn_clock_offset(response):
            response = self._retrying(self._attempt, path, action, biz_type, payload, retry_codes)
        if response.code == 0:
            return response
        hint = describe_code(response.code)
        message = f"{response.message or 'no message'} ({hint})"
        error_type = NxCloudAuthError if is_auth_code(response.code) else NxCloudApiError
        raise error_type(message, code=response.code, http_status=response.http_status)

    def _attempt(
        self, path: str, action: str, biz_type: str, payload: bytes, retry_codes: frozenset[int]
    ) -> NxCloudResponse:
        settings = self.settings
        adaptive = self._adaptive_limiter
        sent_at = adaptive.acquire() if adaptive is not None else 0.0
        if self._rate_limiter is not None:
            self._rate_limiter.acquire()
        if self._cancelled.is_set():  # also when it happened while waiting for a turn
            raise NxCloudTransientError("not sent: the hook was cancelled (task killed)")
        headers = signed_headers(
            access_key=settings.access_key,
            action=action,
            biz_type=biz_type,
            ts_ms=int(time.time() * 1000) + self._clock_offset_ms,
            body=payload,
            access_secret=settings.access_secret,
            algorithm=settings.algorithm,
        )
        with self._requests_lock:  # += is not atomic across threads
            self._requests_sent += 1
        answer = self._transport.post(path, headers, payload)
        if adaptive is not None:
            adaptive.record(sent_at, throttled=is_throttle(answer))
        return interpret(answer, retry_codes)

    def _learn_clock_offset(self, response: NxCloudResponse) -> bool:
        """Adopt the server's clock after a 1004; False when it cannot be learnt."""
        if response.server_time is None:
            return False
        offset_ms = int((response.server_time - time.time()) * 1000)
        self._clock_offset_ms = offset_ms
        self.log.warning(
            "NXCloud rejected our timestamp (1004): the worker's clock is %.1f s %s the server's. "
            "Signing with the server's time from now on; fix the worker clock (NTP).",
            abs(offset_ms) / 1000,
            "behind" if offset_ms > 0 else "ahead of",
        )
        return True

    # -- endpoints --

    def mark_message_as_read(
        self,
        message_id: str,
        business_phone: str | None = None,
        *,
        retry_codes: frozenset[int] = TRANSIENT_CODES,
    ) -> NxCloudResponse:
        """Mark one inbound WhatsApp message (and the earlier ones of its conversation) as read."""
        phone = business_phone or self.settings.business_phone
        if not phone:
            raise NxCloudConfigError(
                "business_phone is not set: pass it or set the connection's business_phone extra"
            )
        return self.call(
            MARK_READ_PATH,
            action=READ_ACTION,
            biz_type=WHATSAPP_BIZ_TYPE,
            body=mark_read_body(phone, message_id),
            retry_codes=retry_codes,
        )

    def mark_messages_as_read(
        self,
        messages: Any,
        *,
        business_phone: str | None = None,
        max_workers: int = 8,
        code_actions: CodeActions | None = None,
        max_message_age_days: float | None = 30,
        one_request_per_conversation: bool = True,
    ) -> BatchResult:
        """
        Mark many messages concurrently under this hook's rate cap; never raises for a message.

        ``messages`` takes everything the operator's ``message_ids`` does (ids, records, webhook
        payloads). Invalid input raises NxCloudConfigError before any request is sent. Records
        with ``from`` and ``timestamp`` are sent one request per conversation unless
        ``one_request_per_conversation`` is False.
        """
        options = BatchOptions.checked(
            max_workers=max_workers,
            code_actions=code_actions,
            max_message_age_days=max_message_age_days,
            one_request_per_conversation=one_request_per_conversation,
        )
        return mark_messages(self, messages, business_phone=business_phone, options=options)

    def test_connection(self) -> tuple[bool, str]:
        """Check the credentials with a signed request for a message id that cannot exist."""
        try:
            settings = self.settings
            self.mark_message_as_read(TEST_MESSAGE_ID, settings.business_phone or "10000000000")
        except NxCloudAuthError as error:
            return False, f"NXCloud refused the credentials: {error}"
        except NxCloudConfigError as error:
            return False, str(error)
        except NxCloudTransientError as error:
            return False, f"Could not get an answer from NXCloud: {error}"
        except NxCloudApiError as error:
            if error.code is None:
                return False, str(error)
            # Authentication is checked first, so any other code means the keys were accepted.
            return True, f"Credentials accepted (test request answered code {error.code})"
        except Exception as error:  # the UI shows this text; never a traceback
            return False, f"{type(error).__name__}: {error}"
        return True, "Credentials accepted"
