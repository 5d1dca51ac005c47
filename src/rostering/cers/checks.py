"""Validate CERS student-group files against every receiver rule before anything is uploaded.

The receiver rejects the whole file (BAD_DATA) on a single error, so everything it checks is checked here first,
plus our own stricter conventions. Findings name file, line (header = line 1), column and rule -- never a value.

=========================  ======================================================================================
rule                       what must hold
=========================  ======================================================================================
header                     the header is exactly ``group_name,school_natural_id,school_year,subject_code,...``
malformed_csv              every line parses as 6 comma-separated fields (the lines that do not are listed)
line_break_in_value        no value contains a line break
no_data_rows               the file has at least one data row
required                   group_name, school_natural_id and school_year are present on every row
group_name_length          group names are at most ``group_name_max_length`` characters (default 20)
group_name_characters      group names are printable ASCII without commas (the receiver trims spaces)
school_natural_id          a 14-digit CDS code
school_year                a 4-digit integer (the spring year)
subject_code               blank or ELA / Math / All / ELPAC (any case)
subject_redefined          a group never changes its subject from one row to another
subject_stated_once        exactly one row of each group carries its subject (our convention)
row_empty                  every row carries a student, a user or the group's subject
student_ssid               a 10-digit SSID when present
group_user_login           an e-mail address when present
not_contiguous             rows are contiguous by school, and within a school by group and year
group_name_not_unique      no two groups of one school differ only in upper/lower case (the receiver would merge
                           them)
too_many_students          at most 200 students per group
duplicate_student          a student appears at most once per group
file_too_large             at most 500 MB (the import service's limit)
group_in_several_files     a group is in one file only (two uploads would replace each other)
=========================  ======================================================================================
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from rostering.cers.spec import (
    CDS_CODE, DEFAULT_GROUP_NAME_MAX_LENGTH, EMAIL, HEADER, MAX_FILE_BYTES, MAX_STUDENTS_PER_GROUP,
    RECEIVER_SUBJECT_CODES, SCHOOL_YEAR, SSID,
)
from rostering.validation.report import Finding, ValidationReport

_SUBJECTS_LOWER = {s.lower() for s in RECEIVER_SUBJECT_CODES}


def _lines(mask: pd.Series | np.ndarray) -> np.ndarray:
    """1-based file line numbers of the True positions (header is line 1)."""
    return np.flatnonzero(np.asarray(mask, dtype=bool)) + 2


def read_group_file(path: Path) -> tuple[pd.DataFrame | None, list[Finding]]:
    """Parse a group file (all values as trimmed strings, blanks as ""); structural problems become findings."""
    name = path.name
    raw = path.read_bytes()
    findings: list[Finding] = []
    if len(raw) > MAX_FILE_BYTES:
        findings.append(Finding(name, "file_too_large", None,
                                message=f"the file is larger than {MAX_FILE_BYTES} bytes"))
    if not raw.strip():
        return None, findings + [Finding(name, "header", None, message="the file is empty")]
    first_line = raw.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8-sig", errors="replace")
    if tuple(next(csv.reader([first_line]))) != HEADER:
        findings.append(Finding(name, "header", None, (1,), message="the header must be exactly " + ",".join(HEADER)))
        return None, findings
    try:
        table = pacsv.read_csv(
            io.BytesIO(raw),
            read_options=pacsv.ReadOptions(skip_rows=1, column_names=list(HEADER)),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in HEADER},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        # Only on this error path: find the offending line numbers with the csv module (pyarrow's message would
        # quote the line's values).
        bad = [number for number, record in enumerate(
            csv.reader(io.StringIO(raw.decode("utf-8-sig", errors="replace"), newline="")), start=1)
            if len(record) != len(HEADER)]
        return None, findings + [Finding.at(name, "malformed_csv", None, bad or [1],
                                            f"the line does not have {len(HEADER)} fields (or is not UTF-8)")]
    frame = table.to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get)
    frame = frame.apply(lambda column: column.str.strip())
    breaks = np.zeros(len(frame), dtype=bool)
    for column in HEADER:
        breaks |= frame[column].str.contains(r"[\r\n]", regex=True).fillna(False).to_numpy(dtype=bool)
    if breaks.any():
        findings.append(Finding.at(name, "line_break_in_value", None, _lines(breaks), "a value contains a line break"))
        return None, findings
    return frame, findings


def check_rows(name: str, rows: pd.DataFrame, *, max_length: int = DEFAULT_GROUP_NAME_MAX_LENGTH) -> list[Finding]:
    """Every row-level and group-level rule on one parsed file."""
    findings: list[Finding] = []

    def add(rule: str, column: str | None, mask, message: str) -> None:
        lines = _lines(mask)
        if lines.size:
            findings.append(Finding.at(name, rule, column, lines, message))

    if rows.empty:
        return [Finding(name, "no_data_rows", None, message="the file has no data rows")]
    group, school, year = rows["group_name"], rows["school_natural_id"], rows["school_year"]
    subject, ssid, login = rows["subject_code"], rows["student_ssid"], rows["group_user_login"]
    for column in ("group_name", "school_natural_id", "school_year"):
        add("required", column, rows[column] == "", "is required on every row")
    add("group_name_length", "group_name", group.str.len() > max_length,
        f"is longer than {max_length} characters")
    add("group_name_characters", "group_name",
        (group != "") & ~group.str.fullmatch(r"[\x21-\x2b\x2d-\x7e](?:[\x20-\x2b\x2d-\x7e]*[\x21-\x2b\x2d-\x7e])?"),
        "must be printable ASCII without commas")
    add("school_natural_id", "school_natural_id", (school != "") & ~school.str.fullmatch(CDS_CODE.pattern.strip("^$")),
        "must be a 14-digit CDS code")
    add("school_year", "school_year", (year != "") & ~year.str.fullmatch(SCHOOL_YEAR.pattern.strip("^$")),
        "must be a 4-digit year (the spring year)")
    add("subject_code", "subject_code", (subject != "") & ~subject.str.lower().isin(_SUBJECTS_LOWER),
        "must be blank or one of " + ", ".join(RECEIVER_SUBJECT_CODES))
    add("row_empty", None, (subject == "") & (ssid == "") & (login == ""),
        "the row carries no student, no user and no subject")
    add("student_ssid", "student_ssid", (ssid != "") & ~ssid.str.fullmatch(SSID.pattern.strip("^$")),
        "must be a 10-digit SSID")
    add("group_user_login", "group_user_login", (login != "") & ~login.str.fullmatch(EMAIL.pattern.strip("^$")),
        "must be an e-mail address")

    # Groups as the receiver sees them: school + name (case-insensitive) + year.
    key = school + "\x1f" + group.str.lower() + "\x1f" + year
    stated = subject != ""
    subjects = pd.DataFrame({"key": key, "subject": subject.str.lower()})[stated]
    first_subject = subjects.groupby("key")["subject"].transform("first")
    add("subject_redefined", "subject_code", rows.index.isin(subjects.index[subjects["subject"] != first_subject]),
        "changes the group's subject stated on an earlier row")
    statements = stated.astype("int64").groupby(key).transform("sum")
    add("subject_stated_once", "subject_code", stated & (stated.astype("int64").groupby(key).cumsum() > 1),
        "the group's subject is stated again")
    add("subject_stated_once", "subject_code", (statements == 0) & ~key.duplicated(),
        "no row of the group states its subject")

    for label, column in (("school", school), ("group", key)):
        runs = (column != column.shift()).fillna(True).astype("int64").cumsum()
        run_count = runs.groupby(column).transform("nunique")
        first_run = runs.groupby(column).transform("min")
        add("not_contiguous", "school_natural_id" if label == "school" else "group_name",
            (run_count > 1) & (runs != first_run) & (runs != runs.shift()),
            f"rows of one {label} must be contiguous (sort by school, group, year)")

    spellings = pd.DataFrame({"school": school, "lower": group.str.lower(), "name": group}).drop_duplicates()
    clash = spellings.duplicated(["school", "lower"], keep=False)
    add("group_name_not_unique", "group_name",
        rows.index.isin(spellings.index[clash & spellings.duplicated(["school", "lower"])]),
        "differs from another group name of the school only in upper/lower case")

    students = pd.DataFrame({"key": key, "ssid": ssid})[ssid != ""]
    duplicate = students.duplicated(["key", "ssid"])
    add("duplicate_student", "student_ssid", rows.index.isin(students.index[duplicate]),
        "the student is already in this group")
    distinct = students[~duplicate]
    position = distinct.groupby("key").cumcount()
    add("too_many_students", "student_ssid", rows.index.isin(distinct.index[position >= MAX_STUDENTS_PER_GROUP]),
        f"the group has more than {MAX_STUDENTS_PER_GROUP} students")
    return findings


def validate_files(paths: Iterable[Path], *, max_length: int = DEFAULT_GROUP_NAME_MAX_LENGTH) -> ValidationReport:
    """Validate every file, then the files together (a group must be in one file only)."""
    report = ValidationReport()
    owners: list[pd.DataFrame] = []
    paths = sorted(Path(p) for p in paths)
    if not paths:
        report.add(Finding("(build)", "no_data_rows", None,
                           message="no student group was built: check the profiles' schools and filters, and "
                                   "whether sections are active on the as-of date"))
        return report
    for path in paths:
        rows, structural = read_group_file(path)
        report.extend(structural)
        if rows is None:
            report.files[path.name] = 0
            continue
        report.files[path.name] = len(rows)
        report.extend(check_rows(path.name, rows, max_length=max_length))
        key = rows["school_natural_id"] + "\x1f" + rows["group_name"].str.lower() + "\x1f" + rows["school_year"]
        owners.append(pd.DataFrame({"key": key.drop_duplicates(), "file": path.name}))
    if len(owners) > 1:
        together = pd.concat(owners, ignore_index=True)
        several = together[together.duplicated("key", keep=False)]
        for file in sorted(several["file"].unique()):
            report.add(Finding(file, "group_in_several_files", "group_name", count=int((several["file"] == file).sum()),
                               message="a group of this file is also in another file of the run"))
    return report
