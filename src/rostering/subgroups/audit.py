"""What changed in the subgroup file against the previous delivery, and the append-only audit trail of it.

Per run (``diff_subgroups``, at build time): one row per change -- ``student_added`` / ``student_removed`` (one row
per column, with the value sent / last sent), ``changed`` (a value that flipped), ``column_added`` /
``column_removed`` (a deliberate, accepted configuration change: one row per student and column). Written as
``subgroup_changes.csv`` beside the built file.

Per delivery (``append_audit``, ONLY after the delivery succeeded): the same rows plus ``delivered_at`` and
``run_id``, as ``subgroup_changes.csv`` in the delivery's record folder and as one new Parquet file in
``<state>/audit/<vendor>/`` -- a file per delivery, never rewritten, so the folder is an append-only dataset.

Query (``history`` / the CLI), e.g. "when did this student's ELL value change in what we sent?"::

    python -m rostering.subgroups.audit --student 1002 --column ell [--vendor derivita] [--state-dir DIR]

prints the rows as CSV on stdout (an operator's deliberate query; nothing is logged). These files hold children's
data: owner-only (0700 folders, 0600 files) under the state folder, never in logs.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from rostering.csvio import write_csv
from rostering.frames import TEXT, is_sorted, repeated, run_starts, string_frame, strings
from rostering.subgroups.config import ID_COLUMN

CHANGES_FILE = "subgroup_changes.csv"
CHANGE_COLUMNS = ("as_of_date", "compared_with", "student_id", "change", "column", "old_value", "new_value")
AUDIT_COLUMNS = ("delivered_at", "run_id", *CHANGE_COLUMNS)
CHANGE_KINDS = ("student_added", "student_removed", "changed", "column_added", "column_removed")


def read_subgroup_file(path: Path) -> pd.DataFrame:
    """A delivered subgroup CSV, every column a string, blank -> NA, header as written."""
    table = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(null_values=[""], strings_can_be_null=True,
                                             quoted_strings_can_be_null=True, auto_dict_encode=False,
                                             column_types=_all_strings(path)),
    )
    return table.to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get)


def _all_strings(path: Path) -> dict[str, pa.DataType]:
    with open(path, encoding="utf-8", newline="") as handle:
        header = handle.readline().rstrip("\r\n").split(",")
    return {name: pa.string() for name in header}


def _students(current: pd.DataFrame, previous: pd.DataFrame | None) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Every student of either file in id order (missing last), and each one's first row in each file (-1: none).

    One stable sort of both files' ids (the current file's first): a student's rows in the two files end up side by
    side, the current file's before the previous file's, each file's in its own order.
    """
    cur = strings(current[ID_COLUMN], TEXT)
    ids = pa.concat_arrays([cur, strings(previous[ID_COLUMN], TEXT) if previous is not None else strings([], TEXT)])
    if is_sorted(ids):  # the first delivery of a file written in id order
        order, ordered = np.arange(len(ids)), ids
    else:
        order = pc.array_sort_indices(ids, null_placement="at_end").to_numpy().astype(np.int64)
        ordered = ids.take(pa.array(order))
    starts = run_starts(ordered)  # a student's first sorted row
    student = np.cumsum(starts) - 1  # each sorted row's student
    from_cur = order < len(cur)
    after_cur = np.zeros(len(order), dtype=bool)
    after_cur[1:] = from_cur[:-1]
    first_cur = starts & from_cur  # a student's rows from current come first, so its first is the run's first
    first_prev = ~from_cur & (starts | after_cur)  # ...and its first from previous starts the run or follows those
    cur_row, prev_row = np.full(int(starts.sum()), -1), np.full(int(starts.sum()), -1)
    cur_row[student[first_cur]] = order[first_cur]
    prev_row[student[first_prev]] = order[first_prev] - len(cur)
    return ordered.filter(pa.array(starts)), cur_row, prev_row


