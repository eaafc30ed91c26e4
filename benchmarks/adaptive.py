"""Adaptive rate control against an account limit the client is not told: ``python -m benchmarks.adaptive``.

``.venv/bin/python -m benchmarks.adaptive [--quick]`` prints Markdown table rows (measure | how |
result | target | verdict) on stdout, progress on stderr; exit status 1 when a target is missed.
``measure_adaptive(quick)`` returns the same rows as dicts, for ``run.py``.

A sandbox in its own process (50 ms latency, request log on) gets an account limit through its
control API: a token bucket of N/s with a burst of 5, HTTP 429 beyond it, no ``Retry-After``
unless said. The operator runs in this process with its defaults, no cap, 32 workers. Everything
is counted from the sandbox's own request log: goodput = requests answered code 0 per second of
arrival time, the 429s are the requests the limit refused, and every id must end marked.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from airflow_provider_nxcloud.client.api import MARK_READ_PATH
from benchmarks.common import SandboxProcess, Stopwatch, Ticker, log, message_ids
from benchmarks.report import table_rows, take_stdout

LATENCY_MS = 50.0
WORKERS = 32
LIMIT = 40.0
BURST = 5.0
RATE_LIMITED = "rate_limit"  # the sandbox's ``fault`` for a request its account limit refused
CONN_ID = "nxcloud_adaptive_bench"
SUBPROCESS_TIMEOUT = 280.0
# Small: counting -1/9001/503 as throttles took a 1,000-id run from 65 to ~2 msg/s. At 100 ids
# the backoff of the slowest id weighs in both ways; the ratio still decides.
FAULT_IDS = 100


def _row(measure: str, how: str, result: str, target: str, passed: bool, **details: Any) -> dict[str, Any]:
    """A row in ``report.Row``'s shape, for ``benchmarks.run``'s table and JSON; its ``value`` is the
    first figure given, when that is a number (0 when the row has no single figure)."""
    first = next(iter(details.values()), None)
    value = float(first) if isinstance(first, (int, float)) and not isinstance(first, bool) else 0.0
    key = "adaptive: " + measure
    return {"key": key, "measure": measure, "how": how, "result": result, "target": target, "passed": passed,
            "value": value, "details": details}  # fmt: skip


def _operator(ids: list[str], **kwargs: Any) -> dict[str, Any]:
    from airflow_provider_nxcloud.operators.whatsapp import MarkWhatsAppReadOperator

    operator = MarkWhatsAppReadOperator(
        task_id="bench_adaptive", message_ids=ids, nxcloud_conn_id=CONN_ID, max_workers=WORKERS, **kwargs
    )
    pushed: dict[str, Any] = {}

    class TaskInstance:
        def xcom_push(self, key: str, value: dict[str, Any]) -> None:
            pushed.update(value)

    try:
        outcome: dict[str, Any] = operator.execute(context={"ti": TaskInstance()})  # type: ignore[typeddict-item]
    except Exception as error:  # not every id marked (the contrast run): the result is in XCom
        outcome = {**pushed, "error": str(error)}
    return outcome


class Run:
    """One run's requests from the sandbox log, on a time axis starting at the first arrival."""

    def __init__(self, requests: list[dict[str, Any]], prefix: str = "") -> None:
        mine = [r for r in requests if r["path"] == MARK_READ_PATH and prefix in (r["message_id"] or "")]
        mine.sort(key=lambda r: r["received_at"])
        self.t0 = mine[0]["received_at"] if mine else 0.0
        self.ok = [r["received_at"] - self.t0 for r in mine if r["code"] == 0]
        self.throttled = [r["received_at"] - self.t0 for r in mine if r["fault"] == RATE_LIMITED]
        self.total = len(mine)
        self.marked = len({r["message_id"] for r in mine if r["code"] == 0})

    def goodput(self, start: float, end: float | None = None) -> float:
        end = self.ok[-1] if end is None else end
        count = sum(1 for t in self.ok if start <= t < end)
        return count / (end - start) if end > start else 0.0

    def throttled_share(self, start: float = 0.0) -> float:
        sent = sum(1 for t in self.ok + self.throttled if t >= start)
        return sum(1 for t in self.throttled if t >= start) / max(1, sent)


def _limited(client: Any, per_second: float | None, retry_after: float | None = None) -> None:
    client.set_rate_limit(per_second, burst=BURST, retry_after=retry_after)


def _fresh(client: Any, latency_s: float) -> None:
    client.reset()
    client.configure(faults={"latency": latency_s})


