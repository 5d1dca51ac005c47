"""Several files delivered as one set (Literably's plain CSVs): a failure part-way leaves the previous set whole."""
from __future__ import annotations

import pytest
from sftp_fixtures import paramiko_sftp, sftp_server  # noqa: F401 - fixtures

from rostering.delivery.sftp import upload_set_atomically
from rostering.devservers.sftp_server import Faults

USER = "vendor"


def _write(folder, files):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, content in files.items():
        (folder / name).write_bytes(content)
        paths.append(folder / name)
    return paths


def test_a_drop_while_uploading_the_second_file_leaves_the_previous_set_untouched(sftp_server, tmp_path):
    home = sftp_server.home(USER)
    old = {"orgs.csv": b"old orgs", "users.csv": b"old users"}
    _write(home, old)
    new = _write(tmp_path / "new", {"orgs.csv": b"new orgs", "users.csv": b"u" * 200_000})

    sftp_server.faults = Faults(drop_after_bytes=100_000)  # orgs.csv passes, users.csv is cut off
    with pytest.raises(Exception):
        with paramiko_sftp(sftp_server.host, sftp_server.port, sftp_server.host_key_line) as sftp:
            upload_set_atomically(sftp, new, "")

    finals = {p.name: p.read_bytes() for p in home.iterdir() if not p.name.startswith(".")}
    assert finals == old  # orgs.csv was staged and verified, but never renamed into place

    sftp_server.faults = Faults()
    with paramiko_sftp(sftp_server.host, sftp_server.port, sftp_server.host_key_line) as sftp:
        delivered = upload_set_atomically(sftp, new, "")
    assert [d.remote_path for d in delivered] == ["orgs.csv", "users.csv"]
    assert (home / "orgs.csv").read_bytes() == b"new orgs"
    assert (home / "users.csv").read_bytes() == b"u" * 200_000


def test_a_failed_rename_removes_every_staged_file(sftp_server, tmp_path):
    home = sftp_server.home(USER)
    new = _write(tmp_path / "new", {"a.csv": b"a", "b.csv": b"b"})
    sftp_server.faults = Faults(fail_rename=True)
    with pytest.raises(Exception):
        with paramiko_sftp(sftp_server.host, sftp_server.port, sftp_server.host_key_line) as sftp:
            upload_set_atomically(sftp, new, "")
    assert list(home.iterdir()) == []
