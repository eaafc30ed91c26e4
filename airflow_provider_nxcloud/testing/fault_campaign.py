"""The fault-injection campaign: many ids through the operator against a faulty sandbox.

Shared by the quick test (``test_fault_injection.py``, 1,000 ids) and the full-size run
(``python -m benchmarks.reliability``, 10,000 ids, default settings). One campaign:

1. starts an in-process sandbox that injects the issue's fault mix per request;
2. runs ``MarkWhatsAppReadOperator.execute`` on every id (the code path of a DAG task);
3. runs it again on whatever the first run left failed or not attempted (the next scheduled
   run), under the same faults;
4. checks the promises against the sandbox's own record and returns the figures.

Two ways to inject: ``rates`` draws a fault for every request as it arrives (the sandbox's
``Faults.rates``); ``scripted`` draws, with the same per-request probabilities, each id's
sequence of faults up front from a seeded generator (``Faults.scripts``), so which id meets
which fault does not depend on thread timing and the outcome is known before the run.

The fault mix and settings are in ``fault_mix.py``, the checks of step 4 in ``fault_report.py``.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_nxcloud.testing.fault_mix import DEFAULT_MAX_RETRIES, campaign_ids, scripted_faults
from airflow_provider_nxcloud.testing.fault_report import CampaignReport
from airflow_provider_nxcloud.testing.sandbox import Faults, NxCloudSandbox

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_nxcloud.testing.fault_mix import CampaignConfig

CONN_ID = "nxcloud_reliability"


class _TaskInstance:
    """What ``execute`` touches of the task instance: ``xcom_push``."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = json.loads(json.dumps(value))  # as Airflow stores it


def execute_operator(ids: list[str], retry_wait: tuple[float, float] | None) -> tuple[str, dict[str, Any]]:
    """One task run with default operator settings: (how it ended, its XCom result)."""
    from airflow_provider_nxcloud.client.errors import NxCloudTransientError
    from airflow_provider_nxcloud.operators.whatsapp import MarkWhatsAppReadOperator
    from airflow_provider_nxcloud.version_compat import AirflowFailException, AirflowSkipException

    operator = MarkWhatsAppReadOperator(task_id="mark_read", message_ids=ids, nxcloud_conn_id=CONN_ID)
    if retry_wait is not None:
        from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook

        operator.hook = NxCloudHook(nxcloud_conn_id=CONN_ID, retry_wait=retry_wait)
    ti = _TaskInstance()
    context: Any = {"ti": ti}  # all of the task's context that execute() reads
    try:
        returned = operator.execute(context=context)
    except AirflowFailException:
        return "failed", ti.pushed["return_value"]
    except NxCloudTransientError:
        return "up_for_retry", ti.pushed["return_value"]
    except AirflowSkipException:
        return "skipped", ti.pushed["return_value"]
    return "success", returned


def _ticker(sandbox: NxCloudSandbox, progress: Callable[[str], None], every: float) -> threading.Event:
    """Report the sandbox's marks and requests every ``every`` seconds until the event is set."""
    stop = threading.Event()
    started = time.monotonic()

    def tick() -> None:
        while not stop.wait(every):
            state = sandbox.state
            with state.lock:
                marked, faults = len(state.mark_counts), sum(state.faults_injected.values())
            progress(f"  ... {time.monotonic() - started:.0f} s: {marked} ids marked, {faults} faults so far")

    threading.Thread(target=tick, name="campaign-progress", daemon=True).start()
    return stop


def run_campaign(
    config: CampaignConfig,
    set_env: Callable[[str, str], None],
    *,
    progress: Callable[[str], None] | None = None,
    progress_every: float = 30.0,
) -> CampaignReport:
    """Run the campaign; ``set_env`` points the campaign's Airflow connection at the sandbox."""
    say = progress or (lambda text: None)
    ids = campaign_ids(config.count)
    slow_seconds = config.effective_timeout + config.slow_margin
    expected_failed: set[str] | None = None
    if config.mode == "scripted":
        scripts = scripted_faults(ids, config.rates, config.seed)
        attempts = DEFAULT_MAX_RETRIES + 1
        expected_failed = {m for m, kinds in scripts.items() if len(kinds) >= attempts}
        faults = Faults(
            latency=config.latency, scripts=scripts, retry_after=config.retry_after, slow_seconds=slow_seconds
        )
    else:
        faults = Faults(
            latency=config.latency,
            rates=config.rates,
            retry_after=config.retry_after,
            slow_seconds=slow_seconds,
            seed=config.seed,
        )
    with NxCloudSandbox(faults=faults) as sandbox:
        extra = {} if config.timeout is None else {"timeout": config.timeout}
        set_env(f"AIRFLOW_CONN_{CONN_ID.upper()}", sandbox.connection_json(**extra))
        runs: list[dict[str, Any]] = []
        todo = ids
        ticking = _ticker(sandbox, progress, progress_every) if progress else None
        # The next scheduled runs: what is left failed (retryable) or not attempted. Two are
        # allowed; the promise is that the second run finishes what the first left.
        while todo and len(runs) < 2:
            say(f"run {len(runs) + 1}: {len(todo)} ids")
            started = time.monotonic()
            state, result = execute_operator(todo, config.retry_wait)
            seconds = round(time.monotonic() - started, 2)
            runs.append(
                {
                    "run": len(runs) + 1,
                    "state": state,
                    "seconds": seconds,
                    "result": result,
                    "marked_on_sandbox": sandbox.marked_ids(),
                }
            )
            say(f"run {len(runs)}: {state} in {seconds} s: {result['counts']}")
            todo = [e["message_id"] for e in result["failed"] if e["retryable"]] + result["not_attempted"]
        if ticking is not None:
            ticking.set()
        report = CampaignReport(
            config=config,
            ids=ids,
            runs=runs,
            requests=sandbox.requests,
            mark_counts=sandbox.mark_counts,
            faults_injected=dict(sandbox.state.faults_injected),
            access_secret=sandbox.state.access_secret,
            expected_failed_first_run=expected_failed,
        )
    return report.check()
