"""Many messages through one hook: concurrency, the response-code policy, and the result.

The hook does the retrying and the rate cap (per request, retries included); this module decides
what each final answer means for the message and for the batch, and keeps every message
accounted for: each ends ``marked``, ``skipped``, ``failed`` or ``not_attempted``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_nxcloud.exceptions import (
    CONFIGURATION_CODES,
    TRANSIENT_CODES,
    NxCloudApiError,
    NxCloudConfigError,
    NxCloudTransientError,
    is_auth_code,
)

if TYPE_CHECKING:
    from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook
    from airflow_provider_nxcloud.messages import Message, NormalisedInput

UserAction = Literal["retry", "skip", "fail"]
Action = Literal["marked", "retry", "skip", "fail", "abort"]
CodeActions = Mapping[int, UserAction]
BatchState = Literal["success", "skipped", "failed", "failed_retryable"]

USER_ACTIONS: tuple[UserAction, ...] = ("retry", "skip", "fail")
PROGRESS_INTERVAL_SECONDS = 10.0

log = logging.getLogger(__name__)


def validate_code_actions(code_actions: Any) -> dict[int, UserAction]:
    """Check a user's ``code_actions`` once, at DAG parse time; one-line errors."""
    if code_actions is None:
        return {}
    if not isinstance(code_actions, Mapping):
        raise NxCloudConfigError(
            f'code_actions must be a dict like {{9006: "skip"}}, got {type(code_actions).__name__}'
        )
    checked: dict[int, UserAction] = {}
    for key, action in code_actions.items():
        # Keys arrive as strings from JSON params and templated configs: "9006" means 9006.
        code = int(key) if isinstance(key, str) and key.strip().lstrip("-").isdigit() else key
        if isinstance(code, bool) or not isinstance(code, int):
            raise NxCloudConfigError(f"code_actions: key {code!r} is not an NXCloud code; use ints like 9006")
        if code == 0:
            raise NxCloudConfigError("code_actions: code 0 means marked and cannot be overridden")
        if action not in USER_ACTIONS:
            raise NxCloudConfigError(
                f"code_actions[{code}]: {action!r} is not an action; use 'retry', 'skip' or 'fail'"
            )
        checked[code] = action
    return checked


def default_action(code: int | None, *, transient: bool) -> Action:
    """The documented policy for one final answer (after the hook's own retries)."""
    if code == 0:
        return "marked"
    if transient or code in TRANSIENT_CODES:
        return "retry"
    if code is None or is_auth_code(code) or code in CONFIGURATION_CODES:
        # No code (a redirect, a 404, TLS) or a credentials/account problem: the same for every
        # message, so sending more would only repeat it.
        return "abort"
    return "fail"


def retry_codes_for(overrides: Mapping[int, UserAction]) -> frozenset[int]:
    """The codes the hook should retry, after the user's overrides."""
    retry = {code for code, action in overrides.items() if action == "retry"}
    no_retry = {code for code, action in overrides.items() if action != "retry"}
    return frozenset((TRANSIENT_CODES | retry) - no_retry)


@dataclass(frozen=True, slots=True)
class Outcome:
    message: Message
    action: Action
    code: int | None = None
    reason: str = ""


@dataclass
class BatchResult:
    """What happened to every message; ``to_dict()`` is the operator's XCom value."""

    marked: list[Message] = field(default_factory=list)
    skipped: list[Outcome] = field(default_factory=list)
    failed: list[Outcome] = field(default_factory=list)
    not_attempted: list[Message] = field(default_factory=list)
    duplicates: int = 0
    abort: Outcome | None = None
    elapsed_seconds: float = 0.0

    @property
    def total(self) -> int:
        return len(self.marked) + len(self.skipped) + len(self.failed) + len(self.not_attempted)

    @property
    def state(self) -> BatchState:
        """success / skipped (nothing marked, nothing failed) / failed / failed_retryable."""
        if self.abort is not None or any(o.action != "retry" for o in self.failed):
            return "failed"
        if self.failed or self.not_attempted:
            return "failed_retryable"
        if not self.marked:
            return "skipped"
        return "success"

    def counts(self) -> dict[str, int]:
        return {
            "total": self.total,
            "marked": len(self.marked),
            "skipped": len(self.skipped),
            "failed": len(self.failed),
            "not_attempted": len(self.not_attempted),
            "duplicates": self.duplicates,
        }

    def summary(self) -> str:
        counts = self.counts()
        text = ", ".join(f"{counts[k]} {k.replace('_', ' ')}" for k in counts if k != "total")
        return f"{counts['total']} messages: {text}"

    def describe_failure(self) -> str:
        """One paragraph saying why the batch did not succeed and what to do."""
        if self.abort is not None:
            first = self.abort
            return (
                f"Stopped sending after code {first.code} for message {first.message.message_id} "
                f"(business phone {first.message.business_phone}): {first.reason}. {self.summary()}."
            )
        codes: dict[int | None, int] = {}
        for outcome in self.failed:
            codes[outcome.code] = codes.get(outcome.code, 0) + 1
        example = self.failed[0] if self.failed else None
        detail = f" First: {example.message.message_id}: {example.reason}." if example else ""
        by_code = ", ".join(f"code {c}: {n}" for c, n in codes.items())
        plural = "s" if len(self.failed) != 1 else ""
        return f"{len(self.failed)} message{plural} failed ({by_code}).{detail} {self.summary()}."

    def to_dict(self) -> dict[str, Any]:
        def entry(outcome: Outcome) -> dict[str, Any]:
            return {
                "message_id": outcome.message.message_id,
                "business_phone": outcome.message.business_phone,
                "code": outcome.code,
                "reason": outcome.reason,
            }

        return {
            "marked": [m.message_id for m in self.marked],
            "skipped": [entry(o) for o in self.skipped],
            "failed": [{**entry(o), "retryable": o.action == "retry"} for o in self.failed],
            "not_attempted": [m.message_id for m in self.not_attempted],
            "counts": self.counts(),
        }


