"""Shared pieces of the subgroup tests: the hand-made district, a test profile, a real roster delivery record.

Import with ``from subgroups_helpers import ...`` (tests/ is on sys.path, like sftp_fixtures).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from rostering.sis.extract import SnapshotInfo, extract_snapshot
from rostering.sis.schema import create_schema, run_script
from rostering.vendors.profile import VendorProfile, load_profile

FIXTURE = Path(__file__).parent / "fixtures" / "subgroups_district.sql"
AS_OF = dt.date(2026, 11, 23)

# Every source and encoding: program map (with none and other), each flag format, a status-filtered program flag,
# an attribute flag and an attribute map.
TEST_COLUMNS = [
    {"name": "ell", "program": "ELL", "format": "map", "values": {"EL": "EL", "RFEP": "RFEP"}, "none": "EO",
     "other": "UNK"},
    {"name": "sped", "program": "SPED", "format": "y/n"},
    {"name": "title_i", "program": "TITLE1", "format": "yes/no"},
    {"name": "section_504", "program": "504", "format": "1/0"},
    {"name": "gate", "program": "GATE", "format": "y/n"},
    {"name": "homeless", "program": "HOMELESS", "format": "y/n"},
    {"name": "foster", "program": "FOSTER", "format": "yes/no"},
    {"name": "el_only", "program": "ELL", "statuses": ["EL"], "format": "1/0"},
    {"name": "other_language", "attribute": "home_language_code", "false_values": ["00", "eng"], "format": "y/n"},
    {"name": "home_language", "attribute": "home_language_code", "format": "map",
     "values": {"00": "English", "eng": "English", "01": "Spanish", "spa": "Spanish"}, "none": "Unknown",
     "other": "Other"},
]


def make_profile(columns: list[dict] | None = None, *, conn_id: str = "derivita_sftp", **subgroups) -> VendorProfile:
    """A Derivita profile with these columns. The section is set after loading (a profile whose section is wrong
    does not load: ProfileError), so tests can hand subgroup_config a wrong one."""
    profile = VendorProfile.from_dict({
        "name": "derivita", "title": "Derivita", "format": "subgroups", "dag_id": "derivita_subgroups",
        "after": "stmath", "tags": ["rostering"],
        "subgroups": {"student_ids_from": "stmath", "file_name": "student_subgroups.csv", "columns": TEST_COLUMNS},
        "delivery": {"kind": "sftp", "conn_id": conn_id, "remote_dir": ""},
    })
    return dataclasses.replace(profile, options={"student_ids_from": "stmath", "file_name": "student_subgroups.csv",
                                                 "columns": TEST_COLUMNS if columns is None else columns,
                                                 **subgroups})


@pytest.fixture(scope="module", autouse=True)
def isolated_state(tmp_path_factory):
    """No test reads or writes the developer's var/state or var/work (e.g. the demo's deliveries)."""
    folder = tmp_path_factory.mktemp("isolated")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ROSTERING_STATE_DIR", str(folder / "state"))
        patch.setenv("ROSTERING_WORK_DIR", str(folder / "work"))
        yield folder


@pytest.fixture(scope="session")
def district_db(tmp_path_factory) -> sa.Engine:
    path = tmp_path_factory.mktemp("subgroups-sis") / "sis.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}")
    create_schema(engine)
    run_script(engine, FIXTURE)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def snapshots(district_db, tmp_path_factory):
    """``snapshots(as_of)``: the district's snapshot as of a date, extracted once per session (read-only)."""
    cache: dict[dt.date, SnapshotInfo] = {}

    def get(as_of: dt.date = AS_OF) -> SnapshotInfo:
        if as_of not in cache:
            cache[as_of] = extract_snapshot(district_db, tmp_path_factory.mktemp(f"snapshot-{as_of}"), as_of=as_of)
        return cache[as_of]

    return get


@pytest.fixture(scope="session")
def roster_packages(snapshots, tmp_path_factory):
    """``roster_packages(as_of)``: the ST Math OneRoster.zip built from that snapshot (once per session)."""
    from rostering.oneroster import vendor as oneroster

    cache: dict[dt.date, Path] = {}

    def get(as_of: dt.date = AS_OF) -> Path:
        if as_of not in cache:
            folder = tmp_path_factory.mktemp(f"roster-{as_of}")
            profile = load_profile("stmath")
            oneroster.build(snapshots(as_of), profile, folder / "build")
            [package] = oneroster.payload(profile, folder / "build", folder / "payload")
            cache[as_of] = Path(package.path)
        return cache[as_of]

    return get


def record_roster(package: Path, as_of: dt.date = AS_OF) -> None:
    """Record ``package`` as ST Math's last good delivery (a kept OneRoster.zip) in the current state folder."""
    from rostering.csvio import sha256_of
    from rostering.delivery.records import record_delivery

    record_delivery(vendor="stmath", destination="sftp://stmath_sftp/~", run_id=f"roster_{as_of}",
                    as_of_date=as_of.isoformat(), files=[package], checksums={package.name: sha256_of(package)})
