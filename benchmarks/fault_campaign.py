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
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_nxcloud.signing import compute_sign
from airflow_provider_nxcloud.testing.sandbox import FAULT_KINDS, Faults, NxCloudSandbox

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_nxcloud.testing.sandbox import RequestRecord

# Per request: 10 % code -1, 5 % code 9001, 5 % HTTP 503, 2 % HTTP 429 (Retry-After: 1),
# 2 % dropped connections, 1 % HTML error page with status 200, 1 % slower than the timeout.
ISSUE_FAULT_RATES: dict[str, float] = {
    "-1": 0.10,
    "9001": 0.05,
    "503": 0.05,
    "429": 0.02,
    "drop": 0.02,
    "html": 0.01,
    "slow": 0.01,
}
DEFAULT_MAX_RETRIES = 5  # the hook's default, used when the connection does not say
CONN_ID = "nxcloud_reliability"


def campaign_ids(count: int) -> list[str]:
    """Distinct ids shaped like WhatsApp's (``wamid.`` + base64-ish)."""
    return [f"wamid.HBgNODYxMzgwMDAwMDAwMBUCABEYEkRFTDEx{index:07d}A" for index in range(count)]


def draw_fault(rng: random.Random, rates: dict[str, float]) -> str | None:
    roll = rng.random()
    for kind in FAULT_KINDS:
        roll -= rates.get(kind, 0.0)
        if roll < 0:
            return kind
    return None


def scripted_faults(
    ids: list[str], rates: dict[str, float], seed: int, *, longest: int = 24
) -> dict[str, list[str]]:
    """Per id, the faults its requests meet in order: drawn per request until one is clean."""
    rng = random.Random(seed)
    scripts: dict[str, list[str]] = {}
    for message_id in ids:
        kinds: list[str] = []
        while len(kinds) < longest and (kind := draw_fault(rng, rates)) is not None:
            kinds.append(kind)
        if kinds:
            scripts[message_id] = kinds
    return scripts


@dataclass
class CampaignConfig:
    count: int
    mode: Literal["rates", "scripted"] = "rates"
    seed: int = 12
    rates: dict[str, float] = field(default_factory=lambda: dict(ISSUE_FAULT_RATES))
    retry_after: float = 1.0
    # None: the defaults a user gets (timeout 30 s, backoff 0.5 s doubling up to 30 s).
    timeout: float | None = None
    retry_wait: tuple[float, float] | None = None
    slow_margin: float = 2.0  # the slow fault answers this long after the client's timeout
    latency: float = 0.0

    @property
    def effective_timeout(self) -> float:
        return 30.0 if self.timeout is None else self.timeout


