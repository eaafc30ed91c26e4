"""Messages -> concurrent requests through any ``MarkReadClient`` -> a ``BatchResult``.

The client (``NxCloudClient``) does the retrying and the rate cap, per request and retries included;
this module decides what each final answer means for the message and for the batch, and keeps
every message accounted for: each ends ``marked``, ``skipped``, ``failed`` or ``not_attempted``.
By default it sends one request per conversation (``conversations.py``): the newest message of a
customer's thread (every message of its newest second), then the next newest only if those
failed for themselves.
It depends on the small ``MarkReadClient`` protocol, never on the hook, so imports point down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from itertools import chain
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_nxcloud.batch.checkpoint import Progress
from airflow_provider_nxcloud.batch.conversations import units_to_send
from airflow_provider_nxcloud.batch.messages import normalise_messages
from airflow_provider_nxcloud.batch.options import BatchOptions
from airflow_provider_nxcloud.batch.results import BatchResult, Outcome
from airflow_provider_nxcloud.client.config import require_appkey
from airflow_provider_nxcloud.client.errors import (
    NxCloudApiError,
    NxCloudConfigError,
    NxCloudRetryBudgetError,
    NxCloudTransientError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from airflow_provider_nxcloud.batch.checkpoint import Checkpoint
    from airflow_provider_nxcloud.batch.conversations import Unit
    from airflow_provider_nxcloud.batch.messages import Message, NormalisedInput
    from airflow_provider_nxcloud.client.api import CodeKey

PROGRESS_INTERVAL_SECONDS = 10.0
# Why the rest of a batch was not sent when the caller's ``stop`` ended it (``on_kill``).
STOPPED_REASON = "not sent: the batch was stopped (the task is being killed)"

log = logging.getLogger(__name__)


class MarkReadClient(Protocol):
    """What the batch needs of a client: ``NxCloudClient`` is one."""

    @property
    def business_phone(self) -> str | None:
        """The default business phone, for messages without one."""

    @property
    def requests_sent(self) -> int:
        """HTTP requests sent so far, every attempt (retries) included; the batch reports its share."""

    def ready_for_threads(self, workers: int) -> None:
        """Size shared resources for ``workers`` threads; called once, before they start."""

    @property
    def appkey(self) -> str | None:
        """The WhatsApp application's appkey; read only when the batch shows a typing indicator."""

    def mark_message_as_read(
        self,
        message_id: str,
        business_phone: str | None = None,
        *,
        typing_indicator: bool = ...,
        retry_overrides: Mapping[CodeKey, bool] = ...,
    ) -> object:
        """
        Mark one message, with ``typing_indicator=True`` also showing "typing..."; raise
        ``NxCloudApiError`` (with ``.code``) for anything but code 0. ``typing_indicator`` is
        passed only when True, so a client written before it works while the batch shows none.
        """

    def cancel(self) -> None:
        """Stop retrying at once (the task is being killed)."""

    @property
    def rate_limit_found(self) -> float | None:
        """The rate (requests/s) NXCloud throttled at, for the result; None if it never did."""


def mark_messages(
    client: MarkReadClient,
    messages: Any,
    *,
    business_phone: str | None = None,
    options: BatchOptions | None = None,
    checkpoint: Checkpoint | None = None,
    result: BatchResult | None = None,
    stop: threading.Event | None = None,
) -> BatchResult:
    """
    Validate ``messages`` (anything the operator's ``message_ids`` takes), then mark them.

    Invalid input raises NxCloudConfigError before any request is sent; after that nothing raises
    for a message. Messages without a business phone get ``business_phone``, else the client's.
    With a ``checkpoint`` (``batch/checkpoint.py``), what is marked is recorded there as the batch
    goes, and a new call with the same input sends only what an earlier one did not mark.

    ``result`` (an empty ``BatchResult``) is filled in and returned; when the call is interrupted
    (a timeout or a kill raising in this thread) it is still filled in with what is known, the
    rest ``not_attempted``, before the exception leaves: the caller can report it. Setting
    ``stop`` (from any thread, or a signal handler) ends the batch early the same way, without
    an exception: no new message is sent.
    """
    options = options or BatchOptions()
    batch = normalise_messages(
        messages,
        default_business_phone=business_phone,
        # Looked up only when a message lacks a phone: it may resolve the connection.
        fallback_business_phone=(lambda: client.business_phone) if business_phone is None else None,
        max_age_days=options.max_message_age_days,
    )
    return run_batch(client, batch, options=options, checkpoint=checkpoint, result=result, stop=stop)


