from __future__ import annotations

import hashlib

import pytest

from airflow_provider_nxcloud.client.signing import (
    canonical_headers,
    compute_sign,
    serialise_body,
    signed_headers,
    string_to_sign,
)

# NXCloud's published test vector (shared/reference/nxcloud-api.md).
VECTOR_HEADERS = {"accessKey": "fme2na3kdi3ki", "action": "send", "bizType": "1", "ts": "1655710885431"}
VECTOR_SECRET = "abciiiko2k3"


def test_official_test_vector() -> None:
    body = '{"name":"牛小信","id":10001}'.encode()

    assert compute_sign(VECTOR_HEADERS, body, VECTOR_SECRET) == "87c3560d3331ae23f1021e2025722354"


def test_other_serialisation_of_same_data_gives_documented_other_sign() -> None:
    body = '{"id":10001,"name":"牛小信"}'.encode()

    assert compute_sign(VECTOR_HEADERS, body, VECTOR_SECRET) == "7750759da06333f20d0640be09355e34"


def test_serialise_body_keeps_key_order_compact_and_utf8() -> None:
    assert serialise_body({"name": "牛小信", "id": 10001}) == '{"name":"牛小信","id":10001}'.encode()


def test_canonical_headers_sorted_and_exclude_sign_and_algorithm() -> None:
    headers = {
        "ts": "1",
        "sign": "x",
        "bizType": "2",
        "algorithm": "sha256",
        "accessKey": "k",
        "action": "read",
    }

    assert canonical_headers(headers) == "accessKey=k&action=read&bizType=2&ts=1"


def test_string_to_sign_omits_body_part_when_there_is_no_body() -> None:
    assert string_to_sign({"accessKey": "k", "ts": "1"}, None, "s") == b"accessKey=k&ts=1&accessSecret=s"


def test_sha256_hashes_the_same_string() -> None:
    body = b'{"a":1}'
    expected = hashlib.sha256(string_to_sign(VECTOR_HEADERS, body, VECTOR_SECRET)).hexdigest()

    assert compute_sign(VECTOR_HEADERS, body, VECTOR_SECRET, "sha256") == expected


def test_unknown_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="'sha1' is not supported"):
        compute_sign(VECTOR_HEADERS, None, VECTOR_SECRET, "sha1")  # type: ignore[arg-type]


def test_signed_headers_sign_the_body_and_name_only_a_non_default_algorithm() -> None:
    body = serialise_body({"message_id": "wamid.1"})
    common = {"access_key": "k", "action": "read", "biz_type": "2", "ts_ms": 1655710885431, "body": body}
    md5 = signed_headers(**common, access_secret="s", algorithm="md5")  # type: ignore[arg-type]
    sha = signed_headers(**common, access_secret="s", algorithm="sha256")  # type: ignore[arg-type]

    assert "algorithm" not in md5 and sha["algorithm"] == "sha256"
    assert md5["sign"] == compute_sign(md5, body, "s", "md5")
    assert sha["sign"] == compute_sign(sha, body, "s", "sha256")
    assert md5["Content-Type"] == "application/json" and md5["ts"] == "1655710885431"
