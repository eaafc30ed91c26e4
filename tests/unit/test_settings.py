"""Connection -> settings: every way users configure the connection, and every way it can be wrong."""

from __future__ import annotations

import json

import pytest

from airflow_provider_nxcloud.client.errors import NxCloudConfigError
from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook


def settings_for(monkeypatch: pytest.MonkeyPatch, value: str, **hook_args: object):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AIRFLOW_CONN_NX_UNDER_TEST", value)
    return NxCloudHook(nxcloud_conn_id="nx_under_test", **hook_args).settings  # type: ignore[arg-type]


def test_json_form(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {
        "conn_type": "nxcloud",
        "host": "https://api2.nxcloud.com",
        "login": "key",
        "password": "secret",
        "extra": {"business_phone": "8613800000000", "algorithm": "sha256", "timeout": 5, "verify": False,
                  "max_requests_per_second": 20, "max_retries": 2},
    }  # fmt: skip
    settings = settings_for(monkeypatch, json.dumps(conn))

    assert settings.base_url == "https://api2.nxcloud.com"
    assert (settings.access_key, settings.access_secret) == ("key", "secret")
    assert settings.business_phone == "8613800000000"
    assert settings.algorithm == "sha256"
    assert (settings.timeout, settings.verify) == (5, False)
    assert (settings.max_requests_per_second, settings.max_retries) == (20, 2)


def test_uri_form_with_string_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    uri = "nxcloud://key:s%2Fecret@api2.nxcloud.com?business_phone=8613800000000&verify=false&timeout=7.5"
    settings = settings_for(monkeypatch, uri)

    assert settings.base_url == "https://api2.nxcloud.com"
    assert settings.access_secret == "s/ecret"
    assert (settings.verify, settings.timeout) == (False, 7.5)


def test_uri_form_for_loopback_sandbox_uses_schema_as_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_for(monkeypatch, "nxcloud://k:s@127.0.0.1:8080/http").base_url == "http://127.0.0.1:8080"


def test_empty_host_means_nxcloud(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(monkeypatch, json.dumps({"conn_type": "nxcloud", "login": "k", "password": "s"}))

    assert settings.base_url == "https://api2.nxcloud.com"
    assert (settings.algorithm, settings.timeout, settings.verify, settings.max_retries) == (
        "md5",
        30,
        True,
        5,
    )
    assert settings.max_requests_per_second is None
    assert settings.adaptive_rate is True


@pytest.mark.parametrize(
    ("extra", "argument", "expected"),
    [("false", None, False), (True, False, False), ("0", True, True), (None, None, True)],
)
def test_adaptive_rate_from_the_extra_or_the_argument(
    monkeypatch: pytest.MonkeyPatch, extra: object, argument: bool | None, expected: bool
) -> None:
    conn = {"conn_type": "nxcloud", "login": "k", "password": "s", "extra": {"adaptive_rate": extra}}

    assert settings_for(monkeypatch, json.dumps(conn), adaptive_rate=argument).adaptive_rate is expected


def test_airflow2_prefixed_extras_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {
        "conn_type": "nxcloud",
        "login": "k",
        "password": "s",
        "extra": {"extra__nxcloud__business_phone": "861"},
    }

    assert settings_for(monkeypatch, json.dumps(conn)).business_phone == "861"


def test_hook_arguments_override_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "nxcloud", "login": "k", "password": "s",
            "extra": {"business_phone": "861", "max_requests_per_second": 5, "max_retries": 4}}  # fmt: skip
    settings = settings_for(
        monkeypatch, json.dumps(conn), business_phone="862", max_requests_per_second=50, max_retries=0
    )

    assert (settings.business_phone, settings.max_requests_per_second, settings.max_retries) == ("862", 50, 0)


@pytest.mark.parametrize(
    ("conn", "error"),
    [
        (
            {"password": "s"},
            r"nxcloud connection 'nx_under_test' has no Access Key: set the connection's login",
        ),
        ({"login": "k"}, r"'nx_under_test' has no Access Secret: set the connection's password"),
        (
            {"login": "k\r\nX-Evil: 1", "password": "s"},
            r"the Access Key contains spaces or control characters",
        ),
        ({"login": "k", "password": "s", "host": "http://api2.nxcloud.com"}, r"plain http:// to api2"),
        ({"login": "k", "password": "s", "host": "ftp://x"}, r"must be https://host"),
        (
            {"login": "k", "password": "s", "extra": {"algorithm": "sha1"}},
            r"algorithm must be 'md5' or 'sha256'",
        ),
        (
            {"login": "k", "password": "s", "extra": {"timeout": "soon"}},
            r"timeout must be a number, got 'soon'",
        ),
        ({"login": "k", "password": "s", "extra": {"max_retries": -1}}, r"max_retries must be at least 0"),
        ({"login": "k", "password": "s", "extra": {"proxies": "x"}}, r"proxies must be a mapping"),
    ],
)
def test_unusable_connection_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, conn: dict[str, object], error: str
) -> None:
    with pytest.raises(NxCloudConfigError, match=error) as raised:
        settings_for(monkeypatch, json.dumps({"conn_type": "nxcloud", **conn}))
    assert "\n" not in str(raised.value)


def test_secret_is_not_in_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(
        monkeypatch, json.dumps({"conn_type": "nxcloud", "login": "k", "password": "hush-42"})
    )

    assert "hush-42" not in repr(settings)


def _with_extra(**extra: str) -> str:
    return json.dumps({"conn_type": "nxcloud", "login": "k", "password": "s", "extra": extra})


@pytest.mark.parametrize(
    ("value", "appkey"),
    [
        (_with_extra(appkey=" ak-1 "), "ak-1"),
        ("nxcloud://k:s@api2.nxcloud.com?appkey=ak-2", "ak-2"),
        (_with_extra(extra__nxcloud__appkey="ak-3"), "ak-3"),  # as Airflow 2's form stores it
        (_with_extra(appkey=""), None),  # a form field left blank
        ("nxcloud://k:s@api2.nxcloud.com", None),
    ],
)
def test_appkey_is_an_optional_extra_kept_out_of_the_repr(
    monkeypatch: pytest.MonkeyPatch, value: str, appkey: str | None
) -> None:
    settings = settings_for(monkeypatch, value)

    assert settings.appkey == appkey
    if appkey is not None:
        assert appkey not in repr(settings)
