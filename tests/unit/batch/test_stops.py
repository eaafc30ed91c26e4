"""What stops a batch, and what stops only part of it (pure logic, over the fake client).

Over HTTP against the sandbox: tests/integration/test_bad_day_sandbox.py.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import pytest

from airflow_provider_nxcloud.batch.engine import STOPPED_REASON, mark_messages
from airflow_provider_nxcloud.batch.results import BatchResult
from airflow_provider_nxcloud.client.errors import NxCloudRetryBudgetError, NxCloudTransientError
from tests.unit.batch.fakes import OTHER_PHONE, PHONE, FakeClient, failed, marked, run


def _alternating(count: int) -> list[dict[str, Any]]:
    return [{"id": f"m{i}", "business_phone": PHONE if i % 2 else OTHER_PHONE} for i in range(count)]


@pytest.mark.parametrize("code", [9002, 9006])
@pytest.mark.parametrize("workers", [1, 4])
def test_a_bad_number_stops_only_its_own_messages(code: int, workers: int) -> None:
    # Every request for OTHER_PHONE is answered ``code``; PHONE is healthy.
    records = _alternating(200)
    client = FakeClient({r["id"]: code for r in records if r["business_phone"] == OTHER_PHONE})

    result = run(records, client, max_workers=workers)

    assert sorted(marked(result)) == sorted(r["id"] for r in records if r["business_phone"] == PHONE)
    assert len(result.failed) <= workers  # the requests in flight when the first answer came
    assert {status for _, status in failed(result).values()} == {"number_aborted"}
    assert {m.business_phone for m in result.not_attempted} == {OTHER_PHONE}
    assert len(result.failed) + len(result.not_attempted) == 100
    assert set(result.not_attempted_reasons) == {OTHER_PHONE}
    assert f"NXCloud code {code}" in result.not_attempted_reasons[OTHER_PHONE]
    assert result.abort is None
    assert result.state == "failed"  # the number's configuration must be fixed: no Airflow retries
    assert result.to_dict()["not_attempted_reasons"] == result.not_attempted_reasons
    assert OTHER_PHONE in result.describe_failure()


@pytest.mark.parametrize("code", [1003, 9003, 9004, 9005])
def test_an_account_code_still_stops_every_number(code: int) -> None:
    records = _alternating(40)
    client = FakeClient({"m0": code})

    result = run(records, client, max_workers=1)

    assert client.sent == ["m0"]
    assert result.abort is not None and result.abort.code == code
    assert set(result.not_attempted_reasons) == {PHONE, OTHER_PHONE}


def test_a_code_action_for_a_number_code_keeps_sending() -> None:
    records = _alternating(10)
    client = FakeClient({r["id"]: 9006 for r in records if r["business_phone"] == OTHER_PHONE})

    result = run(records, client, max_workers=1, code_actions={9006: "skip"})

    assert len(client.sent) == 10
    assert len(result.skipped) == 5 and not result.not_attempted


class _BudgetClient(FakeClient):
    """Every request fails transiently; from the ``after``-th on, the retry budget refuses."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    def mark_message_as_read(self, message_id: str, business_phone: str | None = None, **_: Any) -> object:
        with self._lock:
            self.sent.append(message_id)
            self._requests += 1
            refused = len(self.sent) >= self.after
        raise (NxCloudRetryBudgetError if refused else NxCloudTransientError)("HTTP 503")


def test_an_exhausted_retry_budget_stops_starting_messages_and_ends_retryable() -> None:
    records = [f"m{i}" for i in range(1000)]
    client = _BudgetClient(after=10)

    result = run(records, client, max_workers=4)

    assert len(client.sent) < 10 + 4  # no message started after the refusal but those in flight
    assert len(result.not_attempted) > 980
    assert {status for _, status in failed(result).values()} == {"retryable"}
    assert result.state == "failed_retryable"
    assert "NXCloud looks down" in result.not_attempted_reasons[PHONE]


class _BuggyClient(FakeClient):
    def mark_message_as_read(self, message_id: str, business_phone: str | None = None, **_: Any) -> object:
        with self._lock:
            self.sent.append(message_id)
        raise RuntimeError(f"a bug, met at {message_id}")


def test_a_bug_in_a_worker_is_raised_once_not_turned_into_failed_messages() -> None:
    client = _BuggyClient()

    with pytest.raises(RuntimeError, match="a bug, met at m"):
        run([f"m{i}" for i in range(500)], client, max_workers=4)

    assert len(client.sent) <= 4  # each thread met it at most once, then every thread stopped


def test_a_callers_stop_gives_the_rest_a_reason() -> None:
    # on_kill sets the operator's stop: what was not sent must say why, as an abort's rest does.
    stop = threading.Event()
    stop.set()

    result = mark_messages(FakeClient(), [f"m{i}" for i in range(10)], stop=stop)

    assert len(result.not_attempted) == 10
    assert result.not_attempted_reasons == {PHONE: STOPPED_REASON}
    assert STOPPED_REASON in result.describe_failure()


class _Timeout(Exception):
    """Stands for Airflow's AirflowTaskTimeout, raised in the main thread by a SIGALRM handler."""


class _HangingClient(FakeClient):
    """Every request hangs until the batch cancels the client (bounded: 10 s)."""

    def __init__(self) -> None:
        super().__init__()
        self.cancelled = threading.Event()
        self.started = threading.Event()

    def cancel(self) -> None:
        self.cancelled.set()

    def mark_message_as_read(self, message_id: str, business_phone: str | None = None, **_: Any) -> object:
        self.started.set()
        if not self.cancelled.wait(10):
            raise AssertionError("the batch never cancelled its client after the timeout")
        raise NxCloudTransientError("not sent: the client was cancelled (task killed)")


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs SIGALRM, as Airflow's timeout does")
def test_an_interrupted_batch_gives_the_rest_a_reason() -> None:
    # execution_timeout raises in the thread running the batch; the result it fills in must say
    # why the rest was not sent, naming the interruption.
    def time_out(*_: object) -> None:
        raise _Timeout

    client = _HangingClient()
    result = BatchResult()
    previous = signal.signal(signal.SIGALRM, time_out)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(_Timeout):
            mark_messages(client, [f"m{i}" for i in range(50)], result=result)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    assert client.started.is_set(), "no request was started before the timeout"
    assert result.total == 50 and len(result.not_attempted) > 0
    assert result.not_attempted_reasons == {PHONE: "not sent: the batch was interrupted (_Timeout)"}
