"""The batch engine over HTTP: concurrency, the rate cap, aborts and progress."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import pytest

from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook
from airflow_provider_nxcloud.testing import Faults
from tests.support import wait_until

if TYPE_CHECKING:
    from airflow_provider_nxcloud.testing import NxCloudSandbox


def test_rate_cap_spaces_all_requests_across_workers_retries_included(
    nxcloud_sandbox: NxCloudSandbox,
) -> None:
    nxcloud_sandbox.set_faults(Faults(scripts={"wamid.r0": ["503"], "wamid.r1": ["-1"]}))
    hook = NxCloudHook(max_requests_per_second=40, retry_wait=(0.0, 0.0))

    result = hook.mark_messages_as_read([f"wamid.r{i}" for i in range(18)], max_workers=6)

    assert result.state == "success"
    sent = sorted(r.received_at for r in nxcloud_sandbox.requests)
    assert len(sent) == 20
    # 20 requests at 40/s cannot span less than 19 intervals of 25 ms, however many threads.
    assert sent[-1] - sent[0] >= 19 / 40 - 0.01


def test_abort_stops_sending_and_accounts_for_every_message(nxcloud_sandbox: NxCloudSandbox) -> None:
    # An account matter (9005): the same for every number. A number's own (9002) stops only it.
    nxcloud_sandbox.set_faults(Faults(codes={"wamid.a3": 9005}))
    ids = [f"wamid.a{i}" for i in range(50)]

    result = NxCloudHook().mark_messages_as_read(ids, max_workers=1)

    assert result.state == "failed"
    assert result.abort is not None and result.abort.code == 9005
    assert [m.message_id for m in result.marked] == ids[:3]
    assert [m.message_id for m in result.not_attempted] == ids[4:]
    assert len(nxcloud_sandbox.requests) == 4
    assert "insufficient balance" in result.describe_failure()


def test_permanent_failures_do_not_stop_the_others(nxcloud_sandbox: NxCloudSandbox) -> None:
    nxcloud_sandbox.set_faults(Faults(codes={"wamid.p1": 9000, "wamid.p5": 9099}))

    result = NxCloudHook().mark_messages_as_read([f"wamid.p{i}" for i in range(10)], max_workers=3)

    assert result.state == "failed"
    assert sorted(f.message.message_id for f in result.failed) == ["wamid.p1", "wamid.p5"]
    assert len(result.marked) == 8
    assert result.not_attempted == []


def test_long_runs_log_progress(nxcloud_sandbox: NxCloudSandbox, caplog: pytest.LogCaptureFixture) -> None:
    from airflow_provider_nxcloud.batch.engine import run_batch
    from airflow_provider_nxcloud.batch.messages import normalise_messages
    from airflow_provider_nxcloud.batch.options import BatchOptions

    nxcloud_sandbox.set_faults(Faults(latency=0.02))
    hook = NxCloudHook()
    batch = normalise_messages([f"wamid.g{i}" for i in range(30)], default_business_phone="8613800000000")

    with caplog.at_level(logging.INFO, logger="airflow_provider_nxcloud.batch.engine"):
        run_batch(hook.client, batch, options=BatchOptions(max_workers=1), progress_interval=0.05)

    progress = [r.getMessage() for r in caplog.records if "messages done" in r.getMessage()]
    assert progress, "a run longer than the interval logs its progress"
    assert all("/30 messages done" in line and "msg/s" in line and "ETA" in line for line in progress)


def test_cancel_ends_backoff_waits_and_sends_nothing_more(nxcloud_sandbox: NxCloudSandbox) -> None:
    nxcloud_sandbox.set_faults(Faults(rates={"503": 1.0}))
    hook = NxCloudHook(retry_wait=(30.0, 30.0))  # without cancel, each retry would wait 30 s
    results = []
    batch = threading.Thread(
        target=lambda: results.append(hook.mark_messages_as_read(["wamid.c1", "wamid.c2"], max_workers=2))
    )
    batch.start()
    assert wait_until(lambda: len(nxcloud_sandbox.requests) >= 2, timeout=10)
    requests_before_cancel = len(nxcloud_sandbox.requests)

    hook.cancel()
    batch.join(timeout=10)

    assert not batch.is_alive(), "a cancelled hook must not sit out its 30 s backoff"
    assert len(nxcloud_sandbox.requests) == requests_before_cancel == 2
    (result,) = results
    assert [f.message.message_id for f in sorted(result.failed, key=lambda f: f.message.message_id)] == [
        "wamid.c1",
        "wamid.c2",
    ]
    assert all(f.status == "retryable" for f in result.failed)


def test_operator_on_kill_cancels_its_hook(nxcloud_sandbox: NxCloudSandbox) -> None:
    from airflow_provider_nxcloud.client.errors import NxCloudTransientError
    from airflow_provider_nxcloud.operators.whatsapp import MarkWhatsAppReadOperator

    operator = MarkWhatsAppReadOperator(task_id="mark", message_ids=["wamid.k1"])
    operator.on_kill()  # before any request: what is sent afterwards is refused too
    hook = operator.hook

    with pytest.raises(NxCloudTransientError, match="the client was cancelled"):
        hook.mark_message_as_read("wamid.k1")
    assert nxcloud_sandbox.requests == []


def test_operator_on_kill_stops_the_batch_and_leaves_the_rest_not_attempted(
    nxcloud_sandbox: NxCloudSandbox,
) -> None:
    # Airflow 3 calls on_kill from its SIGTERM handler and lets execute go on: the batch must end
    # soon, every id accounted for, so that execute pushes its result.
    from airflow_provider_nxcloud.batch.engine import mark_messages
    from airflow_provider_nxcloud.operators.whatsapp import MarkWhatsAppReadOperator

    nxcloud_sandbox.set_faults(Faults(latency=0.02))
    ids = [f"wamid.kill{i}" for i in range(300)]
    operator = MarkWhatsAppReadOperator(task_id="mark", message_ids=ids)
    results = []
    batch = threading.Thread(
        target=lambda: results.append(
            mark_messages(operator.hook.client, ids, stop=operator._stop, options=operator.options)
        )
    )
    batch.start()
    assert wait_until(lambda: len(nxcloud_sandbox.requests) >= 20, timeout=10), "the batch never started"

    operator.on_kill()
    batch.join(timeout=10)

    assert not batch.is_alive(), "the batch went on after on_kill"
    (result,) = results
    assert {m.message_id for m in result.marked} == nxcloud_sandbox.marked_ids()
    assert 20 <= len(result.marked) < 300
    assert len(result.marked) + len(result.failed) + len(result.not_attempted) == 300
    assert len(result.not_attempted) > 0, "once stopped, nothing more is sent"
    assert "the task is being killed" in result.describe_failure()
