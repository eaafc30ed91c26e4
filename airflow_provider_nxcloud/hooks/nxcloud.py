"""NxCloudHook: an Airflow connection of type ``nxcloud`` -> signed, retried HTTP calls to NXCloud."""

from __future__ import annotations

import email.utils
import ipaddress
import json
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_when_event_set,
)
from tenacity.wait import wait_exponential, wait_random

from airflow_provider_nxcloud.exceptions import (
    TRANSIENT_CODES,
    NxCloudApiError,
    NxCloudAuthError,
    NxCloudConfigError,
    NxCloudTransientError,
    describe_code,
    is_auth_code,
)
from airflow_provider_nxcloud.get_provider_info import CONN_FIELDS, DEFAULT_BASE_URL, UI_FIELD_BEHAVIOUR
from airflow_provider_nxcloud.ratelimit import RateLimiter
from airflow_provider_nxcloud.signing import ALGORITHMS, Algorithm, compute_sign, serialise_body
from airflow_provider_nxcloud.transport import HttpAnswer, PooledTransport
from airflow_provider_nxcloud.version_compat import BaseHook

if TYPE_CHECKING:
    from collections.abc import Mapping

    import requests

    from airflow_provider_nxcloud.batch import BatchResult, CodeActions

MARK_READ_PATH = "/api/wa/markMessageAsRead"
WHATSAPP_BIZ_TYPE = "2"
CLOCK_SKEW_CODE = 1004
MAX_RETRY_AFTER_SECONDS = 60.0
TEST_MESSAGE_ID = "airflow-connection-test-not-a-real-message"
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


@dataclass(frozen=True)
class NxCloudResponse:
    """NXCloud's JSON answer to one request."""

    code: int
    message: str
    data: Any
    http_status: int
    server_time: float | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class NxCloudSettings:
    """The connection resolved once: hook arguments over connection extras over defaults."""

    base_url: str
    access_key: str
    access_secret: str = field(repr=False)
    business_phone: str | None
    algorithm: Algorithm
    timeout: float
    verify: bool | str
    max_requests_per_second: float | None
    max_retries: int
    proxies: dict[str, str]


def _is_loopback(hostname: str) -> bool:
    if hostname.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _extra(extras: Mapping[str, Any], name: str) -> Any:
    # Airflow 2.x forms stored extras as ``extra__nxcloud__<name>``; 3.x stores them bare.
    value = extras.get(name, extras.get(f"extra__nxcloud__{name}"))
    return None if value == "" else value


def _as_bool(value: Any, *, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    # "y": what Airflow 2's form sends for a ticked WTForms checkbox when Test is pressed.
    if text in {"true", "1", "yes", "y", "on"}:
        return True
    if text in {"false", "0", "no", "n", "off"}:
        return False
    raise NxCloudConfigError(f"{what} must be true or false, got {value!r}")


def _as_number(value: Any, *, what: str, integer: bool = False, minimum: float = 0) -> float:
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        kind = "a whole number" if integer else "a number"
        raise NxCloudConfigError(f"{what} must be {kind}, got {value!r}") from None
    if isinstance(value, bool) or number < minimum or number != number:
        raise NxCloudConfigError(f"{what} must be at least {minimum}, got {value!r}")
    return number


def _parse_code(value: Any) -> int | None:
    # Some gateways send the code as a string ("0"); anything not integral is not a code.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _snippet(raw: bytes, limit: int = 120) -> str:
    text = raw[:limit].decode("utf-8", errors="replace")
    return " ".join(text.split()) + ("..." if len(raw) > limit else "")


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):  # neither seconds nor an HTTP date: ignore it
            return None
        if parsed is None:
            return None
        seconds = parsed.timestamp() - time.time()
    # NaN (float("nan")) compares false both ways: treat it as no wait.
    return max(0.0, min(seconds, MAX_RETRY_AFTER_SECONDS)) if seconds == seconds else 0.0


def _server_time(date_header: str | None) -> float | None:
    if not date_header:
        return None
    try:
        return email.utils.parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


