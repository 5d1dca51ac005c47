"""The Aeries source against the local Aeries API stand-in (a real HTTP server on loopback).

The main check is the round trip: the demo district -> the stand-in's Aeries shapes -> the adapter -> model tables
equal to the original (every table, compared as strings after sorting by the primary key). Then each conversion on
hand-made records, what the adapter rejects and how, paging that does not add up, refusals, rate limits and logs.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import time

import pandas as pd
import pytest

from rostering.devservers.aeries_server import LocalAeriesServer
from rostering.sis.demo import generate_district
from rostering.sis.schema import COLUMNS, PRIMARY_KEYS
from rostering.sis.sources.aeries import (
    R_CLASSES, R_ENROLLMENT, R_SECTIONS, R_STAFF, R_STUDENTS, AeriesOptions, AeriesSource, dates, grades,
    map_district, parse_options,
)
from rostering.sis.sources.base import IncompleteReadError, SourceAccessError, SourceConnection, SourceError

YEAR = 2027
AS_OF = dt.date(2027, 2, 1)
CERT = "0123456789abcdef0123456789abcdef"
KEYS = PRIMARY_KEYS  # each table's primary key (rostering.sis.schema)
# Fields Aeries cannot carry, (table, column) -> why. Empty: the district's extension fields are options whose
# defaults name what the stand-in serves (docs/sis-sources.md, Aeries section), so every field round-trips.
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {}


def as_strings(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    frame = frame[list(COLUMNS[table])].astype(object)
    frame = frame.where(frame.notna(), None).map(lambda v: None if v is None else str(v))
    for (t, c) in KNOWN_DIFFERENCES:
        if t == table:
            frame[c] = None
    return frame.sort_values(KEYS[table], kind="stable").reset_index(drop=True)


def read(server: LocalAeriesServer, **options) -> "object":
    source = AeriesSource(connection=SourceConnection(host=server.url, password=CERT), options=options)
    return source.read(as_of=AS_OF, school_year=YEAR)


def stored(server: LocalAeriesServer, kind: str, school: str) -> list[dict]:
    return [json.loads(line) for line in server._store[(kind, school)]]


@pytest.fixture(scope="module")
def district():
    return generate_district(300, school_year=YEAR)


@pytest.fixture(scope="module")
def server(district):
    with LocalAeriesServer(district, certificate=CERT) as running:
        yield running


@pytest.fixture()
def small():
    """A fresh small district and stand-in that a test may tamper with."""
    tables = generate_district(60, school_year=YEAR)
    with LocalAeriesServer(tables, certificate=CERT) as running:
        yield tables, running


# --------------------------------------------------------------------------------------------------------------------
# The round trip


@pytest.mark.parametrize("page_size", [1000, 37])
def test_round_trip_gives_back_every_table(server, district, page_size):
    result = read(server, page_size=page_size)
    assert result.rejected.empty
    for table in COLUMNS:
        expected, got = as_strings(district[table], table), as_strings(result.tables[table], table)
        assert len(got) == len(expected), table
        pd.testing.assert_frame_equal(got, expected, obj=table)
    # the read really paged, and per school, not per student
    students_requests = result.stats[f"aeries:{R_STUDENTS}"]["requests"]
    assert students_requests < len(district["student"]) / 5
    if page_size == 37:
        assert students_requests > len(district["school"])


def test_round_trip_with_counselor_teacher_numbers(district):
    with LocalAeriesServer(district, certificate=CERT, counselor_numbers="teacher_number") as teacher_numbers:
        served = [r["CounselorNumber"] for r in stored(teacher_numbers, "students", "3")]
        assert max(served) < 1000  # teacher numbers within the school, not staff ids
        result = read(teacher_numbers, counselor_number_kind="teacher_number")
    pd.testing.assert_frame_equal(as_strings(result.tables["student"], "student"),
                                  as_strings(district["student"], "student"))


def test_the_stand_in_serves_documented_shapes(server):
    section = stored(server, "sections", "3")[0]
    assert {"SchoolCode", "SectionNumber", "Period", "Semester", "CourseID", "Room", "SectionStaffMembers"} <= set(
        section)
    member = section["SectionStaffMembers"][0]
    assert {"StaffID", "IsPrimaryTeacher", "StaffRoleCode", "StartDate", "EndDate"} <= set(member)
    student = stored(server, "students", "3")[0]
    assert isinstance(student["StudentID"], int) and isinstance(student["Grade"], int)
    assert student["Birthdate"].endswith("T00:00:00")
    roster = stored(server, "classes", "3")[0]
    assert {"StudentID", "SequenceNumber", "SectionNumber", "DateStarted", "DateEnded"} <= set(roster)


# --------------------------------------------------------------------------------------------------------------------
# Conversions on hand-made records


def test_grade_map():
    codes, unknown = grades(pd.Series([-2, -1, 0, 1, 9, 12, 13, "5", None, 2.5], dtype=object),
                            AeriesOptions().grade_map)
    assert codes.tolist() == ["PK", "TK", "KG", "01", "09", "12", None, "05", None, None]
    assert unknown.tolist() == [False] * 6 + [True, False, True, True]


def test_dates_and_malformed_dates():
    iso, bad = dates(pd.Series(["2026-08-14T00:00:00", "2026-02-30T00:00:00", "08/14/2026", "", None], dtype=object))
    assert iso.tolist() == ["2026-08-14", None, None, None, None]
    assert bad.tolist() == [False, True, True, False, False]


def _raw(**frames) -> dict:
    return {name: pd.DataFrame(records, dtype=object) for name, records in frames.items()}


SCHOOLS = [{"SchoolCode": 0, "Name": "District", "StateCountyID": "19", "StateDistrictID": "75309"},
           {"SchoolCode": 5, "Name": "Five", "StateCountyID": "19", "StateDistrictID": "75309",
            "StateSchoolID": "1234567", "LowGradeLevel": 9, "HighGradeLevel": 12, "InactiveStatusCode": ""},
           {"SchoolCode": 6, "Name": "Six", "LowGradeLevel": -1, "HighGradeLevel": 5, "InactiveStatusCode": "I"}]
TERMS = [{"SchoolCode": 5, "TermCode": "Y", "TermDescription": "Year", "StartDate": "2026-08-14T00:00:00",
          "EndDate": "2027-06-11T00:00:00"},
         {"SchoolCode": 5, "TermCode": "F", "TermDescription": "Fall", "StartDate": "2026-08-14T00:00:00",
          "EndDate": "2026-12-18T00:00:00"}]
STAFF = [{"ID": 700, "FirstName": "A", "LastName": "B", "PrimaryAeriesSchool": 5, "InactiveStatusCode": ""},
         {"ID": 701, "FirstName": "C", "LastName": "D", "PrimaryAeriesSchool": 6, "InactiveStatusCode": "I",
          "DEL": True},
         {"ID": 702, "FirstName": "E", "LastName": "F", "PrimaryAeriesSchool": 5, "InactiveStatusCode": "",
          "SchoolAccessPermissions": [{"SchoolCode": 6}]}]
COURSES = [{"ID": "0304", "Title": "English 9", "SubjectArea1Code": "English Language Arts"}]


def test_staff_roles_inactive_and_soft_deleted_rows():
    sections = [{"SchoolCode": 5, "SectionNumber": 10, "Semester": "F", "CourseID": "0304", "Period": "1",
                 "InactiveStatusCode": "", "SectionStaffMembers": [
                     {"StaffID": 700, "IsPrimaryTeacher": True, "StaffRoleCode": ""},
                     {"StaffID": 702, "IsPrimaryTeacher": False, "StaffRoleCode": "AI",
                      "StartDate": "2026-09-01T00:00:00", "EndDate": "2026-10-30T00:00:00"},
                     {"StaffID": 702, "IsPrimaryTeacher": False, "StaffRoleCode": "", "InactiveStatusCode": "I"},
                     {"StaffID": 999, "IsPrimaryTeacher": False, "StaffRoleCode": "CO"},
                     {"StaffID": 700, "IsPrimaryTeacher": False, "StaffRoleCode": "ZZ",
                      "StartDate": "2026-11-01T00:00:00"}]},
                {"SchoolCode": 5, "SectionNumber": 11, "Semester": "Y", "CourseID": "0304", "Period": "2",
                 "InactiveStatusCode": "I", "SectionStaffMembers": []}]
    raw = _raw(**{"/api/v5/schools": SCHOOLS, "/api/v5/schools/{sc}/terms": TERMS, "/api/v5/courses": COURSES,
                  "/api/v5/staff": STAFF, R_SECTIONS: sections})
    tables, rejected = map_district(raw, options=AeriesOptions(), school_year=YEAR)
    staff = tables["staff"].set_index("staff_id")
    assert list(staff.index) == ["700", "702"]  # 701 is soft-deleted (DEL)
    assert tables["staff_school"].values.tolist() == [["700", "5", 1], ["702", "5", 1], ["702", "6", 0]]
    assert tables["school"].set_index("school_id")["is_active"].to_dict() == {"5": 1, "6": 0}
    assert tables["school"].set_index("school_id")["school_level"].to_dict() == {"5": "high", "6": "elementary"}
    section = tables["section"].set_index("section_id")
    assert section["is_active"].to_dict() == {"5-10": 1, "5-11": 0}  # TG non-blank: inactive, kept
    assert section.loc["5-10", "caaspp_subject"] == "ELA" and section.loc["5-10", "term_id"] == "2027-F"
    sst = tables["section_staff"]
    assert sst[["staff_id", "staff_role", "start_date", "end_date"]].values.tolist() == [
        ["700", "lead", "2026-08-14", None],                    # no dates (SSM): the term's start
        ["702", "aide", "2026-09-01", "2026-10-30"]]            # role code AI, its own dates; inactive row dropped
    rules = rejected.set_index("sis_key")["rule"].to_dict()
    assert rules == {"5+10+999": "aeries.section_staff.staff_unknown", "5+10+700": "aeries.section_staff.role_unknown"}
    assert set(rejected["file"]) == {"aeries:/api/v5/schools/{sc}/sections"}


def test_concurrent_student_records_counselor_numbers_and_english_learners():
    students = [  # one student, records at two schools: the active one (blank TG) describes the student
        {"StudentID": 99400001, "SchoolCode": 5, "FirstName": "Ann", "LastName": "Lee", "Grade": 9,
         "InactiveStatusCode": "", "SchoolEnterDate": "2026-08-14T00:00:00", "CounselorNumber": 3,
         "LanguageFluencyCode": "R", "EnglishLearnerStartDate": "2020-08-20T00:00:00",
         "DateRedesignatedFluentEnglishProficient": "2026-10-05T00:00:00"},
        {"StudentID": 99400001, "SchoolCode": 6, "FirstName": "Ann", "LastName": "Lee", "Grade": 5,
         "InactiveStatusCode": "*", "SchoolEnterDate": "2025-08-14T00:00:00", "CounselorNumber": 4},
        {"StudentID": 99400002, "SchoolCode": 5, "FirstName": "Bo", "LastName": "Ma", "Grade": 11,
         "InactiveStatusCode": "", "CounselorNumber": 0, "LanguageFluencyCode": "I",
         "EnglishLearnerStartDate": "2019-01-07T00:00:00"},
    ]
    teachers = [{"SchoolCode": 5, "TeacherNumber": 3, "StaffID1": 702}, {"SchoolCode": 6, "TeacherNumber": 4,
                                                                          "StaffID1": 700}]
    raw = _raw(**{"/api/v5/schools": SCHOOLS, "/api/v5/staff": STAFF, R_STUDENTS: students,
                  "/api/v5/schools/{sc}/teachers": teachers})
    tables, rejected = map_district(raw, options=AeriesOptions(counselor_number_kind="teacher_number"),
                                    school_year=YEAR)
    student = tables["student"].set_index("student_id")
    assert student.loc["99400001", "grade_level"] == "09"  # the active record at school 5, not the one at 6
    assert student.loc["99400001", "counselor_staff_id"] == "702"  # teacher 3 at school 5 -> staff 702
    assert student.loc["99400002", "counselor_staff_id"] is None  # 0 = none
    ell = tables["student_program"][["student_id", "status_code", "start_date", "end_date"]].values.tolist()
    assert ell == [["99400001", "EL", "2020-08-20", "2026-10-04"], ["99400001", "RFEP", "2026-10-05", None],
                   ["99400002", "IFEP", "2019-01-07", None]]
    assert rejected.empty


def test_leave_dates_inclusive_or_exclusive():
    enrollment = [{"StudentID": 1, "SchoolCode": 5, "EnterDate": "2026-08-14T00:00:00",
                   "LeaveDate": "2026-10-01T00:00:00"}]
    students = [{"StudentID": 1, "SchoolCode": 5, "FirstName": "A", "LastName": "B", "Grade": 9}]
    raw = _raw(**{"/api/v5/schools": SCHOOLS, R_STUDENTS: students, R_ENROLLMENT: enrollment})
    inclusive, _ = map_district(raw, options=AeriesOptions(), school_year=YEAR)
    exclusive, _ = map_district(raw, options=AeriesOptions(leave_date_inclusive=False), school_year=YEAR)
    assert inclusive["school_enrollment"]["exit_date"].tolist() == ["2026-10-01"]
    assert exclusive["school_enrollment"]["exit_date"].tolist() == ["2026-09-30"]
    assert inclusive["school_enrollment"]["enrollment_status"].tolist() == ["10"]  # no field: the default


# --------------------------------------------------------------------------------------------------------------------
# Bad input through the wire: rejected, not in the tables


def test_malformed_and_inconsistent_records_are_rejected_by_key_and_rule(small):
    tables, server = small
    students = stored(server, "students", "1")
    students[0]["Grade"] = 42
    students[1]["Birthdate"] = "2019-13-45T00:00:00"
    server.replace_records("students", 1, students)
    sections = stored(server, "sections", "1")
    sections[0]["SectionStaffMembers"].append({"StaffID": 123, "IsPrimaryTeacher": False, "StaffRoleCode": "CO"})
    server.replace_records("sections", 1, sections)
    enrollment = stored(server, "enrollment", "1")
    twin = next(e for e in enrollment if e["LeaveDate"] is None and e["EnrollmentStatusCode"] == "10"
                and e["StudentID"] not in (students[0]["StudentID"], students[1]["StudentID"]))
    other_school = dict(twin, SchoolCode=2, EnterDate="2026-09-01T00:00:00")
    server.replace_records("enrollment", 2, stored(server, "enrollment", "2") + [other_school])

    result = read(server)
    rejected = result.rejected
    by_rule = {rule: group for rule, group in rejected.groupby("rule")}
    assert set(by_rule) >= {"aeries.students.grade_unknown", "aeries.students.date_malformed",
                            "aeries.section_staff.staff_unknown", "aeries.enrollment.overlapping_primary"}
    grade = by_rule["aeries.students.grade_unknown"].iloc[0]
    assert (grade["file"], grade["sis_key"], grade["column"]) == (
        "aeries:/api/v5/schools/{sc}/students", f"1+{students[0]['StudentID']}", "Grade")
    assert str(students[0]["StudentID"]) not in set(result.tables["student"]["student_id"])
    assert str(students[1]["StudentID"]) not in set(result.tables["student"]["student_id"])
    assert "123" not in set(result.tables["section_staff"]["staff_id"])
    overlapping = by_rule["aeries.enrollment.overlapping_primary"]
    assert set(overlapping["sis_key"]) == {f"1+{twin['StudentID']}", f"2+{twin['StudentID']}"}
    assert str(twin["StudentID"]) not in set(result.tables["school_enrollment"]["student_id"])
    # the rejected students' other records are left out as unknown students, by rule
    assert (rejected["rule"] == "aeries.classes.student_unknown").any()
    # nothing in the report is a value of the data (no names)
    names = set(tables["student"]["last_name"])
    assert not any(value in names for value in rejected.astype(str).to_numpy().ravel())


@pytest.mark.parametrize(("mode", "says"), [("repeat", "repeated"), ("short", "short page")])
def test_paging_that_does_not_add_up_is_retried_once_then_fails(small, mode, says):
    _, server = small
    server.corrupt_paging("/students", mode=mode, times=1)
    result = read(server, page_size=5)  # one bad read, one good retry
    assert len(result.tables["student"]) == 60
    server.corrupt_paging("/students", mode=mode, times=2)
    with pytest.raises(IncompleteReadError, match=r"/api/v5/schools/\{sc\}/students") as caught:
        read(server, page_size=5, max_concurrency=1)
    assert says in str(caught.value)


# --------------------------------------------------------------------------------------------------------------------
# Refusals, rate limits, logs, options


def test_a_security_area_not_granted_names_resource_and_status(small):
    _, server = small
    server.deny("/api/v5/staff")
    with pytest.raises(SourceAccessError) as caught:
        read(server)
    assert (caught.value.resource, caught.value.status) == (R_STAFF, 403)
    assert "/api/v5/staff" in str(caught.value) and "403" in str(caught.value)


def test_a_wrong_certificate_is_refused(small):
    _, server = small
    source = AeriesSource(connection=SourceConnection(host=server.url, password="wrong"), options={})
    with pytest.raises(SourceAccessError) as caught:
        source.read(as_of=AS_OF, school_year=YEAR)
    assert caught.value.status == 401
    assert "wrong" not in str(caught.value)


def test_429_retry_after_is_honoured(small):
    _, server = small
    server.fail_next(1, status=429, retry_after="1", path_prefix="/api/v5/schools/1/classes")
    started = time.monotonic()
    result = read(server, backoff_s=0.01)
    assert time.monotonic() - started >= 1.0
    assert len(result.tables["section_enrollment"]) > 0
    assert ("GET", "/api/v5/schools/1/classes", 429) in server.requests


def test_a_school_year_the_api_does_not_offer_fails_clearly(small):
    _, server = small
    source = AeriesSource(connection=SourceConnection(host=server.url, password=CERT), options={})
    with pytest.raises(SourceError, match="2029-2030"):
        source.read(as_of=AS_OF, school_year=2030)


def test_logs_carry_counts_and_resources_only(small, caplog):
    tables, server = small
    with caplog.at_level(logging.DEBUG):
        read(server, page_size=7)
    assert "/api/v5/schools/{sc}/students" in caplog.text
    people = pd.concat([tables["student"][["first_name", "last_name", "student_id"]].astype(str).stack(),
                        tables["student"]["ssid"].dropna().astype(str), tables["staff"]["email"].astype(str)])
    leaked = [value for value in set(people) if len(value) >= 4 and value in caplog.text]
    assert leaked == []
    assert CERT not in caplog.text


def test_unknown_option_names_the_key_and_maps_are_checked():
    with pytest.raises(SourceError, match="page_sise"):
        parse_options({"page_sise": 10})
    with pytest.raises(SourceError, match="staff_role_map"):
        parse_options({"staff_role_map": {"LD": "leader"}})
    with pytest.raises(SourceError, match="grade_map"):
        parse_options({"grade_map": {0: "K"}})
    options = parse_options({"page_size": 10, "grade_map": {-1: "TK", 0: "KG"}, "caaspp_subject_by_course": {"0304":
                                                                                                            "ELA"}})
    assert (options.page_size, options.grade_map[0], options.caaspp_subject_by_course["0304"]) == (10, "KG", "ELA")


def test_connection_needs_a_certificate():
    with pytest.raises(SourceError, match="certificate"):
        AeriesSource(connection=SourceConnection(host="https://aeries.example.org/aeries"), options=None)


def test_class_schedules_use_the_bulk_endpoint_not_one_request_per_student(server, district):
    before = len(server.requests)
    read(server)
    paths = [p for _, p, _ in server.requests[before:]]
    assert not any(p.startswith("/api/v5/enrollment/") for p in paths)  # the per-student form
    assert sum(p.endswith("/classes") for p in paths) <= 2 * len(district["school"])
    assert any(R_CLASSES.replace("{sc}", "3") == p for p in paths)


def test_rejections_are_weighed_against_what_the_resource_returned(small):
    """rejected.csv's "file" and the read's stats name a resource the same way, so the snapshot can tell which share
    of a resource was lost (rostering.sis.snapshot.rejected_shares)."""
    _, server = small
    students = stored(server, "students", "1")
    students[0]["Grade"] = 42
    server.replace_records("students", 1, students)
    result = read(server)
    files = set(result.rejected["file"])
    assert files and files <= set(result.stats)
    assert result.stats["aeries:/api/v5/schools/{sc}/students"]["records"] >= len(students)


def test_programs_statuses_groups_and_unmapped_codes():
    programs = [
        {"StudentID": 1, "SchoolCode": 5, "ProgramCode": "144", "EligibilityStartDate": "2025-01-06T00:00:00",
         "EligibilityEndDate": None, "ExtendedProperties": [{"Name": "DisabilityCode2", "Value": "260"},
                                                           {"Name": "DisabilityCode", "Value": "240"}]},
        {"StudentID": 1, "SchoolCode": 5, "ProgramCode": "182", "EligibilityStartDate": "2026-07-01T00:00:00",
         "EligibilityEndDate": None, "ExtendedProperties": []},
        {"StudentID": 1, "SchoolCode": 5, "ProgramCode": "999", "EligibilityStartDate": "2026-07-01T00:00:00"},
        {"StudentID": 1, "SchoolCode": 5, "ProgramCode": "127", "EligibilityStartDate": "not a date"},
    ]
    groups = [{"SchoolCode": 5, "GroupId": 3, "Name": "AVID", "Description": "AVID 9",
               "Students": [{"StudentId": 1}, {"StudentId": 77}], "Staff": [{"StaffId": 999}, {"StaffId": 702}]}]
    students = [{"StudentID": 1, "SchoolCode": 5, "FirstName": "A", "LastName": "B", "Grade": 9}]
    raw = _raw(**{"/api/v5/schools": SCHOOLS, "/api/v5/staff": STAFF, R_STUDENTS: students,
                  "/api/v5/schools/{sc}/students/0/programs": programs, "/api/v5/schools/{sc}/StudentGroups": groups})
    tables, rejected = map_district(raw, options=AeriesOptions(group_id_format="{SchoolCode}-{GroupId}"),
                                    school_year=YEAR)
    assert tables["student_program"][["program_code", "status_code", "start_date"]].values.tolist() == [
        ["SED", None, "2026-07-01"], ["SPED", "240", "2025-01-06"]]  # 999 is not mapped: left out
    assert sorted(rejected["rule"]) == ["aeries.groups.student_unknown", "aeries.programs.date_malformed"]
    assert tables["student_group"].values.tolist() == [["5-3", "5", "AVID", "AVID 9", "702"]]
    assert tables["student_group_member"].values.tolist() == [["5-3", "1"]]


def test_snapshot_through_aeries_equals_the_sql_model_snapshot(tmp_path, district):
    """The whole night's read: the snapshot SQL over the adapter's tables gives the same Parquet rows as over the
    district's model database."""
    import sqlalchemy as sa

    from rostering.sis.demo import load_district
    from rostering.sis.snapshot import take_snapshot
    from rostering.sis.sources.sql_model import SqlModelSource

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'sis.sqlite'}")
    load_district(district, engine)
    take_snapshot(SqlModelSource(engine), tmp_path / "sql_model", as_of=AS_OF, school_year=YEAR,
                  max_rejected_share=0.02)
    engine.dispose()
    with LocalAeriesServer(district, certificate=CERT) as running:
        source = AeriesSource(connection=SourceConnection(host=running.url, password=CERT), options={})
        take_snapshot(source, tmp_path / "aeries", as_of=AS_OF, school_year=YEAR, max_rejected_share=0.02)
    files = sorted(p.name for p in (tmp_path / "sql_model").glob("*.parquet"))
    assert len(files) == 14
    for name in files:
        expected = pd.read_parquet(tmp_path / "sql_model" / name)
        got = pd.read_parquet(tmp_path / "aeries" / name)
        pd.testing.assert_frame_equal(got, expected, obj=name)


def test_a_rate_limited_server_is_read_completely():
    """The stand-in's rate limit answers 429 + Retry-After; the client waits and the read is still complete."""
    tables = generate_district(60, school_year=YEAR)
    with LocalAeriesServer(tables, certificate=CERT, rate_limit_per_s=20) as limited:
        result = read(limited, backoff_s=0.05)
        throttled = sum(1 for _, _, status in limited.requests if status == 429)
    assert throttled > 0
    for table in ("student", "section_enrollment"):
        pd.testing.assert_frame_equal(as_strings(result.tables[table], table), as_strings(tables[table], table))
