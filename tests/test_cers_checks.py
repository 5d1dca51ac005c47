"""Every receiver rule is checked before upload (rostering.cers.checks): found by line, never quoting a value."""
from __future__ import annotations

import pytest

from cers_helpers import EXPECTED
from rostering.cers.checks import validate_files

HEADER = "group_name,school_natural_id,school_year,subject_code,student_ssid,group_user_login"
GOOD = [
    "G1,19647330000001,2027,Math,,",
    "G1,19647330000001,2027,,,t.one@x.org",
    "G1,19647330000001,2027,,1000000001,",
    "G2,19647330000001,2027,ELA,,",
    "G2,19647330000001,2027,,1000000002,",
    "G3,19647330000002,2027,All,,",
    "G3,19647330000002,2027,,1000000003,t.two@x.org",
]


def write(tmp_path, lines, name="student_groups.csv", header=HEADER):
    path = tmp_path / name
    path.write_bytes(("\r\n".join([header, *lines]) + "\r\n").encode("utf-8"))
    return path


def findings(tmp_path, lines, **kwargs):
    report = validate_files([write(tmp_path, lines)], **kwargs)
    return {(f.rule, f.column, f.rows) for f in report.findings}, report


def test_a_good_file_and_every_hand_worked_file_pass(tmp_path):
    assert validate_files([write(tmp_path, GOOD)]).ok
    assert validate_files(sorted(EXPECTED.glob("*.csv"))[:1]).ok
    for path in EXPECTED.glob("*.csv"):
        assert validate_files([path]).ok, path.name


def replace(index, line):
    rows = list(GOOD)
    rows[index] = line
    return rows


@pytest.mark.parametrize("lines, expected", [
    (replace(2, ",19647330000001,2027,,1000000001,"), ("required", "group_name", (4,))),
    (replace(2, "G1,,2027,,1000000001,"), ("required", "school_natural_id", (4,))),
    (replace(2, "G1,1964733000000,2027,,1000000001,"), ("school_natural_id", "school_natural_id", (4,))),
    (replace(2, "G1,19647330000001,26-27,,1000000001,"), ("school_year", "school_year", (4,))),
    (replace(2, "G1,19647330000001,2027,,100000001,"), ("student_ssid", "student_ssid", (4,))),
    (replace(1, "G1,19647330000001,2027,,,t.one"), ("group_user_login", "group_user_login", (3,))),
    (replace(0, "G1,19647330000001,2027,Science,,"), ("subject_code", "subject_code", (2,))),
    (replace(1, "G1,19647330000001,2027,,,"), ("row_empty", None, (3,))),
    (replace(2, "G1,19647330000001,2027,ELA,1000000001,"), ("subject_redefined", "subject_code", (4,))),
    (replace(2, "G1,19647330000001,2027,math,1000000001,"), ("subject_stated_once", "subject_code", (4,))),
    (replace(0, "G1,19647330000001,2027,,,t.zero@x.org"), ("subject_stated_once", "subject_code", (2,))),
    ([*GOOD[:3], *GOOD[5:], *GOOD[3:5]], ("not_contiguous", "school_natural_id", (7,))),  # school 1 again
    ([GOOD[0], GOOD[3], GOOD[1], GOOD[2], GOOD[4], *GOOD[5:]], ("not_contiguous", "group_name", (4, 6))),
    ([*GOOD, "g3,19647330000002,2027,,1000000004,"], ("group_name_not_unique", "group_name", (9,))),
    ([*GOOD, "G3,19647330000002,2027,,1000000003,"], ("duplicate_student", "student_ssid", (9,))),
    (["ABCDEFGHIJKLMNOPQRSTU,19647330000001,2027,Math,,"], ("group_name_length", "group_name", (2,))),
    (['"G,1",19647330000001,2027,Math,,'], ("group_name_characters", "group_name", (2,))),
    (["Grüße,19647330000001,2027,Math,,"], ("group_name_characters", "group_name", (2,))),
])
def test_each_rule_is_found_on_its_line(tmp_path, lines, expected):
    found, report = findings(tmp_path, lines)
    assert expected in found, report.summary()


def test_more_than_200_students(tmp_path):
    lines = ["BIG,19647330000001,2027,Math,,"] + [f"BIG,19647330000001,2027,,{2000000000 + i},"
                                               for i in range(201)]
    found, _ = findings(tmp_path, lines)
    assert found == {("too_many_students", "student_ssid", (203,))}


