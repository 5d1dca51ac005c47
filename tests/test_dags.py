"""DAG integrity, parse cost, and whole runs through Airflow (dag.test) against the real local SFTP server."""
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


@pytest.fixture(scope="module")
def dagbag():
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # older layout
        from airflow.models.dagbag import DagBag
    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"stmath_oneroster", "literably_oneroster"} <= set(dagbag.dag_ids)


def test_every_dag_is_documented_scheduled_and_tagged(dagbag):
    assert "rostering_operations" in dagbag.dag_ids
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags and "rostering" in dag.tags, dag_id
        assert dag.doc_md and "When it fails" in dag.doc_md, dag_id
        # nightly in the district timezone, or right after the roster delivery it depends on (an Asset)
        assert type(dag.timetable).__name__ in {"CronTriggerTimetable", "AssetTriggeredTimetable"}, dag_id
        assert dag.max_active_runs == 1, dag_id


def test_vendor_dags_are_parametrised_retried_and_clean_up(dagbag):
    vendor_dags = {i: d for i, d in dagbag.dags.items() if "operations" not in d.tags}
    assert len(vendor_dags) >= 2
    for dag_id, dag in vendor_dags.items():
        assert EXPECTED_PARAMS | {"approve_changes_reason"} <= set(dag.params.keys()), dag_id
        for task in dag.tasks:
            if task.task_id != "validate":  # a validation failure is final: retrying cannot fix data
                assert task.retries >= 1, (dag_id, task.task_id)
        assert [t.task_id for t in dag.topological_sort()][:2] == ["extract", "build"]
        assert dag.get_task("cleanup").is_teardown, dag_id  # the PII snapshot never outlives a run


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

    assert dag.test().state == "success"  # same SIS data: byte-identical files, so nothing is sent again
    summaries = sorted(Path(os.environ["ROSTERING_WORK_DIR"]).glob("literably_oneroster/*/reports/summary.json"))
    second = json.loads(max(summaries, key=lambda p: p.stat().st_mtime).read_text())
    assert second["delivered"] is False and second["not_delivered_because"].startswith("unchanged")


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
