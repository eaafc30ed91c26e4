"""Pure: one HTTP answer from NXCloud -> an ``NxCloudResponse`` or a typed error; header parsing."""

from __future__ import annotations

import email.utils
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_nxcloud.client.api import (
    MetaError,
    classify,
    explain,
    parse_code,
    read_meta_error,
    setting_for,
)
from airflow_provider_nxcloud.client.errors import NxCloudApiError, NxCloudTransientError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_provider_nxcloud.client.api import CodeKey
    from airflow_provider_nxcloud.client.transport import HttpAnswer

__all__ = ["NxCloudResponse", "interpret", "parse_code", "retry_after_seconds", "server_time"]

MAX_RETRY_AFTER_SECONDS = 60.0
# What tells the adaptive limiter to slow down, besides a Retry-After on any answer. Not -1, 9001
# or 5xx: they say the request failed, not that it came too fast, and counting them as throttles
# cut the rate for nothing (benchmarks/adaptive.py, "random faults" row).
THROTTLE_STATUSES: frozenset[int] = frozenset({429})
# Request Timeout and Too Early: a client error status that a later identical request can pass.
RETRY_STATUSES: frozenset[int] = frozenset({408, 425})


@dataclass(frozen=True)
class NxCloudResponse:
    """NXCloud's JSON answer to one request."""

    code: int
    message: str
    data: Any
    http_status: int
    server_time: float | None = field(default=None, repr=False, compare=False)
    # Meta's error, for a 9099 (``api.read_meta_error``).
    meta: MetaError | None = field(default=None, compare=False)


def _snippet(raw: bytes, limit: int = 120) -> str:
    text = raw[:limit].decode("utf-8", errors="replace")
    return " ".join(text.split()) + ("..." if len(raw) > limit else "")


def retry_after_seconds(value: str | None) -> float | None:
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


def server_time(date_header: str | None) -> float | None:
    if not date_header:
        return None
    try:
        return email.utils.parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def is_throttle(answer: HttpAnswer) -> bool:
    """NXCloud (or a gateway before it) asking us to slow down."""
    return answer.status in THROTTLE_STATUSES or "Retry-After" in answer.headers


def interpret(answer: HttpAnswer, retry_overrides: Mapping[CodeKey, bool]) -> NxCloudResponse:
    """The answer as a response, or the error to raise: transient ones are what the client retries.

    ``retry_overrides`` says, for a code (or a Meta code, ``"meta:131009"``), whether to retry it
    regardless of what ``classify`` says.
    """
    status, raw = answer.status, answer.body
    if 300 <= status < 400:
        raise NxCloudApiError(
            f"redirected to {answer.headers.get('Location', '?')}, not followed: set the API base URL"
            " to the final address",
            http_status=status,
        )
    retry_after = retry_after_seconds(answer.headers.get("Retry-After"))
    asked_to_slow = is_throttle(answer)
    if status == 429 or status >= 500:
        raise NxCloudTransientError(
            f"HTTP {status}: {_snippet(raw)}",
            http_status=status,
            retry_after=retry_after,
            throttle="account" if asked_to_slow else None,
        )
    try:
        document = json.loads(raw)
        code = parse_code(document.get("code")) if isinstance(document, dict) else None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        code = None
    if code is None:
        # 408 and 425 ask for the same request again; other 4xx pages mean a wrong URL.
        error_type = NxCloudTransientError if status < 400 or status in RETRY_STATUSES else NxCloudApiError
        raise error_type(f"HTTP {status} without an NXCloud JSON code: {_snippet(raw)}", http_status=status)
    message = str(document.get("message") or "")
    meta = read_meta_error(code, message, document.get("data"))
    meta_code = meta.code if meta is not None else None
    meaning = classify(code, message, meta=meta_code)
    retry = setting_for(retry_overrides, code, meta_code)
    if meaning.meaning == "transient" if retry is None else retry:
        raise NxCloudTransientError(
            explain(code, message, meta),
            code=code,
            http_status=status,
            throttle=meaning.throttle or ("account" if asked_to_slow else None),
            meta_code=meta_code,
            fbtrace_id=meta.fbtrace_id if meta is not None else None,
        )
    return NxCloudResponse(
        code=code,
        message=message,
        data=document.get("data"),
        http_status=status,
        server_time=server_time(answer.headers.get("Date")),
        meta=meta,
    )
