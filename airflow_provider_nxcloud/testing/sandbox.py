"""A local NXCloud-compatible server for tests, demos and benchmarks.

It implements ``POST /api/wa/markMessageAsRead`` as NXCloud documents it: required headers
(1001), bizType/action (1002), the signature over the exact received bytes (1003), ``ts`` within
60 s of its own (skewable) clock (1004), unknown access key (1005), body fields (9000), known
business phones (9002) and, when told which exist, known message ids (9099 otherwise).

It records what was marked and every request it saw, and can inject faults. A small control
API under ``/_sandbox/`` lets another process (a DAG run, a benchmark) configure and read it.
"""

from __future__ import annotations

import json
import random
import re
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from airflow_provider_nxcloud.api import (
    MARK_READ_PATH,
    READ_ACTION,
    TS_WINDOW_MS,
    WHATSAPP_BIZ_TYPE,
    mark_read_body,
)
from airflow_provider_nxcloud.signing import ALGORITHMS, SIGNED_HEADERS, compute_sign

if TYPE_CHECKING:
    from collections.abc import Iterable
    from email.message import Message as HeaderMessage

DEFAULT_ACCESS_KEY = "sandbox-access-key"
DEFAULT_ACCESS_SECRET = "sandbox-access-secret"
DEFAULT_BUSINESS_PHONE = "8613800000000"
# What a WhatsApp message id can look like (wamid.<base64>); anything else is a 9000.
_WELL_FORMED_ID = re.compile(r"^[A-Za-z0-9._=+/:-]{1,512}$")
FAULT_KINDS = ("-1", "9001", "500", "503", "429", "drop", "html", "slow")
_HTML_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body>upstream error</body></html>"


@dataclass
class Faults:
    """What the sandbox does wrong, on purpose. Rates are per-request probabilities."""

    latency: float = 0.0
    rates: dict[str, float] = field(default_factory=dict)
    retry_after: float = 1.0
    slow_seconds: float = 5.0
    codes: dict[str, int] = field(default_factory=dict)
    # Per message id, the faults its first requests get, in order (then it is answered normally):
    # {"wamid.1": ["-1", "503"]} fails twice, then succeeds.
    scripts: dict[str, list[str]] = field(default_factory=dict)
    seed: int | None = None

    def __post_init__(self) -> None:
        self.scripts = {message_id: list(kinds) for message_id, kinds in self.scripts.items()}
        unknown = (set(self.rates) | {k for ks in self.scripts.values() for k in ks}) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; use {', '.join(FAULT_KINDS)}")
        if sum(self.rates.values()) > 1:
            raise ValueError("fault rates add up to more than 1")


@dataclass
class RequestRecord:
    """One request as the sandbox saw it (headers and body as received)."""

    received_at: float
    path: str
    headers: dict[str, str]
    body: str
    code: int | None
    fault: str | None
    message_id: str | None
    business_phone: str | None
    client_port: int = 0


