"""No student or staff names, SSIDs, emails or passwords in task logs, XComs or the run summary.

Runs a whole vendor DAG on a generated district through Airflow, then searches everything it printed and every XCom it
stored for each person's full name, SSID and email, and for the staff password.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from test_dags import dagbag, demo_environment  # noqa: F401 - fixtures

PASSWORD = "placeholder-xyz"  # set by the demo_environment fixture


@pytest.mark.airflow
def test_a_full_run_leaks_no_personal_data(dagbag, demo_environment, capfd, tmp_path):  # noqa: F811
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    from rostering.sis.demo import generate_district

    dag = dagbag.get_dag("literably_oneroster")
    dag_run = dag.test()
    assert dag_run.state == "success"
    printed = "".join(capfd.readouterr())
    assert "validate" in printed and len(printed) > 1000  # the logs really were captured

    with create_session() as session:
        xcoms = session.query(XComModel).filter(XComModel.dag_id == dag.dag_id,
                                                XComModel.run_id == dag_run.run_id).all()
        stored = json.dumps([x.value for x in xcoms], default=str)
    assert "users.csv" in stored  # the summary is there

    reports = "".join(p.read_text(errors="replace") for p in
                      Path(os.environ["ROSTERING_WORK_DIR"]).glob("literably_oneroster/*/reports/*.json"))
    haystack = printed + stored + reports

    district = generate_district(400, seed=7)  # the fixture's district
    people = []
    for table in ("student", "staff"):
        frame = district[table]
        people += (frame["first_name"] + " " + frame["last_name"]).tolist()
        people += frame["email"].dropna().tolist()
    people += district["student"]["ssid"].dropna().tolist()
    leaked = sorted({value for value in people if value and value in haystack})
    assert leaked == [], f"{len(leaked)} personal values found in logs/XComs/reports"
    assert PASSWORD not in haystack
    kept = [p for p in Path(os.environ["ROSTERING_STATE_DIR"]).rglob("*") if p.is_file()]
    assert any(p.name == "users.csv" for p in kept)  # the kept copy of the delivery, without the staff password
    assert not [p.name for p in kept if PASSWORD.encode() in p.read_bytes()]
