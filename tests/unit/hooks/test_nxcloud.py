"""NxCloudHook itself: construction without I/O, and the connection form it serves to Airflow 2.x-3.1."""

from __future__ import annotations

import pytest

from airflow_provider_nxcloud.get_provider_info import CONN_FIELDS, UI_FIELD_BEHAVIOUR, get_provider_info
from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook


def test_constructor_does_no_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_lookup(cls: type, conn_id: str) -> None:
        raise AssertionError(f"looked up {conn_id} while constructing")

    monkeypatch.setattr(NxCloudHook, "get_connection", classmethod(no_lookup))
    hook = NxCloudHook(nxcloud_conn_id="does_not_exist_anywhere", max_retries=1)

    with pytest.raises(AssertionError, match="looked up does_not_exist_anywhere"):
        _ = hook.settings  # the first use is where the lookup happens


def test_constructor_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        NxCloudHook("nxcloud_default")  # type: ignore[misc]


def test_provider_metadata_and_legacy_form_come_from_one_definition() -> None:
    info = get_provider_info()
    (conn_type,) = info["connection-types"]

    assert conn_type["connection-type"] == "nxcloud"
    assert conn_type["hook-class-name"] == "airflow_provider_nxcloud.hooks.nxcloud.NxCloudHook"
    assert conn_type["conn-fields"] is CONN_FIELDS
    assert set(CONN_FIELDS) == {"business_phone", "appkey", "algorithm", "timeout", "verify",
                                "max_requests_per_second", "adaptive_rate", "max_retries"}  # fmt: skip
    behaviour = NxCloudHook.get_ui_field_behaviour()
    assert behaviour["hidden_fields"] == UI_FIELD_BEHAVIOUR["hidden-fields"] == ["port", "schema"]
    assert behaviour["relabeling"] == {
        "host": "API base URL",
        "login": "Access Key",
        "password": "Access Secret",
    }


def test_defaults_come_from_the_connection_form() -> None:
    defaults = {name: spec["schema"].get("default") for name, spec in CONN_FIELDS.items()}

    assert defaults["algorithm"] == "md5"
    assert (defaults["timeout"], defaults["max_retries"], defaults["verify"]) == (30, 5, True)
