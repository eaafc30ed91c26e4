"""
A large backlog, split into chunks and mapped, so Celery or Kubernetes workers share the work.

Each chunk is one mapped task instance of the operator. The Airflow pool ``nxcloud_api`` bounds
how many chunks talk to NXCloud at once, so the account's total rate stays at most
``pool slots x max_requests_per_second`` however many workers there are. Create the pool once:

    airflow pools set nxcloud_api 4 "NXCloud API: 4 chunks x 20 req/s = 80 req/s at most"

A failed chunk is retried on its own (transient errors) without re-sending the others, and on
Airflow 3.3 without re-sending what it had marked, even when its worker was killed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow_provider_nxcloud.operators.whatsapp import MarkWhatsAppReadOperator
from airflow_provider_nxcloud.version_compat import dag, task

CHUNK_SIZE = 2_000


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"inbox_conn_id": "nxcloud_inbox", "chunk_size": CHUNK_SIZE},
    tags=["nxcloud", "whatsapp", "example"],
    doc_md=__doc__,
)
def example_nxcloud_sharded() -> None:
    @task
    def backlog_chunks(params: dict[str, Any]) -> list[list[dict[str, Any]]]:
        from airflow_provider_nxcloud.version_compat import BaseHook

        hook = BaseHook.get_connection(params["inbox_conn_id"]).get_hook()
        rows = hook.get_records(
            "SELECT message_id, business_phone, received_at FROM whatsapp_inbox "
            "WHERE read_at IS NULL AND last_error IS NULL ORDER BY received_at"
        )
        records = [{"id": m, "business_phone": p, "timestamp": ts} for m, p, ts in rows]
        size = int(params["chunk_size"])
        return [records[start : start + size] for start in range(0, len(records), size)]

    # [START sharded_mapping]
    marked = MarkWhatsAppReadOperator.partial(
        task_id="mark_chunk",
        pool="nxcloud_api",
        max_workers=8,
        max_requests_per_second=20,
        retries=3,
        retry_delay=timedelta(minutes=1),
    ).expand(message_ids=backlog_chunks())
    # [END sharded_mapping]

    @task(trigger_rule="all_done")
    def summarise(results: Any) -> dict[str, int]:
        totals: dict[str, int] = {}
        for result in results:
            for key, count in (result or {}).get("counts", {}).items():
                totals[key] = totals.get(key, 0) + count
        return totals

    summarise(marked.output)


example_nxcloud_sharded()
