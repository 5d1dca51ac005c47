"""The ``subgroups`` format (Derivita): build, validate and package the wide subgroup CSV; hold and audit delivery.

The format interface ``rostering.pipeline`` calls: ``build``, ``validate``, ``payload``, plus the optional delivery
hooks ``before_delivery`` (may hold the delivery: raises rostering.delivery.holds.DeliveryHeld) and
``after_delivery`` (the audit trail, written only once the delivery succeeded).

- ``student_id`` comes from the roster profile named by ``subgroups.student_ids_from`` (its ``oneroster.user_ids``
  and scope), and validation checks every id against the students of that roster's last good delivery.
- The column set is compared with the previous delivery's header at build time; a difference holds the delivery
  (``before_delivery``) unless the run's ``accept_column_change`` param is true. The previous delivery is untouched.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import time
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from rostering.csvio import WrittenFile, sha256_of, write_csv
from rostering.delivery.holds import DeliveryHeld
from rostering.frames import strings
from rostering.subgroups.audit import CHANGES_FILE, append_audit, change_counts, diff_subgroups, read_subgroup_file
from rostering.subgroups.build import build_subgroups
from rostering.subgroups.config import ID_COLUMN, SubgroupConfig, subgroup_config

if TYPE_CHECKING:
    from rostering.delivery.records import DeliveryRecord
    from rostering.sis.extract import SnapshotInfo
    from rostering.validation.report import ValidationReport
    from rostering.vendors.profile import VendorProfile

SUITE = "subgroups"  # include/expectations/subgroups.json (student_id rules; column rules are added from config)
BASELINE = "subgroups_baseline.json"
ACCEPT_PARAM = "accept_column_change"


class RosterUnavailable(ValueError):
    """The roster delivery the subgroup file must match is missing or unreadable."""


# -- the roster the ids come from --------------------------------------------------------------------------------------


def _roster_profile(config: SubgroupConfig) -> "VendorProfile":
    from rostering.vendors.profile import load_profile

    try:
        roster = load_profile(config.roster)
    except FileNotFoundError:
        raise ValueError(f"subgroups.student_ids_from: no vendor profile config/vendors/{config.roster}.yaml") from None
    if roster.format != "oneroster":
        raise ValueError(f"subgroups.student_ids_from: {config.roster} is not a OneRoster profile (format "
                         f"{roster.format}); student ids come from a roster's oneroster.user_ids")
    return roster


def roster_student_ids(vendor: str, base: Path | None = None) -> tuple[pa.Array, "DeliveryRecord"]:
    """sourcedIds of the students in ``vendor``'s last good delivery (its kept users.csv, or users.csv in its zip)."""
    from rostering.delivery.records import last_good

    record = last_good(vendor, base)
    if record is None:
        raise RosterUnavailable(f"no delivery of the roster vendor {vendor!r} is on record: the subgroup file can "
                                f"only be sent after the roster it refers to (run {vendor} first)")
    names = [f["name"] for f in record.files]
    if "users.csv" in names:
        data = record.path("users.csv").read_bytes()
    else:
        zips = [n for n in names if n.lower().endswith(".zip")]
        try:
            with zipfile.ZipFile(record.path(zips[0])) as archive:
                data = archive.read("users.csv")
        except (IndexError, KeyError, OSError, zipfile.BadZipFile):
            raise RosterUnavailable(f"the last delivery of {vendor!r} ({record.delivered_at}) has no readable "
                                    "users.csv (neither a file nor inside a zip)") from None
    table = pacsv.read_csv(
        io.BytesIO(data),
        convert_options=pacsv.ConvertOptions(include_columns=["sourcedId", "role"],
                                             column_types={"sourcedId": pa.string(), "role": pa.string()}),
    )
    students = table.filter(pc.equal(table["role"], "student"))
    return students["sourcedId"].combine_chunks(), record


def _not_in_roster(ids: pa.Array, roster_ids: pa.Array) -> np.ndarray:
    """Positions of ids (non-null) that are not roster student ids."""
    known = pc.fill_null(pc.is_in(ids, value_set=roster_ids), True)
    return np.flatnonzero(~known.to_numpy(zero_copy_only=False))


# -- build ---------------------------------------------------------------------------------------------------------


def _previous(profile: "VendorProfile", config: SubgroupConfig):
    """The last good delivery of this vendor and its delivered subgroup file (None, None before the first)."""
    from rostering.delivery.records import last_good

    record = last_good(profile.name)
    if record is None:
        return None, None
    names = [f["name"] for f in record.files if f["name"].lower().endswith(".csv")]
    name = config.file_name if config.file_name in names else (names[0] if len(names) == 1 else None)
    if name is None or not record.path(name).is_file():
        raise ValueError(f"the last delivery of {profile.name} ({record.delivered_at}) has no kept subgroup file "
                         "to compare with")
    return record, read_subgroup_file(record.path(name))


