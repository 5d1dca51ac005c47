"""The ``cers`` format: build, validate and package CERS student-group files for a run.

The pipeline calls these three functions (rostering.pipeline.FORMATS["cers"]). The vendor YAML
(config/vendors/cers.yaml) has a ``cers:`` section:

    cers:
      profiles_file: cers_profiles.yaml   # relative to config/ (or absolute)
      group_name_max_length: 20           # PowerSchool's limit, the strictest documented receiver
      max_students_per_group: 200         # the receiver's limit (lower only for tests)
      consolidate: false                  # default of the run param: one file per school, or one file

The run's own params (``RunOptions.extra``): ``profiles`` (names; empty = the profiles included in the scheduled
run) and ``consolidate``. Files: ``student_groups_<CDS code>.csv`` per school, or ``student_groups.csv``.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from rostering.cers.build import COLUMNS_READ, build_groups
from rostering.cers.profiles import load_profiles, select_profiles
from rostering.cers.spec import DEFAULT_GROUP_NAME_MAX_LENGTH, HEADER, MAX_STUDENTS_PER_GROUP
from rostering.csvio import EOL, PRIVATE_FILE, WrittenFile, sha256_of
from rostering.frames import run_starts
from rostering.paths import config_dir
from rostering.vendors.profile import VendorProfile

if TYPE_CHECKING:
    from rostering.sis.extract import SnapshotInfo
    from rostering.validation.report import ValidationReport

log = logging.getLogger(__name__)
CONSOLIDATED = "student_groups.csv"


def profiles_path(profile: VendorProfile) -> Path:
    path = Path(profile.options.get("profiles_file", "cers_profiles.yaml"))
    return path if path.is_absolute() else config_dir() / path


def max_length(profile: VendorProfile) -> int:
    return int(profile.options.get("group_name_max_length", DEFAULT_GROUP_NAME_MAX_LENGTH))


def school_file(cds_code: str) -> str:
    return f"student_groups_{cds_code}.csv"


def write_group_file(rows: pd.DataFrame | pa.Table, path: Path) -> WrittenFile:
    """RFC 4180, UTF-8 without BOM, CRLF, owner-only -- and unquoted, exactly like the receiver's own example.

    No CERS value may contain a comma, a quote or a line break (names are letters and digits, the rest digits,
    subject codes and e-mail addresses), so nothing needs quoting; pyarrow's ``quoting_style="none"`` refuses to
    write a value that would, so a rule broken upstream fails here instead of producing a file the receiver misreads.

    The bytes of ``rostering.csvio.write_csv(rows, path, HEADER, quoting="none")`` (our header line, then pyarrow's
    writer), but from an Arrow table: the per-school files are zero-copy slices of one table, where a DataFrame
    per school cost a pandas -> Arrow conversion each (3.5 s for 746 files at XL).
    """
    table = _header_table(rows) if isinstance(rows, pd.DataFrame) else rows.select(list(HEADER))
    sink = pa.BufferOutputStream()
    if table.num_rows:
        pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, eol=EOL, quoting_style="none"))
    header, body = (",".join(HEADER) + EOL).encode("utf-8"), sink.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(header)
        handle.write(body)
    os.chmod(path, PRIVATE_FILE)
    digest = hashlib.sha256(header)
    digest.update(body)  # the bytes just written (no need to read the file back)
    return WrittenFile(str(path), table.num_rows, len(header) + body.size, digest.hexdigest())


def _header_table(rows: pd.DataFrame) -> pa.Table:
    """``rows[HEADER]`` as an Arrow table of strings (nulls stay null: written as empty fields)."""
    table = pa.Table.from_pandas(rows[list(HEADER)].astype("string"), preserve_index=False)
    return table.cast(pa.schema([(name, pa.string()) for name in HEADER]))


def _school_slices(table: pa.Table):
    """(CDS code, rows) per school of ``table``, whose rows are sorted by school (``build_groups`` sorts them):
    the ``groupby("school_natural_id", sort=True)`` of the rows, rows without a school left out, as slices."""
    school = table["school_natural_id"].combine_chunks()
    bounds = [*np.flatnonzero(run_starts(school)).tolist(), len(school)]
    for begin, end in zip(bounds[:-1], bounds[1:]):
        cds_code = school[begin].as_py()
        if cds_code is not None:
            yield cds_code, table.slice(begin, end - begin)


def _reader(snapshot: "SnapshotInfo"):
    """``snapshot.read``, reading only the columns the build uses of the largest tables (``COLUMNS_READ``)."""
    def read(name: str) -> pd.DataFrame:
        columns = COLUMNS_READ.get(name)
        return snapshot.read(name) if columns is None else pd.read_parquet(snapshot.path(name), columns=list(columns))
    return read


def build(snapshot: "SnapshotInfo", profile: VendorProfile, out_dir: Path, *, schools: Sequence[str] = (),
          extra: Mapping[str, Any] | None = None, **_: Any) -> dict[str, Any]:
    """Write the run's group file(s) into ``out_dir``; return what was written and what was left out, by reason."""
    extra = dict(extra or {})
    selected = select_profiles(load_profiles(profiles_path(profile)), extra.get("profiles"))
    consolidate = bool(extra.get("consolidate", profile.options.get("consolidate", False)))
    result = build_groups(
        _reader(snapshot), selected, school_year=int(snapshot.school_year), schools=schools,
        max_length=max_length(profile),
        max_students=int(profile.options.get("max_students_per_group", MAX_STUDENTS_PER_GROUP)),
    )
    rows = result.rows
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[WrittenFile] = []
    if len(rows):
        table = _header_table(rows)  # converted once; a school's file is a slice of it
        if consolidate:
            written.append(write_group_file(table, out_dir / CONSOLIDATED))
        else:
            for cds_code, school_rows in _school_slices(table):
                written.append(write_group_file(school_rows, out_dir / school_file(cds_code)))
    files = {Path(f.path).name: f.rows for f in written}
    log.info("CERS: %d group(s) for %d student(s) in %d file(s) from profile(s) %s",
             result.groups, result.students, len(files), ", ".join(p.name for p in selected))
    return {
        "files": files,
        "dropped": dict(sorted(result.dropped.items())),
        "normalised": {},
        "details": {  # shown in the run summary
            "profiles": [p.name for p in selected],
            "consolidated": consolidate,
            "groups": {"total": result.groups, "split_into_parts": result.split_groups,
                       "by_profile": result.groups_by_profile},
            "students_in_groups": result.students,
        },
    }


