"""Validation of a built OneRoster package: hand-written packages, one broken rule per test.

The base package below is literal CSV text (names with commas, quotes and non-Latin letters quoted as RFC 4180 wants).
Each test changes exactly one thing with ``edit(file, old, new)`` -- ``old`` must occur exactly once -- and asserts the
exact findings: (file, rule, column, line numbers, count). Line 1 is the header, line 2 the first data row.
"""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from rostering.oneroster import spec
from rostering.paths import expectations_dir
from rostering.validation.gx_suites import load_suite, suite_json, validate_frame
from rostering.validation.oneroster_checks import validate_package
from rostering.validation.report import Finding, ValidationFailed, ValidationReport

ORGS = """\
sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId,metadata.classification
district-1,,,"Springfield Unified School District, No. 7",district,0612345,,public
school-1,,,"Escuela ""La Esperanza"" Ñandú",school,061234500001,district-1,public
school-2,,,北京路 Middle School,school,061234500002,district-1,charter
"""

SESSIONS = """\
sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear
sy-2026,,,2025-2026,schoolYear,2025-08-01,2026-06-30,,2026
term-1,,,"Fall, 2025",term,2025-08-01,2025-12-19,sy-2026,2026
term-2,,,Spring 2026,term,2026-01-05,2026-06-30,sy-2026,2026
"""

COURSES = """\
sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,orgSourcedId,subjects,subjectCodes
course-math-3,,,sy-2026,"Math, Grade 3",M3,03,school-1,Mathematics,
course-sci-7,,,sy-2026,Ciencias Naturales 7,SCI7,07,school-2,"Science, Life",
"""

CLASSES = '''\
sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,\
termSourcedIds,subjects,subjectCodes,periods
class-s1-101,,,"Math 3 - Room 101, ""Blue""",03,course-math-3,M3-101,scheduled,Room 101,school-1,"term-1,term-2",\
Mathematics,,1
class-s2-201,,,Ciencias 7 – Grupo B,07,course-sci-7,SCI7-201,homeroom,Lab 2,school-2,term-1,"Science, Life",,"2,3"
'''

USERS = '''\
sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,middleName,\
identifier,email,sms,phone,agentSourcedIds,grades,password
staff-1001,,,true,"school-1,school-2",teacher,mmuller,{SIS:1001},Marie-Hélène,"O'Brien, Jr.",,T1001,\
mh.muller@example.org,,,,,
staff-1002,,,true,school-2,teacher,zli,{SIS:1002},紫涵,李,,T1002,zli@example.org,,,,,
staff-1003,,,true,school-1,teacher,kowalski.j,{SIS:1003},Jan,Kowalski,Paweł,T1003,jkowalski@example.org,,,,,
student-5001,,,true,school-1,student,ana.garcia,{SIS:5001},"Ana ""Annie""",García López,María,S5001,,,,,03,
student-5002,,,true,school-2,student,dmitri.ivanov,{SIS:5002},Дмитрий,Иванов,,S5002,,,,,07,
'''

ENROLLMENTS = """\
sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate
enr-1,,,class-s1-101,school-1,staff-1001,teacher,true,2025-08-01,
enr-2,,,class-s1-101,school-1,student-5001,student,,2025-08-01,2026-06-30
enr-3,,,class-s2-201,school-2,staff-1002,teacher,true,2025-08-01,
enr-4,,,class-s2-201,school-2,student-5002,student,,2025-08-01,
enr-5,,,class-s1-101,school-1,staff-1003,teacher,false,2025-08-01,
"""

MANIFEST = """\
propertyName,value
manifest.version,1.0
oneroster.version,1.1
file.academicSessions,bulk
file.categories,absent
file.classes,bulk
file.classResources,absent
file.courses,bulk
file.courseResources,absent
file.demographics,absent
file.enrollments,bulk
file.lineItems,absent
file.orgs,bulk
file.resources,absent
file.results,absent
file.users,bulk
source.systemName,rostering
"""

