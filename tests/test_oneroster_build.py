"""The OneRoster build on a hand-made district (tests/fixtures/tiny_district.sql), expected files worked out by hand."""
from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from rostering.oneroster import vendor
from rostering.oneroster.spec import HEADERS
from rostering.sis.extract import extract_snapshot
from rostering.sis.schema import create_schema, run_script
from rostering.vendors.profile import load_profile

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED = FIXTURES / "tiny_expected" / "stmath"
AS_OF = dt.date(2026, 11, 23)


def build_from(url: str, workdir: Path, profile=None, **kwargs) -> Path:
    engine = sa.create_engine(url)
    create_schema(engine, drop_existing=True)
    run_script(engine, FIXTURES / "tiny_district.sql")
    snapshot = extract_snapshot(engine, workdir / "snapshot", as_of=kwargs.pop("as_of", AS_OF))
    engine.dispose()
    result = vendor.build(snapshot, profile or load_profile("stmath"), workdir / "build", **kwargs)
    (workdir / "dropped.txt").write_text(repr(result["dropped"]))
    return workdir / "build"


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def sqlite_build(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("sqlite")
    return build_from(f"sqlite:///{workdir / 'sis.sqlite'}", workdir)


@pytest.mark.parametrize("name", sorted(p.name for p in EXPECTED.glob("*.csv")))
def test_files_match_the_hand_worked_expectation(sqlite_build, name):
    assert (sqlite_build / name).read_bytes() == (EXPECTED / name).read_bytes()


def test_the_same_sql_gives_the_same_files_on_postgresql(postgres_url, tmp_path, sqlite_build):
    built = build_from(postgres_url, tmp_path)
    for expected in sorted(sqlite_build.glob("*.csv")):
        assert (built / expected.name).read_bytes() == expected.read_bytes(), expected.name


def test_a_psycopg3_engine_is_read_with_psycopg2_copy(postgres_url, tmp_path, sqlite_build):
    """Airflow's postgres hook may hand extraction a psycopg 3 engine; the COPY reader switches to psycopg2."""
    built = build_from(postgres_url.replace("postgresql+psycopg2://", "postgresql+psycopg://"), tmp_path)
    assert (built / "users.csv").read_bytes() == (sqlite_build / "users.csv").read_bytes()


@pytest.mark.mariadb
def test_the_same_sql_gives_the_same_files_on_mariadb(mariadb_url, tmp_path, sqlite_build):
    built = build_from(mariadb_url, tmp_path)
    for expected in sorted(sqlite_build.glob("*.csv")):
        assert (built / expected.name).read_bytes() == expected.read_bytes(), expected.name


def test_file_conventions(sqlite_build):
    for name, header in HEADERS.items():
        raw = (sqlite_build / name).read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf"), f"{name} has a BOM"
        first_line = raw.split(b"\r\n", 1)[0].decode()
        assert first_line == ",".join(header), f"{name} header not exact"
        assert all(line for line in raw.split(b"\r\n")[:-1]), f"{name} has a bare LF or empty line"
        parsed = rows(sqlite_build / name)
        assert parsed, f"{name} has no data rows"
        assert all(row["status"] == "" and row["dateLastModified"] == "" for row in parsed)


def test_two_leads_get_exactly_one_primary_the_earliest(sqlite_build):
    teachers = [r for r in rows(sqlite_build / "enrollments.csv") if r["role"] == "teacher"]
    by_class: dict[str, list[str]] = {}
    for row in teachers:
        by_class.setdefault(row["classSourcedId"], []).append(row["primary"])
    assert all(values.count("true") == 1 for values in by_class.values())
    sec2 = {r["userSourcedId"]: r["primary"] for r in teachers if r["classSourcedId"] == "cls-S2-SEC2"}
    assert sec2 == {"staff-T2": "true", "staff-T3": "false"}


def test_changing_the_as_of_date_changes_who_is_active(tmp_path):
    """Before 1005 withdrew (2026-10-01) and before 1006 moved, both are active -- at their old schools."""
    built = build_from(f"sqlite:///{tmp_path / 'sis.sqlite'}", tmp_path, as_of=dt.date(2026, 9, 1))
    users = {r["sourcedId"]: r["orgSourcedIds"] for r in rows(built / "users.csv")}
    assert users["1005"] == "sch-S2"
    assert users["1006"] == "sch-S1"
    enrollments = {r["sourcedId"] for r in rows(built / "enrollments.csv")}
    assert "e-cls-S2-SEC2-1007-20260813" in enrollments  # first stint, before the re-entry


def test_school_subset_builds_only_those_schools(tmp_path):
    built = build_from(f"sqlite:///{tmp_path / 'sis.sqlite'}", tmp_path, schools=("S1",))
    assert {r["sourcedId"] for r in rows(built / "orgs.csv")} == {"d-D1", "sch-S1"}
    assert {r["schoolSourcedId"] for r in rows(built / "classes.csv")} == {"sch-S1"}
    assert {r["orgSourcedIds"] for r in rows(built / "users.csv")} == {"sch-S1"}


def test_rebuild_and_zip_are_byte_identical(sqlite_build, tmp_path):
    profile = load_profile("stmath")
    first = vendor.payload(profile, sqlite_build, tmp_path / "a")[0]
    second = vendor.payload(profile, sqlite_build, tmp_path / "b")[0]
    assert Path(first.path).name == "OneRoster.zip"
    assert Path(first.path).read_bytes() == Path(second.path).read_bytes()
    with zipfile.ZipFile(first.path) as archive:
        names = archive.namelist()
        assert sorted(names) == sorted(["manifest.csv", *HEADERS])  # at the root, no folder
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in archive.infolist())
        assert archive.read("users.csv") == (sqlite_build / "users.csv").read_bytes()


def test_student_ids_from_ssid(tmp_path):
    profile = load_profile("stmath")
    options = dict(profile.options, user_ids={"student_source": "ssid", "student_prefix": "", "staff_prefix": "staff-"})
    profile = type(profile)(**{**profile.__dict__, "options": options})
    built = build_from(f"sqlite:///{tmp_path / 'sis.sqlite'}", tmp_path, profile=profile)
    ids = {r["sourcedId"] for r in rows(built / "users.csv") if r["role"] == "student"}
    assert "1000000001" in ids and "1001" not in ids
    assert len(ids) == 7  # 1004 has no SSID: not sent, and counted
    assert "'student.missing_user_id': 1" in (tmp_path / "dropped.txt").read_text()


def test_line_breaks_never_reach_a_file(sqlite_build):
    for path in sqlite_build.glob("*.csv"):
        body = path.read_bytes().replace(b"\r\n", b"")
        assert b"\r" not in body and b"\n" not in body, path.name
    assert "Ann Marie" in io.StringIO((sqlite_build / "users.csv").read_text()).getvalue()
