"""A real SFTP server on loopback, built on asyncssh: the stand-in for a vendor's SFTP host (demo and tests).

It is a real SSH server: ssh-ed25519 host key, password authentication, the SFTP subsystem only (no shell, no
exec, no forwarding, no SCP). Every login is confined ("chrooted") to ``root/<username>``, which is also the
login's home folder, so ``"."`` and ``"/"`` are the same folder for the client.

Fault injection, for delivery-safety tests, is a single attribute that may be replaced at any time::

    with LocalSFTPServer(root=tmp, users={"vendor": "pw"}) as server:
        server.faults = Faults(write_delay_s=0.05)       # every write request sleeps first
        server.faults = Faults(drop_after_bytes=1000)    # abort the connection once a file would pass 1000 bytes
        server.faults = Faults(fail_rename=True)         # rename and posix-rename answer SSH_FX_FAILURE
        server.faults = Faults(drop_after_renames=1)     # per connection: 1 rename works, the next drops it
        server.faults = Faults(fail_renames_after=1)     # per connection: 1 rename works, the next ones fail
        server.faults = Faults()                         # back to normal

Inspection, for the same tests: ``server.auth_attempts`` lists ``(username, method)`` of every authentication
attempt the server received (never the password), ``server.operations`` lists ``(username, operation, path, ...)``
of every file opened for writing, renamed or removed, in order.

Command line (foreground until SIGTERM/SIGINT)::

    python -m rostering.devservers.sftp_server --root DIR --port 2222 --host-key FILE \
        --user vendor --password secret [--ready-file ready.json]

The password may come from the ``ROSTERING_SFTP_PASSWORD`` environment variable instead of ``--password``
(keeps it out of ``ps``). Passwords and file contents are never printed or logged.
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import hmac
import json
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import asyncssh

__all__ = ["Faults", "LocalSFTPServer", "main"]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
PASSWORD_ENV = "ROSTERING_SFTP_PASSWORD"


@dataclass(frozen=True)
class Faults:
    """Faults the server injects. Frozen: change them by assigning a new ``Faults`` to ``server.faults``.

    drop_after_bytes: when a write would take the bytes written through one open file handle past this number,
        the server writes only the bytes up to the limit and then aborts the whole SSH connection (TCP closed, no
        SFTP status reply, no SSH disconnect message) -- like a vendor host or firewall dying mid-transfer.
        The partial file stays on disk, exactly ``drop_after_bytes`` long.
    write_delay_s: seconds every write request sleeps before it is applied (makes uploads observably slow).
    fail_rename: ``rename`` and ``posix-rename@openssh.com`` fail with SSH_FX_FAILURE, touching nothing.
    drop_after_renames: that many renames per connection are applied and answered; the next one aborts the
        connection (like ``drop_after_bytes``) without being applied -- a drop in the middle of renaming a set.
    fail_renames_after: that many renames per connection are applied; every later one fails with SSH_FX_FAILURE,
        touching nothing, and the connection stays up.
    """

    drop_after_bytes: int | None = None
    write_delay_s: float = 0.0
    fail_rename: bool = False
    drop_after_renames: int | None = None
    fail_renames_after: int | None = None


class _SSHServer(asyncssh.SSHServer):
    """One instance per connection: password authentication against the server's user table."""

    def __init__(self, owner: LocalSFTPServer) -> None:
        self._owner = owner
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._owner._connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._owner._connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True  # authentication is always required

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        self._owner._record_auth_attempt(username, "password")
        expected = self._owner._users.get(username)
        if expected is None:
            hmac.compare_digest(password.encode(), password.encode())  # same work for unknown users
            return False
        return hmac.compare_digest(expected.encode(), password.encode())


