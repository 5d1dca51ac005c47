"""Issue 14: OneRoster rules on odd SIS data, each on a hand-built snapshot with the expected rows worked out by hand.

- Conflicts are judged on the values as they are written (trimmed, line breaks as one space), not on the raw SIS text.
- The primary teacher is chosen from every lead assignment, before a teacher's rows in a class become one.
- ``classes.grades`` lists the grades of the students who are sent, never of a withheld one.

The snapshot is a handful of rows per table, written to Parquet with the snapshot's types (strings; flags and years
int32) and read back as the build reads a real one.
"""
from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rostering.oneroster import vendor
from rostering.sis.extract import INT_COLUMNS
from rostering.vendors.profile import load_profile

YEAR = "2026-08-13"  # first school day; every row below is active on the as-of date

DISTRICT = {
    "districts": [{"district_id": "D1", "name": "Odd Unified", "cds_district_code": "1964733", "nces_id": "0600001",
                   "state_code": "CA"}],
    "schools": [{"school_id": "S1", "district_id": "D1", "school_number": "101", "name": "Alder Elementary",
                 "cds_code": "19647330000001", "nces_id": "060000100001", "school_level": "elementary",
                 "low_grade": "TK", "high_grade": "05", "classification": "public",
                 "excluded_from_state_reporting": 0}],
    "terms": [{"term_id": "Y2027", "school_id": None, "school_year": 2027, "term_type": "schoolYear",
               "title": "2026-2027", "start_date": YEAR, "end_date": "2027-06-10", "parent_term_id": None}],
    "courses": [{"course_id": "C1", "course_number": "M300", "title": "Math 3", "department": "MATH",
                 "subject_area": "Mathematics"}],
    "sections": [{"section_id": section, "school_id": "S1", "course_id": "C1", "term_id": "Y2027",
                  "section_number": number, "period_code": number, "class_expression": f"{number}(A)", "room": "12",
                  "caaspp_subject": "Math", "class_type": "scheduled", "start_date": YEAR, "end_date": "2027-06-10"}
                 for section, number in (("SEC1", "1"), ("SEC2", "2"))],
    "staff": [{"staff_id": staff, "first_name": staff, "middle_name": None, "last_name": "Teacher",
               "email": f"{staff.lower()}@odd.example.org", "username": staff.lower(), "state_educator_id": None,
               "staff_role": "teacher", "initial_password": None} for staff in ("T1", "T2", "T3")],
    "staff_schools": [{"staff_id": staff, "school_id": "S1", "is_home": 1} for staff in ("T1", "T2", "T3")],
    "student_programs": [],
}
COLUMNS = {
    "students": ("student_id", "ssid", "first_name", "middle_name", "last_name", "grade_level", "birth_date", "email",
                 "username", "counselor_staff_id", "home_language_code", "reading_level", "reading_level_imputed",
                 "excluded_from_state_reporting"),
    "school_enrollments": ("student_id", "school_id", "entry_date", "exit_date", "enrollment_status",
                           "excluded_from_state_reporting"),
    "section_enrollments": ("student_id", "section_id", "entry_date", "exit_date"),
    "section_staff": ("section_id", "staff_id", "staff_role", "start_date", "end_date"),
    "student_programs": ("student_id", "program_code", "status_code", "start_date", "end_date"),
}


def snapshot(folder: Path, students: dict[str, tuple[str, str]], classes: dict[str, list[str]],
             teachers: list[tuple[str, str, str, str]]):
    """``students``: id -> (grade, username); ``classes``: section -> student ids; ``teachers``: (section, staff,
    role, start date). Every student is enrolled at S1 from the first day."""
    tables = dict(DISTRICT)
    tables["students"] = [
        {"student_id": sid, "ssid": None, "first_name": "Kid", "middle_name": None, "last_name": sid,
         "grade_level": grade, "birth_date": "2017-01-01", "email": None, "username": username,
         "counselor_staff_id": None, "home_language_code": "00", "reading_level": None, "reading_level_imputed": 0,
         "excluded_from_state_reporting": 0} for sid, (grade, username) in students.items()]
    tables["school_enrollments"] = [
        {"student_id": sid, "school_id": "S1", "entry_date": YEAR, "exit_date": None, "enrollment_status": "10",
         "excluded_from_state_reporting": 0} for sid in students]
    tables["section_enrollments"] = [
        {"student_id": sid, "section_id": section, "entry_date": YEAR, "exit_date": None}
        for section, sids in classes.items() for sid in sids]
    tables["section_staff"] = [
        {"section_id": section, "staff_id": staff, "staff_role": role, "start_date": start, "end_date": None}
        for section, staff, role, start in teachers]
    folder.mkdir(parents=True, exist_ok=True)
    for name, records in tables.items():
        columns = COLUMNS.get(name) or tuple(records[0])
        schema = pa.schema([(c, pa.int32() if c in INT_COLUMNS else pa.string()) for c in columns])
        pq.write_table(pa.Table.from_pylist(records, schema=schema), folder / f"{name}.parquet")
    return SimpleNamespace(read=lambda name: pd.read_parquet(folder / f"{name}.parquet"))


