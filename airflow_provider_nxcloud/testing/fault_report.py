"""What a fault campaign saw, checked against its promises: every broken one, and the figures."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_nxcloud.client.signing import compute_sign
from airflow_provider_nxcloud.testing.fault_mix import DEFAULT_MAX_RETRIES

if TYPE_CHECKING:
    from airflow_provider_nxcloud.testing.fault_mix import CampaignConfig
    from airflow_provider_nxcloud.testing.sandbox import RequestRecord


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


@dataclass(kw_only=True)
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