class _Stops:
    """Where sending stopped, and why: the whole batch, or one business number's messages."""

    def __init__(self, outside: threading.Event | None = None) -> None:
        self.batch = threading.Event()
        # The caller's stop (``on_kill``: the task is being killed), only read: it is the caller's.
        self._outside = outside
        self.batch_reason = ""
        self.numbers: dict[str, str] = {}
        self._lock = threading.Lock()

    def stop_batch(self, reason: str) -> None:
        with self._lock:
            self.batch_reason = self.batch_reason or reason
        self.batch.set()

    def stop_number(self, business_phone: str, reason: str) -> None:
        with self._lock:
            self.numbers.setdefault(business_phone, reason)

    def batch_stopped(self) -> bool:
        return self.batch.is_set() or (self._outside is not None and self._outside.is_set())

    def stopped(self, business_phone: str) -> bool:
        return self.batch_stopped() or business_phone in self.numbers

    def reason(self, business_phone: str) -> str:
        found = self.numbers.get(business_phone) or self.batch_reason
        if not found and self._outside is not None and self._outside.is_set():
            return STOPPED_REASON
        return found


def _mark_one(
    client: MarkReadClient, message: Message, options: BatchOptions, stops: _Stops, *, typing: bool
) -> Outcome:
    """
    One message's request; an answer that stops the batch or its number says so to ``stops``.
    Anything but an NXCloud error is a bug, not a failed message: it propagates.
    """
    indicator: dict[str, bool] = {"typing_indicator": True} if typing else {}
    try:
        client.mark_message_as_read(
            message.message_id, message.business_phone, retry_overrides=options.retry_overrides, **indicator
        )
    except NxCloudApiError as error:
        transient = isinstance(error, NxCloudTransientError)
        status = options.decide(error.code, transient=transient, meta_code=error.meta_code)
        outcome = Outcome(message, status, error.code, str(error), meta_code=error.meta_code)
        if isinstance(error, NxCloudRetryBudgetError):
            stops.stop_batch(
                "not sent: NXCloud looks down (the retry budget is exhausted: most recent requests "
                "failed transiently); Airflow's retries send them later"
            )
        elif status == "aborted":
            stops.stop_batch(f"not sent: sending stopped after message {message.message_id}: {error}")
        elif status == "number_aborted":
            stops.stop_number(
                message.business_phone,
                f"not sent: sending for this number stopped after message {message.message_id}: {error}",
            )
        return outcome
    except NxCloudConfigError as error:
        stops.stop_batch(f"not sent: {error}")
        return Outcome(message, "aborted", None, str(error))
    return Outcome(message, "marked", 0, typing_indicator=typing)


