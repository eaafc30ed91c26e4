"""What every benchmark run is set up with: latency, workers, rate cap, sandboxes, sizes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BENCHMARKS_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCHMARKS_DIR / "results"
REPO_ROOT = BENCHMARKS_DIR.parent  # where ``python -m benchmarks.<module>`` finds the package

LATENCY_MS = 50.0
WORKERS = 32
CEILING = WORKERS / (LATENCY_MS / 1000)  # 640 msg/s: every worker always waiting on one round trip
RATE_CAP = 100.0
SUBPROCESS_TIMEOUT = 280.0


@dataclass(frozen=True)
class SandboxSpec:
    """A sandbox process to run, and the Airflow connection ids that point at it while it runs."""

    conn_id: str
    latency_ms: float = LATENCY_MS
    request_log: bool = False

    @property
    def http_conn_id(self) -> str:
        """An ``http`` connection to the same sandbox, for Airflow's ``HttpHook``."""
        return f"{self.conn_id}_http"


LATENT = SandboxSpec("nxcloud_bench")  # throughput and comparisons: marks only, no request log
LOGGED = SandboxSpec("nxcloud_bench_logged", request_log=True)  # the rate cap reads arrival times
FAST = SandboxSpec("nxcloud_bench_fast", latency_ms=0)  # memory: waiting adds nothing to measure


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
