"""Make the night's SIS snapshot from any source: the Parquet tables every vendor build reads.

- ``sql_model``: the snapshot SQL runs in the district's model database (rostering.sis.extract).
- API sources (PowerSchool, Aeries): the adapter reads the school year into the model's tables; they are staged in a
  private SQLite file and the *same* snapshot SQL runs there, so "active on the as-of date" has one definition for
  every source (the three-source equality test holds it to that).

Then the input checks (rostering.sis.checks) run, records rejected by the adapter and by the checks are reported
together in ``rejected.csv`` (resource or file, row, SIS key, column, rule -- never values), and the snapshot is
refused when any one table or resource lost more than ``max_rejected_share`` of its records: a broken mapping or a
half-migrated SIS must not reach the vendors as mass deletions.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from rostering.sis.extract import REJECTED, SNAPSHOT_META, SnapshotInfo, extract_snapshot
from rostering.sis.sources.base import SourceError, SourceRead

log = logging.getLogger(__name__)

STAGING = "staging.sqlite"  # an API source's tables on their way to the snapshot; deleted once it is made
SOURCE_STATS = "source_stats.json"  # API sources: per resource requests, records, bytes, seconds; the pull's seconds


class SnapshotRejected(SourceError):
    """The input checks rejected more than the configured share of a table: no vendor may run on this snapshot."""


def take_snapshot(source: Any, out_dir: Path, *, as_of: dt.date, school_year: int,
                  max_rejected_share: float) -> SnapshotInfo:
    """Write the snapshot of ``source`` as of ``as_of`` into ``out_dir`` (Parquet per table, snapshot.json,
    rejected.csv). Raises ``SourceError`` (the source could not be read completely) or ``SnapshotRejected``; then
    ``out_dir`` is incomplete and must not be published."""
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if source.name == "sql_model":
        info = extract_snapshot(source.engine, out_dir, as_of=as_of, school_year=school_year)
        totals: dict[str, float] = {}
    else:
        read = source.read(as_of=as_of, school_year=school_year)
        info = snapshot_from_tables(read, out_dir, as_of=as_of, school_year=school_year)
        totals = {name: float(stats.get("records", 0)) for name, stats in read.stats.items()}
    info = dataclasses.replace(info, source=source.name)
    (out_dir / SNAPSHOT_META).write_text(json.dumps(dataclasses.asdict(info), indent=2, sort_keys=True))
    refuse_if_too_many_rejected(info, totals, max_rejected_share)
    return info


def snapshot_from_tables(read: SourceRead, out_dir: Path, *, as_of: dt.date, school_year: int) -> SnapshotInfo:
    """Stage an adapter's model tables in SQLite (``read.tables`` is emptied on the way), run the snapshot SQL
    there, and merge the adapter's rejections (listed first) with the input checks' in ``rejected.csv``."""
    from rostering.csvio import write_csv
    from rostering.sis.checks import REPORT_COLUMNS
    from rostering.sis.load import stage_tables

    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = out_dir / STAGING
    staging.unlink(missing_ok=True)
    engine = None
    try:
        staging.touch(mode=0o600)
        engine = stage_tables(read.tables, staging)  # consumes read.tables: each frame freed once written
        info = extract_snapshot(engine, out_dir, as_of=as_of, school_year=school_year)
    finally:
        if engine is not None:
            engine.dispose()
        staging.unlink(missing_ok=True)
    if read.stats:
        (out_dir / SOURCE_STATS).write_text(json.dumps({"resources": read.stats, "pull_seconds": read.pull_seconds},
                                                       indent=2, sort_keys=True))
    if not len(read.rejected):
        return info
    checks_report = out_dir / REJECTED
    parts = [read.rejected.astype({"row": "int64"})]
    if checks_report.exists():
        parts.append(pd.read_csv(checks_report, dtype="string", keep_default_na=False).astype({"row": "int64"}))
    rejected = pd.concat(parts, ignore_index=True)
    write_csv(rejected.astype("string"), checks_report, REPORT_COLUMNS)
    by_rule = rejected["rule"].value_counts().sort_index()
    log.warning("snapshot: %d record(s) rejected by the %s source and the input checks (see %s)",
                len(rejected), read.__class__.__name__, REJECTED)
    return dataclasses.replace(info, rejected={str(rule): int(n) for rule, n in by_rule.items()})


def rejected_shares(info: SnapshotInfo, source_totals: dict[str, float]) -> dict[str, tuple[int, int]]:
    """file or resource -> (records rejected, records read) for everything that lost records."""
    report = Path(info.directory) / REJECTED
    if not report.exists():
        return {}
    rejected = pd.read_csv(report, dtype="string", keep_default_na=False, usecols=["file", "row"])
    lost = rejected.drop_duplicates().groupby("file").size()
    shares = {}
    for name, count in lost.items():
        name = str(name)
        if name.endswith(".parquet"):  # the input checks: kept rows are in the snapshot
            total = info.row_counts.get(name.removesuffix(".parquet"), 0) + int(count)
        else:  # an adapter's resource: the records it read (a resource it did not count is treated as all lost)
            total = int(source_totals.get(name, count))
        shares[name] = (int(count), max(total, int(count)))
    return shares


def refuse_if_too_many_rejected(info: SnapshotInfo, source_totals: dict[str, float], limit: float) -> None:
    over = {name: (n, total) for name, (n, total) in rejected_shares(info, source_totals).items()
            if total and n / total > limit}
    if over:
        detail = "; ".join(f"{name}: {n:,} of {total:,} ({n / total:.1%})" for name, (n, total) in sorted(over.items()))
        raise SnapshotRejected(
            f"snapshot refused: the input checks rejected more than {limit:.1%} of {detail} (max_rejected_share in "
            f"config/sis.yaml). No vendor runs on it. The records to fix, by rule, are in {REJECTED} "
            f"({Path(info.directory) / REJECTED})."
        )
