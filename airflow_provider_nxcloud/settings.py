"""Pure: an Airflow Connection (plus hook arguments) -> ``NxCloudSettings``, with one-line errors."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import urlsplit

from airflow_provider_nxcloud.client.errors import NxCloudConfigError
from airflow_provider_nxcloud.client.signing import ALGORITHMS, Algorithm
from airflow_provider_nxcloud.get_provider_info import CONN_FIELDS, CONN_TYPE, DEFAULT_BASE_URL

if TYPE_CHECKING:
    from collections.abc import Mapping

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
# How extras spell booleans: the UI sends real booleans, URIs and env vars send text, and
# Airflow 2's form sends a ticked WTForms checkbox as "y" when Test is pressed.
_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})


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
    adaptive_rate: bool = True


class ConnectionExtras:
    """
    The connection's extras, each hook argument over its extra over the form's default.

    Airflow 2.x forms stored extras as ``extra__nxcloud__<name>``; 3.x stores them bare. An
    empty string (a form field left blank) counts as unset.
    """

    def __init__(self, extras: Mapping[str, Any], overrides: Mapping[str, Any], *, where: str) -> None:
        self._extras = extras
        self._overrides = overrides
        self.where = where

    def raw(self, name: str) -> Any:
        override = self._overrides.get(name)
        if override is not None:
            return override
        value = self._extras.get(name, self._extras.get(f"extra__{CONN_TYPE}__{name}"))
        return None if value == "" else value

    def get(self, name: str) -> Any:
        value = self.raw(name)
        return CONN_FIELDS[name]["schema"].get("default") if value is None else value

    def boolean(self, name: str) -> bool:
        return self._as_bool(self.get(name), name)

    def number(self, name: str, *, minimum: float, integer: bool = False) -> float | None:
        value = self.get(name)
        if value is None:
            return None
        try:
            number = int(value) if integer else float(value)
        except (TypeError, ValueError):
            kind = "a whole number" if integer else "a number"
            raise NxCloudConfigError(f"{self.where}: {name} must be {kind}, got {value!r}") from None
        if isinstance(value, bool) or number < minimum or number != number:
            raise NxCloudConfigError(f"{self.where}: {name} must be at least {minimum}, got {value!r}")
        return number

    def _as_bool(self, value: Any, name: str) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise NxCloudConfigError(f"{self.where}: {name} must be true or false, got {value!r}")

    def verify(self) -> bool | str:
        """``verify`` is a boolean or the path of a CA bundle."""
        value = self.get("verify")
        if isinstance(value, str) and value.strip().lower() not in _TRUE | _FALSE:
            return value
        return self._as_bool(value, "verify")


def resolve_settings(conn: ConnectionFields, conn_id: str, overrides: Mapping[str, Any]) -> NxCloudSettings:
    """Check and resolve the connection; raises NxCloudConfigError naming the field and the fix."""
    where = f"{CONN_TYPE} connection {conn_id!r}"
    extras = ConnectionExtras(conn.extra_dejson, overrides, where=where)
    if not conn.login:
        raise NxCloudConfigError(f"{where} has no Access Key: set the connection's login")
    if not conn.password:
        raise NxCloudConfigError(f"{where} has no Access Secret: set the connection's password")
    if not str(conn.login).isprintable() or any(c.isspace() for c in str(conn.login)):
        # It travels as a header: a newline in it would be a header injection.
        raise NxCloudConfigError(f"{where}: the Access Key contains spaces or control characters")

    algorithm = str(extras.get("algorithm")).lower()
    if algorithm not in ALGORITHMS:  # narrows ``algorithm`` to ``Algorithm``
        raise NxCloudConfigError(f"{where}: algorithm must be 'md5' or 'sha256', got {algorithm!r}")
    proxies = extras.raw("proxies") or {}
    if not isinstance(proxies, dict):
        raise NxCloudConfigError(f'{where}: proxies must be a mapping like {{"https": "http://proxy:3128"}}')
    phone = extras.get("business_phone")
    return NxCloudSettings(
        base_url=_base_url(conn.host, conn.schema, conn.port, where),
        access_key=str(conn.login),
        access_secret=str(conn.password),
        business_phone=str(phone).strip() if phone is not None else None,
        algorithm=algorithm,
        timeout=cast("float", extras.number("timeout", minimum=0.001)),
        verify=extras.verify(),
        max_requests_per_second=extras.number("max_requests_per_second", minimum=0.001),
        max_retries=int(cast("float", extras.number("max_retries", minimum=0, integer=True))),
        proxies={str(k): str(v) for k, v in proxies.items()},
        adaptive_rate=extras.boolean("adaptive_rate"),
    )


def _is_loopback(hostname: str) -> bool:
    if hostname.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


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
