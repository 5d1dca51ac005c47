"""The ``oneroster`` format: build, validate and package a OneRoster 1.1 bulk set for a vendor profile.

Every OneRoster vendor (ST Math, Literably, …) goes through here; the profile's ``oneroster:`` section chooses files,
manifest, zip name, id source, scope, extension columns, products and passwords (docs/oneroster.md). The three
functions ``build``, ``validate`` and ``payload`` are the format interface ``rostering.pipeline`` calls.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import pandas as pd

from rostering.csvio import WrittenFile, sha256_of, write_csv, write_rows
from rostering.oneroster.build import OneRosterOptions, UserIdOptions, build_oneroster
from rostering.oneroster.spec import HEADERS, manifest_rows
from rostering.package import zip_files
from rostering.sis.extract import SnapshotInfo
from rostering.vendors.profile import VendorProfile

if TYPE_CHECKING:
    from rostering.validation.report import ValidationReport

MANIFEST = "manifest.csv"
WITHHELD = "withheld.csv"


def build_options(profile: VendorProfile, schools: Sequence[str] = ()) -> OneRosterOptions:
    """Profile options, narrowed to ``schools`` when a run asks for a subset of the licensed schools."""
    opts = profile.options
    licensed = tuple(str(s) for s in opts.get("schools") or ())
    scope = tuple(s for s in schools if not licensed or s in licensed) if schools else licensed
    if schools and not scope:
        raise ValueError("none of the requested schools is in the vendor's licensed schools")
    products = opts.get("products") or {}
    password = opts.get("staff_password") or {}
    return OneRosterOptions(
        user_ids=UserIdOptions(**opts.get("user_ids", {})),
        staff_roles=opts.get("staff_roles") or OneRosterOptions().staff_roles,
        schools=scope,
        grades=tuple(str(g) for g in opts.get("grades") or ()),
        district_org_type=opts.get("district_org_type", "district"),
        include_student_email=opts.get("include_student_email", True),
        extensions={name: dict(cols) for name, cols in (opts.get("extensions") or {}).items()},
        grade_products={str(k): v for k, v in (products.get("by_grade") or {}).items()},
        sixth_grade_by_school={str(k): v for k, v in (products.get("sixth_grade_by_school") or {}).items()},
        licensed_products=tuple(products.get("licensed") or ()),
        staff_password=_password_from_connection(password["conn_id"]) if password.get("mode") == "connection" else None,
        staff_password_from_sis=password.get("mode") == "sis",
    )


def _password_from_connection(conn_id: str) -> str:
    """A shared staff password (e.g. an SSO placeholder) kept as a secret in an Airflow connection."""
    from airflow.sdk import BaseHook

    value = BaseHook.get_connection(conn_id).password
    if not value:
        raise ValueError(f"connection {conn_id!r} has no password for the staff password policy")
    return value


def expected_headers(profile: VendorProfile) -> dict[str, tuple[str, ...]]:
    extensions = profile.options.get("extensions") or {}
    return {name: (*HEADERS[name], *extensions.get(name, {})) for name in profile.options["files"]}


def build(
    snapshot: SnapshotInfo,
    profile: VendorProfile,
    out_dir: Path,
    *,
    schools: Sequence[str] = (),
    reports_dir: Path | None = None,
    **_: Any,
) -> dict[str, Any]:
    """Write the profile's CSV files (and manifest) into ``out_dir``; return counts for the run summary."""
    result = build_oneroster(snapshot.read, build_options(profile, schools))
    written: list[WrittenFile] = []
    for name, header in expected_headers(profile).items():
        frame = result.tables[name]
        if len(frame):  # a zero-row file is not allowed: the manifest marks it absent and validation flags it
            written.append(write_csv(frame, out_dir / name, header))
    if profile.options.get("manifest", True):
        present = {Path(f.path).name for f in written}
        written.append(write_rows(manifest_rows(present), out_dir / MANIFEST, ("propertyName", "value")))
    if reports_dir is not None and len(result.withheld):  # SIS keys for the DBA to fix; never in logs
        write_csv(result.withheld, reports_dir / WITHHELD, ("sis_table", "sis_key", "rule"))
    return {
        "files": {Path(f.path).name: f.rows for f in written},
        "dropped": dict(sorted(result.dropped.items())),
        "normalised": dict(sorted(result.normalised.items())),
        "withheld": len(result.withheld),
        **({"products": dict(sorted(result.products.items()))} if result.products else {}),
    }