def _mark_one(
    hook: NxCloudHook, message: Message, overrides: Mapping[int, UserAction], retry_codes: frozenset[int]
) -> Outcome:
    try:
        hook.mark_message_as_read(message.message_id, message.business_phone, retry_codes=retry_codes)
    except NxCloudApiError as error:
        code, transient = error.code, isinstance(error, NxCloudTransientError)
        override = overrides.get(code) if code is not None else None
        action = override or default_action(code, transient=transient)
        return Outcome(message, action, code, str(error))
    except NxCloudConfigError as error:
        return Outcome(message, "abort", None, str(error))
    except Exception as error:
        # A bug or an unforeseen library error: keep the message accounted for, not lost.
        return Outcome(message, "fail", None, f"unexpected {type(error).__name__}: {error}")
    return Outcome(message, "marked", 0)


def run_batch(
    hook: NxCloudHook,
    batch: NormalisedInput,
    *,
    max_workers: int = 8,
    code_actions: CodeActions | None = None,
    progress_interval: float = PROGRESS_INTERVAL_SECONDS,
) -> BatchResult:
    """Mark ``batch.messages`` with ``max_workers`` threads sharing ``hook``'s pool and rate cap."""
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise NxCloudConfigError(f"max_workers must be a positive int, got {max_workers!r}")
    overrides = validate_code_actions(code_actions)
    retry_codes = retry_codes_for(overrides)
    started = time.monotonic()
    result = BatchResult(duplicates=batch.duplicates)
    age = f"older than {batch.max_age_days:g} days: WhatsApp cannot mark it read"
    result.skipped.extend(Outcome(m, "skip", None, age) for m in batch.too_old)

    todo = batch.messages
    outcomes: list[Outcome | None] = [None] * len(todo)
    if todo:
        workers = min(max_workers, len(todo))
        hook.configure_concurrency(workers)
        hook.prepare()  # resolve the connection once, here, not racing in every thread
        next_index = itertools.count()  # next() on a count is atomic under the GIL
        stop = threading.Event()

        def work() -> None:
            while not stop.is_set():
                index = next(next_index)
                if index >= len(todo):
                    return
                outcome = _mark_one(hook, todo[index], overrides, retry_codes)
                outcomes[index] = outcome
                if outcome.action == "abort":
                    stop.set()

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nxcloud") as pool:
            futures = [pool.submit(work) for _ in range(workers)]
            try:
                while wait(futures, timeout=progress_interval).not_done:
                    _log_progress(outcomes, started)
            except BaseException:
                hook.cancel()  # the task is being killed: in-flight requests finish, no retries
                raise
            finally:
                stop.set()
            for future in futures:
                future.result()

    for message, outcome in zip(todo, outcomes, strict=True):
        if outcome is None:
            result.not_attempted.append(message)
        elif outcome.action == "marked":
            result.marked.append(message)
        elif outcome.action == "skip":
            result.skipped.append(outcome)
        else:
            result.failed.append(outcome)
            if outcome.action == "abort" and result.abort is None:
                result.abort = outcome
    result.elapsed_seconds = time.monotonic() - started
    return result


def _log_progress(outcomes: list[Outcome | None], started: float) -> None:
    done = sum(1 for outcome in outcomes if outcome is not None)
    elapsed = time.monotonic() - started
    rate = done / elapsed if elapsed > 0 else 0.0
    remaining = len(outcomes) - done
    eta = f"{remaining / rate:.0f} s" if rate > 0 else "unknown"
    log.info("NXCloud: %d/%d messages done (%.0f msg/s), ETA %s", done, len(outcomes), rate, eta)
