"""SFTP delivery against a real asyncssh SFTP server on 127.0.0.1 (rostering.devservers.sftp_server).

Server-side state is checked directly on the server's folders (``server.home(USER)``), never through the client
under test.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncssh
import paramiko
import pytest

from rostering.delivery.sftp import (
    HostKeyPolicyError,
    PosixRenameUnsupportedError,
    UploadedFile,
    UploadVerificationError,
    deliver_files,
    is_transient_sftp_error,
    upload_atomically,
)
from rostering.devservers.sftp_server import Faults, LocalSFTPServer, public_key_line
from sftp_fixtures import (
    PASSWORD,
    USER,
    free_port,
    isolated_home,  # noqa: F401 - fixture
    other_host_key_line,
    paramiko_sftp,
    server_sftp,
    set_airflow_sftp_connection,
    sftp_server,  # noqa: F401 - fixture
)

PART_RE = re.compile(r"^\.roster\.csv\.[0-9a-f]{32}\.part$")


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _payload(size: int, seed: bytes) -> bytes:
    """Deterministic, non-repeating bytes (so a wrong offset or a truncated file cannot look right)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- upload_atomically with a plain paramiko client -------------------------------------------------------------------


@pytest.mark.parametrize("remote_dir", ["", ".", "outbox", "/outbox"])
def test_upload_lands_under_final_name_with_identical_bytes(sftp_server: LocalSFTPServer, tmp_path: Path,
                                                            remote_dir: str) -> None:
    data = _payload(200_000, b"first")
    local = _write(tmp_path / "out" / "roster.csv", data)
    target_dir = sftp_server.home(USER) / remote_dir.strip("/.")  # "" and "." are the login's home
    target_dir.mkdir(exist_ok=True)

    with server_sftp(sftp_server) as sftp:
        result = upload_atomically(sftp, local, remote_dir)

    assert (target_dir / "roster.csv").read_bytes() == data
    assert _listing(target_dir) == ["roster.csv"]  # no .part left behind
    expected_path = "roster.csv" if remote_dir in {"", "."} else f"{remote_dir}/roster.csv"
    assert result == UploadedFile(remote_path=expected_path, size=len(data), sha256=hashlib.sha256(data).hexdigest())


def test_upload_with_remote_name(sftp_server: LocalSFTPServer, tmp_path: Path) -> None:
    local = _write(tmp_path / "build-123.csv", b"id,name\n1,x\n")
    with server_sftp(sftp_server) as sftp:
        result = upload_atomically(sftp, local, ".", "students.csv")
    assert result.remote_path == "students.csv"
    assert _listing(sftp_server.home(USER)) == ["students.csv"]
    assert (sftp_server.home(USER) / "students.csv").read_bytes() == b"id,name\n1,x\n"


@pytest.mark.parametrize("bad_name", [".hidden.csv", "a/b.csv", "..", "roster.csv.part", ""])
def test_upload_rejects_unsafe_remote_names(sftp_server: LocalSFTPServer, tmp_path: Path, bad_name: str) -> None:
    local = _write(tmp_path / "roster.csv", b"x")
    with server_sftp(sftp_server) as sftp, pytest.raises(ValueError):
        upload_atomically(sftp, local, ".", bad_name)
    assert _listing(sftp_server.home(USER)) == []


def test_overwrite_replaces_the_file_by_rename(sftp_server: LocalSFTPServer, tmp_path: Path) -> None:
    final = _write(sftp_server.home(USER) / "roster.csv", b"old roster\n")
    old_inode = final.stat().st_ino
    new = _payload(100_000, b"second")
    local = _write(tmp_path / "roster.csv", new)

    with server_sftp(sftp_server) as sftp:
        upload_atomically(sftp, local, "")

    assert final.read_bytes() == new
    # A new inode: the old file was replaced by a rename, not truncated and rewritten in place.
    assert final.stat().st_ino != old_inode
    assert _listing(sftp_server.home(USER)) == ["roster.csv"]


