"""A throwaway Airflow API server (which serves the UI) and headless Chromium driving it."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support import (
    airflow_executable,
    free_port,
    isolated_airflow_env,
    migrate_airflow_db,
    stop_process_group,
)

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
# The server answers /health after about 5 s here; the deadline only bounds a server that never starts.
STARTUP_DEADLINE_SECONDS = 120
STOP_GRACE_SECONDS = 20
HTTP_TIMEOUT_SECONDS = 30
ARTIFACTS_DIR = Path(__file__).resolve().parents[2] / "test-artifacts"


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


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


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """``airflow api-server`` on a free 127.0.0.1 port over a freshly migrated sqlite home."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = isolated_airflow_env(
        home,
        # Simple auth manager without a login page: every visitor is an admin.
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        # Lets POST /api/v2/connections/test check a connection saved through the form.
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
    )
    migrate_airflow_db(env)
    airflow = airflow_executable()

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
        stop_process_group(process, grace_seconds=STOP_GRACE_SECONDS)


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
