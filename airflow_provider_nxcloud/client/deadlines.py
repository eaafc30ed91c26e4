"""A deadline per request that nothing outlives: not a trickling server, not a silent resolver.

urllib3's timeouts bound each socket operation, not a request: a server sending its headers or
body a byte at a time, each byte within the read timeout, holds a request as long as it likes; a
name lookup (``getaddrinfo``) has no timeout at all; and connecting tries every address for the
full connect timeout. Three pieces end every request by its deadline, whatever the other side does:

- **A watchdog**, one daemon thread per process, holds the requests in flight and shuts down the
  socket of any request past its deadline. A ``recv`` or ``send`` blocked on that socket returns
  at once, in whichever phase it is (TLS or not, proxy tunnel, headers, body). It sleeps until the
  earliest deadline, so a busy transport wakes it about once per timeout, not once per request;
  a request pays two short lock holds (a set insert, a removal): about 3 us of CPU.
- **Name lookups in a helper thread**, waited for until the deadline at most. ``getaddrinfo``
  cannot be interrupted, so a lookup that outlives a request is abandoned, and every connection to
  the same host meanwhile waits on that same lookup instead of starting another: a dead resolver
  costs one stuck thread per host, not one per request. Nothing is cached beyond that (the
  system resolver's own caching and TTLs stay in charge), and pooled connections rarely look up.
- **Connect and TLS handshake get the time left** as their socket timeout: each address tried
  gets only what remains, and CPython bounds a whole handshake by the socket timeout.

The connection classes learn their request from a thread-local set by ``begin``: urllib3 runs a
request entirely in the calling thread. They override ``connect`` and ``request`` (public) and
``_new_conn``, urllib3 2.x's one place where a connection resolves and connects: only the TCP
connect is handed resolved addresses, so TLS verification and SNI still use the host name.
Without a request in the thread (the ``requests.Session`` of ``get_conn``) they are urllib3's own.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import sys
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import TYPE_CHECKING, Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family, create_connection
from urllib3.util.ssl_ import is_ipaddress

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    _AddressInfo = Sequence[tuple[Any, ...]]  # what getaddrinfo returns


class RequestDeadline:
    """One request's deadline, the connection it uses (for the watchdog) and how far it got."""

    __slots__ = ("at", "connection", "expired", "stage")

    def __init__(self, at: float) -> None:
        self.at = at
        self.connection: HTTPConnection | None = None
        self.expired = False  # set by the watchdog, which may have shut the connection's socket
        self.stage = "waiting for a connection"

    def remaining(self) -> float:
        return self.at - time.monotonic()