def validate(profile: VendorProfile, build_dir: Path, **_: Any) -> "ValidationReport":
    from rostering.validation.oneroster_checks import validate_package

    return validate_package(build_dir, expected_headers(profile), manifest=profile.options.get("manifest", True))


def payload(profile: VendorProfile, build_dir: Path, out_dir: Path) -> list[WrittenFile]:
    """What is delivered: one zip (ST Math: OneRoster.zip), or the files -- optionally split by role (Literably)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    files = sorted(build_dir.glob("*.csv"))
    zip_name = profile.options.get("zip_name")
    if zip_name:
        return [zip_files(files, out_dir / zip_name)]
    splits = profile.options.get("split_by_role") or {}
    delivered = []
    for path in files:
        if path.name in splits:
            delivered += split_by_role(path, splits[path.name], out_dir)
        else:
            target = out_dir / path.name
            shutil.copyfile(path, target)
            target.chmod(0o600)
            delivered.append(WrittenFile(str(target), -1, target.stat().st_size, sha256_of(target)))
    return delivered


def split_by_role(path: Path, parts: dict[str, list[str]], out_dir: Path) -> list[WrittenFile]:
    """Literably's users.csv / users2.csv / users3.csv (and enrollments2.csv): the same header, rows by role.

    Every role in the file must be assigned to exactly one part, so the parts add up to the validated file.
    """
    frame = pd.read_csv(path, dtype="string", keep_default_na=False, na_values=[""])
    header = tuple(frame.columns)
    assigned = [role for roles in parts.values() for role in roles]
    if len(assigned) != len(set(assigned)):
        raise ValueError(f"split_by_role for {path.name}: a role is assigned to two files")
    unassigned = set(frame["role"].dropna()) - set(assigned)
    if unassigned:
        raise ValueError(f"split_by_role for {path.name}: roles {sorted(unassigned)} are not assigned to a file")
    written = []
    for name, roles in parts.items():
        part = frame[frame["role"].isin(roles)]
        if len(part):  # Literably concatenates the parts; an empty part is simply not sent
            written.append(write_csv(part, out_dir / name, header))
    return written


def guard_entities(read, profile: VendorProfile | None = None) -> dict[str, pd.DataFrame]:
    """The entities the deprovisioning guard compares (rostering.delivery.guard), keyed by sourcedId."""
    from rostering.delivery.guard import fingerprint

    def entity(frame: pd.DataFrame, school: str) -> pd.DataFrame:
        values = frame.drop(columns=[c for c in ("password",) if c in frame])  # a password change is not a roster change
        return pd.DataFrame({"key": frame["sourcedId"], "school": frame[school], "fingerprint": fingerprint(values)})

    orgs, users, classes, enrollments = (read(name) for name in ("orgs.csv", "users.csv", "classes.csv",
                                                                 "enrollments.csv"))
    entities = {}
    if len(orgs):
        entities["schools"] = entity(orgs[orgs["type"] == "school"], "sourcedId")
    if len(users):
        entities["students"] = entity(users[users["role"] == "student"], "orgSourcedIds")
        entities["staff"] = entity(users[users["role"] != "student"], "orgSourcedIds")
    if len(classes):
        entities["classes"] = entity(classes, "schoolSourcedId")
    if len(enrollments):
        entities["enrollments"] = entity(enrollments, "schoolSourcedId")
    return entities
