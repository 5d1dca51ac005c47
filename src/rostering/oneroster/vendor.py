"""The ``oneroster`` format: build, validate and package a OneRoster 1.1 bulk set for a vendor profile.

Every OneRoster vendor (ST Math, Literably, …) goes through here; the profile's ``oneroster:`` section chooses files,
manifest, zip name, id source and scope. The three functions are the format interface the pipeline calls.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from rostering.csvio import WrittenFile, sha256_of, write_csv, write_rows
from rostering.oneroster.build import OneRosterOptions, UserIdOptions, build_oneroster
from rostering.oneroster.spec import HEADERS, manifest_rows
from rostering.package import zip_files
from rostering.sis.extract import SnapshotInfo
from rostering.vendors.profile import VendorProfile

if TYPE_CHECKING:
    from rostering.validation.report import ValidationReport

MANIFEST = "manifest.csv"


def build_options(profile: VendorProfile, schools: Sequence[str] = ()) -> OneRosterOptions:
    """Profile options, narrowed to ``schools`` when a run asks for a subset of the licensed schools."""
    opts = profile.options
    licensed = tuple(str(s) for s in opts.get("schools") or ())
    scope = tuple(s for s in schools if not licensed or s in licensed) if schools else licensed
    if schools and not scope:
        raise ValueError("none of the requested schools is in the vendor's licensed schools")
    return OneRosterOptions(
        user_ids=UserIdOptions(**opts.get("user_ids", {})),
        staff_roles=opts.get("staff_roles") or OneRosterOptions().staff_roles,
        schools=scope,
        grades=tuple(str(g) for g in opts.get("grades") or ()),
        district_org_type=opts.get("district_org_type", "district"),
        include_student_email=opts.get("include_student_email", True),
    )


def expected_headers(profile: VendorProfile) -> dict[str, tuple[str, ...]]:
    return {name: HEADERS[name] for name in profile.options["files"]}


def build(snapshot: SnapshotInfo, profile: VendorProfile, out_dir: Path, *, schools: Sequence[str] = ()) -> dict[str, Any]:
    """Write the profile's CSV files (and manifest) into ``out_dir``; return counts for the run summary."""
    result = build_oneroster(snapshot.read, build_options(profile, schools))
    headers = expected_headers(profile)
    written: list[WrittenFile] = []
    for name, header in headers.items():
        frame = result.tables[name]
        if len(frame):  # a zero-row file is not allowed: the manifest marks it absent and validation flags it
            written.append(write_csv(frame, out_dir / name, header))
    if profile.options.get("manifest", True):
        present = {Path(f.path).name for f in written}
        written.append(write_rows(manifest_rows(present), out_dir / MANIFEST, ("propertyName", "value")))
    return {
        "files": {Path(f.path).name: f.rows for f in written},
        "dropped": dict(sorted(result.dropped.items())),
        "normalised": dict(sorted(result.normalised.items())),
    }


def validate(profile: VendorProfile, build_dir: Path) -> "ValidationReport":
    from rostering.validation.oneroster_checks import validate_package

    return validate_package(build_dir, expected_headers(profile))


def payload(profile: VendorProfile, build_dir: Path, out_dir: Path) -> list[WrittenFile]:
    """What is delivered: one zip (ST Math: OneRoster.zip) or the CSV files themselves."""
    files = sorted(build_dir.glob("*.csv"))
    zip_name = profile.options.get("zip_name")
    if zip_name:
        return [zip_files(files, out_dir / zip_name)]
    out_dir.mkdir(parents=True, exist_ok=True)
    copies = []
    for path in files:
        target = out_dir / path.name
        target.write_bytes(path.read_bytes())
        target.chmod(0o600)
        copies.append(target)
    return [WrittenFile(str(p), 0, p.stat().st_size, sha256_of(p)) for p in copies]
