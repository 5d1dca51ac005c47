"""Delivered but not recorded (issue 15): two-phase delivery records, atomic private record files, CERS files
recorded as each is accepted, orphan copies purged, the operators' decisions log, no staff password in kept copies.

Faults are injected into real servers on loopback (rostering.devservers: SFTP and the CERS stand-in) and into the
state folder's disk (``StateDiskFull``: fsync reports ENOSPC, the way a full volume shows up for a buffered write).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import io
import json
import os
import shutil
import stat
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from cers_helpers import EXPECTED
from sftp_fixtures import PASSWORD, USER, sftp_server  # noqa: F401 - fixture

from rostering import operations, pipeline
from rostering.csvio import sha256_of, write_csv
from rostering.delivery import sftp
from rostering.delivery.records import last_good, list_deliveries, record_delivery
from rostering.run_options import RunOptions
from rostering.vendors.profile import Delivery, load_profile

NOW = dt.datetime(2026, 11, 23, 12, tzinfo=dt.timezone.utc)
RUN = RunOptions.from_params({}, run_after=NOW, timezone="UTC")
STAFF_PASSWORD = "placeholder-xyz"


class StateDiskFull:
    """While ``on``: fsync of anything under ``folder`` fails with ENOSPC (the disk filled up)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
        self.folder, self.on, self.hits = str(folder.resolve()), False, 0
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            if self.on and os.readlink(f"/proc/self/fd/{fd}").startswith(self.folder):
                self.hits += 1
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)


@pytest.fixture()
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("ROSTERING_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ROSTERING_WORK_DIR", str(tmp_path / "work"))
    return tmp_path / "state"


# -- SFTP: the record exists before anything is sent ---------------------------------------------------------------


@pytest.fixture()
def stmath(tmp_path, state, monkeypatch, sftp_server):  # noqa: F811
    monkeypatch.setenv("AIRFLOW_CONN_REC_SFTP", json.dumps({
        "conn_type": "sftp", "host": sftp_server.host, "port": sftp_server.port, "login": USER,
        "password": PASSWORD, "extra": {"host_key": sftp_server.host_key_line, "look_for_keys": "false"}}))
    profile = dataclasses.replace(load_profile("stmath"), delivery=Delivery(kind="sftp", conn_id="rec_sftp"))
    payload = tmp_path / "payload" / "OneRoster.zip"
    payload.parent.mkdir()
    payload.write_bytes(zip_bytes())
    packaged = {"files": [{"path": str(payload), "sha256": sha256_of(payload), "size": payload.stat().st_size}]}
    received = sftp_server.home(USER) / "OneRoster.zip"
    received.write_bytes(b"last good package")
    return profile, packaged, received


