"""The PowerSchool source against the PowerSchool stand-in on loopback (a real HTTP server, no mocks of the wire).

The main check is the round trip: demo district -> stand-in (PowerSchool's shapes) -> adapter -> the same model
tables. The rest pins each conversion on hand-made records, what is rejected (and how it is reported), and how the
reader behaves when the server misbehaves (paging that does not add up, 401, 403, 429).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from rostering.devservers.powerschool_server import LocalPowerSchoolServer, powerschool_records
from rostering.sis.demo import generate_district
from rostering.sis.schema import COLUMNS, PRIMARY_KEYS
from rostering.sis.sources.base import (
    IncompleteReadError, Rejections, SourceAccessError, SourceConnection, SourceError, SourceRead,
)
from rostering.sis.sources.powerschool import QUERIES, PowerSchoolSource, build_tables, parse_options

REPO_ROOT = Path(__file__).resolve().parents[1]
YEAR = 2027
AS_OF = dt.date(2026, 10, 1)
CLIENT_ID, SECRET = "rostering-test", "s3cret-for-tests"

KEYS = PRIMARY_KEYS  # each table's primary key (rostering.sis.schema)

# Fields PowerSchool cannot carry, each with why. The demo district uses none of them, so the round trip below
# compares every column; a district whose model data used them would see these differ:
#   section.start_date / end_date -- SECTIONS has no dates of its own (the term's apply): always None here.
#   staff.initial_password        -- a vendor-side secret, never in the SIS: always None here.
#   section.period_code           -- derived from EXPRESSION ("1(A)" -> "1"), not stored separately.
CANNOT_CARRY: dict[str, list[str]] = {}


def as_text(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Every value as text (one spelling for every kind of missing), sorted by the key."""
    out = frame.reset_index(drop=True).copy()
    for column in out.columns:
        out[column] = ["<null>" if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else str(v)
                       for v in out[column].astype("object")]
    return out.sort_values(keys, kind="stable").reset_index(drop=True)


def connection(server: LocalPowerSchoolServer, secret: str = SECRET) -> SourceConnection:
    return SourceConnection(host=server.url, login=CLIENT_ID, password=secret)


def read(server: LocalPowerSchoolServer, *, school_year: int = YEAR, **options):
    options.setdefault("max_retries", 2)
    return PowerSchoolSource(connection=connection(server), options=options).read(as_of=AS_OF,
                                                                                   school_year=school_year)


@pytest.fixture(scope="module")
def district() -> dict[str, pd.DataFrame]:
    return generate_district(300, school_year=YEAR)


@pytest.fixture(scope="module")
def ps_records(district):
    return powerschool_records(district, school_year=YEAR)


@pytest.fixture
def server(district, ps_records):
    with LocalPowerSchoolServer(district, client_id=CLIENT_ID, client_secret=SECRET, school_year=YEAR,
                                max_page_size=100, records=ps_records) as running:
        yield running


def hand_made_server(district, ps_records, change) -> LocalPowerSchoolServer:
    """A stand-in over the demo's PowerSchool records after ``change(records)`` edited them."""
    records = {name: frame.copy() for name, frame in ps_records.items()}
    change(records)
    return LocalPowerSchoolServer(district, client_id=CLIENT_ID, client_secret=SECRET, school_year=YEAR,
                                  max_page_size=100, records=records)


# --------------------------------------------------------------------------------------------------------------------
# The round trip


def test_round_trip_gives_back_every_model_table(district, server):
    result = read(server)
    assert result.rejected.empty
    for table, keys in KEYS.items():
        assert tuple(result.tables[table].columns) == COLUMNS[table]
        expected = as_text(district[table].drop(columns=CANNOT_CARRY.get(table, [])), keys)
        got = as_text(result.tables[table].drop(columns=CANNOT_CARRY.get(table, [])), keys)
        assert len(got) == len(expected), table
        pd.testing.assert_frame_equal(got, expected, obj=table)


