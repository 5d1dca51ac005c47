"""How a run gets its SIS snapshot (rostering.orchestration.sis_source), without a DAG run: the Airflow connection
of config/sis.yaml's source, the store's snapshot of the date (made once when missing), linked into the run folder,
the rejected-records report beside the run's reports."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from rostering.orchestration.sis_source import api_connection, snapshot_for_run
from rostering.pipeline import RunPaths
from rostering.run_options import RunOptions
from rostering.sis.config import load_sis_config
from rostering.sis.store import SnapshotStore

AS_OF = dt.date(2026, 11, 3)


@pytest.fixture()
def sis(tmp_path, monkeypatch):
    from rostering.sis.demo import generate_district, load_district

    path = tmp_path / "sis.sqlite"
    load_district(generate_district(300, school_year=2027), f"sqlite:///{path}")
    monkeypatch.setenv("AIRFLOW_CONN_SIS_DB", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    monkeypatch.setenv("ROSTERING_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("ROSTERING_SNAPSHOT_DIR", str(tmp_path / "snapshots"))
    monkeypatch.delenv("ROSTERING_SIS_SOURCE", raising=False)
    return path


def run_for(as_of: dt.date) -> RunOptions:
    return RunOptions(as_of, 2027, dry_run=True, force=False, schools=())


def test_the_first_run_of_a_date_reads_the_sis_and_the_next_ones_reuse_it(sis):
    config = load_sis_config(source="sql_model")
    first = snapshot_for_run(RunPaths.for_run("stmath_oneroster", "r1"), run_for(AS_OF), config=config)
    assert first["source"] == "sql_model" and first["as_of_date"] == AS_OF.isoformat()
    assert first["snapshot"] == str(RunPaths.for_run("stmath_oneroster", "r1").snapshot)
    assert first["rows"]["students"] > 250

    # the SIS gone: a second vendor run of the same date does not need it
    engine = sa.create_engine(f"sqlite:///{sis}")
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE student"))
    engine.dispose()
    second = snapshot_for_run(RunPaths.for_run("literably_oneroster", "r2"), run_for(AS_OF), config=config)
    assert second["version"] == first["version"] and second["rows"] == first["rows"]
    # ... while another date has to read it, and fails (nothing stored for that date)
    with pytest.raises(Exception, match="student"):
        snapshot_for_run(RunPaths.for_run("literably_oneroster", "r3"), run_for(AS_OF + dt.timedelta(days=1)),
                         config=config)
    assert SnapshotStore().find(AS_OF + dt.timedelta(days=1)) is None
    assert RunPaths.for_run("stmath_oneroster", "r1").root.stat().st_mode & 0o777 == 0o700


def test_rejected_records_are_reported_with_the_run(sis):
    engine = sa.create_engine(f"sqlite:///{sis}")
    with engine.begin() as conn:  # one student without a last name: rejected, well under max_rejected_share
        conn.execute(sa.text("UPDATE student SET last_name = '' WHERE rowid = (SELECT MIN(rowid) FROM student)"))
    engine.dispose()
    paths = RunPaths.for_run("stmath_oneroster", "r1")
    taken = snapshot_for_run(paths, run_for(AS_OF), config=load_sis_config(source="sql_model"))
    assert taken["rejected"] == {"students.last_name_required": 1}
    report = (paths.reports / "rejected.csv").read_text().splitlines()
    assert len(report) == 2 and "last_name" in report[1]


def test_a_snapshot_from_another_source_is_not_reused(sis):
    """The deployment switched SIS (ROSTERING_SIS_SOURCE): the date's snapshot is read again from the new source."""
    store = SnapshotStore()
    config = load_sis_config(source="sql_model")
    first = snapshot_for_run(RunPaths.for_run("stmath_oneroster", "r1"), run_for(AS_OF), config=config)
    meta = os.path.join(store.find(AS_OF).info.directory, "snapshot.json")  # as if PowerSchool had made it
    with open(meta) as handle:
        data = json.load(handle)
    os.chmod(meta, 0o600)
    with open(meta, "w") as handle:
        json.dump({**data, "source": "powerschool"}, handle)
    again = snapshot_for_run(RunPaths.for_run("stmath_oneroster", "r2"), run_for(AS_OF), config=config)
    assert again["version"] != first["version"] and again["source"] == "sql_model"
    assert dataclasses.asdict(store.find(AS_OF).info)["source"] == "sql_model"


def test_an_api_connection_becomes_a_source_connection_without_showing_secrets():
    conn = SimpleNamespace(host="district.powerschool.com", schema="", port=8443, login="client-id",
                           password="s3cret-value", extra_dejson={"page_size": 500})
    connection = api_connection(conn)
    assert connection.host == "https://district.powerschool.com:8443" and connection.login == "client-id"
    assert connection.password == "s3cret-value" and connection.extra == {"page_size": 500}
    assert "s3cret-value" not in repr(connection)
    full = api_connection(SimpleNamespace(host="http://127.0.0.1:5000/", schema=None, port=None, login=None,
                                          password="cert", extra_dejson={}))
    assert full.host == "http://127.0.0.1:5000" and full.login is None


def test_a_failed_snapshot_is_mailed_and_notify_typos_are_refused(tmp_path):
    from rostering.alerts import RunMail
    from rostering.orchestration.snapshot_dag import failure_mail
    from rostering.sis.config import SisConfigError, load_sis_config

    callback = failure_mail(load_sis_config())["on_failure_callback"]
    assert isinstance(callback, RunMail) and callback.kind == "failure" and callback.recipients
    path = tmp_path / "sis.yaml"
    path.write_text("source: sql_model\nnotify: {email: [a@b.org]}\n")
    assert failure_mail(load_sis_config(path))["on_failure_callback"].smtp_conn_id == "smtp_default"
    path.write_text("source: sql_model\nnotify: {emails: [a@b.org]}\n")
    with pytest.raises(SisConfigError, match="emails"):
        load_sis_config(path)
    path.write_text("source: sql_model\n")
    assert failure_mail(load_sis_config(path)) == {}
