"""What an operator sees, in real DAG runs: StatsD metrics, and the result on every exit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_nxcloud.testing import Faults
from tests.compat import AIRFLOW_2, read_xcom
from tests.conftest import DAGS_FOLDER, load_dag_module
from tests.support import wait_until

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_nxcloud.testing import NxCloudSandbox

pytestmark = pytest.mark.airflow

# Generous: the first DAG run of a process sets Airflow up (about 10 s), on a shared machine.
DAG_RUN_TIMEOUT = 240


def run_in_own_process(dag_id: str, statsd_port: int) -> str:
    """
    Run ``dag_id`` with ``dag.test()`` in a fresh Python whose Airflow sends StatsD to the port.

    A process of its own: Airflow picks its metrics backend once per process, and this one's
    (the other DAG tests') has none. Returns the run id.
    """
    dag_file = str(DAGS_FOLDER / "operator_scenarios.py")
    code = (
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('nx_scenarios', {dag_file!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        f"print('RUN_ID=' + module.{dag_id}.test().run_id)\n"
    )
    env = {
        **os.environ,
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(statsd_port),
    }
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=DAG_RUN_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the {dag_id} DAG run did not end within {DAG_RUN_TIMEOUT} s")
    run_ids = [
        line.removeprefix("RUN_ID=") for line in done.stdout.splitlines() if line.startswith("RUN_ID=")
    ]
    output = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.returncode == 0 and run_ids, f"{dag_id} did not run:\n{output}"
    return run_ids[-1]


def received(sock: socket.socket) -> list[str]:
    """Every datagram already delivered to ``sock`` (the sender has exited), line by line."""
    sock.setblocking(False)
    lines: list[str] = []
    while True:
        try:
            datagram = sock.recv(65536)
        except BlockingIOError:
            return lines
        lines.extend(datagram.decode().splitlines())


def counters(lines: list[str], prefix: str = "airflow.nxcloud.") -> dict[str, float]:
    """StatsD counter lines (``name:value|c``) summed by name, for names under ``prefix``."""
    totals: dict[str, float] = defaultdict(float)
    for line in lines:
        name, _, rest = line.partition(":")
        value, _, kind = rest.partition("|")
        if name.startswith(prefix) and kind.startswith("c"):
            totals[name.removeprefix(prefix)] += float(value)
    return dict(totals)


def latest_result(dag_id: str) -> Any:
    """The mark task's XCom in ``dag_id``'s latest run (its run id, when dag.test() raised)."""
    from airflow.models.dagrun import DagRun

    run = max(DagRun.find(dag_id=dag_id), key=lambda r: r.start_date)
    return read_xcom(dag_id=dag_id, run_id=run.run_id, task_id="mark", key="return_value", map_index=-1)


def test_metrics_reach_statsd_and_match_the_result_and_the_sandbox(
    airflow_db: Path, nxcloud_sandbox: NxCloudSandbox
) -> None:
    scenarios = load_dag_module("operator_scenarios")
    ids = [f"wamid.metric{i}" for i in range(scenarios.METRIC_IDS)]
    flaky = ids[::5]  # 20 %: -1 once, then marked by the retry
    refused = [i for i in ids if i not in flaky][:10]
    nxcloud_sandbox.set_faults(Faults(scripts={i: ["-1"] for i in flaky}, codes=dict.fromkeys(refused, 9000)))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind(("127.0.0.1", 0))

        run_id = run_in_own_process("nx_metrics", sock.getsockname()[1])
        lines = received(sock)

    outcome = read_xcom(dag_id="nx_metrics", run_id=run_id, task_id="mark", key="return_value", map_index=-1)
    counts = outcome["counts"]
    sent = nxcloud_sandbox.requests
    assert (counts["marked"], counts["failed"], counts["requests"]) == (490, 10, 600)
    assert (len(nxcloud_sandbox.marked_ids()), len(sent)) == (490, 600)
    seen = counters(lines)
    assert seen["marked"] == counts["marked"] == 490
    assert seen["failed"] == counts["failed"] == 10
    assert seen["retryable"] == 0
    assert seen["skipped"] == 0
    assert seen["marked_with_newer"] == 0
    assert seen["requests"] == counts["requests"] == len(sent) == 600
    assert seen["retries"] == sum(1 for r in sent if r.fault == "-1") == 100
    assert seen["throttled"] == 0
    assert any(line.startswith("airflow.nxcloud.batch_duration:") for line in lines), lines
    customers = {r["from"] for r in scenarios.metric_records()}
    leaks = [line for line in lines if "wamid" in line or any(c in line for c in customers)]
    assert leaks == [], "a metric names a message or a customer"


def test_a_timeout_halfway_pushes_the_ids_marked_so_far(run_dag, nxcloud_sandbox: NxCloudSandbox) -> None:
    nxcloud_sandbox.set_faults(Faults(latency=0.05))

    try:
        result = run_dag("operator_scenarios", dag_id="nx_timeout")
        assert result.task_state("mark") == "failed"
        outcome = result.xcom("mark")
    except BaseException as error:
        # Airflow 2's AirflowTaskTimeout is a BaseException, and its dag.test() lets it out.
        if not AIRFLOW_2 or type(error).__name__ != "AirflowTaskTimeout":
            raise
        outcome = latest_result("nx_timeout")
    assert outcome is not None, "a timed-out task pushes what it marked"
    marked = set(outcome["marked"])
    assert marked == nxcloud_sandbox.marked_ids()
    assert 0 < len(marked) < 2000, f"{len(marked)} marked: the timeout should fall mid-batch"
    counts = outcome["counts"]
    assert counts["marked"] + counts["failed"] + counts["not_attempted"] == counts["total"] == 2000
    assert counts["not_attempted"] > 0
    # Nothing marked is reported otherwise: a failure is one the sandbox did not mark.
    assert not {f["message_id"] for f in outcome["failed"]} & marked


def test_do_xcom_push_false_leaves_no_xcom_on_a_failing_task(
    run_dag, nxcloud_sandbox: NxCloudSandbox
) -> None:
    nxcloud_sandbox.set_faults(Faults(codes={"wamid.np2": 9000}))

    result = run_dag("operator_scenarios", dag_id="nx_no_push")

    assert result.task_state("mark") == "failed"
    assert nxcloud_sandbox.marked_ids() == {"wamid.np1", "wamid.np3"}, "the batch ran"
    assert result.xcom("mark") is None


@pytest.mark.skipif(AIRFLOW_2, reason="Airflow 2's SIGTERM handler raises in execute: the timeout's path")
def test_sigterm_mid_batch_stops_it_and_pushes_the_ids_marked_so_far(
    run_dag, nxcloud_sandbox: NxCloudSandbox
) -> None:
    # Airflow 3's task runner answers SIGTERM with on_kill and no exception: the batch must end
    # by itself, soon, and push what it marked.
    nxcloud_sandbox.set_faults(Faults(latency=0.05))
    sent: list[str] = []

    def kill_mid_batch() -> None:
        if not wait_until(lambda: len(nxcloud_sandbox.requests) >= 200, timeout=DAG_RUN_TIMEOUT):
            sent.append("the batch never reached 200 requests")
            return
        # Only to Airflow's handler: the default action would end pytest itself.
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.SIG_IGN, None):
            sent.append("no SIGTERM handler installed by Airflow")
            return
        os.kill(os.getpid(), signal.SIGTERM)
        sent.append("sent")

    killer = threading.Thread(target=kill_mid_batch)
    killer.start()
    result = run_dag("operator_scenarios", dag_id="nx_sigterm")
    killer.join(timeout=DAG_RUN_TIMEOUT)

    assert sent == ["sent"]
    assert result.task_state("mark") == "failed"
    outcome = result.xcom("mark")
    marked = set(outcome["marked"])
    assert marked == nxcloud_sandbox.marked_ids()
    assert 200 <= len(marked) < 2000
    assert outcome["counts"]["not_attempted"] > 0, "once killed, nothing more is sent"
    assert len(nxcloud_sandbox.requests) < 2000
