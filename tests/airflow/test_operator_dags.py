"""The operator in real Airflow DAG runs (sqlite metadata DB, dag.test()) against the sandbox."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from airflow_provider_nxcloud.testing import Faults
from tests.compat import AIRFLOW_VERSION
from tests.conftest import load_dag_module

if TYPE_CHECKING:
    from airflow_provider_nxcloud.testing import NxCloudSandbox

pytestmark = pytest.mark.airflow


# Airflow 3.0's dag.test() does not echo a failing task's exception to the console (2.11 and
# 3.1+ do): there the state, the XCom and the sandbox's record are what these tests can read.
ECHOES_TASK_ERRORS = AIRFLOW_VERSION != (3, 0)


def test_ids_from_upstream_task_are_all_marked(run_dag, nxcloud_sandbox: NxCloudSandbox) -> None:
    result = run_dag("operator_scenarios", dag_id="nx_upstream_ids")

    assert result.task_state("mark") == "success"
    assert nxcloud_sandbox.marked_ids() == {"wamid.up1", "wamid.up2", "wamid.up3"}
    outcome = result.xcom("mark")
    assert sorted(outcome["marked"]) == ["wamid.up1", "wamid.up2", "wamid.up3"]
    assert outcome["counts"] == {
        "total": 3, "marked": 3, "skipped": 0, "failed": 0, "not_attempted": 0, "duplicates": 1,
        "requests": 3, "conversations": 0, "marked_earlier": 0, "typing_indicators": 0,
        "marked_with_newer": 0,
    }  # fmt: skip
    assert result.xcom("record")["counts"]["marked"] == 3


def test_jinja_rendered_xcom_string_is_accepted(run_dag, nxcloud_sandbox: NxCloudSandbox) -> None:
    result = run_dag("operator_scenarios", dag_id="nx_jinja")

    assert result.task_state("mark") == "success"
    assert nxcloud_sandbox.marked_ids() == {"wamid.j1", "wamid.j2"}


def test_mapped_operator_marks_every_chunk(run_dag, nxcloud_sandbox: NxCloudSandbox) -> None:
    result = run_dag("operator_scenarios", dag_id="nx_mapped")

    assert result.task_state("mark", map_index=0) == "success"
    assert result.task_state("mark", map_index=1) == "success"
    assert nxcloud_sandbox.marked_ids() == {"wamid.m1", "wamid.m2", "wamid.m3"}
    assert result.xcom("mark", map_index=1)["marked"] == ["wamid.m3"]


def test_code_mapped_to_skip_ends_skipped_with_reasons(run_dag, nxcloud_sandbox: NxCloudSandbox) -> None:
    nxcloud_sandbox.set_faults(Faults(codes={"wamid.unbound1": 9006, "wamid.unbound2": 9006}))

    result = run_dag("operator_scenarios", dag_id="nx_skip_9006")

    assert result.task_state("mark") == "skipped"
    outcome = result.xcom("mark")
    assert [s["code"] for s in outcome["skipped"]] == [9006, 9006]
    assert "bind it in NXCloud" in outcome["skipped"][0]["reason"]
    assert nxcloud_sandbox.marked_ids() == set()


def test_wrong_secret_fails_once_without_retries_and_downstream_reads_result(
    run_dag, nxcloud_sandbox: NxCloudSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = json.loads(nxcloud_sandbox.connection_json())
    wrong["password"] = "not-the-secret"
    monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_WRONG", json.dumps(wrong))

    result = run_dag("operator_scenarios", dag_id="nx_wrong_secret")

    assert result.task_state("mark") == "failed"
    assert result.try_number("mark") == 1, "an auth failure must not consume Airflow retries"
    assert len(nxcloud_sandbox.requests) == 1, "nothing more is sent after a 1003"
    assert nxcloud_sandbox.requests[0].code == 1003
    seen_downstream = result.xcom("record")
    assert seen_downstream["counts"]["failed"] == 1
    assert seen_downstream["counts"]["not_attempted"] == 19
    assert seen_downstream["failed"][0]["code"] == 1003
    assert "not-the-secret" not in json.dumps(seen_downstream)


def test_empty_upstream_ends_skipped_without_any_request(run_dag, nxcloud_sandbox: NxCloudSandbox) -> None:
    result = run_dag("operator_scenarios", dag_id="nx_empty")

    assert result.task_state("mark") == "skipped"
    assert nxcloud_sandbox.requests == []
    assert result.xcom("mark")["counts"]["total"] == 0


def test_transient_failures_fail_with_airflow_retries(
    run_dag, nxcloud_sandbox: NxCloudSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", nxcloud_sandbox.connection_json(max_retries=0))
    nxcloud_sandbox.set_faults(Faults(rates={"-1": 1.0}))

    result = run_dag("operator_scenarios", dag_id="nx_transient")

    assert result.task_state("mark") == "failed"
    assert result.try_number("mark") == 2, "a transient failure uses the task's Airflow retry"
    failed = result.xcom("record")["failed"]
    assert {f["code"] for f in failed} == {-1}
    assert all(f["retryable"] for f in failed)


def test_metas_errors_reach_the_result_and_the_trace_id_only_the_log(
    run_dag, nxcloud_sandbox: NxCloudSandbox, capfd: pytest.CaptureFixture[str]
) -> None:
    nxcloud_sandbox.set_faults(
        Faults(
            codes={"wamid.gone": "meta:131009", "wamid.bad": "meta:100"},
            scripts={"wamid.busy": ["meta:130429", "meta:131057"]},
            meta_code_as="str",
        )
    )

    result = run_dag("operator_scenarios", dag_id="nx_meta_errors")

    assert result.task_state("mark") == "failed"
    assert result.try_number("mark") == 1, "Meta's 100 is permanent: no Airflow retry"
    outcome = result.xcom("record")
    assert outcome["marked"] == ["wamid.busy"], "throttled, then in maintenance, then marked"
    assert [(s["message_id"], s["meta_code"]) for s in outcome["skipped"]] == [("wamid.gone", 131009)]
    (failed,) = outcome["failed"]
    assert (failed["message_id"], failed["code"], failed["meta_code"]) == ("wamid.bad", 9099, 100)
    assert failed["reason"].startswith("NXCloud code 9099 (HTTP 200): Meta 100: (#100) Invalid parameter")
    logged = capfd.readouterr()
    lines = [line for line in (logged.out + logged.err).splitlines() if "fbtrace_id" in line]
    traces = {line.split("fbtrace_id ", 1)[1].split()[0] for line in lines}
    assert len(traces) == 2, lines  # wamid.gone and wamid.bad: one warning each
    assert not any(trace in json.dumps(outcome) for trace in traces)


def test_a_thread_is_marked_with_one_request_and_the_opt_out_sends_each(
    run_dag, nxcloud_sandbox: NxCloudSandbox
) -> None:
    conversation_records = load_dag_module("operator_scenarios").conversation_records
    nxcloud_sandbox.add_inbound(conversation_records())

    grouped = run_dag("operator_scenarios", dag_id="nx_conversations")

    assert grouped.task_state("mark") == "success"
    assert grouped.task_state("mark_one_each") == "success"
    assert grouped.xcom("mark")["counts"]["requests"] == 2
    assert grouped.xcom("mark")["counts"]["conversations"] == 2
    assert grouped.xcom("mark_one_each")["counts"]["requests"] == 6
    assert sorted(grouped.xcom("mark")["marked"]) == sorted(grouped.xcom("mark_one_each")["marked"])
    assert nxcloud_sandbox.read_ids() == {r["id"] for r in conversation_records()}


def test_typing_indicator_shows_once_per_customer_and_marks_all(
    run_dag, nxcloud_sandbox: NxCloudSandbox
) -> None:
    records = load_dag_module("operator_scenarios").typing_records()
    nxcloud_sandbox.add_inbound(records)

    result = run_dag("operator_scenarios", dag_id="nx_typing")

    assert result.task_state("mark") == "success"
    paths = [request.path for request in nxcloud_sandbox.requests]
    assert paths == ["/api/wa/typingIndicator"] * 2, "no markMessageAsRead: the indicator reads too"
    assert sorted(nxcloud_sandbox.typing_shown()) == ["wamid.typing10", "wamid.typing20"]
    assert nxcloud_sandbox.read_ids() == {r["id"] for r in records}
    counts = result.xcom("mark")["counts"]
    assert (counts["marked"], counts["requests"], counts["typing_indicators"]) == (6, 2, 2)


def test_typing_indicator_without_an_appkey_fails_before_any_request(
    run_dag,
    nxcloud_sandbox: NxCloudSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    connection = json.loads(nxcloud_sandbox.connection_json())
    del connection["extra"]["appkey"]
    monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_NO_APPKEY", json.dumps(connection))

    result = run_dag("operator_scenarios", dag_id="nx_typing_no_appkey")

    assert result.task_state("mark") == "failed"
    assert result.try_number("mark") == 1, "a configuration error does not consume Airflow retries"
    assert nxcloud_sandbox.requests == []
    task_output = "".join(capfd.readouterr())
    if ECHOES_TASK_ERRORS:
        assert "typing_indicator=True needs the NXCloud WhatsApp application's appkey" in task_output
        assert "set the connection's appkey extra" in task_output


def test_a_bug_in_a_worker_fails_the_task_once_with_its_traceback(
    run_dag,
    nxcloud_sandbox: NxCloudSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from airflow_provider_nxcloud.client.client import NxCloudClient

    def bug(self: NxCloudClient, message_id: str, *args: object, **kwargs: object) -> object:
        raise RuntimeError(f"a bug met while marking {message_id}")

    monkeypatch.setattr(NxCloudClient, "mark_message_as_read", bug)

    result = run_dag("operator_scenarios", dag_id="nx_skip_9006")

    assert result.task_state("mark") == "failed"
    out, err = capfd.readouterr()  # dag.test() writes the task's log there
    text = out + err
    # Raised with its traceback (Airflow 2 logs the task's exception twice, so no count of it)...
    if ECHOES_TASK_ERRORS:
        assert "RuntimeError: a bug met while marking wamid.unbound" in text, text
        assert "Traceback" in text and "in _mark_one" in text
    # ... and not turned into a failure per message: the ids stay unsent, for the next try.
    counts = result.xcom("mark")["counts"]
    assert (counts["failed"], counts["not_attempted"]) == (0, 2), counts
    assert "unexpected RuntimeError" not in text
    assert nxcloud_sandbox.requests == []
