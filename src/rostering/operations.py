"""Operator actions, run by the ``rostering_operations`` DAG (and callable from a shell):

- ``redeliver_last_good``: send the kept copy of a vendor's last good delivery again (e.g. the vendor lost it);
  a secret blanked in the kept copy (Literably's staff password) is put back from its connection first;
- ``discard_held``: a person decided a held run must not be delivered: its built files are removed, the decision kept;
- ``purge_expired``: delivered copies and run folders older than the retention (default 30 days) are removed — the
  newest delivery of each vendor is always kept, because it is the baseline of the change guard (for per-file
  receivers: every record holding the newest accepted copy of a file) — as are unconfirmed ("sending") records older
  than the retention, kept copies left without a record by a crash, and subgroup audit files older than the audit
  retention (default 400 days);
- ``cleanup_run``: what every run does at its end: its links to the night's SIS snapshot go (the snapshot store keeps
  the snapshot itself until ``retention_days`` in config/sis.yaml, then the ``sis_snapshot`` DAG prunes it).

Re-delivery and discard are logged in the operators' decisions log before they act (rostering.delivery.decisions).
"""
from __future__ import annotations

import datetime as dt
import logging
import shutil
from pathlib import Path
from typing import Any

from rostering.csvio import sha256_of
from rostering.delivery.decisions import read_decisions, record_decision
from rostering.delivery.records import (
    ACCEPTED, DELIVERED, EMPTY_QUOTED, PRIVATE_FILE, Baseline, begin_delivery, last_good, last_good_baseline,
    list_deliveries, quoted, rewrite_column, unrecorded_folders, write_atomically,
)
from rostering.paths import state_dir, work_dir
from rostering.delivery import DeliveryRun
from rostering.pipeline import RunPaths, send_with_record
from rostering.vendors.profile import VendorProfile

log = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS = 30
# The subgroup audit answers "when did this flag change in what we sent?" across a school year and the next
# question about it, so it is kept longer than payloads -- but not forever: it is children's data too.
DEFAULT_AUDIT_RETENTION_DAYS = 400
OPERATIONS_DAG_ID = "rostering_operations"
# A kept-copy folder without its record.json is a delivery that crashed while keeping the copy (nothing was sent);
# the grace keeps purge off a folder whose record is being written right now.
UNRECORDED_GRACE = dt.timedelta(hours=1)


def redeliver_last_good(profile: VendorProfile, *, reason: str, run_id: str) -> dict[str, Any]:
    """Send the last good delivery again, byte for byte, and record it (two phases, like every delivery).

    Per-file receivers (CERS) get the newest accepted copy of each file. Blanked secrets are put back from their
    connection and the re-made file must match the recorded sha256: if the secret changed since, nothing is sent
    (a re-delivery would not be what was sent then): run the vendor's DAG with ``force`` for a fresh build instead.
    """
    if not reason.strip():
        raise ValueError("a reason is required to re-deliver")
    per_file = not profile.replaces_everything
    last = last_good_baseline(profile.name, per_file=per_file)
    if last is None:
        raise ValueError(f"{profile.name} has no recorded delivery to re-send")
    paths = RunPaths.for_run(OPERATIONS_DAG_ID, run_id)
    paths.make_private()
    try:
        files = remade_payload(profile, last, paths.payload)
        checksums = {f["name"]: f["sha256"] for f in last.files}
        record_decision(action="redeliver_last_good", vendor=profile.name, run_id=run_id, reason=reason,
                        details={"redelivers": last.description, "files": sorted(checksums)})
        record = begin_delivery(
            vendor=profile.name, destination=f"{profile.delivery.kind}://{profile.delivery.conn_id}", run_id=run_id,
            as_of_date=last.as_of_date, files=files, checksums=checksums, per_file=per_file,
            note=f"re-delivery of the {last.description}: {reason}",
        )
        # this re-delivery's own run: its ledger (CERS) in the operations run's reports, batch ids keyed by it --
        # a new re-delivery uploads again, a retry of this task resumes
        result, record = send_with_record(profile, files, record, run=redelivery_run(paths))
    finally:
        shutil.rmtree(paths.payload, ignore_errors=True)  # the re-made files may hold a secret
    log.info("re-delivered %s's %s to %s", profile.name, last.description, result["destination"])
    return {**result, "record": record.directory, "redelivered": last.delivered_at}


