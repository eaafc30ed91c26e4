"""NXCloud's wire facts: paths, headers, bodies, response codes, and what each code means.

``classify`` is the one place that decides what an answer's code means (for a 9099, by Meta's code
that ``read_meta_error`` finds); the client retries by it and the batch turns it into a message's
status. Shared with the sandbox, which speaks the same wire.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

DEFAULT_BASE_URL = "https://api2.nxcloud.com"

MARK_READ_PATH = "/api/wa/markMessageAsRead"
# Marks a message read and shows the customer "typing..." (until the reply, or 25 s); its answer
# means what a mark-read answer means.
TYPING_INDICATOR_PATH = "/api/wa/typingIndicator"
WHATSAPP_BIZ_TYPE = "2"
READ_ACTION = "read"
# NXCloud refuses a ``ts`` further than this from its clock (code 1004).
TS_WINDOW_MS = 60_000


def mark_read_body(business_phone: str, message_id: str) -> dict[str, str]:
    """The body of ``markMessageAsRead``: all four fields are required."""
    return {
        "business_phone": business_phone,
        "messaging_product": "whatsapp",
        "message_id": message_id,
        "status": "read",
    }


def typing_indicator_body(appkey: str, business_phone: str, message_id: str) -> dict[str, Any]:
    """The body of ``typingIndicator``: the mark-read body plus the application's ``appkey`` and
    ``typing_indicator`` (``text`` is the only type); every field is required."""
    return {
        "appkey": appkey,
        **mark_read_body(business_phone, message_id),
        "typing_indicator": {"type": "text"},
    }


# Failures on NXCloud's side that a later identical request can pass.
TRANSIENT_CODES: frozenset[int] = frozenset({-1, 9001, 9007})
# Timestamp expired: the client's clock is off; the client corrects it once from the server's Date.
CLOCK_SKEW_CODE = 1004
# The WhatsApp application does not exist or is unavailable (for ``typingIndicator``, its appkey).
UNKNOWN_APPLICATION_CODE = 9003
# The account is misconfigured: every further request would fail the same way.
CONFIGURATION_CODES: frozenset[int] = frozenset({UNKNOWN_APPLICATION_CODE, 9004, 9005})
# One business number is misconfigured: every further request for it would fail the same way,
# while the account's other numbers are fine.
NUMBER_CODES: frozenset[int] = frozenset({9002, 9006})

# What to do about each code NXCloud documents; shown in errors and task logs.
CODE_HINTS: dict[int, str] = {
    -1: "NXCloud reported a failure on its side; it is retried with backoff",
    1001: "a required header is missing: this is a bug in the client, please report it",
    1002: "bizType, action or body was rejected: this is a bug in the client, please report it",
    1003: "invalid signature: check the connection's Access Secret (password)",
    1004: "timestamp expired: the worker's clock is more than 60 s off; fix it (NTP)",
    1005: "insufficient permissions: check the Access Key (login) and that the account has WhatsApp",
    9000: "parameter exception: the message id or another field is invalid",
    9001: "NXCloud system business error; it is retried with backoff",
    9002: "business_phone is not a WhatsApp number of this account: fix the business_phone",
    9003: "the WhatsApp application does not exist or is unavailable: check the account",
    9004: "the WhatsApp application has no pricing for this country: ask NXCloud's business staff",
    9005: "insufficient balance on the NXCloud account",
    9006: "the WhatsApp number is not bound to any application: bind it in NXCloud",
    9007: "NXCloud's downstream endpoint failed; it is retried with backoff",
    9099: "WhatsApp (Meta) rejected the request; see Meta's error",
}

# NXCloud passes WhatsApp's (Meta's) errors through as code 9099, Meta's error in
# ``data.error`` (its ``code``, an int or a numeric string, and ``message``, which Meta writes as
# "(#<code>) <text>"); a gateway or an older NXCloud may put that text in the top-level message.
META_PASSTHROUGH_CODE = 9099
_META_CODE = re.compile(r"\(#(\d+)\)")
# How a Meta code is keyed where NXCloud codes are (``code_actions``, the sandbox's fault kinds).
META_KEY_PREFIX = "meta:"

# What a throttle slows down: every request of the client (the app's or the WhatsApp Business
# Account's limit), those of one business number (its throughput), or none but the one retried
# (the pair limit of one business and one customer: slowing the other customers would not help).
ThrottleScope = Literal["account", "business_phone", "customer"]
META_THROTTLES: dict[int, tuple[ThrottleScope, str]] = {
    4: ("account", "WhatsApp's application request limit; retried with backoff, slowing every request"),
    80007: (
        "account",
        "the WhatsApp Business Account's rate limit; retried with backoff, slowing every request",
    ),
    130429: (
        "business_phone",
        "the business number's throughput limit; retried with backoff, slowing that number's requests",
    ),
    131056: ("customer", "the pair rate limit of this business and customer; retried with backoff"),
}
# Meta's errors that pass on a later try without being "too fast": retried with backoff, and the
# rate is left alone (slowing down would not help a service that is down).
META_TRANSIENT: dict[int, str] = {
    2: "WhatsApp's API is down or overloaded for a moment; retried with backoff",
    131000: "WhatsApp reported an unknown error on its side; retried with backoff",
    131016: "a WhatsApp service is unavailable for a moment; retried with backoff",
    133004: "the business number's Cloud API service is unavailable for a moment; retried with backoff",
    131057: "the WhatsApp Business Account is in maintenance mode (e.g. a throughput upgrade); "
    "retried with backoff",
}
# Meta's errors that are this message's own: what they tell the user.
META_HINTS: dict[int, str] = {
    131009: "WhatsApp does not know this message id: deleted, outgoing, or not this number's",
    100: "WhatsApp rejected a parameter of the request, most likely the message id",
}

# What an answer means for the message it was sent for:
# - marked: read;
# - transient: a later identical request can pass; retried, and ``retryable`` if it never does;
# - abort: the same for every message (credentials, account, an unusable endpoint): stop sending;
# - number: the same for every message of this business number (not a WhatsApp number of the
#   account, not bound to an application): stop sending for that number only;
# - message: this message failed for itself (an unknown id, a bad parameter).
Meaning = Literal["marked", "transient", "abort", "number", "message"]


@dataclass(frozen=True, slots=True)
class CodeMeaning:
    meaning: Meaning
    hint: str
    # Set when the answer says "too fast": what the adaptive rate limit should slow down.
    throttle: ThrottleScope | None = None


@dataclass(frozen=True, slots=True)
class MetaError:
    """Meta's error in a 9099 answer, as far as it could be read."""

    code: int | None
    # Meta's own text, "(#131009) Parameter value is not valid", and its readable cause.
    message: str = ""
    details: str = ""
    # What Meta's and NXCloud's support ask for: logged, never put in results or XCom.
    fbtrace_id: str | None = None

    def __str__(self) -> str:
        label = f"Meta {self.code}" if self.code is not None else "Meta error"
        text = self.message or "no message"
        details = f"; details: {self.details}" if self.details and self.details not in text else ""
        return f"{label}: {text}{details}"


