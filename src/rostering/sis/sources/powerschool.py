"""``powerschool``: PowerSchool SIS read over its REST API through the rostering plugin the district installs.

How it reads (docs/sis-sources.md (PowerSchool) has the citations and what is unverified):

- OAuth2 client credentials: ``POST {host}/oauth/access_token/`` with HTTP Basic ``client_id:client_secret``
  (rostering.sis.sources.http.OAuthClientCredentials); the Airflow connection ``powerschool_api`` holds host, client
  id (login) and secret (password), shown on the plugin's page of the Plugin Management Dashboard.
- ``GET /ws/v1/metadata``: the largest page a query may ask for (``schema_table_query_max_page_size``).
- Our own named PowerQueries, shipped in include/sis/powerschool/plugin/ (their Oracle SQL is there):
  ``POST /ws/schema/query/{name}/count`` first, then every page ``POST /ws/schema/query/{name}?page=&pagesize=``
  in parallel through ``ApiClient.map`` -- a few large requests per resource, never one per section or student.
  The pages of one resource must add up to its count without repeated keys; otherwise the resource is read once
  more, and then ``IncompleteReadError`` names it.

The queries return PowerSchool's own columns (flattened records, values as strings); this module does the
conversions to the SIS-neutral model (rostering.sis.sources.base), vectorised:

- ``YEARID`` -> spring school year ``YEARID + 1991`` (2026-27 is YEARID 36);
- ``EXITDATE`` / ``DATELEFT`` / ``SPENROLLMENTS.EXIT_DATE`` are the first day *not* enrolled -> inclusive end date
  (minus one day); an end on or after the last day of the school's year term (section: its term) means the
  record runs to the end -> ``None`` (open), which is how the model says "still enrolled";
- rows that end on or before they start (``EXITDATE <= ENTRYDATE``) never attended -> left out;
- ``CC.SECTIONID`` negative = a dropped class: ``abs()``, keeping its dates;
- integer grades -> CEDS (``grade_levels`` map), ROLEDEF names -> lead/co_teacher/job_share/aide, GEN ``specprog``
  names -> program codes, USERS titles -> staff roles (all configurable);
- current enrollment (``STUDENTS``) + history (``REENROLLMENTS``) -> ``school_enrollment``.

Records it cannot map go to ``SourceRead.rejected`` (resource, row, SIS key, column, rule -- never a value):
malformed dates, unknown grades, a section teacher who is not a staff member, two overlapping primary (status 10)
enrollments of one student, references to unknown sections/courses/terms/students.
"""
from __future__ import annotations

import datetime as dt
import io
import logging
import math
import re
import threading
from typing import Any, ClassVar, Mapping

import msgspec
import pandas as pd
import pyarrow as pa
import pyarrow.json as pajson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rostering.sis.schema import (
    COLUMNS, PRIMARY_KEYS, CedsGrade, SectionStaffRole, StaffRole, TermType,
)
from rostering.sis.sources.base import (
    IncompleteReadError, Rejections, SourceConnection, SourceError, SourceRead,
)
from rostering.sis.sources.http import ApiClient, OAuthClientCredentials

log = logging.getLogger(__name__)

SOURCE = "powerschool"
YEARID_OFFSET = 1991  # PowerSchool's YEARID 36 = 2026-27; the model's school year is the spring year, 2027
TOKEN_PATH = "/oauth/access_token/"
METADATA_PATH = "/ws/v1/metadata"
QUERY_PATH = "/ws/schema/query/{name}"
TEXT = "string[pyarrow]"  # record fields while mapping: Arrow-backed text, a fraction of Python strings' memory
ACCESS_HINT = ("Ask the SIS admin to install and enable the rostering plugin (include/sis/powerschool/plugin/) and "
               "to check that the Airflow connection powerschool_api holds its client id and secret.")

# The plugin's named queries: resource -> (PowerQuery name, key fields of one record, takes the yearid argument).
# The key is what "a row repeated across pages" is checked on.
QUERIES: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "district": ("org.rostering.ps.district", ("district_number",), False),
    "schools": ("org.rostering.ps.schools", ("id",), False),
    "terms": ("org.rostering.ps.terms", ("dcid",), True),
    "courses": ("org.rostering.ps.courses", ("id",), False),
    "sections": ("org.rostering.ps.sections", ("id",), True),
    "staff": ("org.rostering.ps.staff", ("schoolstaff_id",), False),
    "section_teachers": ("org.rostering.ps.section_teachers", ("id",), True),
    "students": ("org.rostering.ps.students", ("id",), True),
    "reenrollments": ("org.rostering.ps.reenrollments", ("id",), True),
    "cc": ("org.rostering.ps.cc", ("id",), True),
    "programs": ("org.rostering.ps.programs", ("id",), True),
    "ela_status": ("org.rostering.ps.ela_status", ("id",), True),
    "student_groups": ("org.rostering.ps.student_groups", ("group_id",), False),
    "student_group_members": ("org.rostering.ps.student_group_members", ("group_id", "student_number"), False),
}

# CALPADS-style integer grades (PowerSchool stores GRADE_LEVEL as a number). TK/PK codes vary by district.
DEFAULT_GRADE_LEVELS = {-2: "PK", -1: "TK", 0: "KG", **{g: f"{g:02d}" for g in range(1, 13)}}
DEFAULT_SECTION_ROLES = {"Lead Teacher": "lead", "Co-teacher": "co_teacher", "Job-Share": "job_share",
                         "Aide": "aide"}
DEFAULT_STAFF_ROLES = {"Teacher": "teacher", "Administrator": "administrator",
                       "District Administrator": "district_administrator", "Counselor": "counselor",
                       "Aide": "aide"}
DEFAULT_PROGRAM_CODES = {"Special Education": "SPED", "Section 504": "504", "Title I": "TITLE1", "GATE": "GATE",
                         "Foster Youth": "FOSTER", "Homeless": "HOMELESS", "Socioeconomically Disadvantaged": "SED"}
