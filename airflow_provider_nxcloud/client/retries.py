"""What the hook retries and how long it waits: tenacity, honouring ``Retry-After``, cancellable."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_when_event_set,
)
from tenacity.wait import wait_exponential, wait_random

from airflow_provider_nxcloud.client.errors import NxCloudRetryBudgetError, NxCloudTransientError

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable
    from typing import Any


class WaitHonouringRetryAfter:
    """Exponential backoff with jitter, but never sooner than the server's ``Retry-After``."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._backoff = wait_exponential(multiplier=initial, max=maximum) + wait_random(0, initial)

    def __call__(self, retry_state: RetryCallState) -> float:
        wait = self._backoff(retry_state)
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, NxCloudTransientError) and error.retry_after is not None:
            wait = max(wait, error.retry_after)
        return wait


def _retried(error: BaseException) -> bool:
    # The retry budget refusing is the answer to "retry?": no.
    return isinstance(error, NxCloudTransientError) and not isinstance(error, NxCloudRetryBudgetError)


def transient_retrying(
    *,
    max_retries: int,
    wait: tuple[float, float],
    cancelled: threading.Event,
    log: Any,
    sleep: Callable[[float], object] | None = None,
) -> Retrying:
    """
    Retry ``NxCloudTransientError`` ``max_retries`` times; a set ``cancelled`` ends waits at once,
    and so does whatever ends ``sleep`` early (default: waiting on ``cancelled``).
    """

    def log_retry(retry_state: RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        seconds = retry_state.next_action.sleep if retry_state.next_action else 0.0
        log.info(
            "NXCloud attempt %d failed (%s); retrying in %.1f s", retry_state.attempt_number, error, seconds
        )

    return Retrying(
        retry=retry_if_exception(_retried),
        stop=stop_after_attempt(max_retries + 1) | stop_when_event_set(cancelled),
        sleep=sleep or cancelled.wait,  # type: ignore[arg-type]  # a wait ends the moment the hook is cancelled
        wait=WaitHonouringRetryAfter(*wait),
        before_sleep=log_retry,
        reraise=True,
    )
