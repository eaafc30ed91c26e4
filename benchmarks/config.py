"""What every benchmark run is set up with: latency, workers, rate cap, connection ids, sizes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent

LATENCY_MS = 50.0
WORKERS = 32
CEILING = WORKERS / (LATENCY_MS / 1000)  # 640 msg/s: every worker always waiting on one round trip
RATE_CAP = 100.0
BENCH_CONN = "nxcloud_bench"
BENCH_HTTP_CONN = "nxcloud_bench_http"
BENCH_FAST_CONN = "nxcloud_bench_fast"
BENCH_LOGGED_CONN = "nxcloud_bench_logged"
SUBPROCESS_TIMEOUT = 280.0


@dataclass(frozen=True)
class Sizes:
    throughput: int = 10_000
    baseline: int = 500
    rate_cap: int = 2_000
    memory: int = 100_000
    defaults: int = 1_000
    import_repeats: int = 5


FULL = Sizes()
QUICK = Sizes(throughput=1_000, baseline=40, rate_cap=300, memory=5_000, defaults=80, import_repeats=2)