@pytest.mark.parametrize("as_of", [AS_OF, dt.date(2027, 3, 1)])
def test_the_snapshot_sql_gives_identical_rows(district, server, tmp_path, as_of):
    # what the vendors read: the shared snapshot SQL over the model as the demo holds it and as PowerSchool gave it
    from rostering.sis.snapshot import snapshot_from_tables

    for name in ("model", "powerschool"):
        (tmp_path / name).mkdir()
    model = snapshot_from_tables(SourceRead(tables=dict(district)), tmp_path / "model", as_of=as_of, school_year=YEAR)
    ours = snapshot_from_tables(read(server), tmp_path / "powerschool", as_of=as_of, school_year=YEAR)
    assert model.row_counts == ours.row_counts and sum(model.row_counts.values()) > 1000
    for parquet in sorted((tmp_path / "model").glob("*.parquet")):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "powerschool" / parquet.name),
                                      pd.read_parquet(parquet), obj=parquet.name)


def test_round_trip_reads_in_few_paged_requests_and_reports_counts(server, ps_records):
    result = read(server, page_size=5000)  # capped at the server's 100 by /ws/v1/metadata
    students_path = f"/ws/schema/query/{QUERIES['students'][0]}"
    student_calls = [p for m, p, s in server.requests if p == students_path and s == 200]
    assert len(student_calls) == math.ceil(300 / 100)  # pages of the announced maximum, not one per student
    assert result.stats["powerschool:students"]["records"] == 300
    assert result.stats["powerschool:students"]["requests"] == 1 + 3  # the count, then the pages
    # one metadata call, then per resource its count and its pages: nothing per section or per student
    expected = 1 + sum(1 + math.ceil(len(frame) / 100) for frame in ps_records.values())
    assert sum(s["requests"] for s in result.stats.values()) == expected


def test_a_year_the_sis_does_not_hold_reads_no_enrollments(server):
    # the yearid argument (2028 - 1991 = 37) selects nothing from a stand-in holding YEARID 36
    result = read(server, school_year=YEAR + 1)
    assert result.tables["student"].empty and result.tables["section_enrollment"].empty
    assert not result.tables["school"].empty  # schools are not year-scoped


# --------------------------------------------------------------------------------------------------------------------
# Conversions, on hand-made records (the mapping itself, no server)


def tiny_raw(**overrides) -> dict[str, pd.DataFrame]:
    """A one-school PowerSchool: YEARID 36 (2026-27), a year term and a semester, one section."""
    raw = {
        "district": [{"district_number": "1975309", "district_name": "Tiny USD"}],
        "schools": [{"id": "10", "school_number": "7", "alternate_school_number": "107", "name": "Tiny Elementary",
                     "low_grade": "-1", "high_grade": "5", "state_school_number": "6000011"}],
        "terms": [
            {"id": "3600", "dcid": "1", "yearid": "36", "schoolid": "0", "firstday": "2026-08-14",
             "lastday": "2027-06-11", "name": "2026-2027", "abbreviation": "Y", "portion": "1", "isyearrec": "1"},
            {"id": "3601", "dcid": "2", "yearid": "36", "schoolid": "0", "firstday": "2026-08-14",
             "lastday": "2026-12-18", "name": "Fall", "abbreviation": "S1", "portion": "2", "isyearrec": "0"},
        ],
        "courses": [{"id": "3001", "course_number": "MA1", "course_name": "Math 1"}],
        "sections": [{"id": "200001", "schoolid": "7", "course_number": "MA1", "section_number": "1",
                      "termid": "3601", "expression": "2(A)", "caaspp_subject_area": "math"}],
        "staff": [
            {"schoolstaff_id": "501", "users_dcid": "10001", "schoolid": "7", "status": "1", "homeschoolid": "7",
             "first_name": "Ana", "last_name": "Lee", "title": "Teacher"},
            {"schoolstaff_id": "502", "users_dcid": "10002", "schoolid": "7", "status": "1", "homeschoolid": "7",
             "first_name": "Bo", "last_name": "Kim", "title": "Teacher"},
        ],
        "section_teachers": [
            {"id": "1", "sectionid": "200001", "teacherid": "501", "role_name": "Lead Teacher",
             "start_date": "2026-08-14", "end_date": "2026-12-18"},
            {"id": "2", "sectionid": "200001", "teacherid": "502", "role_name": "Co-teacher",
             "start_date": "2026-08-14", "end_date": "2026-10-30"},
        ],
        "students": [
            {"id": "1", "dcid": "901", "student_number": "100001", "first_name": "Cy", "last_name": "Doe",
             "grade_level": "-1", "schoolid": "7", "entrydate": "2026-11-02", "exitdate": "2027-06-12",
             "enrollment_status": "10"},
            {"id": "2", "dcid": "902", "student_number": "100002", "first_name": "Di", "last_name": "Roe",
             "grade_level": "0", "schoolid": "7", "entrydate": "2026-08-14", "exitdate": "2026-10-01",
             "enrollment_status": "10"},
        ],
        "reenrollments": [
            {"id": "11", "studentid": "1", "schoolid": "7", "entrydate": "2026-08-14", "exitdate": "2026-09-15",
             "enrollment_status": "10"},
            {"id": "12", "studentid": "1", "schoolid": "7", "entrydate": "2026-09-20", "exitdate": "2026-09-20",
             "enrollment_status": "10"},
        ],
        "cc": [
            {"id": "1", "studentid": "1", "sectionid": "200001", "termid": "3601", "dateenrolled": "2026-08-14",
             "dateleft": "2026-12-19"},
            {"id": "2", "studentid": "2", "sectionid": "-200001", "termid": "-3601", "dateenrolled": "2026-08-14",
             "dateleft": "2026-09-01"},
            {"id": "3", "studentid": "2", "sectionid": "-200001", "termid": "-3601", "dateenrolled": "2026-09-10",
             "dateleft": "2026-09-10"},
        ],
        "programs": [{"id": "1", "studentid": "2", "program_name": "Homeless", "enter_date": "2026-08-14",
                      "exit_date": "2026-09-01", "status_code": "200"},
                     {"id": "2", "studentid": "2", "program_name": "Chess Club", "enter_date": "2026-08-14"}],
        "ela_status": [{"id": "1", "studentsdcid": "901", "elastatus": "EL", "elastatusstartdate": "2020-08-20"}],
    }
    raw.update(overrides)
    return {name: pd.DataFrame.from_records(records) for name, records in raw.items()}


