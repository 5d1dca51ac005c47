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

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from rostering.csvio import write_csv
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


def _melt(frame: pd.DataFrame, columns: Sequence[str], change: str, value_name: str) -> pd.DataFrame:
    if frame.empty or not columns:
        return pd.DataFrame(columns=[ID_COLUMN, "column", "old_value", "new_value", "change"])
    long = frame[[ID_COLUMN, *columns]].melt(id_vars=ID_COLUMN, var_name="column", value_name=value_name)
    other = "old_value" if value_name == "new_value" else "new_value"
    long[other] = pd.Series(pd.NA, index=long.index, dtype="string")
    long["change"] = change
    return long


def diff_subgroups(previous: pd.DataFrame | None, current: pd.DataFrame, *, as_of_date: str,
                   compared_with: str | None) -> pd.DataFrame:
    """Every change from ``previous`` (the last delivered file, None before the first delivery) to ``current``.

    Vectorised: students are aligned on ``student_id``; common columns compared per column (a loop over
    configured columns), the changed cells and the added/removed students melted to long rows. Sorted by student,
    then column position (current columns, then removed ones), so the result is deterministic.
    """
    cur = current.drop_duplicates(ID_COLUMN).set_index(ID_COLUMN, drop=False).rename_axis("_key")
    cur_columns = [c for c in current.columns if c != ID_COLUMN]
    if previous is None:
        prev = pd.DataFrame({ID_COLUMN: pd.Series([], dtype="string")})
        prev = prev.set_index(ID_COLUMN, drop=False).rename_axis("_key")
        prev_columns: list[str] = []
    else:
        prev = previous.drop_duplicates(ID_COLUMN).set_index(ID_COLUMN, drop=False).rename_axis("_key")
        prev_columns = [c for c in previous.columns if c != ID_COLUMN]
    common = [c for c in cur_columns if c in prev_columns]
    added_columns = [c for c in cur_columns if c not in prev_columns]
    removed_columns = [c for c in prev_columns if c not in cur_columns]

    both = cur.index.intersection(prev.index)
    parts = [
        _melt(cur.loc[cur.index.difference(prev.index)], cur_columns, "student_added", "new_value"),
        _melt(prev.loc[prev.index.difference(cur.index)], prev_columns, "student_removed", "old_value"),
    ]
    if len(both):
        now, before = cur.loc[both], prev.loc[both]
        for column in common:
            new, old = now[column].astype("string"), before[column].astype("string")
            flipped = (new.fillna("") != old.fillna("")).to_numpy()
            if flipped.any():
                parts.append(pd.DataFrame({ID_COLUMN: now[ID_COLUMN][flipped].to_numpy(), "column": column,
                                           "old_value": old[flipped].to_numpy(), "new_value": new[flipped].to_numpy(),
                                           "change": "changed"}))
        parts.append(_melt(now, added_columns, "column_added", "new_value"))
        parts.append(_melt(before, removed_columns, "column_removed", "old_value"))
    parts = [p for p in parts if len(p)]
    if not parts:
        changes = pd.DataFrame({c: pd.Series([], dtype="string") for c in CHANGE_COLUMNS})
    else:
        changes = pd.concat(parts, ignore_index=True)
    position = {name: i for i, name in enumerate([*cur_columns, *removed_columns])}
    changes = changes.assign(_pos=changes["column"].map(position))
    changes = changes.sort_values([ID_COLUMN, "_pos"], kind="stable").reset_index(drop=True)
    changes["as_of_date"] = as_of_date
    changes["compared_with"] = compared_with
    return changes[list(CHANGE_COLUMNS)].astype("string")


def change_counts(changes: pd.DataFrame) -> dict[str, object]:
    """Counts only (the run summary): students added/removed, values changed per column, column events."""
    kind = changes["change"]
    changed = changes.loc[kind == "changed", "column"]
    return {
        "students_added": int(changes.loc[kind == "student_added", ID_COLUMN].nunique()),
        "students_removed": int(changes.loc[kind == "student_removed", ID_COLUMN].nunique()),
        "values_changed": int(len(changed)),
        "values_changed_by_column": {str(k): int(v) for k, v in changed.value_counts().sort_index().items()},
        "columns_added": sorted(changes.loc[kind == "column_added", "column"].unique().tolist()),
        "columns_removed": sorted(changes.loc[kind == "column_removed", "column"].unique().tolist()),
        "rows": int(len(changes)),
    }


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
