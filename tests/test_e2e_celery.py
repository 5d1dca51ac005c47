"""The pipeline on the distributed engine: the docker-compose topology, natively, the night end to end.

PostgreSQL metadata DB (a database of its own), Redis broker (a db number of its own), ``airflow scheduler``,
``dag-processor``, ``api-server``, ``triggerer`` and ``airflow celery worker`` as separate process groups
(tests/airflow_cluster.py). The demo district is the SIS, in PostgreSQL; the SFTP server, the CERS import API and an
SMTP server run on loopback. The scheduler schedules as in production:

- unpausing ``sis_snapshot`` makes the scheduler start its latest nightly run (cron, catchup=False): one read of the
  SIS, published to the snapshot store, announced as the Asset ``rostering_sis_snapshot``;
- ST Math and Literably start on that Asset event by themselves, and build from that snapshot (same version);
- Derivita starts by itself on the ST Math delivery's Asset, on the same night's snapshot;
- CERS keeps its own weekly cron and is triggered through the REST API (``/api/v2``, JWT from ``POST /auth/token``)
  as an operator would; unpausing it also starts its latest Friday run, which reads (makes) that day's snapshot.

The tasks run in the Celery worker's processes, which share nothing with the scheduler but the database, the broker
and the work/state/snapshot folders.

Runs in ``make test`` (marker ``e2e``, last; ``make e2e`` runs only these). Time on 2 cores: about 4.5 minutes,
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
SNAPSHOT_DAG = "sis_snapshot"
ON_SNAPSHOT = ["stmath_oneroster", "literably_oneroster"]  # schedule: snapshot in their profiles


def test_every_vendor_dag_runs_on_celery_workers_and_delivers(e2e_cluster, e2e_endpoints):
    cluster, endpoints = e2e_cluster, e2e_endpoints
    started = time.monotonic()
    try:
        _run_everything(cluster, endpoints)
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n\n{cluster.diagnostics()}") from None
    print(f"[e2e] the night (snapshot + four vendor DAGs) run and checked in {time.monotonic() - started:.0f}s")


def _run_everything(cluster: AirflowCluster, endpoints: RosteringEndpoints) -> None:
    dags = cluster.wait_for_dags({*VENDOR_DAGS, SNAPSHOT_DAG, "rostering_operations"})
    assert cluster.request("GET", "/api/v2/importErrors")["total_entries"] == 0
    assert all(dags[d]["is_paused"] for d in [*VENDOR_DAGS, SNAPSHOT_DAG])  # paused at creation, as in production
    for dag_id in VENDOR_DAGS:  # the vendors first: Asset events are queued for DAGs that are on
        cluster.unpause(dag_id)
    runs = {"cers_student_groups": cluster.trigger("cers_student_groups")}  # CERS: its own cron, or on demand

    # the night: the scheduler starts the snapshot DAG's latest nightly run
    cluster.unpause(SNAPSHOT_DAG)
    night = cluster.wait_for_runs(SNAPSHOT_DAG, run_type="scheduled")[0]["dag_run_id"]
    assert cluster.wait_for_run(SNAPSHOT_DAG, night) == "success", cluster.task_states(SNAPSHOT_DAG, night)
    taken = cluster.returned(SNAPSHOT_DAG, night, "snapshot")
    assert taken["source"] == "sql_model" and taken["rows"]["students"] > 0, taken
    events = [e for e in cluster.asset_events(SNAPSHOT_DAG) if e["source_run_id"] == night]
    assert [(e["source_task_id"], e["extra"]) for e in events] == [("announce", {
        "as_of_date": taken["as_of_date"], "school_year": taken["school_year"], "version": taken["version"],
        "rows": taken["rows"]})], events
    assert len(cluster.dag_runs(SNAPSHOT_DAG)) == 1  # one read of the SIS tonight

    # ST Math and Literably start on the snapshot's Asset event by themselves; Derivita after ST Math delivered
    for dag_id in ON_SNAPSHOT:
        runs[dag_id] = cluster.wait_for_runs(dag_id, run_type="asset_triggered")[0]["dag_run_id"]
    assert cluster.wait_for_run("stmath_oneroster", runs["stmath_oneroster"]) == "success", \
        cluster.task_states("stmath_oneroster", runs["stmath_oneroster"])
    delivered = [e for e in cluster.asset_events("stmath_oneroster") if e["source_run_id"] == runs["stmath_oneroster"]]
    assert [e["source_task_id"] for e in delivered] == ["deliver"], delivered
    assert delivered[0]["extra"]["as_of_date"] == taken["as_of_date"]
    runs["derivita_subgroups"] = cluster.wait_for_runs("derivita_subgroups", run_type="asset_triggered")[0][
        "dag_run_id"]

    for dag_id, run_id in runs.items():
        state = cluster.wait_for_run(dag_id, run_id)
        assert state == "success", (dag_id, cluster.task_states(dag_id, run_id))
    # every vendor run of the night built from the night's snapshot: the same version, read once
    for dag_id in (*ON_SNAPSHOT, "derivita_subgroups"):
        used = cluster.returned(dag_id, runs[dag_id], "snapshot")
        assert (used["version"], used["as_of_date"]) == (taken["version"], taken["as_of_date"]), (dag_id, used)
    # CERS's cron slot (started when it was unpaused) read -- or made -- the snapshot of its own date
    for cron_run in [r for r in cluster.dag_runs("cers_student_groups") if r["run_type"] == "scheduled"]:
        assert cluster.wait_for_run("cers_student_groups", cron_run["dag_run_id"]) == "success", \
            cluster.task_states("cers_student_groups", cron_run["dag_run_id"])
        used = cluster.returned("cers_student_groups", cron_run["dag_run_id"], "snapshot")
        assert used["source"] == "sql_model" and used["rows"]["students"] > 0, used

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

    # CERS: deliver only uploaded; confirm_delivery (a reschedule sensor) found the imports ACCEPTED, gave its
    # worker slot back, confirmed them at a later poke, and emitted the delivered Asset
    cers_run = runs["cers_student_groups"]
    assert cluster.task_states("cers_student_groups", cers_run)["confirm_delivery"] == "success"
    reads: dict[str, int] = {}
    for request in endpoints.cers.requests:
        if request["method"] == "GET" and request["path"].startswith("/imports/") and request["status"] == 200:
            reads[request["path"]] = reads.get(request["path"], 0) + 1
    assert reads and min(reads.values()) >= 2, reads  # ACCEPTED at the first poke, PROCESSED at a later one
    confirmed = [e for e in cluster.asset_events("cers_student_groups") if e["source_run_id"] == cers_run]
    assert [e["source_task_id"] for e in confirmed] == ["confirm_delivery"], confirmed

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
