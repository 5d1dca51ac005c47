"""The Aeries source: the Aeries API v5 (district certificate in the ``AERIES-CERT`` header) read into the model.

One school year (``DatabaseYear``) is read per night, per school and in bulk -- never one request per student:

    GET /api/v5/systeminfo                                        the database years the API offers
    GET /api/v5/schools                                           LOC: the district (code 0) and its schools
    GET /api/v5/courses                                           CRS: every district course
    GET /api/v5/staff                                             STF (+ UGN, USR): every staff member
    GET /api/v5/schools/{sc}/terms                                TRM
    GET /api/v5/schools/{sc}/sections                             MST/SMS with SectionStaffMembers (SSE/SSM)
    GET /api/v5/schools/{sc}/teachers                             TCH (only when counselor numbers are teacher numbers)
    GET /api/v5/schools/{sc}/students                 paged       STU: one record per student PER SCHOOL
    GET /api/v5/schools/{sc}/students/0/extended      paged       STU + LAC: English-learner dates (when configured)
    GET /api/v5/schools/{sc}/enrollment/0/year/{yyyy} paged       ENR: enrollment history of the academic year
    GET /api/v5/schools/{sc}/classes                  paged       SEC: every class schedule record of the school
    GET /api/v5/schools/{sc}/students/0/programs      paged       PGM/GTE/FOF/CSE/FRE: the school's program records
    GET /api/v5/schools/{sc}/StudentGroups                        SGD/SGM/SGS

Paged resources use ``StartingRecord``/``EndingRecord``. Aeries announces no total, so a read must add up by
itself: a page longer than asked, a short page followed by more records, or a key repeated across pages raises
``IncompleteReadError`` for the resource (after one retry of that school's resource).

Everything district-specific is an option (``AeriesOptions``, config/sis.yaml ``aeries:``): which fields carry
district extensions (school number, section id, reading level, CALPADS enrollment status, exclusions), the program
code map, the staff role code map, the grade map, the CAASPP subject rule. docs/sis-sources.md (Aeries) documents each
endpoint and field with its source, the mapping table, and what is unverified.

Records that cannot be mapped go to ``rejected`` with the resource (a path template, never an id), row, SIS key,
column and rule; nothing logged or raised carries a value of the data.
"""
from __future__ import annotations

import datetime as dt
import logging
import string
from typing import Any, ClassVar, Literal, Mapping

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rostering.sis.schema import (
    COLUMNS, STAFF_ROLES, CaasppSubject, CedsGrade, EnglishLearnerStatus, SchoolLevel, SectionStaffRole, StaffRole,
    TermType,
)
from rostering.sis.sources.base import (
    IncompleteReadError, Rejections, SourceConnection, SourceError, SourceRead, empty_table,
)
from rostering.sis.sources.http import ApiClient, HeaderAuth

log = logging.getLogger(__name__)

SOURCE = "aeries"
CERT_HEADER = "AERIES-CERT"
ACCESS_HINT = ("Ask the district's Aeries administrator to grant the API certificate this security area "
               "(Aeries > Security > API Security); docs/sis-sources.md (Aeries) lists the areas.")

# Resource names (path templates: they name what was read, never whose record it was).
R_SYSTEM = "/api/v5/systeminfo"
R_SCHOOLS = "/api/v5/schools"
R_COURSES = "/api/v5/courses"
R_STAFF = "/api/v5/staff"
R_TERMS = "/api/v5/schools/{sc}/terms"
R_SECTIONS = "/api/v5/schools/{sc}/sections"
R_TEACHERS = "/api/v5/schools/{sc}/teachers"
R_STUDENTS = "/api/v5/schools/{sc}/students"
R_ENROLLMENT = "/api/v5/schools/{sc}/enrollment/0/year/{yyyy}"
R_CLASSES = "/api/v5/schools/{sc}/classes"
R_EXTENDED = "/api/v5/schools/{sc}/students/0/extended"
R_PROGRAMS = "/api/v5/schools/{sc}/students/0/programs"
R_GROUPS = "/api/v5/schools/{sc}/StudentGroups"

# resource -> (path template, paged?, key columns that must not repeat within one school's read)
PER_SCHOOL: dict[str, tuple[str, bool, tuple[str, ...]]] = {
    R_TERMS: ("/api/v5/schools/{sc}/terms", False, ("TermCode",)),
    R_SECTIONS: ("/api/v5/schools/{sc}/sections", False, ("SectionNumber",)),
    R_TEACHERS: ("/api/v5/schools/{sc}/teachers", False, ("TeacherNumber",)),
    R_STUDENTS: ("/api/v5/schools/{sc}/students", True, ("StudentID",)),
    R_EXTENDED: ("/api/v5/schools/{sc}/students/0/extended", True, ("StudentID",)),
    R_ENROLLMENT: ("/api/v5/schools/{sc}/enrollment/0/year/{yyyy}", True, ("StudentID", "EnterDate")),
    R_CLASSES: ("/api/v5/schools/{sc}/classes", True, ("StudentID", "SequenceNumber")),
    R_PROGRAMS: ("/api/v5/schools/{sc}/students/0/programs", True,
                 ("StudentID", "ProgramCode", "EligibilityStartDate", "ParticipationStartDate")),
    R_GROUPS: ("/api/v5/schools/{sc}/StudentGroups", False, ("GroupId",)),
}

TRUE_VALUES = ("Y", "YES", "TRUE", "1", "T", "X")