def compare_columns(previous: Sequence[str] | None, current: Sequence[str]) -> dict[str, Any]:
    if previous is None:
        return {"previous": None, "current": list(current), "added": [], "removed": [], "reordered": False,
                "changed": False}
    added = [c for c in current if c not in previous]
    removed = [c for c in previous if c not in current]
    common_now = [c for c in current if c in previous]
    common_before = [c for c in previous if c in current]
    reordered = common_now != common_before
    return {"previous": list(previous), "current": list(current), "added": added, "removed": removed,
            "reordered": reordered, "changed": bool(added or removed or reordered)}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)


def build(snapshot: "SnapshotInfo", profile: "VendorProfile", out_dir: Path, *, schools: Sequence[str] = (),
          reports_dir: Path | None = None, **_: Any) -> dict[str, Any]:
    """Write the subgroup file into ``out_dir`` and, into ``reports_dir``, what changed since the last delivery."""
    from rostering.oneroster.vendor import build_options

    config = subgroup_config(profile)
    roster = _roster_profile(config)
    # The roster's options as its own build uses them; its staff password (a secret) plays no part in who is sent.
    roster = replace(roster, options={k: v for k, v in roster.options.items() if k != "staff_password"})
    built = build_subgroups(snapshot.read, config, build_options(roster, schools))
    written = write_csv(built.frame, out_dir / config.file_name, config.header)

    reports = reports_dir or out_dir
    record, previous = _previous(profile, config)
    changes = diff_subgroups(previous, built.frame, as_of_date=snapshot.as_of_date,
                             compared_with=record.delivered_at if record else None)
    write_csv(changes, reports / CHANGES_FILE, tuple(changes.columns))
    columns = compare_columns(list(previous.columns) if previous is not None else None, config.header)
    _write_json(reports / BASELINE, {"previous_record": record.directory if record else None,
                                     "previous_delivered_at": record.delivered_at if record else None,
                                     "columns": columns})
    details: dict[str, Any] = {
        "roster": config.roster,
        "compared_with_delivery": record.delivered_at if record else "none (first delivery: every student added)",
        "columns": {k: columns[k] for k in ("added", "removed", "reordered", "changed")},
        "changes": change_counts(changes),
        "values": built.value_counts,
        **({"resolved": dict(sorted(built.resolved.items()))} if built.resolved else {}),
    }
    try:
        roster_ids, roster_record = roster_student_ids(config.roster)
        ids = strings(built.frame[ID_COLUMN])
        details["roster_delivery"] = {
            "delivered_at": roster_record.delivered_at, "as_of_date": roster_record.as_of_date,
            "students": len(roster_ids), "file_students_not_in_roster": int(_not_in_roster(ids, roster_ids).size),
            "roster_students_not_in_file": int(_not_in_roster(roster_ids, ids).size),
        }
    except RosterUnavailable:
        details["roster_delivery"] = None  # validation fails on it, with the reason
    return {
        "files": {config.file_name: written.rows},
        "dropped": dict(sorted(built.dropped.items())),
        "normalised": {},
        "details": details,
    }


# -- validate ------------------------------------------------------------------------------------------------------


def column_expectations(config: SubgroupConfig) -> list[dict[str, Any]]:
    """The configured columns' GX rules, built at run time: allowed values, and not blank unless allow_blank."""
    expectations = []
    for column in config.columns:
        if not column.allow_blank:
            expectations.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": column.name},
                                 "meta": {"rule": f"subgroups.{column.name}_required"}})
        expectations.append({"type": "expect_column_values_to_be_in_set",
                             "kwargs": {"column": column.name, "value_set": list(column.allowed_values())},
                             "meta": {"rule": f"subgroups.{column.name}_allowed_value"}})
    return expectations


_MESSAGES = {
    "expect_column_values_to_not_be_null": "value is empty and the column does not allow blanks (allow_blank); "
    "for a map column: a status or value with no entry in values and no other",
    "expect_column_values_to_be_in_set": "value is not one of the column's configured values",
}


