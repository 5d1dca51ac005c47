"""The stages every vendor run goes through: extract -> build -> validate -> package -> deliver -> summary.

Each stage reads and writes files under the run's directory and returns a small JSON-able dict (what Airflow keeps
in XCom). The Airflow tasks in ``rostering.orchestration`` are thin wrappers around these functions; the benchmark
and the tests call them directly.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import json
import logging
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rostering.delivery import DeliveryRun
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

# A delivery module implements: deliver_payload(delivery, files) -> dict, is_transient(exc) -> bool. Those whose
# receiver confirms later than the upload (rostering.delivery.CONFIRMED_LATER: CERS processes each import on its own
# time) also take deliver_payload(..., wait=False, run=DeliveryRun), which returns once everything is uploaded (``run``:
# the delivering run's reports folder and key, where the transport keeps its state -- never guessed from the files'
# folder, as kept copies are re-sent from elsewhere), and implement
# confirm(delivery, files, *, on_accepted, run) -> dict | None (one look: None while the receiver is still working) and
# confirm_timing(delivery) -> (poke interval s, time-out s), for the vendor DAG's confirm_delivery sensor.
DELIVERIES = {
    "sftp": "rostering.delivery.sftp",  # temporary name, verify, posix-rename; files as one set
    "cers_api": "rostering.delivery.cers_api",  # CERS import API, polled until PROCESSED
}


def format_module(profile: VendorProfile):
    return importlib.import_module(FORMATS[profile.format])


def delivery_module(profile: VendorProfile):
    return importlib.import_module(DELIVERIES[profile.delivery.kind])


def confirms_later(profile: VendorProfile) -> bool:
    """The receiver confirms the delivery after the upload: ``confirm_delivery`` finishes its record."""
    from rostering.delivery import CONFIRMED_LATER

    return profile.delivery.kind in CONFIRMED_LATER


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


def change_guard(profile: VendorProfile, paths: RunPaths, run: RunOptions, *,
                 now: dt.datetime | None = None, preview: bool = False) -> dict[str, Any] | None:
    """Compare the build with the last good delivery, and with the oldest of the rolling window
    (rostering.delivery.guard); raise DeliveryHeld when over limits.

    The diff (counts per entity and per school) is written to ``reports/guard.json`` either way, with the hold's
    fingerprint: the built files and the delivery they were compared with. An approval (``approve_changes_reason``
    with ``approve_held_run_id``) releases only a run with the held run's fingerprint: if the data or the last
    delivery changed since, the run is held again and the approval is not used. ``preview`` (a dry run): the same
    comparison, reported as "would be held", never raised.
    """
    from rostering.delivery.guard import compare, held_by, payload_reader
    from rostering.delivery.records import last_good_baseline

    fmt = format_module(profile)
    if not hasattr(fmt, "guard_entities"):
        return None
    # per-file receivers (CERS) hold the newest accepted copy of each file, not only the last whole delivery; a
    # retry finishing this run's partial delivery is judged against what was held before the run
    last = last_good_baseline(profile.name, per_file=not profile.replaces_everything, retrying_run=paths.root.name)
    if last is None:
        report = {"held": False, "reasons": [], "baseline": None, "note": "first delivery: nothing to compare with"}
        paths.write_report("guard.json", report)
        return report
    limits = profile.delivery.options.get("guard")
    same_schools_only = getattr(fmt, "GUARD_SAME_SCHOOLS_ONLY", False)

    def entities_of(record) -> dict:
        return fmt.guard_entities(payload_reader([record.path(f["name"]) for f in record.files]), profile)

    new = fmt.guard_entities(payload_reader(sorted(paths.build.glob("*.csv"))), profile)
    diff = compare(entities_of(last), new, limits, same_schools_only=same_schools_only)
    diff.baseline = last.description
    report: dict[str, Any] = {}
    oldest = window_baseline(profile.name, days=float((limits or {}).get("window_days", 7)), now=now)
    if oldest is not None and oldest.directory != last.directory:
        window = compare(entities_of(oldest), new, limits, same_schools_only=same_schools_only,
                         window=f"the delivery of {oldest.delivered_at}")
        window.baseline = f"delivery of {oldest.delivered_at} (run {oldest.run_id})"
        diff.reasons += window.reasons
        report["window"] = window.to_dict()
    fingerprint = hold_fingerprint(paths.build, last)
    report.update(diff.to_dict(), fingerprint=fingerprint, approved_by_reason=None, approved_held_run=None)
    if diff.held and run.approval_reason:
        refused = approval_refused(profile, run, fingerprint)
        if refused:
            diff.reasons.append(f"approval not applied: {refused}")
            report.update(diff.to_dict())
        else:
            report.update(approved_by_reason=run.approval_reason, approved_held_run=run.approved_run_id)
    report["preview"] = preview
    paths.write_report("guard.json", report)
    log.info("%s%s", "preview, nothing is sent either way: " if preview else "", diff.summary())
    if diff.held and not report["approved_by_reason"] and not preview:
        raise held_by(diff)
    return report


def hold_fingerprint(build_dir: Path, baseline) -> str:
    """What an approval is bound to: the built files' bytes and the delivery they were compared with."""
    from rostering.csvio import sha256_of

    digest = hashlib.sha256(f"baseline {baseline.identity}\n".encode())
    for path in sorted(build_dir.glob("*.csv")):
        digest.update(f"{path.name} {sha256_of(path)}\n".encode())
    return digest.hexdigest()


