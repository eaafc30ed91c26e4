"""The sandbox's NXCloud: what it checks, in NXCloud's order, what it remembers, and its faults.

Checks: required headers (1001), bizType/action (1002), the signature over the exact received
bytes (1003), ``ts`` within 60 s of its own (skewable) clock (1004), unknown access key (1005),
body fields (9000), known business phones (9002) and, when told which exist, known message ids
(9099 otherwise). Seeded with inbound messages, it knows conversations as WhatsApp does: marking
one message read marks the earlier ones of its conversation (``read_ids``). Pure state behind
one lock; ``sandbox.py`` serves it over HTTP. Over 300 lines with the account rate limit,
which lives here because it is decided under the same lock as the rest.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_nxcloud.client.api import READ_ACTION, TS_WINDOW_MS, WHATSAPP_BIZ_TYPE, mark_read_body
from airflow_provider_nxcloud.client.signing import ALGORITHMS, SIGNED_HEADERS, compute_sign

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from email.message import Message as HeaderMessage
DEFAULT_ACCESS_KEY = "sandbox-access-key"
DEFAULT_ACCESS_SECRET = "sandbox-access-secret"
DEFAULT_BUSINESS_PHONE = "8613800000000"
# What a WhatsApp message id can look like (wamid.<base64>); anything else is a 9000.
_WELL_FORMED_ID = re.compile(r"^[A-Za-z0-9._=+/:-]{1,512}$")
FAULT_KINDS = ("-1", "9001", "500", "503", "429", "drop", "html", "slow")
# The ``fault`` of a request refused by the account's rate limit (``AccountLimit``), not injected.
RATE_LIMITED = "rate_limit"


@dataclass
class Faults:
    """What the sandbox does wrong, on purpose. Rates are per-request probabilities."""

    latency: float = 0.0
    rates: dict[str, float] = field(default_factory=dict)
    retry_after: float = 1.0
    slow_seconds: float = 5.0
    codes: dict[str, int] = field(default_factory=dict)
    # Per message id, the faults its first requests get, in order (then it is answered normally):
    # {"wamid.1": ["-1", "503"]} fails twice, then succeeds.
    scripts: dict[str, list[str]] = field(default_factory=dict)
    seed: int | None = None

    def __post_init__(self) -> None:
        self.scripts = {message_id: list(kinds) for message_id, kinds in self.scripts.items()}
        unknown = (set(self.rates) | {k for ks in self.scripts.values() for k in ks}) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; use {', '.join(FAULT_KINDS)}")
        if sum(self.rates.values()) > 1:
            raise ValueError("fault rates add up to more than 1")


@dataclass(frozen=True)
class InboundMessage:
    """A message a customer sent to a business number: what a seeded sandbox knows exists."""

    message_id: str
    business_phone: str
    customer: str
    timestamp: int

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> InboundMessage:
        """From a webhook-shaped record: ``id``, ``business_phone``, ``from``, ``timestamp``."""
        try:
            return cls(
                str(record["id"]),
                str(record["business_phone"]),
                str(record["from"]),
                int(record["timestamp"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"an inbound message needs id, business_phone, from and timestamp (Unix seconds): "
                f"{record!r} ({error})"
            ) from None


@dataclass
class AccountLimit:
    """
    The account's rate limit, which NXCloud does not tell the client: a token bucket of
    ``per_second`` with ``burst`` saved; beyond it HTTP 429, with ``Retry-After`` only when set.
    """

    per_second: float
    burst: float = 5.0
    retry_after: float | None = None

    def __post_init__(self) -> None:
        if not self.per_second > 0 or not self.burst >= 1:
            raise ValueError("a rate limit needs per_second > 0 and burst >= 1")


class AccountBucket:
    """The limit's token bucket, starting full; changing the limit keeps the tokens it has."""

    def __init__(self, limit: AccountLimit, now: float) -> None:
        self.limit = limit
        self._tokens = limit.burst
        self._stamp = now

    def change(self, limit: AccountLimit, now: float) -> None:
        self._refill(now)
        self.limit = limit
        self._tokens = min(self._tokens, limit.burst)

    def admit(self, now: float) -> bool:
        self._refill(now)
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _refill(self, now: float) -> None:
        self._tokens = min(self.limit.burst, self._tokens + (now - self._stamp) * self.limit.per_second)
        self._stamp = now


