"""The access secret never leaks: a full DAG run at DEBUG, scanned everywhere it could show.

``airflow dags test`` runs ``dags/nx_reliability_secrets.py`` in its own process at DEBUG log
level, with Airflow's secret masking switched off (``min_length_masked_secret`` above any
secret's length), so the scan sees what the provider emits rather than what Airflow would
redact. Three distinctive secrets are in play: the sandbox's (right), a wrong one (a 1003), and
one of a connection refused before sending. Scanned afterwards: every line the process wrote,
every file under its AIRFLOW_HOME/logs, every cell of every table of its metadata DB (XComs and
rendered template fields included) and every header and body the sandbox received. Looked for:
each secret (also base64-encoded, alone and as ``key:secret``), and the string-to-sign's
markers (``&accessSecret=``, ``accessKey=<key>&action=``), which the masker could not hide.

One occurrence is Airflow's, not the provider's, and is counted apart: Airflow 3.3.2's
in-process supervisor of ``airflow dags test`` / ``dag.test()`` logs at DEBUG each request of
the task to mask a secret, secret included (``Sending request ... MaskSecret(value='...')``,
``airflow/sdk/execution_time/supervisor.py``, ``InProcessSupervisorComms.send``). The real
supervisor omits that body (``Received message from task runner (body omitted)``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import sqlite3
import traceback
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_nxcloud.client.errors import NxCloudConfigError, NxCloudError
from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook
from airflow_provider_nxcloud.testing import DEFAULT_ACCESS_KEY, Faults, NxCloudSandbox
from tests.compat import AIRFLOW_2

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

    from tests.reliability.conftest import AirflowProcess

pytestmark = pytest.mark.airflow

DAG_ID = "nx_reliability_secrets"
REFUSED_HOST = "http://nxcloud.example.invalid"  # plain http to a remote host: refused before sending
# Airflow's own DEBUG echo of the masking request (see the module docstring).
AIRFLOW_MASK_ECHO = re.compile(r"Sending request\s.*msg=MaskSecret\(value=")


def distinctive(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex}"


@pytest.fixture
def secrets() -> dict[str, str]:
    return {
        "access secret": distinctive("S3cr3tRight"),
        "wrong secret": distinctive("S3cr3tWrong"),
        "refused-connection secret": distinctive("S3cr3tPlain"),
    }


def needles(secrets: dict[str, str]) -> dict[str, str]:
    """What must appear nowhere, by what it would reveal."""
    found: dict[str, str] = {}
    for label, secret in secrets.items():
        found[secret] = label
        found[base64.b64encode(secret.encode()).decode()] = f"{label} (base64)"
        basic = base64.b64encode(f"{DEFAULT_ACCESS_KEY}:{secret}".encode()).decode()
        found[basic] = f"{label} (Basic auth)"
    found["&accessSecret="] = "string-to-sign"
    found[f"accessKey={DEFAULT_ACCESS_KEY}&action="] = "string-to-sign (headers part)"
    return found


class Scan:
    """Counts places scanned and occurrences, per kind of place."""

    def __init__(self, needles: dict[str, str]) -> None:
        self.needles = needles
        self.places: dict[str, int] = {}
        self.occurrences: list[tuple[str, str, str]] = []  # (kind of place, what, excerpt)
        self.airflow_mask_echo = 0

    def text(self, kind: str, text: str, *, allow_mask_echo: bool = False) -> None:
        self.places[kind] = self.places.get(kind, 0) + 1
        for needle, what in self.needles.items():
            if needle in text:
                if allow_mask_echo and AIRFLOW_MASK_ECHO.search(text) and what.endswith("secret"):
                    self.airflow_mask_echo += 1
                    continue
                start = max(0, text.index(needle) - 80)
                self.occurrences.append((kind, what, text[start : start + 200]))

    def lines(self, kind: str, lines: Iterable[str], *, allow_mask_echo: bool = False) -> None:
        for line in lines:
            self.text(kind, line, allow_mask_echo=allow_mask_echo)


@pytest.fixture
def sandbox(secrets: dict[str, str]) -> Iterator[NxCloudSandbox]:
    faults = Faults(
        scripts={
            "wamid.secret0": ["-1"],
            "wamid.secret1": ["503"],
            "wamid.secret2": ["html"],
            "wamid.secret3": ["drop"],
            "wamid.secret4": ["429"],
            "wamid.secret5": ["9001"],
            "wamid.flaky1": ["-1"],
            "wamid.flaky2": ["-1"],
        },
        retry_after=0.05,
    )
    with NxCloudSandbox(access_secret=secrets["access secret"], faults=faults) as running:
        yield running


def connections(sandbox: NxCloudSandbox, secrets: dict[str, str]) -> dict[str, str]:
    right = json.loads(sandbox.connection_json())
    wrong = {**right, "password": secrets["wrong secret"]}
    plain = {**right, "host": REFUSED_HOST, "password": secrets["refused-connection secret"]}
    flaky = {**right, "extra": {**right["extra"], "max_retries": 0}}
    return {
        "AIRFLOW_CONN_NXCLOUD_DEFAULT": json.dumps(right),
        "AIRFLOW_CONN_NXCLOUD_WRONG_SECRET": json.dumps(wrong),
        "AIRFLOW_CONN_NXCLOUD_PLAIN_HTTP": json.dumps(plain),
        "AIRFLOW_CONN_NXCLOUD_FLAKY": json.dumps(flaky),
    }


def scan_database(scan: Scan, path: Path) -> dict[str, int]:
    rows_by_table: dict[str, int] = {}
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            rows = db.execute(f'SELECT * FROM "{table}"').fetchall()
            rows_by_table[table] = len(rows)
            for row in rows:
                for cell in row:
                    if isinstance(cell, bytes):
                        scan.text(f"db:{table}", cell.decode("latin-1"))
                    elif cell is not None:
                        scan.text(f"db:{table}", str(cell))
    return rows_by_table


@pytest.mark.skipif(
    AIRFLOW_2, reason="Airflow 2 cannot switch its secret masking off (no min_length_masked_secret)"
)
def test_no_secret_in_logs_xcom_templates_errors_or_requests_of_a_debug_run(
    airflow_process: AirflowProcess,
    sandbox: NxCloudSandbox,
    secrets: dict[str, str],
    figures: dict[str, Any],
) -> None:
    env = {
        **connections(sandbox, secrets),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
        "AIRFLOW__LOGGING__MIN_LENGTH_MASKED_SECRET": "100000",  # Airflow masks nothing
    }
    run = airflow_process.run(DAG_ID, env)
    output = run.stdout + run.stderr

    # The run did what the scan relies on: DEBUG on, every task ran, every failure happened.
    assert "[debug" in output, "not a DEBUG run"
    assert "Skipping masking for a secret" in output, "Airflow's masking was not off"
    for evidence in (
        "NXCloud attempt 1 failed",  # retries logged with their errors
        "Invalid signature",  # the 1003
        "plain http:// to nxcloud.example.invalid",  # the refused connection
        "NxCloudTransientError",  # a traceback
    ):
        assert evidence in output, f"{evidence!r} missing: the run did not exercise it"
    assert len(sandbox.marked_ids()) == 12
    assert {r.code for r in sandbox.requests} >= {0, -1, 1003}

    scan = Scan(needles(secrets))
    scan.lines("stdout line", run.stdout.splitlines(), allow_mask_echo=True)
    scan.lines("stderr line", run.stderr.splitlines(), allow_mask_echo=True)
    log_files = [p for p in (airflow_process.home / "logs").rglob("*") if p.is_file()]
    for path in log_files:
        scan.lines("log file line", path.read_text(errors="replace").splitlines(), allow_mask_echo=True)
    rows = scan_database(scan, airflow_process.home / "airflow.db")
    for record in sandbox.requests:
        for name, value in record.headers.items():
            scan.text("request header", f"{name}: {value}")
        scan.text("request body", record.body)

    assert rows.get("xcom", 0) >= 4, "the XComs to scan are missing"
    assert rows.get("rendered_task_instance_fields", 0) >= 5, "the rendered fields to scan are missing"
    with contextlib.closing(sqlite3.connect(airflow_process.home / "airflow.db")) as db:
        rendered = db.execute(
            "SELECT rendered_fields FROM rendered_task_instance_fields WHERE task_id = 'mark' AND dag_id = ?",
            (DAG_ID,),
        ).fetchall()
    # The template read the connection and rendered its phone: rendered fields were made and scanned.
    assert any('"business_phone": "8613800000000"' in row[0] for row in rendered), rendered

    figures["places_scanned"] = dict(sorted(scan.places.items()))
    figures["places_scanned_total"] = sum(scan.places.values())
    figures["db_rows_scanned"] = sum(rows.values())
    figures["xcom_rows"] = rows.get("xcom", 0)
    figures["rendered_template_rows"] = rows.get("rendered_task_instance_fields", 0)
    figures["sandbox_requests_scanned"] = len(sandbox.requests)
    figures["occurrences"] = len(scan.occurrences)
    figures["airflow_dags_test_mask_secret_echo_lines"] = scan.airflow_mask_echo
    assert scan.occurrences == [], "\n".join(f"{k}: {w}: {e!r}" for k, w, e in scan.occurrences[:10])


def texts_of(error: BaseException) -> list[str]:
    return [str(error), repr(error), "".join(traceback.format_exception(error))]


def test_no_secret_in_error_texts_reprs_or_results(
    nxcloud_sandbox: NxCloudSandbox, monkeypatch: pytest.MonkeyPatch, figures: dict[str, Any]
) -> None:
    """Everything a user can print: exceptions (str, repr, traceback), hooks, settings, results."""
    secret = nxcloud_sandbox.state.access_secret
    wrong = distinctive("S3cr3tWrong")
    right = json.loads(nxcloud_sandbox.connection_json(max_retries=1))
    monkeypatch.setenv("AIRFLOW_CONN_NX_WRONG", json.dumps({**right, "password": wrong}))
    monkeypatch.setenv("AIRFLOW_CONN_NX_RIGHT", json.dumps(right))
    plain = {**right, "host": REFUSED_HOST, "password": wrong}
    monkeypatch.setenv("AIRFLOW_CONN_NX_PLAIN", json.dumps(plain))
    nxcloud_sandbox.set_faults(
        Faults(codes={"wamid.bad": 9000, "wamid.gone": "meta:131009"}, scripts={"wamid.flaky": ["-1", "-1"]})
    )
    texts: list[str] = []
    fast = (0.01, 0.05)

    for conn_id, message_id, expected in (
        ("nx_wrong", "wamid.1", "code 1003"),
        ("nx_right", "wamid.flaky", "code -1"),
        ("nx_right", "wamid.bad", "code 9000"),
        ("nx_right", "wamid.gone", "Meta 131009"),  # a documented 9099: Meta's error and fbtrace_id
        ("nx_plain", "wamid.1", "plain http://"),
    ):
        hook = NxCloudHook(nxcloud_conn_id=conn_id, retry_wait=fast)
        with pytest.raises(NxCloudError, match=expected) as raised:
            hook.mark_message_as_read(message_id)
        texts += texts_of(raised.value)
        texts += [repr(hook), repr(vars(hook))]
        if not isinstance(raised.value, NxCloudConfigError):
            texts.append(repr(hook.settings))
        texts.append(repr(hook.test_connection()))
    batch = NxCloudHook(nxcloud_conn_id="nx_wrong", retry_wait=fast).mark_messages_as_read(
        ["wamid.1", "wamid.2"], max_workers=1
    )
    texts += [json.dumps(batch.to_dict()), batch.describe_failure(), batch.summary(), repr(batch)]

    leaks = [text for text in texts if secret in text or wrong in text or "&accessSecret=" in text]
    figures["texts_scanned"] = len(texts)
    figures["occurrences"] = len(leaks)
    assert leaks == []
    assert any("Invalid signature" in text for text in texts), "the 1003 text was not among those scanned"
