"""The provider as the real ``airflow`` CLI sees it: registered, its connection type kept, testable."""

from __future__ import annotations

import json
import subprocess
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_nxcloud import __version__
from airflow_provider_nxcloud.testing import NxCloudSandbox
from tests.compat import AIRFLOW_VERSION
from tests.support import airflow_executable

if TYPE_CHECKING:
    from pathlib import Path

    from tests.airflow_cli.conftest import AirflowCli

pytestmark = pytest.mark.airflow

TEST_CONNECTION_ENABLED = {"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}


def _json_output(stdout: str) -> Any:
    # Airflow 3.2 may log alembic's plugin set-up to stdout before the JSON: take the last
    # line that is a JSON document.
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith(("[", "{")):
            try:
                return json.loads(line)
            except ValueError:
                break
    pytest.fail(f"expected JSON on stdout, got:\n{stdout}")


def test_providers_list_shows_the_provider(airflow_cli: AirflowCli) -> None:
    providers = _json_output(airflow_cli.run("providers", "list", "-o", "json").stdout)

    versions = {p["package_name"]: p["version"] for p in providers}
    assert versions.get("airflow-provider-nxcloud") == __version__, sorted(versions)


def test_connection_added_with_nxcloud_type_keeps_it(airflow_cli: AirflowCli) -> None:
    # Airflow stores an unknown --conn-type as "generic" without complaint, so this only
    # passes when the provider's "nxcloud" connection type is registered.
    airflow_cli.run(
        "connections",
        "add",
        "nx",
        "--conn-type",
        "nxcloud",
        "--conn-login",
        "cli-access-key",
        "--conn-password",
        "cli-access-secret",
        "--conn-extra",
        '{"business_phone": "8613800000000"}',
    )

    (stored,) = _json_output(airflow_cli.run("connections", "get", "nx", "-o", "json").stdout)

    assert stored["conn_type"] == "nxcloud"
    assert stored["login"] == "cli-access-key"
    assert stored["password"] == "cli-access-secret"
    assert stored["extra_dejson"] == {"business_phone": "8613800000000"}


def test_connections_test_succeeds_against_the_sandbox(airflow_cli: AirflowCli) -> None:
    with NxCloudSandbox() as sandbox:
        airflow_cli.run("connections", "add", "nx_sandbox", "--conn-json", sandbox.connection_json())

        result = airflow_cli.run(
            "connections", "test", "nx_sandbox", extra_env=TEST_CONNECTION_ENABLED, check=False
        )
        requests = sandbox.requests

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Connection success!" in result.stdout
    # The CLI really reached the sandbox, with the stored key, and the signature was accepted.
    assert [r.code for r in requests] == [0]
    assert requests[0].headers.get("accessKey") == sandbox.state.access_key


def test_connections_test_fails_with_a_wrong_password(airflow_cli: AirflowCli) -> None:
    with NxCloudSandbox() as sandbox:
        document = json.loads(sandbox.connection_json())
        document["password"] = "not-the-" + sandbox.state.access_secret
        airflow_cli.run("connections", "add", "nx_wrong_secret", "--conn-json", json.dumps(document))

        result = airflow_cli.run(
            "connections", "test", "nx_wrong_secret", extra_env=TEST_CONNECTION_ENABLED, check=False
        )
        requests = sandbox.requests

    # Before 3.3, `connections test` prints the failure but exits 0.
    assert result.returncode == (1 if AIRFLOW_VERSION >= (3, 3) else 0), result.stdout + result.stderr
    assert "Connection failed!" in result.stdout
    assert "refused the credentials" in result.stdout
    # 1003 is NXCloud's "Invalid signature"; an auth failure is not retried.
    assert [r.code for r in requests] == [1003]


def test_hook_registers_without_a_warning_on_this_airflow(airflow_cli: AirflowCli) -> None:
    # `conn-fields` is unknown to the provider-info schema before 3.2: it must be ignored quietly.
    # (On 3.0 without the FAB provider, Airflow logs that *every* hook's UI widgets are missing.)
    result = airflow_cli.run("providers", "hooks", "-o", "json")

    hooks = {h["connection_type"]: h["class"] for h in _json_output(result.stdout)}
    assert hooks.get("nxcloud") == "airflow_provider_nxcloud.hooks.nxcloud.NxCloudHook"
    ours = [
        line
        for line in result.stderr.splitlines()
        if any(word in line.lower() for word in ("nxcloud", "conn-fields", "conn_fields"))
    ]
    assert ours == []


# A sitecustomize that makes Airflow 3.0 behave as without the FAB provider: the UI packages
# that provider brings (wtforms, flask_appbuilder, flask_babel) cannot be imported.
WITHOUT_FAB = """
import sys


class _WithoutFab:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"wtforms", "flask_appbuilder", "flask_babel"}:
            raise ImportError(f"No module named {name!r} (hidden: as without the FAB provider)")
        return None


sys.meta_path.insert(0, _WithoutFab())
"""

FORM_PROBE = """
from airflow.providers_manager import ProvidersManager
manager = ProvidersManager()
print(manager.field_behaviours.get("nxcloud"), len(manager.connection_form_widgets))
"""


@pytest.mark.skipif(
    AIRFLOW_VERSION != (3, 0), reason="only Airflow 3.0's connection form needs the FAB provider"
)
def test_connection_works_without_the_fab_provider_on_3_0(airflow_cli: AirflowCli, tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(WITHOUT_FAB)
    without_fab = {"PYTHONPATH": str(tmp_path), **TEST_CONNECTION_ENABLED}
    form = subprocess.run(
        [str(airflow_executable().with_name("python")), "-c", FORM_PROBE],
        env={**airflow_cli.env, **without_fab}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    # The form is gone (as for every hook), so the rest below really runs without it.
    assert form.stdout.strip().splitlines()[-1:] == ["None 0"], form.stdout + form.stderr

    with NxCloudSandbox() as sandbox:
        document = json.loads(sandbox.connection_json())
        airflow_cli.run(
            "connections", "add", "nx_without_fab", "--conn-type", "nxcloud", "--conn-host", document["host"],
            "--conn-login", document["login"], "--conn-password", document["password"],
            "--conn-extra", json.dumps(document["extra"]), extra_env=without_fab,
        )  # fmt: skip
        (stored,) = _json_output(
            airflow_cli.run(
                "connections", "get", "nx_without_fab", "-o", "json", extra_env=without_fab
            ).stdout
        )
        from_cli = airflow_cli.run("connections", "test", "nx_without_fab", extra_env=without_fab)
        from_env = airflow_cli.run(
            "connections",
            "test",
            "nx_env",
            extra_env={**without_fab, "AIRFLOW_CONN_NX_ENV": sandbox.connection_json()},
        )
        where = (
            f"{document['host'].split('://')[1]}/http?business_phone={document['extra']['business_phone']}"
        )
        uri = f"nxcloud://{document['login']}:{document['password']}@{where}"
        from_uri = airflow_cli.run(
            "connections", "test", "nx_uri", extra_env={**without_fab, "AIRFLOW_CONN_NX_URI": uri}
        )
        codes = [r.code for r in sandbox.requests]

    assert stored["conn_type"] == "nxcloud"
    assert stored["extra_dejson"] == document["extra"]
    for result in (from_cli, from_env, from_uri):
        assert "Connection success!" in result.stdout, result.stdout + result.stderr
    assert codes == [0, 0, 0]
