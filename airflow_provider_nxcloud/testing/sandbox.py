"""A local NXCloud-compatible server for tests, demos and benchmarks.

It serves ``POST /api/wa/markMessageAsRead`` with the checks of ``state.py``, records what was
marked and every request it saw, and can inject faults. A small control API under
``/_sandbox/`` lets another process (a DAG run, a benchmark) configure and read it.
``POST /api/wa/typingIndicator`` is served alike, and ``typing_shown()`` says where it was shown.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import tempfile
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from airflow_provider_nxcloud.client.api import MARK_READ_PATH, META_PASSTHROUGH_CODE, TYPING_INDICATOR_PATH
from airflow_provider_nxcloud.testing.state import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_ACCESS_SECRET,
    DEFAULT_APPKEY,
    DEFAULT_BUSINESS_PHONE,
    FAULT_KINDS,
    META_ERRORS,
    META_FAULT_KINDS,
    META_THROUGHPUT,
    RATE_LIMITED,
    AccountLimit,
    Faults,
    InboundMessage,
    RequestRecord,
    SandboxState,
    meta_answer,
    meta_error,
)

if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterable, Mapping

    from airflow_provider_nxcloud.client import NxCloudClient
    from airflow_provider_nxcloud.testing.state import MetaRefusal

__all__ = [
    "DEFAULT_ACCESS_KEY",
    "DEFAULT_ACCESS_SECRET",
    "DEFAULT_APPKEY",
    "DEFAULT_BUSINESS_PHONE",
    "FAULT_KINDS",
    "MARK_READ_PATH",
    "META_ERRORS",
    "META_FAULT_KINDS",
    "AccountLimit",
    "Faults",
    "InboundMessage",
    "NxCloudSandbox",
    "RequestRecord",
    "meta_answer",
]

# A client that connects and says nothing does not pin a handshake thread for long.
HANDSHAKE_TIMEOUT = 10.0

_HTML_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body>upstream error</body></html>"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    # Each reply leaves in one segment (buffered, flushed by _reply) with Nagle off. Unbuffered,
    # the status/headers and the body went out as two small writes, and Nagle held the body back
    # until the client's delayed ACK (~40 ms on Linux): a 50 ms sandbox answered in ~92 ms.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output readable; the request log is the record

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header follows the (possibly skewed) sandbox clock, as a real server's would.
        return formatdate(self.server.state.now_ms() / 1000, usegmt=True)

    def _reply(
        self, status: int, body: bytes, content_type: str = "application/json", **headers: str
    ) -> None:
        self.send_response(status)
        if self.server.state.faults.close_connections:
            self.send_header("Connection", "close")  # and closes it after this answer
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)
        # Flush here, not in handle_one_request: a client that went away raises where callers
        # expect it (``_mark_read`` ignores OSError) instead of as a server traceback.
        self.wfile.flush()

    def _reply_json(self, document: Any, status: int = 200) -> None:
        self._reply(status, json.dumps(document, ensure_ascii=False).encode("utf-8"))

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/_sandbox/state":
            since = int(parse_qs(url.query).get("since", ["0"])[0])
            self._reply_json(self.server.state.snapshot(since))
        elif url.path == "/_sandbox/read":
            phone = parse_qs(url.query).get("business_phone", [None])[0]
            self._reply_json({"read": sorted(self.server.state.read_ids(phone))})
        elif url.path == "/_sandbox/health":
            self._reply_json({"ok": True})
        else:
            self._reply_json({"code": 404, "message": "Not found", "data": None}, 404)

    def do_POST(self) -> None:
        raw = self._read_body()
        path = urlsplit(self.path).path
        if path == "/_sandbox/config":
            self._configure(json.loads(raw or b"{}"))
            return
        if path == "/_sandbox/inbound":
            try:
                messages = [InboundMessage.from_record(r) for r in json.loads(raw or b"{}")["messages"]]
            except (ValueError, KeyError, TypeError) as error:
                self._reply_json({"ok": False, "error": str(error)}, 400)
                return
            self.server.state.add_inbound(messages)
            self._reply_json({"ok": True, "inbound": len(self.server.state.inbound)})
            return
        if path == "/_sandbox/reset":
            self.server.sandbox.reset()
            self._reply_json({"ok": True})
            return
        if path not in {MARK_READ_PATH, TYPING_INDICATOR_PATH}:
            self._reply_json({"code": 404, "message": "Not found", "data": None}, 404)
            return
        self._mark_read(raw, path)

    def _configure(self, document: dict[str, Any]) -> None:
        sandbox = self.server.sandbox
        if "faults" in document:
            sandbox.set_faults(Faults(**document["faults"]))
        if "clock_skew_ms" in document:
            sandbox.state.clock_skew_ms = int(document["clock_skew_ms"])
        if "message_ids" in document:
            ids = document["message_ids"]
            sandbox.state.message_ids = set(ids) if ids is not None else None
        if "rate_limit" in document:
            limit = document["rate_limit"]
            sandbox.set_rate_limit(AccountLimit(**limit) if limit is not None else None)
        self._reply_json({"ok": True})

    def _mark_read(self, raw: bytes, path: str) -> None:
        """Either endpoint: ``typingIndicator`` is checked and marks as mark-read does, and shows typing."""
        received_at = time.time()
        state = self.server.state
        headers = {name: value for name, value in self.headers.items()}
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        parsed = parsed if isinstance(parsed, dict) else {}
        message_id, phone = parsed.get("message_id"), parsed.get("business_phone")
        message_id = message_id if isinstance(message_id, str) else None
        # Counted on arrival, as a gateway does; the 429 still takes the round trip to arrive.
        throttled = not state.admit(phone if isinstance(phone, str) else None)
        latency = state.faults.latency
        if latency:
            time.sleep(latency)
        fault = RATE_LIMITED if throttled else state.scripted_fault(message_id) or state.draw_fault()
        # WhatsApp's refusals (Meta errors, a Meta-style limit) come after NXCloud's own checks.
        meta_kind = fault if fault in META_FAULT_KINDS else None
        if fault == RATE_LIMITED and state.throttle_answer() == "meta":
            meta_kind = META_THROUGHPUT
        code: int | None = None
        refusal: MetaRefusal | None = None
        if fault in {"-1", "9001"}:
            code = int(fault)
        elif meta_kind is not None or fault not in {"drop", "500", "503", "429", "html", RATE_LIMITED}:
            if fault == "slow":
                time.sleep(state.faults.slow_seconds)
            code, message, body, refusal = state.verify(self.headers, raw, path)
            if code == 0 and meta_kind is not None:
                code, refusal = META_PASSTHROUGH_CODE, meta_error(meta_kind)
            elif meta_kind is not None:
                fault = None  # NXCloud refused it first: WhatsApp's answer never came
            elif code == 0 and body is not None:
                state.mark(body["business_phone"], body["message_id"], typing=path == TYPING_INDICATOR_PATH)
        # Recorded before answering: once a client has its answer, the log already shows it.
        state.record(
            RequestRecord(
                received_at=received_at,
                path=path,
                headers=headers,
                body=raw.decode("utf-8", errors="replace"),
                code=code,
                fault=fault,
                message_id=message_id,
                business_phone=phone if isinstance(phone, str) else None,
                client_port=self.client_address[1],
            )
        )
        try:
            if fault == "drop":
                # Close without an answer, as a crashed proxy would.
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            elif fault in {"500", "503"}:
                self._reply(int(fault), b"Service Unavailable", "text/plain")
            elif fault == RATE_LIMITED and meta_kind is None:
                bucket = state.account_bucket
                retry_after = bucket.limit.retry_after if bucket is not None else None
                extra = {"Retry_After": f"{retry_after:g}"} if retry_after is not None else {}
                self._reply(429, b"Too Many Requests", "text/plain", **extra)
            elif fault == "429":
                self._reply(
                    429, b"Too Many Requests", "text/plain", Retry_After=f"{state.faults.retry_after:g}"
                )
            elif fault == "html":
                self._reply(200, _HTML_PAGE, "text/html")
            elif fault in {"-1", "9001"}:
                self._reply_json({"code": code, "message": "Request failed", "data": None})
            elif refusal is not None:
                self._reply_json(state.meta_answer(refusal))
            else:
                self._reply_json({"code": code, "message": message, "data": None})
        except OSError:
            pass  # the client went away (for instance it timed out on a slow answer)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(
        self, address: tuple[str, int], sandbox: NxCloudSandbox, tls: ssl.SSLContext | None = None
    ) -> None:
        self.sandbox = sandbox
        self.state = sandbox.state
        self.tls = tls
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        # The handshake happens here, in the connection's own thread, not in the accept loop.
        request.settimeout(HANDSHAKE_TIMEOUT)
        if self.state.end_handshake():
            with contextlib.suppress(OSError):
                request.recv(1 << 16)  # the ClientHello
                request.shutdown(socket.SHUT_WR)  # a FIN, no close_notify
            return
        try:
            wrapped = self.tls.wrap_socket(request, server_side=True)
        except OSError:  # ssl.SSLError too: the client refused the certificate, or went away
            return
        try:
            wrapped.settimeout(None)
            super().finish_request(wrapped, client_address)
        finally:
            wrapped.close()


class NxCloudSandbox:
    """
    A running NXCloud look-alike on 127.0.0.1. Use as a context manager::

        with NxCloudSandbox() as sandbox:
            os.environ["AIRFLOW_CONN_NXCLOUD_DEFAULT"] = sandbox.connection_json()
            ...
            assert sandbox.marked_ids() == {"wamid.1"}

    :param message_ids: the ids that exist; None accepts any well-formed id.
    :param inbound: messages customers sent (``InboundMessage``, or webhook-shaped records with
        ``id``, ``business_phone``, ``from`` or ``from_user_id`` (a username user's BSUID), and
        optionally ``timestamp`` and ``group_id``). Once any are seeded, an id that is neither
        seeded nor in ``message_ids`` gets 9099 (Meta's 131009), and ``read_ids`` follows
        WhatsApp: marking a one-to-one message reads those of its conversation (business phone,
        customer) strictly earlier in whole seconds, not one of the same second; a group message
        is read only when marked itself, and marking it reads nothing else.
    :param appkey: the WhatsApp application's appkey ``typingIndicator`` bodies must carry (9003
        otherwise); ``connection_json()`` and ``client()`` give it.
    :param clock_skew_ms: how far the sandbox clock is ahead of the host's.
    :param faults: injected faults (``Faults``), Meta's errors among them (``"meta:130429"``...,
        answered as code 9099 in the shape NXCloud documents, Meta's error in ``data.error``;
        ``Faults(meta_shape="text")`` for the older shape, ``meta_code_as="str"`` for a string
        ``data.error.code``).
    :param rate_limit: the account's rate limit (HTTP 429 beyond it, or Meta's 130429 with
        ``AccountLimit(answer="meta")``), or one business number's with
        ``AccountLimit(business_phone=...)``; None: unlimited.
    :param tls: serve HTTPS with a throwaway self-signed certificate for 127.0.0.1 and localhost,
        made on ``start()``; ``ca_file`` is its path, which ``client()`` and ``connection_json()``
        pass as ``verify``. ``Faults(handshake_eof=...)`` then ends some handshakes early.
    """

    def __init__(
        self,
        *,
        access_key: str = DEFAULT_ACCESS_KEY,
        access_secret: str = DEFAULT_ACCESS_SECRET,
        business_phones: Iterable[str] = (DEFAULT_BUSINESS_PHONE,),
        message_ids: Iterable[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock_skew_ms: int = 0,
        faults: Faults | None = None,
        record_requests: bool = True,
        inbound: Iterable[InboundMessage | Mapping[str, Any]] = (),
        rate_limit: AccountLimit | None = None,
        appkey: str = DEFAULT_APPKEY,
        tls: bool = False,
    ) -> None:
        self.tls = tls
        self._certificate_dir: Path | None = None
        self.state = SandboxState(
            access_key=access_key,
            access_secret=access_secret,
            business_phones=business_phones,
            message_ids=message_ids,
            clock_skew_ms=clock_skew_ms,
            faults=faults,
            record_requests=record_requests,
            inbound=_inbound(inbound),
            rate_limit=rate_limit,
            appkey=appkey,
        )
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> NxCloudSandbox:
        context = None
        if self.tls:
            from airflow_provider_nxcloud.testing.tls import self_signed_certificate, server_context

            self._certificate_dir = Path(tempfile.mkdtemp(prefix="nxcloud-sandbox-tls-"))
            context = server_context(*self_signed_certificate(self._certificate_dir))
        self._server = _Server(self._address, self, context)
        # A short poll interval makes stop() (and so every test's teardown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="nxcloud-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._certificate_dir is not None:
            shutil.rmtree(self._certificate_dir, ignore_errors=True)
            self._certificate_dir = None

    def __enter__(self) -> NxCloudSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- where it is --

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the sandbox is not running: call start() or use it as a context manager")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self._address[0]}:{self.port}"

    @property
    def ca_file(self) -> str | None:
        """Over HTTPS, the certificate to verify the sandbox with (``verify=``); None over HTTP."""
        if self._certificate_dir is None:
            return None
        return str(self._certificate_dir / "cert.pem")

    def connection_json(self, **extra: Any) -> str:
        """An ``AIRFLOW_CONN_<ID>`` value (JSON form) that points a connection at this sandbox."""
        return json.dumps(
            {
                "conn_type": "nxcloud",
                "host": self.url,
                "login": self.state.access_key,
                "password": self.state.access_secret,
                "extra": {
                    "business_phone": sorted(self.state.business_phones)[0],
                    "appkey": self.state.appkey,
                    **({"verify": self.ca_file} if self.ca_file else {}),
                    **extra,
                },
            }
        )

    def client(self, **arguments: Any) -> NxCloudClient:
        """An ``NxCloudClient`` for this sandbox (no Airflow); ``arguments`` override its own.

        Backoff is short (``retry_wait=(0.01, 0.05)``) unless given: tests need not wait.
        """
        from airflow_provider_nxcloud.client import NxCloudClient

        defaults: dict[str, Any] = {
            "access_key": self.state.access_key,
            "access_secret": self.state.access_secret,
            "base_url": self.url,
            "business_phone": sorted(self.state.business_phones)[0],
            "appkey": self.state.appkey,
            "retry_wait": (0.01, 0.05),
            **({"verify": self.ca_file} if self.ca_file else {}),
        }
        return NxCloudClient(**{**defaults, **arguments})

    # -- control --

    def set_faults(self, faults: Faults) -> None:
        self.state.set_faults(faults)

    def set_rate_limit(self, limit: AccountLimit | None) -> None:
        """Set, change (during a run) or remove the account's rate limit; ``reset()`` keeps it."""
        self.state.set_rate_limit(limit)

    def set_clock_skew(self, milliseconds: int) -> None:
        self.state.clock_skew_ms = milliseconds

    def add_inbound(self, messages: Iterable[InboundMessage | Mapping[str, Any]]) -> None:
        """Seed messages customers sent (see ``inbound``); seeding one twice is a no-op."""
        self.state.add_inbound(_inbound(messages))

    def reset(self) -> None:
        """Forget marks, typing shown, requests and faults (keeps credentials, phones, ids, inbound
        messages, the rate limit and how a 9099 is written)."""
        with self.state.lock:
            self.state.mark_counts.clear()
            self.state.typing_shown.clear()
            self.state.read_before.clear()
            self.state.requests.clear()
            self.state.faults_injected.clear()
        shape = self.state.faults
        self.set_faults(Faults(meta_shape=shape.meta_shape, meta_code_as=shape.meta_code_as))

    # -- what happened --

    def read_ids(self, business_phone: str | None = None) -> set[str]:
        """What customers see as read: the ids marked and the earlier ones of their conversations."""
        return self.state.read_ids(business_phone)

    def marked_ids(self, business_phone: str | None = None) -> set[str]:
        """The ids a request marked read (not those read through a newer one: ``read_ids``)."""
        with self.state.lock:
            return {m for (p, m) in self.state.mark_counts if business_phone in (None, p)}

    def typing_shown(self, business_phone: str | None = None) -> list[str]:
        """The ids a ``typingIndicator`` request marked, once per request, in the order answered:
        each is a "typing..." the customer saw."""
        with self.state.lock:
            return [m for (p, m) in self.state.typing_shown if business_phone in (None, p)]

    @property
    def mark_counts(self) -> dict[tuple[str, str], int]:
        with self.state.lock:
            return dict(self.state.mark_counts)

    @property
    def requests(self) -> list[RequestRecord]:
        with self.state.lock:
            return list(self.state.requests)


def _inbound(messages: Iterable[InboundMessage | Mapping[str, Any]]) -> list[InboundMessage]:
    return [m if isinstance(m, InboundMessage) else InboundMessage.from_record(m) for m in messages]
