"""SFTP delivery of vendor files: the one place where files are uploaded, for every vendor.

Atomic upload (``upload_atomically``)
    1. upload to ``.{name}.{uuid4hex}.part`` in the SAME remote folder (leading dot: receivers' ``*.csv`` globs
       and most "pick up new files" jobs ignore it; same folder: the rename stays on one file system),
    2. check the remote size equals the local size (paramiko's ``confirm=True`` plus an explicit ``stat``) and that
       the bytes read and hashed locally are exactly the file's size,
    3. ``posix-rename@openssh.com`` the temporary file onto the final name -- an atomic replace, so a receiver sees
       either the previous complete file or the new complete file, never a partial one.
    There is deliberately no fallback: a server without posix-rename gets ``PosixRenameUnsupportedError`` instead of
    a non-atomic "delete the old file, then rename". On ANY failure the temporary file is removed if the connection
    still allows it, the final name is never touched, and the original exception is re-raised.

Sets (``upload_set_atomically``)
    Several files are staged and verified first, then renamed one after the other. Before the first rename a
    journal ``.rostering-set.{uuid4hex}.json`` is written beside them (each temporary and final name, size and
    sha256); it is removed once every file is in place. Should the rename phase be interrupted, the journal and the
    staged files stay, and the next delivery to the folder first finishes the recorded renames
    (``finish_interrupted_sets``: a set is journalled only once it is fully staged and verified, so rolling forward
    is always right) -- the receiver holds a mix of old and new files only until then. A staged file that is gone
    or damaged cannot be finished: it is dropped (its final name keeps what it has) and the delivery proceeds.

Airflow (``deliver_files``)
    Uses ``SFTPHook(ssh_conn_id=...)`` from apache-airflow-providers-sftp, under an exclusive lock of the
    destination (``rostering.delivery.locks.destination_lock``: a re-delivery and a vendor run never sweep each
    other's uploads). Host keys are always verified: ``deliver_files`` refuses connections whose extras switch
    verification off (``no_host_key_check``) or would accept any key (``allow_host_key_change`` without a pinned
    ``host_key``). A pinned ``host_key`` is the only key trusted, and it is checked in the key exchange, before the
    password is sent (the plain hook also trusts ``~/.ssh/known_hosts``, ahead of the pin). Recommended
    connection::

        {"conn_type": "sftp", "host": "sftp.vendor.example", "port": 22, "login": "district42", "password": "...",
         "extra": {"host_key": "ssh-ed25519 AAAA...", "look_for_keys": "false"}}

Errors
    ``is_transient_sftp_error(exc)`` says whether retrying later can help. Permanent: wrong or unknown host key
    (``paramiko.BadHostKeyException``, ``SSHException("... not found in known_hosts")``), failed authentication
    (``paramiko.AuthenticationException``), refused host-key configuration (``HostKeyPolicyError``), no
    posix-rename (``PosixRenameUnsupportedError``), missing folders/files and permission errors (ENOENT, EACCES,
    ...), configuration errors (``ValueError``, Airflow's connection-not-found). Transient: connection refused or
    unreachable (``NoValidConnectionsError``), reset/aborted, EOF or "Server connection dropped" mid-transfer,
    timeouts, a size mismatch after upload, an SFTP failure status without a specific cause.

Logging: file names, sizes, sha256 checksums, remote folders and the connection id only -- never file contents,
pupils' names or passwords.
"""
from __future__ import annotations

import datetime as dt
import errno
import functools
import hashlib
import io
import json
import logging
import posixpath
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import paramiko

from rostering.delivery.locks import destination_lock
from rostering.errors import ValueFreeError

if TYPE_CHECKING:
    from paramiko import SFTPClient

