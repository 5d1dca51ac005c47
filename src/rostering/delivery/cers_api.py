"""Upload CERS student-group files to the receiver's import API and follow each import to its end.

The delivery kind ``cers_api`` (rostering.pipeline.DELIVERIES). For every payload file:

1. an OAuth2 password-grant token (vendor client id + secret and the district's system user, all from the Airflow
   connection), reused until it is about to expire;
2. ``POST {imports_path}`` (default ``/groups/imports``) with the file as multipart field ``file`` and
   ``?filename=&batch=`` -- the batch is a stable id of (run, file, content);
3. ``GET {status_path}`` (default ``/imports/{id}``) after ``first_poll_s``, then at doubling intervals up to
   ``poll_interval_s``, until PROCESSED or a failure status
   (INVALID, BAD_FORMAT, BAD_DATA, UNAUTHORIZED, UNKNOWN_SCHOOL, PIPELINE_FAILURE), at most ``poll_timeout_s``.

The connection (``conn_id`` in config/vendors/cers.yaml, type http)::

    {"conn_type": "http", "host": "https://cers-api.example.org/rdw", "login": "<system user>",
     "password": "<system user password>",
     "extra": {"token_url": "https://sso.example.org/oauth2/token", "client_id": "<vendor client id>",
               "client_secret": "<vendor client secret>"}}

``host`` (+ ``port``) is the API base URL; ``token_url`` may be absolute or relative to it. Other extras are the
HTTP provider's usual ones (``timeout``, ``verify``, ``proxies``, ...) or request headers. The credentials come
from TOMS and are renewed every year (docs/cers.md: rotation).

Errors and retries
    Inside one task attempt each request is retried with exponential backoff (``backoff_s`` doubling up to
    ``max_backoff_s``, ``max_attempts`` tries) on time-outs, connection errors, 5xx and 429 (``Retry-After`` is
    honoured). A 401 gets ONE new token and one more try; a second 401 fails. Never retried: ``invalid_client`` /
    ``invalid_grant`` at the token endpoint, 401 after a fresh token, 403 (the system user lacks group-write
    permission for a school in the file), other 4xx, and imports that end in a failure status such as BAD_DATA.
    ``is_transient`` tells the Airflow task which of these a later task retry can fix.

Safe retries
    Every file's outcome is written to ``<run>/reports/cers_imports.json`` as it happens. A retried task skips
    files whose identical content already reached PROCESSED in this run, resumes polling an import that was
    accepted but not finished, and, when a POST's outcome is unknown (time-out, 5xx), looks the batch up
    (``GET {imports_path}?batch=``) before sending the file again -- so a file is never uploaded twice in a run
    once the receiver has it.

What is logged
    File names, import ids, statuses and the receiver's messages after sanitising: the local stand-in only ever
    says ``Row: N Failure: <rule>`` and ``N group(s) accepted for <CDS code>.``, but the real receiver may quote a
    value, so e-mail addresses, 10-digit numbers (SSIDs) and quoted text are replaced before a message reaches a
    log, an exception, XCom or the run summary (``sanitise_message``). Tokens, secrets and response bodies never.
"""
from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import json
import logging
import os
import re
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import requests

from rostering.csvio import sha256_of

log = logging.getLogger(__name__)

LEDGER = "cers_imports.json"
PROCESSED = "PROCESSED"
PENDING = ("ACCEPTED",)
FAILED = ("INVALID", "BAD_FORMAT", "BAD_DATA", "UNAUTHORIZED", "UNKNOWN_SCHOOL", "PIPELINE_FAILURE")
RECEIVER_SIDE = frozenset({"PIPELINE_FAILURE"})  # the receiver's own processing failed: sending again may work
CONNECTION_SETTINGS = frozenset({"token_url", "client_id", "client_secret"})
MAX_MESSAGE_LINES = 50


# -- errors ------------------------------------------------------------------------------------------------------


class CersError(Exception):
    """Base class. Messages are value-free: statuses, ids, file names, sanitised receiver messages."""


class CersTransientError(CersError):
    """The receiver is unavailable or slow; a later task retry can succeed."""


class CersAuthError(CersError):
    """Credentials refused (invalid_client / invalid_grant, or 401 with a fresh token). Fix the connection."""


class CersForbiddenError(CersError):
    """403: the system user may not write groups for a school in the file (a TOMS role to fix)."""


class CersRequestError(CersError):
    """Any other refusal or an answer we cannot use (4xx, malformed JSON)."""


