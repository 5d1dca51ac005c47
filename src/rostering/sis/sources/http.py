"""The HTTP client every API source (PowerSchool, Aeries) reads through: what a district's SIS admin would demand.

- **Bounded concurrency**: at most ``max_concurrency`` requests in flight, however the adapter nests ``map`` calls.
- **Retries** on connection errors, time-outs, 429 and 5xx with exponential backoff, honouring ``Retry-After``
  (urllib3's ``Retry``, mounted on a requests session: no hand-written retry loop).
- **Auth**: OAuth2 client credentials (PowerSchool) or a static header (Aeries' ``AERIES-CERT``); on a 401 the
  token is fetched again once, then the request is retried; a second 401 is an error.
- **Clear refusals**: 401/403/404 raise ``SourceAccessError`` naming the source, the resource and the status (the
  district has not granted it); anything else non-2xx raises ``SourceError`` with the same. Response bodies are
  never logged or put into an error (they hold children's records).
- **Progress**: one log line per resource (requests, records, bytes, seconds), counts only.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, TypeVar
from urllib.parse import urljoin

import msgspec
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from rostering.sis.sources.base import SourceAccessError, SourceError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
RETRY_STATUSES = (429, 500, 502, 503, 504)
CONNECT_TIMEOUT_S = 10.0
USER_AGENT = "rostering-sis-reader (+https://github.com/; read-only nightly roster export)"


def retrying_session(*, max_retries: int, backoff_s: float, max_backoff_s: float, pool_size: int) -> requests.Session:
    """A session that retries connection errors, time-outs, 429 and 5xx (every method: our POSTs are read-only
    queries), backing off exponentially and waiting as long as a ``Retry-After`` header says."""
    retry = Retry(
        total=max_retries, connect=max_retries, read=max_retries, status=max_retries, other=0,
        status_forcelist=RETRY_STATUSES, allowed_methods=None, backoff_factor=backoff_s, backoff_max=max_backoff_s,
        respect_retry_after_header=True, raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=max(pool_size, 1))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    session.headers["Accept"] = "application/json"
    return session


class HeaderAuth(requests.auth.AuthBase):
    """A static secret header, e.g. ``HeaderAuth("AERIES-CERT", certificate)``; ``repr`` never shows it."""

    def __init__(self, header: str, value: str):
        self.header, self._value = header, value

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers[self.header] = self._value
        return request

    def __repr__(self) -> str:
        return f"HeaderAuth({self.header!r}, ***)"


class OAuthClientCredentials(requests.auth.AuthBase):
    """OAuth2 client-credentials bearer token (RFC 6749 §4.4): client id and secret as HTTP Basic to ``token_url``.

    The token is shared by all threads and fetched again shortly before ``expires_in`` runs out, or once when the
    API answers 401 (``refresh``): many threads that saw the same stale token cause one fetch, not many.
    """

    EARLY_S = 60.0  # fetch a new token this long before the old one expires

    def __init__(self, *, token_url: str, client_id: str, client_secret: str, source: str = "sis",
                 timeout_s: float = 60.0, max_retries: int = 5, backoff_s: float = 0.5, max_backoff_s: float = 30.0):
        self.token_url, self.client_id, self._secret, self.source = token_url, client_id, client_secret, source
        self.timeout_s = timeout_s
        self._session = retrying_session(max_retries=max_retries, backoff_s=backoff_s, max_backoff_s=max_backoff_s,
                                         pool_size=1)
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.fetches = 0  # how many tokens were fetched (tests, and the progress line)

    def __repr__(self) -> str:
        return f"OAuthClientCredentials(token_url={self.token_url!r}, client_id=***)"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                self._fetch()
            return self._token  # type: ignore[return-value]

    def refresh(self, stale: str | None) -> None:
        """After a 401: fetch a new token, unless another thread already replaced ``stale``."""
        with self._lock:
            if self._token is None or self._token == stale:
                self._fetch()

    def _fetch(self) -> None:
        try:
            response = self._session.post(
                self.token_url, auth=(self.client_id, self._secret), data={"grant_type": "client_credentials"},
                headers={"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"},
                timeout=(CONNECT_TIMEOUT_S, self.timeout_s),
            )
        except requests.RequestException as error:
            raise SourceError(f"{self.source}: the token endpoint could not be reached ({type(error).__name__})") \
                from None
        if response.status_code in (400, 401, 403):
            raise SourceAccessError(self.source, "the OAuth token endpoint", response.status_code,
                                    "Check the client id and secret in the Airflow connection, and that the plugin "
                                    "is enabled.")
        if not response.ok:
            raise SourceError(f"{self.source}: the token endpoint answered HTTP {response.status_code}")
        try:
            body = response.json()
            self._token = str(body["access_token"])
            lifetime = float(body.get("expires_in") or 3600)
        except (ValueError, KeyError, TypeError):
            raise SourceError(f"{self.source}: the token endpoint's answer has no access_token") from None
        self._expires_at = time.monotonic() + max(lifetime - self.EARLY_S, lifetime / 2)
        self.fetches += 1


class _ResourceStats:
    __slots__ = ("requests", "records", "bytes", "first", "last")

    def __init__(self) -> None:
        self.requests = self.records = self.bytes = 0
        self.first = self.last = 0.0


class ApiClient:
    """JSON over HTTP(S) for one SIS source, with the behaviour described in the module docstring."""

    def __init__(self, *, source: str, base_url: str, auth: requests.auth.AuthBase, max_concurrency: int = 4,
                 timeout_s: float = 60.0, max_retries: int = 5, backoff_s: float = 0.5, max_backoff_s: float = 30.0,
                 access_hint: str = ""):
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.source = source
        self.base_url = base_url.rstrip("/") + "/"
        self.auth = auth
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.access_hint = access_hint
        self._session = retrying_session(max_retries=max_retries, backoff_s=backoff_s, max_backoff_s=max_backoff_s,
                                         pool_size=max_concurrency)
        self._slots = threading.BoundedSemaphore(max_concurrency)  # the bound holds however map() calls nest
        self._lock = threading.Lock()
        self._stats: dict[str, _ResourceStats] = {}

    # -- requests ------------------------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return urljoin(self.base_url, path.lstrip("/"))

    def get_json(self, path: str, *, resource: str, params: dict | None = None) -> Any:
        return self._json("GET", path, resource=resource, params=params)

    def post_json(self, path: str, *, resource: str, params: dict | None = None, json: Any = None) -> Any:
        return self._json("POST", path, resource=resource, params=params, json=json)

    def post_bytes(self, path: str, *, resource: str, params: dict | None = None, json: Any = None) -> bytes:
        """The answer's body as it came (an adapter that parses pages itself, e.g. straight into Arrow)."""
        return self._send("POST", path, resource=resource, params=params, json=json).content

    def _json(self, method: str, path: str, *, resource: str, **kwargs: Any) -> Any:
        response = self._send(method, path, resource=resource, **kwargs)
        if not response.content:
            return None
        try:  # msgspec decodes a page of 1,000 records several times faster than the json module
            return msgspec.json.decode(response.content)
        except msgspec.DecodeError:
            raise SourceError(f"{self.source}: {resource} answered HTTP {response.status_code} with a body that is "
                              f"not JSON") from None

    def _send(self, method: str, path: str, *, resource: str, **kwargs: Any) -> requests.Response:
        refresh = getattr(self.auth, "refresh", None)
        for attempt in (1, 2):
            sent_token = getattr(self.auth, "_token", None)
            started = time.monotonic()
            with self._slots:
                try:
                    response = self._session.request(method, self.url(path), auth=self.auth,
                                                      timeout=(CONNECT_TIMEOUT_S, self.timeout_s), **kwargs)
                except requests.RequestException as error:  # retries exhausted on connection errors / time-outs
                    raise SourceError(f"{self.source}: {resource} could not be read ({type(error).__name__} after "
                                      f"retries)") from None
            self._count(resource, started, len(response.content))
            if response.status_code == 401 and attempt == 1 and refresh is not None:
                log.info("%s: %s answered 401; fetching a new token once", self.source, resource)
                refresh(sent_token)
                continue
            break
        if response.status_code in (401, 403, 404):
            raise SourceAccessError(self.source, resource, response.status_code, self.access_hint)
        if not response.ok:
            raise SourceError(f"{self.source}: {resource} answered HTTP {response.status_code}"
                              + (" after retries" if response.status_code in RETRY_STATUSES else ""))
        return response

    # -- concurrency ---------------------------------------------------------------------------------------------
    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[fn(item) for item in items]`` on up to ``max_concurrency`` threads, results in the items' order; the
        first exception is raised (the others' work is abandoned)."""
        items = list(items)
        if len(items) <= 1 or self.max_concurrency == 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(items)),
                                thread_name_prefix=f"{self.source}-read") as pool:
            futures = [pool.submit(fn, item) for item in items]
            try:
                return [future.result() for future in futures]
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

    # -- progress ------------------------------------------------------------------------------------------------
    def _count(self, resource: str, started: float, size: int) -> None:
        now = time.monotonic()
        with self._lock:
            stats = self._stats.setdefault(resource, _ResourceStats())
            stats.requests += 1
            stats.bytes += size
            stats.first = stats.first or started
            stats.last = now

    def progress(self, resource: str, *, records: int) -> None:
        with self._lock:
            self._stats.setdefault(resource, _ResourceStats()).records += records

    @property
    def stats(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {name: {"requests": s.requests, "records": s.records, "bytes": s.bytes,
                           "seconds": round(max(s.last - s.first, 0.0), 3)} for name, s in sorted(self._stats.items())}

    @property
    def pull_seconds(self) -> float:
        """Wall time from the first request sent to the last answer received, all resources together."""
        with self._lock:
            spans = [(s.first, s.last) for s in self._stats.values() if s.requests]
        return round(max(last for _, last in spans) - min(first for first, _ in spans), 3) if spans else 0.0

    def log_progress(self) -> None:
        for name, s in self.stats.items():
            log.info("%s %s: %d request(s), %d record(s), %.1f MB, %.1f s", self.source, name, s["requests"],
                     s["records"], s["bytes"] / 1e6, s["seconds"])

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