def build(raw=None, **options):
    rejections = Rejections()
    tables = build_tables(raw if raw is not None else tiny_raw(), options=parse_options(options), school_year=YEAR,
                          rejections=rejections)
    return tables, rejections.frame()


def rows(frame: pd.DataFrame) -> list[dict]:
    return frame.to_dict("records")


def test_yearid_becomes_the_spring_school_year_and_terms_nest():
    tables, rejected = build()
    assert rejected.empty
    terms = tables["term"].set_index("term_id")
    assert list(terms.index) == ["2027-S1", "2027-Y"]
    assert set(terms["school_year"]) == {2027}
    assert terms.loc["2027-S1", "parent_term_id"] == "2027-Y" and terms.loc["2027-Y", "term_type"] == "schoolYear"
    assert pd.isna(terms.loc["2027-S1", "school_id"])  # SCHOOLID 0: the district's calendar
    assert tables["section"].loc[0, "term_id"] == "2027-S1"


def test_term_id_format_can_use_the_powerschool_term_id():
    tables, _ = build(term_id_format="{schoolid}-{id}")
    assert set(tables["term"]["term_id"]) == {"0-3600", "0-3601"}
    assert tables["section"].loc[0, "term_id"] == "0-3601"


def test_exit_dates_are_exclusive_and_the_year_end_means_still_enrolled():
    tables, _ = build()
    enrollments = tables["school_enrollment"].set_index(["student_id", "entry_date"])["exit_date"].to_dict()
    # EXITDATE 2026-10-01 is the first day not enrolled: the last day is 2026-09-30
    assert enrollments[("100002", "2026-08-14")] == "2026-09-30"
    # EXITDATE the day after the year term's last day: still enrolled (open)
    assert pd.isna(enrollments[("100001", "2026-11-02")])


def test_reenrollment_history_joins_the_current_enrollment_and_never_attended_rows_go():
    tables, rejected = build()
    mine = tables["school_enrollment"][tables["school_enrollment"]["student_id"] == "100001"]
    # REENROLLMENTS 11 (ended 09-14) + the current one; 12 ended the day it started (EXITDATE <= ENTRYDATE)
    assert list(mine["entry_date"]) == ["2026-08-14", "2026-11-02"]
    assert list(mine["exit_date"].astype(object).where(mine["exit_date"].notna(), None)) == ["2026-09-14", None]
    assert rejected.empty


