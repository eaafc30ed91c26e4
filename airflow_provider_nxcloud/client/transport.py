"""HTTP for the hook: requests' pooled adapter, with the per-URL work done once, not per request.

``HTTPAdapter.send`` re-resolves the pool, proxies, TLS settings and request target and builds a
cookie-carrying ``Response`` on every call: a fifth of the CPU of a request here. A route keeps
what the adapter resolved for a URL, and each request goes straight to the adapter's own urllib3
pool with the same arguments ``send`` uses: no redirects (credentials never follow one), no
urllib3 retries (tenacity decides), a streamed body read up to a bound, and a deadline per request
that ends it whatever the server or the resolver does (``deadlines.py``).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPSConnectionPool
from urllib3.exceptions import HTTPError, NewConnectionError, SSLError
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError
from urllib3.util import Timeout

from airflow_provider_nxcloud.client import deadlines
from airflow_provider_nxcloud.client.errors import (
    NxCloudApiError,
    NxCloudConfigError,
    NxCloudError,
    NxCloudTransientError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from urllib3 import BaseHTTPResponse, HTTPConnectionPool

# A real NXCloud answer is ~100 bytes; anything near this is a proxy page or an attack.
MAX_RESPONSE_BYTES = 1 << 20


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: bytes


@dataclass(frozen=True)
class _Route:
    target: str  # the request target: the path, or the absolute URL through a plain HTTP proxy
    pool: HTTPConnectionPool
    headers: dict[str, str]  # Basic auth from credentials in the URL, if any


class PooledTransport:
    """POSTs to one base URL through a pool of ``pool_size`` keep-alive connections."""

    def __init__(
        self,
        *,
        base_url: str,
        proxies: Mapping[str, str],
        verify: bool | str,
        timeout: float,
        pool_size: int,
    ) -> None:
        self.base_url = base_url
        self.pool_size = pool_size
        self.session = requests.Session()
        self._adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("https://", self._adapter)
        self.session.mount("http://", self._adapter)
        # Environment proxies (HTTPS_PROXY, NO_PROXY) and CA bundles (REQUESTS_CA_BUNDLE), once.
        settings = self.session.merge_environment_settings(base_url, dict(proxies), None, verify, None)
        self._proxies = dict(settings["proxies"])
        self._verify: bool | str = True if settings["verify"] is None else settings["verify"]
        self._cert: Any = settings["cert"]
        self._timeout_seconds = timeout
        self._timeout = Timeout(connect=timeout, read=timeout)
        self._routes: dict[str, _Route] = {}

    def _route(self, path: str) -> _Route:
        route = self._routes.get(path)
        if route is not None and route.pool.pool is not None:  # None: the pool manager closed it
            return route
        template = requests.PreparedRequest()
        template.prepare(method="POST", url=self.base_url + path)
        try:
            pool = cast(
                "HTTPConnectionPool",
                self._adapter.get_connection_with_tls_context(
                    template, self._verify, proxies=self._proxies, cert=self._cert
                ),
            )
            self._adapter.cert_verify(pool, str(template.url), self._verify, self._cert)  # type: ignore[no-untyped-call]
        except OSError as error:  # a CA bundle or client certificate path that does not exist
            raise NxCloudConfigError(f"TLS settings for {self.base_url}: {error}") from None
        # Connections that the deadline of each request (``deadlines.py``) ends, whatever happens.
        pool.ConnectionCls = (
            deadlines.BoundedHTTPSConnection
            if isinstance(pool, HTTPSConnectionPool)
            else deadlines.BoundedHTTPConnection
        )
        authorization = template.headers.get("Authorization")
        route = _Route(
            target=self._adapter.request_url(template, self._proxies),
            pool=pool,
            headers={"Authorization": authorization} if authorization else {},
        )
        self._routes[path] = route
        return route

    def post(self, path: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        """
        Send ``body`` as is, the whole exchange (lookup, connect, TLS, headers, body) ending within
        the timeout (and a few ms). Raises NxCloudTransientError (network, deadline, a connection
        broken mid-handshake), NxCloudApiError (TLS settings, size).
        """
        route = self._route(path)
        request = deadlines.begin(self._timeout_seconds)
        response: BaseHTTPResponse | None = None
        failure: NxCloudError | None = None
        try:
            response = route.pool.urlopen(
                "POST",
                route.target,
                body=body,
                headers={**headers, **route.headers, "Content-Length": str(len(body))},
                redirect=False,
                assert_same_host=False,
                preload_content=False,
                decode_content=False,
                retries=False,
                timeout=self._timeout,
            )
            request.stage = "reading the answer's body"
            content = self._read_bounded(response)
        except NxCloudError as error:
            failure = error
        except (HTTPError, OSError) as error:
            failure = self._failure(error)
            if isinstance(error, Urllib3TimeoutError) and not isinstance(error, NewConnectionError):
                request.expired = True  # a socket timeout: the deadline, met by urllib3 first
        finally:
            # Before the connection goes back to the pool: from here the watchdog leaves it alone.
            expired = deadlines.end(request)
        if expired:
            failure = NxCloudTransientError(
                f"no complete answer within {self._timeout_seconds:g} s: timed out {request.stage}",
                http_status=None if response is None else response.status,
            )
        if failure is not None:
            if response is not None:
                response.close()  # a socket past its deadline or mid-answer is never reused
                response.release_conn()
            raise failure from None
        assert response is not None  # for mypy: urlopen returned
        response.release_conn()
        return HttpAnswer(response.status, response.headers, content)

    def _read_bounded(self, response: BaseHTTPResponse) -> bytes:
        # read1 returns what one socket read brings; a body trickling in is ended by the watchdog.
        parts: list[bytes] = []
        size = 0
        try:
            while size <= MAX_RESPONSE_BYTES:
                part = response.read1(MAX_RESPONSE_BYTES + 1 - size, decode_content=True)
                if not part:
                    break
                parts.append(part)
                size += len(part)
        except (HTTPError, OSError) as error:  # the connection broke mid-body
            raise NxCloudTransientError(f"connection broke while reading: {type(error).__name__}") from None
        if size > MAX_RESPONSE_BYTES:  # neither drain an oversized body into memory nor keep its socket
            raise NxCloudApiError(
                f"response body exceeds {MAX_RESPONSE_BYTES} bytes; is the API base URL right?",
                http_status=response.status,
            )
        return b"".join(parts)

    def _failure(self, error: Exception) -> NxCloudError:
        """
        A connection that broke (reset, EOF, even mid-handshake: a load balancer recycling it)
        is transient; TLS that cannot work with these settings (a certificate that does not
        verify, a hostname it does not name, no protocol both sides speak) fails fast.
        """
        if not isinstance(error, SSLError):
            return NxCloudTransientError(f"connection failed: {type(error).__name__}")
        cause = _tls_cause(error)
        if _broken_connection(cause):
            return NxCloudTransientError(f"connection broke during the TLS handshake: {type(cause).__name__}")
        host = urlsplit(self.base_url).hostname
        if isinstance(cause, ssl.SSLCertVerificationError) or type(cause).__name__ == "CertificateError":
            detail = getattr(cause, "verify_message", None) or cause
            return NxCloudApiError(
                f"the TLS certificate of {host} did not verify ({detail}): set the connection's"
                " verify extra to the CA bundle that signed it, or fix the API base URL"
            )
        return NxCloudApiError(
            f"TLS with {host} failed ({cause}): no protocol both sides accept, or not TLS at that"
            " address; check the API base URL (https:// to an https port) and verify"
        )


def _tls_cause(error: BaseException) -> BaseException:
    """The ``ssl`` (or socket) error inside urllib3's ``SSLError``, which wraps it in ``args``."""
    seen: BaseException = error
    for _ in range(5):  # urllib3 nests at most a level or two; never loop on a cycle
        inner = next((a for a in seen.args if isinstance(a, BaseException)), None)
        inner = inner or seen.__cause__ or seen.__context__
        if inner is None:
            break
        seen = inner
    return seen


def _broken_connection(cause: BaseException) -> bool:
    if isinstance(cause, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError, ConnectionError)):
        return True
    # OpenSSL 3 names an EOF mid-handshake this way, whatever subclass Python picks for it.
    return isinstance(cause, ssl.SSLError) and cause.reason == "UNEXPECTED_EOF_WHILE_READING"
