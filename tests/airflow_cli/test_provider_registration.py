"""The provider as the real ``airflow`` CLI sees it: registered, its connection type kept, testable."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_nxcloud import __version__
from airflow_provider_nxcloud.testing import NxCloudSandbox

if TYPE_CHECKING:
    from conftest import AirflowCli  # tests/airflow_cli/conftest.py

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

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Connection failed!" in result.stdout
    assert "refused the credentials" in result.stdout
    # 1003 is NXCloud's "Invalid signature"; an auth failure is not retried.
    assert [r.code for r in requests] == [1003]
