"""A throwaway Airflow UI server and headless Chromium driving it.

Airflow 3 serves its React UI from ``airflow api-server``; Airflow 2 its Flask UI from ``airflow
webserver`` (made login-free by a ``webserver_config.py`` giving anonymous visitors the Admin role).
"""

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

from tests.compat import AIRFLOW_2
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


# Airflow 2's Flask UI without a login page: every visitor is an admin.
FLASK_NO_LOGIN_CONFIG = """\
from flask_appbuilder.const import AUTH_DB

AUTH_TYPE = AUTH_DB
AUTH_ROLE_PUBLIC = "Admin"
"""


READ_CONNECTION = """
import dataclasses, json, os, sys
from airflow.models.connection import Connection
from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook
conn = Connection.get_connection_from_secrets(sys.argv[1])  # the metadata DB, on every version
# Outside a task, Airflow 3's hooks do not read the metadata DB: hand the hook what it read.
os.environ[f"AIRFLOW_CONN_{sys.argv[1].upper()}"] = conn.as_json()
hook = NxCloudHook(nxcloud_conn_id=sys.argv[1])
settings = {k: v for k, v in dataclasses.asdict(hook.settings).items() if k != "access_secret"}
print(json.dumps({
    "conn_type": conn.conn_type, "host": conn.host, "login": conn.login, "password": conn.password,
    "extra": conn.extra_dejson, "settings": settings,
}))
"""


@dataclass(frozen=True)
class ApiServer:
    """A running Airflow UI server on 127.0.0.1 (``api-server`` on 3.x, ``webserver`` on 2.x)."""

    url: str
    home: Path
    log: Path
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    token: str | None  # 3.1 wants a (login-free) token on its REST API even for all-admins

    def stored_connection(self, conn_id: str) -> dict[str, Any]:
        """The connection as stored (password and typed extras), and as the hook resolves it.

        Read in a child process on the server's metadata DB: ``airflow connections get`` turns
        every extra into a string, and the REST API masks the password.
        """
        result = subprocess.run(
            [str(airflow_executable().with_name("python")), "-c", READ_CONNECTION, conn_id],
            env=self.env, cwd=self.home, capture_output=True, text=True, timeout=HTTP_TIMEOUT_SECONDS * 4,
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        return dict(json.loads(result.stdout.strip().splitlines()[-1]))

    def request(self, method: str, path: str, document: Any = None) -> tuple[int, Any]:
        """One JSON request; returns (HTTP status, decoded body)."""
        data = json.dumps(document).encode() if document is not None else None
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
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
    health = "/health" if AIRFLOW_2 else "/api/v2/monitor/health"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}{health}", timeout=5) as response:
                if response.status == 200:
                    return
        except (OSError, http.client.HTTPException):  # not listening yet, or answering 503
            pass
        # Poll interval that also notices a server that died (port taken, bad config).
        try:
            code = process.wait(timeout=0.25)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"the Airflow UI server exited with {code} before it was healthy:\n{_log_tail(log)}")
    pytest.fail(f"the Airflow UI server not healthy after {STARTUP_DEADLINE_SECONDS} s:\n{_log_tail(log)}")


def _token(url: str) -> str | None:
    if AIRFLOW_2:
        return None
    try:
        with urllib.request.urlopen(f"{url}/auth/token", timeout=HTTP_TIMEOUT_SECONDS) as response:
            return str(json.loads(response.read())["access_token"])
    except (OSError, ValueError, KeyError):  # a version that needs none
        return None


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """The Airflow UI on a free 127.0.0.1 port over a freshly migrated sqlite home."""
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
    if AIRFLOW_2:
        (home / "webserver_config.py").write_text(FLASK_NO_LOGIN_CONFIG)
        env["AIRFLOW__WEBSERVER__WORKERS"] = "1"
        command = ["webserver", "--hostname", "127.0.0.1", "--port", str(port)]
    else:
        command = ["api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log = home / "ui-server.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [str(airflow), *command],
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
        if AIRFLOW_2:
            # The Flask view adds the providers' extra fields on its first request in a request
            # context; that first Add Connection page can come without them, so take it here.
            with urllib.request.urlopen(f"{url}/connection/add", timeout=HTTP_TIMEOUT_SECONDS):
                pass
        yield ApiServer(url=url, home=home, log=log, process=process, env=env, token=_token(url))
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
