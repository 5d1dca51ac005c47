"""Operator actions: re-deliver last good (to a real SFTP server), discard a held run, purge by retention, query."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from sftp_fixtures import PASSWORD, USER, sftp_server  # noqa: F401 - fixture

from rostering import operations
from rostering.delivery.holds import DeliveryHeld, record_hold
from rostering.delivery.records import list_deliveries, record_delivery
from rostering.pipeline import RunPaths
from rostering.vendors.profile import Delivery, load_profile

NOW = dt.datetime(2026, 11, 23, 12, tzinfo=dt.timezone.utc)


@pytest.fixture()
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("ROSTERING_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ROSTERING_WORK_DIR", str(tmp_path / "work"))
    return tmp_path


def deliver_record(tmp_path, content: bytes, when: dt.datetime, run_id: str):
    payload = tmp_path / "src" / run_id / "OneRoster.zip"
    payload.parent.mkdir(parents=True)
    payload.write_bytes(content)
    return record_delivery(vendor="stmath", destination="sftp://stmath_sftp/~", run_id=run_id,
                           as_of_date=when.date().isoformat(), files=[payload],
                           checksums={"OneRoster.zip": f"sha-{run_id}"}, now=when)


def test_redeliver_sends_the_kept_copy_byte_for_byte(state, sftp_server, monkeypatch):  # noqa: F811
    deliver_record(state, b"old", NOW - dt.timedelta(days=2), "r1")
    deliver_record(state, b"the last good package", NOW - dt.timedelta(days=1), "r2")
    monkeypatch.setenv("AIRFLOW_CONN_OPS_SFTP", json.dumps({
        "conn_type": "sftp", "host": sftp_server.host, "port": sftp_server.port, "login": USER, "password": PASSWORD,
        "extra": {"host_key": sftp_server.host_key_line, "look_for_keys": "false"}}))
    profile = dataclasses.replace(load_profile("stmath"), delivery=Delivery(kind="sftp", conn_id="ops_sftp"))
    result = operations.redeliver_last_good(profile, reason="vendor restored a backup", run_id="manual__ops")
    assert (sftp_server.home(USER) / "OneRoster.zip").read_bytes() == b"the last good package"
    records = list_deliveries("stmath")
    assert len(records) == 3 and records[-1].note.startswith("re-delivery of the delivery of")
    assert "vendor restored a backup" in records[-1].note and result["redelivered"] == records[1].delivered_at
    with pytest.raises(ValueError, match="reason"):
        operations.redeliver_last_good(profile, reason=" ", run_id="x")


def test_discard_only_a_held_run_and_keep_the_decision(state):
    profile = load_profile("stmath")
    paths = RunPaths.for_run(profile.dag_id, "scheduled__held")
    paths.build.mkdir(parents=True)
    (paths.build / "users.csv").write_text("x")
    with pytest.raises(ValueError, match="not a held delivery"):
        operations.discard_held(profile, run_id="scheduled__held", reason="bad extract")
    paths.write_report("guard.json", {"held": True})  # a guard report alone is not a hold (a dry run writes one)
    with pytest.raises(ValueError, match="not a held delivery"):
        operations.discard_held(profile, run_id="scheduled__held", reason="bad extract")
    record_hold(paths, DeliveryHeld("students: 40.0% deleted (limit 10%)", "guard"), "scheduled__held")
    decision = operations.discard_held(profile, run_id="scheduled__held", reason="bad extract")
    assert decision["reason"] == "bad extract" and not paths.build.exists()
    assert json.loads((paths.reports / "discarded.json").read_text())["discarded"] is True


def test_purge_removes_expired_copies_but_always_keeps_the_newest(state):
    deliver_record(state, b"a", NOW - dt.timedelta(days=60), "r1")
    deliver_record(state, b"b", NOW - dt.timedelta(days=45), "r2")  # newest: kept although expired
    old_run = state / "work" / "stmath_oneroster" / "old"
    old_run.mkdir(parents=True)
    import os
    os.utime(old_run, (0, 0))
    audit = state / "state" / "audit" / "derivita"
    audit.mkdir(parents=True)
    (audit / "2025-09-01T000000000000Z_r0.parquet").write_bytes(b"old")   # 448 days before NOW
    (audit / "2026-01-05T000000000000Z_r9.parquet").write_bytes(b"kept")  # 322 days
    purged = operations.purge_expired(["stmath", "literably"], retention_days=30, now=NOW)
    assert purged == {"deliveries": 1, "runs": 1, "audit_files": 1}
    assert [p.name for p in audit.iterdir()] == ["2026-01-05T000000000000Z_r9.parquet"]
    assert [r.run_id for r in list_deliveries("stmath")] == ["r2"] and not old_run.exists()


def test_cleanup_removes_the_snapshot_always_and_built_files_once_delivered(tmp_path):
    paths = RunPaths(tmp_path / "run")
    for folder in (paths.snapshot, paths.build, paths.payload, paths.reports):
        folder.mkdir(parents=True)
    operations.cleanup_run(paths, delivered=False)
    assert not paths.snapshot.exists() and paths.build.exists()  # kept for review (held, dry run)
    operations.cleanup_run(paths, delivered=True)
    assert not paths.build.exists() and not paths.payload.exists() and paths.reports.exists()


def test_what_did_we_send_on_a_day(state, capsys):
    deliver_record(state, b"a", dt.datetime(2026, 11, 3, 10, tzinfo=dt.timezone.utc), "r-3rd")
    deliver_record(state, b"b", dt.datetime(2026, 11, 4, 10, tzinfo=dt.timezone.utc), "r-4th")
    rows = operations.describe_deliveries("stmath", on="2026-11-03")
    assert [r["run_id"] for r in rows] == ["r-3rd"]
    operations.main(["deliveries", "--vendor", "stmath", "--on", "2026-11-04"])
    out = capsys.readouterr().out
    assert "r-4th" in out and "r-3rd" not in out and "OneRoster.zip" in out
