"""Issue 3: the two OneRoster vendors' profiles on the hand-made district, and the rules around them."""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from rostering.delivery.records import record_delivery
from rostering.oneroster import vendor
from rostering.pipeline import delivery_skip_reason
from rostering.run_options import RunOptions
from rostering.sis.extract import extract_snapshot
from rostering.sis.schema import create_schema, run_script
from rostering.vendors.profile import load_profile

FIXTURES = Path(__file__).parent / "fixtures"
AS_OF = dt.date(2026, 11, 23)


@pytest.fixture(autouse=True)
def staff_password_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LITERABLY_STAFF_PASSWORD", json.dumps({"conn_type": "generic",
                                                                            "password": "sso-placeholder"}))


def snapshot(tmp_path: Path, *updates: str):
    tmp_path.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'sis.sqlite'}")
    create_schema(engine, drop_existing=True)
    run_script(engine, FIXTURES / "tiny_district.sql")
    with engine.begin() as conn:
        for statement in updates:
            conn.execute(sa.text(statement))
    info = extract_snapshot(engine, tmp_path / "snapshot", as_of=AS_OF)
    engine.dispose()
    return info


def with_options(profile, **options):
    return dataclasses.replace(profile, options={**profile.options, **options})


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_literably_files_match_the_hand_worked_expectation(tmp_path):
    profile = load_profile("literably")
    result = vendor.build(snapshot(tmp_path), profile, tmp_path / "build")
    expected = FIXTURES / "tiny_expected" / "literably"
    assert sorted(result["files"]) == sorted(p.name for p in expected.glob("*.csv"))  # no manifest for plain files
    for path in expected.glob("*.csv"):
        assert (tmp_path / "build" / path.name).read_bytes() == path.read_bytes(), path.name
    assert vendor.validate(profile, tmp_path / "build").ok


def test_extension_columns_sit_right_of_the_spec_columns(tmp_path):
    vendor.build(snapshot(tmp_path), load_profile("literably"), tmp_path / "build")
    header = (tmp_path / "build" / "users.csv").read_bytes().decode().split("\r\n", 1)[0].split(",")
    assert header[:18][-1] == "password" and all(h.startswith("metadata.") for h in header[18:])


@pytest.mark.parametrize(
    "update, withheld, rule",
    [
        ("UPDATE student SET username = 'S1001' WHERE student_id = '1002'", {"1001", "1002"},
         "users.duplicate_username_ignoring_case"),
        ("UPDATE staff SET username = 's1003' WHERE staff_id = 'T2'", {"1003", "T2"},
         "users.duplicate_username_ignoring_case"),
    ],
)
def test_conflicting_users_are_withheld_and_reported_by_sis_key(tmp_path, update, withheld, rule):
    result = vendor.build(snapshot(tmp_path, update), load_profile("stmath"), tmp_path / "build",
                          reports_dir=tmp_path / "reports")
    report = rows(tmp_path / "reports" / "withheld.csv")
    assert {r["sis_key"] for r in report} == withheld and {r["rule"] for r in report} == {rule}
    assert result["withheld"] == 2 and result["dropped"][rule] == 2
    sent = {r["sourcedId"] for r in rows(tmp_path / "build" / "users.csv")}
    assert not sent & {"1001", "1002", "1003", "staff-T2"} & {k if k.isdigit() else f"staff-{k}" for k in withheld}
    enrolled = {r["userSourcedId"] for r in rows(tmp_path / "build" / "enrollments.csv")}
    assert enrolled <= sent  # no enrollment points at a withheld user
    assert vendor.validate(load_profile("stmath"), tmp_path / "build").ok
    text = (tmp_path / "reports" / "withheld.csv").read_text()
    assert "José" not in text and "s1001" not in text.lower().replace("sis_key", "")  # keys only, no names


def test_ids_differing_only_in_case_are_withheld(tmp_path):
    updates = ("UPDATE section_enrollment SET student_id = 'a7' WHERE student_id = '1007'",
               "UPDATE school_enrollment SET student_id = 'a7' WHERE student_id = '1007'",
               "UPDATE student SET student_id = 'a7' WHERE student_id = '1007'",
               "UPDATE student SET student_id = 'A7' WHERE student_id = '1006'",
               "UPDATE school_enrollment SET student_id = 'A7' WHERE student_id = '1006'",
               "UPDATE section_enrollment SET student_id = 'A7' WHERE student_id = '1006'")
    result = vendor.build(snapshot(tmp_path, "PRAGMA foreign_keys = OFF", *updates), load_profile("stmath"),
                          tmp_path / "build")
    assert result["dropped"]["users.duplicate_id_ignoring_case"] == 2
    sent = {r["sourcedId"].lower() for r in rows(tmp_path / "build" / "users.csv")}
    assert "a7" not in sent


