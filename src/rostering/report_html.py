"""The per-run HTML report: one self-contained page a person can look at instead of reading JSON.

Written to the run's reports folder (``RunPaths.reports / "report.html"``, owner-only) by the ``summary`` task, and
also when a run stops early for a reason a person must act on (validation failed, delivery held), so the page
exists exactly when it is needed most. It is built only from the run's own value-free reports:

- ``summary.json``  files and rows, payload files with bytes and sha256, destination, what was dropped and why;
- ``build.json``    the same counts when the run did not get as far as its summary;
- ``guard.json``    changes against the last good delivery, per entity and per school (counts only);
- ``validation.json`` the checks: per file rows checked, findings by file, rule, column and line numbers;
- ``delivery.json`` / ``held.json``  why nothing was delivered.

Counts per school come from ``guard.json`` (before / after, when there is a baseline) or from the built OneRoster
``users.csv`` (students per school). School names come from the built ``orgs.csv``. Never a person's name, id,
e-mail or any other value from a student or staff record: only counts, file names, rule names, line numbers,
checksums and school identifiers.

The page is a Jinja2 template (``rostering/templates/report.html.j2``, autoescaped); this module prepares what it
shows. Times are shown in the district's timezone (``timezone`` in ``config/sis.yaml``) with its abbreviation.
Served to signed-in Airflow users by ``rostering.report_web`` (the ``rostering_reports`` plugin).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

REPORT_NAME = "report.html"
TEMPLATE = "report.html.j2"

# an ISO 8601 time with its offset, as the delivery records write them ("2026-11-02T09:12:45.123456+00:00"); not one
# inside a run id ("scheduled__2026-11-02T09:00:00+00:00", "run 2026-…"): those are names, copied as they are
_ISO_TIME = re.compile(r"(?<![\w:.+-])(?<!run )(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2})(?::\d{2}(?:\.\d{1,6})?)?"
                       r"(Z|[+-]\d{2}:\d{2})(?![\w:])")


def _read(reports: Path, name: str) -> dict[str, Any] | None:
    path = reports / name
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except (OSError, json.JSONDecodeError):
        return None


def _n(value: Any) -> str:
    return f"{value:,}" if isinstance(value, (int, float)) else str(value)


def district_timezone() -> ZoneInfo:
    """The district's timezone (``timezone`` in config/sis.yaml); UTC if it cannot be read (a report never fails)."""
    try:
        from rostering.sis.config import load_sis_config

        return ZoneInfo(load_sis_config().timezone)
    except Exception as error:  # noqa: BLE001
        log.warning("report times in UTC: the district timezone could not be read (%s)", type(error).__name__)
        return ZoneInfo("UTC")


def _zone(timezone: str | dt.tzinfo | None) -> dt.tzinfo:
    if timezone is None:
        return district_timezone()
    return ZoneInfo(timezone) if isinstance(timezone, str) else timezone


def local_time(moment: dt.datetime, zone: dt.tzinfo) -> str:
    """``2026-11-03 03:05 PST``: minutes, in ``zone``, with its abbreviation (a naive time is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def localize_times(text: Any, zone: dt.tzinfo) -> Any:
    """Every offset-qualified ISO time in ``text`` (a delivery's time in a guard baseline or reason) in ``zone``."""
    if not isinstance(text, str):
        return text

    def local(match: re.Match) -> str:
        try:
            return local_time(dt.datetime.fromisoformat(match.group(0).replace("Z", "+00:00")), zone)
        except ValueError:
            return match.group(0)

    return _ISO_TIME.sub(local, text)


@cache
def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("rostering", "templates"), autoescape=True, trim_blocks=True,
                      lstrip_blocks=True, undefined=StrictUndefined)
    env.filters["n"] = _n
    return env