def _mark_unit(
    client: MarkReadClient,
    todo: list[Message],
    unit: Unit,
    outcomes: list[Outcome | None],
    options: BatchOptions,
    stops: _Stops,
) -> None:
    """
    Send a unit's tiers newest first until one marks.

    Every message of a tier is sent: same-second messages have no known order, so none is read
    on another's behalf. Once one of the tier is marked, the older tiers are marked with it.
    Otherwise, when one failed transiently (after the client's retries), the older ones stay
    unread and retryable; when all failed or were skipped for themselves (a deleted message,
    9000, a code the user maps to skip or fail), the next tier is sent. A stop of the batch (an
    abort, the retry budget, the task being killed) or of this business number, here or in
    another thread, leaves the rest of the thread ``not_attempted``: nothing was sent for them.

    With ``options.typing_indicator`` the unit's requests carry the indicator until one marks:
    the thread's newest message shows "typing..." once, before the reply that answers it. Of a
    tier of same-second messages only the first carries it (one indicator, one reply: the rest
    are still each marked, plainly); the next carries it only if that one was not marked, and so
    on into an older tier sent because the newer failed for itself.
    """
    typing = options.typing_indicator
    for position, tier in enumerate(unit):
        marked: Outcome | None = None
        transient: Outcome | None = None
        for index in tier:
            if stops.stopped(todo[index].business_phone) and (position or index != tier[0]):
                return
            outcome = outcomes[index] = _mark_one(client, todo[index], options, stops, typing=typing)
            typing = typing and outcome.status != "marked"
            if outcome.status in {"aborted", "number_aborted"}:
                return
            if outcome.status == "marked":
                marked = marked or outcome
            elif outcome.status == "retryable":
                transient = transient or outcome
        older = [index for later in unit[position + 1 :] for index in later]
        if marked is not None:
            for other in older:
                outcomes[other] = Outcome(todo[other], "marked", 0, via=marked.message)
            return
        if transient is not None:
            reason = (
                f"not sent: {transient.message.message_id}, newer in the same conversation, failed "
                f"transiently ({transient.reason})"
            )
            for other in older:
                outcomes[other] = Outcome(
                    todo[other], "retryable", transient.code, reason, meta_code=transient.meta_code
                )
            return


def run_batch(
    client: MarkReadClient,
    batch: NormalisedInput,
    *,
    options: BatchOptions | None = None,
    progress_interval: float = PROGRESS_INTERVAL_SECONDS,
    checkpoint: Checkpoint | None = None,
    result: BatchResult | None = None,
    stop: threading.Event | None = None,
) -> BatchResult:
    """
    Mark ``batch.messages`` with ``options.max_workers`` threads sharing ``client``.

    ``result`` and ``stop``: as ``mark_messages`` says.
    """
    options = options or BatchOptions()
    if options.typing_indicator:
        require_appkey(client.appkey)  # a configuration error, before any request
    started = time.monotonic()
    result = result if result is not None else BatchResult()
    result.duplicates = batch.duplicates

    # Those an earlier try marked are out before units are formed: a thread whose newest was
    # marked is done, and the rest of a thread is sent as a thread of its own.
    progress = Progress(checkpoint, batch.messages)
    todo = progress.left
    # Too-old messages are already out: a thread's newest is its newest still markable message.
    units, result.conversations = units_to_send(todo, grouped=options.one_request_per_conversation)
    outcomes: list[Outcome | None] = [None] * len(todo)
    requests_before = client.requests_sent
    # The caller's stop (the task being killed) stops the batch as an abort does.
    stops = _Stops(stop)

    def finish() -> None:
        result.requests = client.requests_sent - requests_before
        _collect(result, batch, todo, outcomes, progress, stops)
        result.elapsed_seconds = time.monotonic() - started
        result.rate_limit_per_second = client.rate_limit_found

    if units:
        workers = min(options.max_workers, len(units))
        client.ready_for_threads(workers)
        shares = NumberShares(units, todo, workers)

        def work() -> None:
            while (index := shares.take()) is not None:
                try:
                    if stops.batch_stopped():
                        return
                    if not stops.stopped(todo[units[index][0][0]].business_phone):
                        _mark_unit(client, todo, units[index], outcomes, options, stops)
                    progress.add(chain.from_iterable(units[index]), outcomes)
                except BaseException:
                    # A bug, not a failed message: stop every thread; run_batch raises it, once.
                    stops.stop_batch("not sent: the batch stopped on an unexpected error")
                    raise
                finally:
                    shares.done(index)

        with (
            _finishing_if_interrupted(finish),  # exits last: once the workers have stopped
            progress.flushing(),
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nxcloud") as pool,
        ):
            futures = [pool.submit(work) for _ in range(workers)]
            try:
                while wait(futures, timeout=progress_interval).not_done:
                    _log_progress(outcomes, started)
            except BaseException as error:
                client.cancel()  # the task is being killed: in-flight requests finish, no retries
                stops.stop_batch(f"not sent: the batch was interrupted ({type(error).__name__})")
                raise
            finally:
                stops.batch.set()
            for future in futures:
                future.result()  # the first worker's unexpected error, with its traceback
    finish()
    if result.state == "success":
        progress.clear()
    return result