def test_final_name_keeps_previous_version_while_upload_is_in_progress(sftp_server: LocalSFTPServer,
                                                                       tmp_path: Path) -> None:
    home = sftp_server.home(USER)
    old = b"previous night's roster\n"
    _write(home / "roster.csv", old)
    new = _payload(20 * 32768, b"slow")  # 20 SFTP write requests of 32 KiB
    local = _write(tmp_path / "roster.csv", new)
    sftp_server.faults = Faults(write_delay_s=0.04)  # ~0.8 s of uploading

    outcome: dict[str, object] = {}

    def upload() -> None:
        try:
            with server_sftp(sftp_server) as sftp:
                outcome["result"] = upload_atomically(sftp, local, ".")
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            outcome["error"] = error

    worker = threading.Thread(target=upload)
    worker.start()
    samples_with_part = 0
    try:
        while worker.is_alive():
            names = _listing(home)
            parts = [n for n in names if PART_RE.match(n)]
            if parts and worker.is_alive():
                # Mid-upload: the final name still holds the complete previous version; the new bytes only
                # exist under the temporary name.
                assert (home / "roster.csv").read_bytes() == old
                assert names == sorted(["roster.csv", parts[0]])
                samples_with_part += 1
            time.sleep(0.01)
    finally:
        worker.join(timeout=30)
    assert "error" not in outcome, outcome.get("error")
    assert samples_with_part >= 5, "the upload finished too fast to observe the in-progress state"
    assert (home / "roster.csv").read_bytes() == new
    assert _listing(home) == ["roster.csv"]


def test_connection_drop_mid_upload_leaves_final_untouched(sftp_server: LocalSFTPServer, tmp_path: Path) -> None:
    home = sftp_server.home(USER)
    old = b"previous night's roster\n"
    _write(home / "roster.csv", old)
    new = _payload(300_000, b"dropped")
    local = _write(tmp_path / "roster.csv", new)
    sftp_server.faults = Faults(drop_after_bytes=100_000)

    with server_sftp(sftp_server) as sftp:
        # What paramiko raises depends on where it notices the lost connection: SSHException("Server connection
        # dropped"), EOFError, or OSError("Socket is closed"). All of them must be classified transient.
        with pytest.raises((paramiko.SSHException, EOFError, OSError)) as raised:
            upload_atomically(sftp, local, ".")
    assert is_transient_sftp_error(raised.value), repr(raised.value)

    # The final name still holds the previous version, byte for byte.
    assert (home / "roster.csv").read_bytes() == old
    # Exact leftover: the server aborted the connection, so the client's cleanup (remove of the temporary file)
    # could not reach it. The partial upload therefore remains under its dot-prefixed temporary name -- exactly the
    # 100 000 bytes the server accepted -- and was never renamed. Receivers globbing for *.csv do not see it.
    names = _listing(home)
    assert len(names) == 2 and PART_RE.match(names[0]) and names[1] == "roster.csv", names
    assert (home / names[0]).read_bytes() == new[:100_000]

    # A retry on a fresh connection delivers the complete file.
    sftp_server.faults = Faults()
    with server_sftp(sftp_server) as sftp:
        upload_atomically(sftp, local, ".")
    assert (home / "roster.csv").read_bytes() == new


def test_failed_rename_removes_temp_and_keeps_final(sftp_server: LocalSFTPServer, tmp_path: Path) -> None:
    home = sftp_server.home(USER)
    _write(home / "roster.csv", b"old\n")
    local = _write(tmp_path / "roster.csv", b"new\n")
    sftp_server.faults = Faults(fail_rename=True)

    with server_sftp(sftp_server) as sftp:
        with pytest.raises(OSError, match="rename failed") as raised:
            upload_atomically(sftp, local, ".")
        assert not isinstance(raised.value, PosixRenameUnsupportedError)
    # The connection survived, so the temporary file was removed; the final file is untouched.
    assert _listing(home) == ["roster.csv"]
    assert (home / "roster.csv").read_bytes() == b"old\n"
    assert is_transient_sftp_error(raised.value)


def test_missing_remote_folder_is_a_permanent_error(sftp_server: LocalSFTPServer, tmp_path: Path) -> None:
    local = _write(tmp_path / "roster.csv", b"x\n")
    with server_sftp(sftp_server) as sftp, pytest.raises(FileNotFoundError) as raised:
        upload_atomically(sftp, local, "no-such-folder")
    assert not is_transient_sftp_error(raised.value)
    assert _listing(sftp_server.home(USER)) == []


