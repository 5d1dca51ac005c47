"""Delivery records and the kept copy of every delivered payload ("last good").

After a successful delivery the payload files are copied to
``<state>/deliveries/<vendor>/<YYYY-MM-DDTHHMMSSZ>_<run>/`` with a ``record.json`` beside them:
vendor, destination, files (name, bytes, sha256, rows), run id, as-of date, outcome, time. The newest record of a
vendor is its last good delivery: the baseline for change checks and audit trails, and what can be re-sent.
Owner-only permissions throughout: these are children's records.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rostering.paths import state_dir

RECORD = "record.json"


@dataclass(frozen=True)
class DeliveryRecord:
    vendor: str
    destination: str
    run_id: str
    as_of_date: str
    delivered_at: str  # UTC ISO timestamp
    outcome: str  # delivered
    files: list[dict[str, Any]] = field(default_factory=list)  # name, bytes, sha256 (+ rows when known)
    directory: str = ""  # where the kept copy is
    note: str = ""  # e.g. "changes approved: <reason>", "re-delivery of <record>"

    def path(self, name: str) -> Path:
        return Path(self.directory) / name


def vendor_dir(vendor: str, base: Path | None = None) -> Path:
    return (base or state_dir()) / "deliveries" / vendor


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
) -> DeliveryRecord:
    """Keep a copy of the delivered ``files`` and write their record; return it."""
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    stamp = now.strftime("%Y-%m-%dT%H%M%S%fZ")
    target = vendor_dir(vendor, base) / f"{stamp}_{re.sub(r'[^0-9A-Za-z._-]', '_', run_id)}"
    target.mkdir(parents=True, mode=0o700)
    entries = []
    for path in files:
        copy = target / path.name
        shutil.copyfile(path, copy)
        copy.chmod(0o600)
        entries.append({"name": path.name, "bytes": copy.stat().st_size, "sha256": checksums[path.name],
                        **({"rows": rows[path.name]} if rows and path.name in rows else {})})
    record = DeliveryRecord(vendor, destination, run_id, as_of_date, now.isoformat(), "delivered", entries, str(target),
                            note)
    (target / RECORD).write_text(json.dumps(asdict(record), indent=2, sort_keys=True))
    (target / RECORD).chmod(0o600)
    return record


def list_deliveries(vendor: str, base: Path | None = None) -> list[DeliveryRecord]:
    """Every kept delivery of ``vendor``, oldest first."""
    folder = vendor_dir(vendor, base)
    if not folder.exists():
        return []
    records = []
    for record_file in sorted(folder.glob(f"*/{RECORD}")):
        records.append(DeliveryRecord(**json.loads(record_file.read_text())))
    return records


def last_good(vendor: str, base: Path | None = None) -> DeliveryRecord | None:
    records = list_deliveries(vendor, base)
    return records[-1] if records else None
