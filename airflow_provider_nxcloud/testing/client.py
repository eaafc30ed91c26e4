"""Read and steer a sandbox running in another process (a demo, a DAG run, a benchmark)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from airflow_provider_nxcloud.testing.state import ThrottleAnswer


class SandboxClient:
    """The control API of ``python -m airflow_provider_nxcloud.testing`` at ``url``."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _request(self, path: str, document: dict[str, Any] | None = None) -> Any:
        data = json.dumps(document).encode() if document is not None else None
        request = urllib.request.Request(self.url + path, data=data, method="POST" if data else "GET")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.loads(response.read())

    def state(self, since: int = 0) -> dict[str, Any]:
        """Marks, fault counts and the requests seen from index ``since`` on."""
        return dict(self._request(f"/_sandbox/state?since={since}"))

    def marked_ids(self, business_phone: str | None = None) -> set[str]:
        marked: dict[str, list[str]] = self.state(since=1 << 62)["marked"]
        return {m for phone, ids in marked.items() if business_phone in (None, phone) for m in ids}

    def typing_shown(self, business_phone: str | None = None) -> list[str]:
        """The ids a ``typingIndicator`` request marked, once per request (see ``NxCloudSandbox``)."""
        shown: list[list[str]] = self.state(since=1 << 62)["typing_shown"]
        return [m for phone, m in shown if business_phone in (None, phone)]

    def read_ids(self, business_phone: str | None = None) -> set[str]:
        """What customers see as read: the ids marked and the earlier ones of their conversations."""
        query = f"?{urllib.parse.urlencode({'business_phone': business_phone})}" if business_phone else ""
        return set(self._request(f"/_sandbox/read{query}")["read"])

    def add_inbound(self, messages: Iterable[Mapping[str, Any]]) -> None:
        """
        Seed messages customers sent: records with ``id``, ``business_phone``, ``from`` or
        ``from_user_id``, and optionally ``timestamp`` and ``group_id`` (see ``NxCloudSandbox``).
        """
        self._request("/_sandbox/inbound", {"messages": [dict(m) for m in messages]})

    def configure(
        self,
        *,
        faults: dict[str, Any] | None = None,
        clock_skew_ms: int | None = None,
        message_ids: list[str] | None = None,
    ) -> None:
        """
        Change the sandbox's settings: ``faults`` as ``Faults``' fields (``rates``, ``scripts``,
        ``codes``, Meta's errors as ``"meta:<code>"``, ``meta_shape``, ``meta_code_as``), the
        clock skew, the ids that exist.
        """
        document: dict[str, Any] = {}
        if faults is not None:
            document["faults"] = faults
        if clock_skew_ms is not None:
            document["clock_skew_ms"] = clock_skew_ms
        if message_ids is not None:
            document["message_ids"] = message_ids
        self._request("/_sandbox/config", document)

    def set_rate_limit(
        self,
        per_second: float | None,
        *,
        burst: float = 5.0,
        retry_after: float | None = None,
        answer: ThrottleAnswer = "http429",
        business_phone: str | None = None,
    ) -> None:
        """
        Set, change (during a run) or remove (None) the account's rate limit; ``answer`` as in
        ``AccountLimit``: ``"http429"`` or ``"meta"`` (9099 with Meta's 130429, "Rate limit hit");
        ``business_phone``: limit that number's requests only.
        """
        limit = {
            "per_second": per_second,
            "burst": burst,
            "retry_after": retry_after,
            "answer": answer,
            "business_phone": business_phone,
        }
        self._request("/_sandbox/config", {"rate_limit": limit if per_second is not None else None})

    def reset(self) -> None:
        self._request("/_sandbox/reset", {})