class _Watchdog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._active: set[RequestDeadline] = set()
        self._wakes_at = math.inf
        self._thread: threading.Thread | None = None

    def watch(self, request: RequestDeadline) -> None:
        with self._lock:
            self._active.add(request)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="nxcloud-deadlines", daemon=True)
                self._thread.start()
            elif request.at < self._wakes_at:  # only a shorter timeout than the others' wakes it
                self._changed.notify()

    def release(self, request: RequestDeadline) -> bool:
        """Stop watching ``request`` (its connection is the caller's again); True if it expired."""
        with self._lock:
            self._active.discard(request)
        return request.expired

    def _run(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                earliest = math.inf
                for request in self._active:
                    if request.at > now:
                        earliest = min(earliest, request.at)
                    elif not request.expired:
                        request.expired = True
                        _shut_down(request.connection)
                self._wakes_at = earliest
                self._changed.wait(None if earliest == math.inf else earliest - now)


def _shut_down(connection: HTTPConnection | None) -> None:
    sock: Any = connection.sock if connection is not None else None
    if sock is not None and not isinstance(sock, socket.socket):
        sock = getattr(sock, "socket", None)  # urllib3's SSLTransport (TLS through an HTTPS proxy)
    if sock is None:
        return  # not connected yet: connecting is bounded by the time left, and checked after
    # At the socket level, also for an SSLSocket: its own shutdown() would first drop the TLS
    # state under the thread reading it. A socket detached mid-handshake raises EBADF: that
    # handshake is bounded by its socket timeout (the time left) instead.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Resolver:
    """``getaddrinfo`` in a helper thread: one lookup in flight per host, waited for with a bound."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lookups: dict[tuple[str, int], Future[_AddressInfo]] = {}

    def lookup(self, host: str, port: int, request: RequestDeadline) -> _AddressInfo:
        if is_ipaddress(host):  # a numeric host involves no resolver
            return socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM)
        key = (host, port)
        with self._lock:
            future = self._lookups.get(key)
            if future is None:
                future = self._lookups[key] = Future()
                threading.Thread(
                    target=self._look_up, args=(key, future), name="nxcloud-resolve", daemon=True
                ).start()
        try:
            return future.result(timeout=max(request.remaining(), 0.0))
        except FutureTimeoutError:
            raise TimeoutError(f"no answer from the resolver for {host}") from None

    def _look_up(self, key: tuple[str, int], future: Future[_AddressInfo]) -> None:
        try:
            addresses = socket.getaddrinfo(*key, allowed_gai_family(), socket.SOCK_STREAM)
        except BaseException as error:  # handed to whoever waits (a gaierror, mostly)
            self._forget(key)
            future.set_exception(error)
        else:
            self._forget(key)
            future.set_result(addresses)

    def _forget(self, key: tuple[str, int]) -> None:
        with self._lock:
            self._lookups.pop(key, None)  # the next connection looks up afresh


_AWAITING_HEADERS = "waiting for the answer's headers"
_WATCHDOG = _Watchdog()
_RESOLVER = _Resolver()
_current = threading.local()


def _after_fork() -> None:
    # A forked child has neither the watchdog thread nor the lookups, and their locks may have
    # been held by a thread of the parent.
    global _WATCHDOG, _RESOLVER
    _WATCHDOG, _RESOLVER = _Watchdog(), _Resolver()


os.register_at_fork(after_in_child=_after_fork)


def begin(seconds: float) -> RequestDeadline:
    """Watch a request starting now in this thread; ``end`` it in the same thread."""
    request = RequestDeadline(time.monotonic() + seconds)
    _WATCHDOG.watch(request)
    _current.request = request
    return request


def end(request: RequestDeadline) -> bool:
    """The request is over; True if its deadline passed (then its connection must not be reused)."""
    _current.request = None
    return _WATCHDOG.release(request)


def _attach(connection: HTTPConnection, stage: str) -> RequestDeadline | None:
    request: RequestDeadline | None = getattr(_current, "request", None)
    if request is not None:
        request.connection = connection  # before the check: the watchdog sees it from now on
        request.stage = stage
        if request.expired:
            raise ConnectTimeoutError(connection, f"deadline passed while {stage}")
    return request


class BoundedHTTPConnection(HTTPConnection):
    """urllib3's connection, ended by the deadline of the request in the thread (if any)."""

    def connect(self) -> None:
        request = _attach(self, f"connecting to {self.host}")
        super().connect()
        if request is not None:
            if request.expired:  # the watchdog may have found no socket to shut down yet
                raise ConnectTimeoutError(self, f"deadline passed while connecting to {self.host}")
            request.stage = _AWAITING_HEADERS  # plain http connects from within request()

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        chunked: bool = False,
        preload_content: bool = True,
        decode_content: bool = True,
        enforce_content_length: bool = True,
    ) -> None:
        _attach(self, _AWAITING_HEADERS)
        super().request(
            method,
            url,
            body,
            headers,
            chunked=chunked,
            preload_content=preload_content,
            decode_content=decode_content,
            enforce_content_length=enforce_content_length,
        )

    def _new_conn(self) -> socket.socket:
        request: RequestDeadline | None = getattr(_current, "request", None)
        if request is None:
            return super()._new_conn()
        request.stage = f"looking up {self.host}"
        try:
            addresses = _RESOLVER.lookup(self.host, self.port, request)
        except socket.gaierror as error:
            raise NameResolutionError(self.host, self, error) from error
        except TimeoutError:
            raise ConnectTimeoutError(self, f"no answer from the resolver for {self.host}") from None
        request.stage = f"connecting to {self.host}"
        limit = self.timeout if isinstance(self.timeout, (int, float)) else math.inf
        failure: OSError | None = None
        for *_, address in addresses:
            left = min(limit, request.remaining())
            if left <= 0:
                break
            try:
                sock = create_connection(
                    address[:2], left, source_address=self.source_address, socket_options=self.socket_options
                )
            except OSError as error:
                failure = error
                continue
            # What the TLS handshake may take (urllib3 sets the read timeout after connecting).
            sock.settimeout(max(min(limit, request.remaining()), 0.001))
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        if failure is None or isinstance(failure, TimeoutError):
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out")
        raise NewConnectionError(self, f"Failed to establish a new connection: {failure}")


class BoundedHTTPSConnection(BoundedHTTPConnection, HTTPSConnection):
    """The same for https (``HTTPSConnection.connect`` calls the ``_new_conn`` above)."""
