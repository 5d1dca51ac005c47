"""Several files delivered as one set (Literably's plain CSVs): a failure part-way leaves the previous set whole."""
from __future__ import annotations

import pytest
from sftp_fixtures import isolated_home, paramiko_sftp, set_airflow_sftp_connection, sftp_server  # noqa: F401

from rostering.delivery.sftp import deliver_files, remove_stale_temporary_files, upload_set_atomically
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


# -- the rename phase: a journal on the server lets the next delivery finish what a drop interrupted -------------------


def _finals(home):
    return {p.name: p.read_bytes() for p in home.iterdir() if not p.name.startswith(".")}


def _hidden(home):
    return sorted(p.name for p in home.iterdir() if p.name.startswith("."))


OLD_SET = {"a.csv": b"old a", "b.csv": b"old b", "c.csv": b"old c"}
NEW_SET = {"a.csv": b"new a", "b.csv": b"new b", "c.csv": b"c" * 200_000}


@pytest.mark.parametrize("rename_fault", [Faults(drop_after_renames=1), Faults(fail_renames_after=1)],
                         ids=["connection-dropped", "rename-refused"])
def test_an_interrupted_rename_phase_is_finished_by_the_next_delivery_never_left_mixed(
        sftp_server, isolated_home, tmp_path, monkeypatch, rename_fault):  # noqa: F811
    home = sftp_server.home(USER)
    _write(home, OLD_SET)
    new = _write(tmp_path / "new", NEW_SET)
    conn_id = set_airflow_sftp_connection(monkeypatch, port=sftp_server.port,
                                          extra={"host_key": sftp_server.host_key_line, "look_for_keys": "false"})

    sftp_server.faults = rename_fault  # a.csv is renamed into place, then the rename of b.csv fails
    with pytest.raises(Exception):
        deliver_files(ssh_conn_id=conn_id, files=new, remote_dir="")
    assert _finals(home) == {**OLD_SET, "a.csv": b"new a"}  # mixed, for now
    hidden = _hidden(home)
    # The staged b.csv and c.csv are kept, with the journal that names them: the set can still be finished.
    assert [n for n in hidden if n.startswith(".rostering-set.")], hidden
    assert sorted(n.split(".")[1] for n in hidden if n.endswith(".part")) == ["b", "c"]

    # The retry first finishes the recorded renames; then its own upload dies while staging c.csv. The receiver
    # holds the complete new set all the same.
    sftp_server.faults = Faults(drop_after_bytes=100_000)
    with pytest.raises(Exception):
        deliver_files(ssh_conn_id=conn_id, files=new, remote_dir="")
    assert _finals(home) == NEW_SET
    assert not [n for n in _hidden(home) if n.startswith(".rostering-set.")]

    sftp_server.faults = Faults()
    deliver_files(ssh_conn_id=conn_id, files=new, remote_dir="")
    assert _finals(home) == NEW_SET
    assert _hidden(home) == []  # no journal, no temporary file left


def test_the_sweep_never_removes_temporary_files_a_pending_journal_needs(sftp_server, tmp_path):  # noqa: F811
    home = sftp_server.home(USER)
    _write(home, OLD_SET)
    new = _write(tmp_path / "new", NEW_SET)
    sftp_server.faults = Faults(fail_renames_after=1)
    with paramiko_sftp(sftp_server.host, sftp_server.port, sftp_server.host_key_line) as sftp:
        with pytest.raises(OSError):
            upload_set_atomically(sftp, new, "")
        kept = _hidden(home)
        remove_stale_temporary_files(sftp, "", list(NEW_SET))
    assert _hidden(home) == kept and len([n for n in kept if n.endswith(".part")]) == 2


def test_a_set_that_cannot_be_finished_is_rolled_back_and_the_delivery_proceeds(
        sftp_server, isolated_home, tmp_path, monkeypatch):  # noqa: F811
    home = sftp_server.home(USER)
    _write(home, OLD_SET)
    new = _write(tmp_path / "new", NEW_SET)
    conn_id = set_airflow_sftp_connection(monkeypatch, port=sftp_server.port,
                                          extra={"host_key": sftp_server.host_key_line, "look_for_keys": "false"})
    sftp_server.faults = Faults(fail_renames_after=1)
    with pytest.raises(Exception):
        deliver_files(ssh_conn_id=conn_id, files=new, remote_dir="")
    # Someone removes one staged file: b.csv can no longer be finished, and c.csv's file is damaged.
    parts = {n.split(".")[1]: home / n for n in _hidden(home) if n.endswith(".part")}
    parts["b"].unlink()
    parts["c"].write_bytes(b"not what was staged")

    sftp_server.faults = Faults()
    later = _write(tmp_path / "later", {"a.csv": b"later a", "b.csv": b"later b", "c.csv": b"later c"})
    deliver_files(ssh_conn_id=conn_id, files=later, remote_dir="")
    assert _finals(home) == {"a.csv": b"later a", "b.csv": b"later b", "c.csv": b"later c"}
    assert _hidden(home) == []


def test_a_journal_cut_short_is_removed_and_its_staged_files_swept(sftp_server, isolated_home, tmp_path,
                                                                   monkeypatch):  # noqa: F811
    home = sftp_server.home(USER)
    _write(home, OLD_SET)
    # What a drop while writing the journal leaves: staged files and half a journal (no rename was ever made).
    (home / ".a.csv.0123456789abcdef0123456789abcdef.part").write_bytes(b"staged a")
    (home / ".rostering-set.0123456789abcdef0123456789abcdef.json").write_bytes(b'{"format": "rostering-set/1", "fi')
    conn_id = set_airflow_sftp_connection(monkeypatch, port=sftp_server.port,
                                          extra={"host_key": sftp_server.host_key_line, "look_for_keys": "false"})
    deliver_files(ssh_conn_id=conn_id, files=_write(tmp_path / "new", NEW_SET), remote_dir="")
    assert _finals(home) == NEW_SET
    assert _hidden(home) == []