DEFAULT_TERM_TYPES = {1: "schoolYear", 2: "semester", 3: "term", 4: "gradingPeriod"}
SCHOOL_FIELDS = ("school_number", "id", "alternate_school_number")
TERM_ID_FIELDS = {"id", "dcid", "schoolid", "yearid", "school_year", "abbreviation"}


class FieldNames(BaseModel):
    """Record fields (as the plugin's queries name them) that hold district-specific extension values. A district
    whose value lives elsewhere changes the one SELECT line in the plugin's query and, if it renames it, this."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    caaspp_subject: str = "caaspp_subject_area"  # sections: ELA | Math | ALL | empty
    counselor: str = "counselor_users_dcid"  # students: the counselor's USERS.DCID
    seid: str = "seid"  # staff: California SEID
    reading_level: str = "reading_level"  # students: initial reading level (Literably)
    reading_level_imputed: str = "reading_level_imputed"  # students: 1 when the level was imputed
    home_language: str = "home_language_code"  # students: CALPADS home language code
    enrollment_status: str = "enrollment_status"  # students + reenrollments: CALPADS 10 / 20 / 30
    student_email: str = "student_email"
    student_username: str = "student_web_id"


class PowerSchoolOptions(BaseModel):
    """``config/sis.yaml``'s ``powerschool:`` section (without ``conn_id``). Unknown keys fail, naming the key."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_concurrency: int = Field(8, ge=1, le=32)
    page_size: int = Field(1000, ge=1, le=100_000)  # capped by /ws/v1/metadata's maximum
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(5, ge=0, le=20)
    district_id: str = "D1"  # the model's district_id (the OneRoster org id vendors already hold)
    state_code: str = "CA"
    school_id_field: str = "school_number"  # SCHOOLS field that is the model's school_id
    school_number_field: str = "alternate_school_number"  # ... and its school_number
    term_id_format: str = "{school_year}-{abbreviation}"  # fields: id dcid schoolid yearid school_year abbreviation
    grade_levels: dict[int, CedsGrade] = Field(default_factory=lambda: dict(DEFAULT_GRADE_LEVELS))
    section_roles: dict[str, SectionStaffRole] = Field(default_factory=lambda: dict(DEFAULT_SECTION_ROLES))
    staff_roles: dict[str, StaffRole] = Field(default_factory=lambda: dict(DEFAULT_STAFF_ROLES))
    program_codes: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PROGRAM_CODES))
    program_exit_date_exclusive: bool = True  # SPENROLLMENTS.EXIT_DATE = first day out, like EXITDATE (unverified)
    ela_program_code: str | None = "ELL"  # S_CA_STU_ELA_C spans become this program (None: not read)
    term_types: dict[int, TermType] = Field(default_factory=lambda: dict(DEFAULT_TERM_TYPES))
    queries: dict[str, str] = Field(default_factory=dict)  # resource -> PowerQuery name, overriding QUERIES
    student_groups: bool = True  # read the student-group queries (a district without groups: false)
    fields: FieldNames = Field(default_factory=FieldNames)

    @field_validator("school_id_field", "school_number_field")
    @classmethod
    def _school_field(cls, value: str) -> str:
        if value not in SCHOOL_FIELDS:
            raise ValueError(f"must be one of {list(SCHOOL_FIELDS)}")
        return value

    @field_validator("term_id_format")
    @classmethod
    def _term_format(cls, value: str) -> str:
        names = set(re.findall(r"{(\w+)}", value))
        if not names or names - TERM_ID_FIELDS:
            raise ValueError(f"may use only {sorted(TERM_ID_FIELDS)}")
        return value

    @field_validator("queries")
    @classmethod
    def _queries(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(QUERIES))
        if unknown:
            raise ValueError(f"unknown resource(s) {unknown}; expected some of {sorted(QUERIES)}")
        return value


def parse_options(options: Mapping[str, Any] | None) -> PowerSchoolOptions:
    try:
        return PowerSchoolOptions.model_validate(dict(options or {}))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'powerschool'}: {e['msg']}"
                             for e in error.errors())
        raise SourceError(f"config/sis.yaml powerschool: {problems}") from None


# --------------------------------------------------------------------------------------------------------------------
# Reading


class PowerSchoolSource:
    """Reads one school year from PowerSchool into the model's 14 tables (module docstring)."""

    name: ClassVar[str] = SOURCE

    def __init__(self, *, connection: SourceConnection, options: Mapping[str, Any] | None = None):
        if not connection.host:
            raise SourceError("powerschool: the connection has no host (the PowerSchool base URL)")
        if not connection.login or not connection.password:
            raise SourceError("powerschool: the connection needs the plugin's client id (login) and secret "
                              "(password)")
        self.connection = connection
        self.options = parse_options(options)

    def query_name(self, resource: str) -> str:
        return self.options.queries.get(resource, QUERIES[resource][0])

    def _client(self) -> ApiClient:
        base = self.connection.host.rstrip("/")
        if "://" not in base:
            base = f"https://{base}"
        opts = self.options
        auth = OAuthClientCredentials(token_url=base + TOKEN_PATH, client_id=self.connection.login or "",
                                      client_secret=self.connection.password or "", source=SOURCE,
                                      timeout_s=opts.timeout_s, max_retries=opts.max_retries)
        return ApiClient(source=SOURCE, base_url=base, auth=auth, max_concurrency=opts.max_concurrency,
                         timeout_s=opts.timeout_s, max_retries=opts.max_retries, access_hint=ACCESS_HINT)

    def read(self, *, as_of: dt.date, school_year: int) -> SourceRead:
        # the whole school year is read whatever ``as_of`` is: the shared snapshot SQL decides what is active
        resources = [r for r in QUERIES if self.options.student_groups or not r.startswith("student_group")]
        if self.options.ela_program_code is None:
            resources.remove("ela_status")
        with self._client() as client:
            page_size = self._page_size(client)
            yearid = school_year - YEARID_OFFSET
            raw = _PagedReader(client, self, yearid=yearid, page_size=page_size).read_all(resources)
            client.log_progress()
            # keyed like the rejections' "file" (powerschool:<resource>), so rejected shares have their totals
            stats = {f"{SOURCE}:{resource}": counts for resource, counts in client.stats.items()}
            pull_seconds = client.pull_seconds
        rejections = Rejections()
        tables = build_tables(raw, options=self.options, school_year=school_year, rejections=rejections)
        rejected = rejections.frame()
        if len(rejected):
            log.warning("powerschool: %d record(s) rejected (%s)", len(rejected),
                        ", ".join(f"{rule}: {n}" for rule, n in rejected["rule"].value_counts().sort_index().items()))
        return SourceRead(tables=tables, rejected=rejected, stats=stats, pull_seconds=pull_seconds)

    def _page_size(self, client: ApiClient) -> int:
        body = client.get_json(METADATA_PATH, resource="metadata") or {}
        metadata = body.get("metadata", body) if isinstance(body, dict) else {}
        limit = metadata.get("schema_table_query_max_page_size") if isinstance(metadata, dict) else None
        try:
            limit = int(limit) if limit not in (None, "") else None
        except (TypeError, ValueError):
            limit = None
        size = min(self.options.page_size, limit) if limit and limit > 0 else self.options.page_size
        log.info("powerschool: page size %d (server maximum %s)", size, limit if limit else "not announced")
        return size