def redelivery_run(paths: RunPaths) -> DeliveryRun:
    """A re-delivery's run: the ``rostering_operations`` run's own reports folder (never the kept copies'), keyed by
    the DAG and run, so its batch ids differ from any vendor run's of the same name."""
    return DeliveryRun(reports=paths.reports, key=f"{OPERATIONS_DAG_ID}/{paths.root.name}")


def remade_payload(profile: VendorProfile, last: Baseline, folder: Path) -> list[Path]:
    """The files of ``last`` in ``folder`` as they were delivered: blanked secret columns filled in again from the
    profile's connection, and checked against the recorded sha256. Raises ValueError (nothing sent) otherwise."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = []
    for entry in last.files:
        name, target = entry["name"], folder / entry["name"]
        columns = last.redacted.get(name, [])
        if not columns:
            shutil.copyfile(last.path(name), target)
            target.chmod(PRIVATE_FILE)
            files.append(target)
            continue
        secret, source = _staff_password(profile, name, columns)
        data = last.path(name).read_bytes()
        for column in columns:
            data, _ = rewrite_column(data, column, lambda value: quoted(secret) if value == EMPTY_QUOTED else value)
        write_atomically(target, [data])
        if sha256_of(target) != entry["sha256"]:
            target.unlink()
            raise ValueError(
                f"{name} re-made with the staff password in {source} does not match the sha256 recorded for the "
                f"{last.description}: the staff password has changed since (rotated). Nothing was sent: a "
                "re-delivery must be byte for byte what was sent then. To send the roster with the current "
                f"password, trigger {profile.dag_id} with force=true (a fresh build).")
        files.append(target)
    return files


def _staff_password(profile: VendorProfile, name: str, columns: list[str]) -> tuple[str, str]:
    """The secret blanked in a kept copy, and where it came from: the profile's staff_password connection."""
    from rostering.oneroster.vendor import _password_from_connection

    policy = profile.options.get("staff_password") or {}
    if columns != ["password"] or policy.get("mode") != "connection":
        raise ValueError(
            f"the kept copy of {name} has its {', '.join(columns)} column blanked and {profile.name}'s profile does "
            "not say which connection holds it (oneroster.staff_password mode: connection), so it cannot be put "
            f"back. Nothing was sent. Trigger {profile.dag_id} with force=true to deliver a fresh build instead.")
    return _password_from_connection(policy["conn_id"]), f"connection {policy['conn_id']!r}"


def discard_held(profile: VendorProfile, *, run_id: str, reason: str) -> dict[str, Any]:
    """A person decided a held run must not be delivered: any hold (the change guard's, a format's own such as
    Derivita's column change), as its ``reports/held.json`` records it (rostering.delivery.holds). The decision is
    logged, the built files removed and ``reports/discarded.json`` written; an approval naming the run is refused
    from then on. A run that was not held, or is discarded already, is refused (ValueError, nothing changes)."""
    from rostering.delivery.holds import read_hold

    if not reason.strip():
        raise ValueError("a reason is required to discard a held run")
    paths = RunPaths.for_run(profile.dag_id, run_id)
    hold = read_hold(paths)
    if hold is None:
        raise ValueError(f"run {run_id!r} of {profile.dag_id} is not a held delivery (no reports/held.json under "
                         f"{paths.root}): only a run whose deliver task was held can be discarded")
    if (paths.reports / "discarded.json").exists():
        raise ValueError(f"run {run_id!r} of {profile.dag_id} was already discarded")
    # the run folder goes with the retention: the decision is logged first, where it outlives it
    record_decision(action="discard_held", vendor=profile.name, run_id=run_id, reason=reason,
                    details={"dag_id": profile.dag_id, "kind": hold.get("kind")})
    for folder in (paths.snapshot, paths.build, paths.payload):
        shutil.rmtree(folder, ignore_errors=True)
    decision = {"discarded": True, "kind": hold.get("kind"), "reason": reason,
                "at": dt.datetime.now(dt.timezone.utc).isoformat()}
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
        purged["deliveries"] += _purge_deliveries(vendor, cutoff=cutoff, now=now, base=base)
    for run_folder in (runs_base or work_dir()).glob("*/*"):
        if run_folder.is_dir() and dt.datetime.fromtimestamp(run_folder.stat().st_mtime, dt.timezone.utc) < cutoff:
            shutil.rmtree(run_folder)
            purged["runs"] += 1
    log.info("purged %(deliveries)d delivered copies, %(runs)d run folders, %(audit_files)d audit files", purged)
    return purged