__all__ = [
    "DeliveryError",
    "HostKeyPolicyError",
    "PosixRenameUnsupportedError",
    "UploadVerificationError",
    "UploadedFile",
    "deliver_files",
    "finish_interrupted_sets",
    "is_transient_sftp_error",
    "remove_stale_temporary_files",
    "sftp_destination",
    "upload_atomically",
    "upload_set_atomically",
]

logger = logging.getLogger(__name__)

#: An SFTP request that gets no answer for this long fails with a (transient) timeout instead of hanging the task.
OPERATION_TIMEOUT_S = 120.0

_HOME_DIRS = {"", "."}


class DeliveryError(ValueFreeError):
    """Base class of the errors this module raises itself."""


class HostKeyPolicyError(DeliveryError):
    """The connection's settings would skip or weaken host key verification. Permanent: fix the connection."""


class PosixRenameUnsupportedError(DeliveryError):
    """The server does not implement ``posix-rename@openssh.com``; an atomic replace is impossible. Permanent."""


class UploadVerificationError(DeliveryError):
    """The uploaded temporary file does not have the local file's size (or the local file changed). Transient."""


@dataclass(frozen=True)
class UploadedFile:
    remote_path: str
    size: int
    sha256: str


# -- atomic upload ---------------------------------------------------------------------------------------------------


