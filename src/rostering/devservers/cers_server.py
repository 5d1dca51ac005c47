"""A local CERS student-group import endpoint on loopback: the stand-in for the state's API (demo and tests).

It is a STAND-IN. The state's own API document for SIS vendors is not public; this server follows the open-source
Smarter Balanced RDW import contract (RDW_Ingest: ``POST /groups/imports``, ``GET /imports/{id}``, statuses
ACCEPTED -> PROCESSED or BAD_DATA, ...) that CERS is built on, and the client (rostering.delivery.cers_api) keeps
every path configurable for the production endpoint. A real HTTPS server (stdlib ``http.server``, one thread per
request) -- the client talks to it exactly as it would to the state, TLS and certificate checks included: at start
it makes a throw-away CA and a certificate for 127.0.0.1 and localhost signed by it; ``server.ca_path`` is the CA's
PEM file, the value for the connection's ``extra.verify`` (the client refuses plain http and ``verify: false``).

Contract
    ``POST {token_path}`` (default ``/auth/token``): OAuth2 password grant, form fields ``grant_type=password``,
    ``username``, ``password``, ``client_id``, ``client_secret``. 200 ``{"access_token", "token_type": "bearer",
    "expires_in"}``; 401 ``{"error": "invalid_client"}`` (client id/secret), 400 ``{"error": "invalid_grant"}``
    (user/password), 400 ``unsupported_grant_type``. Tokens expire after ``token_lifetime_s`` (and, when
    ``token_max_uses`` is set, after that many API requests) -> 401 with ``WWW-Authenticate: Bearer
    error="invalid_token"``. With ``refresh_tokens=True`` the answer also has a ``refresh_token`` (valid
    ``refresh_token_lifetime_s``, used once: the refresh answer brings a new one), taken by ``grant_type=
    refresh_token`` with the client id/secret; an unknown, used or expired one is 400 ``invalid_grant``.

    ``POST /groups/imports``: multipart field ``file``, or a raw body (``Content-Type: application/csv`` or
    ``text/csv``) with ``?filename=&batch=``. 202 + the import resource. The file is validated at once with the
    receiver's rules; any error makes the whole import ``BAD_DATA`` with ``Row: N Failure: ...`` lines in
    ``message``. 403 when the user may not write groups for a school in the file. An identical file (same MD5
    digest) whose earlier import reached PROCESSED is not processed again: the earlier import is returned.

    ``GET /imports/{id}``: the resource. ACCEPTED becomes PROCESSED after ``process_after_polls`` reads and
    ``process_delay_s`` seconds; processing replaces the students and users of every group the file names (groups
    not named are untouched) and reports ``N group(s) accepted for <school>.`` per school; a school outside
    ``known_schools`` makes the import UNKNOWN_SCHOOL.

    ``GET /groups/imports?batch=&status=&after=&before=&limit=``: imports matching the filters (at least one).

Messages never quote a value of the file (only row numbers and rule texts) -- unlike, possibly, the real receiver;
the client sanitises what it logs anyway (docs/cers.md).

Fault injection (thread-safe, counted down per matching request)::

    server.fail_next(2, status=503)                          # the next 2 requests answer 503
    server.fail_next(1, status=429, retry_after="1")         # ... 429 with Retry-After: 1
    server.fail_next(1, status=307, location="http://...")   # ... a redirect
    server.slow_next(1, seconds=2.0)                         # sleep before answering (client time-outs)
    server.slow_next(1, seconds=2.0, after_handling=True)    # handle (e.g. accept the upload), then sleep
    server.token_max_uses = 1                                # every token dies after one API request
    server.expire_all_tokens()
    server.fail_processing_next(1, status="PIPELINE_FAILURE")  # the next import processed ends so instead

Inspection: ``server.url`` (``https://127.0.0.1:<port>``), ``server.ca_path``, ``server.groups`` (what CERS now
holds, by (school, group name lower-case, year)), ``server.imports``, ``server.requests`` (method, path, status,
header names, auth scheme, the grant type of a token request, ``at``: ``time.monotonic()`` when it arrived --
never header values or bodies).

Command line (foreground until SIGTERM/SIGINT)::

    python -m rostering.devservers.cers_server --port 8089 --client-id ID --user NAME   # secrets from env:
    ROSTERING_CERS_CLIENT_SECRET, ROSTERING_CERS_PASSWORD                             # prints the CA file's path
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import email.parser
import email.policy
import hashlib
import hmac
import io
import ipaddress
import json
import logging
import os
import re
import secrets
import shutil
import signal
import ssl
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import parse_qs, urlsplit

__all__ = ["LocalCersServer", "main"]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
HEADER = ("group_name", "school_natural_id", "school_year", "subject_code", "student_ssid", "group_user_login")
SIZES = {"group_name": 255, "school_natural_id": 40, "subject_code": 10, "student_ssid": 65, "group_user_login": 255}
SUBJECTS = {"ela", "math", "all", "elpac"}
MAX_STUDENTS = 200
FAILED = ("INVALID", "BAD_FORMAT", "BAD_DATA", "UNAUTHORIZED", "UNKNOWN_SCHOOL", "PIPELINE_FAILURE")


@dataclass
class _Token:
    username: str
    expires: float
    uses: int = 0
    revoked: bool = False


@dataclass
class _Import:
    id: int
    digest: str
    batch: str
    filename: str
    creator: str
    status: str
    message: str
    created: str
    updated: str
    content: bytes = field(repr=False, default=b"")
    reads: int = 0
    accepted_at: float = 0.0


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def validate_group_file(content: bytes) -> tuple[list[str], list[list[str]]]:
    """The receiver's rules: (failure messages, parsed data rows). Messages quote row numbers, never values."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return ["Row: 1 Failure: file is not UTF-8"], []
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or [h.strip().lower() for h in rows[0]] != list(HEADER):
        return [f"Row: 1 Failure: header must be {','.join(HEADER)}"], []
    failures: list[str] = []
    data: list[list[str]] = []
    seen_schools: set[str] = set()
    seen_groups: set[tuple[str, str, str]] = set()
    previous: tuple[str, str, str] | None = None
    subjects: dict[tuple[str, str, str], str] = {}
    students: dict[tuple[str, str, str], set[str]] = {}
    for number, raw in enumerate(rows[1:], start=2):
        if len(raw) != len(HEADER):
            failures.append(f"Row: {number} Failure: expected {len(HEADER)} fields")
            continue
        row = [value.strip() for value in raw]
        name, school, year, subject, ssid, login = row
        for column, value in zip(HEADER, row):
            if column in SIZES and len(value) > SIZES[column]:
                failures.append(f"Row: {number} Failure: {column} is longer than {SIZES[column]} characters")
        missing = [c for c, v in zip(HEADER[:3], row[:3]) if not v]
        if missing:
            failures.extend(f"Row: {number} Failure: {c} is required" for c in missing)
            continue
        if not re.fullmatch(r"\d+", year):
            failures.append(f"Row: {number} Failure: school_year must be an integer")
        if subject and subject.lower() not in SUBJECTS:
            failures.append(f"Row: {number} Failure: subject_code is not a known subject")
        if login and "@" not in login:
            failures.append(f"Row: {number} Failure: group_user_login is not an e-mail address")
        key = (school, name.lower(), year)
        if key != previous:
            if key in seen_groups or (previous is not None and school != previous[0] and school in seen_schools):
                failures.append(f"Row: {number} Failure: rows must be sorted by school, group and year")
            seen_groups.add(key)
            seen_schools.add(school)
            previous = key
        if subject:
            earlier = subjects.setdefault(key, subject.lower())
            if earlier != subject.lower():
                failures.append(f"Row: {number} Failure: subject_code differs from an earlier row of the group")
        if ssid:
            members = students.setdefault(key, set())
            members.add(ssid)
            if len(members) == MAX_STUDENTS + 1:
                failures.append(f"Row: {number} Failure: group has more than {MAX_STUDENTS} students")
        data.append(row)
    return failures, data


