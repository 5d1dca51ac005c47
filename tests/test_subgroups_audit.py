"""What changed against the previous delivery, the audit trail (written only after a delivery), and the column hold.

Whole runs go through the pipeline stages (extract -> build -> validate -> package -> deliver) and a real SFTP server
on loopback; the ST Math roster delivery they are checked against is a real kept OneRoster.zip record.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from rostering import pipeline
from rostering.delivery.holds import DeliveryHeld
from rostering.delivery.records import last_good, list_deliveries
from rostering.devservers.sftp_server import LocalSFTPServer
from rostering.run_options import RunOptions
from rostering.sis.extract import school_year_for
from rostering.subgroups import audit
from rostering.subgroups.vendor import compare_columns
from rostering.summary import format_summary, run_summary
from subgroups_helpers import (  # noqa: F401 - fixtures
    TEST_COLUMNS, district_db, isolated_state, make_profile, record_roster, roster_packages, snapshots)

PASSWORD = "derivita-test-pass"


@pytest.fixture
def env(tmp_path, monkeypatch, roster_packages):  # noqa: F811
    """State folder, a real SFTP server with a derivita account, its Airflow connection, and ST Math's delivery."""
    monkeypatch.setenv("ROSTERING_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ROSTERING_WORK_DIR", str(tmp_path / "work"))
    record_roster(roster_packages())
    with LocalSFTPServer(root=tmp_path / "sftp", users={"derivita": PASSWORD},
                         host_key_path=tmp_path / "host_key") as server:
        monkeypatch.setenv("AIRFLOW_CONN_DERIVITA_TEST_SFTP", json.dumps({
            "conn_type": "sftp", "host": server.host, "port": server.port, "login": "derivita",
            "password": PASSWORD, "extra": {"host_key": server.host_key_line, "look_for_keys": "false"}}))
        yield server


def run(engine, tmp_path: Path, profile, as_of: dt.date, run_id: str, **extra):
    """One run through the pipeline stages, as the DAG's tasks call them; returns (paths, summary)."""
    paths = pipeline.RunPaths.for_run(profile.dag_id, run_id)  # under ROSTERING_WORK_DIR, as in the DAG
    options = RunOptions(as_of, school_year_for(as_of), False, False, (), extra)
    extracted = pipeline.extract(engine, paths, options)
    built = pipeline.build(profile, paths, options)
    pipeline.validate(profile, paths)
    packaged = pipeline.package(profile, paths)
    delivered = pipeline.deliver(profile, packaged, run_id=run_id, run=options)  # paths resolved as the DAG does
    return paths, run_summary(profile, options, extracted, built, packaged, delivered)


def test_diff_of_two_files_hand_worked():
    previous = pd.DataFrame({"student_id": ["A", "B", "C"], "ell": ["EL", "EO", "EL"], "sped": ["n", "y", None],
                             "old": ["1", "0", "1"]}, dtype="string")
    current = pd.DataFrame({"student_id": ["A", "C", "D"], "ell": ["RFEP", "EL", "EO"], "sped": ["n", "n", "y"],
                            "gate": ["y", "n", "n"]}, dtype="string")
    changes = audit.diff_subgroups(previous, current, as_of_date="2026-11-23", compared_with="T0")
    got = [tuple("" if pd.isna(v) else v for v in row)
           for row in changes[["student_id", "change", "column", "old_value", "new_value"]].itertuples(index=False)]
    assert got == [
        ("A", "changed", "ell", "EL", "RFEP"),
        ("A", "column_added", "gate", "", "y"),
        ("A", "column_removed", "old", "1", ""),
        ("B", "student_removed", "ell", "EO", ""),
        ("B", "student_removed", "sped", "y", ""),
        ("B", "student_removed", "old", "0", ""),
        ("C", "changed", "sped", "", "n"),  # blank -> n is a change
        ("C", "column_added", "gate", "", "n"),
        ("C", "column_removed", "old", "1", ""),
        ("D", "student_added", "ell", "", "EO"),
        ("D", "student_added", "sped", "", "y"),
        ("D", "student_added", "gate", "", "n"),
    ]
    assert set(changes["as_of_date"]) == {"2026-11-23"} and set(changes["compared_with"]) == {"T0"}
    counts = audit.change_counts(changes)
    assert (counts["students_added"], counts["students_removed"], counts["values_changed"]) == (1, 1, 2)
    assert counts["values_changed_by_column"] == {"ell": 1, "sped": 1}
    assert (counts["columns_added"], counts["columns_removed"]) == (["gate"], ["old"])
    assert audit.diff_subgroups(current, current, as_of_date="x", compared_with="y").empty


