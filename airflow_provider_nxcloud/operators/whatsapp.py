"""MarkWhatsAppReadOperator: message ids from upstream -> marked read -> a task state and a result."""

from __future__ import annotations

import threading
from datetime import timedelta
from functools import cached_property
from inspect import signature
from typing import TYPE_CHECKING, Any

from airflow_provider_nxcloud.batch.options import MAX_MESSAGE_AGE_DAYS, MAX_WORKERS, BatchOptions
from airflow_provider_nxcloud.client.config import check_optional_bool, check_positive
from airflow_provider_nxcloud.client.errors import NxCloudConfigError, NxCloudTransientError
from airflow_provider_nxcloud.get_provider_info import DEFAULT_CONN_ID
from airflow_provider_nxcloud.version_compat import AirflowFailException, AirflowSkipException, BaseOperator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_nxcloud.batch.checkpoint import Checkpoint
    from airflow_provider_nxcloud.batch.options import CodeActions
    from airflow_provider_nxcloud.batch.results import BatchResult
    from airflow_provider_nxcloud.client.client import NxCloudClient
    from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook
    from airflow_provider_nxcloud.version_compat import Context

# The hook (and with it requests) is imported when a task runs, not each time the scheduler
# parses a DAG file that uses this operator.


def _batch_options(
    *,
    max_workers: Any = MAX_WORKERS,
    max_requests_per_second: Any = None,
    max_message_age_days: Any = MAX_MESSAGE_AGE_DAYS,
    code_actions: Any = None,
    one_request_per_conversation: Any = True,
    typing_indicator: Any = False,
    adaptive_rate: Any = None,
    durable: Any = None,
    **_other_arguments: Any,
) -> BatchOptions:
    """The operator's arguments checked and turned into the batch's options: pure, no I/O."""
    if max_requests_per_second is not None:
        check_positive("max_requests_per_second", max_requests_per_second, integer=False)
    check_optional_bool("adaptive_rate", adaptive_rate)
    check_optional_bool("durable", durable)
    return BatchOptions(
        max_workers=max_workers,
        code_actions=code_actions or {},
        max_message_age_days=max_message_age_days,
        one_request_per_conversation=one_request_per_conversation,
        typing_indicator=typing_indicator,
    )