BASE = {
    "orgs.csv": ORGS,
    "academicSessions.csv": SESSIONS,
    "courses.csv": COURSES,
    "classes.csv": CLASSES,
    "users.csv": USERS,
    "enrollments.csv": ENROLLMENTS,
    "manifest.csv": MANIFEST,
}

EXPECTED_HEADERS = {name: spec.HEADERS[name] for name in spec.HEADERS}
EXPECTED_HEADERS["orgs.csv"] = spec.HEADERS["orgs.csv"] + ("metadata.classification",)


def edit(file: str, old: str, new: str) -> tuple[str, str, str]:
    return (file, old, new)


def write_package(directory: Path, *edits: tuple[str, str, str], raw: dict[str, bytes] | None = None,
                  newline: str = "\n") -> Path:
    """Write the base package with ``edits`` applied (each ``old`` must occur exactly once) and ``raw`` overrides."""
    texts = dict(BASE)
    for file, old, new in edits:
        assert texts[file].count(old) == 1, f"edit target must occur exactly once in {file}: {old!r}"
        texts[file] = texts[file].replace(old, new)
    directory.mkdir(parents=True, exist_ok=True)
    for file, text in texts.items():
        (directory / file).write_bytes(text.replace("\n", newline).encode("utf-8"))
    for file, data in (raw or {}).items():
        (directory / file).write_bytes(data)
    return directory


def check(directory: Path) -> ValidationReport:
    return validate_package(directory, EXPECTED_HEADERS)


def brief(report: ValidationReport) -> list[tuple]:
    return [(f.file, f.rule, f.column, f.rows, f.count) for f in report.findings]


def broken(tmp_path: Path, *edits: tuple[str, str, str], **kwargs) -> list[tuple]:
    return brief(check(write_package(tmp_path / "pkg", *edits, **kwargs)))


# --------------------------------------------------------------------------------------------------------------------
# the fixture itself


def test_fixture_rows_have_exactly_the_header_field_count():
    for file, text in BASE.items():
        rows = list(csv.reader(io.StringIO(text, newline="")))
        assert len(rows) >= 2
        assert {len(r) for r in rows} == {len(rows[0])}, file


def test_valid_package_passes_with_zero_findings(tmp_path):
    report = check(write_package(tmp_path / "pkg"))
    assert brief(report) == []
    assert report.ok
    assert report.files == {"orgs.csv": 3, "academicSessions.csv": 3, "courses.csv": 2, "classes.csv": 2,
                            "users.csv": 5, "enrollments.csv": 5}
    report.raise_if_failed()
    assert "validation passed" in report.summary()


def test_valid_package_with_crlf_line_endings_passes(tmp_path):
    assert broken(tmp_path, newline="\r\n") == []


# --------------------------------------------------------------------------------------------------------------------
# bytes and header


def test_bom(tmp_path):
    raw = {"users.csv": b"\xef\xbb\xbf" + USERS.encode("utf-8")}
    assert broken(tmp_path, raw=raw) == [("users.csv", "csv.no_bom", None, (1,), 1)]


def test_invalid_utf8(tmp_path):
    raw = {"courses.csv": COURSES.encode("utf-8").replace(b"Ciencias", b"Ci\xe9ncias")}
    assert broken(tmp_path, raw=raw) == [("courses.csv", "csv.utf8", None, (3,), 1)]


def test_wrong_header_order(tmp_path):
    assert broken(tmp_path, edit("users.csv", "givenName,familyName", "familyName,givenName")) == [
        ("users.csv", "csv.header_exact", "givenName", (1,), 1)]


def test_quoted_header_is_not_the_exact_header(tmp_path):
    assert broken(tmp_path, edit("courses.csv", "sourcedId,status", '"sourcedId",status')) == [
        ("courses.csv", "csv.header_exact", "sourcedId", (1,), 1)]


