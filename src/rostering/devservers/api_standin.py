"""Base of the loopback SIS API stand-ins (PowerSchool, Aeries): a real HTTP server for the demo, tests and bench.

Subclasses register routes and an ``authenticate`` check; the base adds what a real SIS API does to a client:
added latency per request, a rate limit (429 with ``Retry-After`` and a JSON error body), injected faults, and a
request log without bodies or header values. It runs ``ThreadingHTTPServer`` (stdlib, one thread per request) on
127.0.0.1, so the client talks HTTP to it exactly as it would to the district's server.

    server.fail_next(2, status=503)                       # the next 2 matching requests answer 503
    server.fail_next(1, status=429, retry_after="1")      # ... 429 with Retry-After: 1
    server.deny("/ws/schema/query/x")                      # 403 for a resource the district has not granted
"""
from __future__ import annotations

import json
import logging
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Sequence
from urllib.parse import parse_qsl, unquote, urlsplit

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


@dataclass
class StandinRequest:
    method: str
    path: str  # percent-decoded, without the query
    query: dict[str, str]  # lower-cased keys (SIS APIs treat parameter names case-insensitively)
    headers: dict[str, str]  # lower-cased names
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class StandinResponse:
    status: int
    body: Any = None  # JSON-able, or bytes sent as they are (pre-serialised pages)
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, (bytes, bytearray)):
            return bytes(self.body)
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode()


def error(status: int, message: str, **extra: Any) -> StandinResponse:
    return StandinResponse(status, {"message": message, **extra})


def serve_until_signalled(server: "StandinServer", banner: str) -> None:
    """The stand-ins' command lines: print ``banner`` and serve until SIGTERM or SIGINT, then stop."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        print(banner, flush=True)
        stop.wait()
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def page_slice(records: Sequence, *, page: int, page_size: int) -> Sequence:
    """Records of 1-based ``page`` of ``page_size`` (an empty slice past the end)."""
    start = (max(page, 1) - 1) * page_size
    return records[start:start + page_size]


Handler = Callable[..., Any]


@dataclass
class _Fault:
    remaining: int
    status: int
    retry_after: str | None
    path_prefix: str


class StandinServer:
    """Routes, auth, latency, rate limit and faults; subclasses add the SIS's resources."""

    name = "sis-standin"

    def __init__(self, *, latency_s: float = 0.0, rate_limit_per_s: float | None = None, host: str = HOST,
                 port: int = 0):
        self.latency_s = latency_s
        self.rate_limit_per_s = rate_limit_per_s
        self.host, self._port = host, port
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._faults: list[_Fault] = []
        self._denied: set[str] = set()
        self._lock = threading.Lock()
        self._bucket_tokens = rate_limit_per_s or 0.0
        self._bucket_time = time.monotonic()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status): never bodies or header values

    # -- configuration -------------------------------------------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method.upper(), re.compile(pattern + r"\Z"), handler))

    def authenticate(self, request: StandinRequest) -> StandinResponse | None:
        """None when the request may proceed; else the SIS's refusal (subclasses)."""
        return None

    def fail_next(self, n: int, *, status: int, retry_after: str | None = None, path_prefix: str = "") -> None:
        with self._lock:
            self._faults.append(_Fault(n, status, retry_after, path_prefix))

    def deny(self, path_prefix: str) -> None:
        """Answer 403 for every path starting with ``path_prefix`` (a resource the district did not grant)."""
        with self._lock:
            self._denied.add(path_prefix)

    # -- lifecycle -----------------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._httpd.server_address[1] if self._httpd else self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self):
        handler = type("Handler", (_RequestHandler,), {"server_impl": self})
        self._httpd = _QuietServer((self.host, self._port), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"{self.name}-http", daemon=True)
        self._thread.start()
        log.info("%s listening on %s", self.name, self.url)
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- dispatch ------------------------------------------------------------------------------------------------
    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and path.startswith(fault.path_prefix):
                    fault.remaining -= 1
                    return fault
            return None

    def _over_rate(self) -> bool:
        """Token bucket of ``rate_limit_per_s`` requests per second (burst of one second's worth)."""
        if not self.rate_limit_per_s:
            return False
        with self._lock:
            now = time.monotonic()
            self._bucket_tokens = min(self.rate_limit_per_s,
                                      self._bucket_tokens + (now - self._bucket_time) * self.rate_limit_per_s)
            self._bucket_time = now
            if self._bucket_tokens >= 1:
                self._bucket_tokens -= 1
                return False
            return True

    def handle(self, request: StandinRequest) -> StandinResponse:
        if self.latency_s:
            time.sleep(self.latency_s)  # a sleeping thread holds no GIL: latency overlaps like a real network's
        fault = self._take_fault(request.path)
        if fault is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return StandinResponse(fault.status, {"message": f"injected fault {fault.status}"}, headers)
        if self._over_rate():
            return StandinResponse(429, {"message": "Too many requests: rate limit exceeded"}, {"Retry-After": "1"})
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if match is None or method != request.method:
                continue
            refusal = self.authenticate(request)
            if refusal is not None:
                return refusal
            if any(request.path.startswith(prefix) for prefix in self._denied):
                return error(403, "Access to this resource has not been granted")
            result = handler(request, **match.groupdict())
            if isinstance(result, StandinResponse):
                return result
            if isinstance(result, tuple):
                return StandinResponse(*result)
            return StandinResponse(200, result)
        return error(404, "Not found")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:  # a client that hung up mid-answer
        log.debug("stand-in: connection error from %s", client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    server_impl: StandinServer
    protocol_version = "HTTP/1.1"  # keep-alive: the client's connection pool is reused as against a real server
    # Headers and body leave in two writes; with Nagle on, the body waits for the client's delayed ACK (~40 ms on
    # loopback), a stall no real SIS adds and one that would swamp the latency the bench sets on purpose.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - never log paths with ids to stderr
        return

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = StandinRequest(
            method=self.command, path=unquote(parts.path),
            query={k.lower(): v for k, v in parse_qsl(parts.query, keep_blank_values=True)},
            headers={k.lower(): v for k, v in self.headers.items()}, body=body,
        )
        try:
            response = self.server_impl.handle(request)
        except Exception:  # noqa: BLE001 - a stand-in bug must answer 500, like a server would
            log.exception("stand-in handler failed")
            response = error(500, "Internal server error")
        payload = response.encoded()
        self.send_response(response.status)
        content_type = "application/json" if not isinstance(response.body, (bytes, bytearray)) else None
        headers = {"Content-Type": content_type or "application/json", **response.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        with self.server_impl._lock:
            self.server_impl.requests.append((request.method, request.path, response.status))

    do_GET = do_POST = do_PUT = do_DELETE = _dispatch