class CersImportFailed(CersError):
    """At least one import ended in a failure status (e.g. BAD_DATA); the message lists them with the reasons.

    Permanent, except when every failure is the receiver's own PIPELINE_FAILURE: then a task retry uploads again.
    """

    def __init__(self, message: str, statuses: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.statuses = statuses

    @property
    def transient(self) -> bool:
        return bool(self.statuses) and set(self.statuses) <= RECEIVER_SIDE


def is_transient(exc: BaseException) -> bool:
    """True when retrying the delivery task later may succeed; False when a person has to fix something first."""
    if isinstance(exc, CersImportFailed):
        return exc.transient
    return isinstance(exc, (CersTransientError, requests.ConnectionError, requests.Timeout))


# -- options -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CersApiOptions:
    imports_path: str = "/groups/imports"
    status_path: str = "/imports/{id}"
    token_url: str | None = None  # overrides the connection's extra.token_url
    request_timeout_s: float = 120.0
    max_attempts: int = 5
    backoff_s: float = 2.0
    max_backoff_s: float = 120.0
    first_poll_s: float = 1.0  # the first status check; the wait doubles up to poll_interval_s
    poll_interval_s: float = 5.0
    poll_timeout_s: float = 1800.0
    token_refresh_margin_s: float = 60.0

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> "CersApiOptions":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"delivery (cers_api): unknown option(s) {unknown}; known: {sorted(known)}")
        return cls(**options)


# -- message sanitising ------------------------------------------------------------------------------------------

