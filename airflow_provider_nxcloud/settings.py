"""Pure: an Airflow Connection (plus hook arguments) -> ``NxCloudSettings``, with one-line errors."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from airflow_provider_nxcloud.exceptions import NxCloudConfigError
from airflow_provider_nxcloud.get_provider_info import DEFAULT_BASE_URL
from airflow_provider_nxcloud.signing import ALGORITHMS, Algorithm

if TYPE_CHECKING:
    from collections.abc import Mapping

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


class ConnectionFields(Protocol):
    """What is read of an Airflow Connection (2.x ``airflow.models`` and 3.x ``airflow.sdk`` alike)."""

    login: str | None
    password: str | None
    host: str | None
    schema: str | None
    port: int | None

    @property
    def extra_dejson(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class NxCloudSettings:
    """The connection resolved once: hook arguments over connection extras over defaults."""

    base_url: str
    access_key: str
    access_secret: str = field(repr=False)
    business_phone: str | None
    algorithm: Algorithm
    timeout: float
    verify: bool | str
    max_requests_per_second: float | None
    max_retries: int
    proxies: dict[str, str]


def _is_loopback(hostname: str) -> bool:
    if hostname.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _extra(extras: Mapping[str, Any], name: str) -> Any:
    # Airflow 2.x forms stored extras as ``extra__nxcloud__<name>``; 3.x stores them bare.
    value = extras.get(name, extras.get(f"extra__nxcloud__{name}"))
    return None if value == "" else value


def _as_bool(value: Any, *, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes", "on"}:
        return True
    if text in {"false", "0", "no", "off"}:
        return False
    raise NxCloudConfigError(f"{what} must be true or false, got {value!r}")


def _as_number(value: Any, *, what: str, integer: bool = False, minimum: float = 0) -> float:
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        kind = "a whole number" if integer else "a number"
        raise NxCloudConfigError(f"{what} must be {kind}, got {value!r}") from None
    if isinstance(value, bool) or number < minimum or number != number:
        raise NxCloudConfigError(f"{what} must be at least {minimum}, got {value!r}")
    return number


def resolve_settings(conn: ConnectionFields, conn_id: str, overrides: Mapping[str, Any]) -> NxCloudSettings:
    """The resolved connection (one lookup per hook). Raises NxCloudConfigError when unusable."""
    where = f"nxcloud connection {conn_id!r}"
    extras = conn.extra_dejson

    def pick(name: str) -> Any:
        override = overrides.get(name)
        return override if override is not None else _extra(extras, name)

    if not conn.login:
        raise NxCloudConfigError(f"{where} has no Access Key: set the connection's login")
    if not conn.password:
        raise NxCloudConfigError(f"{where} has no Access Secret: set the connection's password")
    if not str(conn.login).isprintable() or any(c.isspace() for c in str(conn.login)):
        # It travels as a header: a newline in it would be a header injection.
        raise NxCloudConfigError(f"{where}: the Access Key contains spaces or control characters")

    algorithm = str(pick("algorithm") or "md5").lower()
    if algorithm not in ALGORITHMS:
        raise NxCloudConfigError(f"{where}: algorithm must be 'md5' or 'sha256', got {algorithm!r}")
    verify_raw = pick("verify")
    verify: bool | str = True
    if isinstance(verify_raw, str) and verify_raw.strip().lower() not in {
        "true",
        "false",
        "1",
        "0",
        "yes",
        "no",
        "on",
        "off",
    }:
        verify = verify_raw  # a CA bundle path
    elif verify_raw is not None:
        verify = _as_bool(verify_raw, what=f"{where}: verify")
    rate = pick("max_requests_per_second")
    proxies = _extra(extras, "proxies") or {}
    if not isinstance(proxies, dict):
        raise NxCloudConfigError(f'{where}: proxies must be a mapping like {{"https": "http://proxy:3128"}}')
    phone = pick("business_phone")
    return NxCloudSettings(
        base_url=_base_url(conn.host, conn.schema, conn.port, where),
        access_key=str(conn.login),
        access_secret=str(conn.password),
        business_phone=str(phone).strip() if phone is not None else None,
        algorithm=algorithm,  # type: ignore[arg-type]
        timeout=_as_number(pick("timeout") or 30, what=f"{where}: timeout", minimum=0.001),
        verify=verify,
        max_requests_per_second=(
            _as_number(rate, what=f"{where}: max_requests_per_second", minimum=0.001)
            if rate is not None
            else None
        ),
        max_retries=int(
            _as_number(
                5 if pick("max_retries") is None else pick("max_retries"),
                what=f"{where}: max_retries",
                integer=True,
            )
        ),
        proxies={str(k): str(v) for k, v in proxies.items()},
    )


def _base_url(host: str | None, schema: str | None, port: int | None, where: str) -> str:
    host = (host or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        # URI-form connections cannot carry a scheme in the host; HttpHook's convention:
        # ``schema`` holds it (nxcloud://key:secret@127.0.0.1:8080/http).
        host = f"{schema or 'https'}://{host}"
    parts = urlsplit(host)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise NxCloudConfigError(f"{where}: API base URL {host!r} must be https://host[:port]")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise NxCloudConfigError(
            f"{where}: plain http:// to {parts.hostname} would expose requests; use https://"
            " (http is allowed only for a loopback sandbox)"
        )
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"
