"""NXCloud's wire facts: paths, headers, bodies, response codes, and what each code means.

``classify`` is the one place that decides what an answer's code means; the client retries by it
and the batch turns it into a message's status. Shared with the sandbox, which speaks the same wire.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

DEFAULT_BASE_URL = "https://api2.nxcloud.com"

MARK_READ_PATH = "/api/wa/markMessageAsRead"
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


# Failures on NXCloud's side that a later identical request can pass.
TRANSIENT_CODES: frozenset[int] = frozenset({-1, 9001, 9007})
# Timestamp expired: the client's clock is off; the client corrects it once from the server's Date.
CLOCK_SKEW_CODE = 1004
# The account is misconfigured: every further request would fail the same way.
CONFIGURATION_CODES: frozenset[int] = frozenset({9003, 9004, 9005})
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
    9099: "WhatsApp (Meta) rejected the request; see its message",
}

# NXCloud passes WhatsApp's (Meta's) errors through as code 9099 with Meta's message, which Meta
# writes as "(#<code>) <text>".
META_PASSTHROUGH_CODE = 9099
_META_CODE = re.compile(r"\(#(\d+)\)")

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


def meta_code(message: str) -> int | None:
    """Meta's error code in a passed-through message such as ``(#130429) Rate limit hit``."""
    found = _META_CODE.search(message)
    return int(found.group(1)) if found else None


def is_auth_code(code: int | None) -> bool:
    return code is not None and 1000 <= code <= 1099


def classify(code: int | None, message: str = "") -> CodeMeaning:
    """What NXCloud's ``code`` (None: no usable answer) with its ``message`` means; the only judge."""
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
    if code == META_PASSTHROUGH_CODE and (throttle := META_THROTTLES.get(meta_code(message) or 0)):
        scope, throttle_hint = throttle
        return CodeMeaning("transient", throttle_hint, throttle=scope)
    if code in TRANSIENT_CODES:
        return CodeMeaning("transient", hint)
    if is_auth_code(code) or code in CONFIGURATION_CODES:
        return CodeMeaning("abort", hint)
    if code in NUMBER_CODES:
        return CodeMeaning("number", hint)
    return CodeMeaning("message", hint)
