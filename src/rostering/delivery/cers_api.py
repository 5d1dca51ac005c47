"""Upload CERS student-group files to the receiver's import API and follow each import to its end.

The delivery kind ``cers_api`` (rostering.pipeline.DELIVERIES). For every payload file:

1. an OAuth2 password-grant token (vendor client id + secret and the district's system user, all from the Airflow
   connection) -- authlib's ``OAuth2Session``: renewed before it expires (``token_refresh_margin_s``, at most
   half its lifetime) with the receiver's refresh token when it gives one, else with the password grant again;
2. ``POST {imports_path}`` (default ``/groups/imports``) with the file as multipart field ``file`` and
   ``?filename=&batch=`` -- the batch is a stable id of (run, file, content);
3. ``GET {status_path}`` (default ``/imports/{id}``) until PROCESSED or a failure status
   (INVALID, BAD_FORMAT, BAD_DATA, UNAUTHORIZED, UNKNOWN_SCHOOL, PIPELINE_FAILURE). The vendor DAG's ``deliver``
   task does steps 1-2 only (``deliver_payload(wait=False)``); its ``confirm_delivery`` sensor, in reschedule mode,
   does step 3 once per poke (``confirm``: every ``poll_interval_s``, failing after ``poll_timeout_s``), holding no
   worker slot in between. ``deliver_payload()`` (re-deliveries, tests) polls in-process instead, after
   ``first_poll_s``, then at doubling intervals up to ``poll_interval_s``, at most ``poll_timeout_s``.

The connection (``conn_id`` in config/vendors/cers.yaml, type http)::

    {"conn_type": "http", "host": "https://cers-api.example.org/rdw", "login": "<system user>",
     "password": "<system user password>",
     "extra": {"token_url": "https://sso.example.org/oauth2/token", "client_id": "<vendor client id>",
               "client_secret": "<vendor client secret>"}}

``host`` (+ ``port``) is the API base URL; ``token_url`` may be absolute or relative to it. Both must be https://,
and certificates are always checked: ``CersClient`` refuses http:// and ``verify: false`` before sending anything
(``CersTransportPolicyError``, permanent), and does not follow redirects. ``extra.verify`` may name a CA bundle
(PEM path) for a receiver whose CA is not in the system store -- the local stand-in's, in the demo and tests. Other
extras are the HTTP provider's usual ones (``timeout``, ``proxies``, ...) or request headers. The credentials come
from TOMS and are renewed every year (docs/cers.md: rotation).

Errors and retries
    Requests are retried by urllib3's ``Retry`` on the session's adapters (``max_attempts`` tries; the first retry
    at once, then ``backoff_s`` doubling up to ``max_backoff_s``; ``Retry-After`` wins, capped at
    ``max_backoff_s``) on time-outs, dropped connections, 5xx and 429 -- for the idempotent reads and the token
    request. The upload is not idempotent at the receiver (a file sent twice is two imports): urllib3 re-sends it
    only when no connection could be made; after an answer that may hide an accepted upload (5xx, 429, a time-out)
    the batch is looked up (``GET {imports_path}?batch=``) and the file sent again only if the receiver does not
    have it, with the same ``Retry``'s waits. A 401 gets ONE new token and one more try; a second 401 fails. Never
    retried: ``invalid_client`` / ``invalid_grant`` at the token endpoint, 401 after a fresh token, 403 (the system
    user lacks group-write permission for a school in the file), other 4xx, and imports that end in a failure
    status such as BAD_DATA. ``is_transient`` tells the Airflow task which of these a later task retry can fix.
    An import that fails on the receiver's side (PIPELINE_FAILURE) is sent again by ``confirm`` (at most twice).

Safe retries
    Every file's outcome is written to ``<reports>/cers_imports.json`` as it happens, ``<reports>`` being the folder
    the caller names (``run=DeliveryRun``: the vendor run's ``<run>/reports``, a re-delivery's own operations run
    folder), never the files' folder: kept copies are re-sent from elsewhere. A retried task skips
    files whose identical content already reached PROCESSED in this run, reads an import that was accepted but
    not finished instead of sending it again, and looks up a batch whose answer never came -- so a file is never
    uploaded twice in a run once the receiver has it. ``confirm`` reads the same ledger.

What is logged
    File names, import ids, statuses and the receiver's messages after sanitising: the local stand-in only ever
    says ``Row: N Failure: <rule>`` and ``N group(s) accepted for <CDS code>.``, but the real receiver may quote a
    value, so before a message reaches a log, an exception, XCom or the run summary only known words, column names,
    row numbers and counts are kept and everything else becomes ``<value>`` (``sanitise_message``: names, dates,
    ids, e-mail addresses, quoted text). Tokens, secrets and response bodies never.
"""
from __future__ import annotations

import datetime as dt
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
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import MaxRetryError, ProtocolError
from urllib3.util.retry import Retry

from rostering.delivery import DeliveryRun
from rostering.delivery.locks import DestinationBusyError, destination_lock
from rostering.errors import ValueFreeError

log = logging.getLogger(__name__)

LEDGER = "cers_imports.json"
PROCESSED = "PROCESSED"
PENDING = ("ACCEPTED",)
FAILED = ("INVALID", "BAD_FORMAT", "BAD_DATA", "UNAUTHORIZED", "UNKNOWN_SCHOOL", "PIPELINE_FAILURE")
RECEIVER_SIDE = frozenset({"PIPELINE_FAILURE"})  # the receiver's own processing failed: sending again may work
CONNECTION_SETTINGS = frozenset({"token_url", "client_id", "client_secret"})
_FALSE_WORDS = frozenset({"false", "f", "no", "n", "off", "0", ""})
_TRUE_WORDS = frozenset({"true", "t", "yes", "y", "on", "1"})
MAX_MESSAGE_LINES = 50
PIPELINE_OPTIONS = frozenset({"guard"})  # delivery: keys the pipeline reads (rostering.pipeline.change_guard)


# -- errors ------------------------------------------------------------------------------------------------------


class CersError(ValueFreeError):
    """Base class. Messages are value-free: statuses, ids, file names, sanitised receiver messages."""


