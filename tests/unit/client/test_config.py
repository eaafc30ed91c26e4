"""The client's arguments: each checked once, with a one-line error naming it and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_nxcloud.client import NxCloudClient, NxCloudConfigError

VALID: dict[str, Any] = {"access_key": "key", "access_secret": "secret"}


def test_defaults_are_nxclouds_and_the_secret_stays_out_of_the_repr() -> None:
    client = NxCloudClient(**VALID)

    assert client.settings.base_url == "https://api2.nxcloud.com"
    assert (client.settings.algorithm, client.settings.timeout, client.settings.max_retries) == ("md5", 30, 5)
    assert "secret" not in repr(client.settings)


def test_the_constructor_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        NxCloudClient("key", "secret")  # type: ignore[misc]


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"access_key": ""}, "access_key is empty"),
        ({"access_secret": ""}, "access_secret is empty"),
        ({"access_key": "k\r\nX-Evil: 1"}, "the Access Key contains spaces or control characters"),
        ({"algorithm": "sha1"}, "algorithm must be 'md5' or 'sha256', got 'sha1'"),
        ({"timeout": 0}, "timeout must be a positive number, got 0"),
        ({"max_requests_per_second": -1}, "max_requests_per_second must be a positive number, got -1"),
        ({"max_retries": -1}, "max_retries must be an int of at least 0, got -1"),
        ({"base_url": "http://api2.nxcloud.com"}, "plain http:// to api2.nxcloud.com"),
        ({"base_url": "ftp://x"}, "must be https://host"),
    ],
)
def test_a_bad_argument_is_one_clear_line(arguments: dict[str, Any], error: str) -> None:
    with pytest.raises(NxCloudConfigError, match=error) as raised:
        NxCloudClient(**{**VALID, **arguments})
    assert "\n" not in str(raised.value)


def test_plain_http_is_allowed_to_a_loopback_sandbox() -> None:
    client = NxCloudClient(**VALID, base_url="http://127.0.0.1:8080/")

    assert client.settings.base_url == "http://127.0.0.1:8080"
