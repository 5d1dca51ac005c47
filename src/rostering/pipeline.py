"""The stages every vendor run goes through: extract -> build -> validate -> package -> deliver -> summary.

Each stage reads and writes files under the run's directory and returns a small JSON-able dict (what Airflow keeps
in XCom). The Airflow tasks in ``rostering.orchestration`` are thin wrappers around these functions; the benchmark
and the tests call them directly.
"""
from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rostering.paths import work_dir
from rostering.run_options import RunOptions
from rostering.vendors.profile import VendorProfile

log = logging.getLogger(__name__)

# A format module implements: build(snapshot, profile, out_dir, *, schools, extra, reports_dir) -> dict of counts,
# validate(profile, build_dir) -> ValidationReport, payload(profile, build_dir, out_dir) -> list[WrittenFile].
# Optional: guard_entities(read, profile) -> entities for the change guard (rostering.delivery.guard);
# before_delivery(profile, paths, run) raises to hold a delivery; after_delivery(profile, paths, run,
# record) -> dict runs once the delivery is recorded (e.g. the subgroup audit trail).
FORMATS = {
    "oneroster": "rostering.oneroster.vendor",  # ST Math, Literably (docs/oneroster.md)
    "cers": "rostering.cers.vendor",  # CERS student groups (docs/cers.md)
    "subgroups": "rostering.subgroups.vendor",  # Derivita (docs/derivita.md)
}

# A delivery module implements: deliver_payload(delivery, files) -> dict, is_transient(exc) -> bool.
DELIVERIES = {
    "sftp": "rostering.delivery.sftp",  # temporary name, verify, posix-rename; files as one set
    "cers_api": "rostering.delivery.cers_api",  # CERS import API, polled until PROCESSED
}


def format_module(profile: VendorProfile):
    return importlib.import_module(FORMATS[profile.format])


def delivery_module(profile: VendorProfile):
    return importlib.import_module(DELIVERIES[profile.delivery.kind])


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @classmethod
    def for_run(cls, dag_id: str, run_id: str, base: Path | None = None) -> "RunPaths":
        safe_run = re.sub(r"[^0-9A-Za-z._-]", "_", run_id)
        return cls((base or work_dir()) / dag_id / safe_run)

    def make_private(self) -> None:
        """Children's records: the run folder (and its DAG and work folders) owner-only, whatever the files' modes."""
        for folder in (self.root.parent.parent, self.root.parent, self.root):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            folder.chmod(0o700)

    @property
    def snapshot(self) -> Path:
        return self.root / "snapshot"

    @property
    def build(self) -> Path:
        return self.root / "build"

    @property
    def payload(self) -> Path:
        return self.root / "payload"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def write_report(self, name: str, data: dict[str, Any]) -> Path:
        self.reports.mkdir(parents=True, exist_ok=True)
        path = self.reports / name
        path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
        path.chmod(0o600)
        return path


def extract(engine, paths: RunPaths, run: RunOptions) -> dict[str, Any]:
    from rostering.sis.extract import extract_snapshot

    paths.make_private()
    info = extract_snapshot(engine, paths.snapshot, as_of=run.as_of, school_year=run.school_year)
    if info.rejected:  # the snapshot is deleted after the run; the DBA's list of records to fix stays with the reports
        paths.reports.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths.snapshot / "rejected.csv", paths.reports / "rejected.csv")
    return {"snapshot": info.directory, "as_of_date": info.as_of_date, "school_year": info.school_year,
            "rows": info.row_counts, "rejected": info.rejected}


def build(profile: VendorProfile, paths: RunPaths, run: RunOptions) -> dict[str, Any]:
    from rostering.sis.extract import SnapshotInfo

    if paths.build.exists():  # a retried task starts from a clean folder: no stale file can slip into the package
        for stale in paths.build.iterdir():
            stale.unlink()
    result = format_module(profile).build(
        SnapshotInfo.load(paths.snapshot), profile, paths.build,
        schools=run.schools, extra=dict(run.extra), reports_dir=paths.reports,
    )
    paths.write_report("build.json", result)
    log.info("built %s: %s", profile.name, result["files"])
    return result


def validate(profile: VendorProfile, paths: RunPaths) -> dict[str, Any]:
    """Validate the built files; raises ``ValidationFailed`` (value-free report) when anything is wrong."""
    report = format_module(profile).validate(profile, paths.build)
    paths.write_report("validation.json", report.to_dict())
    log.info("validation of %s:\n%s", profile.name, report.summary())
    report.raise_if_failed()
    return {"ok": True, "files": len(report.files)}