@dataclass
class RequestRecord:
    """One request as the sandbox saw it (headers and body as received)."""

    received_at: float
    path: str
    headers: dict[str, str]
    body: str
    code: int | None
    fault: str | None
    message_id: str | None
    business_phone: str | None
    client_port: int = 0


class SandboxState:
    """Everything the sandbox knows, behind one lock; shared by the handler threads."""

    def __init__(
        self,
        *,
        access_key: str,
        access_secret: str,
        business_phones: Iterable[str],
        message_ids: Iterable[str] | None,
        clock_skew_ms: int,
        faults: Faults | None,
        record_requests: bool,
        inbound: Iterable[InboundMessage] = (),
        rate_limit: AccountLimit | None = None,
    ) -> None:
        self.access_key = access_key
        self.access_secret = access_secret
        self.business_phones = set(business_phones)
        self.message_ids = set(message_ids) if message_ids is not None else None
        self.clock_skew_ms = clock_skew_ms
        self.faults = faults or Faults()
        self.record_requests = record_requests
        self.lock = threading.Lock()
        self.random = random.Random(self.faults.seed)
        self.mark_counts: dict[tuple[str, str], int] = {}
        self.requests: list[RequestRecord] = []
        self.faults_injected: dict[str, int] = {}
        # Seeded messages by (phone, id), each with its place in its conversation: (timestamp,
        # seeding order), so that of two messages of one second the one seeded later is newer.
        self.inbound: dict[tuple[str, str], tuple[InboundMessage, tuple[int, int]]] = {}
        # Per conversation (phone, customer), the place of the newest message marked read.
        self.read_up_to: dict[tuple[str, str], tuple[int, int]] = {}
        self.add_inbound(inbound)
        self.account_bucket: AccountBucket | None = None
        self.set_rate_limit(rate_limit)

    def add_inbound(self, messages: Iterable[InboundMessage]) -> None:
        """Seed inbound messages (their business phones become known); seeding one twice is a no-op."""
        with self.lock:
            for message in messages:
                key = (message.business_phone, message.message_id)
                if key not in self.inbound:
                    self.inbound[key] = (message, (message.timestamp, len(self.inbound)))
                    self.business_phones.add(message.business_phone)

    def is_unknown(self, business_phone: str, message_id: str) -> bool:
        """True when the sandbox was told which messages exist and this is none of them (9099)."""
        if self.message_ids is None and not self.inbound:
            return False
        in_ids = self.message_ids is not None and message_id in self.message_ids
        return not in_ids and (business_phone, message_id) not in self.inbound

    def read_ids(self, business_phone: str | None = None) -> set[str]:
        """What customers see as read: every id marked, and the earlier ones of its conversation."""
        with self.lock:
            read = {m for (p, m) in self.mark_counts if business_phone in (None, p)}
            for (phone, message_id), (message, place) in self.inbound.items():
                newest_read = self.read_up_to.get((phone, message.customer))
                if newest_read is not None and place <= newest_read and business_phone in (None, phone):
                    read.add(message_id)
            return read

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults
        self.random = random.Random(faults.seed)

    def set_rate_limit(self, limit: AccountLimit | None) -> None:
        """Set, change (mid-run: the tokens saved carry over) or remove (None) the account limit."""
        with self.lock:
            if limit is None:
                self.account_bucket = None
            elif self.account_bucket is None:
                self.account_bucket = AccountBucket(limit, time.monotonic())
            else:
                self.account_bucket.change(limit, time.monotonic())

    def admit(self) -> bool:
        """Whether the account limit lets this request through now (it counts against it)."""
        with self.lock:
            return self.account_bucket is None or self.account_bucket.admit(time.monotonic())

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_skew_ms

    def scripted_fault(self, message_id: str | None) -> str | None:
        script = self.faults.scripts.get(message_id) if message_id is not None else None
        if not script:
            return None
        with self.lock:
            return script.pop(0) if script else None

    def draw_fault(self) -> str | None:
        rates = self.faults.rates
        if not rates:
            return None
        with self.lock:
            roll = self.random.random()
        for kind in FAULT_KINDS:
            roll -= rates.get(kind, 0.0)
            if roll < 0:
                return kind
        return None

    def verify(self, headers: HeaderMessage, raw: bytes) -> tuple[int, str, dict[str, Any] | None]:
        """NXCloud's checks, in order; returns (code, message, parsed body)."""
        required = (*SIGNED_HEADERS, "sign")
        missing = [name for name in required if not headers.get(name)]
        if missing:
            return 1001, f"Missing common header: {', '.join(missing)}", None
        if headers["accessKey"] != self.access_key:
            return 1005, "Insufficient permissions: unknown accessKey", None
        try:
            ts = int(str(headers["ts"]))
        except ValueError:
            return 1004, "Timestamp invalid", None
        if abs(self.now_ms() - ts) > TS_WINDOW_MS:
            return 1004, "Timestamp expired", None
        algorithm = (headers.get("algorithm") or "md5").lower()
        if algorithm not in ALGORITHMS:
            return 1002, f"Unsupported algorithm {algorithm}", None
        signed = {name: str(headers[name]) for name in SIGNED_HEADERS}
        expected = compute_sign(signed, raw or None, self.access_secret, algorithm)  # type: ignore[arg-type]
        if headers["sign"] != expected:
            return 1003, "Invalid signature", None
        if headers["bizType"] != WHATSAPP_BIZ_TYPE or headers["action"] != READ_ACTION:
            return 1002, "Invalid bizType or action", None
        try:
            body = json.loads(raw)
        except ValueError:
            return 9000, "Parameter exception: body is not JSON", None
        if not isinstance(body, dict):
            return 9000, "Parameter exception: body is not an object", None
        expected_body = mark_read_body(str(body.get("business_phone")), str(body.get("message_id")))
        for name, value in expected_body.items():
            if not isinstance(body.get(name), str) or not body[name]:
                return 9000, f"Parameter exception: {name} is required", body
            if body[name] != value:
                return 9000, f"Parameter exception: {name} must be {value!r}", body
        if body["business_phone"] not in self.business_phones:
            return 9002, "Merchant phone number error", body
        message_id = body["message_id"]
        if not _WELL_FORMED_ID.match(message_id):
            return 9000, "Parameter exception: message_id", body
        if self.is_unknown(body["business_phone"], message_id):
            return 9099, "(#100) Invalid parameter: message_id not found", body
        if message_id in self.faults.codes:
            code = self.faults.codes[message_id]
            return code, f"Injected code {code}", body
        return 0, "Request succeeded", body

    def mark(self, business_phone: str, message_id: str) -> None:
        with self.lock:
            key = (business_phone, message_id)
            self.mark_counts[key] = self.mark_counts.get(key, 0) + 1
            seeded = self.inbound.get(key)
            if seeded is not None:
                message, place = seeded
                conversation = (business_phone, message.customer)
                self.read_up_to[conversation] = max(place, self.read_up_to.get(conversation, place))

    def record(self, record: RequestRecord) -> None:
        with self.lock:
            if record.fault:
                self.faults_injected[record.fault] = self.faults_injected.get(record.fault, 0) + 1
            if self.record_requests:
                self.requests.append(record)

    def snapshot(self, since: int = 0) -> dict[str, Any]:
        with self.lock:
            marked: dict[str, list[str]] = {}
            for phone, message_id in self.mark_counts:
                marked.setdefault(phone, []).append(message_id)
            return {
                "marked": marked,
                "mark_counts": [[p, m, n] for (p, m), n in self.mark_counts.items()],
                "faults_injected": dict(self.faults_injected),
                "request_count": len(self.requests),
                "requests": [asdict(r) for r in self.requests[since:]],
            }
