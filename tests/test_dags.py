"""DAG integrity, schedules, parse cost, and whole runs through Airflow (dag.test) against the real local SFTP server:
the nightly SIS snapshot, then a vendor run that builds from it without reading the SIS again."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DAG_FILES = sorted((REPO / "dags").glob("*.py"))
EXPECTED_PARAMS = {"as_of_date", "schools", "dry_run", "force"}
VENDOR_DAGS = {"stmath_oneroster", "literably_oneroster", "cers_student_groups", "derivita_subgroups"}


@pytest.fixture(scope="module")
def dagbag():
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # older layout
        from airflow.models.dagbag import DagBag
    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == VENDOR_DAGS | {"sis_snapshot", "rostering_operations", "rostering_deadline"}


def test_the_snapshot_runs_nightly_and_the_vendors_run_on_it(dagbag):
    """One SIS read a night (config/sis.yaml), every vendor from it: ST Math and Literably on the snapshot's Asset,
    Derivita after the ST Math delivery, CERS on its own weekly cron (reading that day's snapshot)."""
    from rostering.sis.config import ASSET_NAME, load_sis_config

    sis = load_sis_config()
    snapshot = dagbag.get_dag("sis_snapshot")
    assert type(snapshot.timetable).__name__ == "CronTriggerTimetable"
    assert snapshot.timetable.expression == sis.schedule and str(snapshot.timetable.timezone) == sis.timezone
    assert [t.task_id for t in snapshot.topological_sort()] == ["snapshot", "announce", "prune"]
    assert [a.name for a in snapshot.get_task("announce").outlets] == [ASSET_NAME]
    assert snapshot.get_task("snapshot").outlets == []  # the event comes after a published snapshot, not before
    assert snapshot.get_task("prune").is_teardown  # retention also after a failed night
    assert set(snapshot.params.keys()) == {"as_of_date"} and snapshot.params["as_of_date"] in ("", None)

    def waits_on(dag_id):
        timetable = dagbag.get_dag(dag_id).timetable
        assert type(timetable).__name__ == "AssetTriggeredTimetable", dag_id
        return [a.name for a in timetable.asset_condition.objects]

    assert waits_on("stmath_oneroster") == [ASSET_NAME]
    assert waits_on("literably_oneroster") == [ASSET_NAME]
    assert waits_on("derivita_subgroups") == ["rostering_stmath_delivered"]
    cers = dagbag.get_dag("cers_student_groups").timetable
    assert type(cers).__name__ == "CronTriggerTimetable" and cers.expression == "30 22 * * 5"


def test_a_snapshot_announces_itself_only_for_the_run_s_own_date():
    """A snapshot re-taken for a past date must not make the vendors deliver that old roster over today's."""
    import datetime as dt

    from rostering.orchestration.snapshot_dag import announces, run_date

    after_midnight_utc = dt.datetime(2026, 11, 4, 9, 0, tzinfo=dt.timezone.utc)  # 01:00 in Los Angeles
    own = run_date(after_midnight_utc, "America/Los_Angeles")
    assert own == dt.date(2026, 11, 4)
    assert announces("2026-11-04", own_date=own)
    assert not announces("2026-10-01", own_date=own) and not announces("2026-11-05", own_date=own)
    assert run_date(dt.datetime(2026, 11, 4, 7, 59, tzinfo=dt.timezone.utc), "America/Los_Angeles") == \
        dt.date(2026, 11, 3)


def test_an_asset_triggered_run_takes_its_date_from_the_event():
    from types import SimpleNamespace

    from rostering.orchestration.dag_factory import as_of_from_events

    def event(extra):
        return SimpleNamespace(extra=extra)

    assert as_of_from_events(None) is None and as_of_from_events({}) is None
    assert as_of_from_events({"a": [event({})], "b": [event({"as_of_date": "not a date"})]}) is None
    events = {"rostering_sis_snapshot": [event({"as_of_date": "2026-11-03"}), event({"as_of_date": "2026-11-04"})],
              "other": [event(None)]}
    assert as_of_from_events(events) == "2026-11-04"  # two nights queued: the newer snapshot


def test_a_profile_may_not_name_its_own_sis_connection_any_more():
    from rostering.vendors.profile import VendorProfile, load_profile

    data = {"name": "x", "title": "X", "format": "oneroster", "dag_id": "x", "schedule": "snapshot",
            "oneroster": {"files": ["orgs.csv"]}, "delivery": {"kind": "sftp", "conn_id": "x_sftp"}}
    assert VendorProfile.from_dict(data).on_snapshot
    with pytest.raises(ValueError, match="config/sis.yaml"):
        VendorProfile.from_dict({**data, "sis_conn_id": "sis_db"})
    with pytest.raises(ValueError, match="either after: or schedule:"):
        VendorProfile.from_dict({**data, "after": "stmath"})
    assert not hasattr(load_profile("stmath"), "sis_conn_id")


def test_every_dag_is_documented_scheduled_and_tagged(dagbag):
    assert "rostering_operations" in dagbag.dag_ids
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags and "rostering" in dag.tags, dag_id
        assert dag.doc_md and "When it fails" in dag.doc_md, dag_id
        # nightly in the district timezone, or right after what it depends on (an Asset: snapshot, delivery)
        assert type(dag.timetable).__name__ in {"CronTriggerTimetable", "AssetTriggeredTimetable"}, dag_id
        assert dag.max_active_runs == 1, dag_id


def test_vendor_dags_are_parametrised_retried_and_clean_up(dagbag):
    vendor_dags = {i: d for i, d in dagbag.dags.items() if i in VENDOR_DAGS}
    assert len(vendor_dags) == 4
    for dag_id, dag in vendor_dags.items():
        assert EXPECTED_PARAMS | {"approve_changes_reason"} <= set(dag.params.keys()), dag_id
        for task in dag.tasks:
            if task.task_id != "validate":  # a validation failure is final: retrying cannot fix data
                assert task.retries >= 1, (dag_id, task.task_id)
        assert [t.task_id for t in dag.topological_sort()][:2] == ["snapshot", "build"]
        assert dag.get_task("cleanup").is_teardown, dag_id  # the run's links to the PII snapshot never outlive it


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_files_import_nothing_heavy_at_parse_time(path):
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]); "
        "heavy = sorted(m for m in ('pandas', 'pyarrow', 'great_expectations', 'sqlalchemy', 'paramiko') "
        "if m in sys.modules); print(heavy)"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env, check=True)
    # Airflow itself pulls in sqlalchemy; the DAG file must add none of the data libraries.
    assert [m for m in json.loads(out.stdout.strip().splitlines()[-1].replace("'", '"')) if m != "sqlalchemy"] == []


