"""Re-delivering CERS from rostering_operations (issue 17): each re-delivery keeps its upload ledger in its own
operations run folder, never beside the kept copies, and its batch ids are its own -- so a second re-delivery
uploads again, while a retry of the same re-delivery resumes. Against the CERS stand-in (HTTPS, real uploads)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from cers_helpers import EXPECTED

from rostering import operations, pipeline
from rostering.csvio import sha256_of
from rostering.delivery import DeliveryRun
from rostering.delivery.cers_api import LEDGER, deliver_payload
from rostering.delivery.records import list_deliveries
from rostering.run_options import RunOptions
from rostering.vendors.profile import Delivery, load_profile

CLIENT_ID, CLIENT_SECRET, USER, PASSWORD = "district-sis", "client-secret-value", "sysuser", "system-pw"
FAST = {"backoff_s": 0.01, "max_backoff_s": 5, "first_poll_s": 0.01, "poll_interval_s": 0.02, "request_timeout_s": 5}
NOW = dt.datetime(2026, 11, 30, 3, 0, tzinfo=dt.timezone.utc)
FILES = (EXPECTED / "counselors.csv", EXPECTED / "primary_only.csv")


@pytest.fixture()
def cers(tmp_path, monkeypatch):
    from rostering.devservers.cers_server import LocalCersServer

    monkeypatch.setenv("ROSTERING_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ROSTERING_WORK_DIR", str(tmp_path / "work"))
    with LocalCersServer(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, users={USER: PASSWORD},
                         process_after_polls=1) as server:
        monkeypatch.setenv("AIRFLOW_CONN_CERS_API", json.dumps({
            "conn_type": "http", "host": server.url, "login": USER, "password": PASSWORD,
            "extra": {"token_url": "/auth/token", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                      "verify": str(server.ca_path)}}))
        uploads: list[tuple[str, str]] = []  # (file name, batch) of every upload the receiver got
        create = server.create_import

        def counted(content, *, filename, batch, creator):
            uploads.append((filename, batch))
            return create(content, filename=filename, batch=batch, creator=creator)

        monkeypatch.setattr(server, "create_import", counted)
        profile = dataclasses.replace(load_profile("cers"),
                                      delivery=Delivery(kind="cers_api", conn_id="cers_api", options=FAST))
        yield profile, server, uploads, tmp_path


def delivered_run(profile, run_id: str) -> pipeline.RunPaths:
    """A vendor run that delivered FILES: deliver + confirm_delivery, as the DAG does."""
    paths = pipeline.RunPaths.for_run(profile.dag_id, run_id)
    for folder in (paths.build, paths.payload):
        folder.mkdir(parents=True, exist_ok=True)
        for source in FILES:
            shutil.copyfile(source, folder / source.name)
    packaged = {"files": [{"path": str(paths.payload / s.name), "sha256": sha256_of(s)} for s in FILES]}
    run = RunOptions.from_params({}, run_after=NOW, timezone="UTC")
    pipeline.deliver(profile, packaged, run_id=run_id, run=run, paths=paths)
    assert pipeline.confirm_delivery(profile, packaged, run_id=run_id, run=run, paths=paths)
    return paths


def ledgers_under(folder: Path) -> list[Path]:
    return sorted(folder.rglob(LEDGER))


def test_two_redeliveries_of_the_last_good_each_upload_every_file_and_are_recorded(cers):
    profile, server, uploads, tmp = cers
    delivered_run(profile, "scheduled__night")
    uploads.clear()
    for run_id in ("manual__ops1", "manual__ops2"):
        result = operations.redeliver_last_good(profile, reason="vendor lost the groups", run_id=run_id)
        assert sorted(i["status"] for i in result["imports"]) == ["PROCESSED", "PROCESSED"]
    assert Counter(name for name, _ in uploads) == {"counselors.csv": 2, "primary_only.csv": 2}
    assert len({batch for _, batch in uploads}) == 4  # each re-delivery under batches of its own
    records = list_deliveries("cers", include_unfinished=True)
    assert [(r.run_id, r.outcome) for r in records] == [
        ("scheduled__night", "delivered"), ("manual__ops1", "delivered"), ("manual__ops2", "delivered")]
    assert ledgers_under(tmp / "state") == []  # never among the kept copies
    for run_id in ("manual__ops1", "manual__ops2"):
        ledger = pipeline.RunPaths.for_run(operations.OPERATIONS_DAG_ID, run_id).reports / LEDGER
        assert sorted(e["file"] for e in json.loads(ledger.read_text())["imports"]) == [s.name for s in FILES]


def test_a_retry_of_the_same_redelivery_resumes_instead_of_uploading_again(cers):
    profile, server, uploads, tmp = cers
    delivered_run(profile, "scheduled__night")
    uploads.clear()
    operations.redeliver_last_good(profile, reason="vendor lost the groups", run_id="manual__ops")
    operations.redeliver_last_good(profile, reason="vendor lost the groups", run_id="manual__ops")  # task retry
    assert Counter(name for name, _ in uploads) == {"counselors.csv": 1, "primary_only.csv": 1}


def test_a_redelivery_never_reuses_the_batches_of_a_vendor_run_of_the_same_name(cers):
    profile, server, uploads, tmp = cers
    delivered_run(profile, "manual__1")
    vendor_batches = {batch for _, batch in uploads}
    uploads.clear()
    operations.redeliver_last_good(profile, reason="vendor lost the groups", run_id="manual__1")
    assert len(uploads) == 2 and not vendor_batches & {batch for _, batch in uploads}


def test_the_transport_never_keeps_its_ledger_among_the_kept_copies(cers):
    profile, server, uploads, tmp = cers
    delivered_run(profile, "scheduled__night")
    [record] = list_deliveries("cers")
    kept = [record.path(s.name) for s in FILES]
    assert all(f.exists() for f in kept)
    sent = len(uploads)
    with pytest.raises(ValueError, match="kept copies"):  # a caller that names no run of its own
        deliver_payload(profile.delivery, kept)
    assert len(uploads) == sent and ledgers_under(tmp / "state") == []
    own = DeliveryRun(reports=tmp / "work" / "elsewhere" / "reports", key="elsewhere")
    result = deliver_payload(profile.delivery, kept, run=own)
    assert [i["status"] for i in result["imports"]] == ["PROCESSED", "PROCESSED"]
    assert ledgers_under(tmp / "state") == [] and (own.reports / LEDGER).exists()
