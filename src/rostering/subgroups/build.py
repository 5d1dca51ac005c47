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
import pyarrow as pa
import pyarrow.compute as pc

from rostering.frames import TEXT, is_sorted, isin, string_frame, strings
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
    built = build_oneroster(read, options, only_users=True)
    users = built.tables["users.csv"]
    sent = users.loc[users["role"] == "student", "sourcedId"]
    students = read("students")
    students = students.assign(sourced_id=student_sourced_ids(students, options.user_ids))
    in_roster = isin(students["sourced_id"], sent)
    dropped["student.not_in_roster_build"] += int((~in_roster).sum())
    return students[in_roster]


def _program_rows(programs: pa.Table, column: SubgroupColumn, resolved: Counter) -> tuple[np.ndarray, pa.Array]:
    """The students in the column's program (status filter applied): their ``row`` and each one's status code.

    A student with several active rows counts once; the row with the latest start date, then the greatest status
    code (missing dates and codes first) gives the status -- ``sort_values([student, start_date, status_code],
    na_position="first")`` then ``drop_duplicates(student, keep="last")``.
    """
    rows = programs.filter(pc.fill_null(pc.equal(programs["program_code"], column.program), False))
    if column.statuses:
        rows = rows.filter(pc.fill_null(pc.is_in(rows["status_code"], strings(column.statuses, TEXT)), False))
    order = pc.sort_indices(rows, sort_keys=[(k, "ascending", "at_start")
                                             for k in ("row", "start_date", "status_code")])  # stable
    student = rows["row"].take(order).to_numpy()
    last = np.ones(len(student), dtype=bool)  # a student's last row: the next row is another student's
    last[:-1] = student[1:] != student[:-1]
    resolved[f"{column.name}.several_active_program_rows"] += int((np.diff(np.flatnonzero(last), prepend=-1)
                                                                   > 1).sum())
    return student[last], rows["status_code"].take(order).combine_chunks().filter(pa.array(last))


def _encode(column: SubgroupColumn, n_students: int, attributes: dict[str, pa.Array], programs: pa.Table,
            resolved: Counter) -> pa.Array:
    """The column's written values for the roster's ``n_students`` students: ``attributes`` are their attribute
    columns, ``programs`` their active program rows (``row``: the student's position)."""
    if column.program is not None:
        members, status = _program_rows(programs, column, resolved)
        at = np.full(n_students, -1, dtype=np.int64)
        at[members] = np.arange(len(members))
        present = pa.array(at >= 0)
        source = status.take(pa.array(at, mask=at < 0))
    else:
        source = attributes[column.attribute]
        source = pc.if_else(pc.equal(pc.utf8_trim_whitespace(source), ""), pa.scalar(None, TEXT), source)
        present = pc.is_valid(source)
    if column.is_flag:
        yes, no = column.allowed_values()
        if column.program is not None:
            truth = present
        elif column.true_values:
            truth = pc.fill_null(pc.is_in(source, strings(column.true_values, TEXT)), False)
        else:
            is_false = pc.fill_null(pc.is_in(source, strings(column.false_values, TEXT)), False)
            truth = pc.and_(present, pc.invert(is_false))
        return pc.if_else(truth, pa.scalar(yes, TEXT), pa.scalar(no, TEXT))
    written = strings(column.values.values(), TEXT)
    mapped = written.take(pc.index_in(source, value_set=strings(column.values, TEXT)))
    unmapped = pc.and_(present, pc.is_null(mapped))  # in the program (or a value) that ``values`` does not list
    if column.other is not None:
        mapped = pc.if_else(unmapped, pa.scalar(column.other, TEXT), mapped)
    else:
        resolved[f"{column.name}.unmapped_value_left_blank"] += int(pc.sum(unmapped).as_py() or 0)
    if column.none is not None:
        mapped = pc.if_else(present, mapped, pa.scalar(column.none, TEXT))
    return mapped


def _cached(read: Reader) -> Reader:
    """``read`` once per table: the roster build and the subgroup build read the same tables (students)."""
    tables: dict[str, pd.DataFrame] = {}

    def get(name: str) -> pd.DataFrame:
        if name not in tables:
            tables[name] = read(name)
        return tables[name]

    return get


def build_subgroups(read: Reader, config: SubgroupConfig, options: OneRosterOptions) -> SubgroupBuild:
    """The subgroup frame for the roster's students (``options``: the roster profile's OneRoster options)."""
    dropped: Counter = Counter()
    resolved: Counter = Counter()
    read = _cached(read)
    students = roster_students(read, options, dropped)
    missing = sorted({c.attribute for c in config.columns if c.attribute is not None} - set(students.columns))
    if missing:
        raise ValueError(f"subgroups: attribute column(s) {missing} are not in the snapshot's students.parquet "
                         "(include/sql/snapshot/students.sql)")
    attributes = {c.attribute: strings(students[c.attribute], TEXT) for c in config.columns if c.attribute is not None}
    programs = read("student_programs")
    row = pc.index_in(strings(programs["student_id"], TEXT), value_set=strings(students["student_id"], TEXT))
    programs = pa.table({"row": row, **{name: strings(programs[name], TEXT)
                                        for name in ("program_code", "status_code", "start_date")}})
    programs = programs.filter(pc.is_valid(row))  # the roster's students' rows only
    columns = {ID_COLUMN: strings(students["sourced_id"], TEXT)}
    for column in config.columns:
        columns[column.name] = _encode(column, len(students), attributes, programs, resolved)
    table = pa.table(columns)
    if not is_sorted(columns[ID_COLUMN]):
        table = table.take(pc.array_sort_indices(table[ID_COLUMN], null_placement="at_end"))  # stable
    value_counts = {}
    for column in config.columns:
        counted = pc.value_counts(pc.fill_null(table[column.name], ""))
        pairs = zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist())
        value_counts[column.name] = {str(k): int(v) for k, v in sorted(pairs)}
    frame = string_frame({name: table[name] for name in table.column_names})
    return SubgroupBuild(frame, +dropped, +resolved, value_counts)