def diff_subgroups(previous: pd.DataFrame | None, current: pd.DataFrame, *, as_of_date: str,
                   compared_with: str | None) -> pd.DataFrame:
    """Every change from ``previous`` (the last delivered file, None before the first delivery) to ``current``.

    Vectorised (Arrow and numpy; the only loop is over the columns): the students of both files (first row per
    student_id) are laid out as a grid, one row per student in id order, one column per position -- the current
    columns, then the removed ones. Each cell gets a change kind or none: ``student_added`` (a current column of a
    student only in ``current``), ``student_removed`` (a previous column of a student only in ``previous``),
    ``changed`` (a common column whose value differs, blank counting as a value), ``column_added`` /
    ``column_removed``. Reading the kept cells row by row gives the result sorted by student, then column position,
    so it is deterministic.
    """
    cur_columns = [c for c in current.columns if c != ID_COLUMN]
    prev_columns = [c for c in previous.columns if c != ID_COLUMN] if previous is not None else []
    removed_columns = [c for c in prev_columns if c not in cur_columns]
    positions = [*cur_columns, *removed_columns]
    students, cur_at, prev_at = _students(current, previous)
    in_cur, in_prev = cur_at >= 0, prev_at >= 0
    cur_row, prev_row = pa.array(cur_at, mask=~in_cur), pa.array(prev_at, mask=~in_prev)

    m, none = len(students), pa.nulls(len(students), TEXT)
    kinds = np.full((m, len(positions)), -1, dtype=np.int8)  # index into CHANGE_KINDS, -1: no row
    old_values, new_values = [], []
    for p, column in enumerate(positions):
        new = strings(current[column], TEXT).take(cur_row) if column in cur_columns else none
        old = strings(previous[column], TEXT).take(prev_row) if column in prev_columns else none
        new_values.append(new)
        old_values.append(old)
        kind = kinds[:, p]
        if column in cur_columns:
            kind[in_cur & ~in_prev] = 0  # student_added
        if column in prev_columns:
            kind[in_prev & ~in_cur] = 1  # student_removed
        both = in_cur & in_prev
        if column in cur_columns and column in prev_columns:
            flipped = pc.not_equal(pc.fill_null(new, ""), pc.fill_null(old, "")).to_numpy(zero_copy_only=False)
            kind[both & flipped] = 2  # changed
        elif column in cur_columns:
            kind[both] = 3  # column_added
        else:
            kind[both] = 4  # column_removed

    cells = np.flatnonzero(kinds.ravel() >= 0)  # row by row: student order, then column position
    student, position = cells // max(len(positions), 1), cells % max(len(positions), 1)
    grid = pa.array(position * m + student)  # the cell in the per-position value arrays, laid end to end
    n = len(cells)
    return string_frame({
        "as_of_date": repeated(None if as_of_date is None else str(as_of_date), n, TEXT),
        "compared_with": repeated(None if compared_with is None else str(compared_with), n, TEXT),
        ID_COLUMN: students.take(pa.array(student)),
        "change": strings(CHANGE_KINDS, TEXT).take(pa.array(kinds.ravel()[cells].astype(np.int32))),
        "column": strings(positions, TEXT).take(pa.array(position)),
        "old_value": _taken(old_values, grid),
        "new_value": _taken(new_values, grid),
    })


def _taken(arrays: list[pa.Array], grid: pa.Array) -> pa.Array:
    """``grid`` positions of the arrays laid end to end."""
    if all(a.null_count == len(a) for a in arrays):  # e.g. old values at the first delivery
        return pa.nulls(len(grid), TEXT)
    return pa.concat_arrays(arrays).take(grid)


def change_counts(changes: pd.DataFrame) -> dict[str, object]:
    """Counts only (the run summary): students added/removed, values changed per column, column events."""
    kind, student, column = (strings(changes[c], TEXT) for c in ("change", ID_COLUMN, "column"))

    def of(name: str) -> pa.Array:
        return pc.fill_null(pc.equal(kind, name), False)

    def distinct(values: pa.Array) -> list[str]:
        return sorted(v for v in pc.unique(values).to_pylist() if v is not None)

    changed = column.filter(of("changed"))
    counted = pc.value_counts(changed.drop_null())
    by_column = dict(zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist()))
    return {
        "students_added": _distinct_count(student.filter(of("student_added"))),
        "students_removed": _distinct_count(student.filter(of("student_removed"))),
        "values_changed": len(changed),
        "values_changed_by_column": {str(k): int(by_column[k]) for k in sorted(by_column)},
        "columns_added": distinct(column.filter(of("column_added"))),
        "columns_removed": distinct(column.filter(of("column_removed"))),
        "rows": int(len(changes)),
    }


