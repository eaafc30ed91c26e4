"""The sandbox's account rate limit, and the hook finding it over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_nxcloud.client.errors import NxCloudTransientError
from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook
from airflow_provider_nxcloud.operators.whatsapp import MarkWhatsAppReadOperator
from airflow_provider_nxcloud.testing import AccountLimit, SandboxClient

if TYPE_CHECKING:
    from airflow_provider_nxcloud.testing import NxCloudSandbox

FAST_RETRIES = (0.05, 0.2)


def _burst(count: int) -> list[int | None]:
    """``count`` single requests at once, without retries or adaptation: their HTTP statuses."""
    hook = NxCloudHook(max_retries=0, adaptive_rate=False)
    statuses: list[int | None] = []
    for index in range(count):
        try:
            hook.mark_message_as_read(f"wamid.burst{index}")
            statuses.append(200)
        except NxCloudTransientError as error:
            statuses.append(error.http_status)
    return statuses


def test_account_limit_refuses_beyond_its_burst_with_429(nxcloud_sandbox: NxCloudSandbox) -> None:
    nxcloud_sandbox.set_rate_limit(AccountLimit(per_second=1, burst=3))

    assert _burst(5) == [200, 200, 200, 429, 429]
    refused = [r for r in nxcloud_sandbox.requests if r.fault == "rate_limit"]
    assert [r.code for r in refused] == [None, None]
    assert nxcloud_sandbox.marked_ids() == {"wamid.burst0", "wamid.burst1", "wamid.burst2"}


def test_account_limit_sends_retry_after_only_when_configured(nxcloud_sandbox: NxCloudSandbox) -> None:
    client = SandboxClient(nxcloud_sandbox.url)
    client.set_rate_limit(1, burst=1)
    hook = NxCloudHook(max_retries=0, adaptive_rate=False)
    hook.mark_message_as_read("wamid.ra0")
    with pytest.raises(NxCloudTransientError) as without:
        hook.mark_message_as_read("wamid.ra1")
    client.set_rate_limit(1, burst=1, retry_after=2)  # changed during a run: the bucket carries over
    with pytest.raises(NxCloudTransientError) as with_header:
        hook.mark_message_as_read("wamid.ra2")
    client.set_rate_limit(None)

    assert without.value.retry_after is None
    assert with_header.value.retry_after == 2
    assert hook.mark_message_as_read("wamid.ra3").code == 0


def test_cli_takes_an_account_limit() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_nxcloud.testing", "--port", "0",
         "--rate-limit", "1", "--rate-burst", "2", "--rate-retry-after", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        process.stdout.readline()
        connection = process.stdout.readline().strip().partition("=")[2].strip("'")
        os.environ["AIRFLOW_CONN_NXCLOUD_CLI_LIMIT"] = connection
        hook = NxCloudHook(nxcloud_conn_id="nxcloud_cli_limit", max_retries=0, adaptive_rate=False)
        hook.mark_message_as_read("wamid.c0")
        hook.mark_message_as_read("wamid.c1")
        with pytest.raises(NxCloudTransientError) as refused:
            hook.mark_message_as_read("wamid.c2")
        assert (refused.value.http_status, refused.value.retry_after) == (429, 3)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        os.environ.pop("AIRFLOW_CONN_NXCLOUD_CLI_LIMIT", None)
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_batch_finds_the_limit_and_reports_it(
    nxcloud_sandbox: NxCloudSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    nxcloud_sandbox.set_rate_limit(AccountLimit(per_second=20, burst=2))
    ids = [f"wamid.lim{i}" for i in range(60)]

    result = NxCloudHook(retry_wait=FAST_RETRIES).mark_messages_as_read(ids, max_workers=8)

    assert result.state == "success"
    assert nxcloud_sandbox.marked_ids() == set(ids)
    assert result.rate_limit_per_second is not None
    assert 5 <= result.rate_limit_per_second <= 60
    assert result.to_dict()["rate_limit_per_second"] == result.rate_limit_per_second
    # The hook's task logger (structlog under Airflow 3) writes to stdout.
    assert capsys.readouterr().out.count("NXCloud is throttling every request at") == 1
    refused = sum(1 for r in nxcloud_sandbox.requests if r.fault == "rate_limit")
    # 8 workers start at once against a burst of 2; after that the limiter keeps them under it.
    assert refused <= 20, refused


def test_adaptive_rate_false_leaves_only_the_backoff(nxcloud_sandbox: NxCloudSandbox) -> None:
    nxcloud_sandbox.set_rate_limit(AccountLimit(per_second=40, burst=2))
    ids = [f"wamid.off{i}" for i in range(20)]

    result = NxCloudHook(retry_wait=FAST_RETRIES, adaptive_rate=False).mark_messages_as_read(
        ids, max_workers=8
    )

    assert result.state == "success"
    assert result.rate_limit_per_second is None


def test_unthrottled_batch_reports_no_limit(nxcloud_sandbox: NxCloudSandbox) -> None:
    operator = MarkWhatsAppReadOperator(task_id="t", message_ids=["wamid.u1", "wamid.u2"], max_workers=2)

    assert "rate_limit_per_second" not in operator.execute(context={})  # type: ignore[arg-type]
    assert operator.hook.client.settings.adaptive_rate
    assert operator.hook.client.rate_limit_found is None


def test_operator_and_extra_turn_it_off(
    nxcloud_sandbox: NxCloudSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    def adaptive(**arguments: Any) -> bool:
        operator = MarkWhatsAppReadOperator(task_id="t", message_ids=[], **arguments)
        return operator.hook.client.settings.adaptive_rate

    assert adaptive(adaptive_rate=False) is False
    monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", nxcloud_sandbox.connection_json(adaptive_rate=False))

    assert adaptive() is False
    assert adaptive(adaptive_rate=True) is True


def test_operator_rejects_a_non_boolean_adaptive_rate() -> None:
    from airflow_provider_nxcloud.client.errors import NxCloudConfigError

    with pytest.raises(NxCloudConfigError, match="adaptive_rate must be True, False or None, got 'no'"):
        MarkWhatsAppReadOperator(task_id="x", message_ids=[], adaptive_rate="no")  # type: ignore[arg-type]
