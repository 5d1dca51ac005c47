"""Input checks on the SIS snapshot: reject records no vendor file can be built from, and say exactly which.

A mapped SIS (views over a replica, a nightly copy without constraints) can hand us a student without a name, two
rows with the same key, or an enrollment that ends before it starts. One such record must not stop the night's
rosters for a whole district, and it must not reach a vendor file either: it is removed from the snapshot and
reported in ``rejected.csv`` by file, row, SIS key, column and rule — never by value. Vendors then build from the
clean rows; the run summary counts rejections by rule.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from rostering.frames import all_rows_distinct

# table -> (key column for the report, required columns, unique key columns, (start, end) date pairs)
RULES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], tuple[tuple[str, str], ...]]] = {
    "districts": ("district_id", ("district_id", "name"), ("district_id",), ()),
    "schools": ("school_id", ("school_id", "district_id", "name"), ("school_id",), ()),
    "terms": ("term_id", ("term_id", "school_year", "term_type", "title", "start_date", "end_date"), ("term_id",),
              (("start_date", "end_date"),)),
    "courses": ("course_id", ("course_id", "course_number", "title"), ("course_id",), ()),
    "sections": ("section_id", ("section_id", "school_id", "course_id", "term_id", "section_number"),
                 ("section_id",), (("start_date", "end_date"),)),
    "staff": ("staff_id", ("staff_id", "first_name", "last_name", "staff_role"), ("staff_id",), ()),
    "staff_schools": ("staff_id", ("staff_id", "school_id"), ("staff_id", "school_id"), ()),
    "section_staff": ("staff_id", ("section_id", "staff_id", "staff_role", "start_date"),
                      ("section_id", "staff_id", "start_date"), (("start_date", "end_date"),)),
    "students": ("student_id", ("student_id", "first_name", "last_name", "grade_level"), ("student_id",), ()),
    "school_enrollments": ("student_id", ("student_id", "school_id", "entry_date", "enrollment_status"),
                           ("student_id", "school_id", "entry_date"), (("entry_date", "exit_date"),)),
    "section_enrollments": ("student_id", ("student_id", "section_id", "entry_date"),
                            ("student_id", "section_id", "entry_date"), (("entry_date", "exit_date"),)),
    "student_programs": ("student_id", ("student_id", "program_code", "start_date"),
                         ("student_id", "program_code", "start_date"), (("start_date", "end_date"),)),
}

REPORT_COLUMNS = ("file", "row", "sis_key", "column", "rule")

# A student's primary enrollment (CALPADS status 10) decides the school every vendor files them under: two active on
# the as-of date leave that ambiguous (a re-entry keyed in before the withdrawal, a transfer half done), so both go
# and the SIS is fixed rather than a school guessed.
PRIMARY_STATUS = "10"


@dataclass
class CheckResult:
    clean: pd.DataFrame
    rejected: pd.DataFrame  # REPORT_COLUMNS; row = 1-based row of the snapshot file


def _blank(series: pd.Series) -> pd.Series:
    return series.isna() | (series.astype("string").str.strip() == "")


def check_table(name: str, frame: pd.DataFrame) -> CheckResult:
    """Apply the table's rules (vectorised); a row failing several rules is reported once per rule."""
    if name not in RULES:
        return CheckResult(frame, pd.DataFrame(columns=REPORT_COLUMNS))
    key, required, unique, date_pairs = RULES[name]
    problems = []

    def flag(mask: pd.Series, column: str, rule: str) -> None:
        if mask.any():
            problems.append(pd.DataFrame({"index": frame.index[mask.to_numpy()], "column": column, "rule": rule}))

    for column in required:
        flag(_blank(frame[column]), column, f"{name}.{column}_required")
    if not all_rows_distinct(frame, list(unique)):  # the usual night needs only the count of distinct keys
        keys_present = ~frame[list(unique)].isna().any(axis=1)
        flag(keys_present & frame.duplicated(list(unique), keep=False), "+".join(unique), f"{name}.key_unique")
    for start, end in date_pairs:
        both = frame[start].notna() & frame[end].notna()
        flag(both & (frame[start].astype("string") > frame[end].astype("string")), end, f"{name}.{end}_not_before_{start}")
    if name == "school_enrollments":  # the snapshot holds only what is active on the as-of date
        primary = frame["enrollment_status"].astype("string").str.strip() == PRIMARY_STATUS
        twice = primary & frame["student_id"].notna() & frame["student_id"].where(primary).duplicated(keep=False)
        flag(twice, "enrollment_status", "school_enrollments.one_primary_enrollment")

    if not problems:
        return CheckResult(frame, pd.DataFrame(columns=REPORT_COLUMNS))
    found = pd.concat(problems, ignore_index=True)
    positions = pd.Series(range(1, len(frame) + 1), index=frame.index)
    rejected = pd.DataFrame({
        "file": f"{name}.parquet",
        "row": found["index"].map(positions).astype("int64"),
        "sis_key": found["index"].map(frame[key]).astype("string"),
        "column": found["column"],
        "rule": found["rule"],
    }).sort_values(["row", "rule"], kind="stable").reset_index(drop=True)
    clean = frame.drop(index=found["index"].unique())
    return CheckResult(clean, rejected)
