"""The operators' decisions log: ``<state>/decisions/decisions.jsonl``, append-only, one JSON object a line.

What a person decided about a vendor's deliveries -- a held run discarded, a last good delivery re-sent, held changes
approved -- with their reason. Run folders are purged after the retention (30 days); this log is not, and holds no
student data: UTC time, action, vendor, run id, the person's reason, value-free details (counts, file names, run ids,
checksums). Callers write the decision before acting on it: a decision that cannot be logged is not carried out.

Its own folder, not ``<state>/audit/`` (whose ``*/*.parquet`` files, the subgroup audit, are purged by age).
Each line is written whole under an exclusive lock (workers on several hosts share the state dir) and fsync'd.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
from pathlib import Path
from typing import Any

from rostering.paths import state_dir

log = logging.getLogger(__name__)

DECISIONS = "decisions.jsonl"


def decisions_path(base: Path | None = None) -> Path:
    return (base or state_dir()) / "decisions" / DECISIONS


def record_decision(*, action: str, vendor: str, run_id: str, reason: str, details: dict[str, Any] | None = None,
                    now: dt.datetime | None = None, base: Path | None = None) -> dict[str, Any]:
    """Append one decision (fsync'd) and return it. ``details`` must be value-free: counts, names of files, ids."""
    if not reason.strip():
        raise ValueError(f"{action}: a reason is required")
    entry = {"at": (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).isoformat(),
             "action": action, "vendor": vendor, "run_id": run_id, "reason": reason, "details": details or {}}
    line = (json.dumps(entry, sort_keys=True, default=str) + "\n").encode("utf-8")
    path = decisions_path(base)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.parent.chmod(0o700)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)  # read: the last byte
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":  # a write cut off by a crash: keep the next line whole
            line = b"\n" + line
        written = 0
        while written < len(line):
            written += os.write(fd, line[written:])
        os.fsync(fd)
    finally:
        os.close(fd)  # releases the lock
    os.chmod(path, 0o600)
    if created:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    log.info("decision logged: %s for %s, run %s", action, vendor, run_id)
    return entry


def read_decisions(*, vendor: str | None = None, base: Path | None = None) -> list[dict[str, Any]]:
    """Every logged decision (optionally of one vendor), oldest first; a line cut off by a crash is skipped."""
    path = decisions_path(base)
    if not path.exists():
        return []
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            log.warning("%s line %d is not a whole entry (skipped)", DECISIONS, number)
            continue
        if vendor is None or entry.get("vendor") == vendor:
            entries.append(entry)
    return entries