def test_stmath_products_sixth_grade_choice_and_licensing(tmp_path):
    profile = load_profile("stmath")
    products = {**profile.options["products"], "sixth_grade_by_school": {"S2": "GR6MSS"},
                "licensed": ["Grade3", "GR6MSS"]}
    result = vendor.build(snapshot(tmp_path), with_options(profile, products=products), tmp_path / "build")
    assert result["products"] == {"GR6MSS": 4, "Grade3": 3}
    assert result["dropped"]["student.product_not_licensed"] == 1  # 1009, kindergarten
    grades = {r["grades"] for r in rows(tmp_path / "build" / "users.csv") if r["role"] == "student"}
    assert grades == {"03", "06"}  # the file keeps CEDS grades; the product decides who is sent


def test_literably_split_by_role_adds_up_to_the_validated_files(tmp_path):
    split = {"users.csv": {"users.csv": ["student"], "users2.csv": ["teacher"], "users3.csv": ["administrator"]},
             "enrollments.csv": {"enrollments.csv": ["student"], "enrollments2.csv": ["teacher"]}}
    profile = with_options(load_profile("literably"), split_by_role=split)
    vendor.build(snapshot(tmp_path), profile, tmp_path / "build")
    payload = {Path(f.path).name for f in vendor.payload(profile, tmp_path / "build", tmp_path / "payload")}
    assert payload == {"orgs.csv", "academicSessions.csv", "classes.csv", "courses.csv", "users.csv", "users2.csv",
                       "users3.csv", "enrollments.csv", "enrollments2.csv"}
    for name, parts in split.items():
        whole = rows(tmp_path / "build" / name)
        pieces = [r for part in parts for r in rows(tmp_path / "payload" / part)]
        assert sorted(map(str, pieces)) == sorted(map(str, whole))
        for part, roles in parts.items():
            assert {r["role"] for r in rows(tmp_path / "payload" / part)} == set(roles)
    assert {r["role"] for r in rows(tmp_path / "payload" / "users.csv")} == {"student"}


def test_split_refuses_a_role_without_a_file(tmp_path):
    profile = with_options(load_profile("literably"), split_by_role={"users.csv": {"users.csv": ["student"]}})
    vendor.build(snapshot(tmp_path), profile, tmp_path / "build")
    with pytest.raises(ValueError, match="not assigned"):
        vendor.payload(profile, tmp_path / "build", tmp_path / "payload")


def test_two_runs_on_the_same_data_give_byte_identical_packages(tmp_path):
    for profile in (load_profile("stmath"), load_profile("literably")):
        outputs = []
        for attempt in ("a", "b"):
            vendor.build(snapshot(tmp_path / attempt), profile, tmp_path / attempt / "build")
            outputs.append({Path(f.path).name: Path(f.path).read_bytes()
                            for f in vendor.payload(profile, tmp_path / attempt / "build", tmp_path / attempt / "out")})
        assert outputs[0] == outputs[1], profile.name


class TestDeliveryRules:
    NOW = dt.datetime(2026, 11, 23, 18, 0, tzinfo=dt.timezone.utc)  # 10:00 in California

    @pytest.fixture()
    def delivered_once(self, tmp_path, monkeypatch):
        monkeypatch.setenv("ROSTERING_STATE_DIR", str(tmp_path / "state"))
        payload = tmp_path / "OneRoster.zip"
        payload.write_bytes(b"zip-1")
        record_delivery(vendor="stmath", destination="sftp://x/~", run_id="r1", as_of_date="2026-11-23",
                        files=[payload], checksums={"OneRoster.zip": "sha-1"}, now=self.NOW - dt.timedelta(hours=8))
        return {"files": [{"path": str(payload), "sha256": "sha-1"}]}

    def run(self, force=False):
        return RunOptions.from_params({"force": force}, run_after=self.NOW, timezone="America/Los_Angeles")

    def test_first_delivery_goes(self, tmp_path, monkeypatch):
        monkeypatch.setenv("ROSTERING_STATE_DIR", str(tmp_path / "empty"))
        assert delivery_skip_reason(load_profile("stmath"), {"files": []}, self.run(), now=self.NOW) is None

    def test_unchanged_payload_is_not_sent_again(self, delivered_once):
        reason = delivery_skip_reason(load_profile("stmath"), delivered_once, self.run(), now=self.NOW)
        assert reason.startswith("unchanged")

    def test_stmath_gets_at_most_one_upload_a_day_in_district_time(self, delivered_once):
        changed = {"files": [{"path": "OneRoster.zip", "sha256": "sha-2"}]}
        profile = load_profile("stmath")
        assert "1 time(s) today" in delivery_skip_reason(profile, changed, self.run(), now=self.NOW)
        tomorrow = self.NOW + dt.timedelta(hours=16)  # 02:00 the next day in California
        assert delivery_skip_reason(profile, changed, self.run(), now=tomorrow) is None
        assert delivery_skip_reason(profile, changed, self.run(force=True), now=self.NOW) is None
