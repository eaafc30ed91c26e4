"""The DAG of tests/reliability/test_secrets.py: a secret's every chance to leak, in one run.

``mark`` succeeds through retried faults (the retries are logged with their errors), its
business phone a template rendered from the connection; ``mark_wrong_secret`` fails on 1003;
``mark_plain_http`` fails on the connection (a config error before anything is sent);
``mark_transient`` raises a transient error (a traceback in the log); ``record`` pulls every
result into one more XCom. The test supplies the connections and scans everything the run left.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow_provider_nxcloud.operators.whatsapp import MarkWhatsAppReadOperator
from airflow_provider_nxcloud.version_compat import DAG, task

MARK_TASKS = ("mark", "mark_wrong_secret", "mark_plain_http", "mark_transient")

with DAG("nx_reliability_secrets", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):

    @task
    def fetch() -> list[dict[str, Any]]:
        return [{"id": f"wamid.secret{i}", "from": "15550001"} for i in range(12)]

    marks = [
        MarkWhatsAppReadOperator(
            task_id="mark",
            message_ids=fetch(),
            business_phone="{{ conn.nxcloud_default.extra_dejson.business_phone }}",
            max_workers=4,
        ),
        MarkWhatsAppReadOperator(
            task_id="mark_wrong_secret",
            message_ids=[f"wamid.wrong{i}" for i in range(5)],
            nxcloud_conn_id="nxcloud_wrong_secret",
        ),
        MarkWhatsAppReadOperator(
            task_id="mark_plain_http",
            message_ids=["wamid.plain1"],
            nxcloud_conn_id="nxcloud_plain_http",
        ),
        MarkWhatsAppReadOperator(
            task_id="mark_transient",
            message_ids=["wamid.flaky1", "wamid.flaky2"],
            nxcloud_conn_id="nxcloud_flaky",
        ),
    ]

    @task(trigger_rule="all_done")
    def record(ti: Any = None) -> dict[str, Any]:
        return {task_id: ti.xcom_pull(task_ids=task_id) for task_id in MARK_TASKS}

    marks >> record()
