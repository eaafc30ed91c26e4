"""
Every 15 minutes: mark unread inbound WhatsApp messages as read, then record what happened.

A webhook receiver (not shown) writes each inbound message into ``whatsapp_inbox``. This DAG
picks up the rows with no ``read_at`` and no ``last_error``, marks them read through NXCloud,
and writes the outcome back, even when the mark task failed:

- marked          -> ``read_at`` set (once: rows already read are never touched again);
- skipped/failed  -> ``last_error`` set with the code and reason (not picked up again);
- transient, or never attempted -> left as they were, so the next run tries them again.

A run that dies halfway loses nothing: whatever was not written back is still unread and the
next run marks it (marking twice is harmless for WhatsApp). On Airflow 3.3, a retry of
``mark_read`` sends only what its earlier tries left (durable marking) and its result lists every
id marked in any try, so ``write_back`` records them all. The inbox is reached through the
Airflow connection ``nxcloud_inbox``; point it at SQLite, Postgres or MySQL and nothing else
changes. For example:

    export AIRFLOW_CONN_NXCLOUD_INBOX='{"conn_type": "sqlite", "host": "/abs/path/inbox.db"}'
    export AIRFLOW_CONN_NXCLOUD_INBOX='postgresql://user:password@db-host:5432/inbox'

(The SQLite provider needs the path as the host: in URI form ``sqlite://%2Fabs%2Fpath%2Finbox.db``.
``sqlite:////abs/path/inbox.db`` fails with ``invalid uri authority``.)
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_nxcloud.operators.whatsapp import MarkWhatsAppReadOperator
from airflow_provider_nxcloud.version_compat import dag, task

INBOX_CONN_ID = "nxcloud_inbox"
# [START inbox_ddl]
# The table a webhook receiver fills; ``received_at`` is NXCloud's Unix-seconds timestamp,
# ``sender`` the message's ``from``; ``sender_user_id`` the contact's business-scoped user id (a
# username user's phone may be withheld); ``group_id`` is set for messages written in a group.
INBOX_DDL = """
CREATE TABLE IF NOT EXISTS whatsapp_inbox (
    message_id     VARCHAR(512) NOT NULL,
    business_phone VARCHAR(32)  NOT NULL,
    sender         VARCHAR(32),
    sender_user_id VARCHAR(160),
    group_id       VARCHAR(128),
    received_at    BIGINT       NOT NULL,
    read_at        VARCHAR(32),
    last_error     VARCHAR(1024),
    PRIMARY KEY (message_id, business_phone)
)
"""
# [END inbox_ddl]


def _error_text(kind: str, item: dict[str, Any]) -> str:
    code = f"code {item['code']}: " if item.get("code") is not None else ""
    return f"{kind}: {code}{item['reason']}"[:1024]


def _inbox_hook(conn_id: str) -> Any:
    from airflow_provider_nxcloud.version_compat import BaseHook

    return BaseHook.get_connection(conn_id).get_hook()


# [START reconcile_dag]
@dag(
    schedule="*/15 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=14),
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    params={"inbox_conn_id": INBOX_CONN_ID, "batch_limit": 20_000},
    tags=["nxcloud", "whatsapp", "example"],
    doc_md=__doc__,
)
def example_nxcloud_reconcile() -> None:
    @task
    def fetch_unread(params: dict[str, Any]) -> list[dict[str, Any]]:
        hook = _inbox_hook(params["inbox_conn_id"])
        rows = hook.get_records(
            "SELECT message_id, business_phone, sender, sender_user_id, group_id, received_at "
            "FROM whatsapp_inbox WHERE read_at IS NULL AND last_error IS NULL ORDER BY received_at "
            f"LIMIT {int(params['batch_limit'])}"
        )
        # The operator groups these records by WhatsApp's rules: one request per conversation,
        # each group message on its own.
        return [
            {
                "id": message_id,
                "business_phone": phone,
                "from": sender,
                "from_user_id": user_id,
                "group_id": group_id,
                "timestamp": received_at,
            }
            for message_id, phone, sender, user_id, group_id, received_at in rows
        ]

    mark_read = MarkWhatsAppReadOperator(
        task_id="mark_read",
        message_ids=fetch_unread(),
        max_workers=16,
    )

    @task(trigger_rule="all_done")
    def write_back(params: dict[str, Any], ti: Any = None) -> dict[str, int]:
        result = ti.xcom_pull(task_ids="mark_read")
        if not result:
            return {"read": 0, "errors": 0}  # mark_read died before producing a result
        hook = _inbox_hook(params["inbox_conn_id"])
        mark = hook.placeholder
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        # Marked ids are plain ids; their business phones are the rows' own (an id is unique
        # per phone in practice, and ``read_at IS NULL`` keeps a second write from changing it).
        read_rows = [(now, message_id) for message_id in result["marked"]]
        error_rows = [
            (_error_text(kind, item), item["message_id"], item["business_phone"])
            for kind, items in (("skipped", result["skipped"]), ("failed", result["failed"]))
            for item in items
            if kind == "skipped" or not item.get("retryable")
        ]
        conn = hook.get_conn()
        try:
            cursor = conn.cursor()
            cursor.executemany(
                f"UPDATE whatsapp_inbox SET read_at = {mark}, last_error = NULL "
                f"WHERE message_id = {mark} AND read_at IS NULL",
                read_rows,
            )
            cursor.executemany(
                f"UPDATE whatsapp_inbox SET last_error = {mark} "
                f"WHERE message_id = {mark} AND business_phone = {mark} AND read_at IS NULL",
                error_rows,
            )
            conn.commit()
        finally:
            conn.close()
        return {"read": len(read_rows), "errors": len(error_rows)}

    mark_read >> write_back()


example_nxcloud_reconcile()
# [END reconcile_dag]
