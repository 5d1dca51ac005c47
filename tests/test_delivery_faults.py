"""Faults injected into the real SFTP server, through the pipeline's deliver stage (what the Airflow task runs)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from sftp_fixtures import PASSWORD, USER, other_host_key_line, sftp_server  # noqa: F401 - fixture

from rostering import pipeline
from rostering.delivery.records import list_deliveries
from rostering.delivery.sftp import is_transient_sftp_error
from rostering.devservers.sftp_server import Faults
from rostering.run_options import RunOptions
from rostering.vendors.profile import Delivery, load_profile

RUN = RunOptions.from_params({}, run_after=dt.datetime(2026, 11, 23, 12, tzinfo=dt.timezone.utc), timezone="UTC")


@pytest.fixture()
def setup(tmp_path, monkeypatch, sftp_server):  # noqa: F811
    monkeypatch.setenv("ROSTERING_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ROSTERING_WORK_DIR", str(tmp_path / "work"))

    def connect(host_key: str) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_FAULT_SFTP", json.dumps({
            "conn_type": "sftp", "host": sftp_server.host, "port": sftp_server.port, "login": USER,
            "password": PASSWORD, "extra": {"host_key": host_key, "look_for_keys": "false"}}))

    connect(sftp_server.host_key_line)
    profile = dataclasses.replace(load_profile("stmath"), delivery=Delivery(kind="sftp", conn_id="fault_sftp"))
    payload = tmp_path / "payload" / "OneRoster.zip"
    payload.parent.mkdir()
    payload.write_bytes(b"z" * 300_000)
    packaged = {"files": [{"path": str(payload), "sha256": "sha-new", "size": payload.stat().st_size}]}
    previous = sftp_server.home(USER) / "OneRoster.zip"
    previous.write_bytes(b"last good package")
    return profile, packaged, previous, connect


def deliver(profile, packaged, run_id="scheduled__1"):
    paths = pipeline.RunPaths.for_run(profile.dag_id, run_id)
    paths.build.mkdir(parents=True, exist_ok=True)
    return pipeline.deliver(profile, packaged, run_id=run_id, run=RUN, paths=paths)


def test_a_dropped_connection_is_retried_and_delivers_once_whole(setup, sftp_server):  # noqa: F811
    profile, packaged, previous, _ = setup
    sftp_server.faults = Faults(drop_after_bytes=100_000)
    with pytest.raises(Exception) as first_try:
        deliver(profile, packaged)
    assert is_transient_sftp_error(first_try.value)  # the task is retried with backoff
    assert previous.read_bytes() == b"last good package"  # the receiver still holds the last good copy
    assert list_deliveries("stmath") == []  # nothing recorded as delivered

    sftp_server.faults = Faults()
    assert any(p.name.endswith(".part") for p in sftp_server.home(USER).iterdir())  # the drop's leftover
    deliver(profile, packaged)  # the retry
    assert previous.read_bytes() == b"z" * 300_000
    assert len(list_deliveries("stmath")) == 1
    assert [p.name for p in sftp_server.home(USER).iterdir()] == ["OneRoster.zip"]  # the leftover was swept


def test_a_slow_server_still_gets_the_whole_file(setup, sftp_server):  # noqa: F811
    profile, packaged, previous, _ = setup
    sftp_server.faults = Faults(write_delay_s=0.02)
    deliver(profile, packaged)
    assert previous.read_bytes() == b"z" * 300_000


def test_a_wrong_host_key_fails_permanently_and_sends_nothing(setup, sftp_server):  # noqa: F811
    profile, packaged, previous, connect = setup
    connect(other_host_key_line())
    with pytest.raises(Exception) as refused:
        deliver(profile, packaged)
    assert not is_transient_sftp_error(refused.value)  # no retry: a person must check the connection
    assert previous.read_bytes() == b"last good package"
    assert [p.name for p in sftp_server.home(USER).iterdir()] == ["OneRoster.zip"]
    assert list_deliveries("stmath") == []