# -- the server itself -------------------------------------------------------------------------------------------------


def test_server_chroot_cannot_be_escaped(sftp_server: LocalSFTPServer, tmp_path: Path) -> None:
    with server_sftp(sftp_server) as sftp:
        assert sftp.normalize(".") == "/"
        sftp.putfo(io.BytesIO(b"x"), "../../escape.txt")
        assert sftp.listdir("/") == ["escape.txt"]
        with pytest.raises(OSError):
            sftp.symlink("/etc/passwd", "passwd")
    assert _listing(sftp_server.home(USER)) == ["escape.txt"]
    assert _listing(sftp_server.root) == [USER]


def test_server_rejects_wrong_password(sftp_server: LocalSFTPServer) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        with server_sftp(sftp_server, password="wrong"):
            pass


# -- deliver_files through Airflow's SFTPHook --------------------------------------------------------------------------


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")


@contextmanager
def _all_logs() -> Iterator[_ListHandler]:
    """Every log record at DEBUG and above, from any logger (pytest's caplog does not survive Airflow's import-time
    logging configuration, so import Airflow first and attach a handler to the root logger afterwards)."""
    import airflow.providers.sftp.hooks.sftp  # noqa: F401

    root = logging.getLogger()
    handler, old_level = _ListHandler(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_deliver_files_via_sftp_hook(sftp_server: LocalSFTPServer, isolated_home: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = set_airflow_sftp_connection(monkeypatch, port=sftp_server.port, extra={
        "host_key": sftp_server.host_key_line, "look_for_keys": "false"})
    (sftp_server.home(USER) / "outbox").mkdir()
    secret_row = b"S-0001,Ada,Lovelace,2014-12-10\n"
    files = [_write(tmp_path / "students.csv", b"id,first,last,dob\n" + secret_row),
             _write(tmp_path / "classes.csv", _payload(70_000, b"classes"))]

    with _all_logs() as logs:
        delivered = deliver_files(ssh_conn_id=conn_id, files=files, remote_dir="outbox")
    log_text = "\n".join(logs.messages)

    outbox = sftp_server.home(USER) / "outbox"
    assert _listing(outbox) == ["classes.csv", "students.csv"]
    for path, result in zip(files, delivered):
        assert (outbox / path.name).read_bytes() == path.read_bytes()
        assert result == UploadedFile(f"outbox/{path.name}", path.stat().st_size,
                                      hashlib.sha256(path.read_bytes()).hexdigest())
    assert isolated_home.read_text() == ""  # known_hosts neither needed nor modified
    # Names, sizes and checksums are logged; contents and the password are not.
    assert "students.csv" in log_text and delivered[0].sha256 in log_text
    assert "Lovelace" not in log_text and PASSWORD not in log_text


def test_deliver_files_into_login_home(sftp_server: LocalSFTPServer, isolated_home: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = set_airflow_sftp_connection(monkeypatch, port=sftp_server.port, extra={
        "host_key": sftp_server.host_key_line, "look_for_keys": "false"})
    local = _write(tmp_path / "roster.csv", b"a,b\n")
    [result] = deliver_files(ssh_conn_id=conn_id, files=[local], remote_dir="")
    assert result.remote_path == "roster.csv"
    assert (sftp_server.home(USER) / "roster.csv").read_bytes() == b"a,b\n"


def test_unknown_pinned_host_key_is_refused(sftp_server: LocalSFTPServer, isolated_home: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = set_airflow_sftp_connection(monkeypatch, port=sftp_server.port, extra={
        "host_key": other_host_key_line(), "look_for_keys": "false"})
    local = _write(tmp_path / "roster.csv", b"a,b\n")
    with pytest.raises(paramiko.BadHostKeyException) as raised:
        deliver_files(ssh_conn_id=conn_id, files=[local], remote_dir="")
    assert not is_transient_sftp_error(raised.value)
    assert _listing(sftp_server.home(USER)) == []
    assert isolated_home.read_text() == ""


def test_no_pinned_key_and_empty_known_hosts_is_refused(sftp_server: LocalSFTPServer, isolated_home: Path,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = set_airflow_sftp_connection(monkeypatch, port=sftp_server.port, extra={"look_for_keys": "false"})
    local = _write(tmp_path / "roster.csv", b"a,b\n")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts") as raised:
        deliver_files(ssh_conn_id=conn_id, files=[local], remote_dir="")
    assert not is_transient_sftp_error(raised.value)
    assert _listing(sftp_server.home(USER)) == []
    assert isolated_home.read_text() == ""  # the unknown key was not auto-added


def test_known_hosts_entry_is_accepted_without_pin(sftp_server: LocalSFTPServer, isolated_home: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    isolated_home.write_text(f"[127.0.0.1]:{sftp_server.port} {sftp_server.host_key_line}\n")
    conn_id = set_airflow_sftp_connection(monkeypatch, port=sftp_server.port, extra={"look_for_keys": "false"})
    local = _write(tmp_path / "roster.csv", b"a,b\n")
    deliver_files(ssh_conn_id=conn_id, files=[local], remote_dir="")
    assert _listing(sftp_server.home(USER)) == ["roster.csv"]


def test_pin_wins_over_a_known_hosts_entry(sftp_server: LocalSFTPServer, isolated_home: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # paramiko consults ~/.ssh/known_hosts BEFORE the hook's pinned key; deliver_files must still enforce the pin.
    isolated_home.write_text(f"[127.0.0.1]:{sftp_server.port} {sftp_server.host_key_line}\n")
    conn_id = set_airflow_sftp_connection(monkeypatch, port=sftp_server.port, extra={
        "host_key": other_host_key_line(), "look_for_keys": "false"})
    local = _write(tmp_path / "roster.csv", b"a,b\n")
    with pytest.raises(paramiko.BadHostKeyException):
        deliver_files(ssh_conn_id=conn_id, files=[local], remote_dir="")
    assert _listing(sftp_server.home(USER)) == []


@pytest.mark.parametrize("known_hosts_lists_the_server", [False, True])
def test_a_server_with_another_key_than_the_pin_never_receives_the_password(
        sftp_server: LocalSFTPServer, isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        known_hosts_lists_the_server: bool) -> None:
    # The pin is checked during the key exchange, before authentication; ~/.ssh/known_hosts cannot vouch instead.
    if known_hosts_lists_the_server:
        isolated_home.write_text(f"[127.0.0.1]:{sftp_server.port} {sftp_server.host_key_line}\n")
    conn_id = set_airflow_sftp_connection(monkeypatch, port=sftp_server.port, extra={
        "host_key": other_host_key_line(), "look_for_keys": "false"})
    local = _write(tmp_path / "roster.csv", b"a,b\n")
    with pytest.raises(paramiko.BadHostKeyException) as raised:
        deliver_files(ssh_conn_id=conn_id, files=[local], remote_dir="")
    assert not is_transient_sftp_error(raised.value)
    assert sftp_server.auth_attempts == []  # no password was sent
    assert PASSWORD not in str(raised.value)


def test_the_pinned_server_receives_the_password_once(sftp_server: LocalSFTPServer, isolated_home: Path,
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = set_airflow_sftp_connection(monkeypatch, port=sftp_server.port, extra={
        "host_key": sftp_server.host_key_line, "look_for_keys": "false"})
    deliver_files(ssh_conn_id=conn_id, files=[_write(tmp_path / "roster.csv", b"a,b\n")], remote_dir="")
    assert sftp_server.auth_attempts == [(USER, "password")]


@pytest.mark.parametrize("extra", [{"no_host_key_check": "true"}, {"allow_host_key_change": "true"}])
def test_connections_that_skip_host_key_checks_are_refused(sftp_server: LocalSFTPServer, isolated_home: Path,
                                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           extra: dict[str, str]) -> None:
    conn_id = set_airflow_sftp_connection(monkeypatch, port=sftp_server.port,
                                          extra={**extra, "look_for_keys": "false"})
    local = _write(tmp_path / "roster.csv", b"a,b\n")
    with pytest.raises(HostKeyPolicyError) as raised:
        deliver_files(ssh_conn_id=conn_id, files=[local], remote_dir="")
    assert not is_transient_sftp_error(raised.value)
    assert _listing(sftp_server.home(USER)) == []
    assert isolated_home.read_text() == ""


@pytest.mark.parametrize("placeholder", ["ssh-ed25519 AAAA...paste-the-verified-key",  # .env.example's
                                         "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"])  # a key line cut short
def test_a_placeholder_host_key_says_what_is_wrong(sftp_server: LocalSFTPServer, isolated_home: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, placeholder: str) -> None:
    conn_id = set_airflow_sftp_connection(monkeypatch, port=sftp_server.port, extra={
        "host_key": placeholder, "look_for_keys": "false"})
    local = _write(tmp_path / "roster.csv", b"a,b\n")
    with pytest.raises(HostKeyPolicyError, match=r"extra.host_key is not a public key line .* placeholder from "
                                                  r"\.env\.example.*ssh-keyscan") as raised:
        deliver_files(ssh_conn_id=conn_id, files=[local], remote_dir="")
    assert not is_transient_sftp_error(raised.value)
    assert sftp_server.auth_attempts == []  # nothing was sent, not even the login


def test_wrong_password_is_permanent(sftp_server: LocalSFTPServer, isolated_home: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = set_airflow_sftp_connection(monkeypatch, port=sftp_server.port, password="not-the-password", extra={
        "host_key": sftp_server.host_key_line, "look_for_keys": "false"})
    local = _write(tmp_path / "roster.csv", b"a,b\n")
    started = time.monotonic()
    with pytest.raises(paramiko.AuthenticationException) as raised:
        deliver_files(ssh_conn_id=conn_id, files=[local], remote_dir="")
    # One attempt only: SSHHook would otherwise retry 3 times, 3-5 s apart (retrying is the task's decision).
    assert time.monotonic() - started < 2.5
    assert not is_transient_sftp_error(raised.value)
    assert _listing(sftp_server.home(USER)) == []


def test_connection_refused_is_transient(isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = set_airflow_sftp_connection(monkeypatch, port=free_port(), extra={
        "host_key": other_host_key_line(), "look_for_keys": "false"})
    local = _write(tmp_path / "roster.csv", b"a,b\n")
    started = time.monotonic()
    with pytest.raises(OSError) as raised:
        deliver_files(ssh_conn_id=conn_id, files=[local], remote_dir="")
    assert time.monotonic() - started < 2.5  # no retries inside deliver_files
    assert isinstance(raised.value, paramiko.ssh_exception.NoValidConnectionsError)
    assert is_transient_sftp_error(raised.value)


@pytest.mark.parametrize(("error", "transient"), [
    (ConnectionResetError(104, "Connection reset by peer"), True),
    (socket.timeout("timed out"), True),
    (EOFError(), True),
    (OSError("Socket is closed"), True),
    (UploadVerificationError("size"), True),
    (FileNotFoundError(2, "No such file"), False),
    (PermissionError(13, "Permission denied"), False),
    (PosixRenameUnsupportedError("no posix-rename"), False),
    (paramiko.ssh_exception.IncompatiblePeer("no matching cipher"), False),
    (ValueError("bad host_key"), False),
])
def test_error_classification(error: BaseException, transient: bool) -> None:
    assert is_transient_sftp_error(error) is transient


# -- the command line --------------------------------------------------------------------------------------------------


def test_cli_serves_until_terminated(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    host_key = tmp_path / "keys" / "host_ed25519"
    root = tmp_path / "root"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rostering.devservers.sftp_server", "--root", str(root), "--port", "0",
         "--host-key", str(host_key), "--user", USER, "--password", PASSWORD, "--ready-file", str(ready)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not ready.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        assert info["host"] == "127.0.0.1" and info["host_key"].startswith("ssh-ed25519 AAAA")
        # The announced key is the persisted one, and the key file is private.
        assert info["host_key"] == public_key_line(asyncssh.read_private_key(host_key))
        assert stat.S_IMODE(host_key.stat().st_mode) == 0o600

        local = _write(tmp_path / "roster.csv", b"id\n1\n")
        with paramiko_sftp(info["host"], info["port"], info["host_key"]) as sftp:
            upload_atomically(sftp, local, ".")
        assert (root / USER / "roster.csv").read_bytes() == b"id\n1\n"
    finally:
        proc.terminate()
        stdout, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0, stderr
    assert f"127.0.0.1:{info['port']}" in stdout
    assert PASSWORD not in stdout + stderr
    assert not ready.exists()
