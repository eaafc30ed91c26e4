"""``python -m airflow_provider_nxcloud.testing``: the ready line works as printed; Ctrl-C exits cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook
from airflow_provider_nxcloud.testing import SandboxClient

if TYPE_CHECKING:
    import pytest


def test_cli_prints_a_usable_connection_and_stops_on_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_nxcloud.testing", "--port", "0", "--business-phone", "861"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        listening = process.stdout.readline()  # blocks until the server is up (it prints after binding)
        ready = process.stdout.readline()
        assert listening.startswith("NXCloud sandbox listening on http://127.0.0.1:")
        name, _, value = ready.strip().partition("=")
        assert name == "AIRFLOW_CONN_NXCLOUD_DEFAULT"
        connection = value.strip("'")
        assert json.loads(connection)["extra"] == {"business_phone": "861"}

        monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", connection)
        assert NxCloudHook().mark_message_as_read("wamid.cli").code == 0
        assert SandboxClient(json.loads(connection)["host"]).marked_ids() == {"wamid.cli"}

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        assert "Traceback" not in (process.stderr.read() if process.stderr else "")
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
