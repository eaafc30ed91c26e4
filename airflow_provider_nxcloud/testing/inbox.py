"""Seed the reconcile example's inbox (``whatsapp_inbox``) as a webhook receiver would fill it.

One helper for the demo, the tests and the deployment tests, over any DB-API 2 connection:
SQLite takes ``?`` placeholders, psycopg2 ``%s``, so the placeholder follows the driver's own
``paramstyle``. The table's DDL stays with the DAG that reads it
(``example_dags/example_nxcloud_reconcile.py``, ``INBOX_DDL``); pass it as ``ddl`` to create
the table first.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from airflow_provider_nxcloud.testing.state import InboundMessage

if TYPE_CHECKING:
    from collections.abc import Iterable

# A row is (message_id, business_phone, sender, received_at): received_at in Unix seconds, the
# order of InboundMessage's fields, so ``InboundMessage(*row)`` seeds a sandbox with the same row.
InboxRow = tuple[str, str, str, int]
INBOX_COLUMNS = ("message_id", "business_phone", "sender", "received_at")
_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s", "numeric": ":{n}", "named": ":{name}"}


def driver_paramstyle(db: Any) -> str:
    """The DB-API ``paramstyle`` of the driver a connection or cursor comes from."""
    module = sys.modules.get(type(db).__module__.partition(".")[0])
    style = getattr(module, "paramstyle", None)
    if style not in _PLACEHOLDERS:
        raise ValueError(f"cannot tell the paramstyle of {type(db).__module__}; pass paramstyle=")
    return str(style)


def insert_statement(paramstyle: str) -> str:
    """``INSERT INTO whatsapp_inbox`` of the four columns a receiver writes, in ``paramstyle``."""
    placeholder = _PLACEHOLDERS[paramstyle]
    values = ", ".join(placeholder.format(n=n, name=name) for n, name in enumerate(INBOX_COLUMNS, 1))
    return f"INSERT INTO whatsapp_inbox ({', '.join(INBOX_COLUMNS)}) VALUES ({values})"


def seed_inbox(
    db: Any,
    rows: Iterable[InboxRow | InboundMessage],
    *,
    ddl: str | None = None,
    paramstyle: str | None = None,
) -> int:
    """
    Insert ``rows`` into ``whatsapp_inbox`` (after running ``ddl``, when given); return how many.

    ``db`` is a DB-API connection (committed here) or a cursor (its connection's transaction is
    the caller's to commit). ``paramstyle`` defaults to the driver's (sqlite3: qmark, psycopg2:
    pyformat).
    """
    style = paramstyle or driver_paramstyle(db)
    values: list[Any] = [
        (m.message_id, m.business_phone, m.customer, m.timestamp) if isinstance(m, InboundMessage) else m
        for m in rows
    ]
    if style == "named":
        values = [dict(zip(INBOX_COLUMNS, row, strict=True)) for row in values]
    is_connection = hasattr(db, "cursor")
    cursor = db.cursor() if is_connection else db
    try:
        if ddl is not None:
            cursor.execute(ddl)
        cursor.executemany(insert_statement(style), values)
    finally:
        if is_connection:
            cursor.close()
    if is_connection:
        db.commit()
    return len(values)