def test_extension_column_in_the_middle(tmp_path):
    moved = """\
sourcedId,status,dateLastModified,name,type,identifier,metadata.classification,parentSourcedId
district-1,,,"Springfield Unified School District, No. 7",district,0612345,public,
school-1,,,"Escuela ""La Esperanza"" Ñandú",school,061234500001,public,district-1
school-2,,,北京路 Middle School,school,061234500002,charter,district-1
"""
    assert broken(tmp_path, raw={"orgs.csv": moved.encode()}) == [
        ("orgs.csv", "csv.header_exact", "parentSourcedId", (1,), 1)]


def test_missing_extension_column(tmp_path):
    header = "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId"
    only_defined = "\n".join([header] + [line.rsplit(",", 1)[0] for line in ORGS.splitlines()[1:]]) + "\n"
    assert broken(tmp_path, raw={"orgs.csv": only_defined.encode()}) == [
        ("orgs.csv", "csv.header_exact", "metadata.classification", (1,), 1)]


def test_zero_data_rows(tmp_path):
    header_only = ENROLLMENTS.splitlines()[0] + "\n"
    assert broken(tmp_path, raw={"enrollments.csv": header_only.encode()}) == [
        ("enrollments.csv", "csv.has_data_rows", None, (), 0)]


def test_row_with_an_extra_field_is_not_rfc4180(tmp_path):
    assert broken(tmp_path, edit("courses.csv", "SCI7,07,school-2", "SCI7,07,school-2,extra")) == [
        ("courses.csv", "csv.rfc4180", None, (3,), 1)]


def test_unterminated_quote_is_not_rfc4180(tmp_path):
    assert broken(tmp_path, edit("courses.csv", '"Science, Life",', '"Science, Life,')) == [
        ("courses.csv", "csv.rfc4180", None, (3,), 1)]


def test_carriage_return_inside_a_quoted_field(tmp_path):
    assert broken(tmp_path, edit("users.csv", '"Ana ""Annie"""', '"Ana\r""Annie"""')) == [
        ("users.csv", "users.givenName_no_line_breaks", "givenName", (5,), 1)]


def test_line_feed_inside_a_field_moves_later_line_numbers(tmp_path):
    assert broken(
        tmp_path,
        edit("users.csv", '"Ana ""Annie"""', '"Ana\n""Annie"""'),
        edit("users.csv", "student,dmitri.ivanov", "pupil,dmitri.ivanov"),
    ) == [
        ("users.csv", "users.role_in_vocabulary", "role", (7,), 1),  # the physical line, not the record number
        ("users.csv", "users.givenName_no_line_breaks", "givenName", (5,), 1),
    ]


def test_line_break_in_an_extension_column(tmp_path):
    assert broken(tmp_path, edit("orgs.csv", "district-1,charter", 'district-1,"char\nter"')) == [
        ("orgs.csv", "orgs.metadata.classification_no_line_breaks", "metadata.classification", (4,), 1)]


# --------------------------------------------------------------------------------------------------------------------
# column rules (GX suites)


def test_status_not_blank(tmp_path):
    assert broken(tmp_path, edit("enrollments.csv", "enr-2,,", "enr-2,active,")) == [
        ("enrollments.csv", "enrollments.status_blank_in_bulk", "status", (3,), 1)]


def test_date_last_modified_not_blank(tmp_path):
    assert broken(tmp_path, edit("orgs.csv", "school-2,,", "school-2,,2026-01-01T00:00:00.000Z")) == [
        ("orgs.csv", "orgs.dateLastModified_blank_in_bulk", "dateLastModified", (4,), 1)]


def test_bad_enum(tmp_path):
    assert broken(tmp_path, edit("users.csv", "school-1,student,ana.garcia", "school-1,Student,ana.garcia")) == [
        ("users.csv", "users.role_in_vocabulary", "role", (5,), 1)]


