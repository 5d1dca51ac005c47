"""Operator actions, run by the ``rostering_operations`` DAG (and callable from a shell):

- ``redeliver_last_good``: send the kept copy of a vendor's last good delivery again (e.g. the vendor lost it);
- ``discard_held``: a person decided a held run must not be delivered: its built files are removed, the decision kept;
- ``purge_expired``: delivered copies and run folders older than the retention (default 30 days) are removed — the
  newest delivery of each vendor is always kept, because it is the baseline of the change guard — and subgroup audit
  files older than the audit retention (default 400 days);
- ``cleanup_run``: what every run does at its end: its links to the night's SIS snapshot go (the snapshot store keeps
  the snapshot itself until ``retention_days`` in config/sis.yaml, then the ``sis_snapshot`` DAG prunes it).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from rostering.delivery.records import last_good, list_deliveries, record_delivery
from rostering.paths import state_dir, work_dir
from rostering.pipeline import RunPaths, delivery_module
from rostering.vendors.profile import VendorProfile

log = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS = 30
# The subgroup audit answers "when did this flag change in what we sent?" across a school year and the next
# question about it, so it is kept longer than payloads -- but not forever: it is children's data too.
DEFAULT_AUDIT_RETENTION_DAYS = 400


def redeliver_last_good(profile: VendorProfile, *, reason: str, run_id: str) -> dict[str, Any]:
    if not reason.strip():
        raise ValueError("a reason is required to re-deliver")
    last = last_good(profile.name)
    if last is None:
        raise ValueError(f"{profile.name} has no recorded delivery to re-send")
    files = [last.path(f["name"]) for f in last.files]
    result = delivery_module(profile).deliver_payload(profile.delivery, files)
    record = record_delivery(
        vendor=profile.name, destination=result["destination"], run_id=run_id, as_of_date=last.as_of_date,
        files=files, checksums={f["name"]: f["sha256"] for f in last.files},
        note=f"re-delivery of the delivery of {last.delivered_at} (run {last.run_id}): {reason}",
    )
    log.info("re-delivered %s's delivery of %s to %s", profile.name, last.delivered_at, result["destination"])
    return {**result, "record": record.directory, "redelivered": last.delivered_at}


def discard_held(profile: VendorProfile, *, run_id: str, reason: str) -> dict[str, Any]:
    if not reason.strip():
        raise ValueError("a reason is required to discard a held run")
    paths = RunPaths.for_run(profile.dag_id, run_id)
    guard = paths.reports / "guard.json"
    if not guard.exists() or not json.loads(guard.read_text()).get("held"):
        raise ValueError(f"run {run_id!r} of {profile.dag_id} is not a held delivery")
    for folder in (paths.snapshot, paths.build, paths.payload):
        shutil.rmtree(folder, ignore_errors=True)
    decision = {"discarded": True, "reason": reason, "at": dt.datetime.now(dt.timezone.utc).isoformat()}
    paths.write_report("discarded.json", decision)
    return decision


def cleanup_run(paths: RunPaths, *, delivered: bool) -> list[str]:
    """End of every run: remove the snapshot; remove built files too once a copy of the delivery is recorded.

    Held, dry-run and failed runs keep their built files for review (purged with the retention).
    """
    removed = [paths.snapshot]
    if delivered:
        removed += [paths.build, paths.payload]
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    return [folder.name for folder in removed]


def purge_expired(
    vendors: list[str], *, retention_days: int = DEFAULT_RETENTION_DAYS, now: dt.datetime | None = None,
    base: Path | None = None, runs_base: Path | None = None,
    audit_retention_days: int = DEFAULT_AUDIT_RETENTION_DAYS,
) -> dict[str, int]:
    now = now or dt.datetime.now(dt.timezone.utc)
    cutoff = now - dt.timedelta(days=retention_days)
    purged = {"deliveries": 0, "runs": 0, "audit_files": 0}
    audit_cutoff = now - dt.timedelta(days=audit_retention_days)
    for audit_file in ((base or state_dir()) / "audit").glob("*/*.parquet"):
        stamp = dt.datetime.strptime(audit_file.name.split("_", 1)[0], "%Y-%m-%dT%H%M%S%fZ")  # the delivery's time
        if stamp.replace(tzinfo=dt.timezone.utc) < audit_cutoff:
            audit_file.unlink()
            purged["audit_files"] += 1
    for vendor in vendors:
        records = list_deliveries(vendor, base)
        for record in records[:-1]:  # the newest is the guard's baseline: kept whatever its age
            if dt.datetime.fromisoformat(record.delivered_at) < cutoff:
                shutil.rmtree(record.directory)
                purged["deliveries"] += 1
    for run_folder in (runs_base or work_dir()).glob("*/*"):
        if run_folder.is_dir() and dt.datetime.fromtimestamp(run_folder.stat().st_mtime, dt.timezone.utc) < cutoff:
            shutil.rmtree(run_folder)
            purged["runs"] += 1
    log.info("purged %(deliveries)d delivered copies, %(runs)d run folders, %(audit_files)d audit files", purged)
    return purged


def describe_deliveries(vendor: str | None = None, on: str | None = None, base: Path | None = None) -> list[dict]:
    """What did we send, and when? Records (counts and checksums, never contents), optionally for one day."""
    root = (base or state_dir()) / "deliveries"
    vendors = [vendor] if vendor else sorted(p.name for p in root.glob("*") if p.is_dir())
    rows = []
    for name in vendors:
        for record in list_deliveries(name, base):
            if on and not record.delivered_at.startswith(on) and record.as_of_date != on:
                continue
            rows.append({"vendor": record.vendor, "delivered_at": record.delivered_at, "as_of": record.as_of_date,
                         "destination": record.destination, "run_id": record.run_id, "note": record.note,
                         "files": [f"{f['name']} ({f['bytes']:,} B, sha256 {f['sha256'][:12]})" for f in record.files]})
    return rows


def main(argv: list[str] | None = None) -> int:
    """``python -m rostering.operations deliveries [--vendor V] [--on YYYY-MM-DD]``"""
    import argparse

    parser = argparse.ArgumentParser(description="Query the delivery records.")
    parser.add_argument("command", choices=["deliveries"])
    parser.add_argument("--vendor")
    parser.add_argument("--on", help="a delivery date or as-of date, YYYY-MM-DD")
    args = parser.parse_args(argv)
    for row in describe_deliveries(args.vendor, args.on):
        print(f"{row['delivered_at']}  {row['vendor']:<10} as of {row['as_of']}  -> {row['destination']}"
              f"  run {row['run_id']}{'  [' + row['note'] + ']' if row['note'] else ''}")
        for line in row["files"]:
            print(f"    {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