def make_tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A CA made for this run and a server certificate it signs for 127.0.0.1 and localhost (serverAuth):
    ``(ca.pem, server.pem, server.key)`` in ``folder``. A real CA/leaf pair, so strict verifiers accept it too."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)
    valid = {"not_valid_before": now - dt.timedelta(minutes=5), "not_valid_after": now + dt.timedelta(days=30)}
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rostering local CERS stand-in CA")])
    ca = (x509.CertificateBuilder(subject_name=ca_name, issuer_name=ca_name, public_key=ca_key.public_key(),
                                  serial_number=x509.random_serial_number(), **valid)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder(subject_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]),
                                    issuer_name=ca_name, public_key=key.public_key(),
                                    serial_number=x509.random_serial_number(), **valid)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST)),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return ca_path, cert_path, key_path


class LocalCersServer:
    """The CERS import API on 127.0.0.1 in a background thread. Context manager, or ``start()``/``stop()``.

    HTTPS only: ``tls_dir`` keeps the generated CA and certificate (default: a temporary folder, removed at stop).
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        users: dict[str, str],
        port: int = 0,
        token_path: str = "/auth/token",
        token_lifetime_s: float = 3600.0,
        process_after_polls: int = 1,
        process_delay_s: float = 0.0,
        known_schools: set[str] | None = None,
        user_schools: dict[str, set[str]] | None = None,
        tls_dir: Path | None = None,
        refresh_tokens: bool = False,
        refresh_token_lifetime_s: float = 86400.0,
    ) -> None:
        self.host = HOST
        self._tls_dir = Path(tls_dir) if tls_dir is not None else None
        self._own_tls_dir = False
        self.ca_path: Path | None = None  # set at start
        self.port = port
        self.token_path = token_path
        self.token_lifetime_s = token_lifetime_s
        self.token_max_uses: int | None = None
        self.refresh_tokens = refresh_tokens
        self.refresh_token_lifetime_s = refresh_token_lifetime_s
        self._refresh: dict[str, _Token] = {}
        self._processing_faults: list[str] = []
        self.process_after_polls = process_after_polls
        self.process_delay_s = process_delay_s
        self.known_schools = known_schools
        self.user_schools = user_schools or {}
        self._client = (client_id, client_secret)
        self._users = dict(users)
        self._lock = threading.RLock()
        self._tokens: dict[str, _Token] = {}
        self._faults: list[dict[str, Any]] = []
        self.imports: dict[int, _Import] = {}
        self.groups: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self._next_id = 34000
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def token_url(self) -> str:
        return self.url + self.token_path

    def start(self) -> "LocalCersServer":
        if self._httpd is not None:
            raise RuntimeError("server already started")
        owner = self

        class Handler(_Handler):
            server_owner = owner

        if self._tls_dir is None:
            self._tls_dir, self._own_tls_dir = Path(tempfile.mkdtemp(prefix="cers-standin-tls-")), True
        self.ca_path, cert_path, key_path = make_tls_files(self._tls_dir)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert_path, key_path)
        key_path.unlink()  # loaded; the private key need not outlive this line on disk
        self._httpd = _QuietServer((self.host, self.port), Handler)
        self._httpd.tls_context = context
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="LocalCersServer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._httpd = None
        self._thread = None
        if self._own_tls_dir and self._tls_dir is not None:
            shutil.rmtree(self._tls_dir, ignore_errors=True)
            self._tls_dir, self._own_tls_dir = None, False

    def __enter__(self) -> "LocalCersServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- fault injection -----------------------------------------------------------------------------------------

    def fail_next(self, count: int, *, status: int = 503, retry_after: str | None = None,
                  location: str | None = None, path: str | None = None, method: str | None = None) -> None:
        """Answer the next ``count`` requests (whose path starts with ``path`` and whose method is ``method``, if
        given) with ``status`` (and a ``Location`` header: a redirect), without handling them."""
        with self._lock:
            self._faults.append({"kind": "fail", "left": count, "status": status, "retry_after": retry_after,
                                 "location": location, "path": path, "method": method})

    def slow_next(self, count: int, *, seconds: float, after_handling: bool = False, path: str | None = None,
                  method: str | None = None) -> None:
        """Sleep ``seconds`` before answering the next ``count`` requests (after handling them, if asked)."""
        with self._lock:
            self._faults.append({"kind": "slow", "left": count, "seconds": seconds, "after": after_handling,
                                 "path": path, "method": method})

    def fail_processing_next(self, count: int, *, status: str = "PIPELINE_FAILURE") -> None:
        """The next ``count`` imports to be processed end in ``status`` instead (the receiver's own failure)."""
        with self._lock:
            self._processing_faults.extend([status] * count)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults = []
            self._processing_faults = []

    def expire_all_tokens(self) -> None:
        with self._lock:
            for token in self._tokens.values():
                token.revoked = True

    def revoke_refresh_tokens(self) -> None:
        with self._lock:
            self._refresh.clear()

    def _take_faults(self, method: str, path: str) -> tuple[dict | None, dict | None]:
        with self._lock:
            taken: dict[str, dict | None] = {"fail": None, "slow": None}
            for fault in self._faults:
                if fault["left"] > 0 and taken[fault["kind"]] is None and (
                        fault["path"] is None or path.startswith(fault["path"])) and (
                        fault["method"] is None or fault["method"] == method):
                    fault["left"] -= 1
                    taken[fault["kind"]] = fault
            self._faults = [f for f in self._faults if f["left"] > 0]
            return taken["fail"], taken["slow"]

    # -- state ---------------------------------------------------------------------------------------------------

    def resource(self, imp: _Import) -> dict[str, Any]:
        return {
            "id": imp.id, "content": "GROUPS", "contentType": "text/csv", "status": imp.status,
            "digest": imp.digest, "batch": imp.batch, "creator": imp.creator, "created": imp.created,
            "updated": imp.updated, "message": imp.message,
            "_links": {"self": {"href": f"{self.url}/imports/{imp.id}"}},
        }

    def issue_token(self, username: str) -> tuple[str, float]:
        value = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[value] = _Token(username, time.monotonic() + self.token_lifetime_s)
        return value, self.token_lifetime_s

    def issue_refresh_token(self, username: str) -> str:
        value = secrets.token_urlsafe(24)
        with self._lock:
            self._refresh[value] = _Token(username, time.monotonic() + self.refresh_token_lifetime_s)
        return value

    def use_refresh_token(self, value: str) -> str | None:
        """The user a valid refresh token was issued to (the token is used up), or None."""
        with self._lock:
            token = self._refresh.pop(value, None)
            if token is None or token.revoked or time.monotonic() >= token.expires:
                return None
            return token.username

    def check_token(self, header: str | None) -> tuple[str | None, str]:
        """(username, "") for a valid bearer token, else (None, why)."""
        if not header or not header.startswith("Bearer "):
            return None, "missing bearer token"
        with self._lock:
            token = self._tokens.get(header[len("Bearer "):].strip())
            if token is None:
                return None, "unknown token"
            if token.revoked or time.monotonic() >= token.expires or (
                    self.token_max_uses is not None and token.uses >= self.token_max_uses):
                return None, "the access token expired"
            token.uses += 1
            return token.username, ""

    def check_client(self, client_id: str, client_secret: str) -> bool:
        expected_id, expected_secret = self._client
        return hmac.compare_digest(client_id.encode(), expected_id.encode()) & hmac.compare_digest(
            client_secret.encode(), expected_secret.encode())

    def check_user(self, username: str, password: str) -> bool:
        expected = self._users.get(username)
        if expected is None:
            hmac.compare_digest(password.encode(), password.encode())
            return False
        return hmac.compare_digest(expected.encode(), password.encode())

    def create_import(self, content: bytes, *, filename: str, batch: str, creator: str) -> tuple[int, dict[str, Any]]:
        digest = hashlib.md5(content).hexdigest()  # noqa: S324 - the receiver's content digest, not security
        failures, rows = validate_group_file(content)
        allowed = self.user_schools.get(creator)
        if not failures and allowed is not None and any(row[1] not in allowed for row in rows):
            return 403, {"message": "the user may not write student groups for a school in the file"}
        with self._lock:
            for earlier in self.imports.values():
                if earlier.digest == digest and earlier.status == "PROCESSED":
                    return 202, self.resource(earlier)
            self._next_id += 1
            now = _now_iso()
            imp = _Import(self._next_id, digest, batch, filename, creator,
                          "BAD_DATA" if failures else "ACCEPTED", "\n".join(failures), now, now, content,
                          accepted_at=time.monotonic())
            self.imports[imp.id] = imp
            if not failures and self.process_after_polls <= 0 and self.process_delay_s <= 0:
                self._process(imp)
            return 202, self.resource(imp)

    def read_import(self, import_id: int) -> dict[str, Any] | None:
        with self._lock:
            imp = self.imports.get(import_id)
            if imp is None:
                return None
            imp.reads += 1
            if (imp.status == "ACCEPTED" and imp.reads >= self.process_after_polls
                    and time.monotonic() - imp.accepted_at >= self.process_delay_s):
                self._process(imp)
            return self.resource(imp)

    def _process(self, imp: _Import) -> None:
        """Replace the members of every group the file names (the receiver's semantics)."""
        _, rows = validate_group_file(imp.content)
        schools = sorted({row[1] for row in rows})
        unknown = [s for s in schools if self.known_schools is not None and s not in self.known_schools]
        imp.updated = _now_iso()
        if self._processing_faults:
            imp.status, imp.message = self._processing_faults.pop(0), "the import could not be processed"
            return
        if unknown:
            imp.status, imp.message = "UNKNOWN_SCHOOL", f"{len(unknown)} school(s) in the file are not known"
            return
        named: dict[tuple[str, str, str], dict[str, Any]] = {}
        for name, school, year, subject, ssid, login in rows:
            group = named.setdefault((school, name.lower(), year), {
                "name": name, "school": school, "year": int(year), "subject": None, "students": set(),
                "users": set(), "import_id": imp.id})
            if subject:
                group["subject"] = None if subject.lower() == "all" else subject
            if ssid:
                group["students"].add(ssid)
            if login:
                group["users"].add(login)
        self.groups.update(named)
        per_school = {s: sum(1 for key in named if key[0] == s) for s in schools}
        imp.status = "PROCESSED"
        imp.message = "\n".join(f"{n} group(s) accepted for {s}." for s, n in per_school.items())
        imp.content = b""  # like the receiver: the payload is not kept once loaded

    def list_imports(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        filters = {k: v[0] for k, v in query.items() if k in ("status", "batch", "after", "before") and v}
        if not filters:
            return 400, {"message": "at least one of status, batch, after, before is required"}
        limit = int(query.get("limit", ["100"])[0])
        with self._lock:
            found = [self.resource(i) for i in sorted(self.imports.values(), key=lambda i: i.id)
                     if ("status" not in filters or i.status == filters["status"])
                     and ("batch" not in filters or i.batch == filters["batch"])
                     and ("after" not in filters or i.created > filters["after"])
                     and ("before" not in filters or i.created < filters["before"])]
        return 200, found[:limit]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    tls_context: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls_context is None:
            return super().finish_request(request, client_address)
        # The TLS handshake runs here, in the request's own thread: a slow or refusing client stalls nobody else.
        request.settimeout(60)
        with self.tls_context.wrap_socket(request, server_side=True) as tls:
            super().finish_request(tls, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (time-out tests) leaves a broken pipe behind: not worth a traceback on stderr.
        log.debug("cers server: connection from %s ended abruptly", client_address[0])


class _Handler(BaseHTTPRequestHandler):
    server_owner: LocalCersServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("cers server: %s", format % args)

    # -- plumbing --------------------------------------------------------------------------------------------

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: Any = None, headers: dict[str, str] | None = None) -> None:
        body = b"" if payload is None else json.dumps(payload).encode("utf-8")
        self._status = status
        self._record()  # before answering: a test that reads server.requests after the answer sees this request
        if self._hold:  # handled and recorded; the answer comes too late for the client
            time.sleep(self._hold)
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self._status = status

    def _dispatch(self, method: str) -> None:
        owner = self.server_owner
        self._at = time.monotonic()
        split = urlsplit(self.path)
        body = self._body() if method == "POST" else b""
        self._status = 0
        fail, slow = owner._take_faults(method, split.path)
        if slow and not slow["after"]:
            time.sleep(slow["seconds"])
        self._hold = slow["seconds"] if slow and slow["after"] else 0.0  # handled, then the answer is late
        self._recorded = False
        self._grant: str | None = None
        self._method, self._path = method, split.path
        try:
            if fail:
                headers = {"Retry-After": fail["retry_after"]} if fail["retry_after"] else {}
                if fail["location"]:
                    headers["Location"] = fail["location"]
                return self._send(fail["status"], {"message": HTTPStatus(fail["status"]).phrase}, headers)
            self._route(method, split.path, parse_qs(split.query), body)
        finally:
            self._record()

    def _record(self) -> None:
        if self._recorded:
            return
        self._recorded = True
        auth = self.headers.get("Authorization") or ""
        owner = self.server_owner
        with owner._lock:
            owner.requests.append({"method": self._method, "path": self._path, "status": self._status,
                                   "headers": sorted(h.lower() for h in self.headers.keys()),
                                   "auth": auth.split(" ", 1)[0] if auth else None, "grant": self._grant,
                                   "at": self._at})

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self._dispatch("POST")

    # -- routes ----------------------------------------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> None:
        owner = self.server_owner
        if method == "POST" and path == owner.token_path:
            return self._token(body)
        username, why = owner.check_token(self.headers.get("Authorization"))
        if path in ("/groups/imports", "/imports") or path.startswith("/imports/"):
            if username is None:
                return self._send(401, {"error": "invalid_token", "error_description": why},
                                  {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{why}"'})
        if method == "POST" and path == "/groups/imports":
            return self._upload(query, body, username)
        if method == "GET" and path == "/groups/imports":
            return self._send(*owner.list_imports(query))
        match = re.fullmatch(r"/imports/(\d+)", path)
        if method == "GET" and match:
            found = owner.read_import(int(match.group(1)))
            return self._send(200, found) if found else self._send(404, {"message": "no such import"})
        return self._send(404, {"message": "not found"})

    def _token(self, body: bytes) -> None:
        owner = self.server_owner
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", errors="replace")).items()}
        grant = form.get("grant_type")
        self._grant = grant if grant in ("password", "refresh_token") else "other"
        if grant not in ("password", "refresh_token") or (grant == "refresh_token" and not owner.refresh_tokens):
            return self._send(400, {"error": "unsupported_grant_type"})
        if not owner.check_client(form.get("client_id", ""), form.get("client_secret", "")):
            return self._send(401, {"error": "invalid_client", "error_description": "Bad client credentials"})
        if grant == "refresh_token":
            username = owner.use_refresh_token(form.get("refresh_token", ""))
            if username is None:
                return self._send(400, {"error": "invalid_grant", "error_description": "Invalid refresh token"})
        elif owner.check_user(form.get("username", ""), form.get("password", "")):
            username = form["username"]
        else:
            return self._send(400, {"error": "invalid_grant", "error_description": "Bad credentials"})
        token, lifetime = owner.issue_token(username)
        answer = {"access_token": token, "token_type": "bearer", "expires_in": int(lifetime), "scope": "groups"}
        if owner.refresh_tokens:
            answer["refresh_token"] = owner.issue_refresh_token(username)
        return self._send(200, answer, {"Cache-Control": "no-store"})

    def _upload(self, query: dict[str, list[str]], body: bytes, username: str) -> None:
        ctype = self.headers.get("Content-Type") or ""
        filename = (query.get("filename") or ["upload.csv"])[0]
        batch = (query.get("batch") or [""])[0]
        if ctype.startswith("multipart/form-data"):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {ctype}\r\n\r\n".encode("latin-1") + body)
            parts = [p for p in message.iter_parts()
                     if p.get_param("name", header="content-disposition") == "file"]
            if not parts:
                return self._send(400, {"message": "multipart field 'file' is required"})
            content = parts[0].get_payload(decode=True) or b""
            filename = parts[0].get_filename() or filename
        elif ctype.split(";")[0].strip() in ("application/csv", "text/csv"):
            content = body
        else:
            return self._send(415, {"message": "send multipart/form-data (field 'file') or application/csv"})
        status, payload = self.server_owner.create_import(content, filename=filename, batch=batch,
                                                          creator=username)
        return self._send(status, payload)


# -- command line ------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rostering.devservers.cers_server",
                                     description="Run the local CERS import stand-in on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--user", required=True)
    args = parser.parse_args(argv)
    secret = os.environ.get("ROSTERING_CERS_CLIENT_SECRET")
    password = os.environ.get("ROSTERING_CERS_PASSWORD")
    if not secret or not password:
        parser.error("set ROSTERING_CERS_CLIENT_SECRET and ROSTERING_CERS_PASSWORD")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with LocalCersServer(client_id=args.client_id, client_secret=secret, users={args.user: password},
                             port=args.port) as server:
            print(f"CERS stand-in listening on {server.url} (token endpoint {server.token_url}); its CA certificate, "
                  f"for the connection's extra.verify: {server.ca_path}", flush=True)
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
