"""The sandbox's NXCloud: what it checks, in NXCloud's order, what it remembers, and its faults.

Checks: required headers (1001), bizType/action (1002), the signature over the exact received
bytes (1003), ``ts`` within 60 s of its own (skewable) clock (1004), unknown access key (1005),
body fields (9000), known business phones (9002) and, when told which exist, known message ids
(9099 with Meta's 131009 otherwise). Seeded with inbound messages, it reads them as WhatsApp
does (``read_ids``): marking a one-to-one message reads the strictly earlier ones of its
conversation, a group message is read only by marking it. Meta's errors come back as NXCloud
documents them (9099, Meta's error in ``data.error``), or in the older text shape on request
(``Faults.meta_shape``). Pure state behind one lock, the account rate limit
included; ``sandbox.py`` serves it over HTTP. A ``typingIndicator`` request is checked as a
mark-read one is, plus its body's ``appkey`` (9003), marks alike, and is kept in ``typing_shown``.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from airflow_provider_nxcloud.client.api import (
    MARK_READ_PATH,
    META_KEY_PREFIX,
    META_PASSTHROUGH_CODE,
    READ_ACTION,
    TS_WINDOW_MS,
    TYPING_INDICATOR_PATH,
    WHATSAPP_BIZ_TYPE,
    mark_read_body,
    typing_indicator_body,
)
from airflow_provider_nxcloud.client.signing import ALGORITHMS, SIGNED_HEADERS, compute_sign

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from email.message import Message as HeaderMessage
DEFAULT_ACCESS_KEY = "sandbox-access-key"
DEFAULT_ACCESS_SECRET = "sandbox-access-secret"
DEFAULT_BUSINESS_PHONE = "8613800000000"
# The WhatsApp application's appkey that ``typingIndicator`` bodies must carry.
DEFAULT_APPKEY = "sandbox-appkey"
# What a WhatsApp message id can look like (wamid.<base64>); anything else is a 9000.
_WELL_FORMED_ID = re.compile(r"^[A-Za-z0-9._=+/:-]{1,512}$")
# Meta's error codes, with the title Meta writes in its ``message`` as ``(#<code>) <title>`` and
# the readable cause it puts in ``error_data.details``. The throttles (4, 80007, 130429, 131056)
# and the transient errors (2, 131000, 131016, 133004, 131057) pass on retry; 131009 (an unknown
# or deleted id) and 100 do not.
META_ERRORS: dict[int, str] = {
    4: "Application request limit reached",
    80007: "Rate limit issues",
    130429: "Rate limit hit",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
    2: "Service temporarily unavailable",
    131000: "Something went wrong",
    131016: "Service unavailable",
    133004: "Server temporarily unavailable",
    131057: "Account in maintenance mode",
    131009: "Parameter value is not valid",
    100: "Invalid parameter",
}
META_DETAILS: dict[int, str] = {
    4: "The app has reached its API call rate limit",
    80007: "The WhatsApp Business Account has reached its rate limit",
    130429: "Cloud API message throughput has been reached",
    131056: "Too many messages sent from the sender phone number to the same recipient phone number",
    2: "Temporary due to downtime or due to being overloaded",
    131000: "Message failed to send due to an unknown error",
    131016: "A service is temporarily unavailable",
    133004: "The business phone number's Cloud API service is temporarily unavailable",
    131057: "Business Account is in maintenance mode, e.g. for a throughput upgrade",
    131009: "One or more parameter values are invalid",
    100: "Invalid parameter",
}
META_PREFIX = META_KEY_PREFIX
# A Meta error as a fault kind ("meta:130429"): answered only to a request NXCloud accepts, since
# NXCloud checks a request before WhatsApp sees it.
META_FAULT_KINDS = tuple(f"{META_PREFIX}{code}" for code in META_ERRORS)
META_THROUGHPUT = f"{META_PREFIX}130429"
META_UNKNOWN_ID = 131009
FAULT_KINDS = ("-1", "9001", "500", "503", "429", "drop", "html", "slow", *META_FAULT_KINDS)
# The ``fault`` of a request refused by the account's rate limit (``AccountLimit``), not injected.
RATE_LIMITED = "rate_limit"
ThrottleAnswer = Literal["http429", "meta"]
# How a 9099 is written: "documented", as NXCloud documents it (top-level message "WhatsApp
# error", Meta's error in ``data.error``), or "text", the older shape (Meta's "(#<code>) <title>"
# as the top-level message, ``data`` null).
MetaShape = Literal["documented", "text"]
# How ``data.error.code`` is written in the documented shape: NXCloud's field table says String,
# its example shows an integer.
MetaCodeAs = Literal["int", "str"]
# WhatsApp refused a request NXCloud accepted: Meta's code, and details (None: Meta's usual ones).
MetaRefusal = tuple[int, str | None]


def meta_answer(
    meta: int,
    details: str | None = None,
    *,
    shape: MetaShape = "documented",
    code_as: MetaCodeAs = "int",
    fbtrace_id: str | None = None,
) -> dict[str, Any]:
    """The JSON NXCloud answers when WhatsApp refuses a request with Meta's error ``meta``."""
    text = f"(#{meta}) {META_ERRORS[meta]}"
    if shape == "text":
        said = f"{text}: {details}" if details else text
        return {"code": META_PASSTHROUGH_CODE, "message": said, "data": None}
    error = {
        "code": str(meta) if code_as == "str" else meta,
        "message": text,
        "type": "OAuthException",
        "fbtrace_id": fbtrace_id or f"A{uuid.uuid4().hex[:22]}",
        "error_data": {"messaging_product": "whatsapp", "details": details or META_DETAILS[meta]},
    }
    return {"code": META_PASSTHROUGH_CODE, "message": "WhatsApp error", "data": {"error": error}}