@pytest.fixture()
def demo_environment(tmp_path, monkeypatch):
    """A small generated district in SQLite, a real SFTP server, and the connections Airflow reads from env."""
    from rostering.devservers.sftp_server import LocalSFTPServer
    from rostering.sis.demo import generate_district, load_district

    sis = tmp_path / "sis.sqlite"
    load_district(generate_district(400, seed=7), f"sqlite:///{sis}")
    with LocalSFTPServer(root=tmp_path / "sftp", users={"stmath": "demo-pass", "literably": "demo-pass"}) as server:
        monkeypatch.setenv("ROSTERING_WORK_DIR", str(tmp_path / "work"))
        monkeypatch.setenv("ROSTERING_STATE_DIR", str(tmp_path / "state"))
        monkeypatch.setenv("ROSTERING_SNAPSHOT_DIR", str(tmp_path / "snapshots"))
        monkeypatch.delenv("ROSTERING_SIS_SOURCE", raising=False)  # config/sis.yaml: sql_model over sis_db
        monkeypatch.setenv("AIRFLOW_CONN_SIS_DB", json.dumps({"conn_type": "sqlite", "host": str(sis)}))
        monkeypatch.setenv(
            "AIRFLOW_CONN_STMATH_SFTP",
            json.dumps({"conn_type": "sftp", "host": server.host, "port": server.port, "login": "stmath",
                        "password": "demo-pass", "extra": {"host_key": server.host_key_line}}),
        )
        monkeypatch.setenv(
            "AIRFLOW_CONN_LITERABLY_SFTP",
            json.dumps({"conn_type": "sftp", "host": server.host, "port": server.port, "login": "literably",
                        "password": "demo-pass", "extra": {"host_key": server.host_key_line}}),
        )
        monkeypatch.setenv("AIRFLOW_CONN_LITERABLY_STAFF_PASSWORD",
                           json.dumps({"conn_type": "generic", "password": "placeholder-xyz"}))
        yield server