def outcome_of(reports: Path, summary: dict[str, Any] | None = None) -> tuple[str, str, str]:
    """(css class, headline, detail) of the run as far as its reports tell."""
    summary = summary if summary is not None else _read(reports, "summary.json")
    validation = _read(reports, "validation.json")
    guard = _read(reports, "guard.json")
    held = _read(reports, "held.json")
    if held or (guard and guard.get("held") and not guard.get("approved_by_reason") and not guard.get("preview")
                and not (summary and summary.get("delivered"))):
        reason = (held or {}).get("reason") or "; ".join((guard or {}).get("reasons", []))
        return "held", "Delivery HELD — nothing was sent", reason
    if guard and guard.get("preview") and guard.get("held") and not guard.get("approved_by_reason"):
        # a dry run (or another date's roster): the guard ran as a real night would, nothing was going to be sent
        return "held", "Not delivered — a real run WOULD BE HELD", "; ".join(guard.get("reasons", []))
    if validation is not None and not validation.get("ok", True):
        return "failed", "Validation FAILED — nothing was sent", f"{validation.get('finding_count', 0)} finding(s)"
    if summary is None:
        return "failed", "Run did not finish", "see the failed task's log"
    if summary.get("delivered"):
        return "ok", "Delivered", f"to {summary.get('destination')}"
    return "skipped", "Not delivered", summary.get("not_delivered_because") or ""


def _school_names(build_dir: Path | None) -> dict[str, str]:
    """School id (SIS school_id and OneRoster sourcedId) -> name, from the built orgs.csv (no personal data)."""
    if build_dir is None or not (build_dir / "orgs.csv").exists():
        return {}
    import pyarrow.csv as pacsv

    try:
        table = pacsv.read_csv(build_dir / "orgs.csv", convert_options=pacsv.ConvertOptions(
            include_columns=["sourcedId", "name", "type"], column_types={"sourcedId": "string", "name": "string"}))
    except Exception:  # noqa: BLE001 - a report must never fail the run
        return {}
    names = {}
    for sourced_id, name, kind in zip(*(table.column(c).to_pylist() for c in ("sourcedId", "name", "type"))):
        if kind == "school" and sourced_id:
            names[sourced_id] = name or ""
            if sourced_id.startswith("sch-"):
                names[sourced_id[4:]] = name or ""
    return names


def students_per_school(build_dir: Path | None) -> dict[str, int]:
    """Students per school in the built OneRoster users.csv (a student in two schools counts in both)."""
    if build_dir is None or not (build_dir / "users.csv").exists():
        return {}
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    try:
        table = pacsv.read_csv(build_dir / "users.csv", convert_options=pacsv.ConvertOptions(
            include_columns=["role", "orgSourcedIds"],
            column_types={"role": "string", "orgSourcedIds": "string"}))
    except Exception:  # noqa: BLE001 - a report must never fail the run
        return {}
    students = table.filter(pc.equal(table.column("role"), "student")).column("orgSourcedIds")
    schools = pc.list_flatten(pc.split_pattern(pc.fill_null(students, ""), ","))
    counts = pc.value_counts(schools).to_pylist()
    return {item["values"]: int(item["counts"]) for item in counts if item["values"]}


