"""The docs' PostgreSQL inbox forms (URI and JSON), read by the Postgres provider from a real server."""

from __future__ import annotations

import runpy
from typing import TYPE_CHECKING

import pytest

from tests.deployment.servers import POSTGRES_USER, REPO, services, start_postgres
from tests.docs import connection_forms

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.deployment
POSTGRES_FORMS = [form for form in connection_forms("AIRFLOW_CONN_NXCLOUD_INBOX") if "postgres" in form]


def test_postgres_inbox_connection_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import BaseHook

    assert {form[0] for form in POSTGRES_FORMS} == {"p", "{"}, "the docs give a URI and a JSON form"
    with services(tmp_path) as running:
        postgres = start_postgres(running)
        postgres.create_database("inbox")
        conn = postgres.connect("inbox")
        ddl = runpy.run_path(str(REPO / "example_dags" / "example_nxcloud_reconcile.py"))["INBOX_DDL"]
        conn.cursor().execute(ddl)
        conn.commit()
        conn.close()
        # The cluster trusts loopback, so the docs' placeholder password does no harm.
        for form in POSTGRES_FORMS:
            local = (
                form.replace("user:password@db-host:5432", f"{POSTGRES_USER}:pw@127.0.0.1:{postgres.port}")
                .replace('"db-host"', '"127.0.0.1"')
                .replace('"port": 5432', f'"port": {postgres.port}')
                .replace('"login": "user"', f'"login": "{POSTGRES_USER}"')
            )
            monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_INBOX", local)
            hook = BaseHook.get_connection("nxcloud_inbox").get_hook()
            assert hook.get_records("SELECT COUNT(*) FROM whatsapp_inbox") == [(0,)], form