@pytest.mark.airflow
def test_stmath_dag_delivers_a_valid_package(dagbag, demo_environment):
    dag = dagbag.get_dag("stmath_oneroster")
    dag_run = dag.test()
    assert dag_run.state == "success"
    delivered = demo_environment.home("stmath") / "OneRoster.zip"
    assert delivered.exists()
    assert not [p for p in delivered.parent.iterdir() if p.name.endswith(".part")]
    with zipfile.ZipFile(delivered) as archive:
        assert sorted(archive.namelist()) == sorted(
            ["manifest.csv", "orgs.csv", "academicSessions.csv", "courses.csv", "classes.csv", "users.csv",
             "enrollments.csv"]
        )
        extracted = Path(os.environ["ROSTERING_WORK_DIR"]) / "check"
        archive.extractall(extracted)
    from rostering.oneroster.vendor import expected_headers
    from rostering.validation.oneroster_checks import validate_package
    from rostering.vendors.profile import load_profile

    assert validate_package(extracted, expected_headers(load_profile("stmath"))).ok  # every reference resolves

    from rostering.delivery.records import last_good

    record = last_good("stmath")  # the kept copy is byte-identical to what the server received
    assert record.path("OneRoster.zip").read_bytes() == delivered.read_bytes()
    assert record.files[0]["sha256"] and record.destination == "sftp://stmath_sftp/~"


@pytest.mark.airflow
def test_literably_dag_delivers_the_plain_files_and_a_rerun_sends_nothing_new(dagbag, demo_environment):
    dag = dagbag.get_dag("literably_oneroster")
    assert dag.test().state == "success"
    home = demo_environment.home("literably")
    delivered = {p.name: p.read_bytes() for p in home.iterdir()}
    assert sorted(delivered) == ["academicSessions.csv", "classes.csv", "courses.csv", "enrollments.csv",
                                 "orgs.csv", "users.csv"]
    assert delivered["users.csv"].split(b"\r\n", 1)[0].endswith(b"metadata.literably.levelImputed")

    again = dag.test()  # same SIS data: byte-identical files, so nothing is sent again
    assert again.state == "success"
    summaries = sorted(Path(os.environ["ROSTERING_WORK_DIR"]).glob("literably_oneroster/*/reports/summary.json"))
    second = json.loads(max(summaries, key=lambda p: p.stat().st_mtime).read_text())
    assert second["delivered"] is False and second["not_delivered_because"].startswith("unchanged")
    # the receiver holds tonight's roster all the same: a DAG waiting on this delivery (after:) still runs
    [(asset, task_id, extra)] = _asset_events("literably_oneroster", again.run_id)
    assert (asset, task_id, extra["delivered"]) == ("rostering_literably_delivered", "deliver", False)
    assert extra["reason"].startswith("unchanged") and extra["as_of_date"] == second["as_of_date"]


@pytest.mark.airflow
def test_dry_run_builds_but_delivers_nothing(dagbag, demo_environment):
    dag = dagbag.get_dag("stmath_oneroster")
    dag_run = dag.test(run_conf={"dry_run": True})
    assert dag_run.state == "success"
    assert list(demo_environment.home("stmath").iterdir()) == []
    summaries = list(Path(os.environ["ROSTERING_WORK_DIR"]).glob("stmath_oneroster/*/reports/summary.json"))
    assert len(summaries) == 1
    summary = json.loads(summaries[0].read_text())
    assert summary["delivered"] is False and summary["not_delivered_because"].startswith("dry run")
    assert summary["files"]["users.csv"] > 0


def _asset_events(dag_id: str, run_id: str) -> list:
    from sqlalchemy import select

    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        events = session.scalars(select(AssetEvent).where(AssetEvent.source_dag_id == dag_id,
                                                          AssetEvent.source_run_id == run_id)).all()
        return [(event.asset.name, event.source_task_id, dict(event.extra or {})) for event in events]


def _returned(dag_id: str, run_id: str, task_id: str):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(XComModel.get_many(run_id=run_id, dag_ids=dag_id, task_ids=task_id,
                                                 key="return_value")).first()
        return XComModel.deserialize_value(row) if row is not None else None