class SandboxState:
    """Everything the sandbox knows, behind one lock; shared by the handler threads."""

    def __init__(
        self,
        *,
        access_key: str,
        access_secret: str,
        business_phones: Iterable[str],
        message_ids: Iterable[str] | None,
        clock_skew_ms: int,
        faults: Faults | None,
        record_requests: bool,
    ) -> None:
        self.access_key = access_key
        self.access_secret = access_secret
        self.business_phones = set(business_phones)
        self.message_ids = set(message_ids) if message_ids is not None else None
        self.clock_skew_ms = clock_skew_ms
        self.faults = faults or Faults()
        self.record_requests = record_requests
        self.lock = threading.Lock()
        self.random = random.Random(self.faults.seed)
        self.mark_counts: dict[tuple[str, str], int] = {}
        self.requests: list[RequestRecord] = []
        self.faults_injected: dict[str, int] = {}

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_skew_ms

    def scripted_fault(self, message_id: str | None) -> str | None:
        script = self.faults.scripts.get(message_id) if message_id is not None else None
        if not script:
            return None
        with self.lock:
            return script.pop(0) if script else None

    def draw_fault(self) -> str | None:
        rates = self.faults.rates
        if not rates:
            return None
        with self.lock:
            roll = self.random.random()
        for kind in FAULT_KINDS:
            roll -= rates.get(kind, 0.0)
            if roll < 0:
                return kind
        return None

    def verify(self, headers: HeaderMessage, raw: bytes) -> tuple[int, str, dict[str, Any] | None]:
        """NXCloud's checks, in order; returns (code, message, parsed body)."""
        required = (*SIGNED_HEADERS, "sign")
        missing = [name for name in required if not headers.get(name)]
        if missing:
            return 1001, f"Missing common header: {', '.join(missing)}", None
        if headers["accessKey"] != self.access_key:
            return 1005, "Insufficient permissions: unknown accessKey", None
        try:
            ts = int(str(headers["ts"]))
        except ValueError:
            return 1004, "Timestamp invalid", None
        if abs(self.now_ms() - ts) > TS_WINDOW_MS:
            return 1004, "Timestamp expired", None
        algorithm = (headers.get("algorithm") or "md5").lower()
        if algorithm not in ALGORITHMS:
            return 1002, f"Unsupported algorithm {algorithm}", None
        signed = {name: str(headers[name]) for name in SIGNED_HEADERS}
        expected = compute_sign(signed, raw or None, self.access_secret, algorithm)  # type: ignore[arg-type]
        if headers["sign"] != expected:
            return 1003, "Invalid signature", None
        if headers["bizType"] != WHATSAPP_BIZ_TYPE or headers["action"] != READ_ACTION:
            return 1002, "Invalid bizType or action", None
        try:
            body = json.loads(raw)
        except ValueError:
            return 9000, "Parameter exception: body is not JSON", None
        if not isinstance(body, dict):
            return 9000, "Parameter exception: body is not an object", None
        expected_body = mark_read_body(str(body.get("business_phone")), str(body.get("message_id")))
        for name, value in expected_body.items():
            if not isinstance(body.get(name), str) or not body[name]:
                return 9000, f"Parameter exception: {name} is required", body
            if body[name] != value:
                return 9000, f"Parameter exception: {name} must be {value!r}", body
        if body["business_phone"] not in self.business_phones:
            return 9002, "Merchant phone number error", body
        message_id = body["message_id"]
        if not _WELL_FORMED_ID.match(message_id):
            return 9000, "Parameter exception: message_id", body
        if self.message_ids is not None and message_id not in self.message_ids:
            return 9099, "(#100) Invalid parameter: message_id not found", body
        if message_id in self.faults.codes:
            code = self.faults.codes[message_id]
            return code, f"Injected code {code}", body
        return 0, "Request succeeded", body

    def mark(self, business_phone: str, message_id: str) -> None:
        with self.lock:
            key = (business_phone, message_id)
            self.mark_counts[key] = self.mark_counts.get(key, 0) + 1

    def record(self, record: RequestRecord) -> None:
        with self.lock:
            if record.fault:
                self.faults_injected[record.fault] = self.faults_injected.get(record.fault, 0) + 1
            if self.record_requests:
                self.requests.append(record)

    def snapshot(self, since: int = 0) -> dict[str, Any]:
        with self.lock:
            marked: dict[str, list[str]] = {}
            for phone, message_id in self.mark_counts:
                marked.setdefault(phone, []).append(message_id)
            return {
                "marked": marked,
                "mark_counts": [[p, m, n] for (p, m), n in self.mark_counts.items()],
                "faults_injected": dict(self.faults_injected),
                "request_count": len(self.requests),
                "requests": [asdict(r) for r in self.requests[since:]],
            }


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
        if path == "/_sandbox/reset":
            self.server.sandbox.reset()
            self._reply_json({"ok": True})
            return
        if path != MARK_READ_PATH:
            self._reply_json({"code": 404, "message": "Not found", "data": None}, 404)
            return
        self._mark_read(raw)

    def _configure(self, document: dict[str, Any]) -> None:
        sandbox = self.server.sandbox
        if "faults" in document:
            sandbox.set_faults(Faults(**document["faults"]))
        if "clock_skew_ms" in document:
            sandbox.state.clock_skew_ms = int(document["clock_skew_ms"])
        if "message_ids" in document:
            ids = document["message_ids"]
            sandbox.state.message_ids = set(ids) if ids is not None else None
        self._reply_json({"ok": True})

    def _mark_read(self, raw: bytes) -> None:
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
        latency = state.faults.latency
        if latency:
            time.sleep(latency)
        fault = state.scripted_fault(message_id) or state.draw_fault()
        code: int | None = None
        if fault in {"-1", "9001"}:
            code = int(fault)
        elif fault not in {"drop", "500", "503", "429", "html"}:
            if fault == "slow":
                time.sleep(state.faults.slow_seconds)
            code, message, body = state.verify(self.headers, raw)
            if code == 0 and body is not None:
                state.mark(body["business_phone"], body["message_id"])
        # Recorded before answering: once a client has its answer, the log already shows it.
        state.record(
            RequestRecord(
                received_at=received_at,
                path=MARK_READ_PATH,
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
            elif fault == "429":
                self._reply(
                    429, b"Too Many Requests", "text/plain", Retry_After=f"{state.faults.retry_after:g}"
                )
            elif fault == "html":
                self._reply(200, _HTML_PAGE, "text/html")
            elif fault in {"-1", "9001"}:
                self._reply_json({"code": code, "message": "Request failed", "data": None})
            else:
                self._reply_json({"code": code, "message": message, "data": None})
        except OSError:
            pass  # the client went away (for instance it timed out on a slow answer)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], sandbox: NxCloudSandbox) -> None:
        self.sandbox = sandbox
        self.state = sandbox.state
        super().__init__(address, _Handler)


class NxCloudSandbox:
    """
    A running NXCloud look-alike on 127.0.0.1. Use as a context manager::

        with NxCloudSandbox() as sandbox:
            os.environ["AIRFLOW_CONN_NXCLOUD_DEFAULT"] = sandbox.connection_json()
            ...
            assert sandbox.marked_ids() == {"wamid.1"}

    :param message_ids: the ids that exist; None accepts any well-formed id.
    :param clock_skew_ms: how far the sandbox clock is ahead of the host's.
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
    ) -> None:
        self.state = SandboxState(
            access_key=access_key,
            access_secret=access_secret,
            business_phones=business_phones,
            message_ids=message_ids,
            clock_skew_ms=clock_skew_ms,
            faults=faults,
            record_requests=record_requests,
        )
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> NxCloudSandbox:
        self._server = _Server(self._address, self)
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
        return f"http://{self._address[0]}:{self.port}"

    def connection_json(self, **extra: Any) -> str:
        """An ``AIRFLOW_CONN_<ID>`` value (JSON form) that points a connection at this sandbox."""
        return json.dumps(
            {
                "conn_type": "nxcloud",
                "host": self.url,
                "login": self.state.access_key,
                "password": self.state.access_secret,
                "extra": {"business_phone": sorted(self.state.business_phones)[0], **extra},
            }
        )

    # -- control --

    def set_faults(self, faults: Faults) -> None:
        self.state.faults = faults
        self.state.random = random.Random(faults.seed)

    def set_clock_skew(self, milliseconds: int) -> None:
        self.state.clock_skew_ms = milliseconds

    def reset(self) -> None:
        """Forget marks, requests and faults (keeps credentials, phones and ids)."""
        with self.state.lock:
            self.state.mark_counts.clear()
            self.state.requests.clear()
            self.state.faults_injected.clear()
        self.set_faults(Faults())

    # -- what happened --

    def marked_ids(self, business_phone: str | None = None) -> set[str]:
        with self.state.lock:
            return {m for (p, m) in self.state.mark_counts if business_phone in (None, p)}

    @property
    def mark_counts(self) -> dict[tuple[str, str], int]:
        with self.state.lock:
            return dict(self.state.mark_counts)

    @property
    def requests(self) -> list[RequestRecord]:
        with self.state.lock:
            return list(self.state.requests)