class _HashingReader:
    """File-like wrapper: hashes and counts exactly the bytes paramiko reads (and therefore sends)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.digest.update(data)
        self.bytes_read += len(data)
        return data


def _remote_path(remote_dir: str, name: str) -> str:
    if remote_dir in _HOME_DIRS:
        return name  # relative to the login's home folder
    return posixpath.join(remote_dir, name)


def _check_remote_name(name: str) -> None:
    if not name or name in {".", ".."} or "/" in name or "\0" in name:
        raise ValueError(f"invalid remote file name {name!r}: it must be a single path component")
    if name.startswith(".") or name.endswith(".part"):
        raise ValueError(f"invalid remote file name {name!r}: leading dots and '.part' are reserved for temp files")


def _posix_rename(sftp: SFTPClient, source: str, target: str) -> None:
    try:
        sftp.posix_rename(source, target)
    except OSError as error:
        # paramiko maps SSH_FX_OP_UNSUPPORTED to a bare IOError(message); the message is all there is.
        message = str(error).lower()
        if error.errno is None and ("unsupported" in message or "not supported" in message):
            raise PosixRenameUnsupportedError(
                "the SFTP server does not support posix-rename@openssh.com; refusing a non-atomic replace"
            ) from error
        raise


def upload_atomically(
    sftp: SFTPClient,
    local_path: Path,
    remote_dir: str,
    remote_name: str | None = None,
    *,
    log: logging.Logger | logging.LoggerAdapter[Any] | None = None,
) -> UploadedFile:
    """Upload ``local_path`` to ``remote_dir/remote_name`` so that the final name only ever holds a complete file.

    ``sftp`` is a paramiko ``SFTPClient`` (what ``SFTPHook(...).get_managed_conn()`` yields). ``remote_dir`` ``""``
    or ``"."`` is the login's home folder. ``remote_name`` defaults to the local file name. An existing final file
    is replaced atomically. Returns the final remote path, the size and the sha256 of the bytes sent.
    """
    local_path = Path(local_path)
    names = {local_path: local_path.name if remote_name is None else remote_name}
    return upload_set_atomically(sftp, [local_path], remote_dir, names=names, log=log)[0]


def upload_set_atomically(
    sftp: SFTPClient,
    local_paths: list[Path],
    remote_dir: str,
    *,
    names: dict[Path, str] | None = None,
    log: logging.Logger | logging.LoggerAdapter[Any] | None = None,
) -> list[UploadedFile]:
    """Deliver several files as one set: stage them all, then rename them all.

    Phase 1 uploads every file to its temporary name and verifies it; if any of them fails, every staged temporary
    file is removed and no final name has been touched, so the receiver still holds the previous complete set.
    Phase 2 writes the set's journal, renames the staged files into place one after the other (each rename is
    atomic) and removes the journal. If a rename fails before any file was replaced, everything staged is removed
    as in phase 1. Once a file has been replaced -- or when the connection is lost, so nobody can tell -- the
    staged files and the journal are kept for ``finish_interrupted_sets`` (run by ``deliver_files`` before every
    delivery) and the error is re-raised.
    """
    log = log or logger
    # One file cannot be half renamed (its rename alone is atomic): only a set needs a journal.
    journal_path = _remote_path(remote_dir, f".rostering-set.{uuid.uuid4().hex}.json") if len(local_paths) > 1 \
        else None
    staged: list[tuple[str, str, UploadedFile]] = []
    try:
        for local_path in map(Path, local_paths):
            name = (names or {}).get(local_path, local_path.name)
            staged.append(_stage(sftp, local_path, remote_dir, name))
        if journal_path is not None:
            _write_journal(sftp, journal_path, staged)
    except BaseException:
        _drop_staged(sftp, journal_path, staged, log)
        raise
    renamed = 0
    try:
        for temp_path, final_path, _ in staged:
            _posix_rename(sftp, temp_path, final_path)
            renamed += 1
    except BaseException:
        # Refused before anything was replaced: as in phase 1. (With the connection lost, nothing can be removed.)
        dropped = renamed == 0 and _drop_staged(sftp, journal_path, staged, log)
        if journal_path is not None and not dropped:
            log.warning("The rename phase in %r stopped after %d of %d file(s); the staged files and the journal %s "
                        "are kept, and the next delivery to this folder finishes the set first",
                        remote_dir or ".", renamed, len(staged), posixpath.basename(journal_path))
        raise
    for _, final_path, uploaded in staged:
        log.info("Delivered %s (%d bytes, sha256 %s)", final_path, uploaded.size, uploaded.sha256)
    if journal_path is not None:  # left behind (connection lost just now), it is recognised as finished next time
        _remove_quietly(sftp, journal_path, log)
    return [uploaded for _, _, uploaded in staged]


def _stage(sftp: SFTPClient, local_path: Path, remote_dir: str, name: str) -> tuple[str, str, UploadedFile]:
    """Upload to a temporary name beside the final one and verify size; return (temp, final, result)."""
    _check_remote_name(name)
    final_path = _remote_path(remote_dir, name)
    temp_path = _remote_path(remote_dir, f".{name}.{uuid.uuid4().hex}.part")
    size = local_path.stat().st_size
    try:
        with local_path.open("rb") as raw:
            reader = _HashingReader(raw)
            sftp.putfo(reader, temp_path, file_size=size, confirm=True)
        if reader.bytes_read != size:
            raise UploadVerificationError(
                f"{local_path.name}: {reader.bytes_read} bytes were read but the file had {size}; it changed during "
                "the upload"
            )
        remote_size = sftp.stat(temp_path).st_size
        if remote_size != size:
            raise UploadVerificationError(
                f"{local_path.name}: remote temporary file has {remote_size} bytes, local file {size}"
            )
    except BaseException:
        _remove_quietly(sftp, temp_path, logger)
        raise
    return temp_path, final_path, UploadedFile(remote_path=final_path, size=size, sha256=reader.digest.hexdigest())


def _drop_staged(sftp: SFTPClient, journal_path: str | None, staged: list[tuple[str, str, UploadedFile]],
                 log: logging.Logger | logging.LoggerAdapter[Any]) -> bool:
    """Remove a set's journal, then (only once it is gone) its staged files: a staged file must never disappear
    while a journal still counts on it. True when the journal is gone."""
    if journal_path is not None and not _remove_quietly(sftp, journal_path, log):
        return False
    for temp_path, _, _ in staged:
        _remove_quietly(sftp, temp_path, log)
    return True


def _remove_quietly(sftp: SFTPClient, temp_path: str, log: logging.Logger | logging.LoggerAdapter[Any]) -> bool:
    """Remove one of our temporary files (or a journal); True when it is gone."""
    try:
        sftp.remove(temp_path)
    except FileNotFoundError:
        pass  # never created, or already renamed
    except Exception as error:  # noqa: BLE001 - cleanup must not mask the original failure
        log.warning("Could not remove temporary file %s (%s); the final names were not touched by it",
                    temp_path, type(error).__name__)
        return False
    return True


# -- the rename phase's journal --------------------------------------------------------------------------------------

_JOURNAL = re.compile(r"^\.rostering-set\.[0-9a-f]{32}\.json$")
_JOURNAL_FORMAT = "rostering-set/1"
_JOURNAL_MAX_BYTES = 1_000_000  # a journal names a handful of files; anything bigger is not ours


@dataclass(frozen=True)
class _JournalEntry:
    temp_name: str
    final_name: str
    size: int
    sha256: str


def _write_journal(sftp: SFTPClient, journal_path: str, staged: list[tuple[str, str, UploadedFile]]) -> None:
    """Record the staged set beside it, before the first rename."""
    entries = [{"temp": posixpath.basename(temp_path), "final": posixpath.basename(final_path),
                "size": uploaded.size, "sha256": uploaded.sha256} for temp_path, final_path, uploaded in staged]
    document = json.dumps({"format": _JOURNAL_FORMAT,
                           "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds"),
                           "files": entries}, indent=1).encode("utf-8")
    # Written in place, not renamed into place: a journal cut short cannot be read, and it can only be cut short
    # before the first rename, when dropping the set is right (see finish_interrupted_sets).
    sftp.putfo(io.BytesIO(document), journal_path, file_size=len(document), confirm=True)


def _read_journal(sftp: SFTPClient, journal_path: str) -> tuple[str, list[_JournalEntry]] | None:
    """(created, entries) of a complete journal, None when it was cut short or is not one of ours."""
    try:
        with sftp.open(journal_path, "rb") as handle:
            document = json.loads(handle.read(_JOURNAL_MAX_BYTES + 1).decode("utf-8"))
        if document.get("format") != _JOURNAL_FORMAT:
            return None
        entries = [_JournalEntry(str(e["temp"]), str(e["final"]), int(e["size"]), str(e["sha256"]))
                   for e in document["files"]]
        for entry in entries:
            _check_remote_name(entry.final_name)
            match = _TEMPORARY.match(entry.temp_name)
            if not match or match["name"] != entry.final_name:
                return None
        return str(document.get("created", "")), entries
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        return None


def _holds(sftp: SFTPClient, path: str, entry: _JournalEntry) -> bool:
    """Whether ``path`` holds exactly the journalled file (size, then sha256 of its bytes)."""
    try:
        if sftp.stat(path).st_size != entry.size:
            return False
        digest = hashlib.sha256()
        with sftp.open(path, "rb") as handle:
            handle.prefetch(entry.size)
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except FileNotFoundError:
        return False
    return digest.hexdigest() == entry.sha256


def _journals(sftp: SFTPClient, remote_dir: str, listing: list[str]
              ) -> list[tuple[str, tuple[str, list[_JournalEntry]] | None]]:
    """Every journal in the folder with its contents (None: unreadable), oldest first."""
    found = [(entry, _read_journal(sftp, _remote_path(remote_dir, entry))) for entry in listing
             if _JOURNAL.match(entry)]
    return sorted(found, key=lambda item: (item[1][0] if item[1] else "", item[0]))


def finish_interrupted_sets(sftp: SFTPClient, remote_dir: str, *,
                            log: logging.Logger | logging.LoggerAdapter[Any] | None = None) -> int:
    """Finish the rename phase of every set whose delivery to ``remote_dir`` was interrupted; returns how many.

    Roll forward: a journal is written only once its whole set is staged and verified, so each staged file that
    still holds the journalled bytes is renamed onto its final name. A final name that already holds them was
    renamed before the interruption. An entry with neither cannot be finished: its staged file (if any) is removed
    and its final name keeps what it has -- the delivery that follows sends every file of its own set anyway. An
    unreadable journal was cut short before any rename: it is removed, and its staged files are left to
    ``remove_stale_temporary_files``. Any error (the connection lost again) propagates; running again is safe.
    """
    log = log or logger
    folder = remote_dir if remote_dir not in _HOME_DIRS else "."
    finished = 0
    for entry_name, contents in _journals(sftp, remote_dir, sftp.listdir(folder)):
        journal_path = _remote_path(remote_dir, entry_name)
        if contents is None:
            log.warning("Removing %s in %r: an incomplete set journal, written before any file was renamed",
                        entry_name, remote_dir or ".")
            sftp.remove(journal_path)
            continue
        renamed, already, dropped = [], [], []
        for entry in contents[1]:
            temp_path = _remote_path(remote_dir, entry.temp_name)
            final_path = _remote_path(remote_dir, entry.final_name)
            if _holds(sftp, temp_path, entry):
                _posix_rename(sftp, temp_path, final_path)
                renamed.append(entry.final_name)
            elif _holds(sftp, final_path, entry):
                already.append(entry.final_name)
            else:
                _remove_quietly(sftp, temp_path, log)
                dropped.append(entry.final_name)
        sftp.remove(journal_path)
        finished += 1
        log.info("Finished the interrupted set %s in %r: renamed %s now, %s before the interruption",
                 entry_name, remote_dir or ".", renamed or "none", already or "none")
        if dropped:
            log.warning("Interrupted set %s in %r: %s could not be finished (staged file gone or changed); those "
                        "names keep their previous files until a delivery replaces them",
                        entry_name, remote_dir or ".", dropped)
    return finished


# -- Airflow ---------------------------------------------------------------------------------------------------------


def _sftp_hook(ssh_conn_id: str) -> Any:
    """The hook for ``ssh_conn_id``; a ``host_key`` extra that is no key (``.env.example``'s placeholder, a line cut
    short) is said so, not as the hook's ``binascii.Error: Incorrect padding``."""
    import binascii

    try:
        return _pinned_sftp_hook_class()(ssh_conn_id=ssh_conn_id, conn_retry_attempts=1)
    except (binascii.Error, paramiko.SSHException) as error:
        raise HostKeyPolicyError(
            f"connection {ssh_conn_id!r}: extra.host_key is not a public key line ({type(error).__name__}) -- still "
            "the placeholder from .env.example? Put the server's verified key there, e.g. the output of "
            "`ssh-keyscan -t ed25519 <host>` without the host name: 'ssh-ed25519 AAAAC3Nza...' (docs/operations.md)"
        ) from None