def _fresh_dag(file_stem: str, dag_id: str):
    """A DAG object no other test ran: ``dag.test(run_conf=...)`` leaves its conf on the object it ran."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # older layout
        from airflow.models.dagbag import DagBag
    return DagBag(dag_folder=str(REPO / "dags" / f"{file_stem}.py")).get_dag(dag_id)


def _task_states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


@pytest.mark.airflow
def test_the_nightly_snapshot_is_published_announced_and_the_vendor_builds_from_it_without_the_sis(
        demo_environment):
    from rostering.orchestration.snapshot_dag import run_date
    from rostering.sis.config import ASSET_NAME, load_sis_config
    from rostering.sis.store import SnapshotStore

    night = _fresh_dag("sis_snapshot", "sis_snapshot").test()
    assert night.state == "success", _task_states(night)
    as_of = run_date(night.run_after, load_sis_config().timezone)
    stored = SnapshotStore().find(as_of)
    assert stored is not None and stored.info.source == "sql_model" and stored.info.row_counts["students"] > 300
    # the Asset event the vendor DAGs start on, with what they need to find this snapshot
    assert _asset_events("sis_snapshot", night.run_id) == [(ASSET_NAME, "announce", {
        "as_of_date": as_of.isoformat(), "school_year": stored.info.school_year, "version": stored.version,
        "rows": stored.info.row_counts})]
    from rostering.pipeline import RunPaths

    report = json.loads((RunPaths.for_run("sis_snapshot", night.run_id).reports / "snapshot.json").read_text())
    assert report["published"] is True and report["version"] == stored.version

    # the SIS goes away: the vendor run of the same day must not need it
    Path(json.loads(os.environ["AIRFLOW_CONN_SIS_DB"])["host"]).unlink()
    vendor = _fresh_dag("stmath_oneroster", "stmath_oneroster").test()
    assert vendor.state == "success", _task_states(vendor)
    used = _returned("stmath_oneroster", vendor.run_id, "snapshot")
    assert used["version"] == stored.version and used["source"] == "sql_model"
    assert used["as_of_date"] == as_of.isoformat() and used["rows"] == stored.info.row_counts
    assert (demo_environment.home("stmath") / "OneRoster.zip").exists()
    # the run's teardown removed its links, not the stored snapshot (other vendors read it tonight)
    assert not Path(used["snapshot"]).exists()
    assert SnapshotStore().find(as_of).version == stored.version
    assert pd_rows(SnapshotStore().find(as_of).info.path("students")) == stored.info.row_counts["students"]


def pd_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.read_metadata(path).num_rows


@pytest.mark.airflow
def test_a_refused_snapshot_publishes_nothing_and_emits_no_event(demo_environment):
    """A source that fails (here the input checks refuse a fifth of the students: blank last names) stops the night:
    nothing in the store, no Asset event for the vendors, the list of records to fix in the run's reports."""
    import sqlalchemy as sa

    from rostering.orchestration.snapshot_dag import run_date
    from rostering.sis.config import load_sis_config
    from rostering.sis.store import SnapshotStore

    engine = sa.create_engine(f"sqlite:///{json.loads(os.environ['AIRFLOW_CONN_SIS_DB'])['host']}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE student SET last_name = '' WHERE rowid % 5 = 0"))
    engine.dispose()

    night = _fresh_dag("sis_snapshot", "sis_snapshot").test()
    assert night.state == "failed"
    states = _task_states(night)
    assert states["snapshot"] == "failed" and states["announce"] == "upstream_failed", states
    assert states["prune"] == "success", states  # retention runs anyway
    as_of = run_date(night.run_after, load_sis_config().timezone)
    store = SnapshotStore()
    assert store.find(as_of) is None and store.versions(as_of) == []
    assert list((store.root / ".tmp").iterdir()) == []
    assert _asset_events("sis_snapshot", night.run_id) == []
    from rostering.pipeline import RunPaths

    reports = RunPaths.for_run("sis_snapshot", night.run_id).reports
    assert json.loads((reports / "snapshot.json").read_text())["published"] is False
    import csv

    with open(reports / "rejected.csv", newline="") as handle:
        rejected = list(csv.DictReader(handle))
    assert len(rejected) > 50 and list(rejected[0]) == ["file", "row", "sis_key", "column", "rule"]
    assert {(r["file"], r["column"], r["rule"]) for r in rejected} == {
        ("students.parquet", "last_name", "students.last_name_required")}  # keys and rules, never the values