def test_negative_cc_section_is_a_dropped_class_with_its_dates():
    tables, _ = build()
    cc = tables["section_enrollment"].set_index(["student_id", "entry_date"])
    assert cc.loc[("100002", "2026-08-14"), "section_id"] == "200001"  # abs(-200001)
    assert cc.loc[("100002", "2026-08-14"), "exit_date"] == "2026-08-31"  # DATELEFT 09-01 exclusive
    assert pd.isna(cc.loc[("100001", "2026-08-14"), "exit_date"])  # to the term's end: open
    assert ("100002", "2026-09-10") not in cc.index  # DATELEFT = DATEENROLLED: never attended


def test_grade_map_default_custom_and_unknown():
    tables, _ = build()
    grades = tables["student"].set_index("student_id")["grade_level"].to_dict()
    assert grades == {"100001": "TK", "100002": "KG"}
    assert tables["school"].loc[0, ["low_grade", "high_grade"]].tolist() == ["TK", "05"]
    custom, _ = build(grade_levels={-1: "PK", 0: "KG", **{g: f"{g:02d}" for g in range(1, 13)}})
    assert custom["student"].set_index("student_id")["grade_level"].to_dict() == {"100001": "PK", "100002": "KG"}
    raw = tiny_raw()
    raw["students"].loc[1, "grade_level"] = "13"
    tables, rejected = build(raw)
    assert list(tables["student"]["student_id"]) == ["100001"]
    assert rows(rejected) == [{"file": "powerschool:students", "row": 2, "sis_key": "2", "column": "grade_level",
                               "rule": "powerschool.students.grade_unknown"}]


def test_role_map_and_section_teacher_dates():
    tables, _ = build()
    staff = tables["section_staff"].set_index("staff_id")
    assert staff.loc["10001", "staff_role"] == "lead" and pd.isna(staff.loc["10001", "end_date"])
    assert staff.loc["10002", "staff_role"] == "co_teacher" and staff.loc["10002", "end_date"] == "2026-10-30"
    mapped, _ = build(section_roles={"Lead Teacher": "lead", "Co-teacher": "job_share"})
    assert mapped["section_staff"].set_index("staff_id").loc["10002", "staff_role"] == "job_share"
    raw = tiny_raw()
    raw["section_teachers"].loc[1, "role_name"] = "Student Teacher"
    tables, rejected = build(raw)
    assert list(tables["section_staff"]["staff_id"]) == ["10001"]
    assert rejected["rule"].tolist() == ["powerschool.section_teachers.role_unknown"]


def test_programs_map_names_keep_status_and_skip_unmapped_programs():
    tables, rejected = build()
    programs = rows(tables["student_program"])
    assert programs == [
        {"student_id": "100001", "program_code": "ELL", "status_code": "EL", "start_date": "2020-08-20",
         "end_date": None},
        {"student_id": "100002", "program_code": "HOMELESS", "status_code": "200", "start_date": "2026-08-14",
         "end_date": "2026-08-31"},
    ]
    assert rejected.empty  # "Chess Club" is not a rostering program: not read, not an error
    inclusive, _ = build(program_exit_date_exclusive=False)
    assert inclusive["student_program"].set_index("program_code").loc["HOMELESS", "end_date"] == "2026-09-01"


def test_caaspp_subject_period_and_a_configurable_field_name():
    tables, _ = build()
    section = tables["section"].iloc[0]
    assert (section["caaspp_subject"], section["period_code"], section["class_expression"]) == ("Math", "2", "2(A)")
    raw = tiny_raw()
    raw["sections"] = raw["sections"].rename(columns={"caaspp_subject_area": "u_caaspp"})
    renamed, _ = build(raw, fields={"caaspp_subject": "u_caaspp"})
    assert renamed["section"].iloc[0]["caaspp_subject"] == "Math"


def test_options_are_strict():
    with pytest.raises(SourceError, match="page_sise"):
        parse_options({"page_sise": 10})
    with pytest.raises(SourceError, match="section_roles"):
        parse_options({"section_roles": {"Lead Teacher": "boss"}})
    with pytest.raises(SourceError, match="fields.counsellor"):
        parse_options({"fields": {"counsellor": "x"}})


# --------------------------------------------------------------------------------------------------------------------
# Rejections, through the wire


