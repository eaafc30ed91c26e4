"""Real servers for the deployment tests: PostgreSQL, Redis, the sandbox and Airflow's components.

Each one runs in its own session (so stopping it kills everything it spawned, Airflow renames and
forks a lot), on 127.0.0.1 at a free port, logging to a file in the test's temp dir. Every wait
is bounded and fails naming the component, with the tail of its log.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from tests.support import free_port, isolated_airflow_env, stop_process_group

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
# PostgreSQL refuses to run as root; Debian's package creates this user.
POSTGRES_USER = "postgres"
# Distinctive, so a scan of every log file cannot match anything else.
ACCESS_KEY = "deploy-access-key"
ACCESS_SECRET = "deploy-SECRET-4f1c9e27b8"
# The business numbers the deployment's sandbox serves and its inbox rows are addressed to.
PHONES = ["8613800000000", "8613900000001"]


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Service:
    """One server process (and whatever it spawns), started in its own session."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(
        cls,
        name: str,
        argv: list[str],
        *,
        log_dir: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> Service:
        log = log_dir / f"{name}.log"
        with log.open("wb") as handle:
            process = subprocess.Popen(
                argv,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                user=user,
                start_new_session=True,
            )
        return cls(name, process, log)

    def fail(self, message: str) -> NoReturn:
        pytest.fail(f"{self.name}: {message}\n--- last lines of {self.log} ---\n{tail(self.log)}")

    def wait_for(self, what: str, condition: Callable[[], bool], *, timeout: float) -> None:
        """Poll ``condition`` until it holds; fail naming this component if it never does or dies."""
        deadline = time.monotonic() + timeout
        while not _holds(condition):
            if self.process.poll() is not None:
                self.fail(f"exited with {self.process.returncode} before {what}")
            if time.monotonic() > deadline:
                self.fail(f"not {what} after {timeout:g} s")
            time.sleep(0.2)

    def alive(self) -> None:
        if self.process.poll() is not None:
            self.fail(f"exited with {self.process.returncode}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the session's group and every descendant that left it.

        Airflow's task supervisor moves each task into a process group of its own
        (``os.setpgid`` in ``airflow.sdk.execution_time.supervisor``), which a signal to the
        worker's group does not reach.
        """
        strays = descendants(self.process.pid)
        stop_process_group(self.process, sig=sig, grace_seconds=30)
        for pid in strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def descendants(root: int) -> list[int]:
    """Every live process below ``root``, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name may hold spaces and parentheses: the fields start after its ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _holds(condition: Callable[[], bool]) -> bool:
    try:
        return condition()
    except (OSError, urllib.error.URLError, ConnectionError):
        return False


class Services:
    """The servers of one test, stopped in reverse order however the test ends."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.logs = root / "service-logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.started: list[Service] = []
        self.scratch: list[Path] = []  # directories outside ``root``, removed after the servers stop

    def start(self, name: str, argv: list[str], **kwargs: Any) -> Service:
        service = Service.start(name, argv, log_dir=self.logs, **kwargs)
        self.started.append(service)
        return service

    def stop_all(self) -> None:
        for service in reversed(self.started):
            service.stop()
        for path in self.scratch:
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def services(root: Path) -> Iterator[Services]:
    running = Services(root)
    try:
        yield running
    finally:
        running.stop_all()


# -- PostgreSQL --


@dataclass
class Postgres:
    service: Service
    port: int

    def url(self, database: str, driver: str = "postgresql") -> str:
        return f"{driver}://{POSTGRES_USER}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str) -> Any:
        import psycopg2

        return psycopg2.connect(host="127.0.0.1", port=self.port, user=POSTGRES_USER, dbname=database)

    def create_database(self, name: str) -> None:
        conn = self.connect("postgres")
        conn.autocommit = True
        try:
            conn.cursor().execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()


def start_postgres(running: Services) -> Postgres:
    """A throwaway cluster: initdb as the unprivileged user, data in a temp dir, trust on loopback."""
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not binaries:
        pytest.fail("postgresql is not installed (python3 dev.py e2e installs it from Debian as root)")
    bin_dir = binaries[-1].parent
    try:
        pwd.getpwnam(POSTGRES_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", POSTGRES_USER], check=True, timeout=60)
    # pytest's temp dirs are private to root: the cluster's user needs a directory of its own.
    data = Path(tempfile.mkdtemp(prefix="nxcloud-pg-"))
    running.scratch.append(data)
    shutil.chown(data, POSTGRES_USER)
    initdb = subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(data / "db"), "-U", POSTGRES_USER, "-A", "trust", "--no-sync"],
        user=POSTGRES_USER,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if initdb.returncode:
        pytest.fail(f"postgresql initdb failed:\n{initdb.stdout}\n{initdb.stderr}")
    port = free_port()
    # fsync off: a throwaway cluster on a machine shared with other test runs.
    service = running.start(
        "postgresql",
        [
            str(bin_dir / "postgres"), "-D", str(data / "db"), "-p", str(port), "-k", str(data),
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off", "-c", "max_connections=300",
        ],
        user=POSTGRES_USER,
    )  # fmt: skip
    postgres = Postgres(service, port)

    def accepts() -> bool:
        import psycopg2

        try:
            postgres.connect("postgres").close()
        except psycopg2.OperationalError:
            return False
        return True

    service.wait_for("accepting connections", accepts, timeout=60)
    return postgres


# -- Redis --


def start_redis(running: Services) -> str:
    binary = shutil.which("redis-server")
    if not binary:
        pytest.fail("redis-server is not installed (python3 dev.py e2e installs it from Debian as root)")
    port = free_port()
    data = running.root / "redis"
    data.mkdir()
    service = running.start(
        "redis",
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(data)],
    )  # fmt: skip

    def pings() -> bool:
        import redis

        try:
            return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=2).ping())
        except redis.RedisError:
            return False

    service.wait_for("answering PING", pings, timeout=30)
    return f"redis://127.0.0.1:{port}/0"


# -- the sandbox, out of process --


@dataclass
class Sandbox:
    service: Service
    url: str

    @property
    def client(self) -> Any:
        from airflow_provider_nxcloud.testing import SandboxClient

        return SandboxClient(self.url, timeout=30)

    def connection_json(self) -> str:
        return json.dumps(
            {"conn_type": "nxcloud", "host": self.url, "login": ACCESS_KEY, "password": ACCESS_SECRET}
        )

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        return list(self.client.state(since=since)["requests"])

    def mark_counts(self) -> dict[tuple[str, str], int]:
        counts = self.client.state(since=1 << 62)["mark_counts"]
        return {(phone, message_id): n for phone, message_id, n in counts}


def start_sandbox(running: Services, *, business_phones: list[str], message_ids: list[str]) -> Sandbox:
    """``python -m airflow_provider_nxcloud.testing`` knowing ``message_ids`` (others get 9099)."""
    ids_file = running.root / "sandbox-message-ids.txt"
    ids_file.write_text("".join(f"{m}\n" for m in message_ids))
    argv = [
        sys.executable, "-m", "airflow_provider_nxcloud.testing", "--port", str(free_port()),
        "--access-key", ACCESS_KEY, "--access-secret", ACCESS_SECRET, "--message-ids-file", str(ids_file),
    ]  # fmt: skip
    for phone in business_phones:
        argv += ["--business-phone", phone]
    service = running.start("sandbox", argv)
    found: dict[str, str] = {}

    def listening() -> bool:
        for line in service.log.read_text().splitlines():
            if line.startswith("NXCloud sandbox listening on "):
                found["url"] = line.rsplit(" ", 1)[-1]
                return True
        return False

    service.wait_for("listening", listening, timeout=60)
    return Sandbox(service, found["url"])


# -- Airflow --


def airflow_env(home: Path, metadata_url: str, **settings: str) -> dict[str, str]:
    """What every Airflow component of one deployment shares (they must agree on all of it)."""
    api_port = free_port()
    dags = home / "dags"
    env = isolated_airflow_env(
        home,
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # standalone spawns `airflow`
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=metadata_url,
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(api_port),
        AIRFLOW__API__BASE_URL=f"http://localhost:{api_port}",
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://localhost:{api_port}/execution/",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        # Components started separately sign and check each other's tokens with this.
        AIRFLOW__API_AUTH__JWT_SECRET="deployment-test-jwt-secret-not-a-real-one",
        # 8793 may belong to another Airflow on this machine.
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True",
        AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK="False",
    )
    env.update(settings)
    dags.mkdir(parents=True, exist_ok=True)
    return env


@dataclass
class Airflow:
    """The REST API of a running deployment (all-admins auth: no token needed)."""

    env: dict[str, str]
    api: Service | None = None
    components: dict[str, Service] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return Path(self.env["AIRFLOW_HOME"])

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.env['AIRFLOW__API__PORT']}"

    def request(self, method: str, path: str, document: Any = None) -> Any:
        data = json.dumps(document).encode() if document is not None else None
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def _owner(self) -> Service:
        assert self.api is not None
        return self.api

    def wait_healthy(self, timeout: float = 180) -> None:
        def healthy() -> bool:
            return bool(self.request("GET", "/api/v2/monitor/health"))

        self._owner().wait_for("answering /api/v2/monitor/health", healthy, timeout=timeout)

    def wait_dag(self, dag_id: str, timeout: float = 180) -> None:
        def parsed() -> bool:
            try:
                self.request("GET", f"/api/v2/dags/{dag_id}")
            except urllib.error.HTTPError as error:
                if error.code == 404:
                    return False
                raise
            return True

        owner = self.components.get("dag-processor", self._owner())
        owner.wait_for(f"parsed {dag_id}", parsed, timeout=timeout)

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        document = {"logical_date": None, "conf": conf or {}}
        run = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", document)
        return str(run["dag_run_id"])

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=start_date")["dag_runs"])

    def wait_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        """The run's final state; fails naming the scheduler if it never ends."""
        state: dict[str, str] = {}

        def ended() -> bool:
            for service in self.components.values():
                service.alive()
            state["value"] = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            return state["value"] in {"success", "failed"}

        owner = self.components.get("scheduler", self._owner())
        owner.wait_for(f"finished run {run_id} of {dag_id} (last state {state})", ended, timeout=timeout)
        return state["value"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000"
        return list(self.request("GET", path)["task_instances"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        path = (
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
            f"?map_index={map_index}&deserialize=true"
        )
        return self.request("GET", path)["value"]


def copy_dag(home: Path, name: str) -> None:
    shutil.copy(REPO / "example_dags" / f"{name}.py", home / "dags" / f"{name}.py")


def files_containing(root: Path, secret: str) -> list[Path]:
    needle = secret.encode()
    return [path for path in root.rglob("*") if path.is_file() and needle in path.read_bytes()]