@pytest.mark.parametrize(("file", "old", "new", "expected"), [
    ("orgs.csv", "school,061234500002", "School,061234500002", ("orgs.csv", "orgs.type_in_vocabulary", "type", (4,))),
    ("academicSessions.csv", "term,2026-01-05", "quarter,2026-01-05",
     ("academicSessions.csv", "academicSessions.type_in_vocabulary", "type", (4,))),
    ("classes.csv", "homeroom", "lab", ("classes.csv", "classes.classType_in_vocabulary", "classType", (3,))),
    ("users.csv", "true,school-2,teacher", "TRUE,school-2,teacher",
     ("users.csv", "users.enabledUser_in_vocabulary", "enabledUser", (3,))),
    ("enrollments.csv", "teacher,false", "teacher,no",
     ("enrollments.csv", "enrollments.primary_in_vocabulary", "primary", (6,))),
    ("users.csv", ",,03,", ",,3,", ("users.csv", "users.grades_in_vocabulary", "grades", (5,))),
])
def test_other_vocabularies(tmp_path, file, old, new, expected):
    assert broken(tmp_path, edit(file, old, new)) == [expected + (1,)]


def test_bad_date(tmp_path):
    assert broken(tmp_path, edit("academicSessions.csv", "term,2025-08-01", "term,2025-8-01")) == [
        ("academicSessions.csv", "academicSessions.startDate_date", "startDate", (3,), 1)]


def test_bad_school_year(tmp_path):
    assert broken(tmp_path, edit("academicSessions.csv", "sy-2026,2026\nterm-2", "sy-2026,2025-26\nterm-2")) == [
        ("academicSessions.csv", "academicSessions.schoolYear_year", "schoolYear", (3,), 1)]


def test_required_value_missing(tmp_path):
    assert broken(tmp_path, edit("users.csv", ",Jan,Kowalski,", ",Jan,,")) == [
        ("users.csv", "users.familyName_required", "familyName", (4,), 1)]


def test_sourced_id_not_a_guid(tmp_path):
    new_course = "course art,,,sy-2026,Art,,,school-1,,\n"  # a space is not a GUID character
    assert broken(tmp_path, edit("courses.csv", '"Science, Life",\n', '"Science, Life",\n' + new_course)) == [
        ("courses.csv", "courses.sourcedId_guid", "sourcedId", (4,), 1)]


def test_list_column_with_an_empty_item_is_not_a_guid_list(tmp_path):
    # the empty item also does not resolve: both rules name the same line
    assert broken(tmp_path, edit("classes.csv", '"term-1,term-2"', '"term-1,,term-2"')) == [
        ("classes.csv", "classes.termSourcedIds_guid_list", "termSourcedIds", (2,), 1),
        ("classes.csv", "classes.termSourcedIds_resolves", "termSourcedIds", (2,), 1),
    ]


# --------------------------------------------------------------------------------------------------------------------
# uniqueness


def test_duplicate_sourced_id_differing_only_in_case(tmp_path):
    new_org = "SCHOOL-1,,,Other School,school,,district-1,public\n"
    assert broken(tmp_path, edit("orgs.csv", "charter\n", "charter\n" + new_org)) == [
        ("orgs.csv", "orgs.sourcedId_unique_ignoring_case", "sourcedId", (3, 5), 2)]


def test_exact_duplicate_sourced_id(tmp_path):
    new_org = "school-1,,,Other School,school,,district-1,public\n"
    assert broken(tmp_path, edit("orgs.csv", "charter\n", "charter\n" + new_org)) == [
        ("orgs.csv", "orgs.sourcedId_unique", "sourcedId", (3, 5), 2),
        ("orgs.csv", "orgs.sourcedId_unique_ignoring_case", "sourcedId", (3, 5), 2),
    ]


def test_duplicate_username_ignoring_case(tmp_path):
    assert broken(tmp_path, edit("users.csv", ",dmitri.ivanov,", ",ANA.Garcia,")) == [
        ("users.csv", "users.username_unique_ignoring_case", "username", (5, 6), 2)]


