"""The CERS DAG end to end through Airflow (one dag.test() run) against the local CERS endpoint on 127.0.0.1."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cers_helpers import make_district

REPO = Path(__file__).resolve().parents[1]
DAG_FILE = REPO / "dags" / "cers_student_groups.py"


@pytest.fixture(scope="module")
def cers_dag():
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # older layout
        from airflow.models.dagbag import DagBag
    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.get_dag("cers_student_groups")


def test_the_dag_is_documented_parametrised_and_scheduled(cers_dag):
    assert "Airflow" in cers_dag.doc_md and "When it fails" in cers_dag.doc_md
    assert {"profiles", "consolidate", "as_of_date", "schools", "dry_run", "force"} <= set(cers_dag.params.keys())
    assert cers_dag.params["profiles"] == [] and cers_dag.params["consolidate"] is False
    assert type(cers_dag.timetable).__name__ == "CronTriggerTimetable"
    assert [t.task_id for t in cers_dag.topological_sort()][:2] == ["snapshot", "build"]


@pytest.mark.airflow
def test_a_run_uploads_the_scheduled_profiles_and_cers_holds_the_groups(cers_dag, tmp_path, monkeypatch):
    from rostering.delivery.records import last_good
    from rostering.devservers.cers_server import LocalCersServer
    from rostering.devservers.mail_catcher import MailCatcher

    sis = make_district(tmp_path / "sis.sqlite")
    # each import is PROCESSED at its second status read: the confirm_delivery sensor finds both ACCEPTED at its
    # first poke and is rescheduled (reschedule mode under dag.test(): the loop runs it again when it is due)
    with LocalCersServer(client_id="cid", client_secret="csecret-value", users={"sysuser": "pw-value"},
                         process_after_polls=2) as server, \
            MailCatcher() as smtp:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp.connection_json())
        monkeypatch.setenv("ROSTERING_WORK_DIR", str(tmp_path / "work"))
        monkeypatch.setenv("ROSTERING_STATE_DIR", str(tmp_path / "state"))
        monkeypatch.setenv("AIRFLOW_CONN_SIS_DB", json.dumps({"conn_type": "sqlite", "host": str(sis)}))
        monkeypatch.setenv("AIRFLOW_CONN_CERS_API", json.dumps(
            {"conn_type": "http", "host": server.url, "login": "sysuser", "password": "pw-value",
             "extra": {"token_url": "/auth/token", "client_id": "cid", "client_secret": "csecret-value",
                       "verify": str(server.ca_path)}}))
        # the hand-made district is dated: a roster of another date than the run's is sent only with a reason
        dag_run = cers_dag.test(run_conf={"as_of_date": "2026-11-23",
                                          "deliver_other_date_reason": "test district of 2026-11-23"})
        mails = smtp.wait_for(1, timeout=30)
    assert dag_run.state == "success"
    # the DAG-level success mail (notify.on_success): its callback context holds a SerializedDAG, which once broke
    # the notifier's sender rendering on every run
    assert [(m.subject, m.rcpt_tos) for m in mails] == [
        (f"[rostering] CERS student groups: delivered (run {dag_run.run_id})",
         ["assessment-coordinator@district.example.org"])]

    # CERS holds the scheduled profiles' groups (caaspp_sections + counselor_caseloads) of both schools
    assert sorted(name for _, name, _ in server.groups) == sorted([
        "2027kowalczym3ae6002", "2027kowalczym5ae6007", "2027lib2am6001", "2027lib2am7008", "2027oneilahrae3001",
        "2027tt9hrbe3002", "201counselorgus1"])
    assert [(i.filename, i.status) for i in server.imports.values()] == [
        ("student_groups_19647330000001.csv", "PROCESSED"), ("student_groups_19647330000002.csv", "PROCESSED")]
    # the deliver task only uploaded; the sensor read each import twice, over two pokes, and carries the Asset
    assert len([r for r in server.requests if r["method"] == "POST" and r["path"] == "/groups/imports"]) == 2
    assert len([r for r in server.requests if r["method"] == "GET" and r["path"].startswith("/imports/")]) == 4
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states["deliver"] == states["confirm_delivery"] == states["summary"] == "success", states
    assert _reschedules(dag_run, "confirm_delivery") >= 1
    [(asset, task_id, extra)] = _asset_events("cers_student_groups", dag_run.run_id)
    assert (asset, task_id, extra) == ("rostering_cers_delivered", "confirm_delivery",
                                       {"as_of_date": "2026-11-23", "school_year": 2027})

    summaries = list(Path(os.environ["ROSTERING_WORK_DIR"]).glob("cers_student_groups/*/reports/summary.json"))
    summary = json.loads(summaries[0].read_text())
    assert summary["delivered"] is True and summary["files"] == {
        "student_groups_19647330000001.csv": 8, "student_groups_19647330000002.csv": 26}
    assert [(i["file"], i["status"], i["message"]) for i in summary["imports"]] == [
        ("student_groups_19647330000001.csv", "PROCESSED", "2 group(s) accepted for 19647330000001."),
        ("student_groups_19647330000002.csv", "PROCESSED", "5 group(s) accepted for 19647330000002.")]
    assert summary["dropped_by_reason"]["student.no_qualifying_section"] == 6
    assert summary["details"]["profiles"] == ["caaspp_sections", "counselor_caseloads"]

    record = last_good("cers")  # the kept copies are what the receiver got
    assert record.destination == "cers_api://cers_api/groups/imports"
    assert summary["files_kept_in"] == record.directory
    assert [f["name"] for f in record.files] == ["student_groups_19647330000001.csv",
                                                 "student_groups_19647330000002.csv"]
    text = json.dumps(summary)
    for value in ("1000000003", "bo.li@cers.example.org", "csecret-value", "pw-value"):
        assert value not in text


def _reschedules(dag_run, task_id: str) -> int:
    from sqlalchemy import func, select

    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.scalar(select(func.count()).select_from(TaskReschedule).join(
            TaskInstance, TaskInstance.id == TaskReschedule.ti_id).where(
            TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id,
            TaskInstance.task_id == task_id))


def _asset_events(dag_id: str, run_id: str) -> list:
    from sqlalchemy import select

    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        events = session.scalars(select(AssetEvent).where(AssetEvent.source_dag_id == dag_id,
                                                          AssetEvent.source_run_id == run_id)).all()
        return [(event.asset.name, event.source_task_id, dict(event.extra or {})) for event in events]
