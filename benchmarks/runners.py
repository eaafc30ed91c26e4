"""How each client is run against a sandbox: timed, its CPU counted, the sandbox's marks checked."""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_nxcloud.client.api import MARK_READ_PATH
from benchmarks import clients
from benchmarks.common import Stopwatch, Ticker, log, message_ids
from benchmarks.config import LATENT, WORKERS

if TYPE_CHECKING:
    from collections.abc import Callable

    from benchmarks.common import SandboxProcess, Timed


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


def _timed(sandbox: SandboxProcess, ids: list[str], label: str, mark: Callable[[Ticker], int]) -> Timed:
    """``mark(ticker)`` marks ``ids`` and says how many succeeded; timed, then checked on the sandbox."""
    with Ticker(label, len(ids)) as ticker, Stopwatch(sandbox) as watch:
        ok = mark(ticker)
    check_marks(sandbox, len(ids), label)
    return watch.result(len(ids), ok)


def run_operator(
    sandbox: SandboxProcess, ids: list[str], label: str, conn_id: str = LATENT.conn_id, **kwargs: Any
) -> Timed:
    log(f"- {label}: operator, {len(ids)} ids {kwargs or ''}")
    result = _timed(sandbox, ids, label, lambda _: clients.operator_run(ids, conn_id=conn_id, **kwargs))
    log(f"  {result.per_second:.0f} msg/s, {result.cpu_ms_per_message:.3f} ms CPU/msg")
    return result


def run_raw(sandbox: SandboxProcess, ids: list[str], label: str) -> Timed:
    log(f"- {label}: raw urllib3 client, {len(ids)} ids, {WORKERS} threads")
    presigned = clients.presign(ids, sandbox.connection)  # before the clock starts

    def mark(ticker: Ticker) -> int:
        return clients.raw_client(presigned, url=sandbox.url, workers=WORKERS, ticker=ticker)

    result = _timed(sandbox, ids, label, mark)
    log(f"  {result.per_second:.0f} msg/s, {result.cpu_ms_per_message:.3f} ms CPU/msg")
    return result


def run_hand_written(sandbox: SandboxProcess, ids: list[str], label: str) -> Timed:
    log(f"- {label}: {len(ids)} ids, one at a time")

    def mark(ticker: Ticker) -> int:
        return clients.hand_written_loop(ids, url=sandbox.url, connection=sandbox.connection, ticker=ticker)

    result = _timed(sandbox, ids, label, mark)
    log(f"  {result.per_second:.1f} msg/s")
    return result


def run_http_hook(
    sandbox: SandboxProcess, ids: list[str], label: str, http_conn_id: str = LATENT.http_conn_id
) -> Timed:
    log(f"- {label}: {len(ids)} ids, one at a time")

    def mark(ticker: Ticker) -> int:
        return clients.http_hook_loop(
            ids, http_conn_id=http_conn_id, connection=sandbox.connection, ticker=ticker
        )

    result = _timed(sandbox, ids, label, mark)
    log(f"  {result.per_second:.1f} msg/s")
    return result


def warm_up(sandbox: SandboxProcess, conn_id: str) -> None:
    """
    One small run of the operator and of the raw client, not measured: Airflow's first connection
    lookup initialises its secrets backends and settings (~1 s, once per process; a task pays it
    at start-up, not per batch).
    """
    run_operator(sandbox, message_ids("warm", 64), "warm-up", conn_id=conn_id, max_workers=WORKERS)
    run_raw(sandbox, message_ids("warmraw", 64), "warm-up")


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
