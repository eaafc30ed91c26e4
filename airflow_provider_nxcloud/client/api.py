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
