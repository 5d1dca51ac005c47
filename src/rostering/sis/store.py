"""The snapshot store: the night's SIS snapshot, made once and read by every vendor run.

Layout under ``rostering.paths.snapshot_dir()`` (owner-only, 0700: children's records)::

    <as-of date>/<version>/        a complete snapshot: Parquet tables, snapshot.json, rejected.csv, store.json
    <as-of date>/CURRENT           the version readers get (replaced atomically: write a temporary file, rename)
    .tmp/<as-of date>.<version>/   a snapshot being written (never read; swept when its writer is gone)
    .locks/<as-of date>.make       held while a snapshot of that date is made, published or pruned (one at a time)
    .locks/<as-of date>.read       shared while a run links a version into its folder; exclusive while pruning

A snapshot is written into a private temporary folder, renamed into ``<date>/<version>`` and only then named in
``CURRENT``: a reader never sees a half-written or mixed snapshot, and a second snapshot of the same date replaces
the first without disturbing runs that already linked it. A vendor run hard-links the files into its own folder
(``link_into``), so pruning the store never deletes a snapshot under a running build. Files are read-only (0400):
a build that tried to rewrite a linked file in place would fail instead of changing the stored snapshot.

Plain Python: the Airflow tasks (rostering.orchestration.snapshot_dag, .dag_factory) call it; so do the tests.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Callable, Iterator

from rostering.paths import snapshot_dir
from rostering.sis.extract import SNAPSHOT_META, SnapshotInfo

log = logging.getLogger(__name__)

CURRENT = "CURRENT"
STORE_META = "store.json"  # version, source, when it was published: what snapshot.json does not say
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_VERSION = re.compile(r"v\d{8}T\d{6}\d{6}Z-[0-9a-f]{6}\Z")


class SnapshotGone(FileNotFoundError):
    """The version was pruned between ``find`` and ``link_into``; look it up again."""


@dataclasses.dataclass(frozen=True)
class StoredSnapshot:
    """A published snapshot: its SnapshotInfo (``directory`` = the version folder) and its version id."""

    info: SnapshotInfo
    version: str

    @property
    def as_of(self) -> dt.date:
        return dt.date.fromisoformat(self.info.as_of_date)


def _new_version(now: dt.datetime | None = None) -> str:
    """Sortable by publication time; the random tail keeps two writers in the same microsecond apart."""
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"v{stamp}-{secrets.token_hex(3)}"


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


class SnapshotStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else snapshot_dir()

    # -- paths ----------------------------------------------------------------------------------------------------

    def _date_dir(self, as_of: dt.date) -> Path:
        return self.root / as_of.isoformat()

    def _lock_path(self, as_of: dt.date, kind: str) -> Path:
        return _private_dir(self.root / ".locks") / f"{as_of.isoformat()}.{kind}"

    @contextlib.contextmanager
    def _lock(self, as_of: dt.date, kind: str, *, shared: bool = False, wait: bool = True) -> Iterator[bool]:
        """fcntl lock on a lock file of the date; yields False (without waiting) when ``wait=False`` and it is held.
        The kernel drops it when the process dies, so a killed writer never blocks the next night."""
        _private_dir(self.root)
        with open(self._lock_path(as_of, kind), "a+") as handle:
            mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
            try:
                fcntl.flock(handle, mode)
            except OSError as error:
                if not wait and error.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    yield False
                    return
                raise
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def making(self, as_of: dt.date) -> Iterator[None]:
        """Held while one snapshot of ``as_of`` is made and published: a second writer waits, then finds it."""
        with self._lock(as_of, "make"):
            yield

    # -- reading --------------------------------------------------------------------------------------------------

    def find(self, as_of: dt.date) -> StoredSnapshot | None:
        """The current complete snapshot of ``as_of``, or None (never a partial or an unpublished one)."""
        date_dir = self._date_dir(as_of)
        try:
            version = (date_dir / CURRENT).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        if not _VERSION.match(version):
            log.warning("snapshot store: %s/%s names no valid version; ignored", as_of.isoformat(), CURRENT)
            return None
        folder = date_dir / version
        try:
            info = SnapshotInfo.load(folder)
        except FileNotFoundError:  # pruned since CURRENT was read, or a damaged store: nothing to hand out
            return None
        return StoredSnapshot(dataclasses.replace(info, directory=str(folder)), version)

    def versions(self, as_of: dt.date) -> list[str]:
        date_dir = self._date_dir(as_of)
        return sorted(p.name for p in date_dir.iterdir() if p.is_dir() and _VERSION.match(p.name)) \
            if date_dir.is_dir() else []

    def dates(self) -> list[dt.date]:
        if not self.root.is_dir():
            return []
        return sorted(dt.date.fromisoformat(p.name) for p in self.root.iterdir() if p.is_dir() and _DATE.match(p.name))

    def link_into(self, stored: StoredSnapshot, run_snapshot_dir: Path) -> SnapshotInfo:
        """Give a run its own names for the snapshot's files (hard links; a copy across filesystems), so the store
        can prune the version while the run still reads it. Returns the SnapshotInfo of the run's folder."""
        source = Path(stored.info.directory)
        target = Path(run_snapshot_dir)
        if target.exists():  # a retried task: start from a clean folder
            shutil.rmtree(target)
        _private_dir(target.parent)
        for stale in target.parent.glob(f".{target.name}.*"):  # links a killed try left half made
            shutil.rmtree(stale, ignore_errors=True)
        staging = _private_dir(target.parent / f".{target.name}.{secrets.token_hex(4)}")
        try:
            with self._lock(stored.as_of, "read", shared=True):
                if not (source / SNAPSHOT_META).exists():
                    raise SnapshotGone(f"snapshot {stored.info.as_of_date} {stored.version} is no longer stored")
                for path in sorted(source.iterdir()):
                    if not path.is_file() or path.name == SNAPSHOT_META:
                        continue
                    try:
                        os.link(path, staging / path.name)
                    except OSError as error:  # another filesystem (EXDEV) or no hard links there: copy
                        if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                            raise
                        shutil.copyfile(path, staging / path.name)
                        (staging / path.name).chmod(0o400)
            info = dataclasses.replace(stored.info, directory=str(target))
            (staging / SNAPSHOT_META).write_text(json.dumps(dataclasses.asdict(info), indent=2, sort_keys=True))
            (staging / SNAPSHOT_META).chmod(0o600)
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return info

    def checkout(self, as_of: dt.date, run_snapshot_dir: Path) -> tuple[StoredSnapshot, SnapshotInfo] | None:
        """``find`` + ``link_into``; None when the date has no snapshot. A version pruned in between is looked up
        again (the re-run that replaced it is what the run should read)."""
        for _ in range(3):
            stored = self.find(as_of)
            if stored is None:
                return None
            try:
                return stored, self.link_into(stored, run_snapshot_dir)
            except SnapshotGone:
                continue
        raise SnapshotGone(f"the snapshot of {as_of.isoformat()} kept changing while it was linked")

    # -- writing --------------------------------------------------------------------------------------------------

    def publish(self, as_of: dt.date, take: Callable[[Path], SnapshotInfo], *, source: str = "",
                now: dt.datetime | None = None) -> StoredSnapshot:
        """Make a snapshot of ``as_of`` with ``take(out_dir)`` in a private temporary folder and publish it as the
        date's current version. Anything ``take`` raises propagates and leaves nothing findable behind."""
        with self.making(as_of):
            return self._publish_locked(as_of, take, source=source, now=now)

    def find_or_publish(self, as_of: dt.date, take: Callable[[Path], SnapshotInfo], *,
                        source: str = "") -> tuple[StoredSnapshot, bool]:
        """The date's snapshot, made now when there is none; (snapshot, True when this call made it). Two runs
        asking at once make it once: the second waits on the lock, then finds the first one's."""
        stored = self.find(as_of)
        if stored is not None:
            return stored, False
        with self.making(as_of):
            stored = self.find(as_of)
            if stored is not None:
                return stored, False
            return self._publish_locked(as_of, take, source=source), True

    def _publish_locked(self, as_of: dt.date, take: Callable[[Path], SnapshotInfo], *, source: str,
                        now: dt.datetime | None = None) -> StoredSnapshot:
        version = _new_version(now)
        tmp = _private_dir(self.root / ".tmp") / f"{as_of.isoformat()}.{version}"
        final = _private_dir(self._date_dir(as_of)) / version
        try:
            _private_dir(tmp)
            info = take(tmp)
            if info.as_of_date != as_of.isoformat():
                raise ValueError(f"the snapshot is as of {info.as_of_date}, not {as_of.isoformat()}")
            info = dataclasses.replace(info, directory=str(final))
            (tmp / SNAPSHOT_META).write_text(json.dumps(dataclasses.asdict(info), indent=2, sort_keys=True))
            published_at = (now or dt.datetime.now(dt.timezone.utc)).isoformat()
            (tmp / STORE_META).write_text(json.dumps(
                {"version": version, "source": source or getattr(info, "source", ""), "published_at": published_at,
                 "as_of_date": info.as_of_date, "school_year": info.school_year}, indent=2, sort_keys=True))
            for path in tmp.iterdir():
                if path.is_dir():  # nothing but files belongs in a snapshot (a staging folder, say)
                    shutil.rmtree(path)
                else:
                    path.chmod(0o400)
            _fsync_dir(tmp)
            tmp.rename(final)
            self._point_current(as_of, version)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("snapshot store: published %s version %s (%d tables, %d rows)", as_of.isoformat(), version,
                 len(info.row_counts), sum(info.row_counts.values()))
        return StoredSnapshot(info, version)

    def _point_current(self, as_of: dt.date, version: str) -> None:
        date_dir = self._date_dir(as_of)
        pointer = date_dir / f".{CURRENT}.{secrets.token_hex(4)}"
        pointer.write_text(version + "\n", encoding="utf-8")
        with open(pointer, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(pointer, date_dir / CURRENT)  # atomic: readers see the old version or the new, never neither
        _fsync_dir(date_dir)

    # -- retention ------------------------------------------------------------------------------------------------

    def prune(self, *, retention_days: int, today: dt.date) -> dict[str, int]:
        """Delete dates older than ``retention_days`` before ``today``, superseded versions of the other dates,
        and temporaries whose writer is gone. A date being made right now is left for the next prune."""
        removed = {"dates": 0, "versions": 0, "temporaries": 0}
        cutoff = today - dt.timedelta(days=retention_days)
        for as_of in self.dates():
            with self._lock(as_of, "make", wait=False) as free:
                if not free:
                    continue
                with self._lock(as_of, "read"):  # no run is between find and link for this date
                    date_dir = self._date_dir(as_of)
                    if as_of < cutoff:
                        removed["versions"] += len(self.versions(as_of))
                        shutil.rmtree(date_dir)
                        removed["dates"] += 1
                        continue
                    current = self.find(as_of)
                    for version in self.versions(as_of):
                        if current is None or version != current.version:
                            shutil.rmtree(date_dir / version)
                            removed["versions"] += 1
                    for leftover in date_dir.glob(f".{CURRENT}.*"):  # a pointer a killed writer did not rename
                        leftover.unlink()
                    if current is None and not any(date_dir.iterdir()):
                        date_dir.rmdir()
            if as_of < cutoff:
                self._lock_path(as_of, "make").unlink(missing_ok=True)
                self._lock_path(as_of, "read").unlink(missing_ok=True)
        removed["temporaries"] = self.sweep_temporaries()
        log.info("snapshot store: pruned %(dates)d date(s), %(versions)d version(s), %(temporaries)d "
                 "temporary folder(s)", removed)
        return removed

    def sweep_temporaries(self) -> int:
        """Remove temporary folders of failed or killed writers (those whose date nobody is making now)."""
        tmp_root = self.root / ".tmp"
        if not tmp_root.is_dir():
            return 0
        swept = 0
        for tmp in sorted(tmp_root.iterdir()):
            date = tmp.name.split(".", 1)[0]
            if not _DATE.match(date):
                continue
            with self._lock(dt.date.fromisoformat(date), "make", wait=False) as free:
                if free:
                    shutil.rmtree(tmp, ignore_errors=True)
                    swept += 1
        return swept


def _fsync_dir(path: Path) -> None:
    """Make a rename durable: a crash after publishing must not bring back the old CURRENT."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