_ROW = re.compile(r"^\s*Row:\s*(\d+)\s+Failure:\s*(.*)$", re.IGNORECASE)
_EMAIL = re.compile(r"[^\s,;:'\"<>()]+@[^\s,;:'\"<>()]+")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`")
_SSID_LIKE = re.compile(r"(?<!\d)\d{10}(?!\d)")


def sanitise_message(message: str | None) -> str:
    """The receiver's message without values: row numbers and rule texts stay, anything that looks quoted, an
    e-mail address or a 10-digit number (an SSID) is replaced; at most 50 lines of at most 300 characters."""
    if not message:
        return ""
    lines = []
    for raw in str(message).splitlines():
        line = raw.strip()
        if not line:
            continue
        match = _ROW.match(line)
        text = match.group(2) if match else line
        text = _SSID_LIKE.sub("<ssid>", _EMAIL.sub("<email>", _QUOTED.sub("<value>", text)))[:300]
        lines.append(f"Row: {match.group(1)} Failure: {text}" if match else text)
    extra = len(lines) - MAX_MESSAGE_LINES
    return "\n".join(lines[:MAX_MESSAGE_LINES] + ([f"(+{extra} more lines)"] if extra > 0 else []))


# -- the HTTP client ---------------------------------------------------------------------------------------------


def _hook_class():
    from airflow.providers.http.hooks.http import HttpHook

    class CersHttpHook(HttpHook):
        """HttpHook for the CERS API.

        Differences from the plain hook: the connection's login/password are the OAuth2 system user, so they are
        never sent as Basic auth; and the extras ``token_url``, ``client_id``, ``client_secret`` are settings,
        never request headers (the plain hook turns every unknown extra into a header).
        """

        def _extract_auth(self, connection):  # noqa: ANN001 - HttpHook's signature
            return None

        def _configure_session_from_extra(self, session, connection, extra_options):  # noqa: ANN001
            filtered = SimpleNamespace(
                extra_dejson={k: v for k, v in connection.extra_dejson.items() if k not in CONNECTION_SETTINGS},
                host=connection.host,
            )
            return super()._configure_session_from_extra(session, filtered, extra_options)

    return CersHttpHook


def _retry_after(response: requests.Response | None) -> float | None:
    value = response.headers.get("Retry-After") if response is not None else None
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())


def _json(response: requests.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise CersRequestError(f"{what}: the receiver's answer (HTTP {response.status_code}) is not JSON") from None


class CersClient:
    """The receiver's import API over Airflow's HTTP provider (one requests session per delivery)."""

    def __init__(self, conn_id: str, options: CersApiOptions | None = None, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.conn_id = conn_id
        self.options = options or CersApiOptions()
        self._sleep = sleep
        self.hook = _hook_class()(method="GET", http_conn_id=conn_id)
        connection = self.hook.get_connection(conn_id)
        extra = connection.extra_dejson
        self._client_id = str(extra.get("client_id") or "")
        self._client_secret = str(extra.get("client_secret") or "")
        self._username = connection.login or ""
        self._password = connection.password or ""
        missing = [name for name, value in (("extra.client_id", self._client_id),
                                            ("extra.client_secret", self._client_secret),
                                            ("login", self._username), ("password", self._password)) if not value]
        token_url = self.options.token_url or extra.get("token_url")
        if not token_url:
            missing.append("extra.token_url")
        if missing:
            raise ValueError(f"connection {conn_id!r} lacks {', '.join(missing)} (CERS OAuth2 password grant)")
        self.session = self.hook.get_conn()
        self.base_url = self.hook.base_url.rstrip("/")
        self.token_url = token_url if "://" in str(token_url) else self.url(str(token_url))
        self._token: str | None = None
        self._token_expires = 0.0

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    # -- one request -------------------------------------------------------------------------------------------

    def _once(self, method: str, url: str, *, auth: bool = True, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        headers.setdefault("Accept", "application/json")
        prepared = self.session.prepare_request(requests.Request(method, url, headers=headers, **kwargs))
        return self.hook.run_and_check(self.session, prepared,
                                       {"check_response": False, "timeout": self.options.request_timeout_s})

    def _authorised(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One request; a 401 gets one fresh token and one more try, a second 401 is final."""
        response = self._once(method, url, **kwargs)
        if response.status_code == 401:
            log.warning("CERS %s %s: 401, fetching a new token and trying once more", method, self._path(url))
            self._token = None
            response = self._once(method, url, **kwargs)
            if response.status_code == 401:
                raise CersAuthError(f"{method} {self._path(url)}: 401 Unauthorized again with a fresh token; check "
                                    f"the system user in connection {self.conn_id!r} (TOMS credentials expire "
                                    "yearly)")
        return response

    def _path(self, url: str) -> str:
        return url[len(self.base_url):] if url.startswith(self.base_url) else url.split("?", 1)[0]

    def _wait(self, attempt: int, response: requests.Response | None) -> None:
        delay = min(self.options.backoff_s * (2 ** attempt), self.options.max_backoff_s)
        after = _retry_after(response)
        if after is not None:
            delay = min(max(after, 0.0), self.options.max_backoff_s)
        self._sleep(delay)

    def _transient(self, response: requests.Response) -> bool:
        return response.status_code == 429 or response.status_code >= 500

    def _check(self, response: requests.Response, what: str) -> requests.Response:
        if response.status_code == 403:
            raise CersForbiddenError(f"{what}: 403 Forbidden -- the system user lacks group-write permission for a "
                                     "school in the file (grant the role in TOMS)")
        if response.status_code >= 400:
            detail = ""
            try:
                body = response.json()
                detail = sanitise_message(body.get("message") or body.get("error") or "") if isinstance(
                    body, dict) else ""
            except ValueError:
                pass
            raise CersRequestError(f"{what}: HTTP {response.status_code}" + (f": {detail}" if detail else ""))
        return response

    def send(self, method: str, url: str, *, what: str, **kwargs: Any) -> requests.Response:
        """An idempotent request with retries on time-outs, connection errors, 5xx and 429."""
        last: str = ""
        for attempt in range(self.options.max_attempts):
            response = None
            try:
                response = self._authorised(method, url, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as error:
                last = type(error).__name__
            else:
                if not self._transient(response):
                    return self._check(response, what)
                last = f"HTTP {response.status_code}"
            if attempt + 1 < self.options.max_attempts:
                log.warning("CERS %s: %s, retrying (%d/%d)", what, last, attempt + 1, self.options.max_attempts)
                self._wait(attempt, response)
        raise CersTransientError(f"{what}: {last} after {self.options.max_attempts} attempts")

    # -- token -----------------------------------------------------------------------------------------------

    def token(self) -> str:
        if self._token and time.monotonic() < self._token_expires:
            return self._token
        form = {"grant_type": "password", "username": self._username, "password": self._password,
                "client_id": self._client_id, "client_secret": self._client_secret}
        last = ""
        for attempt in range(self.options.max_attempts):
            response = None
            try:
                response = self._once("POST", self.token_url, auth=False, data=form)
            except (requests.ConnectionError, requests.Timeout) as error:
                last = type(error).__name__
            else:
                if response.status_code == 200:
                    body = _json(response, "token request")
                    if not isinstance(body, dict) or not body.get("access_token"):
                        raise CersRequestError("token request: the answer has no access_token")
                    lifetime = float(body.get("expires_in") or 300)
                    self._token = str(body["access_token"])
                    self._token_expires = time.monotonic() + max(lifetime - self.options.token_refresh_margin_s,
                                                                 lifetime / 2)
                    log.info("CERS: new access token for connection %s (valid %.0f s)", self.conn_id, lifetime)
                    return self._token
                if not self._transient(response):
                    error = ""
                    try:
                        body = response.json()
                        error = str(body.get("error") or "") if isinstance(body, dict) else ""
                    except ValueError:
                        pass
                    if error in ("invalid_client", "invalid_grant", "unauthorized_client") or response.status_code in (
                            400, 401):
                        raise CersAuthError(
                            f"token request refused ({error or response.status_code}): invalid_client = the "
                            "client id/secret, invalid_grant = the system user's login/password in connection "
                            f"{self.conn_id!r}; TOMS credentials are renewed every year (docs/cers.md)")
                    self._check(response, "token request")
                last = f"HTTP {response.status_code}"
            if attempt + 1 < self.options.max_attempts:
                log.warning("CERS token request: %s, retrying (%d/%d)", last, attempt + 1, self.options.max_attempts)
                self._wait(attempt, response)
        raise CersTransientError(f"token request: {last} after {self.options.max_attempts} attempts")

    # -- the import API --------------------------------------------------------------------------------------

    def find_batch(self, batch: str) -> dict[str, Any] | None:
        """The newest import of ``batch``, if the receiver has one."""
        response = self.send("GET", self.url(self.options.imports_path), what="batch lookup",
                             params={"batch": batch})
        found = _json(response, "batch lookup")
        if isinstance(found, dict):  # a HAL page instead of a plain list
            found = found.get("_embedded", {}).get("imports", [])
        items = [i for i in found or [] if isinstance(i, dict) and i.get("batch") == batch and "id" in i]
        return max(items, key=lambda i: int(i["id"])) if items else None

    def upload(self, path: Path, *, batch: str) -> dict[str, Any]:
        """POST the file; retried like ``send``, but before re-sending, the batch is looked up (no double upload)."""
        what = f"upload of {path.name}"
        data = path.read_bytes()
        last = ""
        for attempt in range(self.options.max_attempts):
            if attempt:
                existing = self.find_batch(batch)
                if existing:
                    log.info("CERS %s: the receiver already has it as import %s; not sending it again", what,
                             existing.get("id"))
                    return existing
            response = None
            try:
                response = self._authorised(
                    "POST", self.url(self.options.imports_path), params={"filename": path.name, "batch": batch},
                    files={"file": (path.name, data, "text/csv")})
            except (requests.ConnectionError, requests.Timeout) as error:
                last = type(error).__name__
            else:
                if not self._transient(response):
                    resource = _json(self._check(response, what), what)
                    if not isinstance(resource, dict) or "id" not in resource or "status" not in resource:
                        raise CersRequestError(f"{what}: the answer is not an import resource")
                    return resource
                last = f"HTTP {response.status_code}"
            if attempt + 1 < self.options.max_attempts:
                log.warning("CERS %s: %s, retrying (%d/%d)", what, last, attempt + 1, self.options.max_attempts)
                self._wait(attempt, response)
        raise CersTransientError(f"{what}: {last} after {self.options.max_attempts} attempts")

    def status(self, import_id: Any) -> dict[str, Any]:
        url = self.url(self.options.status_path.format(id=import_id))
        resource = _json(self.send("GET", url, what=f"status of import {import_id}"), "import status")
        if not isinstance(resource, dict) or "status" not in resource:
            raise CersRequestError(f"status of import {import_id}: the answer is not an import resource")
        return resource

    def follow(self, resource: dict[str, Any], *, on_change: Callable[[dict[str, Any]], None] = lambda r: None
               ) -> dict[str, Any]:
        """Poll until the import is PROCESSED or failed (or ``poll_timeout_s`` passes: transient)."""
        deadline = time.monotonic() + self.options.poll_timeout_s
        status = resource.get("status")
        wait = min(self.options.first_poll_s, self.options.poll_interval_s)
        while status in PENDING:
            if time.monotonic() >= deadline:
                raise CersTransientError(f"import {resource.get('id')} still {status} after "
                                         f"{self.options.poll_timeout_s:.0f} s; a task retry resumes polling it")
            self._sleep(wait)
            wait = min(wait * 2, self.options.poll_interval_s)
            resource = self.status(resource["id"])
            if resource.get("status") != status:
                on_change(resource)
            status = resource.get("status")
        return resource


# -- per-run ledger ----------------------------------------------------------------------------------------------


@dataclass
class ImportRecord:
    file: str
    sha256: str
    batch: str
    import_id: Any = None
    status: str = "NOT_SENT"  # NOT_SENT | UPLOADING | ACCEPTED | PROCESSED | a failure status
    message: str = ""  # sanitised
    updated: str = ""
    attempt: int = 1  # a file sent again after a failed import gets a new batch


class Ledger:
    """``<run>/reports/cers_imports.json``: each file's import, written atomically after every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, ImportRecord] = {}
        if path.exists():
            for entry in json.loads(path.read_text())["imports"]:
                self.records[entry["file"]] = ImportRecord(**entry)

    def save(self, record: ImportRecord) -> None:
        record.updated = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self.records[record.file] = record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"imports": [asdict(r) for r in sorted(self.records.values(), key=lambda r: r.file)]},
                      handle, indent=2, sort_keys=True)
        os.replace(tmp, self.path)


def ledger_path(files: list[Path]) -> Path:
    """The run's ledger: ``<run>/reports/cers_imports.json`` beside ``<run>/payload/`` (the files' folder)."""
    return Path(files[0]).resolve().parent.parent / "reports" / LEDGER


def batch_id(run_folder: str, name: str, sha256: str, attempt: int = 1) -> str:
    """Stable per (run, file, content, attempt): how a retried task finds an upload whose answer it never saw."""
    key = f"{run_folder}\n{name}\n{sha256}" + (f"\n{attempt}" if attempt > 1 else "")
    return "rostering-" + hashlib.sha256(key.encode()).hexdigest()[:24]


def _outcome(record: ImportRecord) -> dict[str, Any]:
    return {"file": record.file, "import_id": record.import_id, "status": record.status, "message": record.message}


def deliver_payload(delivery, files: list[Path], *, client: CersClient | None = None) -> dict[str, Any]:
    """Upload every file and follow its import; the delivery interface (rostering.pipeline.DELIVERIES).

    Returns ``{"destination", "imports": [{file, import_id, status, message}]}``. Raises ``CersImportFailed`` when
    an import ends in a failure status (the other files are still uploaded: each file only replaces the groups it
    names), ``CersAuthError`` / ``CersForbiddenError`` at once, ``CersTransientError`` when the receiver stays
    unavailable (the task retry resumes from the ledger).
    """
    options = CersApiOptions.from_options(dict(delivery.options))
    destination = f"cers_api://{delivery.conn_id}{options.imports_path}"
    paths = sorted((Path(f) for f in files), key=lambda p: p.name)
    if not paths:
        return {"destination": destination, "imports": []}
    ledger = Ledger(ledger_path(paths))
    run_folder = ledger.path.parent.parent.name
    client = client or CersClient(delivery.conn_id, options)
    outcomes: list[dict[str, Any]] = []

    def keep(record: ImportRecord, resource: dict[str, Any]) -> None:
        record.import_id = resource.get("id")
        record.status = str(resource.get("status"))
        record.message = sanitise_message(resource.get("message"))
        ledger.save(record)
        log.info("CERS import %s of %s: %s%s", record.import_id, record.file, record.status,
                 ("\n  " + record.message.replace("\n", "\n  ")) if record.message else "")

    for path in paths:
        sha = sha256_of(path)
        record = ledger.records.get(path.name)
        if record is None or record.sha256 != sha:
            record = ImportRecord(path.name, sha, batch_id(run_folder, path.name, sha))
        if record.status == PROCESSED:
            log.info("CERS: %s already PROCESSED as import %s in this run; not sent again", path.name,
                     record.import_id)
            outcomes.append(_outcome(record))
            continue
        if record.status in FAILED:  # sent before and refused: a new upload, under a new batch
            record = ImportRecord(path.name, sha, batch_id(run_folder, path.name, sha, record.attempt + 1),
                                  attempt=record.attempt + 1)
        resource = None
        if record.status in PENDING and record.import_id is not None:
            resource = client.status(record.import_id)  # accepted by an earlier attempt: follow it
        elif record.status == "UPLOADING":
            resource = client.find_batch(record.batch)  # an earlier attempt sent it but never saw the answer
        if resource is None:
            record.status = "UPLOADING"
            ledger.save(record)
            log.info("CERS: uploading %s (%d bytes) as batch %s", path.name, path.stat().st_size, record.batch)
            resource = client.upload(path, batch=record.batch)
        keep(record, resource)
        resource = client.follow(resource, on_change=lambda r, rec=record: keep(rec, r))
        if str(resource.get("status")) != record.status or resource.get("id") != record.import_id:
            keep(record, resource)
        outcomes.append(_outcome(record))

    failed = [o for o in outcomes if o["status"] != PROCESSED]
    if failed:
        lines = [f"{o['file']}: import {o['import_id']} {o['status']}" + (
            ("\n    " + o["message"].replace("\n", "\n    ")) if o["message"] else "") for o in failed]
        raise CersImportFailed(f"{len(failed)} of {len(outcomes)} CERS import(s) failed:\n  " + "\n  ".join(lines),
                               tuple(o["status"] for o in failed))
    return {"destination": destination, "imports": outcomes}