def build(tmp_path: Path, *args) -> tuple[dict, Path]:
    result = vendor.build(snapshot(tmp_path / "snapshot", *args), load_profile("stmath"), tmp_path / "build",
                          reports_dir=tmp_path / "reports")
    return result, tmp_path / "build"


def rows(path: Path, *columns: str) -> list[tuple[str, ...]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [tuple(row[c] for c in columns) for row in csv.DictReader(handle)]


ONE_LEAD = [("SEC1", "T1", "lead", YEAR)]


def test_usernames_are_judged_as_written_trimmed_and_on_one_line(tmp_path):
    """" padded.user " is written "padded.user", which equals "Padded.User" ignoring case; "ann\\nlee" is written
    "ann lee", which equals "Ann Lee". All four are withheld; kim.lee and the staff go out, and the package is
    valid (before: all five students were written and users.username_unique_ignoring_case failed the night)."""
    students = {"2001": ("03", " padded.user "), "2002": ("03", "Padded.User"), "2003": ("03", "kim.lee"),
                "2004": ("03", "ann\nlee"), "2005": ("03", "Ann Lee")}
    result, built = build(tmp_path, students, {"SEC1": list(students)}, ONE_LEAD)

    assert rows(built / "users.csv", "sourcedId", "role", "username") == [
        ("2003", "student", "kim.lee"),
        ("staff-T1", "teacher", "t1"),
        ("staff-T2", "teacher", "t2"),  # staff of S1 who teach nothing here are still sent
        ("staff-T3", "teacher", "t3"),
    ]
    assert rows(tmp_path / "reports" / "withheld.csv", "sis_table", "sis_key", "rule") == [
        ("student", "2001", "users.duplicate_username_ignoring_case"),
        ("student", "2002", "users.duplicate_username_ignoring_case"),
        ("student", "2004", "users.duplicate_username_ignoring_case"),
        ("student", "2005", "users.duplicate_username_ignoring_case"),
    ]
    assert result["dropped"]["users.duplicate_username_ignoring_case"] == 4
    assert result["dropped"]["enrollment.user_withheld"] == 4
    assert rows(built / "enrollments.csv", "sourcedId", "userSourcedId") == [
        ("e-cls-S1-SEC1-2003-20260813", "2003"),
        ("e-cls-S1-SEC1-staff-T1-20260813", "staff-T1"),
    ]
    assert vendor.validate(load_profile("stmath"), built).ok  # the roster still goes out


def test_a_lead_listed_first_as_co_teacher_keeps_primary(tmp_path):
    """SEC1: T1 is co-teacher from the first day and the only lead from 09-01 -> one row (the earliest, 08-13),
    primary=true (before: the lead row was merged away and SEC1 had no primary). SEC2: T3's lead assignment (08-17)
    started before T2's (08-20), so T3 is primary although T3's kept row is the co-teacher one from 08-13."""
    teachers = [("SEC1", "T1", "co_teacher", YEAR), ("SEC1", "T1", "lead", "2026-09-01"),
                ("SEC2", "T2", "lead", "2026-08-20"),
                ("SEC2", "T3", "co_teacher", YEAR), ("SEC2", "T3", "lead", "2026-08-17")]
    _, built = build(tmp_path, {"2003": ("03", "kim.lee")}, {"SEC1": ["2003"], "SEC2": ["2003"]}, teachers)

    assert rows(built / "enrollments.csv", "sourcedId", "classSourcedId", "userSourcedId", "role", "primary",
                "beginDate") == [
        ("e-cls-S1-SEC1-2003-20260813", "cls-S1-SEC1", "2003", "student", "", "2026-08-13"),
        ("e-cls-S1-SEC1-staff-T1-20260813", "cls-S1-SEC1", "staff-T1", "teacher", "true", "2026-08-13"),
        ("e-cls-S1-SEC2-2003-20260813", "cls-S1-SEC2", "2003", "student", "", "2026-08-13"),
        ("e-cls-S1-SEC2-staff-T2-20260820", "cls-S1-SEC2", "staff-T2", "teacher", "false", "2026-08-20"),
        ("e-cls-S1-SEC2-staff-T3-20260813", "cls-S1-SEC2", "staff-T3", "teacher", "true", "2026-08-13"),
    ]


def test_class_grades_leave_out_withheld_students(tmp_path):
    """SEC1: 2003 (grade 03) is sent; 2006 (04) and 2007 (05) share a username ignoring case and are withheld, so
    the class's grades are "03" (before: "03,04,05"). SEC2 holds only 2006: no grades at all."""
    students = {"2003": ("03", "kim.lee"), "2006": ("04", "dup.user"), "2007": ("05", "DUP.USER")}
    result, built = build(tmp_path, students, {"SEC1": ["2003", "2006", "2007"], "SEC2": ["2006"]},
                          [("SEC1", "T1", "lead", YEAR), ("SEC2", "T2", "lead", YEAR)])

    assert result["withheld"] == 2
    assert rows(built / "classes.csv", "sourcedId", "grades") == [("cls-S1-SEC1", "03"), ("cls-S1-SEC2", "")]
    assert vendor.validate(load_profile("stmath"), built).ok

