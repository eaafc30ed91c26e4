"""MarkWhatsAppReadOperator as a DAG file builds it: cheap, checked, templated, with a lazy hook."""

from __future__ import annotations

import pytest

from airflow_provider_nxcloud.client.errors import NxCloudConfigError
from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook
from airflow_provider_nxcloud.operators.whatsapp import MarkWhatsAppReadOperator


def test_templated_fields_are_the_inputs_a_dag_renders() -> None:
    assert tuple(MarkWhatsAppReadOperator.template_fields) == (
        "message_ids",
        "business_phone",
        "nxcloud_conn_id",
    )


def no_connection_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    lookups: list[str] = []
    monkeypatch.setattr(
        NxCloudHook, "get_connection", classmethod(lambda cls, conn_id: lookups.append(conn_id))
    )
    return lookups


def test_construction_looks_nothing_up_and_checks_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    lookups = no_connection_lookups(monkeypatch)
    operator = MarkWhatsAppReadOperator(
        task_id="mark", message_ids=["wamid.1"], max_workers=3, code_actions={"9006": "skip"}
    )

    assert lookups == []
    assert operator.options.max_workers == 3
    assert operator.options.code_actions == {9006: "skip"}  # string keys from JSON configs become codes


def test_on_kill_before_execute_looks_nothing_up(monkeypatch: pytest.MonkeyPatch) -> None:
    lookups = no_connection_lookups(monkeypatch)
    operator = MarkWhatsAppReadOperator(task_id="mark", message_ids=["wamid.1"])
    operator.on_kill()

    assert lookups == []


def test_the_hook_gets_the_operator_connection_and_rate() -> None:
    operator = MarkWhatsAppReadOperator(
        task_id="mark", message_ids=[], nxcloud_conn_id="nx_other", max_requests_per_second=7
    )

    assert operator.hook.nxcloud_conn_id == "nx_other"
    assert operator.hook._overrides["max_requests_per_second"] == 7


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"max_workers": 0}, "max_workers must be a positive int, got 0"),
        ({"max_requests_per_second": -1}, "max_requests_per_second must be a positive number, got -1"),
        ({"max_message_age_days": 0}, "max_message_age_days must be a positive number, got 0"),
        ({"code_actions": {9006: "ignore"}}, r"code_actions\[9006\]: 'ignore' is not an action"),
        ({"durable": "yes"}, "durable must be True, False or None, got 'yes'"),
        ({"typing_indicator": "yes"}, "typing_indicator must be True or False, got 'yes'"),
    ],
)
def test_bad_arguments_fail_at_construction_and_in_partial(arguments: dict[str, object], error: str) -> None:
    with pytest.raises(NxCloudConfigError, match=error):
        MarkWhatsAppReadOperator(task_id="mark", message_ids=[], **arguments)  # type: ignore[arg-type]
    with pytest.raises(NxCloudConfigError, match=error):
        MarkWhatsAppReadOperator.partial(task_id="mark", **arguments)


def test_options_follow_the_attributes_as_they_are_at_run_time() -> None:
    # A cluster policy (or a test) may change an attribute after the DAG file built the operator.
    operator = MarkWhatsAppReadOperator(task_id="mark", message_ids=[], max_workers=3)
    operator.max_workers = 5

    assert operator.options.max_workers == 5


class Store(dict[str, object]):
    def set(self, key: str, value: object) -> None:
        self[key] = value


@pytest.mark.parametrize(
    ("durable", "has_store", "uses_store", "warns"),
    [
        (None, True, True, False),  # 3.3+: on by default
        (None, False, False, False),  # below 3.3: as before, quietly
        (True, False, False, True),  # asked for where it cannot be: as before, said in the log
        (False, True, False, False),  # turned off
    ],
)
def test_durable_uses_the_task_state_store_where_there_is_one(
    durable: bool | None, has_store: bool, uses_store: bool, warns: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator = MarkWhatsAppReadOperator(task_id="mark", message_ids=[], durable=durable)
    warnings: list[str] = []
    # The task log is structlog's on 3.x and logging's on 2.x: catch the call, whichever it is.
    monkeypatch.setattr(operator.log, "warning", lambda text, *args: warnings.append(text % args))
    store = Store()
    context = {"task_state_store": store} if has_store else {}

    checkpoint = operator._checkpoint(context)  # type: ignore[arg-type]

    assert (checkpoint is store) is uses_store
    assert any("needs Airflow 3.3's task state store" in w for w in warnings) is warns


def test_metrics_count_per_business_number_without_earlier_tries() -> None:
    from airflow_provider_nxcloud.batch.messages import Message
    from airflow_provider_nxcloud.batch.results import BatchResult, Outcome
    from airflow_provider_nxcloud.operators.whatsapp import _per_number_counts

    a, b = "8613800000001", "8613800000002"
    result = BatchResult(
        marked=[Message("earlier", a), Message("m1", a), Message("m2", a), Message("m3", b)],
        marked_earlier=1,
        marked_via={Message("m1", a): Message("m2", a)},
        skipped=[Outcome(Message("s", b), "skipped", 9006)],
        failed=[Outcome(Message("r", b), "retryable", -1), Outcome(Message("f", b), "failed", 9000)],
        not_attempted=[Message("n1", b), Message("n2", b)],
    )

    # Every id of this try is in one of marked, skipped, failed, not_attempted: so are the
    # metrics, or an outage's not_attempted thousands would be missing from the dashboards.
    assert _per_number_counts(result) == {
        a: {
            "marked": 2,
            "marked_with_newer": 1,
            "skipped": 0,
            "failed": 0,
            "retryable": 0,
            "not_attempted": 0,
        },
        b: {
            "marked": 1,
            "marked_with_newer": 0,
            "skipped": 1,
            "failed": 2,
            "retryable": 1,
            "not_attempted": 2,
        },
    }


def test_a_failing_metrics_backend_does_not_fail_the_task(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_nxcloud import version_compat
    from airflow_provider_nxcloud.batch.messages import Message
    from airflow_provider_nxcloud.batch.results import BatchResult

    tried: list[object] = []

    class BrokenStats:
        @staticmethod
        def incr(*args: object, **kwargs: object) -> None:
            tried.append(args)
            raise OSError("statsd host unreachable")

    monkeypatch.setattr(version_compat, "Stats", BrokenStats, raising=False)
    operator = MarkWhatsAppReadOperator(task_id="mark", message_ids=["wamid.1"])

    operator._emit_metrics(BatchResult(marked=[Message("wamid.1", "8613800000000")]), None, (0, 0))  # type: ignore[arg-type]

    assert tried, "the backend was asked (and failed), and the error went no further"
