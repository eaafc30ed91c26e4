"""The client's settings and their defaults, each argument checked once, with one-line errors.

Light on purpose: the connection form (``get_provider_info``) reads the defaults from here on
every provider discovery, and the operator checks its arguments with these checks at DAG parse.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_nxcloud.client.errors import NxCloudConfigError
from airflow_provider_nxcloud.client.signing import ALGORITHMS, Algorithm

DEFAULT_ALGORITHM: Algorithm = "md5"
DEFAULT_TIMEOUT = 30.0
DEFAULT_VERIFY = True
DEFAULT_ADAPTIVE_RATE = True
DEFAULT_MAX_RETRIES = 5
DEFAULT_RETRY_WAIT = (0.5, 30.0)

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def check_positive(name: str, value: Any, *, integer: bool) -> None:
    """One-line error for an argument that must be a positive int (or number)."""
    kind = "int" if integer else "number"
    valid_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not valid_type or not value > 0:
        raise NxCloudConfigError(f"{name} must be a positive {kind}, got {value!r}")


def check_optional_bool(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, bool):
        raise NxCloudConfigError(f"{name} must be True, False or None, got {value!r}")


def require_appkey(appkey: str | None) -> str:
    """The appkey the typing indicator needs, or the one-line error naming where it goes."""
    if not appkey:
        raise NxCloudConfigError(
            "typing_indicator=True needs the NXCloud WhatsApp application's appkey: set the "
            "connection's appkey extra (or the client's appkey)"
        )
    return appkey


def _is_loopback(hostname: str) -> bool:
    if hostname.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str) -> str:
    """``https://host[:port][/path]``, or plain http to a loopback sandbox; without a trailing /."""
    parts = urlsplit(base_url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise NxCloudConfigError(f"API base URL {base_url!r} must be https://host[:port]")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise NxCloudConfigError(
            f"plain http:// to {parts.hostname} would expose requests; use https://"
            " (http is allowed only for a loopback sandbox)"
        )
    return base_url.rstrip("/")


@dataclass(frozen=True)
class ClientSettings:
    """Everything an ``NxCloudClient`` is built from, checked on creation."""

    access_key: str
    access_secret: str = field(repr=False)
    base_url: str
    business_phone: str | None
    algorithm: Algorithm
    timeout: float
    verify: bool | str
    proxies: dict[str, str]
    max_requests_per_second: float | None
    adaptive_rate: bool
    max_retries: int
    retry_wait: tuple[float, float]
    # The WhatsApp application's appkey, for the typing indicator only. An identifier NXCloud puts
    # in request bodies, not a secret, but kept out of reprs (and so out of logs) all the same.
    appkey: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.access_key:
            raise NxCloudConfigError("access_key is empty: give the NXCloud Access Key")
        if not self.access_secret:
            raise NxCloudConfigError("access_secret is empty: give the NXCloud Access Secret")
        if not self.access_key.isprintable() or any(c.isspace() for c in self.access_key):
            # It travels as a header: a newline in it would be a header injection.
            raise NxCloudConfigError("the Access Key contains spaces or control characters")
        if self.algorithm not in ALGORITHMS:
            raise NxCloudConfigError(f"algorithm must be 'md5' or 'sha256', got {self.algorithm!r}")
        check_positive("timeout", self.timeout, integer=False)
        if self.max_requests_per_second is not None:
            check_positive("max_requests_per_second", self.max_requests_per_second, integer=False)
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise NxCloudConfigError(f"max_retries must be an int of at least 0, got {self.max_retries!r}")
        object.__setattr__(self, "base_url", check_base_url(self.base_url))