def test_diff_aligns_students_by_id_whatever_the_row_order():
    """Rows in any order, an id given twice (its first row counts), ids after one another's in both files."""
    previous = pd.DataFrame({"student_id": ["Z", "B", "A", "B"], "ell": ["EO", "EL", "EO", "RFEP"]}, dtype="string")
    current = pd.DataFrame({"student_id": ["C", "A", "B", "C", "B"], "ell": ["EL", "EO", "RFEP", "EO", "EL"]},
                           dtype="string")
    changes = audit.diff_subgroups(previous, current, as_of_date="2026-11-23", compared_with=None)
    assert changes[["student_id", "change", "old_value", "new_value"]].fillna("").values.tolist() == [
        ["B", "changed", "EL", "RFEP"],
        ["C", "student_added", "", "EL"],
        ["Z", "student_removed", "EO", ""],
    ]
    assert changes["compared_with"].isna().all() and (changes.dtypes == "string").all()
    counts = audit.change_counts(changes.iloc[::-1])  # counted the same in any row order
    assert (counts["students_added"], counts["students_removed"], counts["values_changed"]) == (1, 1, 1)


def test_compare_columns_flags_added_removed_and_reordered():
    assert compare_columns(None, ["student_id", "ell"])["changed"] is False  # the first delivery
    assert compare_columns(["student_id", "ell"], ["student_id", "ell"])["changed"] is False
    renamed = compare_columns(["student_id", "ell", "sped"], ["student_id", "ell_status", "sped"])
    assert (renamed["added"], renamed["removed"], renamed["changed"]) == (["ell_status"], ["ell"], True)
    reordered = compare_columns(["student_id", "ell", "sped"], ["student_id", "sped", "ell"])
    assert reordered["reordered"] and reordered["changed"] and not reordered["added"]


