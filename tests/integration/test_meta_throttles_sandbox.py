"""Meta's throttles passed through NXCloud as 9099: retried, freshly signed, slowing what they name."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from airflow_provider_nxcloud.batch import mark_messages
from airflow_provider_nxcloud.client import NxCloudTransientError
from airflow_provider_nxcloud.testing import (
    Faults,
)

if TYPE_CHECKING:
    from airflow_provider_nxcloud.testing import NxCloudSandbox


@pytest.mark.parametrize("meta", [4, 80007, 130429, 131056])
def test_a_meta_throttle_is_retried_with_a_fresh_signature(
    nxcloud_sandbox: NxCloudSandbox, meta: int
) -> None:
    nxcloud_sandbox.set_faults(Faults(scripts={"wamid.t1": [f"meta:{meta}", f"meta:{meta}"]}))

    assert nxcloud_sandbox.client().mark_message_as_read("wamid.t1").code == 0
    requests = nxcloud_sandbox.requests
    assert len(requests) == 3
    assert len({r.headers["sign"] for r in requests}) == 3
    assert nxcloud_sandbox.marked_ids() == {"wamid.t1"}


def test_a_throttle_that_outlasts_the_retries_ends_retryable(nxcloud_sandbox: NxCloudSandbox) -> None:
    nxcloud_sandbox.set_faults(Faults(codes={"wamid.busy": "meta:130429"}))

    result = mark_messages(nxcloud_sandbox.client(max_retries=2), ["wamid.busy", "wamid.ok"])

    assert [m.message_id for m in result.marked] == ["wamid.ok"]
    (failed,) = result.failed
    assert (failed.status, failed.code) == ("retryable", 9099)
    assert "(#130429)" in failed.reason
    assert result.state == "failed_retryable"
    assert result.to_dict()["failed"][0]["retryable"] is True


def test_an_invalid_id_from_meta_is_a_permanent_failure_of_its_own(nxcloud_sandbox: NxCloudSandbox) -> None:
    nxcloud_sandbox.set_faults(Faults(codes={"wamid.gone": "meta:131009"}))

    with pytest.raises(Exception) as raised:
        nxcloud_sandbox.client().mark_message_as_read("wamid.gone")
    assert not isinstance(raised.value, NxCloudTransientError)
    assert len(nxcloud_sandbox.requests) == 1


@pytest.mark.parametrize(("meta", "slows_every_request"), [(80007, True), (4, True), (130429, False)])
def test_only_account_wide_throttles_slow_the_whole_client(
    nxcloud_sandbox: NxCloudSandbox, meta: int, slows_every_request: bool
) -> None:
    # 130429 slows its business number only (a limiter of its own), so the client's rate stays.
    nxcloud_sandbox.set_faults(Faults(scripts={"wamid.last": [f"meta:{meta}"]}))
    client = nxcloud_sandbox.client()
    for index in range(5):  # a rate to cut from: nothing is cut before something was accepted
        client.mark_message_as_read(f"wamid.ok{index}")

    client.mark_message_as_read("wamid.last")

    assert (client.rate_limit_found is not None) is slows_every_request