class _Page(msgspec.Struct):
    """A PowerQuery page as it comes: its records left as raw JSON, to be parsed in Arrow."""
    record: list[msgspec.Raw] = []


_PAGE = msgspec.json.Decoder(_Page)


def _records_table(records: list[dict]) -> pa.Table:
    """Records as Arrow text columns (the fallback: a record as an object, values that are not text)."""
    frame = pd.DataFrame.from_records(records)
    return pa.Table.from_pandas(frame.astype(TEXT) if len(frame.columns) else frame, preserve_index=False)


def _page_table(body: bytes, known: set[str]) -> tuple[pa.Table, int]:
    """One page as a table of text columns and its record count. PowerQuery answers carry every value as text (or
    leave the field out): Arrow's JSON reader parses the records against an all-text schema of the fields seen so
    far for the resource (``known``, widened when a page brings a new field), outside the interpreter lock, several
    times faster than Python dicts -- pages are parsed on the reader threads while others are in flight. A page it
    cannot take that way (a new field, a number or boolean, a record as an object) goes through Python."""
    try:
        page = _PAGE.decode(body)
    except msgspec.ValidationError:  # {"record": {...}}: a one-record answer as an object
        page = None
    if page is not None and known and page.record:
        schema = pa.schema([(name, pa.string()) for name in sorted(known)])
        try:
            table = pajson.read_json(io.BytesIO(b"\n".join(page.record)),
                                     read_options=pajson.ReadOptions(use_threads=False, block_size=len(body) + 1),
                                     parse_options=pajson.ParseOptions(explicit_schema=schema,
                                                                       unexpected_field_behavior="error"))
            return table, table.num_rows
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    decoded = msgspec.json.decode(body)
    records = decoded.get("record") or [] if isinstance(decoded, dict) else []
    if isinstance(records, dict):
        records = [records]
    known.update(*(r.keys() for r in records))
    return _records_table(records), len(records)


def _frame(tables: list[pa.Table]) -> pd.DataFrame:
    """A resource's pages as one frame of Arrow-backed text (pages may differ in the fields they carry)."""
    tables = [t for t in tables if t.num_columns]
    if not tables:
        return pd.DataFrame()
    table = pa.concat_tables(tables, promote_options="permissive")
    table = table.select(sorted(table.column_names))
    table = table.cast(pa.schema([(name, pa.string()) for name in table.column_names]))
    return table.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)


class _PagedReader:
    """Counts every resource, reads all their pages in parallel, checks that they add up (one re-read)."""

    def __init__(self, client: ApiClient, source: PowerSchoolSource, *, yearid: int, page_size: int):
        self.client, self.source, self.yearid, self.page_size = client, source, yearid, page_size
        self._fields: dict[str, set[str]] = {}  # resource -> the fields its pages have brought so far
        self._lock = threading.Lock()

    def _body(self, resource: str) -> dict[str, Any]:
        return {"yearid": str(self.yearid)} if QUERIES[resource][2] else {}

    def _count(self, resource: str) -> int:
        path = QUERY_PATH.format(name=self.source.query_name(resource)) + "/count"
        body = self.client.post_json(path, resource=resource, json=self._body(resource)) or {}
        try:
            return int(body.get("count", body.get("resource", {}).get("count")))
        except (TypeError, ValueError, AttributeError):
            raise SourceError(f"powerschool: {resource} answered its count without a number") from None

    def _page(self, item: tuple[str, int]) -> pa.Table:
        """One page as Arrow text columns: the page's JSON is not kept (a 500,000-student district's CC is millions
        of records; columns of Arrow strings hold them in a fraction of the memory)."""
        resource, page = item
        path = QUERY_PATH.format(name=self.source.query_name(resource))
        body = self.client.post_bytes(path, resource=resource, json=self._body(resource),
                                      params={"page": page, "pagesize": self.page_size})
        with self._lock:
            known = set(self._fields.setdefault(resource, set()))
        table, records = _page_table(body, known)
        with self._lock:
            self._fields[resource] |= known
        self.client.progress(resource, records=records)
        return table

    def _read(self, resources: list[str]) -> dict[str, tuple[int, pd.DataFrame]]:
        counts = dict(zip(resources, self.client.map(self._count, resources)))
        items = [(r, p) for r in resources for p in range(1, math.ceil(counts[r] / self.page_size) + 1)]
        pages = self.client.map(self._page, items)
        tables: dict[str, list[pa.Table]] = {r: [] for r in resources}
        for (resource, _), page in zip(items, pages):
            tables[resource].append(page)
        return {r: (counts[r], _frame(tables[r])) for r in resources}

    @staticmethod
    def _incomplete(resource: str, count: int, frame: pd.DataFrame) -> str | None:
        if len(frame) != count:
            return f"{len(frame)} record(s) read, the count said {count}"
        if frame.empty:
            return None
        keys = list(QUERIES[resource][1])
        if any(k not in frame.columns for k in keys) or frame[keys].isna().any(axis=None):
            return "records without their key"
        repeated = int(frame.duplicated(subset=keys).sum())
        return f"{repeated} record(s) repeated across pages (others skipped)" if repeated else None

    def read_all(self, resources: list[str]) -> dict[str, pd.DataFrame]:
        results = self._read(resources)
        bad = [r for r in resources if self._incomplete(r, *results[r])]
        if bad:
            log.warning("powerschool: %s did not add up; reading again once", ", ".join(bad))
            results.update(self._read(bad))
            for resource in bad:
                problem = self._incomplete(resource, *results[resource])
                if problem:
                    raise IncompleteReadError(f"powerschool: {resource} did not add up twice ({problem})")
        return {r: results[r][1] for r in resources}


