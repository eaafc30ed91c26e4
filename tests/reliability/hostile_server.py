"""A purpose-built misbehaving HTTP(S) server for the hostile-response tests (loopback only).

Every POST is recorded and answered by one chosen ``Answer``: a function of the request
handler. Unlike the NXCloud sandbox it knows nothing about signing: it only misbehaves.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

# Here too, for the tests that import it from here.
from airflow_provider_nxcloud.testing.tls import self_signed_certificate as self_signed_certificate

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable

    Answer = Callable[["_Handler"], None]


@dataclass(frozen=True)
class SeenRequest:
    path: str
    headers: dict[str, str]
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 30  # a client that stops talking does not pin a server thread forever

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.owner.record(SeenRequest(self.path, dict(self.headers.items()), body))
        # OSError: the client gave up (it is allowed to: that is what is being tested).
        with contextlib.suppress(OSError):
            self.server.owner.answer(self)

    do_GET = do_POST

    def send(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        headers.setdefault("Content_Type", "application/json")
        if "Transfer_Encoding" not in headers:
            headers.setdefault("Content_Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], owner: HostileServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)


class HostileServer:
    """``with HostileServer(answer) as server: ... server.url ... server.requests``."""

    def __init__(self, answer: Answer, *, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.requests: list[SeenRequest] = []
        self.stopping = threading.Event()  # answers that stall wait on this, so stop() frees them
        self._lock = threading.Lock()
        self._server = _Server((host, 0), self)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def record(self, request: SeenRequest) -> None:
        with self._lock:
            self.requests.append(request)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


# -- answers --


def answer_json(document: Any, status: int = 200, **headers: str) -> Answer:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return lambda handler: handler.send(status, body, **headers)


NXCLOUD_OK = answer_json({"code": 0, "message": "Request succeeded", "data": None})


def answer_big(size: int, *, chunked: bool = False) -> Answer:
    """A JSON-looking body of ``size`` bytes, sent in 64 KB pieces (with or without a length)."""
    piece = b"x" * (1 << 16)

    def answer(handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        else:
            handler.send_header("Content-Length", str(size))
        handler.end_headers()
        sent = 0
        while sent < size and not handler.server.owner.stopping.is_set():
            part = piece[: size - sent]
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
            sent += len(part)
        if chunked:
            handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()

    return answer


def gzip_bomb(decoded_size: int) -> bytes:
    """``decoded_size`` bytes of spaces, gzip-compressed (about 1000:1), built without holding them."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * (1 << 20)
    parts = [compressor.compress(block) for _ in range(decoded_size >> 20)]
    parts.append(compressor.flush())
    return b"".join(parts)


def answer_gzip(body: bytes) -> Answer:
    return lambda handler: handler.send(200, body, Content_Encoding="gzip")


def answer_trickle(body: bytes, interval: float) -> Answer:
    """Headers at once, then the body one byte every ``interval`` seconds (a slowloris answer)."""

    def answer(handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.flush()
        for byte in body:
            if handler.server.owner.stopping.wait(interval):
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()

    return answer


def answer_trickle_headers(interval: float, header_bytes: int = 4000) -> Answer:
    """The status line and headers one byte every ``interval`` seconds: the body never comes."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    head += b"X-Padding: " + b"p" * header_bytes + b"\r\nContent-Length: 2\r\n\r\n{}"

    def answer(handler: _Handler) -> None:
        for index in range(len(head)):
            handler.wfile.write(head[index : index + 1])
            handler.wfile.flush()
            if handler.server.owner.stopping.wait(interval):
                return

    return answer


def answer_never(handler: _Handler) -> None:
    """Read the request, then say nothing until the server stops."""
    handler.server.owner.stopping.wait(60)


def answer_redirect(location: str, status: int = 302) -> Answer:
    return lambda handler: handler.send(status, b"", Location=location, Content_Type="text/plain")


def loopback_alias_available(host: str = "127.0.0.2") -> bool:
    """Whether another loopback address can be bound (Linux: the whole 127/8 is local)."""
    try:
        with socket.socket() as probe:
            probe.bind((host, 0))
    except OSError:
        return False
    return True