def zip_bytes() -> bytes:
    """A small zip with fixed timestamps (the guard reads the kept copy of the last delivery as a zip)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("filler.txt", (2026, 1, 1, 0, 0, 0)), b"new package " * 1000)
    return buffer.getvalue()


def deliver(profile, packaged, run_id="scheduled__1", run=RUN):
    paths = pipeline.RunPaths.for_run(profile.dag_id, run_id)
    paths.build.mkdir(parents=True, exist_ok=True)
    return pipeline.deliver(profile, packaged, run_id=run_id, run=run, paths=paths)


def test_a_full_state_disk_before_sending_means_nothing_is_sent(stmath, state, monkeypatch):
    profile, packaged, received = stmath
    StateDiskFull(monkeypatch, state).on = True
    with pytest.raises(OSError) as failed:
        deliver(profile, packaged)
    assert failed.value.errno == errno.ENOSPC
    assert received.read_bytes() == b"last good package"  # the receiver was never contacted
    assert list_deliveries("stmath") == [] and operations.describe_deliveries("stmath") == []
    assert not any((state / "deliveries" / "stmath").iterdir())  # the half-kept copy was removed


def test_a_record_that_cannot_be_confirmed_after_the_upload_is_finished_by_the_retry(stmath, state, monkeypatch):
    profile, packaged, received = stmath
    full = StateDiskFull(monkeypatch, state)
    upload = sftp.deliver_payload

    def upload_then_the_disk_fills(delivery, files):
        result = upload(delivery, files)
        full.on = not full.hits  # the first attempt only
        return result

    monkeypatch.setattr(sftp, "deliver_payload", upload_then_the_disk_fills)
    with pytest.raises(OSError):
        deliver(profile, packaged)
    assert received.read_bytes() == zip_bytes()  # it went out ...
    rows = operations.describe_deliveries("stmath")  # ... and the record says so, unconfirmed
    assert [(r["run_id"], r["outcome"]) for r in rows] == [("scheduled__1", "sending")]
    assert last_good("stmath") is None and list_deliveries("stmath") == []  # never a baseline while unconfirmed
    operations.main(["deliveries", "--vendor", "stmath"])

    full.on = False
    deliver(profile, packaged)  # the Airflow task's retry finishes its own record instead of making a second
    every = list_deliveries("stmath", include_unfinished=True)
    assert [(r.run_id, r.outcome) for r in every] == [("scheduled__1", "delivered")]
    assert last_good("stmath").directory == every[0].directory
    assert [r["outcome"] for r in operations.describe_deliveries("stmath")] == ["delivered"]


def test_a_delivered_run_retried_is_not_sent_again(stmath, state, monkeypatch):
    profile, packaged, received = stmath
    deliver(profile, packaged)
    received.write_bytes(b"changed at the receiver")
    deliver(profile, packaged)  # e.g. a task after the record failed and the task was retried
    assert received.read_bytes() == b"changed at the receiver" and len(list_deliveries("stmath")) == 1
    deliver(profile, packaged, run=dataclasses.replace(RUN, force=True))  # force: a person wants it sent again
    assert received.read_bytes() == zip_bytes() and len(list_deliveries("stmath")) == 2


# -- record files: atomic, owner-only ------------------------------------------------------------------------------


def test_record_files_are_private_and_replaced_atomically(tmp_path, monkeypatch):
    base = tmp_path / "state"
    payload = tmp_path / "OneRoster.zip"
    payload.write_bytes(b"zip")
    record = record_delivery(vendor="stmath", destination="sftp://x/~", run_id="r1", as_of_date="2026-11-23",
                             files=[payload], checksums={"OneRoster.zip": "sha"}, now=NOW, base=base)
    kept = Path(record.directory)
    for folder in (base / "deliveries", base / "deliveries" / "stmath", kept):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for file in kept.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file

    from rostering.delivery.records import begin_delivery, finish_delivery

    sending = begin_delivery(vendor="stmath", destination="sftp://x/~", run_id="r2", as_of_date="2026-11-24",
                             files=[payload], checksums={"OneRoster.zip": "sha"}, base=base)
    before = (Path(sending.directory) / "record.json").read_bytes()
    StateDiskFull(monkeypatch, base).on = True
    with pytest.raises(OSError):
        finish_delivery(sending, destination="sftp://x/~")
    assert (Path(sending.directory) / "record.json").read_bytes() == before  # never half a record
    assert sorted(p.name for p in Path(sending.directory).iterdir()) == ["OneRoster.zip", "record.json"]  # no tmp


# -- CERS: each accepted file is recorded, the baseline is per file ------------------------------------------------


CLIENT_ID, CLIENT_SECRET, CERS_USER, CERS_PASSWORD = "district-sis", "client-secret-value", "sysuser", "system-pw"
FAST = {"backoff_s": 0.01, "max_backoff_s": 5, "first_poll_s": 0.01, "poll_interval_s": 0.02, "request_timeout_s": 5}


@pytest.fixture()
def cers(state, monkeypatch):
    from rostering.devservers.cers_server import LocalCersServer

    with LocalCersServer(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, users={CERS_USER: CERS_PASSWORD},
                         process_after_polls=1) as server:
        monkeypatch.setenv("AIRFLOW_CONN_CERS_API", json.dumps({
            "conn_type": "http", "host": server.url, "login": CERS_USER, "password": CERS_PASSWORD,
            "extra": {"token_url": "/auth/token", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                      "verify": str(server.ca_path)}}))
        profile = dataclasses.replace(load_profile("cers"),
                                      delivery=Delivery(kind="cers_api", conn_id="cers_api", options=FAST))
        yield profile, server


def cers_run(profile, run_id, *sources: Path):
    paths = pipeline.RunPaths.for_run(profile.dag_id, run_id)
    for folder in (paths.build, paths.payload):
        folder.mkdir(parents=True, exist_ok=True)
        for source in sources:
            shutil.copyfile(source, folder / source.name)
    return paths, {"files": [{"path": str(paths.payload / s.name), "sha256": sha256_of(s)} for s in sources]}


def test_cers_records_the_files_accepted_before_another_import_failed(cers):
    from rostering.delivery.cers_api import CersImportFailed

    profile, server = cers
    paths, packaged = cers_run(profile, "manual__1", EXPECTED / "counselors.csv", EXPECTED / "primary_only.csv")
    server.known_schools = {"19647330000001"}  # counselors.csv (school 2) fails, primary_only.csv is PROCESSED
    pipeline.deliver(profile, packaged, run_id="manual__1", run=RUN, paths=paths)  # uploads (deliver task)
    with pytest.raises(CersImportFailed):  # the imports' outcome: the confirm_delivery sensor's poke
        pipeline.confirm_delivery(profile, packaged, run_id="manual__1", run=RUN, paths=paths)
    [row] = operations.describe_deliveries("cers")
    assert row["outcome"] == "partial" and row["unconfirmed"] == ["counselors.csv"]
    from rostering.delivery.records import last_good_baseline

    baseline = last_good_baseline("cers", per_file=True)
    assert [f["name"] for f in baseline.files] == ["primary_only.csv"]
    assert baseline.path("primary_only.csv").read_bytes() == (EXPECTED / "primary_only.csv").read_bytes()
    assert last_good("cers") is None  # not a whole delivery

    server.known_schools = None  # fixed at the receiver; the tasks are cleared and retried
    pipeline.deliver(profile, packaged, run_id="manual__1", run=RUN, paths=paths)
    assert pipeline.confirm_delivery(profile, packaged, run_id="manual__1", run=RUN, paths=paths)
    guard = json.loads((paths.reports / "guard.json").read_text())
    assert guard["baseline"] is None  # judged as its first attempt was, not against its own partial delivery
    every = list_deliveries("cers", include_unfinished=True)
    assert [(r.run_id, r.outcome, r.pending) for r in every] == [("manual__1", "delivered", [])]
    assert sorted((i.filename, i.status) for i in server.imports.values()) == [
        ("counselors.csv", "PROCESSED"), ("counselors.csv", "UNKNOWN_SCHOOL"),
        ("primary_only.csv", "PROCESSED")]  # primary_only.csv was not uploaded again


def test_the_cers_change_guard_compares_with_the_newest_accepted_copy_of_each_file(state):
    from rostering.delivery.records import begin_delivery, last_good_baseline, mark_accepted

    profile = load_profile("cers")
    sources = [EXPECTED / "counselors.csv", EXPECTED / "primary_only.csv"]
    checksums = {s.name: sha256_of(s) for s in sources}
    record_delivery(vendor="cers", destination="cers_api://x", run_id="scheduled__1", as_of_date="2026-11-20",
                    files=sources, checksums=checksums, now=NOW - dt.timedelta(days=2), per_file=True)
    partial = begin_delivery(vendor="cers", destination="cers_api://x", run_id="scheduled__2",
                             as_of_date="2026-11-21", files=sources, checksums=checksums, per_file=True,
                             now=NOW - dt.timedelta(days=1))
    mark_accepted(partial, names=["primary_only.csv"])
    composed = last_good_baseline("cers", per_file=True)
    assert len(composed.records) == 2

    paths, _ = cers_run(profile, "manual__3", *sources)
    pipeline.change_guard(profile, paths, RUN)
    assert "from 2 deliveries" in json.loads((paths.reports / "guard.json").read_text())["baseline"]  # composed
    retry, _ = cers_run(profile, "scheduled__2", *sources)  # the partial run's own retry: what was held before it
    pipeline.change_guard(profile, retry, RUN)
    assert "(run scheduled__1)" in json.loads((retry.reports / "guard.json").read_text())["baseline"]


def test_the_per_file_baseline_is_the_newest_accepted_copy_of_each_file(tmp_path):
    from rostering.delivery.records import begin_delivery, last_good_baseline, mark_accepted

    base = tmp_path / "state"

    def files(version: str) -> list[Path]:
        folder = tmp_path / version
        folder.mkdir()
        for name in ("a.csv", "b.csv"):
            (folder / name).write_text(f"{name} {version}")
        return [folder / "a.csv", folder / "b.csv"]

    first = record_delivery(vendor="cers", destination="cers_api://x", run_id="r1", as_of_date="2026-11-20",
                            files=files("v1"), checksums={"a.csv": "a1", "b.csv": "b1"}, now=NOW, base=base,
                            per_file=True)
    second = begin_delivery(vendor="cers", destination="cers_api://x", run_id="r2", as_of_date="2026-11-21",
                            files=files("v2"), checksums={"a.csv": "a2", "b.csv": "b2"}, base=base, per_file=True,
                            now=NOW + dt.timedelta(days=1))
    mark_accepted(second, names=["a.csv"])
    baseline = last_good_baseline("cers", per_file=True, base=base)
    assert [(f["name"], f["sha256"]) for f in baseline.files] == [("a.csv", "a2"), ("b.csv", "b1")]
    assert baseline.path("a.csv").read_text() == "a.csv v2" and baseline.path("b.csv").read_text() == "b.csv v1"
    assert baseline.run_id == "r2" and "2 files" in baseline.description
    whole = last_good_baseline("cers", per_file=False, base=base)  # all-or-nothing receivers: the last whole set
    assert whole.directory == first.directory and [f["sha256"] for f in whole.files] == ["a1", "b1"]


# -- purge ----------------------------------------------------------------------------------------------------------


def test_purge_removes_kept_copies_left_without_a_record(state, tmp_path):
    payload = tmp_path / "OneRoster.zip"
    payload.write_bytes(b"zip")
    newest = record_delivery(vendor="stmath", destination="sftp://x/~", run_id="r1", as_of_date="2026-11-01",
                             files=[payload], checksums={"OneRoster.zip": "r1"}, now=NOW - dt.timedelta(days=1))
    vendor = state / "deliveries" / "stmath"
    crashed, writing = vendor / "2026-10-01T000000000000Z_crashed", vendor / "2026-11-23T115900000000Z_now"
    for folder in (crashed, writing):
        folder.mkdir()
        (folder / "OneRoster.zip").write_bytes(b"copy without a record")
    os.utime(crashed, (0, 0))  # a crash long ago; ``writing`` is being recorded right now: left alone
    assert operations.purge_expired(["stmath"], retention_days=30, now=dt.datetime.now(dt.timezone.utc))[
        "deliveries"] == 1
    assert sorted(p.name for p in vendor.iterdir()) == sorted([Path(newest.directory).name, writing.name])


def test_purge_removes_orphan_copies_and_stale_unconfirmed_records(state, tmp_path):
    from rostering.delivery.records import begin_delivery

    payload = tmp_path / "OneRoster.zip"
    payload.write_bytes(b"zip")

    def one(run_id, days_ago, *, confirmed=True):
        make = record_delivery if confirmed else begin_delivery
        return make(vendor="stmath", destination="sftp://x/~", run_id=run_id, as_of_date="2026-11-01",
                    files=[payload], checksums={"OneRoster.zip": run_id}, now=NOW - dt.timedelta(days=days_ago))

    one("old", 60)
    newest = one("newest", 45)  # the newest accepted record: the guard's baseline, kept whatever its age
    one("stale-sending", 40, confirmed=False)
    fresh = one("fresh-sending", 1, confirmed=False)
    orphan = state / "deliveries" / "stmath" / "2026-10-01T000000000000Z_crashed"
    orphan.mkdir()
    (orphan / "OneRoster.zip").write_bytes(b"copy without a record")
    os.utime(orphan, (0, 0))
    purged = operations.purge_expired(["stmath"], retention_days=30, now=NOW)
    assert purged["deliveries"] == 3
    left = sorted(p.name for p in (state / "deliveries" / "stmath").iterdir())
    assert left == sorted([Path(newest.directory).name, Path(fresh.directory).name])


def test_purge_keeps_every_record_of_a_per_file_baseline(state, tmp_path):
    def one(run_id, names, days_ago):
        folder = tmp_path / run_id
        folder.mkdir()
        for name in names:
            (folder / name).write_text(run_id)
        return record_delivery(vendor="cers", destination="cers_api://x", run_id=run_id, as_of_date="2026-10-01",
                               files=[folder / n for n in names], checksums={n: run_id for n in names},
                               now=NOW - dt.timedelta(days=days_ago), per_file=True)

    one("a-and-b", ["a.csv", "b.csv"], 90)  # b.csv's newest accepted copy: still what the receiver holds of b
    one("a-only", ["a.csv"], 60)
    assert operations.purge_expired(["cers"], retention_days=30, now=NOW)["deliveries"] == 0


# -- the operators' decisions log ----------------------------------------------------------------------------------


def test_decisions_are_appended_to_a_private_log_that_outlives_run_folders(state, stmath, monkeypatch):
    from rostering.delivery.decisions import read_decisions, record_decision

    profile, packaged, received = stmath
    held = pipeline.RunPaths.for_run(profile.dag_id, "scheduled__held")
    held.build.mkdir(parents=True)
    from rostering.delivery.holds import DeliveryHeld, record_hold

    record_hold(held, DeliveryHeld("students: 40.0% deleted (limit 10%)", "guard"), "scheduled__held")
    operations.discard_held(profile, run_id="scheduled__held", reason="bad SIS import")
    deliver(profile, packaged)
    operations.redeliver_last_good(profile, reason="vendor lost the file", run_id="manual__ops")
    record_decision(action="approve_changes", vendor="stmath", run_id="scheduled__2", reason="school closed",
                    details={"held_run_id": "scheduled__held"})

    log_file = state / "decisions" / "decisions.jsonl"
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(log_file.parent.stat().st_mode) == 0o700
    entries = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [(e["action"], e["run_id"], e["reason"]) for e in entries] == [
        ("discard_held", "scheduled__held", "bad SIS import"),
        ("redeliver_last_good", "manual__ops", "vendor lost the file"),
        ("approve_changes", "scheduled__2", "school closed")]
    assert all(e["vendor"] == "stmath" and e["at"].endswith("+00:00") for e in entries)
    shutil.rmtree(state.parent / "work")  # run folders are purged after 30 days; the decisions stay
    assert [e["action"] for e in read_decisions(vendor="stmath")] == [e["action"] for e in entries]


# -- Literably's shared staff password is not kept -----------------------------------------------------------------


@pytest.fixture()
def literably(tmp_path, state, monkeypatch, sftp_server):  # noqa: F811
    monkeypatch.setenv("AIRFLOW_CONN_LIT_SFTP", json.dumps({
        "conn_type": "sftp", "host": sftp_server.host, "port": sftp_server.port, "login": USER,
        "password": PASSWORD, "extra": {"host_key": sftp_server.host_key_line, "look_for_keys": "false"}}))
    monkeypatch.setenv("AIRFLOW_CONN_LITERABLY_STAFF_PASSWORD",
                       json.dumps({"conn_type": "generic", "password": STAFF_PASSWORD}))
    profile = dataclasses.replace(load_profile("literably"), delivery=Delivery(kind="sftp", conn_id="lit_sftp"))
    paths = pipeline.RunPaths.for_run(profile.dag_id, "scheduled__1")
    users = pd.DataFrame({
        "sourcedId": ["s1", "staff-t1", "s2", "staff-a1"], "role": ["student", "teacher", "student", "administrator"],
        "orgSourcedIds": ["sch1"] * 4, "username": ["s1", "t1@x.org", "s2", "a1@x.org"],
        "password": [None, STAFF_PASSWORD, None, STAFF_PASSWORD], "note": ['say "hi", ok', "line\r\nbreak", "", None]})
    header = tuple(users.columns)
    built = write_csv(users, paths.build / "users.csv", header)
    sent = write_csv(users, paths.payload / "users.csv", header)
    assert built.sha256 == sent.sha256
    return profile, paths, {"files": [{"path": sent.path, "sha256": sent.sha256}]}, sftp_server.home(USER)


def test_kept_copies_hold_no_staff_password_and_redelivery_restores_it(literably, state, monkeypatch):
    profile, paths, packaged, home = literably
    delivered = Path(packaged["files"][0]["path"]).read_bytes()
    pipeline.deliver(profile, packaged, run_id="scheduled__1", run=RUN, paths=paths)
    assert (home / "users.csv").read_bytes() == delivered
    for kept in state.rglob("*"):
        assert not kept.is_file() or STAFF_PASSWORD.encode() not in kept.read_bytes(), kept
    record = last_good("literably")
    assert record.redacted == {"users.csv": ["password"]}
    assert record.files[0]["sha256"] == sha256_of(home / "users.csv")  # the checksum of what was delivered

    (home / "users.csv").unlink()  # the vendor lost it
    operations.redeliver_last_good(profile, reason="vendor lost the file", run_id="manual__ops")
    assert (home / "users.csv").read_bytes() == delivered  # byte for byte, password included

    (home / "users.csv").unlink()
    monkeypatch.setenv("AIRFLOW_CONN_LITERABLY_STAFF_PASSWORD",
                       json.dumps({"conn_type": "generic", "password": "rotated-password"}))
    with pytest.raises(ValueError, match="staff password .* changed"):
        operations.redeliver_last_good(profile, reason="again", run_id="manual__ops2")
    assert not (home / "users.csv").exists()  # refused: nothing sent