def test_a_flag_flip_is_recorded_in_the_audit_trail_and_found_by_the_cli(env, district_db, tmp_path,  # noqa: F811
                                                                         capsys):
    profile = make_profile(conn_id="derivita_test_sftp")
    state = tmp_path / "state"
    run(district_db, tmp_path, profile, dt.date(2026, 11, 22), "scheduled__2026-11-22")
    paths, summary = run(district_db, tmp_path, profile, dt.date(2026, 11, 23), "scheduled__2026-11-23")

    delivered = env.home("derivita") / "student_subgroups.csv"
    assert delivered.read_bytes() == (paths.build / "student_subgroups.csv").read_bytes()
    # Between the 22nd and the 23rd: A001's SPED starts; A002 is reclassified EL -> RFEP and leaves GATE.
    changes = summary["details"]["changes"]
    assert (changes["students_added"], changes["students_removed"], changes["values_changed"]) == (0, 0, 4)
    assert changes["values_changed_by_column"] == {"el_only": 1, "ell": 1, "gate": 1, "sped": 1}
    assert summary["audit"]["audit_rows"] == 4 and "changes:" in format_summary(summary)

    first, second = list_deliveries("derivita")
    found = audit.history("A002", "ell")
    assert found[["delivered_at", "change", "old_value", "new_value"]].fillna("").values.tolist() == [
        [first.delivered_at, "student_added", "", "EL"],
        [second.delivered_at, "changed", "EL", "RFEP"],
    ]
    assert found["run_id"].tolist() == ["scheduled__2026-11-22", "scheduled__2026-11-23"]

    capsys.readouterr()  # what the runs printed (Airflow logs to stdout)
    assert audit.main(["--student", "A002", "--column", "ell", "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "delivered_at,run_id,as_of_date,compared_with,student_id,change,column,old_value,new_value"
    assert out[2] == (f"{second.delivered_at},scheduled__2026-11-23,2026-11-23,{first.delivered_at},"
                      "A002,changed,ell,EL,RFEP")

    kept = Path(second.directory) / "subgroup_changes.csv"  # beside the kept payload, owner-only
    assert kept.read_bytes().count(b"\r\n") == 5 and stat.S_IMODE(kept.stat().st_mode) == 0o600
    folder = state / "audit" / "derivita"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    parquet = sorted(folder.glob("*.parquet"))
    assert len(parquet) == 2 and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in parquet)
    assert (paths.reports / "subgroup_changes.csv").exists()


def test_a_column_added_between_runs_is_held_until_accepted(env, district_db, tmp_path):  # noqa: F811
    day = dt.date(2026, 11, 23)
    run(district_db, tmp_path, make_profile(TEST_COLUMNS[:2], conn_id="derivita_test_sftp"), day, "run1")
    delivered = env.home("derivita") / "student_subgroups.csv"
    before, record = delivered.read_bytes(), last_good("derivita")
    wider = make_profile([*TEST_COLUMNS[:2], TEST_COLUMNS[4]], conn_id="derivita_test_sftp")  # + gate

    with pytest.raises(DeliveryHeld, match="added: gate; removed: none") as held:
        run(district_db, tmp_path, wider, day, "run2")
    assert "accept_column_change=true" in str(held.value)
    assert delivered.read_bytes() == before  # the previous delivery is untouched
    assert last_good("derivita") == record and len(list((tmp_path / "state" / "audit" / "derivita").iterdir())) == 1
    assert not pipeline.delivery_module(wider).is_transient(held.value)  # the DAG fails it, no retry

    paths, summary = run(district_db, tmp_path, wider, day, "run3", accept_column_change=True)
    assert delivered.read_bytes().startswith(b"student_id,ell,sped,gate\r\n")
    assert summary["details"]["columns"] == {"added": ["gate"], "removed": [], "reordered": False, "changed": True}
    assert summary["audit"]["column_change_accepted"] == "added: gate; removed: none"
    assert "COLUMNS CHANGED" in format_summary(summary)
    assert audit.history("A002", "gate")[["change", "new_value"]].values.tolist() == [["column_added", "n"]]


def test_a_column_change_held_before_the_guard_is_recorded_and_can_be_discarded(
        env, district_db, tmp_path):  # noqa: F811
    """Derivita's own hold (columns, before the change guard ran) is one held.json like any hold, so the operations
    DAG's discard_held takes it, as the DAG doc says."""
    from rostering import operations
    from rostering.delivery.decisions import read_decisions

    day = dt.date(2026, 11, 23)
    run(district_db, tmp_path, make_profile(TEST_COLUMNS[:2], conn_id="derivita_test_sftp"), day, "run1")
    wider = make_profile([*TEST_COLUMNS[:2], TEST_COLUMNS[4]], conn_id="derivita_test_sftp")
    with pytest.raises(Exception) as held:  # noqa: PT011 - the class is checked below
        run(district_db, tmp_path, wider, day, "run2")
    paths = pipeline.RunPaths.for_run(wider.dag_id, "run2")
    assert not (paths.reports / "guard.json").exists()  # held before the guard compared anything

    with pytest.raises(ValueError, match="run 'run1' .* is not a held delivery"):  # delivered, not held
        operations.discard_held(wider, run_id="run1", reason="wrong layout")
    decision = operations.discard_held(wider, run_id="run2", reason="Derivita did not agree to gate")
    assert decision["discarded"] is True and decision["kind"] == "columns"
    assert isinstance(held.value, DeliveryHeld) and held.value.kind == "columns" and held.value.diff is None
    record = json.loads((paths.reports / "held.json").read_text())
    assert {k: record[k] for k in ("held", "kind", "run_id", "fingerprint")} == {
        "held": True, "kind": "columns", "run_id": "run2", "fingerprint": None}
    assert "added: gate" in record["reason"] and record["at"]
    assert not paths.build.exists() and not paths.payload.exists()
    assert json.loads((paths.reports / "discarded.json").read_text())["reason"] == "Derivita did not agree to gate"
    [logged] = [d for d in read_decisions(vendor="derivita") if d["action"] == "discard_held"]
    assert logged["run_id"] == "run2"
    with pytest.raises(ValueError, match="already discarded"):
        operations.discard_held(wider, run_id="run2", reason="again")


def test_no_audit_when_the_delivery_fails(env, district_db, tmp_path, monkeypatch):  # noqa: F811
    conn = json.loads(os.environ["AIRFLOW_CONN_DERIVITA_TEST_SFTP"])
    monkeypatch.setenv("AIRFLOW_CONN_DERIVITA_TEST_SFTP", json.dumps({**conn, "password": "wrong"}))
    with pytest.raises(Exception) as failed:
        run(district_db, tmp_path, make_profile(conn_id="derivita_test_sftp"), dt.date(2026, 11, 23), "run1")
    assert type(failed.value).__name__ == "AuthenticationException"
    assert last_good("derivita") is None
    assert not (tmp_path / "state" / "audit").exists()
    assert list(env.home("derivita").iterdir()) == []