def measure_limited(sandbox: SandboxProcess, ids_count: int) -> list[dict[str, Any]]:
    from airflow_provider_nxcloud.testing import SandboxClient

    client = SandboxClient(sandbox.url, timeout=60)
    rows: list[dict[str, Any]] = []
    for label, kwargs, retry_after in (
        ("account limit 40/s", {}, None),
        ("account limit 40/s, `Retry-After: 1`", {}, 1.0),
        ("without adaptation (contrast)", {"adaptive_rate": False}, None),
    ):
        _fresh(client, LATENCY_MS / 1000)
        _limited(client, LIMIT, retry_after)
        time.sleep(1 / LIMIT * BURST)  # the account bucket full again
        ids = message_ids("lim", ids_count)
        log(f"- {label}: {ids_count} ids, {WORKERS} workers {kwargs or ''}")
        with Ticker(label):
            outcome = _operator(ids, **kwargs)
        run = Run(client.state()["requests"])
        goodput = run.goodput(4.0)
        share = run.throttled_share()
        adaptive = not kwargs
        # The target is for the issue's setup (no Retry-After); with Retry-After: 1 every refused
        # request waits a whole second and the first seconds' 429s vary from 3 to 5.5 % between runs.
        targeted = adaptive and retry_after is None
        passed = goodput >= 0.9 * LIMIT and share <= 0.05 and run.marked == ids_count if targeted else True
        found = outcome.get("rate_limit_per_second")
        rows.append(
            _row(
                label,
                f"{ids_count:,} ids, operator defaults, `max_workers={WORKERS}`, no cap; account "
                f"{LIMIT:g}/s, burst {BURST:g}, 50 ms" + (", `adaptive_rate=False`" if not adaptive else ""),
                f"goodput from the 5th s {goodput:.1f}/s = {goodput / LIMIT:.2f}x; "
                f"{100 * share:.1f} % 429 ({len(run.throttled)} of {run.total}; from the 5th s "
                f"{100 * run.throttled_share(4.0):.1f} %); {run.marked:,}/{ids_count:,} marked"
                + (f"; limit found {found}/s" if found else ""),
                ">= 0.9x, <= 5 % 429, all marked"
                if targeted
                else "(for comparison)"
                if adaptive
                else "(today's behaviour, for contrast)",
                passed,
                goodput=goodput,
                throttled_share=share,
                marked=run.marked,
                limit_found=found,
            )
        )
        log(f"  {rows[-1]['result']}")
    _limited(client, None)
    return rows


def _settle_time(run: Run, start: float, end: float, limit: float) -> float | None:
    """
    Seconds after ``start`` from which every 2-s window up to ``end`` has goodput >= 0.8 x
    ``limit`` and at most 10 % of its requests refused; None if it never gets there.
    """
    settled: float | None = None
    t = start
    while t + 2 <= end:
        ok = sum(1 for x in run.ok if t <= x < t + 2)
        refused = sum(1 for x in run.throttled if t <= x < t + 2)
        good = ok / 2 >= 0.8 * limit and refused <= 0.1 * (ok + refused)
        if good and settled is None:
            settled = t - start
        elif not good:
            settled = None
        t += 0.5
    return settled


def measure_changing(sandbox: SandboxProcess, quick: bool) -> dict[str, Any]:
    from airflow_provider_nxcloud.testing import SandboxClient

    client = SandboxClient(sandbox.url, timeout=60)
    phases = (
        [(40.0, 15.0), (15.0, 15.0), (60.0, 20.0)] if not quick else [(40.0, 6.0), (15.0, 6.0), (60.0, 6.0)]
    )
    count = int(sum(rate * seconds for rate, seconds in phases) * 1.05)
    _fresh(client, LATENCY_MS / 1000)
    _limited(client, phases[0][0])
    time.sleep(0.2)
    changes: list[float] = []
    stop = threading.Event()

    def change_limits() -> None:
        # Wait for the first request, then change the limit at each phase's end.
        while not stop.is_set() and not client.state(since=1 << 62)["request_count"]:
            time.sleep(0.02)
        started = time.time()
        changes.append(started)
        elapsed = 0.0
        for (rate, _), (_, previous_seconds) in zip(phases[1:], phases[:-1], strict=True):
            elapsed += previous_seconds
            if stop.wait(max(0.0, started + elapsed - time.time())):
                return
            _limited(client, rate)
            changes.append(time.time())

    label = "changing limit"
    log(f"- {label}: {count} ids, account limit {' -> '.join(f'{r:g}' for r, _ in phases)}/s")
    changer = threading.Thread(target=change_limits, daemon=True)
    changer.start()
    with Ticker(label):
        _operator(message_ids("chg", count))
    stop.set()
    changer.join()
    run = Run(client.state()["requests"])
    _limited(client, None)
    offsets = [c - run.t0 for c in changes] + [run.ok[-1]]
    settle = [
        _settle_time(run, offsets[i], offsets[i + 1], rate) for i, (rate, _) in enumerate(phases) if i > 0
    ]
    passed = all(s is not None and s <= 10 for s in settle) and run.marked == count
    text = ", ".join(
        f"{phases[i][0]:g}->{phases[i + 1][0]:g}: {'never' if s is None else f'{s:.1f} s'}"
        for i, s in enumerate(settle)
    )
    return _row(
        "limit changing mid-run",
        f"{count:,} ids, 32 workers, account {' -> '.join(f'{r:g}' for r, _ in phases)}/s "
        f"({', '.join(f'{s:g} s' for _, s in phases)}); settled = every 2-s window after it >= 0.8x "
        "the new limit and <= 10 % 429",
        f"settled after {text}; {100 * run.throttled_share():.1f} % 429 overall; "
        f"{run.marked:,}/{count:,} marked",
        "<= 10 s after each change",
        passed,
        settle_seconds=settle,
    )