@contextmanager
def _finishing_if_interrupted(finish: Callable[[], None]) -> Iterator[None]:
    """Run ``finish`` when an exception (a timeout, a kill) leaves the block, then let it go on."""
    try:
        yield
    except BaseException:
        finish()
        raise


def _collect(
    result: BatchResult,
    batch: NormalisedInput,
    todo: list[Message],
    outcomes: list[Outcome | None],
    progress: Progress,
    stops: _Stops,
) -> None:
    """Every message into ``result``, once: filled in only here, so a result is empty or whole."""
    if batch.too_old:  # never with max_age_days None (no age check), which ``:g`` cannot format
        age = f"older than {batch.max_age_days:g} days: WhatsApp cannot mark it read"
        result.skipped.extend(Outcome(m, "skipped", None, age) for m in batch.too_old)
    result.marked.extend(progress.earlier)
    result.marked_earlier = len(progress.earlier)
    for message, outcome in zip(todo, outcomes, strict=True):
        if outcome is None:
            result.not_attempted.append(message)
            if reason := stops.reason(message.business_phone):
                result.not_attempted_reasons.setdefault(message.business_phone, reason)
        elif outcome.status == "marked":
            result.marked.append(message)
            if outcome.via is not None:
                result.marked_via[message] = outcome.via
            result.typing_indicators += outcome.typing_indicator
        elif outcome.status == "skipped":
            result.skipped.append(outcome)
        else:
            result.failed.append(outcome)
            if outcome.status == "aborted" and result.abort is None:
                result.abort = outcome


class NumberShares:
    """
    Hands out the units in input order, but no business number more than its share of the
    threads (threads / numbers with units left). WhatsApp limits each number's throughput on its
    own (Meta's 130429, which slows that number's requests): without shares every thread ends
    up waiting on the throttled number, and the others crawl with it (measured: 0.16x their pace
    with one of two numbers throttled; 1.04x with shares, ``benchmarks/whatsapp_rules.py``).
    """

    def __init__(self, units: list[Unit], todo: list[Message], threads: int) -> None:
        self._queues: dict[str, deque[int]] = {}
        self._number_of: list[str] = []
        for index, unit in enumerate(units):
            number = todo[unit[0][0]].business_phone
            self._number_of.append(number)
            self._queues.setdefault(number, deque()).append(index)
        self._busy = dict.fromkeys(self._queues, 0)
        self._threads = threads
        self._changed = threading.Condition()

    def take(self) -> int | None:
        """The next unit this thread may send, waiting while its number has its share; None: none left."""
        with self._changed:
            while True:
                waiting = [number for number, queue in self._queues.items() if queue]
                if not waiting:
                    return None
                active = sum(1 for number in self._queues if self._queues[number] or self._busy[number])
                share = -(-self._threads // active)  # ceil: every thread has work when it can
                open_numbers = [number for number in waiting if self._busy[number] < share]
                if open_numbers:
                    number = min(open_numbers, key=lambda n: self._queues[n][0])
                    self._busy[number] += 1
                    return self._queues[number].popleft()
                self._changed.wait()

    def done(self, index: int) -> None:
        with self._changed:
            self._busy[self._number_of[index]] -= 1
            self._changed.notify_all()


def _log_progress(outcomes: list[Outcome | None], started: float) -> None:
    done = sum(1 for outcome in outcomes if outcome is not None)
    elapsed = time.monotonic() - started
    rate = done / elapsed if elapsed > 0 else 0.0
    remaining = len(outcomes) - done
    eta = f"{remaining / rate:.0f} s" if rate > 0 else "unknown"
    log.info("NXCloud: %d/%d messages done (%.0f msg/s), ETA %s", done, len(outcomes), rate, eta)
