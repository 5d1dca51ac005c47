"""The pipeline on the distributed engine: the docker-compose topology, natively, every vendor DAG end to end.

PostgreSQL metadata DB (a database of its own), Redis broker (a db number of its own), ``airflow scheduler``,
``dag-processor``, ``api-server``, ``triggerer`` and ``airflow celery worker`` as separate process groups
(tests/airflow_cluster.py). The demo district is the SIS, in PostgreSQL; the SFTP server, the CERS import API and an
SMTP server run on loopback. Every vendor DAG is triggered through the REST API (``/api/v2``, JWT from
``POST /auth/token``); Derivita after the ST Math delivery it refers to. The tasks run in the Celery worker's
processes, which share nothing with the scheduler but the database, the broker and the work/state folders.

Cron runs are off in this cluster (``[scheduler] use_job_schedule = False``): unpausing a DAG with catchup=False
would otherwise start its latest nightly run beside the triggered one. So Derivita is triggered here too; that the
ST Math delivery emitted the Asset Derivita is scheduled on, and that the event is queued for Derivita, is checked.

Runs in ``make test`` (marker ``e2e``, last; ``make e2e`` runs only these). Time on 2 cores: about 3.5 minutes,
90 s of it starting the cluster (printed). On failure the tail of every process log is in the assertion message.
"""
from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest

from airflow_cluster import AirflowCluster, RosteringEndpoints

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(1500)]

VENDOR_DAGS = ["stmath_oneroster", "literably_oneroster", "cers_student_groups", "derivita_subgroups"]


def test_every_vendor_dag_runs_on_celery_workers_and_delivers(e2e_cluster, e2e_endpoints):
    cluster, endpoints = e2e_cluster, e2e_endpoints
    started = time.monotonic()
    try:
        _run_everything(cluster, endpoints)
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n\n{cluster.diagnostics()}") from None
    print(f"[e2e] four vendor DAGs triggered, run and checked in {time.monotonic() - started:.0f}s")


def _run_everything(cluster: AirflowCluster, endpoints: RosteringEndpoints) -> None:
    dags = cluster.wait_for_dags({*VENDOR_DAGS, "rostering_operations"})
    assert cluster.request("GET", "/api/v2/importErrors")["total_entries"] == 0
    assert all(dags[d]["is_paused"] for d in VENDOR_DAGS)  # paused at creation, as in production
    for dag_id in VENDOR_DAGS:
        cluster.unpause(dag_id)

    runs = {dag_id: cluster.trigger(dag_id) for dag_id in VENDOR_DAGS if dag_id != "derivita_subgroups"}
    # Derivita's ids are checked against the last ST Math delivery: it goes after ST Math delivered
    assert cluster.wait_for_run("stmath_oneroster", runs["stmath_oneroster"]) == "success", \
        cluster.task_states("stmath_oneroster", runs["stmath_oneroster"])
    events = cluster.request("GET", "/api/v2/assets/events?limit=50")["asset_events"]
    emitted = [e for e in events if e.get("source_run_id") == runs["stmath_oneroster"]]
    assert emitted and emitted[0]["source_task_id"] == "deliver", events
    queued = cluster.request("GET", "/api/v2/dags/derivita_subgroups/assets/queuedEvents")
    assert queued["total_entries"] >= 1, queued  # the scheduler would start Derivita on it
    runs["derivita_subgroups"] = cluster.trigger("derivita_subgroups")

    for dag_id, run_id in runs.items():
        state = cluster.wait_for_run(dag_id, run_id)
        assert state == "success", (dag_id, cluster.task_states(dag_id, run_id))

    worker_log = (cluster.logs / "celery-worker.log").read_text(errors="replace")
    scheduler_pid = cluster.processes["scheduler"].pid
    for dag_id, run_id in runs.items():
        instances = cluster.task_instances(dag_id, run_id)
        states = {ti["task_id"]: ti["state"] for ti in instances}
        assert states["deliver"] == "success" and states["summary"] == "success", (dag_id, states)
        for ti in instances:  # each task ran as a Celery workload, in a process other than the scheduler's
            assert ti["executor"] in (None, "CeleryExecutor") and ti["queue"] == "default", ti
            assert ti["id"] in worker_log, (dag_id, ti["task_id"], "not executed by the Celery worker")
            assert ti["pid"] and ti["pid"] != scheduler_pid
        summary = cluster.request(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/summary/xcomEntries/"
            "return_value?deserialize=true")["value"]
        summary = json.loads(summary) if isinstance(summary, str) else summary
        assert summary["delivered"] is True, (dag_id, summary.get("not_delivered_because"))
        assert summary["report"] and Path(summary["report"]).exists(), (dag_id, summary.get("report"))

    # what each vendor received
    home = endpoints.sftp.home
    with zipfile.ZipFile(home("stmath") / "OneRoster.zip") as archive:
        assert "users.csv" in archive.namelist() and "manifest.csv" in archive.namelist()
    assert sorted(p.name for p in home("literably").iterdir()) == [
        "academicSessions.csv", "classes.csv", "courses.csv", "enrollments.csv", "orgs.csv", "users.csv"]
    assert [p.name for p in home("derivita").iterdir()] == ["student_subgroups.csv"]
    imports = list(endpoints.cers.imports.values())
    assert imports and all(i.status == "PROCESSED" for i in imports), [(i.filename, i.status) for i in imports]
    assert endpoints.cers.groups, "CERS holds no groups"
    for vendor in ("stmath", "literably", "cers", "derivita"):  # a delivery record and a kept copy each
        assert list((endpoints.root / "state" / "deliveries" / vendor).glob("*/record.json")), vendor

    # CERS mails its run summary (notify.on_success): sent by the dag-processor, the same shared folders
    mails = endpoints.smtp.wait_for(1, timeout=120)
    cers_mails = [m for m in mails if m.subject.startswith("[rostering] CERS")]
    assert cers_mails and "delivered" in cers_mails[0].subject, [m.subject for m in mails]
    assert "PROCESSED" in cers_mails[0].body()
    assert not [m for m in mails if "FAILED" in m.subject or "HELD" in m.subject], [m.subject for m in mails]

    # counts only: no name, SSID or e-mail address of a student or staff member in the reports or the mail
    from test_alerts import leaked, personal_values

    values = personal_values(endpoints.district)
    for dag_id, run_id in runs.items():
        from rostering.pipeline import RunPaths

        page = (RunPaths.for_run(dag_id, run_id, base=endpoints.root / "work").reports / "report.html").read_text()
        assert "run report" in page and leaked(values, page) == [], dag_id
    assert leaked(values, "".join(m.message.as_string() for m in mails)) == []
