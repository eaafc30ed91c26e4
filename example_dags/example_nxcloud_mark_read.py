"""The smallest useful DAG: an upstream task hands message ids to the operator, which marks them read."""

from __future__ import annotations

# [START example_nxcloud_mark_read]
from datetime import datetime

from airflow_provider_nxcloud.operators.whatsapp import MarkWhatsAppReadOperator
from airflow_provider_nxcloud.version_compat import dag, task  # airflow.sdk, or airflow.decorators on 2.x


@dag(schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["nxcloud", "example"])
def example_nxcloud_mark_read() -> None:
    @task
    def fetch_unread() -> list[str]:
        # In a real DAG: query your inbox, or take the ids from NXCloud's inbound webhook.
        return ["wamid.HBgLMTU1NTAwMDAwMDEVAgASGBQzQUIx", "wamid.HBgLMTU1NTAwMDAwMDIVAgASGBQzQUIy"]

    MarkWhatsAppReadOperator(
        task_id="mark_read",
        message_ids=fetch_unread(),
        nxcloud_conn_id="nxcloud_default",  # business_phone comes from its extra
    )


example_nxcloud_mark_read()
# [END example_nxcloud_mark_read]
