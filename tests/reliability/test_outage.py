"""A full outage stays bounded: 20,000 ids, default settings, through the operator's code path.

Every answer HTTP 503, and again every connection refused: the retry budget (``client/budget.py``)
stops retrying and the batch stops starting messages, so the try ends in seconds, every id
``not_attempted`` or failed-retryable, and the task raises the retryable error for Airflow's
retries. Before the budget: 64 ids took 135 s and 384 requests (issue 22).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_nxcloud.batch import mark_messages
from airflow_provider_nxcloud.client import NxCloudClient
from airflow_provider_nxcloud.testing import Faults, NxCloudSandbox
from airflow_provider_nxcloud.testing.fault_campaign import CONN_ID, execute_operator
from airflow_provider_nxcloud.testing.fault_mix import campaign_ids
from tests.reliability.hostile_server import HostileServer, answer_json
from tests.support import alarm, bounded

if TYPE_CHECKING:
    from collections.abc import Iterator

IDS = 20_000
# The bounds; what is measured is far inside them (the figures print it).
MAX_SECONDS = 60
MAX_REQUESTS = 500


@pytest.fixture
def down(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[NxCloudSandbox | None]:
    """The connection ``CONN_ID`` pointed at a sandbox answering 503 to all, or at its closed port."""
    with NxCloudSandbox(faults=Faults(rates={"503": 1.0})) as sandbox:
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", sandbox.connection_json())
        if request.param == "503":
            yield sandbox
            return
    yield None  # stopped: nothing listens there, every connection is refused


@pytest.mark.parametrize("down", ["503", "refused"], indirect=True)
def test_a_full_outage_ends_the_try_quickly_and_retryable(
    down: NxCloudSandbox | None, figures: dict[str, Any]
) -> None:
    ids = campaign_ids(IDS)

    started = time.monotonic()
    with alarm(MAX_SECONDS * 3, "the try against a service that is down"):
        state, result = execute_operator(ids, retry_wait=None)
    seconds = time.monotonic() - started

    counts = result["counts"]
    figures.update(seconds=round(seconds, 1), requests=counts["requests"], counts=counts)
    assert state == "up_for_retry"  # the operator raised the retryable error: Airflow retries
    assert seconds < MAX_SECONDS
    assert counts["requests"] <= MAX_REQUESTS
    if down is not None:
        assert len(down.requests) == counts["requests"]
    assert all(entry["retryable"] for entry in result["failed"])
    assert counts["failed"] + counts["not_attempted"] == IDS
    assert "NXCloud looks down" in result["not_attempted_reasons"]["8613800000000"]


def test_an_outage_whose_503s_carry_retry_after_is_bounded_too(figures: dict[str, Any]) -> None:
    # A gateway in maintenance answers every request 503 with a Retry-After: "down", not "too
    # fast", although the header also asks the adaptive limiter to slow down.
    ids = campaign_ids(2_000)
    unavailable = answer_json(b"Service Unavailable", 503, Retry_After="0", Content_Type="text/plain")
    with HostileServer(unavailable) as server:
        client = NxCloudClient(
            access_key="key", access_secret="secret", base_url=server.url, business_phone="8613800000000",
            retry_wait=(0.01, 0.05),
        )  # fmt: skip
        result = bounded(MAX_SECONDS * 3, lambda: mark_messages(client, ids))
    counts = result.counts()
    figures.update(requests=counts["requests"], counts=counts)
    assert result.state == "failed_retryable"
    assert counts["requests"] <= MAX_REQUESTS, "6 requests per id: the budget took the 503s for throttles"
    assert counts["failed"] + counts["not_attempted"] == len(ids)