class AeriesOptions(BaseModel):
    """config/sis.yaml ``aeries:`` (without ``conn_id``). Unknown keys fail, naming the key. Field-name options
    name a property of the Aeries JSON record; ``None`` turns the feature off. Defaults match the local stand-in
    (rostering.devservers.aeries_server); docs/sis-sources.md (Aeries) says what to set for a real district."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- reading ---------------------------------------------------------------------------------------------
    max_concurrency: int = Field(8, ge=1, le=32)
    page_size: int = Field(1000, ge=1, le=100_000)
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(5, ge=0, le=20)
    backoff_s: float = Field(0.5, ge=0)
    # "auto": the run's school year as Aeries names it (2026-2027 for 2027), checked against systeminfo;
    # "default": no DatabaseYear parameter (the API's default year); or an explicit "2026-2027".
    database_year: str = Field("auto", pattern=r"^(auto|default|\d{4}-\d{4})$")
    skip_schools: list[int] = Field(default_factory=list)  # e.g. 999 "ZZZ Inactive Students", summer schools
    soft_delete_field: str | None = "DEL"  # records flagged here (a non-blank/true value) are left out

    # -- district and schools --------------------------------------------------------------------------------
    district_id: str = "D1"
    school_number_field: str | None = "SchoolNumber"  # missing/blank -> the Aeries school code
    school_levels: dict[str, SchoolLevel] = Field(default_factory=dict)  # school code -> level; else from the grades
    district_wide_terms: bool = True  # one term per TermCode for the district (school_id NULL)
    term_types: dict[str, TermType] = Field(default_factory=lambda: {
        "Y": "schoolYear", "S1": "semester", "S2": "semester", "F": "semester", "S": "semester",
        "T1": "term", "T2": "term", "T3": "term",
        "Q1": "gradingPeriod", "Q2": "gradingPeriod", "Q3": "gradingPeriod", "Q4": "gradingPeriod",
        "1": "gradingPeriod", "2": "gradingPeriod", "3": "gradingPeriod", "4": "gradingPeriod",
    })

    # -- courses and sections --------------------------------------------------------------------------------
    course_number_field: str | None = "CourseNumber"  # missing/blank -> the course ID (CRS.CN)
    course_title_field: str = "Title"
    # CAASPP subject of a section: Aeries has no section field (its CERS extract picks the subject per profile),
    # so it comes from a course field through a map; per-course overrides win.
    caaspp_subject_course_field: str = "SubjectArea1Code"
    caaspp_subject_map: dict[str, CaasppSubject] = Field(default_factory=lambda: {
        "English Language Arts": "ELA", "Mathematics": "Math", "Multiple Subjects": "ALL"})
    caaspp_subject_by_course: dict[str, CaasppSubject] = Field(default_factory=dict)
    section_id_field: str | None = "SectionID"  # missing/blank -> section_id_format
    section_id_format: str = "{SchoolCode}-{SectionNumber}"
    class_expression_format: str | None = "{Period}(A)"
    # SectionStaffMembers: StaffRoleCode -> model role; a blank code is lead when IsPrimaryTeacher, else
    # secondary_staff_role. A non-blank code missing here is rejected.
    staff_role_map: dict[str, SectionStaffRole] = Field(default_factory=lambda: {
        "LD": "lead", "CO": "co_teacher", "JS": "job_share", "AI": "aide"})
    secondary_staff_role: SectionStaffRole = "co_teacher"

    # -- staff -----------------------------------------------------------------------------------------------
    staff_role_field: str | None = "Title"  # its value if it is a model staff role, else staff_role_by_title
    staff_role_by_title: dict[str, StaffRole] = Field(default_factory=dict)
    staff_role_default: StaffRole = "teacher"
    staff_username_field: str = "NetworkLoginID"

    # -- students --------------------------------------------------------------------------------------------
    grade_map: dict[int, CedsGrade] = Field(default_factory=lambda: {
        -2: "PK", -1: "TK", 0: "KG", **{g: f"{g:02d}" for g in range(1, 13)}})
    student_username_field: str = "NetworkLoginID"
    # CounselorNumber is documented as STU.CNS or the TCH.ID behind STU.CU, i.e. a staff id; "teacher_number" reads
    # it as a school-based TCH.TN resolved through /schools/{sc}/teachers
    counselor_number_kind: Literal["staff_id", "teacher_number"] = "staff_id"
    teacher_number_field: str = "TeacherNumber"  # TCH.TN in the teachers records
    teacher_staff_id_field: str = "StaffID1"  # TCH.ID (the staff id) in the teachers records
    reading_level_field: str | None = "UserCode1"
    reading_level_imputed_field: str | None = "UserCode2"
    student_excluded_field: str | None = "UserCode3"

    # -- enrollments -----------------------------------------------------------------------------------------
    leave_date_inclusive: bool = True  # ENR.LD is the last day enrolled (else the first day not enrolled)
    enrollment_status_field: str | None = "EnrollmentStatusCode"
    enrollment_status_default: str = "10"
    enrollment_excluded_field: str | None = "ExcludeFromStateReporting"
    class_end_at_term_end_is_open: bool = True  # SEC DateEnded on/after the section's term end -> open (NULL)

    # -- programs --------------------------------------------------------------------------------------------
    # Aeries/CALPADS program codes -> model programs; codes not listed are left out (counted in the log)
    program_code_map: dict[str, str] = Field(default_factory=lambda: {
        "144": "SPED", "101": "504", "127": "GATE", "181": "SED", "182": "SED", "190": "FOSTER", "191": "HOMELESS",
        "122": "TITLE1"})
    program_start_field: str = "EligibilityStartDate"
    program_end_field: str = "EligibilityEndDate"
    # model program -> the ExtendedProperties entry (Name) whose Value is the status code
    program_status_properties: dict[str, str] = Field(default_factory=lambda: {
        "SPED": "DisabilityCode", "HOMELESS": "HomelessDwellingTypeCode"})
    # English learners: STU.LF -> ELL status code; dates from LAC via Student Information Extended
    language_fluency_map: dict[str, EnglishLearnerStatus] = Field(default_factory=lambda: {"L": "EL", "R": "RFEP", "I": "IFEP"})
    el_start_date_field: str | None = "EnglishLearnerStartDate"
    el_end_date_field: str | None = "EnglishLearnerEndDate"
    rfep_date_field: str | None = "DateRedesignatedFluentEnglishProficient"

    # -- student groups --------------------------------------------------------------------------------------
    group_id_format: str = "{GroupId}"  # SGD.GI is numbered per school: "{SchoolCode}-{GroupId}" if it repeats


def parse_options(options: Mapping | None) -> AeriesOptions:
    try:
        return AeriesOptions.model_validate(dict(options or {}))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'aeries'}: {e['msg']}"
                             for e in error.errors())
        raise SourceError(f"config/sis.yaml aeries: {problems}") from None


# --------------------------------------------------------------------------------------------------------------------
# Vectorised value helpers (Aeries JSON: "" for blank, 0 for "no number", dates as "YYYY-MM-DDT00:00:00")


def column(frame: pd.DataFrame, name: str | None) -> pd.Series:
    """``frame[name]`` as object values, or all-None when the record has no such property (or ``name`` is None)."""
    if name is None or name not in frame.columns:
        return pd.Series([None] * len(frame), index=frame.index, dtype=object)
    return frame[name].astype(object)


def text(series: pd.Series) -> pd.Series:
    """Strings; blank and missing -> None (vectorised; JSON integers keep their digits)."""
    s = series.astype("string")
    s = s.mask(s.str.strip() == "")
    return s.astype(object).where(s.notna(), None)


def number_id(series: pd.Series) -> pd.Series:
    """Aeries numeric ids (StaffID, CounselorNumber): 0 and blank mean "none" -> None."""
    s = text(series)
    return s.where(~s.isin(["0"]), None)


def flag(series: pd.Series) -> pd.Series:
    """true / "Y" / "1" -> 1, anything else 0."""
    return text(series).fillna("").astype(str).str.strip().str.upper().isin(TRUE_VALUES).astype("int64")


def blank(series: pd.Series) -> pd.Series:
    """True where the value is missing or blank (Aeries ``InactiveStatusCode`` blank = active)."""
    return text(series).isna()


def dates(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(ISO 'YYYY-MM-DD' or None, malformed mask). Blank/missing is None and not malformed."""
    s = text(series)
    present = s.notna()
    head = s.where(present, "").astype(str).str.slice(0, 10)
    shaped = head.str.fullmatch(r"\d{4}-\d{2}-\d{2}")
    parsed = pd.to_datetime(head.where(shaped, None), format="%Y-%m-%d", errors="coerce")
    bad = present & (~shaped | parsed.isna())
    iso = head.astype(object)
    iso[~(present & ~bad).to_numpy()] = None
    return iso, bad


def shift_days(iso: pd.Series, days: int) -> pd.Series:
    parsed = pd.to_datetime(iso, format="%Y-%m-%d", errors="coerce") + pd.Timedelta(days=days)
    out = parsed.dt.strftime("%Y-%m-%d").astype(object)
    out[(iso.isna() | parsed.isna()).to_numpy()] = None
    return out


def formatted(frame: pd.DataFrame, template: str) -> pd.Series:
    """``template.format(**record)`` for every record, vectorised: "{SchoolCode}-{SectionNumber}"."""
    out = pd.Series([""] * len(frame), index=frame.index, dtype=object)
    for literal, field, _spec, _conv in string.Formatter().parse(template):
        if literal:
            out = out + literal
        if field:
            out = out + text(column(frame, field)).fillna("")
    return out


