"""SIS snapshot -> the wide subgroup frame: ``student_id`` then one column per configured subgroup, sorted by id.

Who: exactly the students the roster feed carries -- the roster profile's own OneRoster build decides (active
students enrolled on the as-of date at a school in its scope, licensed grades and products, an id present, no
colliding ids). ``student_id`` is made by the roster's own id settings and function (``UserIdOptions`` +
``ids.user_id``), so the two files can never disagree on how an id is written.

Values (all vectorised; the only loop is over configured columns):
- program sources: ``student_programs.parquet`` holds the programs active on the as-of date (start <= as-of <= end,
  end inclusive, NULL open). A student with several active rows of one program (overlapping spans) counts once;
  for ``map`` the row with the latest start date (then the greatest status code) gives the status. Counted.
- attribute sources: the student table column as extracted (text).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from rostering.frames import isin, map_values
from rostering.oneroster import ids
from rostering.oneroster.build import OneRosterOptions, UserIdOptions, build_oneroster
from rostering.subgroups.config import ID_COLUMN, SubgroupColumn, SubgroupConfig

Reader = Callable[[str], pd.DataFrame]


@dataclass
class SubgroupBuild:
    frame: pd.DataFrame  # student_id + configured columns, string dtype, NA = blank, sorted by student_id
    dropped: Counter  # reason -> count (never who)
    resolved: Counter  # "<column>.<what>" -> count of students where a rule decided between several rows
    value_counts: dict[str, dict[str, int]]  # column -> written value ("" = blank) -> students


def student_sourced_ids(students: pd.DataFrame, user_ids: UserIdOptions) -> pd.Series:
    """Each SIS student's roster sourcedId (NA without the id source), by the roster's own id function."""
    key = students["ssid"] if user_ids.student_source == "ssid" else students["student_id"]
    key = key.astype("string").mask(key.isna() | (key.astype("string").str.strip() == ""))
    return ids.user_id(key, user_ids.student_prefix)


def roster_students(read: Reader, options: OneRosterOptions, dropped: Counter) -> pd.DataFrame:
    """The students the roster build sends (SIS columns + ``sourced_id``).

    The roster's own build decides (scope, licensed grades and products, students without the id source, ids that
    collide are withheld): the subgroup file can never carry a student the roster leaves out. Active students it
    leaves out are counted; the roster's summary says why.
    """
    built = build_oneroster(read, options)
    users = built.tables["users.csv"]
    sent = users.loc[users["role"] == "student", "sourcedId"]
    students = read("students")
    students = students.assign(sourced_id=student_sourced_ids(students, options.user_ids))
    in_roster = isin(students["sourced_id"], sent)
    dropped["student.not_in_roster_build"] += int((~in_roster).sum())
    return students[in_roster]


def _program_rows(programs: pd.DataFrame, column: SubgroupColumn, resolved: Counter) -> pd.DataFrame:
    """One active row per student for the column's program (status filter applied for flags)."""
    rows = programs[programs["program_code"] == column.program]
    if column.statuses:
        rows = rows[isin(rows["status_code"], column.statuses)]
    rows = rows.sort_values(["student_id", "start_date", "status_code"], kind="stable", na_position="first")
    kept = rows.drop_duplicates("student_id", keep="last")
    resolved[f"{column.name}.several_active_program_rows"] += int(isin(
        kept["student_id"], rows.loc[rows["student_id"].duplicated(), "student_id"]).sum())
    return kept


def _encode(column: SubgroupColumn, students: pd.DataFrame, programs: pd.DataFrame,
            resolved: Counter) -> pd.Series:
    index = students.index
    if column.program is not None:
        rows = _program_rows(programs, column, resolved).set_index("student_id")
        present = isin(students["student_id"], rows.index)
        source = map_values(students["student_id"], rows["status_code"].astype("string")).astype("string")
    else:
        source = students[column.attribute].astype("string")
        source = source.mask(source.str.strip() == "")
        present = source.notna()
    if column.is_flag:
        yes, no = column.allowed_values()
        if column.program is not None:
            truth = present
        elif column.true_values:
            truth = isin(source, column.true_values).fillna(False)
        else:
            truth = present & ~isin(source, column.false_values).fillna(False)
        return pd.Series(np.where(truth.to_numpy(dtype=bool), yes, no), index=index, dtype="string")
    mapped = source.map(dict(column.values)).astype("string")
    unmapped = present & mapped.isna()  # in the program (or a value) that ``values`` does not list
    if column.other is not None:
        mapped = mapped.mask(unmapped, column.other)
    else:
        resolved[f"{column.name}.unmapped_value_left_blank"] += int(unmapped.sum())
    if column.none is not None:
        mapped = mapped.mask(~present, column.none)
    return mapped


def build_subgroups(read: Reader, config: SubgroupConfig, options: OneRosterOptions) -> SubgroupBuild:
    """The subgroup frame for the roster's students (``options``: the roster profile's OneRoster options)."""
    dropped: Counter = Counter()
    resolved: Counter = Counter()
    students = roster_students(read, options, dropped)
    missing = sorted({c.attribute for c in config.columns if c.attribute is not None} - set(students.columns))
    if missing:
        raise ValueError(f"subgroups: attribute column(s) {missing} are not in the snapshot's students.parquet "
                         "(include/sql/snapshot/students.sql)")
    programs = read("student_programs")
    programs = programs[isin(programs["student_id"], students["student_id"])]
    frame = pd.DataFrame({ID_COLUMN: students["sourced_id"].astype("string")}, index=students.index)
    for column in config.columns:
        frame[column.name] = _encode(column, students, programs, resolved)
    frame = frame.sort_values(ID_COLUMN, kind="stable").reset_index(drop=True)
    value_counts = {
        column.name: {str(k): int(v) for k, v in frame[column.name].fillna("").value_counts().sort_index().items()}
        for column in config.columns
    }
    return SubgroupBuild(frame, +dropped, +resolved, value_counts)