def _purge_deliveries(vendor: str, *, cutoff: dt.datetime, now: dt.datetime, base: Path | None) -> int:
    """Expired records of ``vendor`` (any outcome) and kept copies without a record; never the baseline."""
    records = list_deliveries(vendor, base, include_unfinished=True)
    accepted = [r for r in records if r.outcome in ACCEPTED]
    per_file = bool(accepted) and accepted[-1].per_file  # as the newest accepted delivery was recorded
    baseline = last_good_baseline(vendor, per_file=per_file, base=base)
    keep = {r.directory for r in baseline.records} if baseline else set()
    keep |= {r.directory for r in (last_good(vendor, base), accepted[-1] if accepted else None) if r}
    removed = 0
    for record in records:
        if record.directory not in keep and dt.datetime.fromisoformat(record.began) < cutoff:
            shutil.rmtree(record.directory)
            removed += 1
    for folder in unrecorded_folders(vendor, base):  # a crash while keeping the copy: nothing was sent with it
        age = now - dt.datetime.fromtimestamp(folder.stat().st_mtime, dt.timezone.utc)
        grace = UNRECORDED_GRACE if not (folder / "record.json").exists() else now - cutoff  # unreadable: retention
        if age > grace:
            shutil.rmtree(folder)
            removed += 1
    return removed


def describe_deliveries(vendor: str | None = None, on: str | None = None, base: Path | None = None) -> list[dict]:
    """What did we send, and when? Records (counts and checksums, never contents), optionally for one day.

    Unfinished records are listed too: ``outcome`` sending (written before sending, never confirmed: it may or may
    not have arrived) or partial (per-file receivers: ``unconfirmed`` names the files that were not accepted).
    """
    root = (base or state_dir()) / "deliveries"
    vendors = [vendor] if vendor else sorted(p.name for p in root.glob("*") if p.is_dir())
    rows = []
    for name in vendors:
        for record in list_deliveries(name, base, include_unfinished=True):
            when = record.delivered_at or record.began
            if on and not when.startswith(on) and record.as_of_date != on:
                continue
            rows.append({"vendor": record.vendor, "delivered_at": record.delivered_at, "started_at": record.began,
                         "as_of": record.as_of_date, "destination": record.destination, "run_id": record.run_id,
                         "note": record.note, "outcome": record.outcome, "unconfirmed": list(record.pending),
                         "files": [f"{f['name']} ({f['bytes']:,} B, sha256 {f['sha256'][:12]})"
                                   + (" NOT CONFIRMED" if f["name"] in record.pending else "")
                                   + (" [kept without " + ", ".join(record.redacted[f["name"]]) + "]"
                                      if f["name"] in record.redacted else "") for f in record.files]})
    return rows


def main(argv: list[str] | None = None) -> int:
    """``python -m rostering.operations deliveries [--vendor V] [--on YYYY-MM-DD]`` | ``decisions [--vendor V]``"""
    import argparse

    parser = argparse.ArgumentParser(description="Query the delivery records or the operators' decisions log.")
    parser.add_argument("command", choices=["deliveries", "decisions"])
    parser.add_argument("--vendor")
    parser.add_argument("--on", help="a delivery date or as-of date, YYYY-MM-DD")
    args = parser.parse_args(argv)
    if args.command == "decisions":
        for entry in read_decisions(vendor=args.vendor):
            if not args.on or entry["at"].startswith(args.on):
                print(f"{entry['at']}  {entry['vendor']:<10} {entry['action']:<20} run {entry['run_id']}: "
                      f"{entry['reason']}")
        return 0
    for row in describe_deliveries(args.vendor, args.on):
        state = "" if row["outcome"] == DELIVERED else (
            "  [UNCONFIRMED: written before sending, never confirmed; it may or may not have arrived]"
            if row["outcome"] == "sending" else "  [PARTIAL: only some files accepted]")
        print(f"{row['delivered_at'] or row['started_at']}  {row['vendor']:<10} as of {row['as_of']}  -> "
              f"{row['destination']}  run {row['run_id']}{'  [' + row['note'] + ']' if row['note'] else ''}{state}")
        for line in row["files"]:
            print(f"    {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