class CersTransientError(CersError):
    """The receiver is unavailable or slow; a later task retry can succeed."""


class CersAuthError(CersError):
    """Credentials refused (invalid_client / invalid_grant, or 401 with a fresh token). Fix the connection."""


class CersForbiddenError(CersError):
    """403: the system user may not write groups for a school in the file (a TOMS role to fix)."""


class CersRequestError(CersError):
    """Any other refusal or an answer we cannot use (4xx, malformed JSON)."""


class CersTransportPolicyError(CersError):
    """The connection would send credentials or pupils' groups without TLS or without checking the receiver's
    certificate (http://, ``verify: false``), or the receiver redirected us. Permanent: fix the connection."""


class CersImportFailed(CersError):
    """At least one import ended in a failure status (e.g. BAD_DATA); the message lists them with the reasons.

    Permanent, except when every failure is the receiver's own PIPELINE_FAILURE: then a task retry uploads again
    -- unless ``final`` (``confirm`` has sent those files again already).
    """

    def __init__(self, message: str, statuses: tuple[str, ...] = (), *, final: bool = False) -> None:
        super().__init__(message)
        self.statuses = statuses
        self.final = final

    @property
    def transient(self) -> bool:
        return not self.final and bool(self.statuses) and set(self.statuses) <= RECEIVER_SIDE


def is_transient(exc: BaseException) -> bool:
    """True when retrying the delivery task later may succeed; False when a person has to fix something first."""
    if isinstance(exc, CersImportFailed):
        return exc.transient
    # DestinationBusyError: another delivery to the same destination held the lock too long; it will end.
    return isinstance(exc, (CersTransientError, requests.ConnectionError, requests.Timeout, DestinationBusyError))


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
#
# The receiver's messages are logged, kept in the run ledger, returned as XCom and mailed, and the real receiver may
# quote a value of a row. So the sanitiser fails safe: it keeps only what it knows -- the "Row: N" prefix, words
# from the vocabulary of receiver messages and ordinary rule English (lower case), the column names of the
# student-group file, and numbers that are a row number or a count ("200 students") -- and replaces everything else
# with <value>: unknown or capitalised words (names), digit runs (ids, SSIDs, phone numbers), dates in any format,
# words mixed with digits, quoted text, values after "=" or ":", e-mail addresses (<email>); a 10-digit number is
# <ssid>. A rule text it does not know reads "<value>" rather than leak a name. One regex pass per line, so linear.

from http import HTTPStatus as _HTTPStatus  # noqa: E402 - used by the sanitiser only
from rostering.cers.spec import HEADER as _CERS_COLUMNS  # noqa: E402 - the file's column names

_ROW = re.compile(r"^\s*Row:\s*(\d{1,7})\s+Failure:\s*(.*)$", re.IGNORECASE)
_ACCEPTED = re.compile(r"^(\d{1,7}) (group\(s\)|groups?) accepted for (\d{14})\.?$", re.IGNORECASE)
_MAX_RAW_LINE = 2000  # characters of one receiver line looked at (longer lines are cut before sanitising)
_MAX_LINE = 300
_PLACEHOLDER = "<value>"

_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]{0,6}\.?"
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_TOKEN = re.compile("|".join([
    # an e-mail address (also with a quote in it: o'brien@...)
    r"(?P<email>[\w.!#$%&'*+/=?^`{|}~-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){0,8})",
    # quoted text, in any quotes (an unclosed quote is just a character: what follows is judged word by word)
    r"(?P<quoted>(?<!\w)'[^'\n]{0,200}'(?!\w)|\"[^\"\n]{0,200}\"|`[^`\n]{0,200}`|“[^”\n]{0,200}”|‘[^’\n]{0,200}’"
    r"|«[^»\n]{0,200}»|„[^“”\n]{0,200}[“”])",
    # a date: ISO (with a time), 7 March 2014, 7th of March, 2014, March 7, 2014, March 2014
    r"(?P<date>\d{4}-\d{1,2}-\d{1,2}(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    rf"|{_DAY}\s{{0,3}}(?:of\s{{1,3}})?{_MONTH},?\s{{0,3}}\d{{2,4}}(?!\d)"
    rf"|{_MONTH}\s{{0,3}}{_DAY},?\s{{0,3}}\d{{2,4}}(?!\d)|{_MONTH},?\s{{0,3}}\d{{4}}(?!\d))",
    # digits joined by - / . : (03/07/2014, 555-123-4567, 10:30, 1.5)
    r"(?P<joined>\d{1,20}(?:[-/.:]\d{1,20}){1,10})",
    r"(?P<word>\w+(?:['’-]\w+)*)",
    r"(?P<space>\s+)",
    r"(?P<other>.)",
]), re.IGNORECASE | re.DOTALL)
_COLLAPSE = re.compile(r"<value>(?:[\s,./'\"-]{0,3}<value>)+")
_SPACES = re.compile(r" {2,}")

