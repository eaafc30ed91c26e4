"""A reply pipeline: draft the answers, mark the messages read with "typing..." shown, then reply."""

from __future__ import annotations

# [START example_nxcloud_typing_reply]
import time
from datetime import datetime
from typing import Any

from airflow_provider_nxcloud.operators.whatsapp import MarkWhatsAppReadOperator
from airflow_provider_nxcloud.version_compat import dag, task  # airflow.sdk, or airflow.decorators on 2.x


@dag(schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["nxcloud", "example"])
def example_nxcloud_typing_reply() -> None:
    @task
    def fetch_inbox() -> list[dict[str, Any]]:
        # In a real DAG: the messages NXCloud's inbound webhook stored, with sender and time.
        now = int(time.time())
        return [
            {"id": "wamid.HBgLMTU1NTAwMDAwMDEVAgASGBQzQUIz", "from": "15550001", "timestamp": now - 40},
            {"id": "wamid.HBgLMTU1NTAwMDAwMDEVAgASGBQzQUI0", "from": "15550001", "timestamp": now - 5},
            {"id": "wamid.HBgLMTU1NTAwMDAwMDIVAgASGBQzQUI1", "from": "15550002", "timestamp": now - 20},
        ]

    @task
    def draft_replies(inbox: list[dict[str, Any]]) -> dict[str, str]:
        # Your model, or a person through Airflow's human-in-the-loop operators. Draft first:
        # "typing..." shows for 25 s at most, so it goes up only once the answer is ready.
        return {message["from"]: "Thank you, we are looking into it." for message in inbox}

    @task
    def send_replies(drafts: dict[str, str], marked: dict[str, Any]) -> dict[str, str]:
        # Your own sending (for example NXCloud's /api/wa/mt), right away: the reply replaces
        # the "typing..." each customer now sees (marked["counts"]["typing_indicators"] of them).
        return drafts

    inbox = fetch_inbox()
    drafts = draft_replies(inbox)
    mark = MarkWhatsAppReadOperator(
        task_id="mark_read_typing",
        message_ids=inbox,
        typing_indicator=True,  # needs the connection's appkey extra
    )
    drafts >> mark
    send_replies(drafts, mark.output)


example_nxcloud_typing_reply()
# [END example_nxcloud_typing_reply]