def validate(profile: "VendorProfile", build_dir: Path, **_: Any) -> "ValidationReport":
    """File conventions, the GX suite (+ column rules from config), and every student_id in the roster."""
    from rostering.validation.gx_suites import validate_frame
    from rostering.validation.oneroster_checks import read_csv_file
    from rostering.validation.report import Finding, ValidationReport

    config = subgroup_config(profile)
    name = config.file_name
    report = ValidationReport()
    path = build_dir / name
    if not path.is_file():
        report.add(Finding(name, "subgroups.file_built", None, (), 0, "the subgroup file was not built"))
        return report
    started = time.perf_counter()
    parsed, findings = read_csv_file(path, config.header)
    report.files[name] = parsed.rows
    report.extend(findings)
    report.timings["read"] = time.perf_counter() - started
    if parsed.usable and parsed.rows:
        started = time.perf_counter()
        extra = column_expectations(config)
        messages = {e["meta"]["rule"]: _MESSAGES[e["type"]] for e in extra}
        for finding in validate_frame(name, parsed.frame(config.header), SUITE, extra_expectations=extra):
            report.add(replace(finding, message=messages[finding.rule]) if finding.rule in messages else finding)
        report.timings["gx"] = time.perf_counter() - started
    started = time.perf_counter()
    try:
        roster_ids, record = roster_student_ids(config.roster)
    except RosterUnavailable as error:
        report.add(Finding(name, "subgroups.roster_delivered", None, (), 0, str(error)))
    else:
        if parsed.usable and parsed.rows:
            missing = _not_in_roster(parsed.column(ID_COLUMN), roster_ids)
            if missing.size:
                report.add(Finding.at(
                    name, "subgroups.student_id_in_roster", ID_COLUMN, parsed.line_numbers(missing),
                    f"not a student in the last delivered {config.roster} roster (users.csv, delivered "
                    f"{record.delivered_at}); the receiver would reject the row",
                ))
    report.timings["roster"] = time.perf_counter() - started
    return report


# -- package and delivery hooks --------------------------------------------------------------------------------------


def payload(profile: "VendorProfile", build_dir: Path, out_dir: Path) -> list[WrittenFile]:
    """What is delivered: the subgroup file itself (nothing else from the build folder)."""
    config = subgroup_config(profile)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    target = out_dir / config.file_name
    shutil.copyfile(build_dir / config.file_name, target)
    target.chmod(0o600)
    rows = target.read_bytes().count(b"\r\n") - 1  # values cannot hold line breaks (ids: GUID set; values: config)
    return [WrittenFile(str(target), rows, target.stat().st_size, sha256_of(target))]


def guard_entities(read, profile: "VendorProfile") -> dict[str, pd.DataFrame]:
    """For the change guard: the students of the file, by id. Only additions and deletions count -- a flag that
    flips is the feed doing its job (and is in the audit trail), so rows are not fingerprinted for updates."""
    frame = read(subgroup_config(profile).file_name)
    if frame.empty:
        return {}
    return {"students": pd.DataFrame({"key": frame["student_id"], "school": pd.NA,
                                      "fingerprint": pd.Series(0, index=frame.index, dtype="uint64")})}


def _report(paths: Any, name: str) -> Path:
    return paths.reports / name if (paths.reports / name).exists() else paths.build / name


def before_delivery(profile: "VendorProfile", paths: Any, run: Any) -> None:
    """Hold the delivery (raise :class:`DeliveryHeld`) when the columns changed and the run did not accept it (kind
    ``columns``), when another delivery was recorded since the build (the change file would be wrong: ``stale``), or
    when a student is no longer in the roster's newest delivery (``roster``). Nothing is sent then; the previous
    delivery stays where it is (pipeline.deliver records the hold in ``reports/held.json``)."""
    from rostering.delivery.records import last_good

    config = subgroup_config(profile)
    baseline = json.loads(_report(paths, BASELINE).read_text())
    current = last_good(profile.name)
    if (current.directory if current else None) != baseline["previous_record"]:
        raise DeliveryHeld(f"{profile.name} was delivered since this run compared with its previous "
                           "delivery; re-run so the change audit is against what was really sent last", "stale")
    columns = baseline["columns"]
    accepted = bool((getattr(run, "extra", None) or {}).get(ACCEPT_PARAM))
    if columns["changed"] and not accepted:
        raise DeliveryHeld(
            f"delivery held: the columns differ from the previous delivery ({_describe(columns)}). The receiver maps "
            f"columns by agreement: once {profile.title} has agreed to the new layout, trigger the DAG again with "
            f"{ACCEPT_PARAM}=true. The files are built and validated under {paths.root}", "columns")
    roster_ids, record = roster_student_ids(config.roster)
    ids = read_subgroup_file(paths.build / config.file_name)[ID_COLUMN]
    missing = _not_in_roster(strings(ids), roster_ids)
    if missing.size:
        raise DeliveryHeld(f"{missing.size} student_id(s) are not students in the newest {config.roster} "
                           f"delivery ({record.delivered_at}); re-run after the roster", "roster")


def _describe(columns: dict[str, Any]) -> str:
    parts = [f"added: {', '.join(columns['added']) or 'none'}", f"removed: {', '.join(columns['removed']) or 'none'}"]
    if columns["reordered"]:
        parts.append(f"order changed: now {', '.join(columns['current'])}")
    return "; ".join(parts)


def after_delivery(profile: "VendorProfile", paths: Any, run: Any, record: "DeliveryRecord") -> dict[str, Any]:
    """The delivery succeeded: keep its changes beside the kept payload and append them to the audit trail."""
    baseline = json.loads(_report(paths, BASELINE).read_text())
    audit = append_audit(_report(paths, CHANGES_FILE), vendor=profile.name, record=record)
    columns = baseline["columns"]
    if columns["changed"]:
        audit["column_change_accepted"] = _describe(columns)
    return {"audit": audit}