def parse_code(value: Any) -> int | None:
    """A code as an int; gateways (and NXCloud's field table) send it as a string ("0", "130429")."""
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


def meta_code(message: str) -> int | None:
    """Meta's error code in a passed-through message such as ``(#130429) Rate limit hit``."""
    found = _META_CODE.search(message)
    return int(found.group(1)) if found else None


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def read_meta_error(code: int, message: str, data: Any) -> MetaError | None:
    """
    Meta's error in an answer with NXCloud's ``code``, ``message`` and ``data``; None unless 9099.

    ``data.error.code`` decides; the ``(#<code>)`` of ``data.error.message``, then of the
    top-level message, stands in when it is missing or not a number.
    """
    if code != META_PASSTHROUGH_CODE:
        return None
    error = data.get("error") if isinstance(data, Mapping) else None
    error = error if isinstance(error, Mapping) else {}
    text = _text(error.get("message"))
    error_data = error.get("error_data")
    details = _text(error_data.get("details")) if isinstance(error_data, Mapping) else ""
    found = parse_code(error.get("code"))
    if found is None:
        found = meta_code(text)
    if found is None:
        found = meta_code(message)
    if not text and found is not None and meta_code(message) == found:
        text = message.strip()  # the old shape: Meta's text in the top-level message
    if found is None and not text and not details:
        return None  # nothing of Meta's: the top-level message is all there is
    return MetaError(found, text, details, _text(error.get("fbtrace_id")) or None)


def meta_key(code: int) -> str:
    """How a Meta code is keyed beside NXCloud's codes: ``"meta:131009"``."""
    return f"{META_KEY_PREFIX}{code}"


Setting = TypeVar("Setting")
# A key of a per-code table: an NXCloud code (9099), or a Meta code as ``meta_key`` spells it.
CodeKey = int | str


def setting_for(table: Mapping[CodeKey, Setting], code: int | None, meta: int | None) -> Setting | None:
    """A per-code setting (``code_actions``, retry overrides): a Meta key wins over its 9099 key."""
    found = table.get(meta_key(meta)) if meta is not None and code == META_PASSTHROUGH_CODE else None
    if found is None and code is not None:
        found = table.get(code)
    return found


def is_auth_code(code: int | None) -> bool:
    return code is not None and 1000 <= code <= 1099


def classify(code: int | None, message: str = "", *, meta: int | None = None) -> CodeMeaning:
    """
    What NXCloud's ``code`` (None: no usable answer) means; the only judge. For a 9099, Meta's
    code decides: ``meta`` (``read_meta_error``), else the ``(#<code>)`` in ``message``.
    """
    if code is None:
        # A redirect, a 404, TLS: the endpoint is wrong, for every message alike.
        return CodeMeaning("abort", "no NXCloud code")
    hint = CODE_HINTS.get(code) or (
        "authentication problem: check the access key, secret and clock"
        if is_auth_code(code)
        else "unknown NXCloud code"
    )
    if code == 0:
        return CodeMeaning("marked", "request succeeded")
    if code == META_PASSTHROUGH_CODE:
        meta = meta if meta is not None else meta_code(message)
        if throttle := META_THROTTLES.get(meta or 0):
            scope, throttle_hint = throttle
            return CodeMeaning("transient", throttle_hint, throttle=scope)
        if transient_hint := META_TRANSIENT.get(meta or 0):
            return CodeMeaning("transient", transient_hint)
        return CodeMeaning("message", META_HINTS.get(meta or 0, hint))
    if code in TRANSIENT_CODES:
        return CodeMeaning("transient", hint)
    if is_auth_code(code) or code in CONFIGURATION_CODES:
        return CodeMeaning("abort", hint)
    if code in NUMBER_CODES:
        return CodeMeaning("number", hint)
    return CodeMeaning("message", hint)


def explain(code: int, message: str, meta: MetaError | None = None) -> str:
    """An answer that is not success, in words for results and logs: what was said and what to do."""
    meaning = classify(code, message, meta=meta.code if meta is not None else None)
    said = str(meta) if meta is not None else message or "no message"
    return f"{said} ({meaning.hint})"
