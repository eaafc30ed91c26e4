"""How each client is run against a sandbox: timed, its CPU counted, the sandbox's marks checked."""

from __future__ import annotations

import statistics
import time
from typing import Any

from airflow_provider_nxcloud.testing.sandbox import MARK_READ_PATH
from benchmarks import clients
from benchmarks.common import SandboxProcess, Stopwatch, Ticker, Timed, log, message_ids
from benchmarks.config import BENCH_CONN, BENCH_HTTP_CONN, WORKERS


def reset(sandbox: SandboxProcess) -> None:
    """Forget marks and requests. reset() also forgets faults, the injected latency among them."""
    from airflow_provider_nxcloud.testing import SandboxClient

    client = SandboxClient(sandbox.url, timeout=60)
    client.reset()
    client.configure(faults={"latency": sandbox.latency_ms / 1000})


def check_marks(sandbox: SandboxProcess, expected: int, what: str) -> None:
    """The sandbox must have marked every id: a fast run that failed quietly is no result."""
    from airflow_provider_nxcloud.testing import SandboxClient

    client = SandboxClient(sandbox.url, timeout=60)
    marked = len(client.state(since=1 << 62)["mark_counts"])
    reset(sandbox)
    if marked != expected:
        raise RuntimeError(f"{what}: the sandbox marked {marked} messages, expected {expected}")


def run_operator(
    sandbox: SandboxProcess, ids: list[str], label: str, conn_id: str = BENCH_CONN, **kwargs: Any
) -> Timed:
    log(f"- {label}: operator, {len(ids)} ids {kwargs or ''}")
    with Ticker(label), Stopwatch(sandbox) as watch:
        ok = clients.operator_run(ids, conn_id=conn_id, **kwargs)
    check_marks(sandbox, len(ids), label)
    result = watch.result(len(ids), ok)
    log(f"  {result.per_second:.0f} msg/s, {result.cpu_ms_per_message:.3f} ms CPU/msg")
    return result


def run_raw(sandbox: SandboxProcess, ids: list[str], label: str) -> Timed:
    log(f"- {label}: raw urllib3 client, {len(ids)} ids, {WORKERS} threads")
    presigned = clients.presign(ids, sandbox.connection)
    with Ticker(label, len(ids)) as ticker, Stopwatch(sandbox) as watch:
        ok = clients.raw_client(presigned, url=sandbox.url, workers=WORKERS, ticker=ticker)
    check_marks(sandbox, len(ids), label)
    result = watch.result(len(ids), ok)
    log(f"  {result.per_second:.0f} msg/s, {result.cpu_ms_per_message:.3f} ms CPU/msg")
    return result


def run_sequential(sandbox: SandboxProcess, ids: list[str], label: str, kind: str) -> Timed:
    log(f"- {label}: {len(ids)} ids, one at a time")
    with Ticker(label, len(ids)) as ticker, Stopwatch(sandbox) as watch:
        if kind == "requests":
            ok = clients.hand_written_loop(ids, url=sandbox.url, connection=sandbox.connection, ticker=ticker)
        else:
            ok = clients.http_hook_loop(
                ids, http_conn_id=BENCH_HTTP_CONN, connection=sandbox.connection, ticker=ticker
            )
    check_marks(sandbox, len(ids), label)
    result = watch.result(len(ids), ok)
    log(f"  {result.per_second:.1f} msg/s")
    return result


def round_trip_ms(sandbox: SandboxProcess, count: int = 20) -> float:
    """Median time of one request on an idle sandbox: the real per-worker ceiling."""
    import urllib3

    host, port = sandbox.url.removeprefix("http://").split(":")
    pool = urllib3.HTTPConnectionPool(host, int(port), maxsize=1, retries=False)
    times = []
    for headers, body in clients.presign(message_ids("rtt", count), sandbox.connection):
        started = time.perf_counter()
        _ = pool.urlopen("POST", MARK_READ_PATH, body=body, headers=headers, retries=False).data
        times.append(time.perf_counter() - started)
    pool.close()
    check_marks(sandbox, count, "round trip")
    return 1000 * statistics.median(times[1:])  # the first one also opens the connection