def test_one_users_row_per_person(tmp_path):
    second_row = "staff-1002,,,true,school-1,administrator,zli.admin,,紫涵,李,,T1002,,,,,,\n"
    assert broken(tmp_path, edit("users.csv", "zli@example.org,,,,,\n", "zli@example.org,,,,,\n" + second_row)) == [
        ("users.csv", "users.sourcedId_unique", "sourcedId", (3, 4), 2),
        ("users.csv", "users.sourcedId_unique_ignoring_case", "sourcedId", (3, 4), 2),
    ]


# --------------------------------------------------------------------------------------------------------------------
# references

# (file, column) -> an edit that makes exactly that reference an orphan, and the line it is on.
ORPHANS = {
    ("orgs.csv", "parentSourcedId"): (edit("orgs.csv", "061234500001,district-1", "061234500001,district-9"), 3),
    ("academicSessions.csv", "parentSourcedId"): (edit("academicSessions.csv", "2025-12-19,sy-2026", "2025-12-19,sy-2099"), 3),
    ("courses.csv", "schoolYearSourcedId"): (edit("courses.csv", "course-math-3,,,sy-2026", "course-math-3,,,sy-2099"), 2),
    ("courses.csv", "orgSourcedId"): (edit("courses.csv", "03,school-1", "03,school-9"), 2),
    ("classes.csv", "courseSourcedId"): (edit("classes.csv", "07,course-sci-7", "07,course-sci-8"), 3),
    ("classes.csv", "schoolSourcedId"): (
        edit("classes.csv", ',,"2,3"\n', ',,"2,3"\nclass-s9-901,,,Art,03,course-math-3,ART,homeroom,,school-9,term-1,,,\n'), 4),
    ("classes.csv", "termSourcedIds"): (edit("classes.csv", "school-2,term-1", "school-2,term-9"), 3),
    ("users.csv", "orgSourcedIds"): (
        edit("users.csv", "Иванов,,S5002,,,,,07,\n",
             "Иванов,,S5002,,,,,07,\nstaff-1004,,,true,school-9,administrator,pat.lee,,Pat,Lee,,,,,,,,\n"), 7),
    ("enrollments.csv", "classSourcedId"): (edit("enrollments.csv", "enr-2,,,class-s1-101", "enr-2,,,class-s1-999"), 3),
    ("enrollments.csv", "schoolSourcedId"): (edit("enrollments.csv", "class-s1-101,school-1,student-5001",
                                                  "class-s1-101,school-9,student-5001"), 3),
    ("enrollments.csv", "userSourcedId"): (edit("enrollments.csv", "student-5001", "student-5999"), 3),
}


def test_every_reference_has_an_orphan_case():
    assert set(ORPHANS) == {(file, column) for file, column, _ in spec.REFERENCES}


@pytest.mark.parametrize(("file", "column", "target"), spec.REFERENCES, ids=lambda v: str(v))
def test_orphan_reference(tmp_path, file, column, target):
    change, line = ORPHANS[(file, column)]
    assert broken(tmp_path, change) == [(file, f"{file[:-4]}.{column}_resolves", column, (line,), 1)]


def test_list_column_orphan_second_org(tmp_path):
    assert broken(tmp_path, edit("users.csv", '"school-1,school-2"', '"school-1,school-9"')) == [
        ("users.csv", "users.orgSourcedIds_resolves", "orgSourcedIds", (2,), 1)]


# --------------------------------------------------------------------------------------------------------------------
# semantics


def test_enrollment_school_differs_from_class_school(tmp_path):
    assert broken(tmp_path, edit("enrollments.csv", "class-s1-101,school-1,student-5001",
                                 "class-s1-101,school-2,student-5001")) == [
        ("enrollments.csv", "enrollments.schoolSourcedId_matches_class", "schoolSourcedId", (3,), 1)]


