"""Validation of the subgroup file: conventions, the GX suite + configured values, and the roster cross-check."""
from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from rostering.delivery.holds import DeliveryHeld
from rostering.pipeline import RunPaths
from rostering.subgroups import vendor
from subgroups_helpers import (  # noqa: F401 - fixtures
    district_db, isolated_state, make_profile, record_roster, roster_packages, snapshots)

STUDENT_IDS = ("A001", "A002", "A003", "A004", "A007")


@pytest.fixture
def state(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ROSTERING_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture(scope="module")
def built_once(snapshots, tmp_path_factory) -> Path:  # noqa: F811
    folder = tmp_path_factory.mktemp("validate")
    vendor.build(snapshots(), make_profile(), folder / "build", reports_dir=folder / "reports")
    return folder


@pytest.fixture
def built(built_once, tmp_path, state, snapshots) -> tuple[Path, object]:  # noqa: F811
    """A private copy of the built file and its reports (tests edit them)."""
    shutil.copytree(built_once / "build", tmp_path / "build")
    shutil.copytree(built_once / "reports", tmp_path / "reports")
    return tmp_path / "build", snapshots()


def assert_value_free(report) -> None:
    text = report.summary() + report.to_json()
    assert not [s for s in STUDENT_IDS if s in text], "a student id reached the report"


def test_a_file_whose_students_are_all_in_the_roster_passes(built, roster_packages):  # noqa: F811
    build_dir, snap = built
    record_roster(roster_packages())
    report = vendor.validate(make_profile(), build_dir)
    assert report.ok, report.summary()
    assert report.files == {"student_subgroups.csv": 5}


def test_without_a_roster_delivery_validation_fails_clearly(built):
    build_dir, _ = built
    report = vendor.validate(make_profile(), build_dir)
    assert report.rules() == {"subgroups.roster_delivered"}
    assert "no delivery of the roster vendor 'stmath'" in report.summary()


def test_a_student_not_in_the_roster_is_rejected_with_line_and_rule(built, roster_packages, tmp_path):  # noqa: F811
    """The roster was sent as of 2026-11-19, before A007 enrolled (2026-11-20): A007 (line 6) is rejected."""
    build_dir, _ = built
    old = dt.date(2026, 11, 19)
    record_roster(roster_packages(old), old)
    report = vendor.validate(make_profile(), build_dir)
    [finding] = report.findings
    assert (finding.rule, finding.column, finding.rows, finding.count) == (
        "subgroups.student_id_in_roster", "student_id", (6,), 1)
    assert "not a student in the last delivered stmath roster" in finding.message
    assert_value_free(report)
    with pytest.raises(DeliveryHeld, match="1 student_id"):  # checked again right before delivery
        vendor.before_delivery(make_profile(), RunPaths(tmp_path), None)


def test_values_outside_the_configuration_blanks_and_duplicate_ids_are_named_by_line_column_rule(
        built, roster_packages):  # noqa: F811
    build_dir, snap = built
    record_roster(roster_packages())
    path = build_dir / "student_subgroups.csv"
    lines = path.read_bytes().split(b"\r\n")
    lines[2] = lines[2].replace(b'"RFEP"', b'"R"')  # line 3: ell not a configured value
    lines[3] = lines[3].replace(b'"yes"', b"", 1)  # line 4: title_i blank
    lines[5] = lines[1]  # line 6: A001 again
    path.write_bytes(b"\r\n".join(lines))
    report = vendor.validate(make_profile(), build_dir)
    found = {(f.rule, f.column, f.rows) for f in report.findings}
    assert found == {
        ("subgroups.student_id_unique", "student_id", (2, 6)),
        ("subgroups.ell_allowed_value", "ell", (3,)),
        ("subgroups.title_i_required", "title_i", (4,)),
    }
    messages = {f.rule: f.message for f in report.findings}
    assert messages["subgroups.ell_allowed_value"] == "value is not one of the column's configured values"
    assert "allow_blank" in messages["subgroups.title_i_required"]
    assert_value_free(report)


def test_allow_blank_permits_empty_values(built, roster_packages, tmp_path):  # noqa: F811
    build_dir, snap = built
    record_roster(roster_packages())
    columns = [{"name": "ell", "program": "ELL", "format": "map", "values": {"EL": "EL", "RFEP": "RFEP"},
                "allow_blank": True}]
    profile = make_profile(columns)
    vendor.build(snap, profile, build_dir, reports_dir=tmp_path / "reports2")
    text = (build_dir / "student_subgroups.csv").read_bytes().decode()
    assert '"A007",\r\n' in text and '"A003",\r\n' in text  # no program / unmapped, no none/other: blank
    assert vendor.validate(profile, build_dir).ok
    strict = make_profile([{**columns[0], "allow_blank": False}])
    assert vendor.validate(strict, build_dir).rules() == {"subgroups.ell_required"}


def test_a_changed_header_is_reported_not_guessed(built, roster_packages):  # noqa: F811
    build_dir, snap = built
    record_roster(roster_packages())
    path = build_dir / "student_subgroups.csv"
    path.write_bytes(path.read_bytes().replace(b"student_id,ell,sped", b"student_id,sped,ell", 1))
    report = vendor.validate(make_profile(), build_dir)
    assert "csv.header_exact" in report.rules()