class _WaitHonouringRetryAfter:
    """Exponential backoff with jitter, but never sooner than the server's ``Retry-After``."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._backoff = wait_exponential(multiplier=initial, max=maximum) + wait_random(0, initial)

    def __call__(self, retry_state: RetryCallState) -> float:
        wait = self._backoff(retry_state)
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, NxCloudTransientError) and error.retry_after is not None:
            wait = max(wait, error.retry_after)
        return wait


class NxCloudHook(BaseHook):
    """
    Signed access to NXCloud's HTTP API through an Airflow connection of type ``nxcloud``.

    Connection: login = access key, password = access secret, host = API base URL (empty:
    ``https://api2.nxcloud.com``). Extras: ``business_phone``, ``algorithm``, ``timeout``,
    ``verify``, ``max_requests_per_second``, ``max_retries``, ``proxies``. Arguments given here
    override the extras. Nothing is looked up until the first request.

    :param nxcloud_conn_id: The Airflow connection id.
    :param business_phone: Default merchant WhatsApp number (digits with country code).
    :param algorithm: ``md5`` or ``sha256`` signatures.
    :param timeout: Connect and read timeout of each request, in seconds.
    :param verify: Verify TLS certificates (or a CA bundle path).
    :param max_requests_per_second: Cap on all requests of this hook, retries included.
    :param max_retries: Retries of transient failures (code -1/9001, HTTP 429/5xx, network).
    :param retry_wait: Initial and maximum backoff between retries, in seconds.
    """

    conn_name_attr = "nxcloud_conn_id"
    default_conn_name = "nxcloud_default"
    conn_type = "nxcloud"
    hook_name = "NXCloud"

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
        }
        self.retry_wait = retry_wait
        self._clock_offset_ms = 0
        self._pool_size = 10
        self._transport_lock = threading.Lock()
        self._cancelled = threading.Event()

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
        conn = self.get_connection(self.nxcloud_conn_id)
        where = f"nxcloud connection {self.nxcloud_conn_id!r}"
        extras = conn.extra_dejson

        def pick(name: str) -> Any:
            override = self._overrides.get(name)
            return override if override is not None else _extra(extras, name)

        if not conn.login:
            raise NxCloudConfigError(f"{where} has no Access Key: set the connection's login")
        if not conn.password:
            raise NxCloudConfigError(f"{where} has no Access Secret: set the connection's password")
        if not str(conn.login).isprintable() or any(c.isspace() for c in str(conn.login)):
            # It travels as a header: a newline in it would be a header injection.
            raise NxCloudConfigError(f"{where}: the Access Key contains spaces or control characters")

        algorithm = str(pick("algorithm") or "md5").lower()
        if algorithm not in ALGORITHMS:
            raise NxCloudConfigError(f"{where}: algorithm must be 'md5' or 'sha256', got {algorithm!r}")
        verify_raw = pick("verify")
        verify: bool | str = True
        if isinstance(verify_raw, str) and verify_raw.strip().lower() not in {
            "true",
            "false",
            "1",
            "0",
            "yes",
            "no",
            "y",
            "n",
            "on",
            "off",
        }:
            verify = verify_raw  # a CA bundle path
        elif verify_raw is not None:
            verify = _as_bool(verify_raw, what=f"{where}: verify")
        rate = pick("max_requests_per_second")
        proxies = _extra(extras, "proxies") or {}
        if not isinstance(proxies, dict):
            raise NxCloudConfigError(
                f'{where}: proxies must be a mapping like {{"https": "http://proxy:3128"}}'
            )
        phone = pick("business_phone")
        return NxCloudSettings(
            base_url=self._base_url(conn.host, conn.schema, conn.port, where),
            access_key=str(conn.login),
            access_secret=str(conn.password),
            business_phone=str(phone).strip() if phone is not None else None,
            algorithm=algorithm,  # type: ignore[arg-type]
            timeout=_as_number(pick("timeout") or 30, what=f"{where}: timeout", minimum=0.001),
            verify=verify,
            max_requests_per_second=(
                _as_number(rate, what=f"{where}: max_requests_per_second", minimum=0.001)
                if rate is not None
                else None
            ),
            max_retries=int(
                _as_number(
                    5 if pick("max_retries") is None else pick("max_retries"),
                    what=f"{where}: max_retries",
                    integer=True,
                )
            ),
            proxies={str(k): str(v) for k, v in proxies.items()},
        )

    @staticmethod
    def _base_url(host: str | None, schema: str | None, port: int | None, where: str) -> str:
        host = (host or "").strip()
        if not host:
            return DEFAULT_BASE_URL
        if "://" not in host:
            # URI-form connections cannot carry a scheme in the host; HttpHook's convention:
            # ``schema`` holds it (nxcloud://key:secret@127.0.0.1:8080/http).
            host = f"{schema or 'https'}://{host}"
        parts = urlsplit(host)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise NxCloudConfigError(f"{where}: API base URL {host!r} must be https://host[:port]")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise NxCloudConfigError(
                f"{where}: plain http:// to {parts.hostname} would expose requests; use https://"
                " (http is allowed only for a loopback sandbox)"
            )
        netloc = parts.netloc
        if port and parts.port is None:
            netloc = f"{netloc}:{port}"
        return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"

    @property
    def business_phone(self) -> str | None:
        return self.settings.business_phone

    # -- transport --

    def configure_concurrency(self, workers: int) -> None:
        """Size the connection pool for ``workers`` threads; call before sharing the hook."""
        with self._transport_lock:
            if workers > self._pool_size:
                self._pool_size = workers
                self.__dict__.pop("_transport", None)

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
        """The pooled session used for every request of this hook."""
        return self._transport.session

    @cached_property
    def _rate_limiter(self) -> RateLimiter | None:
        rate = self.settings.max_requests_per_second
        return RateLimiter(rate) if rate else None

    @cached_property
    def _retrying(self) -> Retrying:
        initial, maximum = self.retry_wait
        return Retrying(
            retry=retry_if_exception_type(NxCloudTransientError),
            stop=stop_after_attempt(self.settings.max_retries + 1) | stop_when_event_set(self._cancelled),
            sleep=self._sleep_unless_cancelled,
            wait=_WaitHonouringRetryAfter(initial, maximum),
            before_sleep=self._log_retry,
            reraise=True,
        )

    def _log_retry(self, retry_state: RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        self.log.info(
            "NXCloud attempt %d failed (%s); retrying in %.1f s", retry_state.attempt_number, error, wait
        )

    def _sleep_unless_cancelled(self, seconds: float) -> None:
        self._cancelled.wait(seconds)  # a backoff wait ends the moment the hook is cancelled

    def cancel(self) -> None:
        """
        Give up retrying, from any thread (the task is being killed): backoff waits end now and
        no request is sent again. Requests in flight finish within their timeout.
        """
        self._cancelled.set()

    def prepare(self) -> None:
        # Everything lazy is built here, in the caller's thread, before workers share the hook.
        _ = self._transport, self._rate_limiter, self._retrying

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
        self.prepare()
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
        if self._cancelled.is_set():
            raise NxCloudTransientError("not sent: the hook was cancelled (task killed)")
        if self._rate_limiter is not None:
            self._rate_limiter.acquire()
        headers = {
            "accessKey": settings.access_key,
            "action": action,
            "bizType": biz_type,
            "ts": str(int(time.time() * 1000) + self._clock_offset_ms),
        }
        headers["sign"] = compute_sign(headers, payload, settings.access_secret, settings.algorithm)
        if settings.algorithm != "md5":
            headers["algorithm"] = settings.algorithm
        headers["Content-Type"] = "application/json"
        answer = self._transport.post(path, headers, payload)
        return self._interpret(answer, retry_codes)

    @staticmethod
    def _interpret(answer: HttpAnswer, retry_codes: frozenset[int]) -> NxCloudResponse:
        status, raw = answer.status, answer.body
        if 300 <= status < 400:
            raise NxCloudApiError(
                f"redirected to {answer.headers.get('Location', '?')}, not followed: set the API base URL"
                " to the final address",
                http_status=status,
            )
        retry_after = _retry_after_seconds(answer.headers.get("Retry-After"))
        if status == 429 or status >= 500:
            raise NxCloudTransientError(
                f"HTTP {status}: {_snippet(raw)}", http_status=status, retry_after=retry_after
            )
        try:
            document = json.loads(raw)
            code = _parse_code(document.get("code")) if isinstance(document, dict) else None
        except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
            code = None
        if code is None:
            error_type = NxCloudTransientError if status < 400 else NxCloudApiError
            raise error_type(
                f"HTTP {status} without an NXCloud JSON code: {_snippet(raw)}", http_status=status
            )
        message = str(document.get("message") or "")
        if code in retry_codes:
            raise NxCloudTransientError(f"{message} ({describe_code(code)})", code=code, http_status=status)
        return NxCloudResponse(
            code=code,
            message=message,
            data=document.get("data"),
            http_status=status,
            server_time=_server_time(answer.headers.get("Date")),
        )

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
            action="read",
            biz_type=WHATSAPP_BIZ_TYPE,
            body={
                "business_phone": phone,
                "messaging_product": "whatsapp",
                "message_id": message_id,
                "status": "read",
            },
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
    ) -> BatchResult:
        """
        Mark many messages concurrently under this hook's rate cap; never raises for a message.

        ``messages`` takes everything the operator's ``message_ids`` does (ids, records, webhook
        payloads). Invalid input raises NxCloudConfigError before any request is sent.
        """
        from airflow_provider_nxcloud.batch import run_batch
        from airflow_provider_nxcloud.messages import normalise_messages

        needs_default = business_phone is None
        batch = normalise_messages(
            messages,
            default_business_phone=business_phone,
            fallback_business_phone=(lambda: self.business_phone) if needs_default else None,
            max_age_days=max_message_age_days,
        )
        return run_batch(self, batch, max_workers=max_workers, code_actions=code_actions)

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