def test_user_not_in_the_class_school(tmp_path):
    assert broken(tmp_path, edit("users.csv", "true,school-2,student", "true,school-1,student")) == [
        ("enrollments.csv", "enrollments.user_in_class_school", "userSourcedId", (5,), 1)]


def test_two_primary_teachers(tmp_path):
    assert broken(tmp_path, edit("enrollments.csv", "teacher,false", "teacher,true")) == [
        ("enrollments.csv", "enrollments.one_primary_teacher_per_class", "primary", (2, 6), 2)]


def test_primary_on_a_student_row(tmp_path):
    assert broken(tmp_path, edit("enrollments.csv", "student-5002,student,,", "student-5002,student,false,")) == [
        ("enrollments.csv", "enrollments.primary_only_for_teachers", "primary", (5,), 1)]


def test_student_without_grades(tmp_path):
    assert broken(tmp_path, edit("users.csv", ",,07,", ",,,")) == [
        ("users.csv", "users.student_grades_required", "grades", (6,), 1)]


# --------------------------------------------------------------------------------------------------------------------
# manifest and package


def test_manifest_marks_a_present_file_absent(tmp_path):
    assert broken(tmp_path, edit("manifest.csv", "file.courses,bulk", "file.courses,absent")) == [
        ("manifest.csv", "manifest.file_mode", "value", (8,), 1)]


def test_manifest_marks_a_missing_file_bulk(tmp_path):
    assert broken(tmp_path, edit("manifest.csv", "file.demographics,absent", "file.demographics,bulk")) == [
        ("manifest.csv", "manifest.file_mode", "value", (10,), 1)]


def test_manifest_versions_and_missing_row(tmp_path):
    assert broken(
        tmp_path,
        edit("manifest.csv", "oneroster.version,1.1", "oneroster.version,1.2"),
        edit("manifest.csv", "file.lineItems,absent\n", ""),
    ) == [
        ("manifest.csv", "manifest.oneroster_version", "value", (3,), 1),
        ("manifest.csv", "manifest.file_row_missing", "propertyName", (), 0),
    ]


def test_manifest_missing(tmp_path):
    directory = write_package(tmp_path / "pkg")
    (directory / "manifest.csv").unlink()
    assert brief(check(directory)) == [("manifest.csv", "manifest.present", None, (), 0)]


def test_manifest_header(tmp_path):
    assert broken(tmp_path, edit("manifest.csv", "propertyName,value", "property,value")) == [
        ("manifest.csv", "csv.header_exact", "propertyName", (1,), 1)]


def test_file_missing_and_unexpected_file(tmp_path):
    directory = write_package(tmp_path / "pkg")
    (directory / "courses.csv").rename(directory / "Courses.csv")
    findings = brief(check(directory))
    assert ("Courses.csv", "package.unexpected_file", None, (), 0) in findings
    assert ("courses.csv", "package.file_missing", None, (), 0) in findings
    assert ("manifest.csv", "manifest.file_mode", "value", (8,), 1) in findings
    # classes.csv references courses; with courses.csv missing that check is skipped, not reported as orphans
    assert not any(f[1] == "classes.courseSourcedId_resolves" for f in findings)


# --------------------------------------------------------------------------------------------------------------------
# the report carries no data values

IDENTIFYING_COLUMNS = {"sourcedId", "parentSourcedId", "schoolYearSourcedId", "orgSourcedId", "courseSourcedId",
                       "schoolSourcedId", "termSourcedIds", "orgSourcedIds", "classSourcedId", "userSourcedId",
                       "name", "title", "givenName", "familyName", "middleName", "username", "userIds", "identifier",
                       "email", "courseCode", "classCode", "location"}


def fixture_values() -> set[str]:
    values: set[str] = set()
    for file, text in BASE.items():
        for row in csv.DictReader(io.StringIO(text, newline="")):
            for column, value in row.items():
                if column in IDENTIFYING_COLUMNS and value:
                    values.add(value)
                    values.update(v for v in value.split(",") if v)
                    # words of names too ("Ana", "Kowalski"); bare numbers like "101" are not identifying
                    values.update(v for v in re.split(r"[\s\",]+", value) if len(v) >= 3 and not v.isdigit())
    return values