def approval_refused(profile: VendorProfile, run: RunOptions, fingerprint: str) -> str | None:
    """Why this run's approval does not release it (None: it does). It must name a held, not discarded run of
    this DAG whose fingerprint is this run's: an approval is for the change a person looked at, not a blank cheque."""
    if not run.approved_run_id:
        return "approve_changes_reason needs approve_held_run_id, the run id of the held run it releases"
    held = RunPaths.for_run(profile.dag_id, run.approved_run_id)
    guard = held.reports / "guard.json"
    if not guard.exists() or not json.loads(guard.read_text()).get("held"):
        return f"run {run.approved_run_id} of {profile.dag_id} is not a held delivery"
    if (held.reports / "discarded.json").exists():
        return f"run {run.approved_run_id} was discarded"
    if json.loads(guard.read_text()).get("fingerprint") != fingerprint:
        return (f"the data changed since run {run.approved_run_id} was held (other files, or another delivery "
                "since): review this run's report and approve this run instead")
    return None


def window_baseline(vendor: str, *, days: float, now: dt.datetime | None = None):
    """The oldest delivery of the last ``days`` days, but none before the newest approved one (a change a person
    approved is the new normal): the baseline that catches losses compounding night after night. None: no history."""
    from rostering.delivery.records import list_deliveries

    now = now or dt.datetime.now(dt.timezone.utc)
    records = [r for r in list_deliveries(vendor) if getattr(r, "outcome", "delivered") == "delivered"]
    approved = [i for i, r in enumerate(records) if r.note.startswith("changes approved")]
    records = records[approved[-1]:] if approved else records
    recent = [r for r in records if dt.datetime.fromisoformat(r.delivered_at) >= now - dt.timedelta(days=days)]
    return recent[0] if recent else None


def deliver(profile: VendorProfile, packaged: dict[str, Any], *, run_id: str, run: RunOptions,
            paths: RunPaths | None = None) -> dict[str, Any]:
    """Deliver the payload with its record written first, so nothing leaves unrecorded (rostering.delivery.records).

    Before sending, the kept copy and a ``sending`` record are written (if that fails, nothing is sent); once the
    transport accepted the files the record becomes ``delivered``, the new last good. A receiver that replaces per
    file (CERS) has each file recorded as it is accepted. A retry of this run finishes its own record; if an earlier
    attempt delivered these very files already, they are not sent again (``force`` sends them again).

    A hold -- the format's ``before_delivery`` or the change guard raising DeliveryHeld, of any kind -- sends
    nothing: the run's one hold record ``reports/held.json`` is written here (rostering.delivery.holds.record_hold)
    and the exception propagates (the deliver task fails it without retry).

    A receiver that confirms later (``confirms_later``: CERS) is only sent the files here: the record is finished,
    and ``after_delivery`` runs, in ``confirm_delivery`` once the receiver has processed them.
    """
    from rostering.delivery.holds import DeliveryHeld, clear_hold, record_hold
    from rostering.delivery.records import DELIVERED, begin_delivery, own_delivery

    fmt = format_module(profile)
    paths = paths or RunPaths.for_run(profile.dag_id, run_id)
    files = [Path(f["path"]) for f in packaged["files"]]
    checksums = {Path(f["path"]).name: f["sha256"] for f in packaged["files"]}
    own = own_delivery(profile.name, run_id=run_id, checksums=checksums)  # left by an earlier attempt of this task
    if own is not None and own.outcome == DELIVERED and not run.force:
        # e.g. after_delivery failed once the record was confirmed: the receiver has these bytes from this run
        log.info("%s: run %s delivered these files at %s already; not sent again", profile.name, run_id,
                 own.delivered_at)
        result = {"destination": own.destination, "already_delivered": own.delivered_at}
        if confirms_later(profile):
            return {**result, "record": own.directory}
        return _after_recorded(fmt, profile, paths, run, own, result)
    try:
        if hasattr(fmt, "before_delivery"):  # may hold the delivery (raises DeliveryHeld): nothing is sent
            fmt.before_delivery(profile, paths, run)
        guard = change_guard(profile, paths, run)  # raises DeliveryHeld: nothing is sent
    except DeliveryHeld as held:  # any kind, any format: the one record of the hold (reports/held.json)
        record_hold(paths, held, run_id)
        raise
    clear_hold(paths)  # an earlier attempt of this run may have been held
    if guard and guard.get("approved_by_reason"):  # a person's decision: kept beyond the run folder's retention
        from rostering.delivery.decisions import record_decision

        record_decision(action="approve_changes", vendor=profile.name, run_id=run_id, reason=run.approval_reason,
                        details={"held_run_id": run.approved_run_id, "fingerprint": guard["fingerprint"]})
    if own is None or own.outcome == DELIVERED:  # else: an earlier attempt's unconfirmed record, finished here
        own = begin_delivery(
            vendor=profile.name,
            destination=f"{profile.delivery.kind}://{profile.delivery.conn_id}",  # the transport's, once sent
            run_id=run_id,
            as_of_date=run.as_of.isoformat(),
            files=files,
            checksums=checksums,
            note=run.approval_note(approved=bool(guard and guard.get("approved_by_reason"))),
            per_file=not profile.replaces_everything,
        )
    if confirms_later(profile):  # uploaded; confirm_delivery waits for the receiver and finishes the record
        result, record = send_with_record(profile, files, own, wait=False, run=vendor_run(paths))
        return {**result, "record": record.directory}
    result, record = send_with_record(profile, files, own, run=vendor_run(paths))
    return _after_recorded(fmt, profile, paths, run, record, result)