# Words kept in lower case: the vocabulary of receiver messages (the stand-in, RDW, docs/cers.md) and rule English.
_WORDS = frozenset("""
a about above accepted access account accounts active address addresses admin administrator after again against all
allowed already also always an and another any api application archive are as ascii assessment assessments assign
assigned at attempt attempts authorized bad batch batches be because been before being belong belongs below between
birth birthdate blank born both break breaks but by bytes caaspp can cannot carries carry case cds change changed
changes character characters check child children class classes client code codes column columns combination comma
commas complete completed conflict conflicts consistent contact contain contained containing contains content
contiguous correct could count county course courses create created credentials csv current data date day days
delete deleted delimiter denied did differ different differs digest digit digits disabled district districts do dob
does doesn't don't duplicate duplicated duplicates e-mail each earlier educator educators either else email emails
empty enabled encoding end ends enroll enrolled enrollment enrollments enrolment entries entry error errors even
exactly exceed exceeded exceeds exist existing exists expected expire expired expires extra failed failure failures
few fewer field fields file files first for forbidden form format formatted found from gender given grade grades
grant greater group groups guardian had has have header headers higher home id identifier identifiers ids if ignored
ignoring import imported imports in inactive incomplete inconsistent incorrect inside instead integer internal
invalid is isn't it its json key known larger largest last later lea leading least length less letter letters limit
line lines local locate login logins long longer lower lowercase malformed mandatory many match matched matches
matching max maximum may member members membership middle min minimum mismatch missing more most multipart multiple
must name names natural need needs negative neither never new newline next no non none nor not null number numbers
numeric occurs of on once one only optional or order other out outside over parent parse parsed password pending per
percent period periods permission permissions permitted person phone please position present previous printable
problem processed processing queued quote quoted quotes range rdw reached read record records refused rejected
remove removed repeated replaced report reporting request requests required result results retry role roles roster
rosters row rows s same school schools score scores section sections see semester send separated server service
session several short shorter should single sis size skipped smaller so some sort sorted space spaces spring ssid
ssids staff start starts state stated states status statuses still string student students subject subjects success
successful successfully such support supported system systems teach teacher teachers teaching temporarily term terms
test tests text than that the their then there these this those three time timed timeout times to token tokens too
total trailing try twice two type unable unauthorized unavailable under unexpected unique unknown unrecognised
unrecognized unsupported until update updated upload uploaded upper uppercase use used user users using utf-8 valid
value values vendor via was were when where which while whitespace who whose will with within without would write
wrong year years yet zero
""".split())
# Words kept capitalised anywhere ("Student", "Group name"): column-name words that are nobody's name. Other known
# words may be capitalised only where a sentence starts, and never these, which are also names: Will Long, ...
_FIELD_WORDS = frozenset("""
birth class code column county course date district educator email error failure file given grade group header id
ids import local login middle name natural number row school section ssid staff state student subject teacher user
year
""".split())
_NAME_LIKE = frozenset("will may long key grant case day lea else short read spring child home field fields".split())
_EXACT = frozenset("""
ELA ELPAC Math All SSID SSIDs CDS CSV UTF-8 ASCII ID IDs TOMS CERS RDW HTTP HTTPS API JSON URL MD5 BOM OAuth2 MB KB GB
PROCESSED ACCEPTED INVALID BAD_FORMAT BAD_DATA UNAUTHORIZED UNKNOWN_SCHOOL PIPELINE_FAILURE
""".split())
_UNITS = frozenset("""
attempt attempts byte bytes character characters column columns day days digit digits error errors field fields
file files group groups kb letter letters line lines mb minute minutes record records row rows school schools
second seconds student students teacher teachers time times user users
""".split())
_ROW_WORDS = frozenset("row rows line lines record records".split())
_SCHOOL_WORDS = frozenset(("school", "schools", "cds", "code", "school_natural_id"))
_CONNECTORS = frozenset("and or to through".split())
_AFTER_COLON = frozenset("a an the no one each every all this these".split())  # not values: "Error: the file ..."
_QUOTABLE = frozenset(_CERS_COLUMNS) | {"file"}  # quoted, these are column names, not values
_HTTP_PHRASES = frozenset(status.phrase for status in _HTTPStatus)
_SAFE = frozenset(".,;:!?()[]{}<>/+*&%#@|~^$\\-=_'\"`–—…’‘“”«»")
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")
_DIGIT_WORD = re.compile(r"\d{1,3}-(?:digit|character|letter|day)s?", re.IGNORECASE)


def _known_word(word: str, sentence_start: bool) -> bool:
    """True for a word that is no value: see the vocabularies above."""
    if word in _EXACT:
        return True
    lower = word.lower()
    if "'" in word or "’" in word:
        base = re.sub(r"['’]s$", "", word, flags=re.IGNORECASE)  # a possessive: the student's
        return (base != word and _known_word(base, sentence_start)) or (word.islower() and lower in _WORDS)
    if "-" in word:
        if _DIGIT_WORD.fullmatch(word) or (word.islower() and lower in _WORDS):
            return True
        return all(_known_word(part, sentence_start and n == 0) for n, part in enumerate(word.split("-")))
    if not word.isalpha() and not word.replace("_", "").isalpha():
        return False  # digits in it (an id, a group name)
    if "_" in word:  # a column name: student_ssid, BAD_DATA
        parts = word.split("_")
        return all(parts) and (word.islower() or word.isupper()) and all(p.lower() in _WORDS for p in parts)
    if word.islower():
        return lower in _WORDS
    if lower in _NAME_LIKE:
        return False
    if word.isupper() and len(word) > 1:
        return lower in _WORDS
    if word[0].isupper() and (len(word) == 1 or word[1:].islower()):
        return lower in _FIELD_WORDS or (sentence_start and lower in _WORDS)
    parts = _CAMEL.findall(word)  # StudentId, schoolYear
    return "".join(parts) == word and all(p.lower() in _FIELD_WORDS for p in parts)


def _sanitise_text(text: str) -> str:
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(text)]
    solid = [n for n, (kind, _) in enumerate(tokens) if kind != "space"]

    def at(position: int) -> tuple[str, str]:
        return tokens[solid[position]] if 0 <= position < len(solid) else ("", "")

    def is_unit(position: int) -> bool:
        kind, value = at(position)
        return kind == "word" and value.lower() in _UNITS

    kept: dict[int, int] = {}  # position of a kept number -> how many digits a number joined to it may have

    def number(position: int, value: str, follows: str) -> str:
        before = at(position - 1)[1].lower()
        limit = 0
        if follows == ":" and at(position - 2)[1].lower() in _ROW_WORDS and len(value) <= 7:
            return value  # Row: 12 Error: ...
        if follows:
            return _PLACEHOLDER  # StudentId=1234567
        if len(value) == 10:
            return "<ssid>"
        if len(value) == 14 and before in _SCHOOL_WORDS:
            return value  # a school's CDS code: no value of a row, and it says which school
        if before in _ROW_WORDS:
            limit = 7  # row 12
        elif is_unit(position + 1) or (at(position + 1)[1].lower() in _CONNECTORS | {"-"}
                                       and at(position + 2)[1].isdigit() and is_unit(position + 3)):
            limit = 3  # 200 students, between 1 and 255 characters
        elif before in _CONNECTORS | {"-", ","} and position - 2 in kept:
            limit = kept[position - 2]  # rows 3 and 4
        if limit and len(value) <= limit:
            kept[position] = limit
            return value
        return _PLACEHOLDER

    out: list[str] = []
    start, after = True, ""  # a sentence starts here; the token follows "=" or ":"
    previous = -1
    for position, index in enumerate(solid):
        if index > previous + 1:
            out.append(" ")
        previous = index
        kind, value = tokens[index]
        follows, after = after, ""
        if kind == "email":
            piece = "<email>"
        elif kind == "quoted":
            piece = value if value[1:-1].strip().lower() in _QUOTABLE else _PLACEHOLDER
        elif kind in ("date", "joined"):
            piece = _PLACEHOLDER
        elif kind == "word" and value.isdigit() and value.isascii():
            piece = number(position, value, follows)
        elif kind == "word":
            if follows == ":":  # Error: the file ... / Student: Maria
                known = value.lower() in _AFTER_COLON | _FIELD_WORDS or ("_" in value and _known_word(value, False))
            else:
                known = not follows and _known_word(value, start)
            piece = value if known else _PLACEHOLDER
        elif value in "=:":
            piece = after = value
        else:
            piece = value if value in _SAFE else ""
        out.append(piece)
        start = kind == "other" and value in ".!?;("
    return _SPACES.sub(" ", _COLLAPSE.sub(_PLACEHOLDER, "".join(out))).strip()