def _distinct_count(values: pa.Array) -> int:
    """Distinct non-null values, by sorting (hashing 500,000 distinct ids is several times slower). A diff lists each
    student's rows together and in id order, so there the values are sorted already and only neighbours compared."""
    values = values.drop_null()
    if not is_sorted(values):
        values = values.take(pc.array_sort_indices(values))
    return int(run_starts(values).sum())


def write_changes(changes: pd.DataFrame, path: Path) -> Path:
    write_csv(changes, path, CHANGE_COLUMNS)
    return path


# -- the append-only audit ---------------------------------------------------------------------------------------------


def audit_dir(vendor: str, base: Path | None = None) -> Path:
    from rostering.paths import state_dir

    return (base or state_dir()) / "audit" / vendor


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)


def append_audit(changes_csv: Path, *, vendor: str, record, base: Path | None = None) -> dict[str, object]:
    """After a successful delivery: this delivery's changes into its record folder and the cumulative audit.

    ``record`` is the :class:`~rostering.delivery.records.DeliveryRecord` of the delivery. The Parquet file is named
    after the record folder (unique per delivery), written to a temporary name and renamed: readers never see half
    a file, and existing files are never touched.
    """
    changes = read_subgroup_file(changes_csv) if changes_csv.stat().st_size else None
    if changes is None or list(changes.columns) != list(CHANGE_COLUMNS):
        raise ValueError(f"{changes_csv.name}: not a subgroup changes file (expected header {list(CHANGE_COLUMNS)})")
    changes.insert(0, "run_id", record.run_id)
    changes.insert(0, "delivered_at", record.delivered_at)
    changes = changes[list(AUDIT_COLUMNS)].astype("string")

    write_csv(changes, Path(record.directory) / CHANGES_FILE, AUDIT_COLUMNS)  # beside the kept payload
    folder = audit_dir(vendor, base)
    _private_dir(folder.parent)
    _private_dir(folder)
    name = Path(record.directory).name
    target, temporary = folder / f"{name}.parquet", folder / f".{name}.parquet.tmp"
    if target.exists():
        raise FileExistsError(f"audit file for delivery {name} exists already; the audit is append-only")
    table = pa.Table.from_pandas(changes, preserve_index=False).cast(
        pa.schema([(c, pa.string()) for c in AUDIT_COLUMNS]))
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        pq.write_table(table, handle, compression="zstd")
    os.chmod(temporary, 0o600)
    os.replace(temporary, target)
    return {"audit_rows": int(len(changes)), "audit_file": target.name}


def history(student_id: str, column: str | None = None, *, vendor: str = "derivita",
            base: Path | None = None) -> pd.DataFrame:
    """Every audited change of one student (optionally one column), oldest delivery first."""
    folder = audit_dir(vendor, base)
    files = sorted(folder.glob("*.parquet")) if folder.exists() else []
    if not files:
        return pd.DataFrame({c: pd.Series([], dtype="string") for c in AUDIT_COLUMNS})
    dataset = pads.dataset([str(f) for f in files], format="parquet")
    condition = pads.field(ID_COLUMN) == student_id
    if column:
        condition = condition & (pads.field("column") == column)
    found = dataset.to_table(filter=condition).to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get)
    found = found.sort_values(["delivered_at", "column"], kind="stable").reset_index(drop=True)
    return found[list(AUDIT_COLUMNS)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rostering.subgroups.audit",
        description="When did a student's subgroup values change in what we delivered? Prints the audited changes "
        "as CSV (delivered_at, run_id, as_of_date, compared_with, student_id, change, column, old_value, "
        "new_value), oldest first.",
    )
    parser.add_argument("--student", required=True, help="the student_id as written in the delivered file")
    parser.add_argument("--column", help="only this subgroup column (e.g. ell)")
    parser.add_argument("--vendor", default="derivita", help="vendor profile name (default: derivita)")
    parser.add_argument("--state-dir", type=Path, help="state folder (default: $ROSTERING_STATE_DIR or var/state)")
    args = parser.parse_args(argv)
    found = history(args.student, args.column, vendor=args.vendor, base=args.state_dir)
    found.to_csv(sys.stdout, index=False, lineterminator="\n")
    if found.empty:
        print(f"no audited change for that student{' and column' if args.column else ''} "
              f"(vendor {args.vendor}, {audit_dir(args.vendor, args.state_dir)})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