class _ChrootSFTPServer(asyncssh.SFTPServer):
    """asyncssh's file-system SFTP server, chrooted to the login's home, with fault injection and no links.

    asyncssh's ``map_path`` normalises every client path against "/" and joins it under the chroot, so ``..``
    cannot climb out; ``posix_rename``/``rename``/``remove``/``stat``/``mkdir``/``listdir`` all go through it.
    Creating symlinks and hard links is refused, so no link can ever point out of the chroot.
    """

    def __init__(self, chan: asyncssh.SSHServerChannel, *, owner: LocalSFTPServer, home: Path) -> None:
        super().__init__(chan, chroot=os.fsencode(home))
        self._owner = owner
        self._written: dict[int, int] = {}  # id(open file) -> bytes written through it
        self._renames = 0  # renames applied on this connection (the rename faults count them)
        self._username = chan.get_extra_info("username")

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        if pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC | asyncssh.FXF_APPEND):
            self._owner._record_operation(self._username, "open-write", path)
        return super().open(path, pflags, attrs)

    def remove(self, path: bytes) -> None:
        super().remove(path)
        self._owner._record_operation(self._username, "remove", path)

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        faults = self._owner.faults
        if faults.write_delay_s > 0:
            await asyncio.sleep(faults.write_delay_s)
        done = self._written.get(id(file_obj), 0)
        limit = faults.drop_after_bytes
        if limit is not None and done + len(data) > limit:
            keep = max(0, limit - done)
            if keep:
                super().write(file_obj, offset, data[:keep])
            self._written[id(file_obj)] = done + keep
            self.connection.abort()
            raise asyncssh.SFTPConnectionLost("fault injection: connection dropped")
        written = super().write(file_obj, offset, data)
        self._written[id(file_obj)] = done + len(data)
        return written

    def close(self, file_obj: object) -> None:
        self._written.pop(id(file_obj), None)
        super().close(file_obj)

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._maybe_fail_rename()
        super().rename(oldpath, newpath)
        self._renamed(oldpath, newpath)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._maybe_fail_rename()
        super().posix_rename(oldpath, newpath)
        self._renamed(oldpath, newpath)

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPOpUnsupported("symlinks are not supported on this server")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPOpUnsupported("hard links are not supported on this server")

    def _maybe_fail_rename(self) -> None:
        faults = self._owner.faults
        if faults.drop_after_renames is not None and self._renames >= faults.drop_after_renames:
            self.connection.abort()
            raise asyncssh.SFTPConnectionLost("fault injection: connection dropped")
        if faults.fail_rename or (faults.fail_renames_after is not None
                                  and self._renames >= faults.fail_renames_after):
            raise asyncssh.SFTPFailure("fault injection: rename failed")

    def _renamed(self, oldpath: bytes, newpath: bytes) -> None:
        self._renames += 1
        self._owner._record_operation(self._username, "rename", oldpath, newpath)


def _check_username(name: str) -> None:
    if not name or name in {".", ".."} or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"unusable SFTP user name {name!r}: it must be a single path component")


def _load_or_create_host_key(path: Path | None) -> asyncssh.SSHKey:
    if path is None:
        return asyncssh.generate_private_key("ssh-ed25519")
    path = Path(path)
    if path.exists():
        return asyncssh.read_private_key(path)
    key = asyncssh.generate_private_key("ssh-ed25519")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.export_private_key())
    return key


def public_key_line(key: asyncssh.SSHKey) -> str:
    """``"ssh-ed25519 AAAA..."`` (type and base64 only, no comment): the form Airflow's ``host_key`` extra takes."""
    algorithm, blob = key.export_public_key("openssh").decode("ascii").split()[:2]
    return f"{algorithm} {blob}"


