"""The provider as the real ``airflow`` CLI sees it: registered, its connection type kept, testable."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_nxcloud import __version__
from airflow_provider_nxcloud.testing import NxCloudSandbox
from tests.compat import AIRFLOW_VERSION

if TYPE_CHECKING:
    from tests.airflow_cli.conftest import AirflowCli

pytestmark = pytest.mark.airflow

TEST_CONNECTION_ENABLED = {"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}


def _json_output(stdout: str) -> Any:
    try:
        return json.loads(stdout)
    except ValueError:
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
