"""CERS imports confirmed by a sensor, not polled inside the deliver task (issue 16).

The deliver task only uploads (``deliver_payload(wait=False)``: every import is then ACCEPTED, PROCESSED or failed)
and the vendor DAG's ``confirm_delivery`` sensor, in reschedule mode, looks once per poke (``confirm``): it records
each PROCESSED file, sends a file again after a receiver-side failure, and fails on a refused import once the
others are done. Against the local CERS stand-in on 127.0.0.1 (rostering.devservers.cers_server).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import json
import shutil
from pathlib import Path

import pytest

from cers_helpers import EXPECTED
from rostering import pipeline
from rostering.csvio import sha256_of
from rostering.delivery.cers_api import (
    CersAuthError, CersImportFailed, confirm, confirm_timing, deliver_payload, is_transient,
)
from rostering.devservers.cers_server import LocalCersServer
from rostering.run_options import RunOptions
from rostering.vendors.profile import Delivery, load_profile

CLIENT_ID, CLIENT_SECRET, USER, PASSWORD = "district-sis", "client-secret-value", "sysuser", "system-password"
FAST = {"backoff_s": 0.01, "max_backoff_s": 5, "first_poll_s": 0.01, "poll_interval_s": 0.02, "request_timeout_s": 5}
GOOD = EXPECTED / "ps_sections.csv"
NOW = dt.datetime(2026, 11, 23, 12, tzinfo=dt.timezone.utc)
RUN = RunOptions.from_params({}, run_after=NOW, timezone="UTC")


@pytest.fixture(scope="module", autouse=True)
def airflow_configured():
    """Airflow (re)configures logging the first time a connection is read; do it before caplog attaches."""
    from airflow.sdk import BaseHook

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_CERS_WARMUP", json.dumps({"conn_type": "http", "host": "http://127.0.0.1"}))
        BaseHook.get_connection("cers_warmup")


@pytest.fixture()
def server(monkeypatch, tmp_path):
    monkeypatch.setenv("ROSTERING_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ROSTERING_WORK_DIR", str(tmp_path / "work"))
    with LocalCersServer(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, users={USER: PASSWORD},
                         process_after_polls=2) as srv:
        monkeypatch.setenv("AIRFLOW_CONN_CERS_API", json.dumps({
            "conn_type": "http", "host": srv.url, "login": USER, "password": PASSWORD,
            "extra": {"token_url": "/auth/token", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                      "verify": str(srv.ca_path)}}))
        yield srv


def delivery(**options) -> Delivery:
    return Delivery(kind="cers_api", conn_id="cers_api", options={**FAST, **options})


def payload(tmp_path: Path, *sources: Path, names: tuple[str, ...] = ()) -> list[Path]:
    folder = tmp_path / "manual__run1" / "payload"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, source in enumerate(sources):
        target = folder / (names[i] if names else source.name)
        shutil.copyfile(source, target)
        files.append(target)
    return files


def calls(server, method, path):
    return [r for r in server.requests if r["method"] == method and r["path"].startswith(path)]


def ledger(tmp_path: Path) -> dict[str, dict]:
    data = json.loads((tmp_path / "manual__run1" / "reports" / "cers_imports.json").read_text())
    return {i["file"]: i for i in data["imports"]}


# -- the transport: upload, then one look per poke ------------------------------------------------------------------


def test_the_upload_returns_at_once_and_each_poke_asks_once(server, tmp_path):
    files = payload(tmp_path, GOOD, EXPECTED / "counselors.csv", names=("a.csv", "b.csv"))
    uploaded = deliver_payload(delivery(), files, wait=False)
    assert [(i["file"], i["import_id"], i["status"]) for i in uploaded["imports"]] == [
        ("a.csv", 34001, "ACCEPTED"), ("b.csv", 34002, "ACCEPTED")]
    assert uploaded["unconfirmed"] == ["a.csv", "b.csv"]
    assert calls(server, "GET", "/imports/") == []  # the deliver task does not poll: it holds no slot waiting

    accepted: list[dict] = []
    assert confirm(delivery(), files, on_accepted=accepted.append) is None  # still ACCEPTED (2 reads to process)
    assert len(calls(server, "GET", "/imports/")) == 2 and accepted == []
    done = confirm(delivery(), files, on_accepted=accepted.append)
    assert done["destination"] == "cers_api://cers_api/groups/imports"
    assert [(i["file"], i["status"]) for i in done["imports"]] == [("a.csv", "PROCESSED"), ("b.csv", "PROCESSED")]
    assert [a["file"] for a in accepted] == ["a.csv", "b.csv"]
    assert len(calls(server, "GET", "/imports/")) == 4 and len(calls(server, "POST", "/groups/imports")) == 2
    assert {f: i["status"] for f, i in ledger(tmp_path).items()} == {"a.csv": "PROCESSED", "b.csv": "PROCESSED"}
    assert confirm_timing(delivery(poll_interval_s=10, poll_timeout_s=1800)) == (10, 1800)


def test_a_refused_file_fails_the_confirmation_once_the_others_are_done(server, tmp_path):
    bad = tmp_path / "bad.csv"
    lines = GOOD.read_bytes().split(b"\r\n")
    bad.write_bytes(b"\r\n".join([lines[0], lines[5], *lines[1:5], *lines[6:]]))  # a group's rows split apart
    files = payload(tmp_path, bad, EXPECTED / "counselors.csv")
    uploaded = deliver_payload(delivery(), files, wait=False)  # refused at once, but the upload step succeeds
    assert [i["status"] for i in uploaded["imports"]] == ["BAD_DATA", "ACCEPTED"]

    accepted: list[dict] = []
    assert confirm(delivery(), files, on_accepted=accepted.append) is None  # counselors.csv is still processing
    with pytest.raises(CersImportFailed) as failure:
        confirm(delivery(), files, on_accepted=accepted.append)
    assert not is_transient(failure.value) and failure.value.statuses == ("BAD_DATA",)
    assert "1 of 2 CERS import(s) failed" in str(failure.value)
    assert "bad.csv: import 34001 BAD_DATA" in str(failure.value)
    assert "Row: 7 Failure: rows must be sorted by school, group and year" in str(failure.value)
    assert [a["file"] for a in accepted] == ["counselors.csv"]  # recorded before the failure is raised


def test_a_receiver_side_failure_is_sent_again_under_a_new_batch(server, tmp_path):
    server.process_after_polls = 1
    server.fail_processing_next(1, status="PIPELINE_FAILURE")
    files = payload(tmp_path, GOOD)
    deliver_payload(delivery(), files, wait=False)
    assert confirm(delivery(), files) is None  # read: PIPELINE_FAILURE -> sent again, ACCEPTED
    assert [(i.id, i.status) for i in server.imports.values()] == [(34001, "PIPELINE_FAILURE"), (34002, "ACCEPTED")]
    done = confirm(delivery(), files)
    assert [(i["import_id"], i["status"]) for i in done["imports"]] == [(34002, "PROCESSED")]
    first, second = server.imports.values()
    assert first.batch != second.batch and ledger(tmp_path)[GOOD.name]["attempt"] == 2


def test_a_receiver_side_failure_is_sent_again_at_most_twice_then_fails(server, tmp_path):
    server.process_after_polls = 1
    server.fail_processing_next(3, status="PIPELINE_FAILURE")
    files = payload(tmp_path, GOOD)
    deliver_payload(delivery(), files, wait=False)
    assert confirm(delivery(), files) is None
    assert confirm(delivery(), files) is None
    with pytest.raises(CersImportFailed, match="PIPELINE_FAILURE") as failure:
        confirm(delivery(), files)
    assert not is_transient(failure.value)  # sent three times already: a person looks now
    assert len(calls(server, "POST", "/groups/imports")) == 3


def test_a_receiver_that_does_not_answer_is_asked_again_at_the_next_poke(server, tmp_path):
    files = payload(tmp_path, GOOD)
    deliver_payload(delivery(), files, wait=False)
    server.fail_next(4, status=503, path="/imports/")
    assert confirm(delivery(max_attempts=2), files) is None  # 503 twice: not an answer, not a failure
    assert confirm(delivery(max_attempts=2), files) is None
    assert [r["status"] for r in calls(server, "GET", "/imports/")] == [503, 503, 503, 503]
    assert confirm(delivery(), files) is None  # ACCEPTED (first read)
    assert confirm(delivery(), files)["imports"][0]["status"] == "PROCESSED"


def test_credentials_refused_while_confirming_fail_at_once(server, tmp_path):
    files = payload(tmp_path, GOOD)
    deliver_payload(delivery(), files, wait=False)
    server.token_max_uses = 0
    with pytest.raises(CersAuthError, match="401 Unauthorized again"):
        confirm(delivery(), files)


def test_confirm_needs_this_runs_uploads(server, tmp_path):
    files = payload(tmp_path, GOOD)
    with pytest.raises(Exception, match="this run has no import of it"):
        confirm(delivery(), files)
    assert server.requests == []


# -- the pipeline: the record is finished by the confirmation ------------------------------------------------------


def cers_run(profile, run_id: str, *sources: Path):
    paths = pipeline.RunPaths.for_run(profile.dag_id, run_id)
    for folder in (paths.build, paths.payload):
        folder.mkdir(parents=True, exist_ok=True)
        for source in sources:
            shutil.copyfile(source, folder / source.name)
    return paths, {"files": [{"path": str(paths.payload / s.name), "sha256": sha256_of(s)} for s in sources]}


def test_the_delivery_record_is_finished_when_the_receiver_has_processed_every_file(server):
    from rostering.delivery.records import last_good, list_deliveries

    profile = dataclasses.replace(load_profile("cers"), delivery=delivery())
    paths, packaged = cers_run(profile, "manual__1", EXPECTED / "counselors.csv", EXPECTED / "primary_only.csv")
    sent = pipeline.deliver(profile, packaged, run_id="manual__1", run=RUN, paths=paths)
    assert [i["status"] for i in sent["imports"]] == ["ACCEPTED", "ACCEPTED"]
    [record] = list_deliveries("cers", include_unfinished=True)
    assert record.outcome == "sending" and record.pending == ["counselors.csv", "primary_only.csv"]
    assert sent["record"] == record.directory and last_good("cers") is None  # uploaded is not delivered

    assert pipeline.confirm_delivery(profile, packaged, run_id="manual__1", run=RUN, paths=paths) is None
    confirmed = pipeline.confirm_delivery(profile, packaged, run_id="manual__1", run=RUN, paths=paths)
    assert [i["status"] for i in confirmed["imports"]] == ["PROCESSED", "PROCESSED"]
    record = last_good("cers")
    assert record.directory == confirmed["record"] and record.pending == []
    assert record.destination == "cers_api://cers_api/groups/imports"

    again = pipeline.deliver(profile, packaged, run_id="manual__1", run=RUN, paths=paths)  # a cleared deliver task
    assert again["already_delivered"] == record.delivered_at
    assert len(calls(server, "POST", "/groups/imports")) == 2  # nothing sent twice


def test_files_are_recorded_as_processed_even_when_another_import_fails(server):
    from rostering.delivery.records import last_good_baseline, list_deliveries

    server.known_schools = {"19647330000001"}  # counselors.csv (school 2) fails while processing
    profile = dataclasses.replace(load_profile("cers"), delivery=delivery())
    paths, packaged = cers_run(profile, "manual__1", EXPECTED / "counselors.csv", EXPECTED / "primary_only.csv")
    pipeline.deliver(profile, packaged, run_id="manual__1", run=RUN, paths=paths)
    assert pipeline.confirm_delivery(profile, packaged, run_id="manual__1", run=RUN, paths=paths) is None
    with pytest.raises(CersImportFailed, match="counselors.csv: import 34001 UNKNOWN_SCHOOL"):
        pipeline.confirm_delivery(profile, packaged, run_id="manual__1", run=RUN, paths=paths)
    [record] = list_deliveries("cers", include_unfinished=True)
    assert (record.outcome, record.pending) == ("partial", ["counselors.csv"])
    assert [f["name"] for f in last_good_baseline("cers", per_file=True).files] == ["primary_only.csv"]


# -- the DAG: only transports that confirm later get the sensor ----------------------------------------------------


def test_only_transports_that_confirm_later_have_confirm():
    from rostering.delivery import CONFIRMED_LATER

    assert CONFIRMED_LATER == {"cers_api": pipeline.DELIVERIES["cers_api"]}
    for kind, module in pipeline.DELIVERIES.items():
        transport = importlib.import_module(module)
        assert hasattr(transport, "confirm") == hasattr(transport, "confirm_timing") == (kind in CONFIRMED_LATER)


def test_the_cers_dag_confirms_in_a_reschedule_sensor_that_carries_the_asset_and_the_others_are_unchanged():
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # older layout
        from airflow.models.dagbag import DagBag
    dags = Path(__file__).resolve().parents[1] / "dags"
    cers = DagBag(dag_folder=str(dags / "cers_student_groups.py")).get_dag("cers_student_groups")
    assert [t.task_id for t in cers.topological_sort()] == [
        "snapshot", "build", "validate", "package", "deliver", "confirm_delivery", "summary", "cleanup"]
    sensor = cers.get_task("confirm_delivery")
    assert (sensor.mode, sensor.poke_interval, sensor.timeout) == ("reschedule", 10, 1800)  # config/vendors/cers.yaml
    assert sensor.upstream_task_ids == {"deliver", "package"} and "summary" in sensor.downstream_task_ids
    assert [a.name for a in sensor.outlets] == ["rostering_cers_delivered"] and cers.get_task("deliver").outlets == []
    assert sensor.retries >= 1

    for stem, dag_id in (("stmath_oneroster", "stmath_oneroster"), ("derivita_subgroups", "derivita_subgroups")):
        dag = DagBag(dag_folder=str(dags / f"{stem}.py")).get_dag(dag_id)
        assert [t.task_id for t in dag.topological_sort()] == [
            "snapshot", "build", "validate", "package", "deliver", "summary", "cleanup"], dag_id
        assert [a.name for a in dag.get_task("deliver").outlets] == [f"rostering_{dag_id.split('_')[0]}_delivered"]