def test_the_name_limit_is_configurable(tmp_path):
    lines = ["ABCDEFGHIJKLMNOPQRSTUVWXYZ,19647330000001,2027,Math,,"]
    assert findings(tmp_path, lines, max_length=30)[1].ok
    assert ("group_name_length", "group_name", (2,)) in findings(tmp_path, lines, max_length=20)[0]


def test_structural_problems(tmp_path):
    report = validate_files([write(tmp_path, GOOD, header="group_name,school_natural_id,school_year,student_ssid,"
                                                             "subject_code,group_user_login")])
    assert [f.rule for f in report.findings] == ["header"]
    report = validate_files([write(tmp_path, [*GOOD, "G9,19647330000001,2027,Math,,,extra"])])
    assert [(f.rule, f.rows) for f in report.findings] == [("malformed_csv", (9,))]
    report = validate_files([write(tmp_path, ['G9,19647330000001,2027,Math,,"a\nb@x.org"'])])
    assert [f.rule for f in report.findings] == ["line_break_in_value"]
    report = validate_files([write(tmp_path, [])])
    assert [f.rule for f in report.findings] == ["no_data_rows"]
    assert [f.rule for f in validate_files([]).findings] == ["no_data_rows"]


def test_a_group_in_two_files(tmp_path):
    a = write(tmp_path, GOOD[:3], name="a.csv")
    b = write(tmp_path, GOOD[:3], name="b.csv")
    report = validate_files([a, b])
    assert {(f.file, f.rule) for f in report.findings} == {("a.csv", "group_in_several_files"),
                                                          ("b.csv", "group_in_several_files")}


def test_reports_never_carry_values(tmp_path):
    lines = replace(2, "G1,19647330000001,2027,,100000001,")
    lines = replace(1, "G1,19647330000001,2027,,,secret.teacher@x")[:2] + lines[2:]
    _, report = findings(tmp_path, lines)
    text = report.summary() + report.to_json()
    assert not report.ok
    for value in ("100000001", "secret.teacher", "19647330000001", "G1"):
        assert value not in text


def test_files_checked_together_give_each_files_own_findings(tmp_path):
    """All files' rows are checked in one pass: a file's findings (rules, columns, its own line numbers, counts,
    order) are exactly those of the file checked alone; runs, duplicates and groups never span two files."""
    one = write(tmp_path, [*GOOD[:3], *GOOD[5:], *GOOD[3:5], "G1,19647330000001,2027,,1000000001,"], name="a.csv")
    two = write(tmp_path, ["X1,19647330000009,2027,Math,,", "X1,19647330000009,2027,,100000001,",
                           "x1,19647330000009,2027,,1000000005,", "X1,19647330000009,2027,ELA,,"], name="b.csv")
    clean = write(tmp_path, ["Y1,19647330000001,2027,ELA,,", "Y1,19647330000001,2027,,1000000001,"], name="c.csv")
    # c.csv has a.csv's first school again and one of its students: no finding, as files are checked one by one
    together = validate_files([one, two, clean]).findings
    alone = [f for path in (one, two, clean) for f in validate_files([path]).findings]
    assert together == alone
    assert {f.file for f in together} == {"a.csv", "b.csv"}
    assert [(f.file, f.rule, f.rows) for f in together if f.rule in ("student_ssid", "duplicate_student")] == [
        ("a.csv", "duplicate_student", (9,)), ("b.csv", "student_ssid", (3,))]


def test_structural_findings_keep_their_place_among_several_files(tmp_path):
    paths = [write(tmp_path, GOOD[:3], name="a.csv"),
             write(tmp_path, ['G9,19647330000005,2027,Math,,"a\nb@x.org"'], name="b.csv"),
             write(tmp_path, [*GOOD[5:], "G9,19647330000006,2027,Math,,,extra"], name="c.csv"),
             write(tmp_path, ['"G,1",19647330000007,2027,Math,,', "G2,19647330000007,2027,,1000000002,"],
                   name="d.csv")]
    report = validate_files(paths)
    assert [(f.file, f.rule, f.rows) for f in report.findings] == [
        ("b.csv", "line_break_in_value", (2,)), ("c.csv", "malformed_csv", (4,)),
        ("d.csv", "group_name_characters", (2,)), ("d.csv", "subject_stated_once", (3,))]
    assert report.files == {"a.csv": 3, "b.csv": 0, "c.csv": 0, "d.csv": 2}
    assert report.findings == [f for path in paths for f in validate_files([path]).findings]