def _check_host_key_policy(hook: Any, ssh_conn_id: str) -> None:
    """Refuse connection settings under which the hook would not verify the server's host key."""
    if hook.no_host_key_check:
        raise HostKeyPolicyError(
            f"connection {ssh_conn_id!r} sets no_host_key_check; deliveries require a verified host key "
            "(pin it with the 'host_key' extra)"
        )
    if hook.allow_host_key_change and hook.host_key is None:
        raise HostKeyPolicyError(
            f"connection {ssh_conn_id!r} sets allow_host_key_change without a pinned 'host_key'; "
            "the hook would then accept any server key"
        )


@functools.cache
def _pinned_sftp_hook_class() -> type:
    """``SFTPHook`` whose SSH client trusts a pinned ``host_key`` alone, checked before any credential is sent.

    The plain ``SSHHook.get_conn`` also loads ``~/.ssh/known_hosts``, and paramiko looks there FIRST: a server whose
    key is listed there but is not the pinned one would pass the key exchange and receive the password. Here, with a
    pin, the client's only known key is the pin and unknown keys are rejected (``RejectPolicy``), so paramiko raises
    ``BadHostKeyException`` right after the key exchange, before authentication. Without a pin the hook's own
    client is used (known_hosts, ``RejectPolicy``). The MRO puts this ``get_conn`` under ``SFTPHook``'s
    ``super().get_conn()`` calls.
    """
    from airflow.providers.sftp.hooks.sftp import SFTPHook
    from airflow.providers.ssh.hooks.ssh import SSHHook
    from paramiko.config import SSH_PORT

    class _PinnedHostKeySSHHook(SSHHook):
        def get_conn(self) -> paramiko.SSHClient:
            if self.host_key is None:
                return super().get_conn()
            client = paramiko.SSHClient()  # no load_system_host_keys(): the pin is the only trusted key
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            known_as = self.remote_host if self.port == SSH_PORT else f"[{self.remote_host}]:{self.port}"
            client.get_host_keys().add(known_as, self.host_key.get_name(), self.host_key)
            # The same settings SSHHook.get_conn passes; connecting once (retrying is the task's decision).
            options: dict[str, Any] = {
                "hostname": self.remote_host, "port": self.port, "username": self.username,
                "timeout": self.conn_timeout, "compress": self.compress, "sock": self.host_proxy,
                "look_for_keys": self.look_for_keys, "banner_timeout": self.banner_timeout,
                "auth_timeout": self.auth_timeout,
            }
            if self.password:
                options["password"] = self.password.strip()
            if self.pkey:
                options["pkey"] = self.pkey
            if self.key_file:
                options["key_filename"] = self.key_file
            if self.disabled_algorithms:
                options["disabled_algorithms"] = self.disabled_algorithms
            try:
                client.connect(**options)
            except BaseException:
                client.close()
                raise
            transport = client.get_transport()
            if self.keepalive_interval:
                transport.set_keepalive(self.keepalive_interval)
            if self.ciphers:
                transport.get_security_options().ciphers = self.ciphers
            self.client = client
            return client

    class PinnedHostKeySFTPHook(SFTPHook, _PinnedHostKeySSHHook):
        pass

    return PinnedHostKeySFTPHook


