"""Delivery records and the kept copy of every delivered payload ("last good").

A delivery is recorded in two phases, so that nothing leaves without a record:

1. ``begin_delivery``, before anything is sent: the payload files are copied to
   ``<state>/deliveries/<vendor>/<YYYY-MM-DDTHHMMSSffffffZ>_<run>/`` and ``record.json`` is written beside them
   with outcome ``sending``. If that fails (disk full, permissions) the delivery fails and nothing is sent.
2. ``finish_delivery``, once the transport accepted the files: outcome ``delivered``. Receivers that replace per
   file (CERS: ``per_file``) confirm each file as it is accepted (``mark_accepted``): outcome ``partial`` until
   every file is, and a run where one import failed keeps the files that were accepted.

A retry of the same run finds its own record (``own_delivery``: same run id, same checksums) and finishes it
instead of making a second one. A ``sending`` record that was never confirmed may or may not have arrived: it is
listed as unconfirmed (``python -m rostering.operations deliveries``) but is never a baseline.

``record.json``: vendor, destination, run id, as-of date, outcome, ``started_at`` (written before sending),
``delivered_at`` (when the receiver accepted, "" while unconfirmed), files (name, bytes, sha256, rows when known:
the bytes actually delivered), ``pending`` (files not confirmed yet), ``per_file``, ``redacted``, note.

The newest ``delivered`` record is the vendor's last good delivery (``last_good``): the baseline of the change
guard and of the subgroup audit, and what is re-sent. For per-file receivers the baseline is the newest accepted
copy of each file name (``last_good_baseline(vendor, per_file=True)``).

Every file here is written to a temporary name in its folder, fsync'd and renamed over the target (os.replace):
a crash leaves the previous version or none, never half of one. Folders are 0700, files 0600: these are children's
records. Secrets are not kept: a ``password`` column in a kept CSV is blanked (``"redacted": {"users.csv":
["password"]}``) -- the checksums stay those of the delivered bytes, and a re-delivery puts the secret back from
its connection and checks it against them (rostering.operations).
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from rostering.paths import state_dir

log = logging.getLogger(__name__)

RECORD = "record.json"
SENDING, PARTIAL, DELIVERED = "sending", "partial", "delivered"
ACCEPTED = (PARTIAL, DELIVERED)  # outcomes whose confirmed files the receiver holds
SECRET_COLUMNS = ("password",)  # never kept: e.g. Literably's shared staff password
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


@dataclass(frozen=True)
class DeliveryRecord:
    vendor: str
    destination: str
    run_id: str
    as_of_date: str
    delivered_at: str  # UTC ISO timestamp the receiver accepted the files; "" while unconfirmed
    outcome: str  # sending | partial | delivered
    files: list[dict[str, Any]] = field(default_factory=list)  # name, bytes, sha256 (+ rows when known), as sent
    directory: str = ""  # where the kept copy is
    note: str = ""  # e.g. "changes approved: <reason>", "re-delivery of <record>"
    pending: list[str] = field(default_factory=list)  # files the receiver has not confirmed (all while sending)
    started_at: str = ""  # UTC ISO timestamp of the record written before anything was sent
    per_file: bool = False  # the receiver replaces per file (CERS): each accepted file counts on its own
    redacted: dict[str, list[str]] = field(default_factory=dict)  # file -> columns blanked in the kept copy

    def path(self, name: str) -> Path:
        return Path(self.directory) / name

    @property
    def accepted_files(self) -> list[dict[str, Any]]:
        return [f for f in self.files if f["name"] not in self.pending]

    @property
    def began(self) -> str:
        """When the delivery started (records from before the two phases have only ``delivered_at``)."""
        return self.started_at or self.delivered_at


@dataclass(frozen=True)
class Baseline:
    """What the receiver holds as far as the records know: the change guard's baseline and what is re-delivered.

    Duck-compatible with :class:`DeliveryRecord` for readers (``files``, ``path(name)``, ``delivered_at``,
    ``run_id``, ``as_of_date``, ``directory``), but its files may come from several records (per-file receivers).
    """

    vendor: str
    files: list[dict[str, Any]]  # name, bytes, sha256 (+ rows) of each file, as delivered
    kept_in: dict[str, str]  # file name -> folder of the record its kept copy is in
    records: list[DeliveryRecord]  # the records it is made of, oldest first

    def path(self, name: str) -> Path:
        return Path(self.kept_in[name]) / name

    @property
    def newest(self) -> DeliveryRecord:
        return self.records[-1]

    @property
    def delivered_at(self) -> str:
        return self.newest.delivered_at

    @property
    def run_id(self) -> str:
        return self.newest.run_id

    @property
    def as_of_date(self) -> str:
        return self.newest.as_of_date

    @property
    def directory(self) -> str:
        return self.newest.directory

    @property
    def redacted(self) -> dict[str, list[str]]:
        by_folder = {r.directory: r for r in self.records}
        return {f["name"]: by_folder[self.kept_in[f["name"]]].redacted[f["name"]] for f in self.files
                if f["name"] in by_folder[self.kept_in[f["name"]]].redacted}

    @property
    def identity(self) -> str:
        """Changes whenever the baseline does (also when a retry adds an accepted file to the same record)."""
        keyed = "\n".join(f"{f['name']} {f['sha256']} {Path(self.kept_in[f['name']]).name}" for f in self.files)
        return hashlib.sha256(keyed.encode()).hexdigest()

    @property
    def description(self) -> str:
        if len(self.records) == 1:
            return f"delivery of {self.delivered_at} (run {self.run_id})"
        return (f"newest accepted copy of each of {len(self.files)} files, from {len(self.records)} deliveries "
                f"(newest {self.delivered_at}, run {self.run_id})")


def vendor_dir(vendor: str, base: Path | None = None) -> Path:
    return (base or state_dir()) / "deliveries" / vendor


# -- writing -------------------------------------------------------------------------------------------------------


def begin_delivery(
    *,
    vendor: str,
    destination: str,
    run_id: str,
    as_of_date: str,
    files: list[Path],
    checksums: dict[str, str],
    rows: dict[str, int] | None = None,
    now: dt.datetime | None = None,
    base: Path | None = None,
    note: str = "",
    per_file: bool = False,
) -> DeliveryRecord:
    """Before anything is sent: keep a copy of ``files`` and write their record with outcome ``sending``.

    Raises, leaving no folder behind, when that fails: then nothing must be sent.
    """
    now = _utc(now)
    folder = _private_vendor_dir(vendor, base) / f"{now.strftime('%Y-%m-%dT%H%M%S%fZ')}_{_safe(run_id)}"
    folder.mkdir(mode=PRIVATE_DIR)
    try:
        folder.chmod(PRIVATE_DIR)
        entries, redacted = [], {}
        for path in files:
            blanked = _keep_copy(Path(path), folder / Path(path).name)
            if blanked:
                redacted[Path(path).name] = blanked
            entries.append({"name": Path(path).name, "bytes": Path(path).stat().st_size,
                            "sha256": checksums[Path(path).name],
                            **({"rows": rows[Path(path).name]} if rows and Path(path).name in rows else {})})
        record = DeliveryRecord(vendor, destination, run_id, as_of_date, "", SENDING, entries, str(folder), note,
                                pending=[e["name"] for e in entries], started_at=now.isoformat(),
                                per_file=per_file, redacted=redacted)
        _write_record(record)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return record


def mark_accepted(record: DeliveryRecord, *, names: Iterable[str], now: dt.datetime | None = None) -> DeliveryRecord:
    """The receiver accepted ``names`` (per-file receivers): ``partial``, or ``delivered`` once every file is."""
    pending = [n for n in record.pending if n not in set(names)]
    if pending == record.pending:
        return record  # already recorded (a retry reports files an earlier attempt got accepted)
    updated = replace(record, pending=pending, outcome=PARTIAL if pending else DELIVERED,
                      delivered_at=_utc(now).isoformat())
    _write_record(updated)
    return updated


def finish_delivery(record: DeliveryRecord, *, destination: str | None = None,
                    now: dt.datetime | None = None) -> DeliveryRecord:
    """The transport accepted every file: outcome ``delivered`` (the new last good), written atomically."""
    updated = replace(record, pending=[], outcome=DELIVERED, delivered_at=_utc(now).isoformat(),
                      destination=destination or record.destination)
    _write_record(updated)
    return updated


def record_delivery(
    *,
    vendor: str,
    destination: str,
    run_id: str,
    as_of_date: str,
    files: list[Path],
    checksums: dict[str, str],
    rows: dict[str, int] | None = None,
    now: dt.datetime | None = None,
    base: Path | None = None,
    note: str = "",
    per_file: bool = False,
) -> DeliveryRecord:
    """Both phases at once: a delivery already confirmed (tests, bench, imports of history)."""
    record = begin_delivery(vendor=vendor, destination=destination, run_id=run_id, as_of_date=as_of_date,
                            files=files, checksums=checksums, rows=rows, now=now, base=base, note=note,
                            per_file=per_file)
    return finish_delivery(record, now=now)


# -- reading -------------------------------------------------------------------------------------------------------


def list_deliveries(vendor: str, base: Path | None = None, *, include_unfinished: bool = False
                    ) -> list[DeliveryRecord]:
    """Every kept delivery of ``vendor``, oldest first: the ``delivered`` ones, or with ``include_unfinished``
    also ``sending`` (unconfirmed) and ``partial`` records."""
    records = [r for _, r in _read_records(vendor, base) if r is not None]
    return records if include_unfinished else [r for r in records if r.outcome == DELIVERED]


def last_good(vendor: str, base: Path | None = None) -> DeliveryRecord | None:
    """The newest delivery the receiver accepted whole."""
    records = list_deliveries(vendor, base)
    return records[-1] if records else None


def last_good_baseline(vendor: str, *, per_file: bool, retrying_run: str | None = None,
                       base: Path | None = None) -> Baseline | None:
    """What the receiver holds: the last good delivery, or for a receiver that replaces per file (CERS,
    ``per_file=True``) the newest accepted copy of each file name, across deliveries. None before the first.

    ``retrying_run`` (a run id, or its run folder's name): that run's unfinished records are left out, so a retry
    that finishes a partial delivery is compared with what the receiver held before the run, as its first attempt
    was (and an approval bound to that comparison still applies).
    """
    if not per_file:
        record = last_good(vendor, base)
        if record is None:
            return None
        return Baseline(vendor, list(record.files), {f["name"]: record.directory for f in record.files}, [record])
    newest: dict[str, tuple[DeliveryRecord, dict[str, Any]]] = {}
    for record in list_deliveries(vendor, base, include_unfinished=True):
        if record.outcome == DELIVERED or (record.outcome in ACCEPTED and not (
                retrying_run and _safe(record.run_id) == _safe(retrying_run))):
            for entry in record.accepted_files:
                newest[entry["name"]] = (record, entry)
    if not newest:
        return None
    folders = {record.directory for record, _ in newest.values()}
    records = [r for r in list_deliveries(vendor, base, include_unfinished=True) if r.directory in folders]
    return Baseline(vendor, [newest[name][1] for name in sorted(newest)],
                    {name: record.directory for name, (record, _) in newest.items()}, records)


def own_delivery(vendor: str, *, run_id: str, checksums: dict[str, str], base: Path | None = None
                 ) -> DeliveryRecord | None:
    """This run's newest record of exactly these files (any outcome): what a retried task finishes."""
    for record in reversed(list_deliveries(vendor, base, include_unfinished=True)):
        if record.run_id == run_id and {f["name"]: f["sha256"] for f in record.files} == checksums:
            return record
    return None


def unrecorded_folders(vendor: str, base: Path | None = None) -> list[Path]:
    """Kept-copy folders without a readable record.json (a crash while the copy was being kept)."""
    return [folder for folder, record in _read_records(vendor, base) if record is None]


def _read_records(vendor: str, base: Path | None) -> Iterator[tuple[Path, DeliveryRecord | None]]:
    folder = vendor_dir(vendor, base)
    if not folder.exists():
        return
    for child in sorted(p for p in folder.iterdir() if p.is_dir()):
        record_file = child / RECORD
        try:
            yield child, DeliveryRecord(**json.loads(record_file.read_text()))
        except FileNotFoundError:
            yield child, None
        except (ValueError, TypeError):
            log.warning("unreadable delivery record %s/%s/%s skipped", vendor, child.name, RECORD)
            yield child, None


# -- files ---------------------------------------------------------------------------------------------------------


def _utc(now: dt.datetime | None) -> dt.datetime:
    return (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)


def _safe(run_id: str) -> str:
    return re.sub(r"[^0-9A-Za-z._-]", "_", run_id)


def _private_vendor_dir(vendor: str, base: Path | None) -> Path:
    folder = vendor_dir(vendor, base)
    folder.parent.parent.mkdir(parents=True, exist_ok=True)  # the state dir itself may be a mounted volume: as is
    for level in (folder.parent, folder):
        level.mkdir(mode=PRIVATE_DIR, exist_ok=True)
        level.chmod(PRIVATE_DIR)  # also mends folders made before with the umask's mode
    return folder


def _write_record(record: DeliveryRecord) -> None:
    data = json.dumps(asdict(record), indent=2, sort_keys=True).encode()
    write_atomically(Path(record.directory) / RECORD, [data])


def write_atomically(target: Path, chunks: Iterable[bytes]) -> None:
    """Owner-only ``target`` via a temporary file in the same folder, fsync'd, then os.replace: all or nothing."""
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a crash
    finally:
        os.close(folder)


def _keep_copy(source: Path, target: Path) -> list[str]:
    """Copy ``source`` to ``target`` with its secret columns blanked; return the columns blanked (if any)."""
    if source.suffix.lower() == ".csv":
        with open(source, "rb") as handle:
            header = handle.readline()
        columns = [c for c in SECRET_COLUMNS if _column_index(header, c) is not None]
        if columns:
            data, blanked = source.read_bytes(), 0
            for column in columns:
                data, count = rewrite_column(data, column, _blank)
                blanked += count
            write_atomically(target, [data])
            return columns if blanked else []
    with open(source, "rb") as handle:
        write_atomically(target, iter(lambda: handle.read(1 << 20), b""))
    return []


# -- secret columns: blanked in kept copies, put back for a re-delivery ----------------------------------------------

# RFC 4180: a quoted field (may hold commas, quotes, line breaks) or not. Possessive: no backtracking (520k rows, 68 MB
# in ~4.5 s on the bench box)
_FIELD = rb'(?:"(?:[^"]++|"")*+"|[^,"\r\n]*+)'
EMPTY_QUOTED = b'""'  # a blanked value: distinct from an unquoted empty field (a null that was never a secret)


def _blank(value: bytes) -> bytes:
    return value if value in (b"", EMPTY_QUOTED) else EMPTY_QUOTED


def quoted(value: str) -> bytes:
    """A value quoted the way rostering.csvio writes strings."""
    return b'"' + value.replace('"', '""').encode("utf-8") + b'"'


def _column_index(header: bytes, column: str) -> int | None:
    names = next(csv.reader([header.decode("utf-8-sig").rstrip("\r\n")]), [])
    return names.index(column) if column in names else None


def rewrite_column(data: bytes, column: str, rewrite: Callable[[bytes], bytes]) -> tuple[bytes, int]:
    """``data`` (a CSV file) with ``rewrite`` applied to the raw bytes of ``column`` in every row after the header;
    every other byte is kept as it is. Returns the new bytes and how many values changed."""
    end = data.find(b"\n") + 1 or len(data)
    index = _column_index(data[:end], column)
    if index is None:
        return data, 0
    row = re.compile(rb"((?:%s,){%d})(%s)((?:,%s)*+)(\r\n|\n|\Z)" % (_FIELD, index, _FIELD, _FIELD))
    parts, changed, position = [data[:end]], 0, end
    while position < len(data):
        match = row.match(data, position)
        if match is None or match.end() == position:
            raise ValueError(f"column {column!r}: not a well-formed CSV row at byte {position}")  # no values
        new = rewrite(match.group(2))
        changed += new != match.group(2)
        parts += [match.group(1), new, match.group(3), match.group(4)]
        position = match.end()
    return b"".join(parts), changed