def context(*, title: str, dag_id: str, run_id: str, reports: Path, build_dir: Path | None = None,
            summary: dict[str, Any] | None = None, generated_at: dt.datetime | None = None,
            timezone: str | dt.tzinfo | None = None) -> dict[str, Any]:
    """What the page shows, from the run's value-free reports (the template only lays it out)."""
    zone = _zone(timezone)
    summary = summary if summary is not None else _read(reports, "summary.json")
    built = _read(reports, "build.json") or {}
    guard = _read(reports, "guard.json")
    validation = _read(reports, "validation.json")
    cls, headline, detail = outcome_of(reports, summary)
    files = (summary or {}).get("files") or built.get("files") or {}
    peak_rows = max(files.values(), default=0) or 1

    names = _school_names(build_dir)
    per_school = (guard or {}).get("schools") or {}
    schools_compared, schools_counted = [], []
    if per_school:
        peak = max(max(c["before"], c["after"]) for c in per_school.values()) or 1
        for school, counts in sorted(per_school.items()):
            delta = counts["after"] - counts["before"]
            schools_compared.append({
                "school": school, "name": names.get(school, ""), "before": counts["before"], "after": counts["after"],
                "delta": f"{delta:+,}", "delta_cls": "delta-neg" if delta < 0 else "delta-pos" if delta > 0 else "",
                "before_width": round(200 * counts["before"] / peak),
                "after_width": round(200 * counts["after"] / peak),
                "emptied": bool(counts["before"] and not counts["after"])})
    else:
        counts = students_per_school(build_dir)
        peak = max(counts.values(), default=0) or 1
        schools_counted = [{"school": s, "name": names.get(s, ""), "students": n, "width": round(240 * n / peak)}
                           for s, n in sorted(counts.items())]

    guard_view = None
    if guard is not None:
        reasons = guard.get("reasons") or []
        guard_view = {
            "note": localize_times(guard.get("note"), zone), "baseline": localize_times(guard.get("baseline"), zone),
            "reasons": [localize_times(r, zone) for r in reasons],
            "approved_by_reason": guard.get("approved_by_reason"),
            "entities": [{**ent, "deleted_pct": f"{ent['deleted_pct']:.1f} %",
                          "updated_pct": f"{ent['updated_pct']:.1f} %",
                          "over": any(ent["entity"] in r for r in reasons)}  # the entity a reason names
                         for ent in guard.get("entities") or []]}

    findings = []
    for f in (validation or {}).get("findings") or []:
        more = f.get("count", 0) - len(f.get("rows", []))
        lines = ", ".join(str(r) for r in f.get("rows", [])) + (f" (+{more:,} more)" if more > 0 else "")
        findings.append({"file": f["file"], "rule": f["rule"], "column": f.get("column") or "",
                         "count": f.get("count", 0), "lines": lines, "message": f.get("message", "")})

    dropped = (summary or {}).get("dropped_by_reason") or built.get("dropped") or {}
    rejected = (summary or {}).get("sis_records_rejected") or {}
    withheld = (summary or {}).get("withheld_records", built.get("withheld", 0))
    left_out = [(reason, count) for reason, count in sorted(dropped.items())]
    left_out += [(f"SIS record rejected: {rule}", count) for rule, count in sorted(rejected.items())]
    if withheld:
        left_out.append(("withheld (conflicting ids or usernames; reports/withheld.csv)", withheld))

    where = None
    if summary:
        where = summary.get("destination") if summary.get("delivered") else summary.get("not_delivered_because")
    return {
        "title": title, "dag_id": dag_id, "run_id": run_id, "reports": str(reports), "summary": summary,
        "generated": local_time(generated_at or dt.datetime.now(dt.timezone.utc), zone),
        "outcome": {"cls": cls, "headline": headline, "detail": localize_times(detail, zone)},
        "files": [{"name": name, "rows": rows, "width": max(1, round(240 * rows / peak_rows))}
                  for name, rows in files.items()],
        "payload": (summary or {}).get("payload") or [],
        "where": localize_times(where, zone),
        "schools_compared": schools_compared, "schools_counted": schools_counted,
        "guard": guard_view, "changes": ((summary or {}).get("details") or {}).get("changes"),
        "validation": validation, "findings": findings,
        "left_out": left_out if (dropped or rejected or withheld) else [],
        "imports": (summary or {}).get("imports") or [],
    }


def render(*, title: str, dag_id: str, run_id: str, reports: Path, build_dir: Path | None = None,
           summary: dict[str, Any] | None = None, generated_at: dt.datetime | None = None,
           timezone: str | dt.tzinfo | None = None) -> str:
    """The report as one HTML string (inline CSS, no scripts, no external resources); times in ``timezone``
    (default: the district's, from config/sis.yaml)."""
    page = context(title=title, dag_id=dag_id, run_id=run_id, reports=reports, build_dir=build_dir,
                   summary=summary, generated_at=generated_at, timezone=timezone)
    return _environment().get_template(TEMPLATE).render(page)


def write_report(*, title: str, dag_id: str, run_id: str, reports: Path, build_dir: Path | None = None,
                 summary: dict[str, Any] | None = None) -> Path | None:
    """Write ``report.html`` into ``reports`` (0600); returns its path, or None if it could not be written.

    A report is a convenience: it never fails the run that writes it.
    """
    try:
        reports.mkdir(parents=True, exist_ok=True)
        path = reports / REPORT_NAME
        path.write_text(render(title=title, dag_id=dag_id, run_id=run_id, reports=reports, build_dir=build_dir,
                               summary=summary), encoding="utf-8")
        path.chmod(0o600)
        return path
    except Exception:  # noqa: BLE001
        log.exception("could not write the HTML run report")
        return None