def test_bad_records_are_rejected_by_resource_key_and_rule_not_by_value(district, ps_records):
    def corrupt(records):
        students = records["students"]
        students.loc[0, "dob"] = "2012-02-30"  # malformed date
        students.loc[1, "grade_level"] = "14"  # unknown grade
        records["section_teachers"].loc[0, "teacherid"] = "99999"  # not a staff member
        # a second primary enrollment overlapping student 3's current one
        third = students.loc[2]
        extra = pd.DataFrame([{"id": "39999", "studentid": third["id"], "schoolid": third["schoolid"],
                               "entrydate": third["entrydate"], "exitdate": "2026-12-01",
                               "enrollment_status": "10"}])
        records["reenrollments"] = pd.concat([records["reenrollments"], extra], ignore_index=True)

    students = ps_records["students"]
    with hand_made_server(district, ps_records, corrupt) as server:
        result = read(server)
    rejected = result.rejected
    by_rule = {rule: group for rule, group in rejected.groupby("rule")}
    assert set(by_rule) == {"powerschool.students.date_malformed", "powerschool.students.grade_unknown",
                            "powerschool.section_teachers.teacher_unknown",
                            "powerschool.students.overlapping_primary_enrollment",
                            "powerschool.reenrollments.overlapping_primary_enrollment"}
    assert by_rule["powerschool.students.date_malformed"][["file", "row", "sis_key", "column"]].values.tolist() == [
        ["powerschool:students", 1, students.loc[0, "id"], "dob"]]
    assert by_rule["powerschool.students.grade_unknown"]["sis_key"].tolist() == [students.loc[1, "id"]]
    assert by_rule["powerschool.reenrollments.overlapping_primary_enrollment"]["sis_key"].tolist() == ["39999"]
    # rejected records are not in the tables
    kept = set(result.tables["student"]["student_id"])
    assert students.loc[0, "student_number"] not in kept and students.loc[1, "student_number"] not in kept
    third = students.loc[2, "student_number"]
    assert third not in set(result.tables["school_enrollment"]["student_id"])
    assert len(result.tables["section_staff"]) == len(district["section_staff"]) - 1
    # never a value of the data in the report
    personal = students.loc[:2, ["student_number", "state_studentnumber", "first_name", "last_name", "dob"]]
    values = {str(v) for v in personal.to_numpy().ravel() if v is not None}
    assert not values & set(rejected.astype(str).to_numpy().ravel())


# --------------------------------------------------------------------------------------------------------------------
# The server misbehaving


def test_paging_that_repeats_a_row_once_is_read_again(district, server):
    server.corrupt_paging("students", times=1)
    result = read(server)
    assert len(result.tables["student"]) == 300 and result.tables["student"]["student_id"].is_unique
    assert result.stats["powerschool:students"]["requests"] == 2 * (1 + 3)  # counted and read twice


def test_paging_that_repeats_a_row_twice_fails_naming_the_resource(server):
    server.corrupt_paging("cc", times=2)
    with pytest.raises(IncompleteReadError, match=r"powerschool: cc did not add up twice \(1 record\(s\) repeated"):
        read(server)


def test_a_query_not_granted_is_an_access_error_naming_it(server):
    server.deny_query("cc")
    with pytest.raises(SourceAccessError) as caught:
        read(server)
    assert (caught.value.resource, caught.value.status) == ("cc", 403)
    assert "rostering plugin" in str(caught.value)


def test_wrong_secret_is_an_access_error(server):
    source = PowerSchoolSource(connection=connection(server, secret="wrong"), options={"max_retries": 0})
    with pytest.raises(SourceAccessError) as caught:
        source.read(as_of=AS_OF, school_year=YEAR)
    assert caught.value.status == 401


class ExpiringServer(LocalPowerSchoolServer):
    """Expires every token right after answering /ws/v1/metadata: the next request meets a real 401."""

    def _metadata(self, request):
        answer = super()._metadata(request)
        self.expire_all_tokens()
        return answer


def test_an_expired_token_is_fetched_again_once(district, ps_records):
    with ExpiringServer(district, client_id=CLIENT_ID, client_secret=SECRET, school_year=YEAR, max_page_size=100,
                        records=ps_records) as server:
        result = read(server, max_concurrency=1)
        assert server.tokens_issued == 2
        assert [s for _, _, s in server.requests].count(401) == 1
    assert len(result.tables["student"]) == 300


