# ruff: noqa: E402  (each example shows its imports, as a user's test file has them)
"""The testing guide's examples: tests a user writes for their own DAGs, run here as shown.

``docs/guides/testing.rst`` includes the parts between the ``[START ...]`` and ``[END ...]``
markers, so the guide shows exactly what runs. The setup a user's own conftest would do (the
DAG folder on ``sys.path``, a migrated metadata DB) stays outside the markers.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from tests.conftest import DAGS_FOLDER

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.airflow


@pytest.fixture(autouse=True)
def dags_on_path(airflow_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A DAG file imports from its folder, as under Airflow; ``dag.test()`` needs the metadata DB."""
    monkeypatch.syspath_prepend(str(DAGS_FOLDER))


# [START sandbox_fixture]
from airflow_provider_nxcloud.testing import NxCloudSandbox


def test_my_dag_marks_what_it_fetched(nxcloud_sandbox: NxCloudSandbox) -> None:
    # The fixture started a sandbox and pointed AIRFLOW_CONN_NXCLOUD_DEFAULT at it.
    from example_nxcloud_mark_read import example_nxcloud_mark_read  # your DAG file

    example_nxcloud_mark_read().test()

    assert nxcloud_sandbox.marked_ids() == {
        "wamid.HBgLMTU1NTAwMDAwMDEVAgASGBQzQUIx",
        "wamid.HBgLMTU1NTAwMDAwMDIVAgASGBQzQUIy",
    }
    # [END sandbox_fixture]


# [START sandbox_conversations]
from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook


def test_one_request_reads_the_whole_thread(nxcloud_sandbox: NxCloudSandbox) -> None:
    now = int(time.time())
    phone = "8613800000000"  # the fixture's business number
    customer = "15550001"
    inbox = [  # what the customer sent, oldest first
        {"id": "wamid.1", "business_phone": phone, "from": customer, "timestamp": now - 60},
        {"id": "wamid.2", "business_phone": phone, "from": customer, "timestamp": now},
    ]
    nxcloud_sandbox.add_inbound(inbox)  # as WhatsApp knows it

    result = NxCloudHook().mark_messages_as_read(inbox)

    assert result.state == "success"
    assert result.counts()["requests"] == 1  # for the thread's newest message
    assert nxcloud_sandbox.marked_ids() == {"wamid.2"}
    assert nxcloud_sandbox.read_ids() == {"wamid.1", "wamid.2"}  # what the customer sees
    # [END sandbox_conversations]


# [START sandbox_faults]
from airflow_provider_nxcloud.testing import Faults


def test_transient_failures_are_retried(nxcloud_sandbox: NxCloudSandbox) -> None:
    # wamid.1 gets code -1, then HTTP 503, then a normal answer;
    # wamid.2 is refused for good.
    faults = Faults(scripts={"wamid.1": ["-1", "503"]}, codes={"wamid.2": 9099})
    nxcloud_sandbox.set_faults(faults)
    hook = NxCloudHook(retry_wait=(0.01, 0.01))  # short backoff, for a quick test

    result = hook.mark_messages_as_read(["wamid.1", "wamid.2"])

    assert [message.message_id for message in result.marked] == ["wamid.1"]
    (failure,) = result.failed
    assert (failure.code, failure.status) == (9099, "failed")
    assert result.state == "failed"  # a permanent failure: no Airflow retries
    # [END sandbox_faults]