def test_report_text_and_json_contain_no_data_values(tmp_path):
    directory = write_package(
        tmp_path / "pkg",
        edit("users.csv", "school-1,student,ana.garcia", "school-1,Student,ana.garcia"),
        edit("users.csv", ",dmitri.ivanov,", ",MMULLER,"),
        edit("users.csv", '"Ana ""Annie"""', '"Ana\r""Annie"""'),
        edit("enrollments.csv", "student-5002", "student-5999"),
        edit("enrollments.csv", "teacher,false", "teacher,true"),
        edit("enrollments.csv", "enr-2,,", "enr-2,María García,"),
        edit("classes.csv", "school-2,term-1", "school-2,term-1 "),
        edit("orgs.csv", "school,061234500002", "Escuela,061234500002"),
    )
    report = check(directory)
    assert len(report.findings) >= 8
    with pytest.raises(ValidationFailed) as raised:
        report.raise_if_failed()
    texts = {"summary": report.summary(), "json": report.to_json(), "exception": str(raised.value),
             "json_ascii": json.dumps(report.to_dict())}
    values = fixture_values() | {"student-5999", "MMULLER", "Student", "Escuela", "María García", "term-1 "}
    assert {"ana.garcia", "student-5001", "María", "紫涵", "mh.muller@example.org"} <= values
    for value in sorted(values):
        for kind, text in texts.items():
            assert value not in text, f"data value found in report {kind}"


# --------------------------------------------------------------------------------------------------------------------
# the report and the GX layer directly


def test_finding_keeps_first_twenty_lines_and_counts_all():
    frame = pd.DataFrame({"sourcedId": [f"org-{i}" for i in range(30)], "name": ["x"] * 30,
                          "type": ["school"] * 5 + ["campus"] * 25}, dtype="string[pyarrow]")
    findings = validate_frame("orgs.csv", frame, "oneroster.orgs")
    rules = {f.rule: f for f in findings}
    assert rules["orgs.type_in_vocabulary"].rows == tuple(range(7, 27))
    assert rules["orgs.type_in_vocabulary"].count == 25
    assert "+5 more" in str(rules["orgs.type_in_vocabulary"])
    # the frame lacks status, dateLastModified, identifier, parentSourcedId: those rules cannot run
    assert rules["orgs.status_blank_in_bulk"].message.startswith("rule could not be evaluated")


def test_validate_frame_checks_extension_columns_for_line_breaks():
    frame = pd.DataFrame({column: [None, None] for column in spec.HEADERS["orgs.csv"]}, dtype="string[pyarrow]")
    frame["sourcedId"] = pd.array(["a", "b"], dtype="string[pyarrow]")
    frame["name"] = pd.array(["A", "B"], dtype="string[pyarrow]")
    frame["type"] = pd.array(["school", "school"], dtype="string[pyarrow]")
    frame["metadata.note"] = pd.array(["ok", "two\nlines"], dtype="string[pyarrow]")
    assert [(f.rule, f.column, f.rows) for f in validate_frame("orgs.csv", frame, "oneroster.orgs")] == [
        ("orgs.metadata.note_no_line_breaks", "metadata.note", (3,))]


def test_report_to_dict_and_summary():
    report = ValidationReport()
    report.files["users.csv"] = 3
    report.extend([Finding("users.csv", "users.role_in_vocabulary", "role", (4, 2), None, "bad")])
    assert not report.ok
    data = report.to_dict()
    assert data["findings"] == [{"file": "users.csv", "rule": "users.role_in_vocabulary", "column": "role",
                                 "rows": [2, 4], "count": 2, "message": "bad"}]
    assert report.summary().splitlines()[1] == "- users.csv lines 2, 4 [users.role_in_vocabulary] column role: bad"
    assert json.loads(report.to_json())["ok"] is False