def _sanitise_line(line: str) -> str:
    line = line[:_MAX_RAW_LINE]
    accepted = _ACCEPTED.match(line)
    if accepted:  # N group(s) accepted for <CDS code>. -- a count and a school, no value of a row
        return f"{accepted.group(1)} {accepted.group(2)} accepted for {accepted.group(3)}."
    if line in _HTTP_PHRASES:
        return line
    match = _ROW.match(line)
    text = _sanitise_text(match.group(2) if match else line)
    text = f"Row: {match.group(1)} Failure: {text}".rstrip() if match else text
    return text if len(text) <= _MAX_LINE else text[:_MAX_LINE - 1] + "…"


def sanitise_message(message: str | None) -> str:
    """The receiver's message without values: row numbers, counts and rule texts stay; names, ids, SSIDs, dates,
    e-mail addresses, quoted text and whatever else the vocabulary above does not know become ``<value>``
    (``<email>``, ``<ssid>``). At most 50 lines of at most 300 characters."""
    if not message:
        return ""
    lines: list[str] = []
    extra = 0
    for raw in str(message).splitlines():
        line = raw.strip()
        if not line:
            continue
        if len(lines) < MAX_MESSAGE_LINES:
            lines.append(_sanitise_line(line))
        else:
            extra += 1
    return "\n".join(lines + ([f"(+{extra} more lines)"] if extra > 0 else []))


# -- the HTTP client ---------------------------------------------------------------------------------------------
#
# Retries are urllib3's (``Retry`` on the session's adapters), the token is authlib's (OAuth2 password grant, expiry,
# refresh); what is left here is the receiver's contract: one new token after a 401, the batch lookup before an
# upload is sent again, and the error classes.

RETRY_STATUSES = (429, 500, 502, 503, 504)  # busy or failing: worth another try
_KEEP_ALIVE = {"idle": 120, "count": 20, "interval": 30}  # the HTTP provider's TCP keep-alive defaults


def _retry(options: CersApiOptions, methods: frozenset[str]) -> Retry:
    """urllib3's policy for requests with ``methods``: time-outs, dropped connections, 429 and 5xx, at most
    ``max_attempts`` tries, the first retry at once, then ``backoff_s`` doubling up to ``max_backoff_s``; a
    ``Retry-After`` wins, capped at ``max_backoff_s``. A connection that could not be made is retried whatever the
    method (nothing reached the receiver); TLS and other errors are not retried."""
    retries = max(options.max_attempts - 1, 0)
    return Retry(total=retries, connect=retries, read=retries, status=retries, other=0,
                 allowed_methods=methods, status_forcelist=RETRY_STATUSES, backoff_factor=options.backoff_s / 2,
                 backoff_max=options.max_backoff_s, respect_retry_after_header=True,
                 retry_after_max=options.max_backoff_s, raise_on_status=False, raise_on_redirect=False)


# The API's reads (status, batch lookup) are idempotent. A token request is safe to repeat: a token whose answer
# was lost is never used and expires. The upload is NOT idempotent at the receiver (the same file sent twice is two
# imports), so urllib3 never re-sends it: ``CersClient.upload`` looks the batch up first (see there).
_API_METHODS = frozenset({"GET", "HEAD"})
_TOKEN_METHODS = frozenset({"GET", "HEAD", "POST"})


def _adapter(retry: Retry):
    from requests_toolbelt.adapters.socket_options import TCPKeepAliveAdapter

    return TCPKeepAliveAdapter(max_retries=retry, **_KEEP_ALIVE)


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


def _session_class():
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.requests_client import OAuth2Session

    class PasswordGrantSession(OAuth2Session):
        """authlib's OAuth2 requests session, for the password grant.

        authlib renews a token that is about to expire (``leeway``) by itself only with a refresh token or for the
        client-credentials grant; without a refresh token, or when the refresh is refused, this session asks the
        password grant again (``regrant``).
        """

        regrant: Callable[[], None]
        request_settings: dict[str, Any]

        def ensure_active_token(self, token=None):  # noqa: ANN001 - authlib's signature
            token = self.token if token is None else token
            if token and token.is_expired(leeway=self.leeway) is not True:  # None: no expiry given
                return True
            if token and token.get("refresh_token"):
                try:
                    self.refresh_token(self.metadata["token_endpoint"], refresh_token=token["refresh_token"],
                                       **self.request_settings)
                    log.info("CERS: access token refreshed with the refresh token")
                    return True
                except OAuthError as refused:
                    log.info("CERS: the refresh token was refused (%s); asking the password grant again",
                             refused.error)
            self.regrant()
            return True

    return PasswordGrantSession


