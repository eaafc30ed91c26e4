"""Pure: an Airflow Connection (plus hook arguments) -> the client's ``ClientSettings``, one-line errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import urlsplit

from airflow_provider_nxcloud.client.api import DEFAULT_BASE_URL
from airflow_provider_nxcloud.client.config import ClientSettings
from airflow_provider_nxcloud.client.errors import NxCloudConfigError
from airflow_provider_nxcloud.get_provider_info import CONN_FIELDS, CONN_TYPE

if TYPE_CHECKING:
    from collections.abc import Mapping

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


def resolve_settings(
    conn: ConnectionFields, conn_id: str, overrides: Mapping[str, Any], *, retry_wait: tuple[float, float]
) -> ClientSettings:
    """Check and resolve the connection; raises NxCloudConfigError naming the field and the fix."""
    where = f"{CONN_TYPE} connection {conn_id!r}"
    extras = ConnectionExtras(conn.extra_dejson, overrides, where=where)
    if not conn.login:
        raise NxCloudConfigError(f"{where} has no Access Key: set the connection's login")
    if not conn.password:
        raise NxCloudConfigError(f"{where} has no Access Secret: set the connection's password")
    proxies = extras.raw("proxies") or {}
    if not isinstance(proxies, dict):
        raise NxCloudConfigError(f'{where}: proxies must be a mapping like {{"https": "http://proxy:3128"}}')
    phone = extras.get("business_phone")
    appkey = extras.get("appkey")
    max_retries = extras.number("max_retries", minimum=0, integer=True)
    try:
        return ClientSettings(
            base_url=_base_url(conn.host, conn.schema, conn.port),
            access_key=str(conn.login),
            access_secret=str(conn.password),
            business_phone=str(phone).strip() if phone is not None else None,
            appkey=(str(appkey).strip() or None) if appkey is not None else None,
            algorithm=str(extras.get("algorithm")).lower(),  # type: ignore[arg-type]  # checked there
            timeout=cast("float", extras.number("timeout", minimum=0.001)),
            verify=extras.verify(),
            max_requests_per_second=extras.number("max_requests_per_second", minimum=0.001),
            max_retries=int(cast("float", max_retries)),
            proxies={str(k): str(v) for k, v in proxies.items()},
            adaptive_rate=extras.boolean("adaptive_rate"),
            retry_wait=retry_wait,
        )
    except NxCloudConfigError as error:
        raise NxCloudConfigError(f"{where}: {error}") from None


def _base_url(host: str | None, schema: str | None, port: int | None) -> str:
    """The connection's host (and schema, port) as a URL; ``ClientSettings`` checks it."""
    host = (host or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        # URI-form connections cannot carry a scheme in the host; HttpHook's convention:
        # ``schema`` holds it (nxcloud://key:secret@127.0.0.1:8080/http).
        host = f"{schema or 'https'}://{host}"
    parts = urlsplit(host)
    netloc = parts.netloc
    if port and parts.hostname and parts.port is None:
        netloc = f"{netloc}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path}"