class LocalSFTPServer:
    """A real asyncssh SFTP server on 127.0.0.1, running on its own event loop in a background thread.

    Use as a context manager, or call ``start()`` and ``stop()``. ``port=0`` picks a free port; the bound port
    is in ``.port`` once started. Each user in ``users`` logs in with its password and sees ``root/<user>``
    (created at start) as its home and chroot.
    """

    def __init__(
        self,
        *,
        root: Path,
        users: dict[str, str],
        host_key_path: Path | None = None,
        port: int = 0,
    ) -> None:
        if not users:
            raise ValueError("LocalSFTPServer needs at least one user")
        for name in users:
            _check_username(name)
        self.host = HOST
        self.port = port
        self.root = Path(root).resolve()
        self._users = dict(users)
        self._host_key = _load_or_create_host_key(host_key_path)
        self.host_key_line = public_key_line(self._host_key)
        self.faults = Faults()
        self.auth_attempts: list[tuple[str, str]] = []
        self.operations: list[tuple[str, ...]] = []
        self._records_lock = threading.Lock()
        self._connections: set[asyncssh.SSHServerConnection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._acceptor: asyncssh.SSHAcceptor | None = None

    def home(self, user: str) -> Path:
        """The local folder that is ``user``'s home (and chroot) on the server."""
        _check_username(user)
        return self.root / user

    def _record_auth_attempt(self, username: str, method: str) -> None:
        with self._records_lock:
            self.auth_attempts.append((username, method))

    def _record_operation(self, username: str, operation: str, *paths: bytes) -> None:
        with self._records_lock:
            self.operations.append((username, operation, *(os.fsdecode(p) for p in paths)))

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> LocalSFTPServer:
        if self._thread is not None:
            raise RuntimeError("server already started")
        for user in self._users:
            self.home(user).mkdir(parents=True, exist_ok=True)
        self._loop = asyncio.new_event_loop()
        ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="LocalSFTPServer", daemon=True)
        self._thread.start()
        try:
            self.port = ready.result(timeout=30)
        except BaseException:
            self._thread.join(timeout=5)
            self._thread = None
            raise
        return self

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=15)
        self._thread = None

    def __enter__(self) -> LocalSFTPServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- event loop thread -------------------------------------------------------------------------------------

    def _run(self, ready: concurrent.futures.Future[int]) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            self._acceptor = loop.run_until_complete(self._listen())
        except BaseException as error:  # noqa: BLE001 - handed to the thread that called start()
            ready.set_exception(error)
            loop.close()
            return
        ready.set_result(self._acceptor.get_port())
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(self._shutdown())
            finally:
                loop.close()

    async def _listen(self) -> asyncssh.SSHAcceptor:
        return await asyncssh.listen(
            host=self.host,
            port=self.port,
            server_host_keys=[self._host_key],
            server_factory=lambda: _SSHServer(self),
            sftp_factory=self._make_sftp_server,
            allow_scp=False,
            agent_forwarding=False,
            x11_forwarding=False,
            allow_pty=False,
            reuse_address=True,
        )

    def _make_sftp_server(self, chan: asyncssh.SSHServerChannel) -> _ChrootSFTPServer:
        home = self.home(chan.get_extra_info("username"))
        home.mkdir(parents=True, exist_ok=True)
        return _ChrootSFTPServer(chan, owner=self, home=home)

    async def _shutdown(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
        connections = list(self._connections)
        for conn in connections:
            conn.close()
        waits = [conn.wait_closed() for conn in connections]
        if self._acceptor is not None:
            waits.append(self._acceptor.wait_closed())
        if waits:
            await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), timeout=5)
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await asyncio.get_running_loop().shutdown_asyncgens()


# -- command line ------------------------------------------------------------------------------------------------


def _write_ready_file(path: Path, payload: dict[str, object]) -> None:
    """Write atomically, so a watcher never reads half a JSON document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rostering.devservers.sftp_server",
        description="Run a local SFTP server on 127.0.0.1 (a stand-in for a vendor SFTP host) until SIGTERM/SIGINT.",
    )
    parser.add_argument("--root", type=Path, required=True, help="folder holding one home folder per user")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--host-key", type=Path, default=None,
                        help="ssh-ed25519 host key file, created if missing (default: a new key per run)")
    parser.add_argument("--user", required=True, help="login name; its home is ROOT/USER")
    parser.add_argument("--password", default=None, help=f"login password (or set {PASSWORD_ENV})")
    parser.add_argument("--ready-file", type=Path, default=None,
                        help='once listening, write {"host", "port", "host_key"} JSON here')
    args = parser.parse_args(argv)

    password = args.password if args.password is not None else os.environ.get(PASSWORD_ENV)
    if not password:
        parser.error(f"--password or {PASSWORD_ENV} is required")

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    server = LocalSFTPServer(root=args.root, users={args.user: password}, host_key_path=args.host_key,
                             port=args.port)
    try:
        server.start()
        try:
            if args.ready_file is not None:
                _write_ready_file(args.ready_file,
                                  {"host": server.host, "port": server.port, "host_key": server.host_key_line})
            print(f"SFTP server listening on {server.host}:{server.port} (user {args.user}, home "
                  f"{server.home(args.user)})", flush=True)
            while not stop.wait(0.5):
                pass
        finally:
            server.stop()
            if args.ready_file is not None:
                args.ready_file.unlink(missing_ok=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