def test_tokens_that_never_work_fail_after_one_refresh(district, ps_records):
    with LocalPowerSchoolServer(district, client_id=CLIENT_ID, client_secret=SECRET, school_year=YEAR,
                                token_lifetime_s=-1, records=ps_records) as server:
        with pytest.raises(SourceAccessError) as caught:
            read(server, max_concurrency=1)
        assert caught.value.status == 401 and caught.value.resource == "metadata"
        assert [s for _, _, s in server.requests].count(401) == 2


def test_429_retry_after_is_honoured(server):
    server.fail_next(1, status=429, retry_after="1", path_prefix="/ws/schema/query/")
    started = time.monotonic()
    result = read(server, max_concurrency=1)
    assert time.monotonic() - started >= 1.0
    statuses = [s for _, p, s in server.requests if p.startswith("/ws/schema/query/")]
    assert statuses[0] == 429 and statuses[1] == 200
    assert len(result.tables["student"]) == 300


def test_logs_hold_no_student_data(district, server, caplog):
    server.corrupt_paging("students", times=1)  # the warning path too
    with caplog.at_level(logging.DEBUG):
        read(server)
    text = caplog.text
    assert "powerschool" in text
    student = district["student"]
    names = {n for n in pd.concat([student["first_name"], student["last_name"]]).dropna() if len(n) >= 4}
    leaked = {n for n in names if n in text} | {s for s in student["ssid"].dropna() if s in text}
    assert not leaked


# --------------------------------------------------------------------------------------------------------------------
# The plugin the district installs: what it declares is what the adapter reads and the stand-in serves

PLUGIN = REPO_ROOT / "include" / "sis" / "powerschool" / "plugin"
PS_NS = {"p": "http://plugin.powerschool.pearson.com"}


def plugin_queries() -> dict[str, dict]:
    import xml.etree.ElementTree as ET

    queries = {}
    for query in ET.parse(PLUGIN / "queries_root" / "rostering.named_queries.xml").getroot().iter("query"):
        queries[query.get("name")] = {
            "columns": [(c.get("column").upper(), c.text) for c in query.iter("column")],
            "args": [a.get("name") for a in query.iter("arg")], "sql": query.find("sql").text,
            "flattened": query.get("flattened"),
        }
    return queries


def test_the_plugin_declares_every_query_the_adapter_reads(ps_records):
    import xml.etree.ElementTree as ET

    queries = plugin_queries()
    assert set(queries) == {name for name, _, _ in QUERIES.values()}
    granted = {(f.get("table").upper(), f.get("field").upper())
               for f in ET.parse(PLUGIN / "plugin.xml").getroot().iterfind("p:access_request/p:field", PS_NS)}
    assert all(access == "ViewOnly" for access in {f.get("access") for f in ET.parse(
        PLUGIN / "plugin.xml").getroot().iterfind("p:access_request/p:field", PS_NS)})
    mappings = (PLUGIN / "permissions_root" / "rostering.permission_mappings.xml").read_text()
    for resource, (name, keys, by_year) in QUERIES.items():
        query = queries[name]
        fields = [text for _, text in query["columns"]]
        assert query["flattened"] == "true"
        assert set(keys) <= set(fields), name
        assert (query["args"] == ["yearid"]) == by_year and (":yearid" in query["sql"]) == by_year, name
        # the stand-in serves exactly the fields the query declares
        assert list(ps_records[resource].columns) == fields, name
        for column, _ in query["columns"]:
            table, field = column.split(".")
            assert (table, field) in granted or (table, "*") in granted, f"{name}: {column} not requested"
        tables = set(re.findall(r"\b(?:FROM|JOIN)\s+([A-Z_]+)", query["sql"].upper())) - {"YR", "YEAR_STUDENTS"}
        assert all(any(t == table for t, _ in granted) for table in tables), f"{name}: {tables}"
        assert f"/ws/schema/query/{name}<" in mappings, name


