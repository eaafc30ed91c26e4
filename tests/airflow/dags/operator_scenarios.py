"""DAGs the operator tests run with dag.test(); each scenario is one small DAG."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_nxcloud.operators.whatsapp import MarkWhatsAppReadOperator
from airflow_provider_nxcloud.version_compat import DAG, task

START = datetime(2026, 1, 1)
NO_SCHEDULE: dict[str, Any] = {"schedule": None, "start_date": START, "catchup": False}


@task
def record(ti: Any = None) -> dict[str, Any]:
    """What a downstream task sees of the mark task's result, even after it failed."""
    return dict(ti.xcom_pull(task_ids="mark"))


with DAG("nx_upstream_ids", **NO_SCHEDULE) as nx_upstream_ids:

    @task
    def fetch() -> list[str]:
        return ["wamid.up1", " wamid.up2 ", "wamid.up3", "wamid.up1"]

    MarkWhatsAppReadOperator(task_id="mark", message_ids=fetch(), max_workers=2) >> record()


with DAG("nx_jinja", **NO_SCHEDULE) as nx_jinja:

    @task(task_id="fetch")
    def fetch_records() -> list[dict[str, Any]]:
        return [{"id": "wamid.j1", "from": "15550001"}, {"message_id": "wamid.j2"}]

    MarkWhatsAppReadOperator(task_id="mark", message_ids="{{ ti.xcom_pull(task_ids='fetch') }}").set_upstream(
        fetch_records()
    )


with DAG("nx_mapped", **NO_SCHEDULE) as nx_mapped:

    @task
    def chunks() -> list[list[str]]:
        return [["wamid.m1", "wamid.m2"], ["wamid.m3"]]

    MarkWhatsAppReadOperator.partial(task_id="mark", max_workers=2).expand(message_ids=chunks())


with DAG("nx_skip_9006", **NO_SCHEDULE) as nx_skip_9006:
    MarkWhatsAppReadOperator(
        task_id="mark", message_ids=["wamid.unbound1", "wamid.unbound2"], code_actions={9006: "skip"}
    )


with DAG("nx_wrong_secret", **NO_SCHEDULE) as nx_wrong_secret:
    (
        MarkWhatsAppReadOperator(
            task_id="mark",
            message_ids=[f"wamid.w{i}" for i in range(20)],
            nxcloud_conn_id="nxcloud_wrong",
            max_workers=1,
            retries=3,
            retry_delay=timedelta(seconds=0),
        )
        >> record.override(trigger_rule="all_done")()
    )


with DAG("nx_empty", **NO_SCHEDULE) as nx_empty:

    @task
    def nothing() -> list[str]:
        return []

    MarkWhatsAppReadOperator(task_id="mark", message_ids=nothing())


with DAG("nx_transient", **NO_SCHEDULE) as nx_transient:
    (
        MarkWhatsAppReadOperator(
            task_id="mark",
            message_ids=["wamid.t1", "wamid.t2"],
            retries=1,
            retry_delay=timedelta(seconds=0),
        )
        >> record.override(trigger_rule="all_done")()
    )


with DAG("nx_meta_errors", **NO_SCHEDULE) as nx_meta_errors:
    (
        MarkWhatsAppReadOperator(
            task_id="mark",
            message_ids=["wamid.gone", "wamid.busy", "wamid.bad"],
            code_actions={"meta:131009": "skip"},
            retries=1,
            retry_delay=timedelta(seconds=0),
        )
        >> record.override(trigger_rule="all_done")()
    )


def conversation_records() -> list[dict[str, Any]]:
    """Two customers' threads (4 and 2 messages), as webhook records, interleaved."""
    now = int(time.time())
    return [
        {
            "id": f"wamid.conv{n}",
            "business_phone": "8613800000000",
            "from": "15550001" if n % 3 else "15550002",
            "timestamp": now - 60 * n,
        }
        for n in range(6)
    ]


with DAG("nx_conversations", **NO_SCHEDULE) as nx_conversations:

    @task
    def inbox() -> list[dict[str, Any]]:
        return conversation_records()

    messages = inbox()
    # The same messages twice: the default (one request per conversation), then the opt-out.
    (
        MarkWhatsAppReadOperator(task_id="mark", message_ids=messages)
        >> MarkWhatsAppReadOperator(
            task_id="mark_one_each", message_ids=messages, one_request_per_conversation=False
        )
    )


def typing_records() -> list[dict[str, Any]]:
    """Two customers with 3 messages each, a minute apart, as webhook records."""
    now = int(time.time())
    return [
        {
            "id": f"wamid.typing{customer}{n}",
            "business_phone": "8613800000000",
            "from": f"1555000{customer}",
            "timestamp": now - 60 * n,
        }
        for customer in (1, 2)
        for n in range(3)
    ]


with DAG("nx_typing", **NO_SCHEDULE) as nx_typing:

    @task
    def typing_inbox() -> list[dict[str, Any]]:
        return typing_records()

    MarkWhatsAppReadOperator(task_id="mark", message_ids=typing_inbox(), typing_indicator=True)


with DAG("nx_typing_no_appkey", **NO_SCHEDULE) as nx_typing_no_appkey:
    MarkWhatsAppReadOperator(
        task_id="mark",
        message_ids=["wamid.noappkey1", "wamid.noappkey2"],
        nxcloud_conn_id="nxcloud_no_appkey",
        typing_indicator=True,
        retries=3,
        retry_delay=timedelta(seconds=0),
    )


# Metrics (test_observability.py): 500 one-message customers, so every id is one request.
METRIC_IDS = 500
METRIC_CUSTOMER = "44799900"  # + a 5-digit number: the customers, which no metric may name


def metric_records() -> list[dict[str, Any]]:
    now = int(time.time())
    return [
        {"id": f"wamid.metric{i}", "from": f"{METRIC_CUSTOMER}{i:05d}", "timestamp": now - 60}
        for i in range(METRIC_IDS)
    ]


with DAG("nx_metrics", **NO_SCHEDULE) as nx_metrics:

    @task
    def customers() -> list[dict[str, Any]]:
        return metric_records()

    MarkWhatsAppReadOperator(task_id="mark", message_ids=customers(), max_workers=32)


# Interrupted halfway by its execution_timeout: 2,000 ids at 50 ms (the sandbox's latency) over
# 10 workers take about 11 s.
with DAG("nx_timeout", **NO_SCHEDULE) as nx_timeout:
    MarkWhatsAppReadOperator(
        task_id="mark",
        message_ids=[f"wamid.slow{i}" for i in range(2000)],
        max_workers=10,
        execution_timeout=timedelta(seconds=5),
    )


with DAG("nx_no_push", **NO_SCHEDULE) as nx_no_push:
    MarkWhatsAppReadOperator(
        task_id="mark", message_ids=["wamid.np1", "wamid.np2", "wamid.np3"], do_xcom_push=False
    )


# Killed (SIGTERM) mid-batch by the test: 2,000 ids at 50 ms over 10 workers take about 11 s.
with DAG("nx_sigterm", **NO_SCHEDULE) as nx_sigterm:
    MarkWhatsAppReadOperator(
        task_id="mark", message_ids=[f"wamid.term{i}" for i in range(2000)], max_workers=10
    )
