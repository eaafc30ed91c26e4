"""What the hook retries and how long it waits: tenacity, honouring ``Retry-After``, cancellable."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_when_event_set,
)
from tenacity.wait import wait_exponential, wait_random

from airflow_provider_nxcloud.client.errors import NxCloudTransientError

if TYPE_CHECKING:
    import threading
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


def transient_retrying(
    *, max_retries: int, wait: tuple[float, float], cancelled: threading.Event, log: Any
) -> Retrying:
    """Retry ``NxCloudTransientError`` ``max_retries`` times; a set ``cancelled`` ends waits at once."""

    def log_retry(retry_state: RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        seconds = retry_state.next_action.sleep if retry_state.next_action else 0.0
        log.info(
            "NXCloud attempt %d failed (%s); retrying in %.1f s", retry_state.attempt_number, error, seconds
        )

    return Retrying(
        retry=retry_if_exception_type(NxCloudTransientError),
        stop=stop_after_attempt(max_retries + 1) | stop_when_event_set(cancelled),
        sleep=cancelled.wait,  # type: ignore[arg-type]  # a wait ends the moment the hook is cancelled
        wait=WaitHonouringRetryAfter(*wait),
        before_sleep=log_retry,
        reraise=True,
    )
