"""A fake ``MarkReadClient`` for the batch's pure-logic tests, and helpers to build records.

The fake answers from a table of codes per message id and counts requests as the client does (a
transient code costs ``1 + RETRIES`` requests, like the client's retries).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_nxcloud.batch.engine import mark_messages
from airflow_provider_nxcloud.batch.options import BatchOptions
from airflow_provider_nxcloud.client.api import classify, is_auth_code
from airflow_provider_nxcloud.client.errors import (
    NxCloudApiError,
    NxCloudAuthError,
    NxCloudTransientError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_provider_nxcloud.batch.results import BatchResult

PHONE = "8613800000000"
OTHER_PHONE = "8613900000001"
NOW = int(time.time())
DAY = 86_400
RETRIES = 2
NO_OVERRIDES: dict[int, bool] = {}


class FakeClient:
    """A ``MarkReadClient`` that answers from ``codes`` (default 0) and records what was sent."""

    business_phone = PHONE
    rate_limit_found = None  # never throttled

    def __init__(self, codes: dict[str, int] | None = None, *, appkey: str | None = "app-1") -> None:
        self.codes = codes or {}
        self.appkey = appkey
        self.sent: list[str] = []
        # The ids sent with the typing indicator, in order.
        self.typing: list[str] = []
        self.sent_keys: list[tuple[str, str | None]] = []
        self._requests = 0
        self._lock = threading.Lock()

    @property
    def requests_sent(self) -> int:
        return self._requests

    def ready_for_threads(self, workers: int) -> None:
        pass

    def cancel(self) -> None:
        pass

    def mark_message_as_read(
        self,
        message_id: str,
        business_phone: str | None = None,
        *,
        typing_indicator: bool = False,
        retry_overrides: Mapping[int, bool] = NO_OVERRIDES,
    ) -> object:
        code = self.codes.get(message_id, 0)
        transient = retry_overrides.get(code, classify(code).meaning == "transient")
        with self._lock:
            self.sent.append(message_id)
            if typing_indicator:
                self.typing.append(message_id)
            self.sent_keys.append((message_id, business_phone))
            self._requests += 1 + RETRIES if transient else 1
        if code == 0:
            return None
        if transient:
            raise NxCloudTransientError("still failing after retries", code=code)
        if is_auth_code(code):
            raise NxCloudAuthError("invalid signature", code=code)
        raise NxCloudApiError(f"answer {code} for {message_id}", code=code)


def record(message_id: str, customer: str | None = "15550001", age: int = 0, **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"id": message_id, "business_phone": PHONE, "timestamp": NOW - age, **extra}
    if customer is not None:
        fields["from"] = customer
    return fields


def run(messages: Any, client: FakeClient, **options: Any) -> BatchResult:
    return mark_messages(client, messages, options=BatchOptions(**options))


def marked(result: BatchResult) -> list[str]:
    return [m.message_id for m in result.marked]


def failed(result: BatchResult) -> dict[str, tuple[int | None, str]]:
    return {o.message.message_id: (o.code, o.status) for o in result.failed}