def measure_unlimited(sandbox: SandboxProcess, ids_count: int) -> dict[str, Any]:
    """No account limit: the adaptive limiter never engages and must cost nothing."""
    from airflow_provider_nxcloud.testing import SandboxClient

    client = SandboxClient(sandbox.url, timeout=60)
    _limited(client, None)
    figures: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
    _operator(message_ids("warm", 64))  # Airflow's first connection lookup, not measured
    for repeat in range(2):
        for key, kwargs in (("on", {}), ("off", {"adaptive_rate": False})):
            _fresh(client, LATENCY_MS / 1000)
            with Stopwatch(sandbox) as watch:
                outcome = _operator(message_ids(f"free{key}{repeat}", ids_count), **kwargs)
            if len(outcome.get("marked", [])) != ids_count:
                raise RuntimeError(f"no limit, adaptive {key}: not every id marked")
            figures[key].append((ids_count / watch.seconds, 1000 * watch.cpu / ids_count))
    on = max(figures["on"]), min(cpu for _, cpu in figures["on"])
    off = max(figures["off"]), min(cpu for _, cpu in figures["off"])
    speed = on[0][0] / off[0][0]
    cpu = on[1] / off[1]
    return _row(
        "no account limit",
        f"{ids_count:,} ids, 32 workers, adaptive on vs. `adaptive_rate=False`, alternating, best of 2",
        f"throughput {speed:.2f}x ({on[0][0]:.0f} vs {off[0][0]:.0f} msg/s); CPU/msg {cpu:.2f}x "
        f"({on[1]:.3f} vs {off[1]:.3f} ms)",
        "unchanged within noise: >= 0.95x, CPU <= 1.1x",
        speed >= 0.95 and cpu <= 1.1,
        figures=figures,
    )


def measure_random_faults(sandbox: SandboxProcess, ids_count: int) -> dict[str, Any]:
    """Should -1, 9001 and 503 count as throttles? Random faults, no limit: what it would cost."""
    import airflow_provider_nxcloud.client.responses as responses_module
    from airflow_provider_nxcloud.client.responses import is_throttle
    from airflow_provider_nxcloud.testing import SandboxClient

    client = SandboxClient(sandbox.url, timeout=60)
    faults = {"latency": LATENCY_MS / 1000, "rates": {"-1": 0.10, "9001": 0.05, "503": 0.05}, "seed": 7}

    def broad(answer: Any) -> bool:
        return (
            is_throttle(answer)
            or answer.status == 503
            or b'"code": -1' in answer.body
            or b"9001" in answer.body
        )

    rates: dict[str, float] = {}
    for key, detector in (("429 only", is_throttle), ("also -1/9001/503", broad)):
        client.reset()
        client.configure(faults=faults)
        responses_module.is_throttle = detector  # type: ignore[assignment]
        try:
            with Stopwatch(sandbox) as watch:
                outcome = _operator(message_ids(f"rf{len(rates)}", ids_count))
        finally:
            responses_module.is_throttle = is_throttle
        rates[key] = len(outcome.get("marked", [])) / watch.seconds
        log(f"  random faults, {key}: {rates[key]:.1f} msg/s {outcome.get('error', '')[:300]}")
    ratio = rates["also -1/9001/503"] / rates["429 only"] if rates["429 only"] else float("nan")
    return _row(
        "what counts as a throttle",
        f"{ids_count:,} ids, 32 workers, no limit, random 10 % -1, 5 % 9001, 5 % 503 (the reliability "
        "mix): counting only 429/Retry-After vs. also -1/9001/503",
        f"{rates['429 only']:.0f} vs {rates['also -1/9001/503']:.0f} msg/s ({ratio:.2f}x): "
        "-1/9001/503 do not count",
        "(decides the policy)",
        True,
        rates=rates,
    )


