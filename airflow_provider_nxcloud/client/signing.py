"""NXCloud request signing, as documented: pure functions, no I/O.

``sign = lowercase_hex(HASH(headersStr + "&body=" + body + "&accessSecret=" + secret))`` where
``headersStr`` is the signed headers sorted by name, ``key=value`` joined by ``&``.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Mapping

Algorithm = Literal["md5", "sha256"]
ALGORITHMS: tuple[Algorithm, ...] = ("md5", "sha256")

# Headers that take part in the signature; ``sign`` and ``algorithm`` never do.
SIGNED_HEADERS = ("accessKey", "action", "bizType", "ts")


def serialise_body(body: Mapping[str, Any]) -> bytes:
    """Serialise once: these exact bytes are both signed and sent (NXCloud's 1003 otherwise)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def canonical_headers(headers: Mapping[str, str]) -> str:
    return "&".join(f"{name}={headers[name]}" for name in sorted(headers) if name in SIGNED_HEADERS)


def string_to_sign(headers: Mapping[str, str], body: bytes | None, access_secret: str) -> bytes:
    """The exact bytes NXCloud hashes. Contains the secret: never log or return it to users."""
    parts = [canonical_headers(headers).encode("utf-8")]
    if body:
        parts += [b"&body=", body]
    parts += [b"&accessSecret=", access_secret.encode("utf-8")]
    return b"".join(parts)


def compute_sign(
    headers: Mapping[str, str], body: bytes | None, access_secret: str, algorithm: Algorithm = "md5"
) -> str:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm {algorithm!r} is not supported: use 'md5' or 'sha256'")
    digest = hashlib.new(algorithm, string_to_sign(headers, body, access_secret))
    return digest.hexdigest()


def signed_headers(
    *,
    access_key: str,
    action: str,
    biz_type: str,
    ts_ms: int,
    body: bytes,
    access_secret: str,
    algorithm: Algorithm,
) -> dict[str, str]:
    """Every header of one request, signed over ``body``: the exact bytes that will be sent."""
    headers = {"accessKey": access_key, "action": action, "bizType": biz_type, "ts": str(ts_ms)}
    headers["sign"] = compute_sign(headers, body, access_secret, algorithm)
    if algorithm != "md5":  # md5 is NXCloud's default: the header is only needed otherwise
        headers["algorithm"] = algorithm
    headers["Content-Type"] = "application/json"
    return headers
