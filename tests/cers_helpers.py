"""Shared helpers for the CERS tests: the fixture district in SQLite, a vendor profile pointing at the test profiles."""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import shutil
from pathlib import Path

import sqlalchemy as sa

from rostering.sis.extract import SnapshotInfo, extract_snapshot
from rostering.sis.schema import create_schema, run_script
from rostering.vendors.profile import load_profile

FIXTURES = Path(__file__).parent / "fixtures"
DISTRICT = FIXTURES / "cers_district.sql"
PROFILES = FIXTURES / "cers_profiles.yaml"
EXPECTED = FIXTURES / "cers_expected"
AS_OF = dt.date(2026, 11, 23)


def make_district(path: Path, *scripts: Path, statements: tuple[str, ...] = ()) -> Path:
    engine = sa.create_engine(f"sqlite:///{path}")
    create_schema(engine, drop_existing=True)
    for script in (DISTRICT, *scripts):
        run_script(engine, script)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()
    return path


def snapshot_of(db: Path, out: Path, *, statements: tuple[str, ...] = (), as_of: dt.date = AS_OF) -> SnapshotInfo:
    """Snapshot of ``db`` (copied first when ``statements`` change it)."""
    if statements:
        copy = out / "changed.sqlite"
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(db, copy)
        engine = sa.create_engine(f"sqlite:///{copy}")
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
        engine.dispose()
        db = copy
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        return extract_snapshot(engine, out / "snapshot", as_of=as_of)
    finally:
        engine.dispose()


def cers_profile(**options):
    """config/vendors/cers.yaml, with the test profiles file (and any option overridden)."""
    profile = load_profile("cers")
    return dataclasses.replace(profile, options={**profile.options, "profiles_file": str(PROFILES), **options})


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
