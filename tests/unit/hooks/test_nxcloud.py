"""NxCloudHook itself: construction without I/O, and the connection form it serves to Airflow 2.x-3.1."""

from __future__ import annotations

import pytest

from airflow_provider_nxcloud.get_provider_info import CONN_FIELDS, UI_FIELD_BEHAVIOUR, get_provider_info
from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook


def test_constructor_does_no_lookup() -> None:
    # A connection id that does not exist anywhere: only the first request may look it up.
    hook = NxCloudHook(nxcloud_conn_id="does_not_exist_anywhere")

    assert hook.nxcloud_conn_id == "does_not_exist_anywhere"


def test_constructor_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        NxCloudHook("nxcloud_default")  # type: ignore[misc]


def test_provider_metadata_and_legacy_form_come_from_one_definition() -> None:
    info = get_provider_info()
    (conn_type,) = info["connection-types"]

    assert conn_type["connection-type"] == "nxcloud"
    assert conn_type["hook-class-name"] == "airflow_provider_nxcloud.hooks.nxcloud.NxCloudHook"
    assert conn_type["conn-fields"] is CONN_FIELDS
    assert set(CONN_FIELDS) == {"business_phone", "algorithm", "timeout", "verify", "max_requests_per_second",
                                "max_retries"}  # fmt: skip
    behaviour = NxCloudHook.get_ui_field_behaviour()
    assert behaviour["hidden_fields"] == UI_FIELD_BEHAVIOUR["hidden-fields"] == ["port", "schema"]
    assert behaviour["relabeling"] == {
        "host": "API base URL",
        "login": "Access Key",
        "password": "Access Secret",
    }