def validate(profile: VendorProfile, build_dir: Path) -> "ValidationReport":
    from rostering.cers.checks import validate_files

    return validate_files(sorted(Path(build_dir).glob("*.csv")), max_length=max_length(profile))


def payload(profile: VendorProfile, build_dir: Path, out_dir: Path) -> list[WrittenFile]:
    """The validated files themselves, copied into the payload folder (each one is one upload)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(Path(build_dir).glob("*.csv")):
        target = out_dir / path.name
        data = path.read_bytes()
        target.write_bytes(data)
        target.chmod(0o600)
        written.append(WrittenFile(str(target), max(data.count(b"\r\n") - 1, 0), len(data), sha256_of(target)))
    return written


# The change guard compares only the schools this file names: a CERS file replaces the groups it names and leaves
# every other group untouched, so a run for fewer schools or profiles is not a deletion of the others.
GUARD_SAME_SCHOOLS_ONLY = True


def guard_entities(read, profile: VendorProfile | None = None) -> dict[str, pd.DataFrame]:
    """For the change guard: groups (fingerprinted by their members), students, and group memberships.

    ``read`` returns a file of the payload; CERS payloads are one or more ``*.csv`` group files, all read here.
    """
    from rostering.delivery.guard import fingerprint

    rows = read("*")
    if rows.empty:
        return {}
    school, group = rows["school_natural_id"], rows["group_name"]
    members = rows[rows["student_ssid"].notna()]
    group_key = school + "/" + group
    membership = members["school_natural_id"] + "/" + members["group_name"] + "/" + members["student_ssid"]
    by_group = (members.assign(key=membership.str.rsplit("/", n=1).str[0])
                .sort_values(["key", "student_ssid"], kind="stable")
                .groupby("key", sort=True)["student_ssid"].agg(",".join))
    groups = pd.DataFrame({"key": group_key, "school": school}).drop_duplicates("key")
    groups["fingerprint"] = fingerprint(groups["key"].map(by_group).fillna("").to_frame())
    students = members.drop_duplicates(["school_natural_id", "student_ssid"])
    return {
        "groups": groups.reset_index(drop=True),
        "students": pd.DataFrame({"key": students["school_natural_id"] + "/" + students["student_ssid"],
                                  "school": students["school_natural_id"],
                                  "fingerprint": pd.Series(0, index=students.index, dtype="uint64")}),
        "memberships": pd.DataFrame({"key": membership, "school": members["school_natural_id"],
                                     "fingerprint": pd.Series(0, index=members.index, dtype="uint64")}),
    }