class MarkWhatsAppReadOperator(BaseOperator):
    """
    Mark inbound WhatsApp messages as read through NXCloud, concurrently and under a rate cap.

    The task ends **success** when every message was marked (or skipped), **skipped** when there
    was nothing to mark, and **failed** otherwise: without Airflow retries for credential,
    configuration or permanent per-message errors, with them for transient ones. A credential or
    account error stops the batch, a business number's own (9002, 9006) only that number's
    messages; when most recent requests fail transiently (an outage: the client's retry budget)
    no new message is started and the task ends with Airflow retries. What was not sent ends
    ``not_attempted``. The outcomes table is in ``docs/operators/mark_read.rst``. The result::

        {"marked": [ids], "marked_with_newer": {id: newer_id},
         "skipped": [{message_id, business_phone, code, meta_code, reason}],
         "failed": [{message_id, business_phone, code, meta_code, reason, retryable}],
         "not_attempted": [ids], "counts": {...},
         "not_attempted_reasons": {business_phone: reason},  # only when sending stopped
         "rate_limit_per_second": float}  # only when NXCloud throttled

    ``marked`` lists every id marked; ``marked_with_newer`` says which of them a newer message's
    request marked (see ``one_request_per_conversation``), and by which message.

    With ``do_xcom_push`` (the default) the result is pushed to XCom (``return_value``) when the
    task succeeds, is skipped or fails for its messages, so an ``all_done`` downstream task can
    record it; and, with the ids marked so far and the rest ``not_attempted``, when marking is
    interrupted once it has begun: ``execution_timeout``, a kill (SIGTERM: ``on_kill`` stops the
    batch, which ends failed with the rest ``not_attempted``) or any other exception. The
    original error is raised all the same. Nothing is pushed when the input or the connection is
    invalid (nothing was sent), nor after a SIGKILL. With ``do_xcom_push=False`` nothing is
    pushed on any path.

    After the batch, on every path above, the task sends metrics through Airflow's ``Stats``
    (StatsD or OpenTelemetry, as the worker's ``[metrics]`` section says): per business number
    the counters ``nxcloud.marked``, ``nxcloud.marked_with_newer``, ``nxcloud.skipped``,
    ``nxcloud.failed``, ``nxcloud.retryable`` and ``nxcloud.not_attempted``; per task
    ``nxcloud.requests``, ``nxcloud.retries``, ``nxcloud.throttled``, the timer
    ``nxcloud.batch_duration`` and the gauge ``nxcloud.rate_limit``. A failing metrics backend
    is logged, never fails the task.

    :param message_ids: ids, records (``id``/``message_id``, ``business_phone``, ``from`` or
        ``from_user_id``, ``timestamp``, ``group_id``), webhook payloads, or an XComArg of any of
        these; nested lists are flattened. (templated)
    :param business_phone: merchant number for records without one; default: the
        connection's ``business_phone`` extra. (templated)
    :param nxcloud_conn_id: the ``nxcloud`` connection. (templated)
    :param max_workers: requests in flight at once.
    :param max_requests_per_second: rate cap of this task try (all workers, retries included;
        other tasks on the connection have caps of their own); None: the connection's
        ``max_requests_per_second`` extra, else no cap.
    :param adaptive_rate: when NXCloud throttles (HTTP 429, or Meta's 4 and 80007 passed through
        as 9099), slow down to just under the rate it accepts; the result's
        ``rate_limit_per_second`` says which. Meta's 130429 slows only its business number. None:
        the connection's ``adaptive_rate`` extra, else on.
    :param code_actions: override the policy for a code: ``"retry"``, ``"skip"`` or ``"fail"``,
        e.g. ``{9006: "skip"}``; ``"meta:<code>"`` keys one Meta code of a 9099, and wins over
        ``9099``: ``{"meta:131009": "skip"}`` skips ids WhatsApp no longer knows, not throttles.
    :param max_message_age_days: skip (without a request) messages whose ``timestamp`` is older;
        WhatsApp cannot mark them. None disables the check.
    :param one_request_per_conversation: one-to-one records with a customer (``from``, else
        ``from_user_id``) and a ``timestamp`` are grouped by (business phone, customer), and only
        each thread's newest second is sent (every message of it: same-second messages have no
        known order), the next newest if those fail for themselves: WhatsApp marks the earlier
        messages with them. Group messages (``group_id``) are always sent each on their own.
        False: one request per message.
    :param typing_indicator: also show each customer that the business is typing, through
        NXCloud's ``typingIndicator`` (it marks read as well; the customer sees "typing..." until
        the reply, or 25 s). It goes with each unit's first request that marks: a thread's
        newest message (one of a same-second tie), a bare id's or group message's own.
        ``counts["typing_indicators"]`` says how many were shown. Needs the connection's
        ``appkey`` extra (checked before any request). Meta's advice: only when a reply follows.
    :param durable: record what is marked as the batch goes, in Airflow's task state store (3.3+),
        so that a retry, or the next try after a killed worker, sends only what is left: at most
        the last second or two before a kill goes out twice. The result of the try that ends the
        task lists every message marked in any try under ``marked``; ``counts["marked_earlier"]``
        says how many of them earlier tries marked. The checkpoint belongs to this task instance
        and its input: when the upstream XCom changed between tries (a cleared upstream), it is
        ignored and everything is sent. A successful try deletes it; Airflow would not by default
        (``[state_store] clear_on_success`` is False; rows expire after ``default_retention_days``
        and go with their DAG run), and a clear of this task alone keeps it, so a cleared task
        that had failed sends only what is left too. None (default): on where the store exists.
        Below Airflow 3.3 there is no store, and a try's XCom is deleted before the next try runs
        (2.x ``clear_xcom_data``, 3.x ``xcom_keys_to_clear``), so nothing survives a try: every
        try sends everything, as before; True there logs a warning. Re-sending is harmless (a
        message marked twice stays read), only slower.
    """

    template_fields: Sequence[str] = ("message_ids", "business_phone", "nxcloud_conn_id")
    ui_color = "#25d366"

    def __init__(
        self,
        *,
        message_ids: Any,
        business_phone: str | None = None,
        nxcloud_conn_id: str = DEFAULT_CONN_ID,
        max_workers: int = MAX_WORKERS,
        max_requests_per_second: float | None = None,
        code_actions: CodeActions | None = None,
        max_message_age_days: float | None = MAX_MESSAGE_AGE_DAYS,
        one_request_per_conversation: bool = True,
        typing_indicator: bool = False,
        adaptive_rate: bool | None = None,
        durable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.message_ids = message_ids
        self.business_phone = business_phone
        self.nxcloud_conn_id = nxcloud_conn_id
        self.max_workers = max_workers
        self.max_requests_per_second = max_requests_per_second
        self.code_actions = code_actions
        self.max_message_age_days = max_message_age_days
        self.one_request_per_conversation = one_request_per_conversation
        self.typing_indicator = typing_indicator
        self.adaptive_rate = adaptive_rate
        self.durable = durable
        # Bad arguments fail when the DAG file is parsed, not at 3 a.m.: the same check as at run.
        _ = self.options

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:  # type: ignore[override]
        """
        ``partial()`` of a mapped task, its arguments checked now, when the DAG file is parsed.

        Airflow builds mapped task instances only when they run, so without this a bad
        ``max_workers`` given to ``partial()`` would fail then instead.
        """
        _batch_options(**kwargs)
        return super().partial(**kwargs)

    @property
    def options(self) -> BatchOptions:
        """The batch's options, from the attributes as they are now (a cluster policy may change them)."""
        return _batch_options(**{name: getattr(self, name) for name in _OPTION_ARGUMENTS})

    @cached_property
    def hook(self) -> NxCloudHook:
        from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook

        return NxCloudHook(
            nxcloud_conn_id=self.nxcloud_conn_id,
            max_requests_per_second=self.max_requests_per_second,
            adaptive_rate=self.adaptive_rate,
        )

    @cached_property
    def _stop(self) -> threading.Event:
        """Set by ``on_kill``: the batch sends nothing more and ends, its result still pushed."""
        return threading.Event()

    def on_kill(self) -> None:
        # Runs in the task's own thread (a signal handler, or after a timeout): only sets flags.
        self._stop.set()
        # A hook built here costs nothing and cancels nothing: only a built client has requests.
        self.hook.cancel()

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_nxcloud.batch.engine import mark_messages  # with the hook: at run time
        from airflow_provider_nxcloud.batch.results import BatchResult

        # Filled in by the engine even when a timeout or a kill interrupts it.
        result = BatchResult()
        try:
            client = self.hook.client
            # The client may outlive a try (a reused operator): the metrics count this batch's share.
            before = _client_counts(client)
            mark_messages(
                client,
                self.message_ids,
                business_phone=self.business_phone or None,
                options=self.options,
                checkpoint=self._checkpoint(context),
                result=result,
                stop=self._stop,
            )
        except NxCloudConfigError as error:
            # Bad input or connection settings do not heal on retry.
            raise AirflowFailException(str(error)) from None
        except BaseException:
            if result.total:  # marking had begun: say what is known, then let the error go on
                self.log.warning("NXCloud: interrupted after %s", result.summary())
                self._report(context, result, client, before)
            raise
        self.log.info("NXCloud: %s in %.1f s", result.summary(), result.elapsed_seconds)
        self.log.info("NXCloud: %s", result.describe_requests())
        self._emit_metrics(result, client, before)
        outcome = result.to_dict()
        state = result.state
        if state == "success":
            return outcome
        # Pushed before raising, so an all_done downstream task sees what happened.
        self._push(context, outcome)
        if state == "skipped":
            raise AirflowSkipException(f"Nothing to mark read: {result.summary()}")
        if state == "failed":
            raise AirflowFailException(result.describe_failure())
        raise NxCloudTransientError(f"{result.describe_failure()} Airflow retries will try again.")

    def _report(
        self, context: Context, result: BatchResult, client: NxCloudClient, before: tuple[int, int]
    ) -> None:
        """Metrics and the XCom push of an interrupted batch: neither may hide why it stopped."""
        self._emit_metrics(result, client, before)
        try:
            self._push(context, result.to_dict())
        except Exception:
            self.log.exception("NXCloud: could not push the result of the interrupted batch")

    def _push(self, context: Context, outcome: dict[str, Any]) -> None:
        # Airflow pushes a returned value only with do_xcom_push; the paths that push here obey it too.
        if self.do_xcom_push:
            context["ti"].xcom_push(key="return_value", value=outcome)

    def _emit_metrics(self, result: BatchResult, client: NxCloudClient, before: tuple[int, int]) -> None:
        try:
            from airflow_provider_nxcloud.version_compat import Stats

            tags = {"dag_id": self.dag_id, "task_id": self.task_id}
            for phone, counts in _per_number_counts(result).items():
                for name, count in counts.items():
                    Stats.incr(f"nxcloud.{name}", count, tags={**tags, "business_phone": phone})
            Stats.incr("nxcloud.requests", result.requests, tags=tags)
            retries, throttled = (
                now - then for now, then in zip(_client_counts(client), before, strict=True)
            )
            Stats.incr("nxcloud.retries", retries, tags=tags)
            Stats.incr("nxcloud.throttled", throttled, tags=tags)
            Stats.timing("nxcloud.batch_duration", timedelta(seconds=result.elapsed_seconds), tags=tags)
            if result.rate_limit_per_second is not None:
                Stats.gauge("nxcloud.rate_limit", result.rate_limit_per_second, tags=tags)
        except Exception:
            # Metrics are for dashboards: a missing or broken backend must not fail the batch.
            self.log.warning("NXCloud: metrics were not sent", exc_info=True)

    def _checkpoint(self, context: Context) -> Checkpoint | None:
        """Airflow 3.3's task state store, which is a ``Checkpoint`` as it is (get, set, delete)."""
        if self.durable is False:
            return None
        store: Checkpoint | None = context.get("task_state_store")  # type: ignore[assignment]
        if store is None and self.durable:
            self.log.warning("durable=True needs Airflow 3.3's task state store: every try sends everything")
        return store


def _client_counts(client: NxCloudClient) -> tuple[int, int]:
    return client.retries_sent, client.throttled_answers


# The counters sent per business number (the rest are the task's): a name -> messages.
PER_NUMBER_COUNTERS = ("marked", "marked_with_newer", "skipped", "failed", "retryable", "not_attempted")


def _per_number_counts(result: BatchResult) -> dict[str, dict[str, int]]:
    """Per business phone, how many messages each per-number counter counts (zeros included)."""
    counts: dict[str, dict[str, int]] = {}

    def add(name: str, phone: str) -> None:
        counts.setdefault(phone, dict.fromkeys(PER_NUMBER_COUNTERS, 0))[name] += 1

    # Those an earlier try marked (durable) were counted by that try: they lead the list.
    for message in result.marked[result.marked_earlier :]:
        add("marked", message.business_phone)
    for message in result.marked_via:
        add("marked_with_newer", message.business_phone)
    for outcome in result.skipped:
        add("skipped", outcome.message.business_phone)
    for outcome in result.failed:
        add("failed", outcome.message.business_phone)
        if outcome.status == "retryable":
            add("retryable", outcome.message.business_phone)
    # An outage (the retry budget), an abort, a stop: most of the batch may end here.
    for message in result.not_attempted:
        add("not_attempted", message.business_phone)
    return counts


# The arguments that make the batch's options, as ``_batch_options`` names them.
_OPTION_ARGUMENTS = tuple(name for name in signature(_batch_options).parameters if not name.startswith("_"))