def package(profile: VendorProfile, paths: RunPaths) -> dict[str, Any]:
    files = format_module(profile).payload(profile, paths.build, paths.payload)
    return {"files": [asdict(f) for f in files]}


def delivery_skip_reason(profile: VendorProfile, packaged: dict[str, Any], run: RunOptions, *,
                         now: dt.datetime | None = None) -> str | None:
    """Why a built, validated payload is not sent this time (the ``force`` param overrides), or None.

    ``delivery.max_per_day`` (ST Math: at most one upload a day, counted in the district's timezone) and
    ``delivery.skip_unchanged`` (the same bytes as the last good delivery are not sent again).
    """
    from rostering.delivery.records import list_deliveries

    if run.force:
        return None
    records = list_deliveries(profile.name)
    if not records:
        return None
    options = profile.delivery.options
    if options.get("skip_unchanged"):
        new = sorted((Path(f["path"]).name, f["sha256"]) for f in packaged["files"])
        last = sorted((f["name"], f["sha256"]) for f in records[-1].files)
        if new == last:
            return f"unchanged since the last delivery ({records[-1].delivered_at}); not sent again"
    limit = options.get("max_per_day")
    if limit:
        zone = ZoneInfo(profile.timezone)
        today = (now or dt.datetime.now(dt.timezone.utc)).astimezone(zone).date()
        sent_today = sum(dt.datetime.fromisoformat(r.delivered_at).astimezone(zone).date() == today for r in records)
        if sent_today >= limit:
            return f"already delivered {sent_today} time(s) today (limit {limit} a day)"
    return None


def change_guard(profile: VendorProfile, paths: RunPaths, run: RunOptions) -> dict[str, Any] | None:
    """Compare the build with the last good delivery (rostering.delivery.guard); raise DeliveryHeld when over limits.

    The diff (counts per entity and per school) is written to ``reports/guard.json`` either way. A run triggered
    with ``approve_changes_reason`` delivers despite the limits, and the reason is kept in the delivery record.
    """
    from rostering.delivery.guard import DeliveryHeld, compare, payload_reader
    from rostering.delivery.records import last_good

    fmt = format_module(profile)
    if not hasattr(fmt, "guard_entities"):
        return None
    last = last_good(profile.name)
    if last is None:
        report = {"held": False, "reasons": [], "baseline": None, "note": "first delivery: nothing to compare with"}
        paths.write_report("guard.json", report)
        return report
    old = fmt.guard_entities(payload_reader([last.path(f["name"]) for f in last.files]), profile)
    new = fmt.guard_entities(payload_reader(sorted(paths.build.glob("*.csv"))), profile)
    diff = compare(old, new, profile.delivery.options.get("guard"),
                   same_schools_only=getattr(fmt, "GUARD_SAME_SCHOOLS_ONLY", False))
    diff.baseline = f"delivery of {last.delivered_at} (run {last.run_id})"
    report = {**diff.to_dict(), "approved_by_reason": run.approval_reason or None}
    paths.write_report("guard.json", report)
    log.info("%s", diff.summary())
    if diff.held and not run.approval_reason:
        raise DeliveryHeld(diff)
    return report


def deliver(profile: VendorProfile, packaged: dict[str, Any], *, run_id: str, run: RunOptions,
            paths: RunPaths | None = None) -> dict[str, Any]:
    """Deliver the payload, then keep a copy and a record of exactly what was delivered (the new last good)."""
    from rostering.delivery.records import record_delivery

    fmt = format_module(profile)
    paths = paths or RunPaths.for_run(profile.dag_id, run_id)
    if hasattr(fmt, "before_delivery"):  # may hold the delivery (raises): nothing is sent
        fmt.before_delivery(profile, paths, run)
    change_guard(profile, paths, run)  # raises DeliveryHeld: nothing is sent
    files = [Path(f["path"]) for f in packaged["files"]]
    result = delivery_module(profile).deliver_payload(profile.delivery, files)
    record = record_delivery(
        vendor=profile.name,
        destination=result["destination"],
        run_id=run_id,
        as_of_date=run.as_of.isoformat(),
        files=files,
        checksums={Path(f["path"]).name: f["sha256"] for f in packaged["files"]},
        note=f"changes approved: {run.approval_reason}" if run.approval_reason else "",
    )
    result = {**result, "record": record.directory}
    if hasattr(fmt, "after_delivery"):  # only after a successful, recorded delivery
        result.update(fmt.after_delivery(profile, paths, run, record))
    return result