class _TaskInstance:
    """What ``execute`` touches of the task instance: ``xcom_push``."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = json.loads(json.dumps(value))  # as Airflow stores it


def execute_operator(ids: list[str], retry_wait: tuple[float, float] | None) -> tuple[str, dict[str, Any]]:
    """One task run with default operator settings: (how it ended, its XCom result)."""
    from airflow_provider_nxcloud.exceptions import NxCloudTransientError
    from airflow_provider_nxcloud.operators.whatsapp import MarkWhatsAppReadOperator
    from airflow_provider_nxcloud.version_compat import AirflowFailException, AirflowSkipException

    operator = MarkWhatsAppReadOperator(task_id="mark_read", message_ids=ids, nxcloud_conn_id=CONN_ID)
    if retry_wait is not None:
        from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook

        operator.hook = NxCloudHook(nxcloud_conn_id=CONN_ID, retry_wait=retry_wait)
    ti = _TaskInstance()
    try:
        returned = operator.execute(context={"ti": ti})  # type: ignore[arg-type]
    except AirflowFailException:
        return "failed", ti.pushed["return_value"]
    except NxCloudTransientError:
        return "up_for_retry", ti.pushed["return_value"]
    except AirflowSkipException:
        return "skipped", ti.pushed["return_value"]
    return "success", returned


def _reason_kind(reason: str) -> str:
    for needle, kind in (
        ("code -1", "code -1"),
        ("code 9001", "code 9001"),
        ("HTTP 503", "HTTP 503"),
        ("HTTP 429", "HTTP 429"),
        ("without an NXCloud JSON code", "not NXCloud JSON (HTML page)"),
        ("timed out", "timeout"),
        ("connection", "connection dropped"),
    ):
        if needle in reason:
            return kind
    return "other: " + reason[:60]


@dataclass
class CampaignReport:
    """What one campaign saw; ``violations`` lists every broken promise (empty when all held)."""

    config: CampaignConfig
    ids: list[str]
    runs: list[dict[str, Any]]
    requests: list[RequestRecord]
    mark_counts: dict[tuple[str, str], int]
    faults_injected: dict[str, int]
    access_secret: str
    expected_failed_first_run: set[str] | None
    violations: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def check(self) -> CampaignReport:
        ids = set(self.ids)
        first = self.runs[0]["result"]
        fail = self.violations.append

        # 1. every input id in exactly one of marked/skipped/failed/not_attempted
        buckets = Counter(
            [*first["marked"], *[e["message_id"] for e in first["skipped"] + first["failed"]]]
            + first["not_attempted"]
        )
        doubled = [m for m, n in buckets.items() if n > 1]
        missing = ids - set(buckets)
        strangers = set(buckets) - ids
        if doubled or missing or strangers:
            fail(f"partition: {len(doubled)} in two places, {len(missing)} missing, {len(strangers)} unknown")

        # 2. no false success: reported marked => marked on the sandbox
        marked_on_sandbox = {m for (_, m) in self.mark_counts}
        for run in self.runs:
            false_success = set(run["result"]["marked"]) - marked_on_sandbox
            if false_success:
                fail(f"run {run['run']}: {len(false_success)} reported marked but never marked")

        # 3. nothing marked, nor even sent, that was not asked for
        stray_marks = marked_on_sandbox - ids
        stray_requests = {r.message_id for r in self.requests} - ids
        if stray_marks or stray_requests:
            fail(f"{len(stray_marks)} ids marked and {len(stray_requests)} sent that were not in the input")

        # 4. >= 99.9 % marked on the first run; the rest failed with a reason; the second run ends it
        marked_first = len(first["marked"])
        if marked_first < 0.999 * len(ids):
            fail(f"only {marked_first}/{len(ids)} marked by the first run")
        if first["skipped"]:
            fail(f"{len(first['skipped'])} skipped although every id is valid and recent")
        without_reason = [e for e in first["failed"] if not e.get("reason")]
        if without_reason:
            fail(f"{len(without_reason)} failed without a reason")
        reported_marked = set().union(*(set(run["result"]["marked"]) for run in self.runs))
        lost = ids - reported_marked
        if lost:
            fail(f"{len(lost)} ids never marked after {len(self.runs)} runs")
        if self.expected_failed_first_run is not None:
            failed_first = {e["message_id"] for e in first["failed"]} | set(first["not_attempted"])
            expected = self.expected_failed_first_run
            if failed_first != expected:
                fail(f"first run left {sorted(failed_first)}, the fault script says {sorted(expected)}")

        # 5. every attempt freshly signed: per id, distinct ts and sign, each valid for its own ts
        by_id: dict[str, list[RequestRecord]] = {}
        for record in self.requests:
            by_id.setdefault(record.message_id or "", []).append(record)
        reused = invalid = 0
        for records in by_id.values():
            if len({r.headers["ts"] for r in records}) != len(records):
                reused += 1
            if len({r.headers["sign"] for r in records}) != len(records):
                reused += 1
            invalid += sum(not _signature_valid(r, self.access_secret) for r in records)
        if reused or invalid:
            fail(f"{reused} ids had a ts or sign reused across attempts; {invalid} requests badly signed")

        retried = [records for records in by_id.values() if len(records) > 1]
        # Marked on the sandbox by the end of the first run, yet reported failed by it.
        answered_not_reported = self.runs[0]["marked_on_sandbox"] - set(first["marked"])
        self.figures = {
            "ids": len(ids),
            "mode": self.config.mode,
            "requests": len(self.requests),
            "retries": len(self.requests) - len(by_id),
            "faults_injected": dict(sorted(self.faults_injected.items())),
            "faults_injected_total": sum(self.faults_injected.values()),
            "first_run": {
                "state": self.runs[0]["state"],
                "seconds": self.runs[0]["seconds"],
                **{k: v for k, v in first["counts"].items() if k != "total"},
                "marked_percent": round(100 * marked_first / len(ids), 3),
                "failed_reasons": dict(Counter(_reason_kind(e["reason"]) for e in first["failed"])),
            },
            "later_runs": [
                {
                    "state": run["state"],
                    "seconds": run["seconds"],
                    **{k: v for k, v in run["result"]["counts"].items() if k != "total"},
                }
                for run in self.runs[1:]
            ],
            "lost": len(lost),
            "false_successes": len(reported_marked - marked_on_sandbox),
            "stray_marks": len(stray_marks),
            "ids_retried": len(retried),
            "retried_requests_checked_fresh_ts_and_sign": sum(len(records) for records in retried),
            "reused_ts_or_sign": reused,
            # The server marked it but its answer never arrived (the client timed out on a slow
            # answer, then the retries failed): reported failed, honestly, and marked again by
            # the next run (harmless). Counted when the first run ended.
            "first_run_marked_on_sandbox_but_reported_failed": len(answered_not_reported),
            "ids_marked_more_than_once_on_sandbox": sum(1 for n in self.mark_counts.values() if n > 1),
            "timeout_seconds": self.config.effective_timeout,
            "retry_wait": list(self.config.retry_wait) if self.config.retry_wait else "default (0.5, 30)",
            "max_retries": DEFAULT_MAX_RETRIES,
        }
        return self


def _signature_valid(record: RequestRecord, secret: str) -> bool:
    signed = {name: record.headers[name] for name in ("accessKey", "action", "bizType", "ts")}
    algorithm = record.headers.get("algorithm", "md5")
    expected = compute_sign(signed, record.body.encode("utf-8"), secret, algorithm)  # type: ignore[arg-type]
    return record.headers["sign"] == expected


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