def meta_error(kind: str) -> MetaRefusal:
    """WhatsApp's refusal for a fault kind such as ``"meta:130429"``, with Meta's own details."""
    return int(kind.removeprefix(META_PREFIX)), None


@dataclass
class Faults:
    """What the sandbox does wrong, on purpose. Rates are per-request probabilities."""

    latency: float = 0.0
    rates: dict[str, float] = field(default_factory=dict)
    retry_after: float = 1.0
    slow_seconds: float = 5.0
    # Per message id, the answer it always gets once NXCloud's checks pass: an NXCloud code, or a
    # Meta error kind ({"wamid.gone": "meta:131009"} is a deleted message, forever).
    codes: dict[str, int | str] = field(default_factory=dict)
    # Per message id, the faults its first requests get, in order (then it is answered normally):
    # {"wamid.1": ["-1", "503"]} fails twice, then succeeds; {"wamid.2": ["meta:130429"]} is
    # throttled by WhatsApp once. A Meta kind used on a request NXCloud refuses still uses its step.
    scripts: dict[str, list[str]] = field(default_factory=dict)
    seed: int | None = None
    # How every 9099 is written (``MetaShape``), and ``data.error.code`` in it (``MetaCodeAs``).
    meta_shape: MetaShape = "documented"
    meta_code_as: MetaCodeAs = "int"
    # Over HTTPS (``NxCloudSandbox(tls=True)``), the share of TLS handshakes ended after the
    # ClientHello with a FIN and no close_notify, as a load balancer recycling a connection does.
    handshake_eof: float = 0.0
    # Close each connection after its answer: every request then needs a new (TLS) handshake.
    close_connections: bool = False

    def __post_init__(self) -> None:
        if self.meta_shape not in get_args(MetaShape):
            raise ValueError(f"meta_shape is documented or text, not {self.meta_shape!r}")
        if self.meta_code_as not in get_args(MetaCodeAs):
            raise ValueError(f"meta_code_as is int or str, not {self.meta_code_as!r}")
        self.scripts = {message_id: list(kinds) for message_id, kinds in self.scripts.items()}
        used = set(self.rates) | {k for ks in self.scripts.values() for k in ks}
        unknown = used - set(FAULT_KINDS)
        unknown |= {code for code in self.codes.values() if isinstance(code, str)} - set(META_FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; use {', '.join(FAULT_KINDS)}")
        if sum(self.rates.values()) > 1:
            raise ValueError("fault rates add up to more than 1")
        if not 0 <= self.handshake_eof <= 1:
            raise ValueError(f"handshake_eof is a share between 0 and 1, got {self.handshake_eof!r}")


@dataclass(frozen=True)
class InboundMessage:
    """
    A message a customer sent to a business number: what a seeded sandbox knows exists.

    ``customer`` is the sender's phone (``from``) or, for a username user whose phone WhatsApp
    withholds, their business-scoped user id (``from_user_id``, e.g. ``BR.1502576394655843``).
    ``timestamp`` is in whole Unix seconds; a message without one is read only when marked
    itself. ``group_id`` makes it a group message, read only when marked itself.
    """

    message_id: str
    business_phone: str
    customer: str
    timestamp: int | None = None
    group_id: str | None = None

    @property
    def conversation(self) -> tuple[str, str] | None:
        """Its one-to-one conversation (business phone, customer); None for a group message."""
        return None if self.group_id is not None else (self.business_phone, self.customer)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> InboundMessage:
        """
        From a webhook-shaped record: ``id``, ``business_phone``, ``from`` or ``from_user_id``,
        and optionally ``timestamp`` (Unix seconds) and ``group_id``.
        """
        try:
            customer = record.get("from") or record["from_user_id"]
            timestamp = record.get("timestamp")
            group_id = record.get("group_id")
            return cls(
                str(record["id"]),
                str(record["business_phone"]),
                str(customer),
                int(timestamp) if timestamp is not None else None,
                str(group_id) if group_id else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(
                "an inbound message needs id, business_phone, and from or from_user_id (timestamp in "
                f"Unix seconds and group_id optional): {record!r} ({error})"
            ) from None


@dataclass
class AccountLimit:
    """
    The account's rate limit, which NXCloud does not tell the client: a token bucket of
    ``per_second`` with ``burst`` saved. ``answer`` is how a request beyond it is refused:
    ``"http429"``, HTTP 429 with ``Retry-After`` only when ``retry_after`` is set; ``"meta"``, as
    WhatsApp's throughput limit comes through NXCloud: HTTP 200 with code 9099 and
    ``(#130429) Rate limit hit`` (after NXCloud's own checks, as those come first).
    ``business_phone`` limits that number's requests only (WhatsApp's throughput limit is per
    number); the others pass unlimited. None: every request of the account counts.
    """

    per_second: float
    burst: float = 5.0
    retry_after: float | None = None
    answer: ThrottleAnswer = "http429"
    business_phone: str | None = None

    def __post_init__(self) -> None:
        if not self.per_second > 0 or not self.burst >= 1:
            raise ValueError("a rate limit needs per_second > 0 and burst >= 1")
        if self.answer not in get_args(ThrottleAnswer):
            choices = " or ".join(get_args(ThrottleAnswer))
            raise ValueError(f"a rate limit answers {choices}, not {self.answer!r}")


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
        appkey: str = DEFAULT_APPKEY,
    ) -> None:
        self.access_key = access_key
        self.access_secret = access_secret
        self.appkey = appkey
        self.business_phones = set(business_phones)
        self.message_ids = set(message_ids) if message_ids is not None else None
        self.clock_skew_ms = clock_skew_ms
        self.faults = faults or Faults()
        self.record_requests = record_requests
        self.lock = threading.Lock()
        self.random = random.Random(self.faults.seed)
        self.mark_counts: dict[tuple[str, str], int] = {}
        # (phone, id) of each message a ``typingIndicator`` request marked, in order: "typing..." shown.
        self.typing_shown: list[tuple[str, str]] = []
        self.requests: list[RequestRecord] = []
        self.faults_injected: dict[str, int] = {}
        self.handshakes_ended = 0
        # Seeded messages by (phone, id).
        self.inbound: dict[tuple[str, str], InboundMessage] = {}
        # Per one-to-one conversation (phone, customer), the newest timestamp marked read: every
        # message of it strictly earlier is read. Not one of the same second: with whole seconds
        # WhatsApp has no order between them.
        self.read_before: dict[tuple[str, str], int] = {}
        self.add_inbound(inbound)
        self.account_bucket: AccountBucket | None = None
        self.set_rate_limit(rate_limit)

    def add_inbound(self, messages: Iterable[InboundMessage]) -> None:
        """Seed inbound messages (their business phones become known); seeding one twice is a no-op."""
        with self.lock:
            for message in messages:
                key = (message.business_phone, message.message_id)
                if key not in self.inbound:
                    self.inbound[key] = message
                    self.business_phones.add(message.business_phone)

    def is_unknown(self, business_phone: str, message_id: str) -> bool:
        """True when the sandbox was told which messages exist and this is none of them (9099)."""
        if self.message_ids is None and not self.inbound:
            return False
        in_ids = self.message_ids is not None and message_id in self.message_ids
        return not in_ids and (business_phone, message_id) not in self.inbound

    def read_ids(self, business_phone: str | None = None) -> set[str]:
        """
        What customers see as read: every id marked, and in each one-to-one conversation the
        messages strictly earlier (whole seconds) than one marked. Group messages, and messages
        without a timestamp, only when marked themselves.
        """
        with self.lock:
            read = {m for (p, m) in self.mark_counts if business_phone in (None, p)}
            for (phone, message_id), message in self.inbound.items():
                if business_phone not in (None, phone) or message.timestamp is None:
                    continue
                conversation = message.conversation
                newest_read = self.read_before.get(conversation) if conversation is not None else None
                if newest_read is not None and message.timestamp < newest_read:
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

    def throttle_answer(self) -> ThrottleAnswer:
        """How a request beyond the account limit is refused (``AccountLimit.answer``)."""
        bucket = self.account_bucket
        return bucket.limit.answer if bucket is not None else "http429"

    def admit(self, business_phone: str | None) -> bool:
        """Whether the limit lets this request (for ``business_phone``) through now; it counts against it."""
        with self.lock:
            bucket = self.account_bucket
            if bucket is None or bucket.limit.business_phone not in (None, business_phone):
                return True
            return bucket.admit(time.monotonic())

    def meta_answer(self, refusal: MetaRefusal) -> dict[str, Any]:
        """The 9099 NXCloud answers for WhatsApp's refusal, in the shape ``faults`` asks for."""
        meta, details = refusal
        return meta_answer(meta, details, shape=self.faults.meta_shape, code_as=self.faults.meta_code_as)

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_skew_ms

    def scripted_fault(self, message_id: str | None) -> str | None:
        script = self.faults.scripts.get(message_id) if message_id is not None else None
        if not script:
            return None
        with self.lock:
            return script.pop(0) if script else None

    def end_handshake(self) -> bool:
        """Whether to end this TLS handshake early (``Faults.handshake_eof``); counted."""
        if not self.faults.handshake_eof:
            return False
        with self.lock:
            ended = self.random.random() < self.faults.handshake_eof
            self.handshakes_ended += ended
        return ended

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

    def verify(
        self, headers: HeaderMessage, raw: bytes, path: str = MARK_READ_PATH
    ) -> tuple[int, str, dict[str, Any] | None, MetaRefusal | None]:
        """NXCloud's checks of a request to ``path``, in order; returns (code, message, parsed body,
        WhatsApp's refusal)."""
        required = (*SIGNED_HEADERS, "sign")
        missing = [name for name in required if not headers.get(name)]
        if missing:
            return 1001, f"Missing common header: {', '.join(missing)}", None, None
        if headers["accessKey"] != self.access_key:
            return 1005, "Insufficient permissions: unknown accessKey", None, None
        try:
            ts = int(str(headers["ts"]))
        except ValueError:
            return 1004, "Timestamp invalid", None, None
        if abs(self.now_ms() - ts) > TS_WINDOW_MS:
            return 1004, "Timestamp expired", None, None
        algorithm = (headers.get("algorithm") or "md5").lower()
        if algorithm not in ALGORITHMS:
            return 1002, f"Unsupported algorithm {algorithm}", None, None
        signed = {name: str(headers[name]) for name in SIGNED_HEADERS}
        expected = compute_sign(signed, raw or None, self.access_secret, algorithm)  # type: ignore[arg-type]
        if headers["sign"] != expected:
            return 1003, "Invalid signature", None, None
        if headers["bizType"] != WHATSAPP_BIZ_TYPE or headers["action"] != READ_ACTION:
            return 1002, "Invalid bizType or action", None, None
        try:
            body = json.loads(raw)
        except ValueError:
            return 9000, "Parameter exception: body is not JSON", None, None
        if not isinstance(body, dict):
            return 9000, "Parameter exception: body is not an object", None, None
        phone, message_id = str(body.get("business_phone")), str(body.get("message_id"))
        expected_body: dict[str, Any] = (
            typing_indicator_body(str(body.get("appkey")), phone, message_id)
            if path == TYPING_INDICATOR_PATH
            else mark_read_body(phone, message_id)
        )
        for name, value in expected_body.items():
            given = body.get(name)
            if not given or (isinstance(value, str) and not isinstance(given, str)):
                return 9000, f"Parameter exception: {name} is required", body, None
            if given != value:
                return 9000, f"Parameter exception: {name} must be {value!r}", body, None
        if body["business_phone"] not in self.business_phones:
            return 9002, "Merchant phone number error", body, None
        if path == TYPING_INDICATOR_PATH and body["appkey"] != self.appkey:
            return 9003, "Application does not exist or is unavailable: appkey", body, None
        message_id = body["message_id"]
        if not _WELL_FORMED_ID.match(message_id):
            return 9000, "Parameter exception: message_id", body, None
        if self.is_unknown(body["business_phone"], message_id):
            refusal = (META_UNKNOWN_ID, f"message_id {message_id} not found")
            return META_PASSTHROUGH_CODE, "WhatsApp error", body, refusal
        if message_id in self.faults.codes:
            injected = self.faults.codes[message_id]
            if isinstance(injected, str):
                return META_PASSTHROUGH_CODE, "WhatsApp error", body, meta_error(injected)
            return injected, f"Injected code {injected}", body, None
        return 0, "Request succeeded", body, None

    def mark(self, business_phone: str, message_id: str, *, typing: bool = False) -> None:
        with self.lock:
            key = (business_phone, message_id)
            self.mark_counts[key] = self.mark_counts.get(key, 0) + 1
            if typing:
                self.typing_shown.append(key)
            message = self.inbound.get(key)
            conversation = message.conversation if message is not None else None
            if message is not None and conversation is not None and message.timestamp is not None:
                newest = self.read_before.get(conversation, message.timestamp)
                self.read_before[conversation] = max(newest, message.timestamp)

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
                "typing_shown": [[p, m] for p, m in self.typing_shown],
                "faults_injected": dict(self.faults_injected),
                "request_count": len(self.requests),
                "requests": [asdict(r) for r in self.requests[since:]],
            }
