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

Airflow (``deliver_files``)
    Uses ``SFTPHook(ssh_conn_id=...)`` from apache-airflow-providers-sftp. Host keys are always verified:
    ``deliver_files`` refuses connections whose extras switch verification off (``no_host_key_check``) or would
    accept any key (``allow_host_key_change`` without a pinned ``host_key``), and when a ``host_key`` is pinned it
    checks the key the server actually presented against the pin before any byte is written (the hook alone lets
    an entry in ``~/.ssh/known_hosts`` take precedence over the pin). Recommended connection::

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

import errno
import hashlib
import logging
import posixpath
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import paramiko

if TYPE_CHECKING:
    from paramiko import SFTPClient

__all__ = [
    "DeliveryError",
    "HostKeyPolicyError",
    "PosixRenameUnsupportedError",
    "UploadVerificationError",
    "UploadedFile",
    "deliver_files",
    "is_transient_sftp_error",
    "upload_atomically",
    "upload_set_atomically",
]

logger = logging.getLogger(__name__)

#: An SFTP request that gets no answer for this long fails with a (transient) timeout instead of hanging the task.
OPERATION_TIMEOUT_S = 120.0

_HOME_DIRS = {"", "."}


class DeliveryError(Exception):
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
    Phase 2 renames the staged files into place one after the other (each rename is atomic; the phase takes
    milliseconds and needs no data transfer, so a failure there is as unlikely as it can be made over SFTP).
    """
    log = log or logger
    staged: list[tuple[str, str, UploadedFile]] = []
    try:
        for local_path in map(Path, local_paths):
            name = (names or {}).get(local_path, local_path.name)
            staged.append(_stage(sftp, local_path, remote_dir, name))
        for temp_path, final_path, _ in staged:
            _posix_rename(sftp, temp_path, final_path)
    except BaseException:
        for temp_path, _, _ in staged:
            _remove_quietly(sftp, temp_path, log)
        raise
    for _, final_path, uploaded in staged:
        log.info("Delivered %s (%d bytes, sha256 %s)", final_path, uploaded.size, uploaded.sha256)
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


def _remove_quietly(sftp: SFTPClient, temp_path: str, log: logging.Logger | logging.LoggerAdapter[Any]) -> None:
    try:
        sftp.remove(temp_path)
    except FileNotFoundError:
        pass  # never created, or already renamed
    except Exception as error:  # noqa: BLE001 - cleanup must not mask the original failure
        log.warning("Could not remove temporary file %s after a failed upload (%s); the final name was not touched",
                    temp_path, type(error).__name__)


# -- Airflow ---------------------------------------------------------------------------------------------------------


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


def _check_pinned_host_key(hook: Any, sftp: SFTPClient) -> None:
    """When a host key is pinned, the key the server presented must be that key (known_hosts cannot override it)."""
    pinned = hook.host_key
    if pinned is None:
        return  # verified by paramiko against ~/.ssh/known_hosts with RejectPolicy
    presented = sftp.get_channel().get_transport().get_remote_server_key()
    if presented.get_name() != pinned.get_name() or presented.asbytes() != pinned.asbytes():
        raise paramiko.BadHostKeyException(hook.remote_host, presented, pinned)


def deliver_files(*, ssh_conn_id: str, files: list[Path], remote_dir: str) -> list[UploadedFile]:
    """Upload ``files`` as one set (``upload_set_atomically``) to ``remote_dir`` over ``ssh_conn_id``; one session.

    ``remote_dir`` ``""`` or ``"."`` is the login's home folder. Connects once, with no retries inside (the task's
    retry policy decides, see ``is_transient_sftp_error``). A failure while uploading leaves every final name as it
    was: the receiver never sees a mix of new and old files.
    """
    from airflow.providers.sftp.hooks.sftp import SFTPHook

    paths = [Path(f) for f in files]
    names = [p.name for p in paths]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"several files would be delivered under the same name: {duplicates}")
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(errno.ENOENT, "file to deliver does not exist", str(path))

    hook = SFTPHook(ssh_conn_id=ssh_conn_id, conn_retry_attempts=1)
    _check_host_key_policy(hook, ssh_conn_id)
    logger.info("Delivering %d file(s) over connection %s to folder %r", len(paths), ssh_conn_id, remote_dir or ".")

    with hook.get_managed_conn() as sftp:
        _check_pinned_host_key(hook, sftp)
        sftp.get_channel().settimeout(OPERATION_TIMEOUT_S)
        remove_stale_temporary_files(sftp, remote_dir, names)
        return upload_set_atomically(sftp, paths, remote_dir, log=logger)


_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{32}\.part$")


def remove_stale_temporary_files(sftp: SFTPClient, remote_dir: str, names: list[str]) -> int:
    """Remove our own leftovers (``.{name}.{uuid}.part``) of an earlier upload whose connection dropped.

    Only files matching exactly our temporary naming for the names being delivered are touched.
    """
    folder = remote_dir if remote_dir not in _HOME_DIRS else "."
    stale = [entry for entry in sftp.listdir(folder)
             if (match := _TEMPORARY.match(entry)) and match["name"] in names]
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
    folder = delivery.remote_dir.strip("/") or "~"
    return {
        "destination": f"sftp://{delivery.conn_id}/{folder}",
        "uploaded": [{"remote_path": u.remote_path, "size": u.size, "sha256": u.sha256} for u in uploaded],
    }
