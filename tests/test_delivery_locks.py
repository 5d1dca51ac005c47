"""One delivery at a time per destination, across DAGs and processes (rostering.delivery.locks).

A re-delivery from the rostering_operations DAG may race the vendor's own run to the same SFTP folder; without the
lock the second one's sweep of leftover temporary files removes the first one's upload in progress.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from sftp_fixtures import USER, isolated_home, set_airflow_sftp_connection, sftp_server  # noqa: F401 - fixtures

from rostering.delivery.sftp import deliver_files, is_transient_sftp_error
from rostering.devservers.sftp_server import Faults


def test_two_deliveries_to_one_folder_are_serialised_and_never_sweep_each_other(
        sftp_server, isolated_home, tmp_path, monkeypatch):  # noqa: F811
    conn_id = set_airflow_sftp_connection(monkeypatch, port=sftp_server.port,
                                          extra={"host_key": sftp_server.host_key_line, "look_for_keys": "false"})
    home = sftp_server.home(USER)
    vendor_run = tmp_path / "run" / "roster.csv"
    redelivery = tmp_path / "redelivery" / "roster.csv"
    for path, byte in ((vendor_run, b"n"), (redelivery, b"r")):
        path.parent.mkdir()
        path.write_bytes(byte * (12 * 32768))
    sftp_server.faults = Faults(write_delay_s=0.05)  # the vendor run's upload takes ~0.6 s
    errors: dict[str, BaseException] = {}

    def deliver(name, path):
        try:
            deliver_files(ssh_conn_id=conn_id, files=[path], remote_dir="")
        except BaseException as error:  # noqa: BLE001 - reported by the test thread
            errors[name] = error

    first = threading.Thread(target=deliver, args=("vendor run", vendor_run))
    first.start()
    deadline = time.monotonic() + 20
    while not any(p.name.endswith(".part") for p in home.iterdir()):  # the vendor run is uploading
        assert time.monotonic() < deadline and first.is_alive(), errors
        time.sleep(0.01)
    second = threading.Thread(target=deliver, args=("re-delivery", redelivery))
    second.start()
    first.join(timeout=60)
    second.join(timeout=60)

    assert errors == {}
    assert [p.name for p in home.iterdir()] == ["roster.csv"]
    assert (home / "roster.csv").read_bytes() == redelivery.read_bytes()  # the later one lands last, whole
    steps = [op for _, op, path, *_ in sftp_server.operations if path.endswith(".part")]
    assert steps == ["open-write", "rename", "open-write", "rename"]  # one after the other, never interleaved
    assert not [op for op in sftp_server.operations if op[1] == "remove"]  # nobody swept the other's upload


def _hold_lock_in_another_process(key: str, state_dir) -> subprocess.Popen:
    code = ("import sys, time\n"
            "from rostering.delivery.locks import destination_lock\n"
            "with destination_lock(sys.argv[1]):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, key], stdout=subprocess.PIPE, text=True,
                              env={**__import__("os").environ, "ROSTERING_STATE_DIR": str(state_dir)})
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_lock_held_by_another_process_times_out_naming_the_destination(tmp_path, monkeypatch):
    from rostering.delivery.locks import DestinationBusyError, destination_lock

    monkeypatch.setenv("ROSTERING_STATE_DIR", str(tmp_path / "state"))
    key = "sftp://stmath_sftp/~"
    holder = _hold_lock_in_another_process(key, tmp_path / "state")
    try:
        started = time.monotonic()
        with pytest.raises(DestinationBusyError, match="sftp://stmath_sftp/~") as busy:
            with destination_lock(key, timeout_s=0.5):
                pytest.fail("the lock was taken twice")
        assert 0.5 <= time.monotonic() - started < 5
        assert is_transient_sftp_error(busy.value)  # the other delivery ends; a task retry gets the lock
        with destination_lock("sftp://stmath_sftp/outbox", timeout_s=0.5):
            pass  # another destination is not blocked
    finally:
        holder.kill()
        holder.wait()
    with destination_lock(key, timeout_s=5):  # the kernel released it with the process
        pass