def confirm_delivery(profile: VendorProfile, packaged: dict[str, Any], *, run_id: str, run: RunOptions,
                     paths: RunPaths | None = None) -> dict[str, Any] | None:
    """One look at whether the receiver has processed what ``deliver`` sent (``confirms_later`` transports: a poke
    of the vendor DAG's ``confirm_delivery`` sensor). None while it is still working; each file it has processed is
    marked accepted in the run's delivery record at once. Once all are, the record is finished (the new last good)
    and ``after_delivery`` runs; the result is what ``deliver`` returns for other transports. A failed import
    raises (the transport's error, e.g. CersImportFailed), after every other file is done and recorded."""
    from rostering.delivery.records import DELIVERED, finish_delivery, mark_accepted, own_delivery

    fmt = format_module(profile)
    paths = paths or RunPaths.for_run(profile.dag_id, run_id)
    files = [Path(f["path"]) for f in packaged["files"]]
    checksums = {Path(f["path"]).name: f["sha256"] for f in packaged["files"]}
    own = own_delivery(profile.name, run_id=run_id, checksums=checksums)
    if own is None:
        raise RuntimeError(f"{profile.name}: run {run_id} has no delivery record of these files, so nothing was "
                           "sent to confirm; clear the run's deliver task")
    current = [own]

    def accepted(outcome: dict[str, Any]) -> None:
        current[0] = mark_accepted(current[0], names=[outcome["file"]])

    result = delivery_module(profile).confirm(profile.delivery, files, on_accepted=accepted, run=vendor_run(paths))
    if result is None:
        return None
    record = current[0] if own.outcome == DELIVERED else finish_delivery(current[0],
                                                                        destination=result["destination"])
    return _after_recorded(fmt, profile, paths, run, record, result)


def _after_recorded(fmt, profile: VendorProfile, paths: RunPaths, run: RunOptions, record,
                    result: dict[str, Any]) -> dict[str, Any]:
    result = {**result, "record": record.directory}
    if hasattr(fmt, "after_delivery"):  # only after a successful, recorded delivery
        result.update(fmt.after_delivery(profile, paths, run, record))
    return result


def vendor_run(paths: RunPaths) -> DeliveryRun:
    """A vendor run's delivery: its ``reports`` folder, keyed by the run folder's name (CERS batch ids)."""
    return DeliveryRun(reports=paths.reports, key=paths.root.name)


def send_with_record(profile: VendorProfile, files: list[Path], record, *, wait: bool = True,
                     run: DeliveryRun) -> tuple[dict[str, Any], Any]:
    """Send ``files`` through the profile's transport and confirm ``record`` (written before, outcome sending).

    ``run``: the delivering run (``vendor_run(paths)``; a re-delivery: its own operations run), given to the
    transports that keep state per delivery (``confirms_later``: CERS keeps its upload ledger in ``run.reports``).

    Per-file receivers (``record.per_file``: CERS) confirm each file as it is accepted, so a run where a later
    file fails keeps the accepted ones (outcome partial); all-or-nothing sets are confirmed once, at the end.
    Returns the transport's result and the confirmed record. ``wait=False`` (a receiver that confirms later):
    returns once the files are sent; the record is finished only if the receiver accepted every file already
    (else ``confirm_delivery`` finishes it).
    """
    from rostering.delivery.records import finish_delivery, mark_accepted

    transport = delivery_module(profile)
    current = [record]

    def accepted(outcome: dict[str, Any]) -> None:
        current[0] = mark_accepted(current[0], names=[outcome["file"]])

    options: dict[str, Any] = {"on_accepted": accepted} if record.per_file else {}
    if confirms_later(profile):
        options["run"] = run
    if not wait:
        options["wait"] = False
    result = transport.deliver_payload(profile.delivery, files, **options)
    if not wait and result["unconfirmed"]:
        return result, current[0]
    return result, finish_delivery(current[0], destination=result["destination"])