def _check_pinned_host_key(hook: Any, sftp: SFTPClient) -> None:
    """When a host key is pinned, the key the server presented must be that key (a second look, after the hook's
    key exchange already enforced it)."""
    pinned = hook.host_key
    if pinned is None:
        return  # verified by paramiko against ~/.ssh/known_hosts with RejectPolicy
    presented = sftp.get_channel().get_transport().get_remote_server_key()
    if presented.get_name() != pinned.get_name() or presented.asbytes() != pinned.asbytes():
        raise paramiko.BadHostKeyException(hook.remote_host, presented, pinned)


def sftp_destination(conn_id: str, remote_dir: str) -> str:
    """``sftp://<conn id>/<folder>`` (``~`` = the login's home): the delivery record's destination and lock key."""
    folder = remote_dir.strip("/")
    return f"sftp://{conn_id}/{folder if folder not in _HOME_DIRS else '~'}"


def deliver_files(*, ssh_conn_id: str, files: list[Path], remote_dir: str) -> list[UploadedFile]:
    """Upload ``files`` as one set (``upload_set_atomically``) to ``remote_dir`` over ``ssh_conn_id``; one session.

    ``remote_dir`` ``""`` or ``"."`` is the login's home folder. Connects once, with no retries inside (the task's
    retry policy decides, see ``is_transient_sftp_error``). A failure while uploading leaves every final name as it
    was; a set whose rename phase an earlier delivery could not finish is finished first
    (``finish_interrupted_sets``). The whole delivery holds the destination's lock (``destination_lock``).
    """
    paths = [Path(f) for f in files]
    names = [p.name for p in paths]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"several files would be delivered under the same name: {duplicates}")
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(errno.ENOENT, "file to deliver does not exist", str(path))

    hook = _sftp_hook(ssh_conn_id)
    _check_host_key_policy(hook, ssh_conn_id)

    with destination_lock(sftp_destination(ssh_conn_id, remote_dir)):
        logger.info("Delivering %d file(s) over connection %s to folder %r", len(paths), ssh_conn_id,
                    remote_dir or ".")
        with hook.get_managed_conn() as sftp:
            _check_pinned_host_key(hook, sftp)
            sftp.get_channel().settimeout(OPERATION_TIMEOUT_S)
            finish_interrupted_sets(sftp, remote_dir, log=logger)
            remove_stale_temporary_files(sftp, remote_dir, names)
            return upload_set_atomically(sftp, paths, remote_dir, log=logger)


