"""The retry policy: backoff never sooner than Retry-After, a bounded number of attempts, cancellable."""

from __future__ import annotations

import logging
import threading

import pytest
from tenacity import RetryCallState, Retrying

from airflow_provider_nxcloud.client.errors import NxCloudApiError, NxCloudTransientError
from airflow_provider_nxcloud.client.retries import WaitHonouringRetryAfter, transient_retrying

LOG = logging.getLogger(__name__)


def state_after(error: BaseException, attempt: int = 1) -> RetryCallState:
    state = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(error), error, None))
    return state


def test_backoff_grows_and_stays_within_its_bounds() -> None:
    wait = WaitHonouringRetryAfter(0.5, 4.0)
    waits = [wait(state_after(NxCloudTransientError("busy"), attempt)) for attempt in range(1, 8)]

    assert all(0.5 <= seconds <= 4.5 for seconds in waits)
    assert waits[-1] >= 4.0


def test_retry_after_is_a_floor_on_the_wait() -> None:
    wait = WaitHonouringRetryAfter(0.1, 0.2)

    assert wait(state_after(NxCloudTransientError("slow down", retry_after=7.0))) == 7.0


def test_only_transient_errors_are_retried_up_to_max_retries() -> None:
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        raise NxCloudTransientError("busy")

    retrying = transient_retrying(max_retries=2, wait=(0.0, 0.0), cancelled=threading.Event(), log=LOG)
    with pytest.raises(NxCloudTransientError):
        retrying(flaky)
    assert len(calls) == 3

    calls.clear()

    def refused() -> None:
        calls.append(1)
        raise NxCloudApiError("bad id", code=9000)

    with pytest.raises(NxCloudApiError):
        retrying(refused)
    assert len(calls) == 1


def test_a_cancelled_event_stops_retrying_without_waiting() -> None:
    cancelled = threading.Event()
    calls: list[int] = []

    def fail_and_cancel() -> None:
        calls.append(1)
        cancelled.set()  # the task is killed while this attempt is in flight
        raise NxCloudTransientError("busy")

    # A backoff of an hour: the test would hang if the cancel did not end the wait.
    retrying = transient_retrying(max_retries=5, wait=(3600.0, 3600.0), cancelled=cancelled, log=LOG)
    with pytest.raises(NxCloudTransientError):
        retrying(fail_and_cancel)
    assert len(calls) == 1