def grades(series: pd.Series, grade_map: Mapping[int, str]) -> tuple[pd.Series, pd.Series]:
    """(CEDS grade or None, unknown mask): Aeries integer grades through ``grade_map``."""
    numeric = pd.to_numeric(series.astype(object), errors="coerce")
    whole = numeric.notna() & (numeric == numeric.round())
    codes = numeric.where(whole).map({float(k): v for k, v in grade_map.items()})
    codes = codes.astype(object).where(codes.notna(), None)
    return codes, codes.isna()


def model_frame(table: str, data: Mapping[str, Any], index: pd.Index | None = None) -> pd.DataFrame:
    frame = pd.DataFrame({c: data[c] for c in COLUMNS[table]}, index=index)
    return frame.reset_index(drop=True)


def sorted_by_key(frame: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    return frame.sort_values(key, kind="stable", na_position="first").reset_index(drop=True)


# --------------------------------------------------------------------------------------------------------------------
# The source


class AeriesSource:
    """``read`` returns the school year's 14 model tables from the Aeries API (see the module docstring)."""

    name: ClassVar[str] = SOURCE

    def __init__(self, *, connection: SourceConnection, options: Mapping | None = None):
        if not connection.host:
            raise SourceError("aeries: the connection has no host (the district's Aeries API base URL)")
        if not connection.password:
            raise SourceError("aeries: the connection needs the Aeries API certificate (password)")
        self.connection = connection
        self.options = parse_options(options)

    # -- reading -------------------------------------------------------------------------------------------------
    def _client(self) -> ApiClient:
        o = self.options
        return ApiClient(source=SOURCE, base_url=self.connection.host,
                         auth=HeaderAuth(CERT_HEADER, self.connection.password or ""),
                         max_concurrency=o.max_concurrency, timeout_s=o.timeout_s, max_retries=o.max_retries,
                         backoff_s=o.backoff_s, access_hint=ACCESS_HINT)

    def _year_params(self, client: ApiClient, school_year: int) -> dict[str, str]:
        wanted = self.options.database_year
        if wanted == "default":
            return {}
        year = f"{school_year - 1}-{school_year}" if wanted == "auto" else wanted
        info = client.get_json(R_SYSTEM, resource=R_SYSTEM) or {}
        available = [str(y) for y in (info.get("AvailableDatabaseYears") or [])]
        if available and year not in available:
            raise SourceError(f"aeries: the API offers no database for school year {year} "
                              f"({len(available)} year(s) available); set database_year in config/sis.yaml")
        return {"DatabaseYear": year}

    def _pages(self, client: ApiClient, path: str, *, resource: str, params: dict, key: tuple[str, ...]) -> list:
        """All records of a paged resource; raises IncompleteReadError when the pages do not add up."""
        size = self.options.page_size
        records: list = []
        start = 1
        while True:
            page = client.get_json(path, resource=resource,
                                   params={**params, "StartingRecord": start, "EndingRecord": start + size - 1})
            page = page or []
            if not isinstance(page, list):
                raise SourceError(f"aeries: {resource} answered with something other than a list")
            if len(page) > size:
                if start == 1:  # the endpoint does not page: it answered everything at once
                    records.extend(page)
                    log.info("aeries: %s does not page; read in one answer", resource)
                    break
                raise IncompleteReadError(f"aeries: {resource} returned {len(page)} records for a page of {size}")
            records.extend(page)
            if len(page) < size:
                if page:  # a short page must be the last: make sure nothing follows it
                    probe = client.get_json(path, resource=resource, params={
                        **params, "StartingRecord": start + size, "EndingRecord": start + 2 * size - 1}) or []
                    if probe:
                        raise IncompleteReadError(f"aeries: {resource} returned a short page followed by more "
                                                  f"records (rows skipped)")
                break
            start += size
        self._check_unique(records, resource=resource, key=key)
        return records

    @staticmethod
    def _check_unique(records: list, *, resource: str, key: tuple[str, ...]) -> None:
        if not records or not key:
            return
        frame = pd.DataFrame.from_records(records, columns=list(key))
        repeated = int(frame.astype(str).duplicated().sum())
        if repeated:
            raise IncompleteReadError(f"aeries: {resource} repeated {repeated} record(s) across pages")

    def _read_school_resource(self, client: ApiClient, task: tuple[str, int], *, params: dict,
                              academic_year: int) -> pd.DataFrame:
        resource, school = task
        template, paged, key = PER_SCHOOL[resource]
        path = template.format(sc=school, yyyy=academic_year)
        for attempt in (1, 2):
            try:
                if paged:
                    records = self._pages(client, path, resource=resource, params=params, key=key)
                else:
                    records = client.get_json(path, resource=resource, params=params) or []
                    self._check_unique(records, resource=resource, key=key)
                break
            except IncompleteReadError:
                if attempt == 2:
                    raise
                log.warning("aeries: %s did not add up for one school; reading it again once", resource)
        client.progress(resource, records=len(records))
        frame = pd.DataFrame(records, dtype=object)
        # a record without its school code (Aeries omits it on some resources) belongs to the school asked
        frame["SchoolCode"] = column(frame, "SchoolCode").where(column(frame, "SchoolCode").notna(), school)
        return frame

    def read(self, *, as_of: dt.date, school_year: int) -> SourceRead:
        o = self.options
        client = self._client()
        try:
            params = self._year_params(client, school_year)
            school_records = client.get_json(R_SCHOOLS, resource=R_SCHOOLS, params=params) or []
            client.progress(R_SCHOOLS, records=len(school_records))
            schools_raw = pd.DataFrame(school_records, dtype=object)
            codes = pd.to_numeric(column(schools_raw, "SchoolCode"), errors="coerce")
            school_codes = sorted(int(c) for c in codes.dropna().unique() if int(c) != 0 and int(c) not in
                                  o.skip_schools)
            resources = [R_TERMS, R_SECTIONS, R_STUDENTS, R_ENROLLMENT, R_CLASSES, R_PROGRAMS, R_GROUPS]
            if o.counselor_number_kind == "teacher_number":
                resources.append(R_TEACHERS)
            if o.el_start_date_field or o.el_end_date_field or o.rfep_date_field:
                resources.append(R_EXTENDED)
            tasks = [(r, sc) for sc in school_codes for r in resources]

            def district_wide(path: str) -> list:
                records = client.get_json(path, resource=path, params=params) or []
                client.progress(path, records=len(records))
                return records

            courses, staff = client.map(district_wide, [R_COURSES, R_STAFF])
            results = client.map(lambda t: self._read_school_resource(client, t, params=params,
                                                                     academic_year=school_year - 1), tasks)
            parts: dict[str, list[pd.DataFrame]] = {r: [] for r in resources}
            for (resource, _), frame in zip(tasks, results):
                parts[resource].append(frame)
            client.log_progress()
            # named like the rejections' "file" (aeries:<resource>) so the snapshot can weigh rejected by read
            stats = {_resource(name): counts for name, counts in client.stats.items()}
            pull_seconds = client.pull_seconds
        finally:
            client.close()
        frames = {r: pd.concat(v, ignore_index=True) if v else pd.DataFrame() for r, v in parts.items()}
        frames[R_SCHOOLS] = schools_raw
        frames[R_COURSES] = pd.DataFrame(courses, dtype=object)
        frames[R_STAFF] = pd.DataFrame(staff, dtype=object)
        tables, rejected = map_district(frames, options=o, school_year=school_year, school_codes=school_codes)
        return SourceRead(tables=tables, rejected=rejected, stats=stats, pull_seconds=pull_seconds)


# --------------------------------------------------------------------------------------------------------------------
# Mapping: raw Aeries records (DataFrames of the JSON records) -> model tables. Pure; tests call it directly too.


def _resource(name: str) -> str:
    return f"{SOURCE}:{name}"


def _drop_deleted(frame: pd.DataFrame, options: AeriesOptions, resource: str) -> pd.DataFrame:
    field = options.soft_delete_field
    if field is None or field not in frame.columns or frame.empty:
        return frame
    value = text(frame[field]).fillna("").astype(str).str.strip().str.upper()
    deleted = ~value.isin(["", "0", "N", "NO", "FALSE"])
    if deleted.any():
        log.info("aeries: %s: %d soft-deleted record(s) left out", resource, int(deleted.sum()))
    return frame[~deleted]


def _reject(rej: Rejections, resource: str, frame: pd.DataFrame, mask: pd.Series, *, key: list[str], field: str,
            rule: str) -> pd.Series:
    """Record ``frame[mask]`` as rejected -- by the Aeries key columns ``key``, the Aeries ``field`` at fault and the
    rule, never a value -- and return ``~mask`` (the records kept)."""
    mask = mask.fillna(False).astype(bool)
    if mask.any():
        keyed = frame.copy()
        for k in key:
            keyed[k] = text(column(keyed, k)).fillna("")
        rej.add(_resource(resource), keyed, mask, key=key, column=field, rule=rule,
                row=frame["_row"] if "_row" in frame.columns else None)
    return ~mask


def _numbered(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``_row``: the 1-based position of each record in what the resource returned (for rejected.csv)."""
    frame = frame.reset_index(drop=True)
    frame["_row"] = np.arange(1, len(frame) + 1)
    return frame


def map_district(raw: Mapping[str, pd.DataFrame], *, options: AeriesOptions, school_year: int,
                 school_codes: list[int] | None = None) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Raw Aeries records per resource -> (the 14 model tables, rejected records)."""
    o = options
    rej = Rejections()

    def get(resource: str) -> pd.DataFrame:
        return _drop_deleted(_numbered(raw.get(resource, pd.DataFrame())), o, resource)

    tables: dict[str, pd.DataFrame] = {}

    # ---- district and schools (LOC) ------------------------------------------------------------------------
    loc = get(R_SCHOOLS)
    code = text(column(loc, "SchoolCode"))
    district_rows = loc[code == "0"]
    loc = loc[(code != "0") & code.notna()]
    if school_codes is not None:
        loc = loc[text(loc["SchoolCode"]).isin([str(c) for c in school_codes])]
    # the district is school code 0 in LOC; without it, its CDS part and state come from the first school
    source_of_district = district_rows if len(district_rows) else loc.head(1)
    county, district_code = text(column(source_of_district, "StateCountyID")), text(column(source_of_district,
                                                                                           "StateDistrictID"))
    cds_district = (county.fillna("").str.zfill(2) + district_code.fillna("").str.zfill(5))
    tables["district"] = model_frame("district", {
        "district_id": [o.district_id],
        "name": [text(column(district_rows, "Name")).iloc[0] if len(district_rows) else o.district_id],
        "cds_district_code": [cds_district.iloc[0] if len(source_of_district) and county.notna().iloc[0] else None],
        "nces_id": [text(column(district_rows, "NCESSchoolID")).iloc[0] if len(district_rows) else None],
        "state_code": [text(column(source_of_district, "AddressState")).iloc[0] if len(source_of_district)
                       else None],
    })
    school_id = text(loc["SchoolCode"]) if len(loc) else pd.Series(dtype=object)
    school_number = text(column(loc, o.school_number_field)).fillna(school_id) if len(loc) else school_id
    low, _ = grades(column(loc, "LowGradeLevel"), o.grade_map)
    high, _ = grades(column(loc, "HighGradeLevel"), o.grade_map)
    cds_parts = [text(column(loc, c)) for c in ("StateCountyID", "StateDistrictID", "StateSchoolID")]
    cds = cds_parts[0].str.zfill(2) + cds_parts[1].str.zfill(5) + cds_parts[2].str.zfill(7)
    cds = cds.where(cds_parts[0].notna() & cds_parts[1].notna() & cds_parts[2].notna(), None)
    tables["school"] = sorted_by_key(model_frame("school", {
        "school_id": school_id, "district_id": o.district_id, "school_number": school_number,
        "name": text(column(loc, "Name")), "cds_code": cds, "nces_id": text(column(loc, "NCESSchoolID")),
        "school_level": _school_levels(school_id, low, high, o), "low_grade": low, "high_grade": high,
        "classification": np.where(blank(column(loc, "StateCharterNumber")), "public", "charter"),
        "is_active": blank(column(loc, "InactiveStatusCode")).astype("int64"),
        "excluded_from_state_reporting": flag(column(loc, "DoNotReport")),
    }, index=loc.index), ["school_id"])
    known_schools = set(tables["school"]["school_id"])

    # ---- terms (TRM) ---------------------------------------------------------------------------------------
    tables["term"] = _terms(get(R_TERMS), o, school_year, rej)
    term_bounds = tables["term"].set_index("term_id")[["start_date", "end_date"]]

    # ---- courses (CRS) -------------------------------------------------------------------------------------
    crs = get(R_COURSES)
    course_id = text(column(crs, "ID"))
    ok = _reject(rej, R_COURSES, crs, course_id.isna(), key=["ID"], field="ID", rule="aeries.courses.id_missing")
    crs, course_id = crs[ok], course_id[ok]
    tables["course"] = sorted_by_key(model_frame("course", {
        "course_id": course_id, "course_number": text(column(crs, o.course_number_field)).fillna(course_id),
        "title": text(column(crs, o.course_title_field)).fillna(course_id),
        "department": text(column(crs, "DepartmentCode")), "subject_area": text(column(crs, "SubjectArea1Code")),
    }, index=crs.index).drop_duplicates("course_id"), ["course_id"])
    subject_value = pd.Series(text(column(crs, o.caaspp_subject_course_field)).to_numpy(), index=course_id.to_numpy())
    subject_value = subject_value[~subject_value.index.duplicated()]
    caaspp_by_course = subject_value.map(o.caaspp_subject_map)
    caaspp_by_course.update(pd.Series(o.caaspp_subject_by_course, dtype=object))

    # ---- staff (STF) and staff_school (USR school access + STF.PSC) ----------------------------------------
    stf = get(R_STAFF)
    staff_id = number_id(column(stf, "ID"))
    first, last = text(column(stf, "FirstName")), text(column(stf, "LastName"))
    ok = _reject(rej, R_STAFF, stf, staff_id.isna(), key=["ID"], field="ID", rule="aeries.staff.id_missing")
    ok &= _reject(rej, R_STAFF, stf, ok & (first.isna() | last.isna()), key=["ID"], field="FirstName/LastName",
                  rule="aeries.staff.name_missing")
    stf, staff_id = stf[ok], staff_id[ok]
    title = text(column(stf, o.staff_role_field))
    role = title.where(title.isin(STAFF_ROLES), title.map(o.staff_role_by_title))
    tables["staff"] = sorted_by_key(model_frame("staff", {
        "staff_id": staff_id, "first_name": first[ok], "middle_name": text(column(stf, "MiddleName")),
        "last_name": last[ok], "email": text(column(stf, "EmailAddress")),
        "username": text(column(stf, o.staff_username_field)), "state_educator_id": text(column(stf,
                                                                                                  "StateEducatorID")),
        "staff_role": role.fillna(o.staff_role_default),
        "is_active": blank(column(stf, "InactiveStatusCode")).astype("int64"), "initial_password": None,
    }, index=stf.index).drop_duplicates("staff_id"), ["staff_id"])
    known_staff = set(tables["staff"]["staff_id"])
    tables["staff_school"] = _staff_schools(stf, staff_id, known_schools)

    # ---- sections (MST) and section_staff (SectionStaffMembers) --------------------------------------------
    tables["section"], sections_raw = _sections(get(R_SECTIONS), o, school_year, caaspp_by_course,
                                                set(tables["course"]["course_id"]), set(term_bounds.index), rej)
    tables["section_staff"] = _section_staff(sections_raw, term_bounds, known_staff, o, rej)

    # ---- students (STU), counselors (TCH), English learners (LF + LAC) --------------------------------------
    teachers = get(R_TEACHERS)
    tables["student"], ell = _students(_with_extended(get(R_STUDENTS), raw.get(R_EXTENDED), o), teachers,
                                       known_staff, o, rej)
    known_students = set(tables["student"]["student_id"])

    # ---- enrollments (ENR), class schedules (SEC), programs (PGM), groups (SGD/SGM/SGS) -----------------------
    tables["school_enrollment"] = _school_enrollments(get(R_ENROLLMENT), known_students, known_schools, o, rej)
    tables["section_enrollment"] = _section_enrollments(get(R_CLASSES), sections_raw, term_bounds, known_students,
                                                        o, rej)
    tables["student_program"] = _programs(get(R_PROGRAMS), ell, known_students, o, rej)
    tables["student_group"], tables["student_group_member"] = _groups(get(R_GROUPS), known_schools, known_staff,
                                                                      known_students, rej, o)
    for name in COLUMNS:
        tables.setdefault(name, empty_table(name))
        tables[name] = _nulls_as_none(tables[name][list(COLUMNS[name])].reset_index(drop=True))
    return tables, rej.frame()


def _nulls_as_none(frame: pd.DataFrame) -> pd.DataFrame:
    """Missing values as None in text columns (the model's convention), whatever pandas made of them."""
    for name in frame.columns:
        if frame[name].dtype == object:
            values = frame[name].copy()
            values[values.isna().to_numpy()] = None
            frame[name] = values
    return frame


def _school_levels(school_id: pd.Series, low: pd.Series, high: pd.Series, o: AeriesOptions) -> pd.Series:
    """The configured level per school code, else from the grade span (K-6 elementary, 6-8 middle, 9-12 high)."""
    order = {g: i for i, g in enumerate(("PK", "TK", "KG", *(f"{g:02d}" for g in range(1, 13))))}
    lo, hi = low.map(order).astype(float), high.map(order).astype(float)
    derived = np.select([(hi <= order["06"]), (lo >= order["06"]) & (hi <= order["08"]), (lo >= order["09"])],
                        ["elementary", "middle", "high"], "other")
    derived = pd.Series(derived, index=school_id.index, dtype=object)
    derived[lo.isna() | hi.isna()] = None
    configured = school_id.map(o.school_levels)
    return configured.where(configured.notna(), derived)


def _terms(trm: pd.DataFrame, o: AeriesOptions, school_year: int, rej: Rejections) -> pd.DataFrame:
    if trm.empty:
        return empty_table("term")
    code = text(column(trm, "TermCode"))
    start, bad_start = dates(column(trm, "StartDate"))
    end, bad_end = dates(column(trm, "EndDate"))
    ok = _reject(rej, R_TERMS, trm, bad_start | bad_end | start.isna() | end.isna() | code.isna(),
                 key=["SchoolCode", "TermCode"], field="StartDate/EndDate", rule="aeries.terms.date_malformed")
    frame = pd.DataFrame({"school": text(trm["SchoolCode"]), "code": code, "title": text(column(trm,
                                                                                              "TermDescription")),
                          "start": start, "end": end})[ok]
    if o.district_wide_terms:
        frame = frame.sort_values(["code", "school"], kind="stable",
                                  key=lambda s: pd.to_numeric(s, errors="coerce") if s.name == "school" else s)
        frame = frame.drop_duplicates("code")
        frame["term_id"] = f"{school_year}-" + frame["code"]
        frame["scope"] = ""
        school_col = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    else:
        frame["term_id"] = f"{school_year}-" + frame["school"] + "-" + frame["code"]
        frame["scope"] = frame["school"]
        school_col = frame["school"]
    # parent: the shortest other term of the same scope that strictly contains this one
    pairs = frame[["term_id", "scope", "start", "end"]].merge(
        frame[["term_id", "scope", "start", "end"]], on="scope", suffixes=("", "_p"))
    contains = ((pairs["start_p"] <= pairs["start"]) & (pairs["end_p"] >= pairs["end"])
                & (pairs["term_id_p"] != pairs["term_id"])
                & ((pairs["start_p"] < pairs["start"]) | (pairs["end_p"] > pairs["end"])))
    pairs = pairs[contains].copy()
    pairs["span"] = (pd.to_datetime(pairs["end_p"]) - pd.to_datetime(pairs["start_p"])).dt.days
    parent = pairs.sort_values(["term_id", "span", "term_id_p"], kind="stable").drop_duplicates("term_id")
    parent = parent.set_index("term_id")["term_id_p"]
    term_type = frame["code"].map(o.term_types).fillna("term")
    return sorted_by_key(model_frame("term", {
        "term_id": frame["term_id"], "school_id": school_col, "school_year": np.full(len(frame), school_year,
                                                                                     dtype="int64"),
        "term_type": term_type, "title": frame["title"].fillna(frame["code"]), "start_date": frame["start"],
        "end_date": frame["end"], "parent_term_id": frame["term_id"].map(parent).astype(object).where(
            frame["term_id"].map(parent).notna(), None),
    }, index=frame.index), ["term_id"])


def _staff_schools(stf: pd.DataFrame, staff_id: pd.Series, known_schools: set) -> pd.DataFrame:
    home = text(column(stf, "PrimaryAeriesSchool"))
    parts = [pd.DataFrame({"staff_id": staff_id, "school_id": home})]
    access = column(stf, "SchoolAccessPermissions")
    exploded = pd.DataFrame({"staff_id": staff_id, "access": access}).explode("access").dropna(subset=["access"])
    if len(exploded):
        granted = pd.DataFrame(list(exploded["access"]), index=exploded.index)
        parts.append(pd.DataFrame({"staff_id": exploded["staff_id"], "school_id": text(column(granted,
                                                                                              "SchoolCode"))}))
    rows = pd.concat(parts, ignore_index=True)
    rows = rows[rows["school_id"].isin(known_schools) & rows["staff_id"].notna()].drop_duplicates()
    homes = pd.Series(home.to_numpy(), index=staff_id.to_numpy())
    homes = homes[~homes.index.duplicated()]
    rows["is_home"] = (rows["school_id"] == rows["staff_id"].map(homes)).astype("int64")
    return sorted_by_key(model_frame("staff_school", rows), ["staff_id", "school_id"])


def _sections(mst: pd.DataFrame, o: AeriesOptions, school_year: int, caaspp_by_course: pd.Series,
              known_courses: set, known_terms: set, rej: Rejections) -> tuple[pd.DataFrame, pd.DataFrame]:
    if mst.empty:
        return empty_table("section"), pd.DataFrame(columns=["section_id", "SchoolCode", "SectionNumber",
                                                             "term_id", "SectionStaffMembers"])
    number = text(column(mst, "SectionNumber"))
    section_id = text(column(mst, o.section_id_field)).fillna(formatted(mst, o.section_id_format))
    course = text(column(mst, "CourseID"))
    semester = text(column(mst, "Semester"))
    prefix = f"{school_year}-" if o.district_wide_terms else f"{school_year}-" + text(mst["SchoolCode"]) + "-"
    term_id = prefix + semester.fillna("")
    key = ["SchoolCode", "SectionNumber"]
    ok = _reject(rej, R_SECTIONS, mst, number.isna(), key=key, field="SectionNumber",
                 rule="aeries.sections.number_missing")
    ok &= _reject(rej, R_SECTIONS, mst, ok & ~course.isin(known_courses), key=key, field="CourseID",
                  rule="aeries.sections.course_unknown")
    ok &= _reject(rej, R_SECTIONS, mst, ok & ~term_id.isin(known_terms), key=key, field="Semester",
                  rule="aeries.sections.term_unknown")
    ok &= _reject(rej, R_SECTIONS, mst, ok & section_id.duplicated(keep=False), key=key, field="section_id",
                  rule="aeries.sections.id_repeated")
    m = mst[ok]
    expression = formatted(m, o.class_expression_format) if o.class_expression_format else None
    section = model_frame("section", {
        "section_id": section_id[ok], "school_id": text(m["SchoolCode"]), "course_id": course[ok],
        "term_id": term_id[ok], "section_number": number[ok], "period_code": text(column(m, "Period")),
        "class_expression": expression, "room": text(column(m, "Room")),
        "caaspp_subject": course[ok].map(caaspp_by_course).astype(object).where(
            course[ok].map(caaspp_by_course).notna(), None),
        "class_type": np.where(flag(column(m, "PrimaryClass")).astype(bool), "homeroom", "scheduled"),
        "is_active": blank(column(m, "InactiveStatusCode")).astype("int64"), "start_date": None, "end_date": None,
    }, index=m.index)
    kept = pd.DataFrame({"section_id": section_id[ok], "SchoolCode": text(m["SchoolCode"]),
                         "SectionNumber": number[ok], "term_id": term_id[ok],
                         "SectionStaffMembers": column(m, "SectionStaffMembers"), "_row": m["_row"]})
    return sorted_by_key(section, ["section_id"]), kept


def _section_staff(sections: pd.DataFrame, term_bounds: pd.DataFrame, known_staff: set, o: AeriesOptions,
                   rej: Rejections) -> pd.DataFrame:
    exploded = sections.explode("SectionStaffMembers").dropna(subset=["SectionStaffMembers"])
    if exploded.empty:
        return empty_table("section_staff")
    members = pd.DataFrame(list(exploded["SectionStaffMembers"]), index=exploded.index, dtype=object)
    frame = pd.concat([exploded[["section_id", "SchoolCode", "SectionNumber", "term_id", "_row"]], members],
                      axis=1).reset_index(drop=True)
    staff_id = number_id(column(frame, "StaffID"))
    code = text(column(frame, "StaffRoleCode"))
    primary = flag(column(frame, "IsPrimaryTeacher")).astype(bool)
    role = code.map(o.staff_role_map)
    role = role.where(code.notna(), np.where(primary, "lead", o.secondary_staff_role))
    start, bad_start = dates(column(frame, "StartDate"))
    end, bad_end = dates(column(frame, "EndDate"))
    key = ["SchoolCode", "SectionNumber", "StaffID"]
    active = blank(column(frame, "InactiveStatusCode"))
    ok = active.copy()
    ok &= _reject(rej, R_SECTIONS, frame, ok & ~staff_id.isin(known_staff), key=key, field="StaffID",
                  rule="aeries.section_staff.staff_unknown")
    ok &= _reject(rej, R_SECTIONS, frame, ok & role.isna(), key=key, field="StaffRoleCode",
                  rule="aeries.section_staff.role_unknown")
    ok &= _reject(rej, R_SECTIONS, frame, ok & (bad_start | bad_end), key=key, field="StartDate/EndDate",
                  rule="aeries.section_staff.date_malformed")
    term_start = frame["term_id"].map(term_bounds["start_date"])
    rows = model_frame("section_staff", {
        "section_id": frame["section_id"], "staff_id": staff_id, "staff_role": role,
        "start_date": start.where(start.notna(), term_start), "end_date": end,
    })[ok.to_numpy()]
    return sorted_by_key(rows.drop_duplicates(["section_id", "staff_id", "start_date"]),
                         ["section_id", "staff_id", "start_date"])


def _students(stu: pd.DataFrame, tch: pd.DataFrame, known_staff: set, o: AeriesOptions,
              rej: Rejections) -> tuple[pd.DataFrame, pd.DataFrame]:
    if stu.empty:
        return empty_table("student"), pd.DataFrame()
    student_id = number_id(column(stu, "StudentID"))
    grade, unknown_grade = grades(column(stu, "Grade"), o.grade_map)
    birth, bad_birth = dates(column(stu, "Birthdate"))
    first, last = text(column(stu, "FirstName")), text(column(stu, "LastName"))
    key = ["SchoolCode", "StudentID"]
    ok = _reject(rej, R_STUDENTS, stu, student_id.isna(), key=key, field="StudentID",
                 rule="aeries.students.id_missing")
    # one model student per StudentID: the active record (blank InactiveStatusCode) entered last, then the lowest
    # school code; concurrent and earlier records at other schools only add enrollments
    active = blank(column(stu, "InactiveStatusCode"))
    entered, _ = dates(column(stu, "SchoolEnterDate"))
    order = pd.DataFrame({"id": student_id, "active": active, "entered": entered.fillna(""),
                          "school": pd.to_numeric(column(stu, "SchoolCode"), errors="coerce")})[ok]
    order = order.sort_values(["id", "active", "entered", "school"], ascending=[True, False, False, True],
                              kind="stable")
    main = order.drop_duplicates("id").index
    chosen = pd.Series(False, index=stu.index)
    chosen[main] = True
    ok &= chosen
    ok &= _reject(rej, R_STUDENTS, stu, ok & unknown_grade, key=key, field="Grade",
                  rule="aeries.students.grade_unknown")
    ok &= _reject(rej, R_STUDENTS, stu, ok & bad_birth, key=key, field="Birthdate",
                  rule="aeries.students.date_malformed")
    ok &= _reject(rej, R_STUDENTS, stu, ok & (first.isna() | last.isna()), key=key, field="FirstName/LastName",
                  rule="aeries.students.name_missing")
    s = stu[ok]
    counselor = number_id(column(s, "CounselorNumber"))
    if o.counselor_number_kind == "teacher_number":
        teachers = pd.Series(number_id(column(tch, o.teacher_staff_id_field)).to_numpy(),
                             index=(text(column(tch, "SchoolCode")).fillna("") + "/"
                                    + text(column(tch, o.teacher_number_field)).fillna("")).to_numpy())
        teachers = teachers[~teachers.index.duplicated()]
        counselor = (text(s["SchoolCode"]).fillna("") + "/" + counselor.fillna("")).map(teachers).where(
            counselor.notna(), None)
    unknown = counselor.notna() & ~counselor.isin(known_staff)
    if unknown.any():
        log.warning("aeries: %d student counselor number(s) match no staff member; left empty", int(unknown.sum()))
    counselor = counselor.where(~unknown, None).astype(object)
    imputed = flag(column(s, o.reading_level_imputed_field)) if o.reading_level_imputed_field else 0
    student = model_frame("student", {
        "student_id": student_id[ok], "ssid": text(column(s, "StateStudentID")), "first_name": first[ok],
        "middle_name": text(column(s, "MiddleName")), "last_name": last[ok], "grade_level": grade[ok],
        "birth_date": birth[ok], "email": text(column(s, "StudentEmailAddress")),
        "username": text(column(s, o.student_username_field)), "counselor_staff_id": counselor,
        "home_language_code": text(column(s, "HomeLanguageCode")),
        "reading_level": text(column(s, o.reading_level_field)), "reading_level_imputed": imputed,
        "excluded_from_state_reporting": flag(column(s, o.student_excluded_field)),
    }, index=s.index)
    student["reading_level_imputed"] = student["reading_level_imputed"].astype("int64")
    ell = pd.DataFrame({"student_id": student_id[ok], "SchoolCode": s["SchoolCode"], "StudentID": s["StudentID"],
                        "_row": s["_row"], "fluency": text(column(s, "LanguageFluencyCode")),
                        "el_start": column(s, o.el_start_date_field), "el_end": column(s, o.el_end_date_field),
                        "rfep": column(s, o.rfep_date_field)})
    return sorted_by_key(student, ["student_id"]), ell


def _with_extended(stu: pd.DataFrame, extended: pd.DataFrame | None, o: AeriesOptions) -> pd.DataFrame:
    """Add the English-learner date fields of Student Information Extended to each STU record (same StudentID
    and school); fields the student record already has win."""
    fields = [f for f in (o.el_start_date_field, o.el_end_date_field, o.rfep_date_field)
              if f and (extended is not None and f in extended.columns) and f not in stu.columns]
    if stu.empty or not fields:
        return stu
    key = pd.DataFrame({"id": text(column(extended, "StudentID")), "sc": text(column(extended, "SchoolCode"))})
    extra = pd.concat([key, extended[fields].reset_index(drop=True).set_axis(key.index)], axis=1)
    extra = extra.drop_duplicates(["id", "sc"])
    left = pd.DataFrame({"id": text(stu["StudentID"]), "sc": text(column(stu, "SchoolCode"))}, index=stu.index)
    merged = left.merge(extra, on=["id", "sc"], how="left")
    merged.index = stu.index
    return pd.concat([stu, merged[fields]], axis=1)


def _overlapping_primary(frame: pd.DataFrame) -> pd.Series:
    """Rows of a student's primary (status 10) enrollments whose dates overlap another primary enrollment."""
    primary = frame[frame["enrollment_status"] == "10"].sort_values(["student_id", "entry_date", "school_id"],
                                                                   kind="stable")
    end = pd.to_datetime(primary["exit_date"].fillna("2262-04-01"), format="%Y-%m-%d")
    running_end = end.groupby(primary["student_id"]).cummax()
    previous_end = running_end.groupby(primary["student_id"]).shift(1)
    overlaps = pd.to_datetime(primary["entry_date"], format="%Y-%m-%d") <= previous_end
    # the earlier record of each overlapping pair is ambiguous too
    earlier = overlaps.groupby(primary["student_id"]).shift(-1).fillna(False).astype(bool)
    flagged = pd.Series(False, index=frame.index)
    flagged[primary.index[(overlaps | earlier).to_numpy()]] = True
    return flagged


def _school_enrollments(enr: pd.DataFrame, known_students: set, known_schools: set, o: AeriesOptions,
                        rej: Rejections) -> pd.DataFrame:
    if enr.empty:
        return empty_table("school_enrollment")
    student_id = number_id(column(enr, "StudentID"))
    school_id = text(column(enr, "SchoolCode"))
    entry, bad_entry = dates(column(enr, "EnterDate"))
    leave, bad_leave = dates(column(enr, "LeaveDate"))
    if not o.leave_date_inclusive:
        leave = shift_days(leave, -1)
    key = ["SchoolCode", "StudentID"]
    ok = _reject(rej, R_ENROLLMENT, enr, bad_entry | bad_leave | entry.isna(), key=key, field="EnterDate/LeaveDate",
                 rule="aeries.enrollment.date_malformed")
    ok &= _reject(rej, R_ENROLLMENT, enr, ok & ~student_id.isin(known_students), key=key, field="StudentID",
                  rule="aeries.enrollment.student_unknown")
    ok &= _reject(rej, R_ENROLLMENT, enr, ok & ~school_id.isin(known_schools), key=key, field="SchoolCode",
                  rule="aeries.enrollment.school_unknown")
    ok &= _reject(rej, R_ENROLLMENT, enr, ok & leave.notna() & (leave < entry.fillna("")), key=key,
                  field="LeaveDate", rule="aeries.enrollment.leave_before_enter")
    status = text(column(enr, o.enrollment_status_field)).fillna(o.enrollment_status_default)
    rows = model_frame("school_enrollment", {
        "student_id": student_id, "school_id": school_id, "entry_date": entry, "exit_date": leave,
        "enrollment_status": status, "excluded_from_state_reporting": flag(column(enr, o.enrollment_excluded_field)),
    }, index=enr.index)
    rows.index = enr.index
    rows = rows[ok]
    overlap = _overlapping_primary(rows)
    _reject(rej, R_ENROLLMENT, enr.loc[rows.index], overlap, key=key, field="EnterDate/LeaveDate",
            rule="aeries.enrollment.overlapping_primary")
    rows = rows[~overlap]
    return sorted_by_key(rows.drop_duplicates(["student_id", "school_id", "entry_date"]),
                         ["student_id", "school_id", "entry_date"])


def _section_enrollments(sec: pd.DataFrame, sections: pd.DataFrame, term_bounds: pd.DataFrame,
                         known_students: set, o: AeriesOptions, rej: Rejections) -> pd.DataFrame:
    if sec.empty:
        return empty_table("section_enrollment")
    student_id = number_id(column(sec, "StudentID"))
    where = text(column(sec, "SchoolCode")).fillna("") + "/" + text(column(sec, "SectionNumber")).fillna("")
    lookup = pd.Series(sections["section_id"].to_numpy(),
                       index=(sections["SchoolCode"].fillna("") + "/" + sections["SectionNumber"].fillna("")))
    section_id = where.map(lookup)
    term_end = section_id.map(pd.Series(sections["term_id"].to_numpy(), index=sections["section_id"].to_numpy())
                              ).map(term_bounds["end_date"])
    started, bad_start = dates(column(sec, "DateStarted"))
    ended, bad_end = dates(column(sec, "DateEnded"))
    if o.class_end_at_term_end_is_open:
        ended = ended.where(~(ended.notna() & term_end.notna() & (ended >= term_end.fillna(""))), None)
    key = ["SchoolCode", "StudentID", "SectionNumber"]
    ok = _reject(rej, R_CLASSES, sec, bad_start | bad_end | started.isna(), key=key, field="DateStarted/DateEnded",
                 rule="aeries.classes.date_malformed")
    ok &= _reject(rej, R_CLASSES, sec, ok & section_id.isna(), key=key, field="SectionNumber",
                  rule="aeries.classes.section_unknown")
    ok &= _reject(rej, R_CLASSES, sec, ok & ~student_id.isin(known_students), key=key, field="StudentID",
                  rule="aeries.classes.student_unknown")
    rows = model_frame("section_enrollment", {"student_id": student_id, "section_id": section_id,
                                              "entry_date": started, "exit_date": ended})[ok.to_numpy()]
    return sorted_by_key(rows.drop_duplicates(["student_id", "section_id", "entry_date"]),
                         ["student_id", "section_id", "entry_date"])


def _programs(pgm: pd.DataFrame, ell: pd.DataFrame, known_students: set, o: AeriesOptions,
              rej: Rejections) -> pd.DataFrame:
    parts = []
    if not pgm.empty:
        student_id = number_id(column(pgm, "StudentID"))
        program = text(column(pgm, "ProgramCode")).map(o.program_code_map)
        start, bad_start = dates(column(pgm, o.program_start_field))
        end, bad_end = dates(column(pgm, o.program_end_field))
        key = ["SchoolCode", "StudentID", "ProgramCode"]
        status = _program_status(pgm, program, o)
        mapped = program.notna()
        if (~mapped).any():
            log.info("aeries: %d program record(s) with codes outside program_code_map left out",
                     int((~mapped).sum()))
        ok = mapped & _reject(rej, R_PROGRAMS, pgm, mapped & (bad_start | bad_end | start.isna()), key=key,
                              field=f"{o.program_start_field}/{o.program_end_field}",
                              rule="aeries.programs.date_malformed")
        ok &= _reject(rej, R_PROGRAMS, pgm, ok & ~student_id.isin(known_students), key=key, field="StudentID",
                      rule="aeries.programs.student_unknown")
        parts.append(model_frame("student_program", {
            "student_id": student_id, "program_code": program, "status_code": status,
            "start_date": start, "end_date": end})[ok.to_numpy()])
    if not ell.empty:
        parts.append(_english_learners(ell, o, rej))
    if not parts:
        return empty_table("student_program")
    rows = pd.concat(parts, ignore_index=True)
    return sorted_by_key(rows.drop_duplicates(["student_id", "program_code", "start_date"]),
                         ["student_id", "program_code", "start_date"])


def _program_status(pgm: pd.DataFrame, program: pd.Series, o: AeriesOptions) -> pd.Series:
    """The status code of each program record: the Value of the ExtendedProperties entry named for its program in
    ``program_status_properties`` (SPED: DisabilityCode)."""
    status = pd.Series([None] * len(pgm), index=pgm.index, dtype=object)
    if "ExtendedProperties" not in pgm.columns or not o.program_status_properties:
        return status
    wanted = program.map(o.program_status_properties)
    props = pd.DataFrame({"wanted": wanted, "prop": pgm["ExtendedProperties"]})
    props = props[wanted.notna()].explode("prop").dropna(subset=["prop"])
    if props.empty:
        return status
    entries = pd.DataFrame(list(props["prop"]), index=props.index, dtype=object)
    hit = text(column(entries, "Name")) == props["wanted"]
    values = text(column(entries, "Value"))[hit]
    values = values[~values.index.duplicated()]
    status.loc[values.index] = values
    return status


def _english_learners(ell: pd.DataFrame, o: AeriesOptions, rej: Rejections) -> pd.DataFrame:
    """ELL rows from STU.LF and the LAC dates: EL (start..end), RFEP (reclassification..), IFEP (start..)."""
    status = ell["fluency"].map(o.language_fluency_map)
    el_start, bad1 = dates(ell["el_start"])
    el_end, bad2 = dates(ell["el_end"])
    rfep, bad3 = dates(ell["rfep"])
    key = ["SchoolCode", "StudentID"]
    needs_start = status.isin(["EL", "IFEP"]) | (status == "RFEP")
    ok = status.notna() & _reject(rej, R_STUDENTS, ell, status.notna() & (bad1 | bad2 | bad3 | (needs_start
                                  & el_start.isna()) | ((status == "RFEP") & rfep.isna())), key=key,
                                  field="English learner dates", rule="aeries.students.el_date_missing")
    el = ok & status.isin(["EL", "RFEP"])
    el_end_value = el_end.where(el_end.notna(), np.where(status == "RFEP", shift_days(rfep, -1), None))
    rows = [
        model_frame("student_program", {"student_id": ell["student_id"], "program_code": "ELL", "status_code": "EL",
                                        "start_date": el_start, "end_date": el_end_value.where(status == "RFEP",
                                                                                              el_end)})[el.to_numpy()],
        model_frame("student_program", {"student_id": ell["student_id"], "program_code": "ELL",
                                        "status_code": "RFEP", "start_date": rfep, "end_date": None}
                    )[(ok & (status == "RFEP")).to_numpy()],
        model_frame("student_program", {"student_id": ell["student_id"], "program_code": "ELL",
                                        "status_code": "IFEP", "start_date": el_start, "end_date": None}
                    )[(ok & (status == "IFEP")).to_numpy()],
    ]
    return pd.concat(rows, ignore_index=True)


def _groups(sgd: pd.DataFrame, known_schools: set, known_staff: set, known_students: set,
            rej: Rejections, o: AeriesOptions | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Student groups (SGD: GroupId, Name, Description) with members (SGM: Students[].StudentId) and staff (SGS:
    Staff[].StaffId; the first known one becomes the owner)."""
    o = o or AeriesOptions()
    if sgd.empty:
        return empty_table("student_group"), empty_table("student_group_member")
    number = text(column(sgd, "GroupId"))
    group_id = formatted(sgd, o.group_id_format).where(number.notna(), None)
    key = ["SchoolCode", "GroupId"]
    ok = _reject(rej, R_GROUPS, sgd, group_id.isna() | ~text(sgd["SchoolCode"]).isin(known_schools), key=key,
                 field="GroupId", rule="aeries.groups.id_missing")
    ok &= _reject(rej, R_GROUPS, sgd, ok & group_id.duplicated(keep="first"), key=key, field="GroupId",
                  rule="aeries.groups.id_repeated")
    g, gid = sgd[ok], group_id[ok]
    owner = pd.Series(dtype=object)
    staff = pd.DataFrame({"group": gid, "staff": column(g, "Staff")}).explode("staff").dropna(subset=["staff"])
    if len(staff):
        ids = number_id(column(pd.DataFrame(list(staff["staff"]), index=staff.index, dtype=object), "StaffId"))
        owner = pd.Series(ids.to_numpy(), index=staff["group"].to_numpy())
        owner = owner[owner.notna() & owner.isin(known_staff)]
        owner = owner[~owner.index.duplicated()]
    name = text(column(g, "Name"))
    groups = model_frame("student_group", {
        "student_group_id": gid, "school_id": text(g["SchoolCode"]), "group_code": name.fillna(gid),
        "name": text(column(g, "Description")).fillna(name).fillna(gid), "owner_staff_id": gid.map(owner),
    }, index=g.index)
    members = pd.DataFrame({"group": gid, "member": column(g, "Students"), "_row": g["_row"],
                            "SchoolCode": g["SchoolCode"], "GroupId": column(g, "GroupId")}).explode("member")
    members = members.dropna(subset=["member"]).reset_index(drop=True)
    if members.empty:
        return sorted_by_key(groups, ["student_group_id"]), empty_table("student_group_member")
    student_id = number_id(column(pd.DataFrame(list(members["member"]), dtype=object), "StudentId"))
    keep = _reject(rej, R_GROUPS, members, ~student_id.isin(known_students), key=key, field="Students",
                   rule="aeries.groups.student_unknown")
    member = model_frame("student_group_member", {"student_group_id": members["group"],
                                                  "student_id": student_id})[keep.to_numpy()]
    return (sorted_by_key(groups, ["student_group_id"]),
            sorted_by_key(member.drop_duplicates(), ["student_group_id", "student_id"]))
