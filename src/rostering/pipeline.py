"""The stages every vendor run goes through: extract -> build -> validate -> package -> deliver -> summary.

Each stage reads and writes files under the run's directory and returns a small JSON-able dict (what Airflow keeps
in XCom). The Airflow tasks in ``rostering.orchestration`` are thin wrappers around these functions; the benchmark
and the tests call them directly.
"""
from __future__ import annotations

import importlib
import json
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rostering.paths import work_dir
from rostering.run_options import RunOptions
from rostering.vendors.profile import VendorProfile

log = logging.getLogger(__name__)

# format name -> module implementing build(snapshot, profile, out_dir, schools=), validate(profile, dir), payload(...)
FORMATS = {"oneroster": "rostering.oneroster.vendor"}


def format_module(profile: VendorProfile):
    return importlib.import_module(FORMATS[profile.format])


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @classmethod
    def for_run(cls, dag_id: str, run_id: str, base: Path | None = None) -> "RunPaths":
        safe_run = re.sub(r"[^0-9A-Za-z._-]", "_", run_id)
        return cls((base or work_dir()) / dag_id / safe_run)

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

    info = extract_snapshot(engine, paths.snapshot, as_of=run.as_of, school_year=run.school_year)
    return {"snapshot": info.directory, "as_of_date": info.as_of_date, "school_year": info.school_year,
            "rows": info.row_counts}


def build(profile: VendorProfile, paths: RunPaths, run: RunOptions) -> dict[str, Any]:
    from rostering.sis.extract import SnapshotInfo

    if paths.build.exists():  # a retried task starts from a clean folder: no stale file can slip into the package
        for stale in paths.build.iterdir():
            stale.unlink()
    result = format_module(profile).build(SnapshotInfo.load(paths.snapshot), profile, paths.build, schools=run.schools)
    paths.write_report("build.json", result)
    log.info("built %s: %s", profile.name, result["files"])
    return result


def validate(profile: VendorProfile, paths: RunPaths) -> dict[str, Any]:
    """Validate the built files; raises ``ValidationFailed`` (value-free report) when anything is wrong."""
    report = format_module(profile).validate(profile, paths.build)
    paths.write_report("validation.json", report.to_dict())
    log.info("validation of %s:\n%s", profile.name, report.summary())
    report.raise_if_failed()
    return {"ok": True, "files": len(report.to_dict().get("files", {}))}


def package(profile: VendorProfile, paths: RunPaths) -> dict[str, Any]:
    files = format_module(profile).payload(profile, paths.build, paths.payload)
    return {"files": [asdict(f) for f in files]}


def deliver(profile: VendorProfile, packaged: dict[str, Any]) -> dict[str, Any]:
    if profile.delivery.kind != "sftp":
        raise ValueError(f"unknown delivery kind {profile.delivery.kind!r}")
    from rostering.delivery.sftp import deliver_files

    uploaded = deliver_files(
        ssh_conn_id=profile.delivery.conn_id,
        files=[Path(f["path"]) for f in packaged["files"]],
        remote_dir=profile.delivery.remote_dir,
    )
    return {"destination": f"sftp://{profile.delivery.conn_id}/{profile.delivery.remote_dir}".rstrip("/"),
            "uploaded": [asdict(u) for u in uploaded]}