_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{32}\.part$")


def remove_stale_temporary_files(sftp: SFTPClient, remote_dir: str, names: list[str]) -> int:
    """Remove our own leftovers (``.{name}.{uuid}.part``) of an earlier upload whose connection dropped.

    Only files matching exactly our temporary naming for the names being delivered are touched, and never one that
    a set journal still names (its set is to be finished by ``finish_interrupted_sets``).
    """
    folder = remote_dir if remote_dir not in _HOME_DIRS else "."
    listing = sftp.listdir(folder)
    journalled = {entry.temp_name for _, contents in _journals(sftp, remote_dir, listing) if contents
                  for entry in contents[1]}
    stale = [entry for entry in listing
             if (match := _TEMPORARY.match(entry)) and match["name"] in names and entry not in journalled]
    for entry in stale:
        _remove_quietly(sftp, _remote_path(remote_dir, entry), logger)
    if stale:
        logger.info("Removed %d temporary file(s) left by an interrupted earlier upload", len(stale))
    return len(stale)


# -- retry classification --------------------------------------------------------------------------------------------

_PERMANENT_ERRNOS = frozenset(
    {errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.EINVAL,
     errno.ENAMETOOLONG, errno.EROFS}
)


def is_transient_sftp_error(exc: BaseException) -> bool:
    """True when retrying the delivery later may succeed; False when a person has to fix something first."""
    # Permanent: identity and configuration problems. Order matters: these are SSHException subclasses.
    if isinstance(exc, (paramiko.BadHostKeyException, paramiko.AuthenticationException,
                        paramiko.ssh_exception.IncompatiblePeer, HostKeyPolicyError, PosixRenameUnsupportedError)):
        return False
    if isinstance(exc, UploadVerificationError):
        return True
    if isinstance(exc, paramiko.SSHException):
        # paramiko's RejectPolicy raises a plain SSHException for a host missing from known_hosts.
        return "not found in known_hosts" not in str(exc)
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return True  # connection refused / host unreachable on every address
    if isinstance(exc, (ConnectionError, TimeoutError, EOFError)):
        return True  # refused, reset, aborted, broken pipe, socket timeouts, SFTP EOF mid-transfer
    if isinstance(exc, OSError):
        # SFTP status errors arrive as IOError: ENOENT/EACCES carry an errno; a generic SSH_FX_FAILURE does not.
        # "Socket is closed" and name-resolution failures also land here without a permanent errno.
        return exc.errno not in _PERMANENT_ERRNOS
    return False


# -- the delivery interface the pipeline calls (see rostering.pipeline.DELIVERIES) ---------------------------------

is_transient = is_transient_sftp_error


def deliver_payload(delivery, files: list[Path]) -> dict[str, Any]:
    """Deliver a run's payload for a vendor profile's ``delivery:`` section (kind ``sftp``)."""
    uploaded = deliver_files(ssh_conn_id=delivery.conn_id, files=files, remote_dir=delivery.remote_dir)
    return {
        "destination": sftp_destination(delivery.conn_id, delivery.remote_dir),
        "uploaded": [{"remote_path": u.remote_path, "size": u.size, "sha256": u.sha256} for u in uploaded],
    }
