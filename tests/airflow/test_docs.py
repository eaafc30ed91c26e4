"""Every connection form and Python snippet the docs give, run as a user would copy it.

The docs are the README and the Sphinx sources under ``docs/``. The PostgreSQL inbox forms need a
server: ``tests/deployment/test_docs_postgres.py``.
"""

from __future__ import annotations

import runpy
import sqlite3
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from airflow_provider_nxcloud.testing import NxCloudSandbox
from tests.conftest import DAGS_FOLDER
from tests.docs import EXAMPLE_DAGS, code_blocks, connection_forms, doc_sources, marked_region, readme_blocks
from tests.support import isolated_airflow_env, migrate_airflow_db

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.airflow
PHONE = "8613800000000"  # the docs' business phone
CLI_BLOCKS = [block for block in code_blocks("bash") if "airflow connections add" in block.code]
PYTHON_BLOCKS = code_blocks("python")
NXCLOUD_FORMS = connection_forms("AIRFLOW_CONN_NXCLOUD_DEFAULT")
INBOX_FORMS = connection_forms("AIRFLOW_CONN_NXCLOUD_INBOX")
SQLITE_FORMS = [form for form in INBOX_FORMS if "sqlite" in form]


@pytest.fixture
def docs_sandbox() -> Iterator[NxCloudSandbox]:
    """A sandbox that accepts the docs' placeholder credentials, appkey and business phone."""
    with NxCloudSandbox(
        access_key="ACCESS_KEY", access_secret="ACCESS_SECRET", business_phones=[PHONE], appkey="APPKEY"
    ) as sb:
        yield sb


def at_sandbox(text: str, sandbox: NxCloudSandbox) -> str:
    """The docs' NXCloud hosts, pointed at the sandbox (plain http is allowed to loopback only)."""
    return (
        text.replace("https://api2.nxcloud.com", sandbox.url)
        .replace("@api2.nxcloud.com", f"@127.0.0.1:{sandbox.port}/http")
        .replace("127.0.0.1:8080", f"127.0.0.1:{sandbox.port}")
    )


def test_the_docs_give_every_kind_of_form() -> None:
    assert len(NXCLOUD_FORMS) >= 4
    assert {form.lstrip()[0] for form in NXCLOUD_FORMS} == {"{", "n"}  # JSON and URI
    assert {form.lstrip()[0] for form in SQLITE_FORMS} == {"{", "s"}
    assert not [form for form in INBOX_FORMS if form.startswith("sqlite:////")]


@pytest.mark.parametrize("form", NXCLOUD_FORMS)
def test_nxcloud_connection_form(
    form: str, docs_sandbox: NxCloudSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook

    monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", at_sandbox(form, docs_sandbox))

    response = NxCloudHook().mark_message_as_read("wamid.docs", business_phone=PHONE)

    assert response.code == 0
    assert docs_sandbox.marked_ids(PHONE) == {"wamid.docs"}
    if "appkey" in form:  # the form the typing indicator needs: it shows one
        NxCloudHook().mark_message_as_read("wamid.typing", business_phone=PHONE, typing_indicator=True)
        assert docs_sandbox.typing_shown(PHONE) == ["wamid.typing"]


@pytest.mark.parametrize("command", [block.code for block in CLI_BLOCKS], ids=[b.where for b in CLI_BLOCKS])
def test_nxcloud_connection_from_the_cli(command: str, docs_sandbox: NxCloudSandbox, tmp_path: Path) -> None:
    env = isolated_airflow_env(tmp_path, ACCESS_KEY="ACCESS_KEY", ACCESS_SECRET="ACCESS_SECRET")
    env["PATH"] = f"{sys.executable.rsplit('/', 1)[0]}:{env.get('PATH', '')}"
    migrate_airflow_db(env)
    subprocess.run(["bash", "-ec", at_sandbox(command, docs_sandbox)], env=env, check=True, timeout=180)
    # A stored connection is read by tasks through the Execution API; the CLI's test does the same
    # through the hook: one signed request, which NXCloud checks credentials on first.
    env["AIRFLOW__CORE__TEST_CONNECTION"] = "Enabled"
    tested = subprocess.run(
        [sys.executable.rsplit("/", 1)[0] + "/airflow", "connections", "test", "nxcloud_default"],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip

    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert [(r.code, r.headers["accessKey"]) for r in docs_sandbox.requests] == [(0, "ACCESS_KEY")]


@pytest.mark.parametrize("form", SQLITE_FORMS)
def test_sqlite_inbox_connection_form(form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_nxcloud.version_compat import BaseHook

    path = tmp_path / "inbox.db"
    with sqlite3.connect(path) as db:
        db.execute(runpy.run_path(str(DAGS_FOLDER / "example_nxcloud_reconcile.py"))["INBOX_DDL"])
    encoded = str(path).replace("/", "%2F")
    monkeypatch.setenv(
        "AIRFLOW_CONN_NXCLOUD_INBOX",
        form.replace("/abs/path/inbox.db", str(path)).replace("%2Fabs%2Fpath%2Finbox.db", encoded),
    )

    hook = BaseHook.get_connection("nxcloud_inbox").get_hook()

    assert hook.get_records("SELECT COUNT(*) FROM whatsapp_inbox") == [(0,)]


def test_the_docs_give_the_connection_command() -> None:
    assert CLI_BLOCKS, "no `airflow connections add` command in the docs"


@pytest.mark.parametrize(
    "code", [block.code for block in PYTHON_BLOCKS], ids=[b.where for b in PYTHON_BLOCKS]
)
def test_python_snippet(
    code: str, docs_sandbox: NxCloudSandbox, airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snippet = tmp_path / "docs_snippet.py"
    snippet.write_text(at_sandbox(code, docs_sandbox))
    # A DAG file's imports see the dags folder, as in Airflow; the snippet may set connections.
    monkeypatch.syspath_prepend(str(DAGS_FOLDER))
    monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", docs_sandbox.connection_json())

    runpy.run_path(str(snippet), run_name="__main__")


def test_the_readme_dag_is_the_example_file() -> None:
    """The README shows the smallest example DAG as it is in example_dags/, between its markers."""
    (dag_snippet,) = [block for block in readme_blocks("python") if "def example_nxcloud_mark_read" in block]

    assert dag_snippet == marked_region(
        DAGS_FOLDER / "example_nxcloud_mark_read.py", "example_nxcloud_mark_read"
    )


def _runs_of_lines(text: str, length: int) -> set[tuple[str, ...]]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return {tuple(lines[at : at + length]) for at in range(len(lines) - length + 1)}


@pytest.mark.parametrize("source", doc_sources(), ids=lambda path: path.name)
def test_no_docs_source_pastes_an_example_dag(source: Path) -> None:
    """Example DAGs are included from example_dags/ (literalinclude), never copied into the docs."""
    pasted = _runs_of_lines(source.read_text(), 8)
    for example in EXAMPLE_DAGS:
        copied = pasted & _runs_of_lines(example.read_text(), 8)
        assert not copied, f"{source.name} repeats 8 lines of {example.name}: {next(iter(copied))}"
