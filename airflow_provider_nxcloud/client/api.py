"""NXCloud's documented wire facts for the endpoints used here, shared by the hook and the sandbox."""

from __future__ import annotations

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
TRANSIENT_CODES: frozenset[int] = frozenset({-1, 9001})
# Timestamp expired: the client's clock is off; the hook corrects it once from the server's Date.
CLOCK_SKEW_CODE = 1004
# The account or number is misconfigured: every further request would fail the same way.
CONFIGURATION_CODES: frozenset[int] = frozenset({9002, 9003, 9005, 9006})

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
    9005: "insufficient balance on the NXCloud account",
    9006: "the WhatsApp number is not bound to any application: bind it in NXCloud",
    9099: "WhatsApp (Meta) rejected the request; see its message",
}


def is_auth_code(code: int | None) -> bool:
    return code is not None and 1000 <= code <= 1099


def describe_code(code: int | None) -> str:
    if code is None:
        return "no NXCloud code"
    if code in CODE_HINTS:
        return CODE_HINTS[code]
    if is_auth_code(code):
        return "authentication problem: check the access key, secret and clock"
    return "unknown NXCloud code"
