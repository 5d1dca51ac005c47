"""The run summary: counts, checksums, destination, what was dropped and why. Never names, SSIDs or emails."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rostering.run_options import RunOptions
from rostering.vendors.profile import VendorProfile

log = logging.getLogger(__name__)


def run_summary(
    profile: VendorProfile,
    run: RunOptions,
    extracted: dict[str, Any],
    built: dict[str, Any],
    packaged: dict[str, Any],
    delivered: dict[str, Any] | None,
    *,
    not_delivered_because: str | None = None,
) -> dict[str, Any]:
    summary = {
        "vendor": profile.name,
        "as_of_date": run.as_of.isoformat(),
        "school_year": run.school_year,
        "schools": list(run.schools) or "all",
        "snapshot_rows": extracted["rows"],
        "sis_records_rejected": extracted.get("rejected", {}),  # by rule; the keys are in reports/rejected.csv
        "files": built["files"],
        "dropped_by_reason": built.get("dropped", {}),
        "line_breaks_normalised": built.get("normalised", {}),
        "payload": [{"name": f["path"].rsplit("/", 1)[-1], "bytes": f["size"], "sha256": f["sha256"]}
                    for f in packaged["files"]],
        "delivered": bool(delivered),
        "destination": (delivered or {}).get("destination"),
        "not_delivered_because": None if delivered else (
            not_delivered_because
            or run.delivery_blocked_reason(replaces_everything=profile.replaces_everything)
            or "delivery skipped"
        ),
        "withheld_records": built.get("withheld", 0),
        **({"students_by_product": built["products"]} if built.get("products") else {}),
        **({"details": built["details"]} if built.get("details") else {}),  # format-specific counts (subgroups, CERS)
        **({"audit": delivered["audit"]} if delivered and delivered.get("audit") else {}),
        # where the files can be viewed / downloaded: the delivered copy, or (dry runs, held) the run's payload
        "files_kept_in": (delivered or {}).get("record") or (
            str(Path(packaged["files"][0]["path"]).parent) if packaged["files"] else None),
        # receivers that answer per file (CERS): each import's status and sanitised message
        **({"imports": delivered["imports"]} if delivered and delivered.get("imports") else {}),
    }
    log.info("run summary:\n%s", format_summary(summary))
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"{summary['vendor']} as of {summary['as_of_date']} (school year {summary['school_year']})"]
    lines += [f"  {name:<24} {rows:>10,} rows" for name, rows in summary["files"].items()]
    lines += [f"  payload {p['name']}: {p['bytes']:,} bytes sha256 {p['sha256']}" for p in summary["payload"]]
    if summary["delivered"]:
        lines.append(f"  delivered to {summary['destination']}")
    else:
        lines.append(f"  NOT delivered: {summary['not_delivered_because']}")
    if summary.get("files_kept_in"):
        lines.append(f"  files kept in {summary['files_kept_in']}")
    for item in summary.get("imports", []):
        lines.append(f"  import {item['import_id']} of {item['file']}: {item['status']}")
        lines += [f"    {line}" for line in (item.get("message") or "").splitlines()]
    lines += [f"  dropped {reason}: {count:,}" for reason, count in summary["dropped_by_reason"].items()]
    changes = summary.get("details", {}).get("changes")
    if changes:  # subgroup feeds: what changed against the previous delivery (counts only)
        lines.append(f"  changes: {changes['students_added']:,} students added, {changes['students_removed']:,} "
                     f"removed, {changes['values_changed']:,} values changed {changes['values_changed_by_column']}")
    columns = summary.get("details", {}).get("columns")
    if columns and columns.get("changed"):
        lines.append(f"  COLUMNS CHANGED since the previous delivery: added {columns['added']}, removed "
                     f"{columns['removed']}, reordered {columns['reordered']}"
                     + (" (accepted: accept_column_change)" if summary["delivered"] else ""))
    return "\n".join(lines)