def _child(args: argparse.Namespace) -> int:
    """One task instance of the shared-account run, in its own process."""
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = args.connection
    ids = message_ids(args.prefix, args.count)
    start_at = float(args.start_at)
    time.sleep(max(0.0, start_at - time.time()))
    outcome = _operator(ids)
    print(
        json.dumps({"marked": len(outcome.get("marked", [])), "found": outcome.get("rate_limit_per_second")})
    )
    return 0


def measure_shared(sandbox: SandboxProcess, ids_count: int) -> dict[str, Any]:
    from airflow_provider_nxcloud.testing import SandboxClient

    client = SandboxClient(sandbox.url, timeout=60)
    _fresh(client, LATENCY_MS / 1000)
    _limited(client, LIMIT)
    start_at = time.time() + 8.0  # both processes import Airflow first, then start together
    prefixes = ["shA", "shB"]
    log(f"- two task instances sharing {LIMIT:g}/s: {ids_count} ids each, two processes")
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.adaptive",
                "--child",
                "--connection",
                json.dumps(sandbox.connection),
                "--prefix",
                prefix,
                "--count",
                str(ids_count),
                "--start-at",
                str(start_at),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        for prefix in prefixes
    ]
    outputs = [child.communicate(timeout=SUBPROCESS_TIMEOUT)[0] for child in children]
    results = [json.loads(output.strip().splitlines()[-1]) for output in outputs]
    requests = client.state()["requests"]
    _limited(client, None)
    both = Run(requests)
    runs = [Run(requests, prefix) for prefix in prefixes]
    # Compare while both ran: from the 5th second to when the first of them finished.
    end = min(run.ok[-1] + run.t0 for run in runs) - both.t0
    shares = [sum(1 for t in run.ok if 4.0 <= t + run.t0 - both.t0 < end) for run in runs]
    together = sum(shares) / (end - 4.0)
    fairness = min(shares) / max(shares) if max(shares) else 0.0
    share = both.throttled_share()
    marked = sum(r["marked"] for r in results)
    passed = together <= LIMIT * 1.02 and share <= 0.10 and fairness >= 0.7 and marked == 2 * ids_count
    return _row(
        "two task instances, one account",
        f"two processes, {ids_count:,} ids and 32 workers each, one account of {LIMIT:g}/s, burst {BURST:g}",
        f"together {together:.1f}/s = {together / LIMIT:.2f}x; {100 * share:.1f} % 429; shares "
        f"{shares[0]} : {shares[1]} ({fairness:.2f}) while both ran; {marked:,}/{2 * ids_count:,} marked; "
        f"limits found {results[0]['found']} and {results[1]['found']}/s",
        "<= limit, <= 10 % 429, shares within 30 %",
        passed,
        together=together,
        throttled_share=share,
        fairness=fairness,
    )


def measure_adaptive(quick: bool) -> list[dict[str, Any]]:
    """Every row of this benchmark (``quick``: small sizes, a smoke test)."""
    ids = 400 if quick else 1_200
    rows: list[dict[str, Any]] = []
    with SandboxProcess(latency_ms=LATENCY_MS, request_log=True) as sandbox:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(sandbox.connection)
        rows.extend(measure_limited(sandbox, ids))
        rows.append(measure_changing(sandbox, quick))
        rows.append(measure_shared(sandbox, ids))
        rows.append(measure_random_faults(sandbox, FAULT_IDS))
    with SandboxProcess(latency_ms=LATENCY_MS) as fast:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(fast.connection)
        rows.append(measure_unlimited(fast, 1_000 if quick else 5_000))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test, not a result")
    parser.add_argument("--only", help="run one measure: limited, changing, shared, faults, unlimited")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--connection", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if "AIRFLOW_HOME" not in os.environ or not args.child:
        # A private AIRFLOW_HOME: no secrets backend or config of the machine's own Airflow.
        os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="nxcloud-adaptive-airflow-")
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY", ""), "127.0.0.1", "localhost"]))
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = no_proxy
    if args.child:
        return _child(args)
    table_out = take_stdout()
    if args.only:
        ids = 400 if args.quick else 1_200
        with SandboxProcess(latency_ms=LATENCY_MS, request_log=args.only != "unlimited") as sandbox:
            os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(sandbox.connection)
            rows = {
                "limited": lambda: measure_limited(sandbox, ids),
                "changing": lambda: [measure_changing(sandbox, args.quick)],
                "shared": lambda: [measure_shared(sandbox, ids)],
                "faults": lambda: [measure_random_faults(sandbox, FAULT_IDS)],
                "unlimited": lambda: [measure_unlimited(sandbox, 1_000 if args.quick else 5_000)],
            }[args.only]()
    else:
        rows = measure_adaptive(args.quick)
    print(table_rows(rows), file=table_out, flush=True)
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