def test_the_command_line_serves_a_district(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "ROSTERING_POWERSCHOOL_CLIENT_SECRET": SECRET}
    process = subprocess.Popen(
        [sys.executable, "-m", "rostering.devservers.powerschool_server", "--students", "60", "--school-year",
         str(YEAR), "--port", str(port), "--client-id", CLIENT_ID], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert "PowerSchool stand-in on" in process.stdout.readline()
        source = PowerSchoolSource(connection=SourceConnection(host=f"http://127.0.0.1:{port}", login=CLIENT_ID,
                                                               password=SECRET))
        result = source.read(as_of=AS_OF, school_year=YEAR)
        assert len(result.tables["student"]) == 60 and result.rejected.empty
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0


def test_schools_copies_of_the_district_calendar_are_one_term_and_disagreeing_copies_are_rejected():
    raw = tiny_raw()
    terms = raw["terms"]
    at_school = terms.assign(schoolid="7", dcid=["11", "12"])
    raw["terms"] = pd.concat([terms.assign(schoolid="8"), at_school], ignore_index=True)  # two schools' copies
    raw["terms"].loc[0:1, "dcid"] = ["21", "22"]
    tables, rejected = build(raw)
    assert rejected.empty
    assert rows(tables["term"][["term_id", "school_id"]]) == [{"term_id": "2027-S1", "school_id": None},
                                                              {"term_id": "2027-Y", "school_id": None}]
    raw["terms"].loc[0, "lastday"] = "2027-06-04"  # school 8's year ends earlier: not the same term
    tables, rejected = build(raw)
    assert set(rejected["rule"]) == {"powerschool.terms.duplicate_id"} and len(rejected) == 2
    assert list(tables["term"]["term_id"]) == ["2027-S1"]
    per_school, rejected = build(raw, term_id_format="{schoolid}-{id}")
    assert rejected.empty and len(per_school["term"]) == 4


def test_a_counselor_who_is_not_staff_leaves_the_student_and_an_empty_counselor():
    raw = tiny_raw()
    raw["students"]["counselor_users_dcid"] = ["10002", "99999"]
    tables, rejected = build(raw)
    assert tables["student"].set_index("student_id")["counselor_staff_id"].to_dict() == {"100001": "10002",
                                                                                         "100002": None}
    assert rejected.empty


def test_a_rate_limited_server_is_read_completely(district, ps_records):
    with LocalPowerSchoolServer(district, client_id=CLIENT_ID, client_secret=SECRET, school_year=YEAR,
                                max_page_size=100, rate_limit_per_s=15, records=ps_records) as server:
        result = read(server, max_retries=10)
        statuses = [s for _, _, s in server.requests]
    assert 429 in statuses  # the limit was hit ...
    assert len(result.tables["section_enrollment"]) == len(district["section_enrollment"])  # ... and waited out


def test_pages_parse_in_arrow_and_fall_back_for_what_arrow_cannot_take():
    from rostering.sis.sources.powerschool import _frame, _page_table

    def body(records) -> bytes:
        return json.dumps({"name": "q", "record": records}).encode()

    known: set[str] = set()
    first, n = _page_table(body([{"id": "1", "entrydate": "2026-08-13"}, {"id": "2"}]), known)
    assert n == 2 and known == {"id", "entrydate"}  # the first page teaches the resource's fields
    second, _ = _page_table(body([{"id": "3", "entrydate": "2026-09-01"}]), set(known))
    assert second.schema.field("entrydate").type == pa.string()  # a date stays text, as PowerSchool sent it
    widened = set(known)
    third, _ = _page_table(body([{"id": "4", "exitdate": "2027-06-12"}]), widened)  # a field not seen before
    assert "exitdate" in widened and third.column("exitdate").to_pylist() == ["2027-06-12"]
    numbers, _ = _page_table(body([{"id": 5, "active": True}]), {"id", "active"})  # not text: stringified
    single, n = _page_table(json.dumps({"record": {"id": "6"}}).encode(), {"id"})  # one record as an object
    assert n == 1
    frame = _frame([first, second, third, numbers, single])
    assert list(frame.columns) == ["active", "entrydate", "exitdate", "id"]
    assert frame["id"].tolist() == ["1", "2", "3", "4", "5", "6"]
    assert frame["entrydate"].isna().tolist()[:3] == [False, True, False]
    assert frame["active"].tolist()[4] == "True" and frame["entrydate"].iloc[2] == "2026-09-01"
    assert str(frame["id"].dtype) == str(pd.Series(["x"]).astype("string[pyarrow]").dtype)
