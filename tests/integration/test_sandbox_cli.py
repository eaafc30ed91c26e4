"""``python -m airflow_provider_nxcloud.testing``: the ready line works as printed; Ctrl-C exits cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from airflow_provider_nxcloud.client.errors import NxCloudApiError
from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook
from airflow_provider_nxcloud.testing import SandboxClient

if TYPE_CHECKING:
    from pathlib import Path


def test_cli_prints_a_usable_connection_and_stops_on_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_nxcloud.testing", "--port", "0", "--business-phone", "861",
         "--appkey", "app-cli"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        listening = process.stdout.readline()  # blocks until the server is up (it prints after binding)
        ready = process.stdout.readline()
        assert listening.startswith("NXCloud sandbox listening on http://127.0.0.1:")
        name, _, value = ready.strip().partition("=")
        assert name == "AIRFLOW_CONN_NXCLOUD_DEFAULT"
        connection = value.strip("'")
        assert json.loads(connection)["extra"] == {"business_phone": "861", "appkey": "app-cli"}

        monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", connection)
        assert NxCloudHook().mark_message_as_read("wamid.cli").code == 0
        assert NxCloudHook().mark_message_as_read("wamid.cli2", typing_indicator=True).code == 0
        control = SandboxClient(json.loads(connection)["host"])
        assert control.marked_ids() == {"wamid.cli", "wamid.cli2"}
        assert control.typing_shown() == ["wamid.cli2"]

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        assert "Traceback" not in (process.stderr.read() if process.stderr else "")
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def test_cli_seeds_conversations_from_an_inbound_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbound = [
        {"id": f"wamid.f{n}", "business_phone": "861", "from": "15550001", "timestamp": 1_700_000_000 + n}
        for n in range(3)
    ]
    path = tmp_path / "inbound.json"
    path.write_text(json.dumps(inbound))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_nxcloud.testing",
            "--port",
            "0",
            "--inbound-file",
            str(path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]
        connection = process.stdout.readline().strip().partition("=")[2].strip("'")
        monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", connection)

        # 861 was not given as --business-phone: seeding a message makes its number known.
        assert NxCloudHook().mark_message_as_read("wamid.f1", "861").code == 0
        with pytest.raises(NxCloudApiError) as unknown:
            NxCloudHook().mark_message_as_read("wamid.not-seeded", "861")

        assert unknown.value.code == 9099
        assert SandboxClient(url).read_ids() == {"wamid.f0", "wamid.f1"}
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)


def test_cli_stops_on_ctrl_c_even_when_started_with_sigint_ignored() -> None:
    # As a shell starts a script's ``&`` jobs (and nohup its command): SIGINT ignored, inherited.
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_nxcloud.testing", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("NXCloud sandbox listening on")
        process.send_signal(signal.SIGINT)
        try:
            returncode = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("the sandbox CLI did not exit within 10 s of SIGINT (started with SIGINT ignored)")
        assert returncode == 0
        assert "NXCloud sandbox stopped" in (process.stderr.read() if process.stderr else "")
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def test_cli_serves_https_with_a_connection_that_verifies_it(monkeypatch: pytest.MonkeyPatch) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_nxcloud.testing", "--port", "0", "--tls"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("NXCloud sandbox listening on https://127.0.0.1:")
        connection = process.stdout.readline().strip().partition("=")[2].strip("'")
        assert json.loads(connection)["extra"]["verify"].endswith("cert.pem")

        monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", connection)
        assert NxCloudHook().mark_message_as_read("wamid.tls-cli").code == 0

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
