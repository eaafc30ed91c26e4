"""Typed errors carrying NXCloud's response codes. Their text never holds the access secret."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_nxcloud.client.api import ThrottleScope


class NxCloudError(Exception):
    """Base class of every error this provider raises."""


class NxCloudConfigError(NxCloudError, ValueError):
    """The connection or the arguments are wrong; retrying cannot help."""


class NxCloudApiError(NxCloudError):
    """
    NXCloud answered with a non-zero ``code`` (or no usable answer, ``code`` None). For a 9099,
    ``meta_code`` is Meta's code and ``fbtrace_id`` Meta's trace id (for support; not in the text).
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        meta_code: int | None = None,
        fbtrace_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status
        self.meta_code = meta_code
        self.fbtrace_id = fbtrace_id

    def __str__(self) -> str:
        label = f"NXCloud code {self.code}" if self.code is not None else "NXCloud request failed"
        status = f" (HTTP {self.http_status})" if self.http_status is not None else ""
        return f"{label}{status}: {self.message}"


class NxCloudAuthError(NxCloudApiError):
    """Codes 1000-1099: credentials, signature or clock. Never fixed by sending the same request."""


class NxCloudTransientError(NxCloudApiError):
    """Worth another try later: code -1/9001, Meta's throttles and transient errors, HTTP 429/5xx,
    non-JSON, the network."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
        throttle: ThrottleScope | None = None,
        meta_code: int | None = None,
        fbtrace_id: str | None = None,
    ) -> None:
        super().__init__(
            message, code=code, http_status=http_status, meta_code=meta_code, fbtrace_id=fbtrace_id
        )
        self.retry_after = retry_after
        # The answer said "too fast" (HTTP 429, Retry-After, Meta's rate-limit codes): what to slow.
        self.throttle = throttle


class NxCloudRetryBudgetError(NxCloudTransientError):
    """Not retried: most recent requests failed transiently (``budget.py``); NXCloud looks down."""