# --------------------------------------------------------------------------------------------------------------------
# the suites agree with the spec


def _noncapturing(pattern: str) -> str:
    return re.sub(r"\((?!\?)", "(?:", pattern)


@pytest.mark.parametrize("file", list(spec.HEADERS))
def test_suite_agrees_with_spec(file):
    stem = file[:-4]
    data = json.loads((expectations_dir() / f"oneroster.{stem}.json").read_text(encoding="utf-8"))
    assert data["name"] == f"oneroster.{stem}"
    load_suite(data["name"])  # loads as gx.ExpectationSuite(**json)
    by_rule = {e["meta"]["rule"]: e for e in data["expectations"]}
    assert len(by_rule) == len(data["expectations"]), "rule names are unique"
    assert all(rule.startswith(f"{stem}.") for rule in by_rule)
    columns = {e["kwargs"]["column"] for e in data["expectations"]}
    assert columns == set(spec.HEADERS[file]), "every defined column has a rule, and only defined columns"
    for column in spec.REQUIRED[file]:
        assert by_rule[f"{stem}.{column}_required"]["type"] == "expect_column_values_to_not_be_null"
    for column in spec.BULK_BLANK_COLUMNS:
        assert by_rule[f"{stem}.{column}_blank_in_bulk"]["type"] == "expect_column_values_to_be_null"
    assert by_rule[f"{stem}.sourcedId_unique"]["type"] == "expect_column_values_to_be_unique"
    assert by_rule[f"{stem}.sourcedId_guid"]["kwargs"]["regex"] == spec.GUID_PATTERN
    for ref_file, column, _ in spec.REFERENCES:
        if ref_file == file and column not in spec.GUID_LIST_COLUMNS.get(file, ()):
            assert by_rule[f"{stem}.{column}_guid"]["kwargs"]["regex"] == spec.GUID_PATTERN
    item = spec.GUID_ITEM
    for column in spec.GUID_LIST_COLUMNS.get(file, ()):
        assert by_rule[f"{stem}.{column}_guid_list"]["kwargs"]["regex"] == f"^{item}(?:,{item})*\\Z"
    for rule, expectation in by_rule.items():
        if rule.endswith("_date"):
            assert expectation["kwargs"]["regex"] == _noncapturing(spec.DATE_PATTERN)
        if rule.endswith("_year"):
            assert expectation["kwargs"]["regex"] == _noncapturing(spec.YEAR_PATTERN)
        if rule.endswith("_no_line_breaks"):
            assert expectation["kwargs"]["regex"] == "[\\r\\n]"


def test_suite_vocabularies_are_the_spec_vocabularies():
    def value_set(file, rule):
        return tuple(suite_json(f"oneroster.{file}")["expectations"][
            [e["meta"]["rule"] for e in suite_json(f"oneroster.{file}")["expectations"]].index(rule)
        ]["kwargs"]["value_set"])

    assert value_set("orgs", "orgs.type_in_vocabulary") == spec.ORG_TYPES
    assert value_set("academicSessions", "academicSessions.type_in_vocabulary") == spec.SESSION_TYPES
    assert value_set("classes", "classes.classType_in_vocabulary") == spec.CLASS_TYPES
    assert value_set("users", "users.role_in_vocabulary") == spec.USER_ROLES
    assert value_set("users", "users.enabledUser_in_vocabulary") == spec.BOOLEANS
    assert value_set("enrollments", "enrollments.role_in_vocabulary") == spec.ENROLLMENT_ROLES
    assert value_set("enrollments", "enrollments.primary_in_vocabulary") == spec.BOOLEANS
    grades = [e for e in suite_json("oneroster.users")["expectations"]
              if e["meta"]["rule"] == "users.grades_in_vocabulary"][0]["kwargs"]["regex"]
    alternatives = "(?:" + "|".join(spec.GRADES) + ")"
    assert grades == f"^{alternatives}(?:,{alternatives})*\\Z"