def _json(response: requests.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise CersRequestError(f"{what}: the receiver's answer (HTTP {response.status_code}) is not JSON") from None


class CersClient:
    """The receiver's import API over Airflow's HTTP provider (one requests session per delivery).

    The session is the provider's (TLS settings, proxies, headers from the connection) made into authlib's OAuth2
    session, with urllib3 retries mounted for the API and, separately, for the token endpoint.
    """

    def __init__(self, conn_id: str, options: CersApiOptions | None = None) -> None:
        from authlib.integrations.base_client import OAuthError

        self._oauth_error = OAuthError
        self.conn_id = conn_id
        self.options = options or CersApiOptions()
        self.hook = _hook_class()(method="GET", http_conn_id=conn_id,
                                  adapter=_adapter(_retry(self.options, _API_METHODS)))
        connection = self.hook.get_connection(conn_id)
        extra = connection.extra_dejson
        self._client_id = str(extra.get("client_id") or "")
        client_secret = str(extra.get("client_secret") or "")
        self._username = connection.login or ""
        self._password = connection.password or ""
        missing = [name for name, value in (("extra.client_id", self._client_id),
                                            ("extra.client_secret", client_secret),
                                            ("login", self._username), ("password", self._password)) if not value]
        token_url = self.options.token_url or extra.get("token_url")
        if not token_url:
            missing.append("extra.token_url")
        if missing:
            raise ValueError(f"connection {conn_id!r} lacks {', '.join(missing)} (CERS OAuth2 password grant)")
        provider_session = self.hook.get_conn()
        self.base_url = self.hook.base_url.rstrip("/")
        self.token_url = token_url if "://" in str(token_url) else self.url(str(token_url))
        self.session = _session_class()(
            client_id=self._client_id, client_secret=client_secret, token_endpoint=self.token_url,
            token_endpoint_auth_method="client_secret_post",  # the form's client_id/client_secret, never Basic
            leeway=self.options.token_refresh_margin_s)
        for name in requests.Session.__attrs__:  # what the provider configured: verify, proxies, headers, adapters
            setattr(self.session, name, getattr(provider_session, name))
        self.session.mount(self.token_url, _adapter(_retry(self.options, _TOKEN_METHODS)))
        self.session.hooks = {"response": [self._refuse_redirect]}
        self.session.regrant = self._password_grant
        for hook in ("access_token_response", "refresh_token_response"):
            self.session.register_compliance_hook(hook, self._token_answer)
        self._require_verified_tls(extra)
        # Per request, as the HTTP provider sends them: the connection's TLS settings and proxies win over the
        # environment's (requests would let REQUESTS_CA_BUNDLE replace the connection's extra.verify).
        self._settings = {"timeout": self.options.request_timeout_s, "allow_redirects": False,
                          "verify": self.session.verify, "cert": self.session.cert,
                          "proxies": dict(self.session.proxies or {})}
        self.session.request_settings = self._settings

    def _require_verified_tls(self, extra: dict[str, Any]) -> None:
        """Refuse, before anything is sent, a connection that would send the system user's password, the tokens or
        the pupils' groups in clear text or to a server whose certificate is not checked (as SFTP refuses unpinned
        host keys)."""
        for setting, url in (("host (the API base URL)", self.base_url), ("extra.token_url", self.token_url)):
            scheme = urlsplit(str(url)).scheme.lower()
            if scheme != "https":
                raise CersTransportPolicyError(
                    f"connection {self.conn_id!r}: {setting} is an {scheme or 'unknown'}:// URL; the CERS API is "
                    "used over https only -- set it to the receiver's https:// address")
        # Both spellings the HTTP provider reads, even the one it would ignore: a "false" anywhere is a mistake.
        settings = [(key, extra[key]) for key in ("verify", "verify_ssl") if key in extra]
        for key, value in [*settings, ("verify", self.session.verify)]:
            if value is False or value == 0 or (isinstance(value, str) and value.strip().lower() in _FALSE_WORDS):
                raise CersTransportPolicyError(
                    f"connection {self.conn_id!r} switches certificate checks off (extra.{key}); remove it, or set "
                    "extra.verify to the path of the CA bundle that signed the receiver's certificate")
        verify = self.session.verify  # what the HTTP provider made of extra.verify / extra.verify_ssl
        if isinstance(verify, str) and verify.strip().lower() in _TRUE_WORDS:
            verify = self.session.verify = True  # "true" would otherwise be taken for a CA bundle path
        if isinstance(verify, str) and not os.path.exists(verify):
            raise CersTransportPolicyError(
                f"connection {self.conn_id!r}: extra.verify names a CA bundle that does not exist on this worker; "
                "set it to an existing PEM file (or folder) of the CA that signed the receiver's certificate")

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    def _path(self, url: str) -> str:
        return url[len(self.base_url):].split("?", 1)[0] if url.startswith(self.base_url) else url.split("?", 1)[0]

    # -- every response ------------------------------------------------------------------------------------------

    def _refuse_redirect(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        """A response hook, for every request of the session (API, token, refresh): a redirect is never followed --
        followed, it could carry the password form or a token to another (or an http://) address."""
        if response.is_redirect:
            raise CersTransportPolicyError(
                f"{response.request.method} {self._path(response.url)}: the receiver answered with a redirect (HTTP "
                f"{response.status_code}), which is not followed; set connection {self.conn_id!r} to the address it "
                "redirects to")
        return response

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

    def _unreachable(self, what: str, error: Exception) -> CersTransientError:
        if isinstance(error, requests.exceptions.SSLError):
            return CersTransientError(f"{what}: SSLError -- the receiver's certificate could not be verified with "
                                      f"connection {self.conn_id!r}'s CA (extra.verify)")
        return CersTransientError(f"{what}: {type(error).__name__} after {self.options.max_attempts} attempts")

    # -- token (authlib) -----------------------------------------------------------------------------------------

    def _token_answer(self, response: requests.Response) -> requests.Response:
        """authlib's compliance hook, before it reads a token endpoint's answer: urllib3 has retried 429/5xx."""
        what = "token request"
        if response.status_code in RETRY_STATUSES:
            raise CersTransientError(f"{what}: HTTP {response.status_code} after {self.options.max_attempts} "
                                     "attempts")
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("error"):
            return response  # authlib raises OAuthError with it
        if response.status_code in (400, 401):
            raise self._refused(str(response.status_code))
        self._check(response, what)
        if not isinstance(body, dict) or not body.get("access_token"):
            raise CersRequestError(f"{what}: the answer has no access_token")
        return response

    def _refused(self, error: str) -> CersAuthError:
        return CersAuthError(
            f"token request refused ({error}): invalid_client = the client id/secret, invalid_grant = the system "
            f"user's login/password in connection {self.conn_id!r}; TOMS credentials are renewed every year "
            "(docs/cers.md)")

    def _password_grant(self) -> None:
        """A new token with the OAuth2 password grant (authlib: the form, the client's credentials in it, the
        answer's errors and expiry). Never retried on a refusal: invalid_client / invalid_grant are credentials."""
        try:
            token = self.session.fetch_token(self.token_url, username=self._username, password=self._password,
                                             **self._settings)
        except self._oauth_error as refused:
            raise self._refused(refused.error) from None
        except (requests.ConnectionError, requests.Timeout) as error:
            raise self._unreachable("token request", error) from None
        lifetime = float(token.get("expires_in") or 0)
        if lifetime:  # renewed this long before it runs out: the margin, or half of a short lifetime
            self.session.leeway = min(self.options.token_refresh_margin_s, lifetime / 2)
        log.info("CERS: new access token for connection %s (valid %s)", self.conn_id,
                 f"{lifetime:.0f} s" if lifetime else "until refused")

    # -- one request ---------------------------------------------------------------------------------------------

    def _authorised(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One request with the bearer token (urllib3 retries inside); a 401 gets one fresh token and one more
        try, a second 401 is final."""
        if not self.session.token:
            self._password_grant()
        headers = {"Accept": "application/json", **(kwargs.pop("headers", None) or {})}
        response = self.session.request(method, url, headers=headers, **self._settings, **kwargs)
        if response.status_code == 401:
            log.warning("CERS %s %s: 401, fetching a new token and trying once more", method, self._path(url))
            self._password_grant()
            response = self.session.request(method, url, headers=headers, **self._settings, **kwargs)
            if response.status_code == 401:
                raise CersAuthError(f"{method} {self._path(url)}: 401 Unauthorized again with a fresh token; check "
                                    f"the system user in connection {self.conn_id!r} (TOMS credentials expire "
                                    "yearly)")
        return response

    def send(self, method: str, url: str, *, what: str, **kwargs: Any) -> requests.Response:
        """An idempotent request: urllib3 has retried time-outs, connection errors, 5xx and 429 by the time it
        returns; still failing is transient."""
        try:
            response = self._authorised(method, url, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as error:
            raise self._unreachable(what, error) from None
        if response.status_code in RETRY_STATUSES:
            raise CersTransientError(f"{what}: HTTP {response.status_code} after {self.options.max_attempts} "
                                     "attempts")
        return self._check(response, what)

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
        """POST the file as import ``batch``.

        The receiver does not deduplicate uploads, so urllib3 re-sends the POST only when the connection could not
        be made. After an answer that may hide an accepted upload -- 5xx, 429, a time-out, a dropped connection --
        the batch is looked up, and the file is sent again only if the receiver does not have it. The waits and
        the number of tries are urllib3's ``Retry`` (the session's policy, counted here): backoff, ``Retry-After``.
        """
        what = f"upload of {path.name}"
        url = self.url(self.options.imports_path)
        data = path.read_bytes()
        retries = _retry(self.options, frozenset({"POST"}))
        while True:
            response, failure = None, ""
            try:
                response = self._authorised("POST", url, params={"filename": path.name, "batch": batch},
                                            files={"file": (path.name, data, "text/csv")})
            except (requests.ConnectionError, requests.Timeout) as error:
                if isinstance(error, requests.exceptions.SSLError):
                    raise self._unreachable(what, error) from None
                failure = type(error).__name__
            else:
                if response.status_code not in RETRY_STATUSES:
                    resource = _json(self._check(response, what), what)
                    if not isinstance(resource, dict) or "id" not in resource or "status" not in resource:
                        raise CersRequestError(f"{what}: the answer is not an import resource")
                    return resource
                failure = f"HTTP {response.status_code}"
            raw = response.raw if response is not None else None
            try:
                retries = retries.increment("POST", url, response=raw,
                                            error=None if raw is not None else ProtocolError(failure))
            except MaxRetryError:
                raise CersTransientError(f"{what}: {failure} after {self.options.max_attempts} attempts") from None
            log.warning("CERS %s: %s; looking batch %s up before sending it again (%d/%d)", what, failure, batch,
                        len(retries.history), self.options.max_attempts - 1)
            retries.sleep(raw)
            existing = self.find_batch(batch)
            if existing:
                log.info("CERS %s: the receiver already has it as import %s; not sending it again", what,
                         existing.get("id"))
                return existing

    def status(self, import_id: Any) -> dict[str, Any]:
        url = self.url(self.options.status_path.format(id=import_id))
        resource = _json(self.send("GET", url, what=f"status of import {import_id}"), "import status")
        if not isinstance(resource, dict) or "status" not in resource:
            raise CersRequestError(f"status of import {import_id}: the answer is not an import resource")
        return resource

    def follow(self, resource: dict[str, Any], *, on_change: Callable[[dict[str, Any]], None] = lambda r: None
               ) -> dict[str, Any]:
        """Poll in this process until the import is PROCESSED or failed (or ``poll_timeout_s`` passes: transient).

        For callers that wait in-process (``deliver_payload(wait=True)``: re-deliveries, tests); the vendor DAG
        waits in its ``confirm_delivery`` sensor instead (``confirm``), without holding a worker slot."""
        deadline = time.monotonic() + self.options.poll_timeout_s
        status = resource.get("status")
        wait = min(self.options.first_poll_s, self.options.poll_interval_s)
        while status in PENDING:
            if time.monotonic() >= deadline:
                raise CersTransientError(f"import {resource.get('id')} still {status} after "
                                         f"{self.options.poll_timeout_s:.0f} s; a task retry resumes polling it")
            time.sleep(wait)
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
    """``<reports>/cers_imports.json`` (``DeliveryRun.reports``): each file's import, written atomically after
    every change."""

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


def ledger_path(run: DeliveryRun) -> Path:
    """This delivery's ledger: ``<run.reports>/cers_imports.json``. Refused inside the kept copies
    (``<state>/deliveries``): a ledger there would be shared by every re-delivery of them."""
    from rostering.paths import state_dir

    path = Path(run.reports).resolve() / LEDGER
    if path.is_relative_to((state_dir() / "deliveries").resolve()):
        raise ValueError(f"CERS: the upload ledger of run {run.key!r} would be written among the kept copies of "
                         "deliveries; pass the delivering run's own reports folder (DeliveryRun)")
    return path


def payload_run(files: list[Path]) -> DeliveryRun:
    """The run of files built in ``<run>/payload/``: ``<run>/reports``, keyed by the run folder's name (what the
    vendor pipeline passes for its runs). For direct callers of a vendor run's payload (tests, a shell) only."""
    root = Path(files[0]).resolve().parent.parent
    return DeliveryRun(reports=root / "reports", key=root.name)


def batch_id(run_key: str, name: str, sha256: str, attempt: int = 1) -> str:
    """Stable per (run, file, content, attempt): how a retried task finds an upload whose answer it never saw."""
    key = f"{run_key}\n{name}\n{sha256}" + (f"\n{attempt}" if attempt > 1 else "")
    return "rostering-" + hashlib.sha256(key.encode()).hexdigest()[:24]


def _outcome(record: ImportRecord) -> dict[str, Any]:
    return {"file": record.file, "import_id": record.import_id, "status": record.status, "message": record.message}


def _options(delivery) -> CersApiOptions:
    # the pipeline's own options (the change guard) sit in the same profile section: not the transport's
    return CersApiOptions.from_options({k: v for k, v in delivery.options.items() if k not in PIPELINE_OPTIONS})


def confirm_timing(delivery) -> tuple[float, float]:
    """``(poke interval, time-out)`` in seconds of the sensor that waits for the imports (the vendor DAG's
    ``confirm_delivery``): ``poll_interval_s`` and ``poll_timeout_s``."""
    options = _options(delivery)
    return options.poll_interval_s, options.poll_timeout_s


class _Imports:
    """One run's imports of ``files``: the ledger, the client (made when first needed) and the steps per file."""

    def __init__(self, delivery, files: list[Path], client: CersClient | None,
                 on_accepted: Callable[[dict[str, Any]], None] | None, run: DeliveryRun | None) -> None:
        self.conn_id = delivery.conn_id
        self.options = _options(delivery)
        self.destination = f"cers_api://{delivery.conn_id}{self.options.imports_path}"
        self.paths = sorted((Path(f) for f in files), key=lambda p: p.name)
        if self.paths and run is None:
            run = payload_run(self.paths)
        self.ledger = Ledger(ledger_path(run)) if self.paths else None
        self.run_key = run.key if self.paths else ""
        self._client = client
        self.accepted = on_accepted or (lambda outcome: None)

    @property
    def client(self) -> CersClient:
        if self._client is None:
            self._client = CersClient(self.conn_id, self.options)
        return self._client

    def keep(self, record: ImportRecord, resource: dict[str, Any]) -> None:
        record.import_id = resource.get("id")
        record.status = str(resource.get("status"))
        record.message = sanitise_message(resource.get("message"))
        self.ledger.save(record)
        log.info("CERS import %s of %s: %s%s", record.import_id, record.file, record.status,
                 ("\n  " + record.message.replace("\n", "\n  ")) if record.message else "")

    def send(self, path: Path) -> ImportRecord:
        """Upload ``path`` unless this run's ledger says the receiver has it; its record, with the import's status
        (ACCEPTED, PROCESSED or a failure status). A file PROCESSED in this run is not sent again; an import an
        earlier attempt got accepted is read, not sent again; an upload whose answer never came is looked up by its
        batch; a file whose import failed is sent again under a new batch."""
        from rostering.csvio import sha256_of

        sha = sha256_of(path)
        record = self.ledger.records.get(path.name)
        if record is None or record.sha256 != sha:
            record = ImportRecord(path.name, sha, batch_id(self.run_key, path.name, sha))
        if record.status == PROCESSED:
            log.info("CERS: %s already PROCESSED as import %s in this run; not sent again", path.name,
                     record.import_id)
            return record
        if record.status in FAILED:  # sent before and refused: a new upload, under a new batch
            record = ImportRecord(path.name, sha, batch_id(self.run_key, path.name, sha, record.attempt + 1),
                                  attempt=record.attempt + 1)
        resource = None
        if record.status in PENDING and record.import_id is not None:
            resource = self.client.status(record.import_id)  # accepted by an earlier attempt: read it
        elif record.status == "UPLOADING":
            resource = self.client.find_batch(record.batch)  # an earlier attempt sent it but never saw the answer
        if resource is None:
            record.status = "UPLOADING"
            self.ledger.save(record)
            log.info("CERS: uploading %s (%d bytes) as batch %s", path.name, path.stat().st_size, record.batch)
            resource = self.client.upload(path, batch=record.batch)
        self.keep(record, resource)
        return record

    def uploaded(self) -> list[tuple[Path, ImportRecord]]:
        """Each file with its ledger record, for ``confirm``: every file must have been uploaded by this run."""
        from rostering.csvio import sha256_of

        found = []
        for path in self.paths:
            record = self.ledger.records.get(path.name)
            if record is None or record.sha256 != sha256_of(path) or record.status == "NOT_SENT":
                raise CersRequestError(f"{path.name}: this run has no import of it (reports/{LEDGER}); its deliver "
                                       "task did not upload it -- clear the run's deliver task")
            found.append((path, record))
        return found

    def failure(self, outcomes: list[dict[str, Any]], *, final: bool = False) -> CersImportFailed | None:
        failed = [o for o in outcomes if o["status"] != PROCESSED]
        if not failed:
            return None
        lines = [f"{o['file']}: import {o['import_id']} {o['status']}" + (
            ("\n    " + o["message"].replace("\n", "\n    ")) if o["message"] else "") for o in failed]
        return CersImportFailed(f"{len(failed)} of {len(outcomes)} CERS import(s) failed:\n  " + "\n  ".join(lines),
                                tuple(o["status"] for o in failed), final=final)


def deliver_payload(delivery, files: list[Path], *, client: CersClient | None = None,
                    on_accepted: Callable[[dict[str, Any]], None] | None = None,
                    wait: bool = True, run: DeliveryRun | None = None) -> dict[str, Any]:
    """Upload every file; the delivery interface (rostering.pipeline.DELIVERIES).

    ``run``: where this delivery's ledger lives and what its batch ids derive from (``DeliveryRun``; the pipeline
    always passes it). Left out, the files are taken to be a vendor run's ``<run>/payload/`` (``payload_run``).

    ``wait=True`` (re-deliveries, tests): each import is followed in this process until PROCESSED or failed.
    Returns ``{"destination", "imports": [{file, import_id, status, message}]}``. Raises ``CersImportFailed`` when
    an import ends in a failure status (the other files are still uploaded: each file only replaces the groups it
    names), ``CersAuthError`` / ``CersForbiddenError`` at once, ``CersTransientError`` when the receiver stays
    unavailable (the task retry resumes from the ledger).

    ``wait=False`` (the vendor DAG's ``deliver`` task): returns as soon as every file is uploaded -- each import is
    then ACCEPTED, PROCESSED or failed -- with ``"unconfirmed"``: the files not PROCESSED yet. No
    ``CersImportFailed`` then: ``confirm`` (the ``confirm_delivery`` sensor) follows the ACCEPTED imports and
    reports every failure once the others are done.

    ``on_accepted(outcome)`` is called as soon as a file is PROCESSED (also for a file an earlier attempt of the run
    got PROCESSED), before the next file is sent: the pipeline records it then, so a later failure cannot lose it.
    If it raises (the record cannot be written), nothing more is sent.
    """
    imports = _Imports(delivery, files, client, on_accepted, run)
    if not imports.paths:
        return {"destination": imports.destination, "imports": [], **({} if wait else {"unconfirmed": []})}
    # one delivery at a time to this receiver: a re-delivery from rostering_operations never races a vendor run
    with destination_lock(imports.destination):
        outcomes: list[dict[str, Any]] = []
        for path in imports.paths:
            record = imports.send(path)
            if wait and record.status in PENDING:
                resource = imports.client.follow({"id": record.import_id, "status": record.status},
                                                 on_change=lambda r, rec=record: imports.keep(rec, r))
                if str(resource.get("status")) != record.status or resource.get("id") != record.import_id:
                    imports.keep(record, resource)
            outcomes.append(_outcome(record))
            if record.status == PROCESSED:
                imports.accepted(_outcome(record))
    if not wait:
        return {"destination": imports.destination, "imports": outcomes,
                "unconfirmed": [o["file"] for o in outcomes if o["status"] != PROCESSED]}
    failed = imports.failure(outcomes)
    if failed:
        raise failed
    return {"destination": imports.destination, "imports": outcomes}


#: A file whose import failed on the receiver's side (PIPELINE_FAILURE) is sent again by ``confirm`` at most this
#: many times (as often as the deliver task used to be retried for it).
RECEIVER_SIDE_RESENDS = 2


def confirm(delivery, files: list[Path], *, client: CersClient | None = None,
            on_accepted: Callable[[dict[str, Any]], None] | None = None,
            run: DeliveryRun | None = None) -> dict[str, Any] | None:
    """One look at the imports ``deliver_payload(wait=False)`` made of ``files``: a poke of the vendor DAG's
    ``confirm_delivery`` sensor (reschedule mode: no worker slot is held in between).

    Reads the ledger of ``run`` (the same ``DeliveryRun`` as the upload's) and asks the receiver once for each
    import still ACCEPTED; ``on_accepted`` for every PROCESSED file (the pipeline marks it accepted in the delivery
    record). Returns None while any import is still ACCEPTED (a status read that fails transiently counts as still
    ACCEPTED: the sensor's time-out bounds the wait), ``{"destination", "imports"}`` once all are PROCESSED. Once none is pending and one failed, raises
    ``CersImportFailed`` (value-free, sanitised receiver messages). An import that failed on the receiver's side
    (PIPELINE_FAILURE) is first sent again under a new batch, at most ``RECEIVER_SIDE_RESENDS`` times.
    """
    imports = _Imports(delivery, files, client, on_accepted, run)
    if not imports.paths:
        return {"destination": imports.destination, "imports": []}
    outcomes: list[dict[str, Any]] = []
    unanswered: list[str] = []
    for path, record in imports.uploaded():
        try:
            if record.status in PENDING:
                resource = imports.client.status(record.import_id)
                if str(resource.get("status")) != record.status or resource.get("id") != record.import_id:
                    imports.keep(record, resource)
            resend = record.status in RECEIVER_SIDE and record.attempt <= RECEIVER_SIDE_RESENDS
            if resend or record.status == "UPLOADING":  # UPLOADING: a re-send whose answer never came
                if resend:
                    log.warning("CERS: import %s of %s failed on the receiver's side (%s); sending it again",
                                record.import_id, record.file, record.status)
                with destination_lock(imports.destination, timeout_s=60):  # busy: the next poke tries again
                    record = imports.send(path)
        except Exception as error:  # noqa: BLE001 - classified: a transient one is asked again at the next poke
            if not is_transient(error):
                raise
            log.warning("CERS: import %s of %s: no answer this time (%s); asking again at the next poke",
                        record.import_id, record.file, error if isinstance(error, CersError) else type(error).__name__)
            unanswered.append(record.file)
            record = imports.ledger.records[record.file]  # what the ledger says now (a re-send: UPLOADING)
        outcomes.append(_outcome(record))
        if record.status == PROCESSED:
            imports.accepted(_outcome(record))
    waiting = [o for o in outcomes if o["status"] in PENDING or o["file"] in unanswered]
    if waiting:
        log.info("CERS: %d of %d import(s) still %s: %s", len(waiting), len(outcomes), "/".join(PENDING),
                 ", ".join(f"{o['file']} ({o['import_id']})" for o in waiting))
        return None
    failed = imports.failure(outcomes, final=True)  # receiver-side failures were sent again already
    if failed:
        raise failed
    return {"destination": imports.destination, "imports": outcomes}
