"""A throwaway Airflow API server (which serves the UI) and headless Chromium driving it."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MIGRATE_TIMEOUT_SECONDS = 180
# The server answers /health after about 5 s here; the deadline only bounds a server that never starts.
STARTUP_DEADLINE_SECONDS = 120
STOP_GRACE_SECONDS = 20
HTTP_TIMEOUT_SECONDS = 30
ARTIFACTS_DIR = Path(__file__).resolve().parents[2] / "test-artifacts"


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def airflow_executable() -> Path:
    path = Path(sys.executable).parent / "airflow"
    if not path.exists():
        pytest.fail(f"no airflow script next to {sys.executable}; install apache-airflow in this venv")
    return path


def isolated_airflow_env(home: Path) -> dict[str, str]:
    """The current environment minus every AIRFLOW* variable, pointed at ``home``."""
    dags = home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    env = {name: value for name, value in os.environ.items() if not name.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        # Simple auth manager without a login page: every visitor is an admin.
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        # Lets POST /api/v2/connections/test check a connection saved through the form.
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
    )
    return env


@dataclass(frozen=True)
class ApiServer:
    """A running ``airflow api-server`` on 127.0.0.1."""

    url: str
    home: Path
    log: Path
    process: subprocess.Popen[bytes]

    def request(self, method: str, path: str, document: Any = None) -> tuple[int, Any]:
        """One JSON request; returns (HTTP status, decoded body)."""
        data = json.dumps(document).encode() if document is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    def get_json(self, path: str) -> Any:
        status, body = self.request("GET", path)
        assert status == 200, f"GET {path} answered {status}: {body}"
        return body


def _log_tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_until_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (OSError, http.client.HTTPException):  # not listening yet, or answering 503
            pass
        # Poll interval that also notices a server that died (port taken, bad config).
        try:
            code = process.wait(timeout=0.25)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"airflow api-server exited with {code} before it was healthy:\n{_log_tail(log)}")
    pytest.fail(f"airflow api-server not healthy after {STARTUP_DEADLINE_SECONDS} s:\n{_log_tail(log)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's own process group, SIGKILL it if it is still there after the grace."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_GRACE_SECONDS)
    except ProcessLookupError:
        process.wait(timeout=STOP_GRACE_SECONDS)


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """``airflow api-server`` on a free 127.0.0.1 port over a freshly migrated sqlite home."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = isolated_airflow_env(home)
    airflow = airflow_executable()
    migrate = subprocess.run(
        [str(airflow), "db", "migrate"],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=MIGRATE_TIMEOUT_SECONDS,
        check=False,
    )
    if migrate.returncode != 0:
        pytest.fail(f"airflow db migrate failed:\n{migrate.stdout}\n{migrate.stderr}")

    port = free_port()
    log = home / "api-server.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [str(airflow), "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env,
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so the finalizer can end all of it
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_healthy(url, process, log)
        yield ApiServer(url=url, home=home, log=log, process=process)
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def chromium_executable() -> Path:
    """Debian's Chromium; Playwright cannot download its own browser here."""
    if CHROMIUM.exists():
        return CHROMIUM
    reason = f"{CHROMIUM} is missing: install it with `apt-get update && apt-get install -y chromium`"
    if running_in_ci():
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser(chromium_executable: Path) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(chromium_executable), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context; tall enough that the whole Add Connection modal is in view."""
    context = browser.new_context(viewport={"width": 1400, "height": 1300})
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS_DIR