# --------------------------------------------------------------------------------------------------------------------
# Mapping: PowerSchool records -> the model's tables (vectorised)


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    """A field as text (None for missing/blank); a field no record carries is all None."""
    if name not in frame.columns:
        return pd.Series([None] * len(frame), index=frame.index, dtype="object")
    values = frame[name].astype("string").str.strip()
    values = values.mask(values == "")
    return values.astype("object").where(values.notna(), None)


def _int(frame: pd.DataFrame, name: str) -> pd.Series:
    return pd.to_numeric(_col(frame, name), errors="coerce")


def _flag(frame: pd.DataFrame, name: str) -> pd.Series:
    text = _col(frame, name).astype("string").str.lower()
    return text.isin(["1", "true", "y", "yes"]).astype("int64")


def _lookup(keys: pd.Series, mapping: pd.Series) -> pd.Series:
    """``keys.map(mapping)`` that also works on empty and datetime lookups (missing keys -> NaN/NaT)."""
    mapping = mapping[~mapping.index.duplicated()]
    return pd.Series(mapping.reindex(keys.to_numpy()).to_numpy(), index=keys.index)


def _iso(dates: pd.Series) -> pd.Series:
    dates = pd.to_datetime(dates)
    return dates.dt.strftime("%Y-%m-%d").astype("object").where(dates.notna(), None)


