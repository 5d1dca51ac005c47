"""``build_oneroster(..., only_users=True)`` (what the Derivita build uses) sends exactly the full build's users.

On the hand-made district and on a generated one with colliding usernames and ids added, for both OneRoster
profiles' options (ST Math: products, ids from local ids; Literably: extension columns, administrators, a staff
password): the users.csv frame and the withheld records equal those of the full six-file build.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from pandas.testing import assert_frame_equal

from rostering.oneroster.build import build_oneroster
from rostering.oneroster.vendor import build_options
from rostering.sis.demo import generate_district, load_district
from rostering.sis.extract import extract_snapshot
from rostering.sis.schema import create_schema, run_script
from rostering.vendors.profile import load_profile

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def staff_password_connection(monkeypatch):
    """Literably's staff password comes from an Airflow connection."""
    monkeypatch.setenv("AIRFLOW_CONN_LITERABLY_STAFF_PASSWORD", json.dumps({"conn_type": "generic",
                                                                            "password": "sso-placeholder"}))


@pytest.fixture(scope="module")
def tiny_snapshot(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    engine = sa.create_engine(f"sqlite:///{folder / 'sis.sqlite'}")
    create_schema(engine, drop_existing=True)
    run_script(engine, FIXTURES / "tiny_district.sql")
    snapshot = extract_snapshot(engine, folder / "snapshot", as_of=dt.date(2026, 11, 23))
    engine.dispose()
    return snapshot


def _with_collisions(tables):
    """Usernames equal but for case (two students; a student and a teacher) and a student whose id equals another
    teacher's sourcedId but for case: the build must withhold all of them, in both modes alike."""
    students, staff, enrolled = tables["student"], tables["staff"], tables["school_enrollment"]
    current = enrolled.loc[enrolled["exit_date"].isna(), "student_id"]
    a, b, c, d = students.index[students["username"].notna() & students["student_id"].isin(current)][:4]
    leads = tables["section_staff"].loc[tables["section_staff"]["staff_role"] == "lead", "staff_id"]
    one, other = staff.index[(staff["is_active"] == 1) & staff["staff_id"].isin(leads)][:2]
    students = students.copy()
    students.loc[b, "username"] = students.loc[a, "username"].upper()
    students.loc[c, "username"] = staff.loc[one, "username"].upper()
    renamed = {students.loc[d, "student_id"]: f"STAFF-{staff.loc[other, 'staff_id']}"}
    tables = dict(tables, student=students)
    for name, frame in tables.items():
        if "student_id" in frame.columns:
            tables[name] = frame.assign(student_id=frame["student_id"].replace(renamed))
    return tables


@pytest.fixture(scope="module")
def demo_snapshot(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    url = f"sqlite:///{folder / 'sis.sqlite'}"
    load_district(_with_collisions(generate_district(3000, seed=5, school_year=2027)), url)
    engine = sa.create_engine(url)
    snapshot = extract_snapshot(engine, folder / "snapshot", as_of=dt.date(2027, 2, 1))
    engine.dispose()
    return snapshot


@pytest.mark.parametrize("vendor", ["stmath", "literably"])
@pytest.mark.parametrize("district", ["tiny_snapshot", "demo_snapshot"])
def test_only_users_gives_the_full_builds_users_and_withheld(request, district, vendor):
    snapshot = request.getfixturevalue(district)
    options = build_options(load_profile(vendor))
    full = build_oneroster(snapshot.read, options)
    users_only = build_oneroster(snapshot.read, options, only_users=True)
    assert list(users_only.tables) == ["users.csv"]
    assert_frame_equal(users_only.tables["users.csv"], full.tables["users.csv"])
    assert_frame_equal(users_only.withheld, full.withheld)
    assert users_only.products == full.products
    if district == "demo_snapshot":  # the collisions were really there to withhold
        assert set(full.withheld["rule"]) == {"users.duplicate_id_ignoring_case",
                                              "users.duplicate_username_ignoring_case"}
