"""Pure: one HTTP answer from NXCloud -> an ``NxCloudResponse`` or a typed error; header parsing."""

from __future__ import annotations

import email.utils
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_nxcloud.client.api import classify
from airflow_provider_nxcloud.client.errors import NxCloudApiError, NxCloudTransientError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_provider_nxcloud.client.transport import HttpAnswer

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


def parse_code(value: Any) -> int | None:
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


def interpret(answer: HttpAnswer, retry_overrides: Mapping[int, bool]) -> NxCloudResponse:
    """The answer as a response, or the error to raise: transient ones are what the client retries.

    ``retry_overrides`` says, for a code, whether to retry it regardless of what ``classify`` says.
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
    meaning = classify(code, message)
    if retry_overrides.get(code, meaning.meaning == "transient"):
        raise NxCloudTransientError(
            f"{message} ({meaning.hint})",
            code=code,
            http_status=status,
            throttle=meaning.throttle or ("account" if asked_to_slow else None),
        )
    return NxCloudResponse(
        code=code,
        message=message,
        data=document.get("data"),
        http_status=status,
        server_time=server_time(answer.headers.get("Date")),
    )