class _Mapper:
    def __init__(self, raw: dict[str, pd.DataFrame], *, options: PowerSchoolOptions, school_year: int,
                 rejections: Rejections):
        self.raw = {name: frame.reset_index(drop=True) for name, frame in raw.items()}
        self.opts, self.school_year, self.rejections = options, school_year, rejections
        self.keep: dict[str, pd.Series] = {}  # resource -> rows still in play (rejections take rows out)

    def frame(self, resource: str) -> pd.DataFrame:
        frame = self.raw.get(resource)
        return frame if frame is not None else pd.DataFrame()

    def reject(self, resource: str, frame: pd.DataFrame, mask: Any, *, column: str, rule: str,
               key: str | tuple[str, ...] | None = None) -> pd.Series:
        """Reject ``frame[mask]`` (rows keep their 1-based position in the resource) and return the rows kept.
        A row is rejected once, by the first rule it breaks."""
        mask = pd.Series(mask, index=frame.index).fillna(False).astype(bool) & self._kept(resource, frame)
        keys = key or QUERIES[resource][1]
        keys = [keys] if isinstance(keys, str) else list(keys)
        if mask.any():
            keyed = frame.copy()
            for k in keys:
                if k not in keyed.columns:
                    keyed[k] = None
            self.rejections.add(f"{SOURCE}:{resource}", keyed, mask, key=keys, column=column,
                                rule=f"{SOURCE}.{resource}.{rule}", row=frame.index.to_numpy() + 1)
            self._keep_series(resource).loc[mask.index[mask.to_numpy()]] = False
        return ~mask

    def _keep_series(self, resource: str) -> pd.Series:
        if resource not in self.keep:
            self.keep[resource] = pd.Series(True, index=self.frame(resource).index)
        return self.keep[resource]

    def _kept(self, resource: str, frame: pd.DataFrame) -> pd.Series:
        return self._keep_series(resource).reindex(frame.index, fill_value=True)

    def date(self, resource: str, frame: pd.DataFrame, name: str) -> pd.Series:
        """Parse an ISO date field; a present but malformed value rejects the row."""
        text = _col(frame, name)
        parsed = pd.to_datetime(text.astype("string").str.slice(0, 10), format="%Y-%m-%d", errors="coerce")
        self.reject(resource, frame, text.notna() & parsed.isna(), column=name, rule="date_malformed")
        return parsed

    def grade(self, resource: str, frame: pd.DataFrame, name: str, *, required: bool = True) -> pd.Series:
        numbers = _int(frame, name)
        codes = numbers.map(self.opts.grade_levels)
        unknown = codes.isna() & (numbers.notna() | required)
        self.reject(resource, frame, unknown, column=name, rule="grade_unknown")
        return codes.astype("object").where(codes.notna(), None)

    def alive(self, resource: str, frame: pd.DataFrame) -> pd.DataFrame:
        return frame[self._kept(resource, frame)]

    # -- tables --------------------------------------------------------------------------------------------------
    def district(self) -> pd.DataFrame:
        raw = self.frame("district").head(1)
        return pd.DataFrame({
            "district_id": [self.opts.district_id], "name": list(_col(raw, "district_name")) or [None],
            "cds_district_code": list(_col(raw, "district_number")) or [None],
            "nces_id": list(_col(raw, "nces_id")) or [None], "state_code": [self.opts.state_code],
        })

    def schools(self, district_number: str | None) -> pd.DataFrame:
        raw = self.frame("schools")
        low = self.grade("schools", raw, "low_grade", required=False)
        high = self.grade("schools", raw, "high_grade", required=False)
        state_number = _col(raw, "state_school_number")
        cds = (district_number + state_number.astype("string")) if district_number else None
        out = pd.DataFrame({
            "school_id": _col(raw, self.opts.school_id_field), "district_id": self.opts.district_id,
            "school_number": _col(raw, self.opts.school_number_field), "name": _col(raw, "name"),
            "cds_code": pd.Series(cds, index=raw.index).astype("object").where(state_number.notna(), None)
            if cds is not None else None,
            "nces_id": _col(raw, "nces_id"), "school_level": _col(raw, "school_level"), "low_grade": low,
            "high_grade": high, "classification": _col(raw, "classification"),
            "is_active": 1 - _flag(raw, "inactive"),
            "excluded_from_state_reporting": _flag(raw, "state_excludefromreporting"),
        }, index=raw.index)
        # PowerSchool's other tables say SCHOOLID = SCHOOLS.SCHOOL_NUMBER; the model's id may be another field.
        self.school_of = pd.Series(out["school_id"].to_numpy(), index=_col(raw, "school_number").to_numpy())
        return self.alive("schools", out)

    def map_school(self, ps_school: pd.Series) -> pd.Series:
        return _lookup(ps_school, self.school_of).astype("object")

    def terms(self) -> pd.DataFrame:
        raw = self.frame("terms")
        first, last = self.date("terms", raw, "firstday"), self.date("terms", raw, "lastday")
        yearid = _int(raw, "yearid")
        schoolid = _col(raw, "schoolid").fillna("0")
        fields = pd.DataFrame({"id": _col(raw, "id"), "dcid": _col(raw, "dcid"), "schoolid": schoolid,
                               "yearid": _col(raw, "yearid"), "abbreviation": _col(raw, "abbreviation"),
                               "school_year": (yearid + YEARID_OFFSET).astype("Int64").astype("string")})
        term_id = pd.Series([self.opts.term_id_format.format(**row) for row in fields.to_dict("records")],
                            index=raw.index, dtype="object")  # terms are few (a handful per school)
        portion = _int(raw, "portion")
        is_year = _flag(raw, "isyearrec") == 1
        term_type = portion.map(self.opts.term_types).astype("object").where(~is_year, "schoolYear")
        self.reject("terms", raw, term_type.isna(), column="portion", rule="term_type_unknown")
        district_wide = schoolid == "0"
        out = pd.DataFrame({
            "term_id": term_id, "school_id": self.map_school(schoolid).where(~district_wide, None),
            "school_year": (yearid + YEARID_OFFSET).astype("Int64"), "term_type": term_type,
            "title": _col(raw, "name"), "start_date": _iso(first), "end_date": _iso(last), "parent_term_id": None,
        }, index=raw.index)
        out["parent_term_id"] = _parent_terms(schoolid, yearid, portion.where(~is_year, 1), first, last, term_id)
        # lookups: (TERMS.ID, SCHOOLID) -> model term id and last day; the year term's last day per school
        self.term_key = pd.Series(term_id.to_numpy(), index=pd.MultiIndex.from_arrays([_col(raw, "id"), schoolid]))
        self.term_last = pd.Series(last.to_numpy(), index=term_id.to_numpy())
        year_rows = raw.index[is_year & last.notna()]
        self.year_last = pd.Series(last[year_rows].to_numpy(), index=schoolid[year_rows].to_numpy())
        self.year_last = self.year_last[~self.year_last.index.duplicated()]
        out = self._one_row_per_term(raw, out)
        out["school_year"] = out["school_year"].astype("int64")
        return out

    def _one_row_per_term(self, raw: pd.DataFrame, out: pd.DataFrame) -> pd.DataFrame:
        """PowerSchool copies the district calendar into every school (same TERMS.ID per school). Copies that agree
        are one term (district-wide when at several schools); copies that disagree under one model term id are
        rejected -- include ``{schoolid}`` in ``term_id_format`` for schools with their own calendars."""
        alive = self.alive("terms", out)
        signature = ["school_year", "term_type", "title", "start_date", "end_date", "parent_term_id"]
        disagree = alive.groupby("term_id", sort=False)[signature].nunique(dropna=False).gt(1).any(axis=1)
        self.reject("terms", raw, out["term_id"].isin(disagree.index[disagree]), column="id", rule="duplicate_id")
        alive = self.alive("terms", out)
        copies = alive.groupby("term_id", sort=False)["term_id"].transform("size")
        alive = alive.assign(school_id=alive["school_id"].where(copies == 1, None))
        return alive.drop_duplicates("term_id")

    def lookup_term(self, termid: pd.Series, schoolid: pd.Series) -> pd.Series:
        """A section's term: the school's own term of that ID, else the district-wide one (SCHOOLID 0)."""
        own = pd.Series(self.term_key.reindex(pd.MultiIndex.from_arrays([termid, schoolid])).to_numpy(),
                        index=termid.index)
        district = pd.Series(self.term_key.reindex(pd.MultiIndex.from_arrays([termid, pd.Series(
            "0", index=termid.index)])).to_numpy(), index=termid.index)
        return own.fillna(district).astype("object")

    def year_end(self, schoolid: pd.Series) -> pd.Series:
        own = _lookup(schoolid, self.year_last)
        return own.fillna(self.year_last.get("0", pd.NaT)) if len(self.year_last) else own

    def courses(self) -> pd.DataFrame:
        raw = self.frame("courses")
        out = pd.DataFrame({"course_id": _col(raw, "id"), "course_number": _col(raw, "course_number"),
                            "title": _col(raw, "course_name"), "department": _col(raw, "sched_department"),
                            "subject_area": _col(raw, "subject_area")}, index=raw.index)
        self.course_of = pd.Series(out["course_id"].to_numpy(), index=out["course_number"].to_numpy())
        return out

    def sections(self) -> pd.DataFrame:
        raw = self.frame("sections")
        ps_school = _col(raw, "schoolid")
        term_id = self.lookup_term(_col(raw, "termid"), ps_school)
        course_id = _col(raw, "course_number").map(self.course_of)
        school_id = self.map_school(ps_school)
        self.reject("sections", raw, school_id.isna(), column="schoolid", rule="school_unknown")
        self.reject("sections", raw, course_id.isna(), column="course_number", rule="course_unknown")
        self.reject("sections", raw, term_id.isna(), column="termid", rule="term_unknown")
        expression = _col(raw, "expression")
        subject = _col(raw, self.opts.fields.caaspp_subject).astype("string")
        subject = subject.str.upper().map({"ELA": "ELA", "MATH": "Math", "ALL": "ALL"})
        class_type = _col(raw, "class_type").astype("string").str.lower()
        out = pd.DataFrame({
            "section_id": _col(raw, "id"), "school_id": school_id, "course_id": course_id.astype("object"),
            "term_id": term_id, "section_number": _col(raw, "section_number"),
            "period_code": expression.astype("string").str.extract(r"^([^(]*)", expand=False).str.strip()
            .astype("object").where(expression.notna(), None),
            "class_expression": expression, "room": _col(raw, "room"),
            "caaspp_subject": subject.astype("object").where(subject.notna(), None),
            "class_type": class_type.where(class_type == "homeroom", "scheduled").astype("object"),
            "is_active": 1 - _flag(raw, "inactive"), "start_date": None, "end_date": None,
        }, index=raw.index)
        out = self.alive("sections", out)
        self.section_term_last = pd.Series(_lookup(out["term_id"], self.term_last).to_numpy(),
                                           index=out["section_id"].to_numpy())
        return out

    def staff(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        raw = self.frame("staff")
        users = _col(raw, "users_dcid")
        ps_school = _col(raw, "schoolid")
        active = (_int(raw, "status") == 1).astype("int64")
        role = _col(raw, "title").map(self.opts.staff_roles).fillna("other").astype("object")
        people = pd.DataFrame({
            "staff_id": users, "first_name": _col(raw, "first_name"), "middle_name": _col(raw, "middle_name"),
            "last_name": _col(raw, "last_name"), "email": _col(raw, "email_addr"),
            "username": _col(raw, "teacherloginid"), "state_educator_id": _col(raw, self.opts.fields.seid),
            "staff_role": role, "is_active": active, "initial_password": None,
        }, index=raw.index)
        people["is_active"] = people.groupby("staff_id", sort=False)["is_active"].transform("max")
        staff = people.drop_duplicates("staff_id").sort_values("staff_id", kind="stable").reset_index(drop=True)
        school_id = self.map_school(ps_school)
        at_school = ps_school.ne("0") & school_id.notna()  # SCHOOLID 0 = the district office
        staff_school = pd.DataFrame({
            "staff_id": users, "school_id": school_id,
            "is_home": (_col(raw, "homeschoolid") == ps_school).astype("int64"),
        })[at_school].drop_duplicates(["staff_id", "school_id"])
        self.staff_of = pd.Series(users.to_numpy(), index=_col(raw, "schoolstaff_id").to_numpy())
        return staff, staff_school.reset_index(drop=True)

    def section_staff(self, section_ids: pd.Index) -> pd.DataFrame:
        raw = self.frame("section_teachers")
        staff_id = _col(raw, "teacherid").map(self.staff_of)
        section_id = _col(raw, "sectionid")
        role = _col(raw, "role_name").map(self.opts.section_roles)
        start, end = self.date("section_teachers", raw, "start_date"), self.date("section_teachers", raw, "end_date")
        self.reject("section_teachers", raw, staff_id.isna(), column="teacherid", rule="teacher_unknown")
        self.reject("section_teachers", raw, ~section_id.isin(section_ids), column="sectionid",
                    rule="section_unknown")
        self.reject("section_teachers", raw, role.isna(), column="role_name", rule="role_unknown")
        self.reject("section_teachers", raw, start.isna(), column="start_date", rule="date_missing")
        term_last = _lookup(section_id, self.section_term_last)
        end = end.where(~(end >= term_last))  # through the term's last day = assigned to the end: open
        out = pd.DataFrame({"section_id": section_id, "staff_id": staff_id.astype("object"),
                            "staff_role": role.astype("object"), "start_date": _iso(start), "end_date": _iso(end)})
        return self.alive("section_teachers", out)

    def students(self) -> pd.DataFrame:
        raw = self.frame("students")
        grade = self.grade("students", raw, "grade_level")
        birth = self.date("students", raw, "dob")
        f = self.opts.fields
        out = pd.DataFrame({
            "student_id": _col(raw, "student_number"), "ssid": _col(raw, "state_studentnumber"),
            "first_name": _col(raw, "first_name"), "middle_name": _col(raw, "middle_name"),
            "last_name": _col(raw, "last_name"), "grade_level": grade, "birth_date": _iso(birth),
            "email": _col(raw, f.student_email), "username": _col(raw, f.student_username),
            "counselor_staff_id": _col(raw, f.counselor), "home_language_code": _col(raw, f.home_language),
            "reading_level": _col(raw, f.reading_level), "reading_level_imputed": _flag(raw, f.reading_level_imputed),
            "excluded_from_state_reporting": _flag(raw, "state_excludefromreporting"),
        }, index=raw.index)
        kept = self.alive("students", out)
        # PowerSchool's other tables key students by STUDENTS.ID (CC, REENROLLMENTS) or DCID (extensions). A
        # rejected student is still known: their other rows leave with them, reported once (on the student).
        self.student_of = pd.Series(out["student_id"].to_numpy(), index=_col(raw, "id").to_numpy())
        self.student_of_dcid = pd.Series(out["student_id"].to_numpy(), index=_col(raw, "dcid").to_numpy())
        self.kept_students = pd.Index(kept["student_id"])
        return kept

    def _spans(self, resource: str, raw: pd.DataFrame, *, student: pd.Series, start_col: str, end_col: str,
               exclusive_end: bool) -> tuple[pd.Series, pd.Series]:
        """Start and inclusive end of each row; unknown students and malformed dates are rejected."""
        self.reject(resource, raw, student.isna(), column="studentid", rule="student_unknown")
        start = self.date(resource, raw, start_col)
        end = self.date(resource, raw, end_col)
        self.reject(resource, raw, start.isna() & self._kept(resource, raw), column=start_col, rule="date_missing")
        if exclusive_end:
            end = end - pd.Timedelta(days=1)
        return start, end

    def school_enrollments(self) -> pd.DataFrame:
        parts = []
        for resource, student in (("students", None), ("reenrollments", "studentid")):
            raw = self.frame(resource)
            if student is None and not raw.empty:  # a student with no enrollment row this year: none to map
                raw = raw[_col(raw, "entrydate").notna()]
            if raw.empty:
                continue
            student_id = (_col(raw, "student_number") if student is None
                          else _col(raw, student).map(self.student_of).astype("object"))
            start, end = self._spans(resource, raw, student=student_id, start_col="entrydate", end_col="exitdate",
                                     exclusive_end=True)
            ps_school = _col(raw, "schoolid")
            end = end.where(~(end >= self.year_end(ps_school)))  # to the year's end: still enrolled
            part = pd.DataFrame({
                "student_id": student_id, "school_id": self.map_school(ps_school), "entry": start, "exit": end,
                "enrollment_status": _col(raw, self.opts.fields.enrollment_status),
                "excluded_from_state_reporting": _flag(raw, "enrollment_excluded"),
                "_resource": resource, "_row": raw.index + 1, "_key": _col(raw, "id"),
            })
            self.reject(resource, raw, part["school_id"].isna(), column="schoolid", rule="school_unknown")
            self.reject(resource, raw, part["enrollment_status"].isna(), column=self.opts.fields.enrollment_status,
                        rule="enrollment_status_missing")
            never = part["exit"].notna() & (part["exit"] < part["entry"])  # EXITDATE <= ENTRYDATE: never attended
            parts.append(part[self._kept(resource, raw) & ~never])
        rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            columns=["student_id", "school_id", "entry", "exit", "enrollment_status",
                     "excluded_from_state_reporting", "_resource", "_row", "_key"])
        rows = self._reject_overlapping_primary(rows)
        out = pd.DataFrame({"student_id": rows["student_id"], "school_id": rows["school_id"],
                            "entry_date": _iso(rows["entry"]), "exit_date": _iso(rows["exit"]),
                            "enrollment_status": rows["enrollment_status"],
                            "excluded_from_state_reporting": rows["excluded_from_state_reporting"].astype("int64")})
        return out.drop_duplicates(["student_id", "school_id", "entry_date"]).reset_index(drop=True)

    def _reject_overlapping_primary(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Two primary (status 10) enrollments of one student that overlap cannot both be right: reject both."""
        primary = rows[rows["enrollment_status"] == "10"].sort_values(["student_id", "entry"], kind="stable")
        if primary.empty:
            return rows
        ends = pd.to_datetime(primary["exit"]).fillna(pd.Timestamp.max)
        entries = pd.to_datetime(primary["entry"])
        student = primary["student_id"]
        prior_end = ends.groupby(student).cummax().groupby(student).shift()
        overlaps_prior = entries <= prior_end
        # the earlier row of an overlapping pair: its end reaches the next row's start
        next_start = entries.groupby(student).shift(-1)
        reaches_next = next_start.notna() & (next_start <= ends)
        bad = primary.index[(overlaps_prior | reaches_next).to_numpy()]
        for resource in ("students", "reenrollments"):
            picked = rows.loc[bad][rows.loc[bad, "_resource"] == resource]
            if picked.empty:
                continue
            raw = self.frame(resource)
            mask = pd.Series(False, index=raw.index)
            mask[picked["_row"].to_numpy() - 1] = True
            self.reject(resource, raw, mask, column="entrydate", rule="overlapping_primary_enrollment")
        return rows.drop(index=bad)

    def section_enrollments(self, section_ids: pd.Index) -> pd.DataFrame:
        raw = self.frame("cc")
        student = _col(raw, "studentid").map(self.student_of).astype("object")
        start, end = self._spans("cc", raw, student=student, start_col="dateenrolled", end_col="dateleft",
                                 exclusive_end=True)
        signed = _int(raw, "sectionid")
        section_id = signed.abs().astype("Int64").astype("string").astype("object")
        dropped = signed < 0  # a dropped class keeps its row with the section id negated
        self.reject("cc", raw, ~section_id.isin(section_ids), column="sectionid", rule="section_unknown")
        term_last = _lookup(section_id, self.section_term_last)
        end = end.where(dropped | ~(end >= term_last))  # enrolled to the term's end: open
        never = end.notna() & (end < start)  # DATELEFT <= DATEENROLLED: never attended
        out = pd.DataFrame({"student_id": student, "section_id": section_id, "entry_date": _iso(start),
                            "exit_date": _iso(end)})
        out = out[self._kept("cc", raw) & ~never]
        return out.drop_duplicates(["student_id", "section_id", "entry_date"]).reset_index(drop=True)

    def programs(self) -> pd.DataFrame:
        parts = []
        raw = self.frame("programs")
        if not raw.empty:
            code = _col(raw, "program_name").map(self.opts.program_codes)
            known = code.notna()  # other specprog programs are not roster data: not read, not rejected
            sub = raw[known]
            student = _col(sub, "studentid").map(self.student_of).astype("object")
            start, end = self._spans("programs", sub, student=student, start_col="enter_date",
                                     end_col="exit_date", exclusive_end=self.opts.program_exit_date_exclusive)
            part = pd.DataFrame({"student_id": student, "program_code": code[known].astype("object"),
                                 "status_code": _col(sub, "status_code"), "start": start, "end": end})
            parts.append(part[self._kept("programs", sub)])
        raw = self.frame("ela_status")
        if not raw.empty and self.opts.ela_program_code:
            student = _col(raw, "studentsdcid").map(self.student_of_dcid).astype("object")
            start, end = self._spans("ela_status", raw, student=student, start_col="elastatusstartdate",
                                     end_col="elastatusenddate", exclusive_end=False)
            part = pd.DataFrame({"student_id": student, "program_code": self.opts.ela_program_code,
                                 "status_code": _col(raw, "elastatus"), "start": start, "end": end})
            parts.append(part[self._kept("ela_status", raw)])
        if not parts:
            return _empty("student_program")
        rows = pd.concat(parts, ignore_index=True)
        rows = rows[rows["end"].isna() | (rows["end"] >= rows["start"])]
        out = pd.DataFrame({"student_id": rows["student_id"], "program_code": rows["program_code"],
                            "status_code": rows["status_code"], "start_date": _iso(rows["start"]),
                            "end_date": _iso(rows["end"])})
        return out.drop_duplicates(["student_id", "program_code", "start_date"]).reset_index(drop=True)

    def student_groups(self, staff_ids: pd.Index) -> tuple[pd.DataFrame, pd.DataFrame]:
        raw = self.frame("student_groups")
        if raw.empty:
            return _empty("student_group"), _empty("student_group_member")
        school_id = self.map_school(_col(raw, "schoolid"))
        self.reject("student_groups", raw, school_id.isna(), column="schoolid", rule="school_unknown")
        owner = _col(raw, "owner_users_dcid")
        owner = owner.where(owner.isin(staff_ids), None)
        groups = self.alive("student_groups", pd.DataFrame({
            "student_group_id": _col(raw, "group_id"), "school_id": school_id, "group_code": _col(raw, "group_code"),
            "name": _col(raw, "group_name"), "owner_staff_id": owner}))
        members_raw = self.frame("student_group_members")
        members = pd.DataFrame({"student_group_id": _col(members_raw, "group_id"),
                                "student_id": _col(members_raw, "student_number")})
        known = set(self.student_of.dropna().to_numpy())
        self.reject("student_group_members", members_raw,
                    ~members["student_group_id"].isin(groups["student_group_id"]) | ~members["student_id"].isin(known),
                    column="group_id", rule="group_or_student_unknown")
        return groups, self.alive("student_group_members", members)


def _empty(table: str) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in COLUMNS[table]})


def _parent_terms(schoolid: pd.Series, yearid: pd.Series, portion: pd.Series, first: pd.Series, last: pd.Series,
                  term_id: pd.Series) -> pd.Series:
    """Each term's parent: the narrowest term of the same school and year with a smaller PORTION (a longer span)
    whose dates contain it. Terms are few, so this loops over them."""
    terms = pd.DataFrame({"school": schoolid, "year": yearid, "portion": portion, "first": first, "last": last,
                          "term_id": term_id})
    parents = pd.Series(None, index=terms.index, dtype="object")
    for index, term in terms.iterrows():
        candidates = terms[(terms["school"] == term["school"]) & (terms["year"] == term["year"])
                           & (terms["portion"] < term["portion"]) & (terms["first"] <= term["first"])
                           & (terms["last"] >= term["last"])]
        if len(candidates):
            parents[index] = candidates.sort_values(["portion", "first"], kind="stable").iloc[-1]["term_id"]
    return parents


def build_tables(raw: dict[str, pd.DataFrame], *, options: PowerSchoolOptions, school_year: int,
                 rejections: Rejections) -> dict[str, pd.DataFrame]:
    """The model's 14 tables from the plugin queries' records (``raw``: resource -> records as a frame)."""
    m = _Mapper(raw, options=options, school_year=school_year, rejections=rejections)
    district = m.district()
    schools = m.schools(district["cds_district_code"].iloc[0])
    terms = m.terms()
    courses = m.courses()
    sections = m.sections()
    staff, staff_school = m.staff()
    section_ids = pd.Index(sections["section_id"])
    section_staff = m.section_staff(section_ids)
    students = m.students()
    unknown_counselor = students["counselor_staff_id"].notna() & ~students["counselor_staff_id"].isin(staff["staff_id"])
    if unknown_counselor.any():  # the student stays; a dangling reference would break the staff foreign key
        log.warning("powerschool: %d student(s) name a counselor who is not a staff member; left empty",
                    int(unknown_counselor.sum()))
        students.loc[unknown_counselor, "counselor_staff_id"] = None
    school_enrollment = m.school_enrollments()
    section_enrollment = m.section_enrollments(section_ids)
    programs = m.programs()
    groups, members = m.student_groups(pd.Index(staff["staff_id"]))
    # rows of a student rejected in STUDENTS (or a rejected enrollment row, for the enrollments) follow the student
    students_kept = m.kept_students
    school_enrollment = school_enrollment[school_enrollment["student_id"].isin(students_kept)]
    section_enrollment = section_enrollment[section_enrollment["student_id"].isin(students_kept)]
    programs = programs[programs["student_id"].isin(students_kept)]
    members = members[members["student_id"].isin(students_kept)]
    tables = {
        "district": district, "school": schools, "term": terms, "course": courses, "section": sections,
        "staff": staff, "staff_school": staff_school, "section_staff": section_staff, "student": students,
        "school_enrollment": school_enrollment, "section_enrollment": section_enrollment,
        "student_program": programs, "student_group": groups, "student_group_member": members,
    }
    return {name: _finish(name, frame) for name, frame in tables.items()}


INT_COLUMNS = {"is_active", "excluded_from_state_reporting", "is_home", "reading_level_imputed", "school_year"}


def _finish(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Model column order, text as object with None, flags and years as int64, a stable order by key."""
    frame = frame.reindex(columns=list(COLUMNS[table])).reset_index(drop=True)
    for column in frame.columns:
        if column in INT_COLUMNS:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").fillna(0).astype("int64")
        else:
            values = frame[column].astype("object")
            frame[column] = values.where(pd.notna(values), None)
    return frame.sort_values(PRIMARY_KEYS[table], kind="stable").reset_index(drop=True)


__all__ = ["PowerSchoolSource", "PowerSchoolOptions", "QUERIES", "YEARID_OFFSET", "build_tables", "parse_options"]
