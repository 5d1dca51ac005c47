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
"""
from __future__ import annotations

import datetime as dt
import html
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPORT_NAME = "report.html"

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1d2733;max-width:72rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d5dbe3}
.sub{color:#5b6b7c;margin-top:0}.badge{display:inline-block;padding:.35rem .8rem;border-radius:.4rem;
font-weight:700;color:#fff;font-size:1.05rem}.ok{background:#2e7d32}.held{background:#e65100}.failed{background:#c62828}
.skipped{background:#546e7a}table{border-collapse:collapse;margin:.5rem 0;font-size:.92rem}
th,td{border:1px solid #d5dbe3;padding:.3rem .6rem;text-align:left;vertical-align:top}th{background:#f1f4f8}
td.n{text-align:right;font-variant-numeric:tabular-nums}tr.over td{background:#fff3e0}tr.bad td{background:#ffebee}
.bar{display:inline-block;height:.7rem;background:#1565c0;vertical-align:middle;border-radius:2px}
.bar.before{background:#90a4ae}.delta-neg{color:#c62828;font-weight:600}.delta-pos{color:#2e7d32}
code{background:#f1f4f8;padding:0 .25rem;border-radius:3px}.note{color:#5b6b7c;font-size:.88rem}
ul.reasons li{color:#bf360c;font-weight:600}
"""


def _read(reports: Path, name: str) -> dict[str, Any] | None:
    path = reports / name
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except (OSError, json.JSONDecodeError):
        return None


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _n(value: Any) -> str:
    return f"{value:,}" if isinstance(value, (int, float)) else _e(value)


def outcome_of(reports: Path, summary: dict[str, Any] | None = None) -> tuple[str, str, str]:
    """(css class, headline, detail) of the run as far as its reports tell."""
    summary = summary if summary is not None else _read(reports, "summary.json")
    validation = _read(reports, "validation.json")
    guard = _read(reports, "guard.json")
    held = _read(reports, "held.json")
    if held or (guard and guard.get("held") and not guard.get("approved_by_reason")
                and not (summary and summary.get("delivered"))):
        reason = (held or {}).get("reason") or "; ".join((guard or {}).get("reasons", []))
        return "held", "Delivery HELD — nothing was sent", reason
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


def _table(headers: list[str], rows: list[list[str]], row_classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _td(value: Any, numeric: bool = False) -> str:
    return f'<td class="n">{_n(value)}</td>' if numeric else f"<td>{_e(value)}</td>"


def render(*, title: str, dag_id: str, run_id: str, reports: Path, build_dir: Path | None = None,
           summary: dict[str, Any] | None = None, generated_at: dt.datetime | None = None) -> str:
    """The report as one HTML string (inline CSS, no scripts, no external resources)."""
    summary = summary if summary is not None else _read(reports, "summary.json")
    built = _read(reports, "build.json") or {}
    guard = _read(reports, "guard.json")
    validation = _read(reports, "validation.json")
    cls, headline, detail = outcome_of(reports, summary)
    generated = (generated_at or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    files = (summary or {}).get("files") or built.get("files") or {}
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)} — run report</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)} — run report</h1>",
        f"<p class='sub'>DAG <code>{_e(dag_id)}</code> · run <code>{_e(run_id)}</code>"
        + (f" · as of {_e(summary['as_of_date'])} (school year {_e(summary.get('school_year'))})" if summary else "")
        + f" · generated {generated}</p>",
        f"<p><span class='badge {cls}' id='outcome'>{_e(headline)}</span> <span>{_e(detail)}</span></p>",
    ]
    if cls == "held":
        parts.append(
            "<p><b>What to do:</b> compare the changes below with what you expect (a term rollover, a school "
            "closing). To send it anyway, trigger this DAG again with <code>approve_changes_reason</code> (the "
            "reason is recorded); to drop it, run the <code>rostering_operations</code> DAG with action "
            "<code>discard_held</code> and this run id. The vendor keeps the previous delivery meanwhile.</p>")

    # -- files --------------------------------------------------------------------------------------------------
    parts.append("<h2>Files</h2>")
    if files:
        peak = max(files.values()) or 1
        rows = [[_td(name), _td(rows_, True),
                 f"<td><span class='bar' style='width:{max(1, round(240 * rows_ / peak))}px'></span></td>"]
                for name, rows_ in files.items()]
        parts.append(_table(["file", "rows", ""], rows))
    else:
        parts.append("<p class='note'>No files were built.</p>")
    payload = (summary or {}).get("payload") or []
    if payload:
        parts.append(_table(["payload file", "bytes", "sha256"],
                            [[_td(p["name"]), _td(p["bytes"], True), f"<td><code>{_e(p['sha256'])}</code></td>"]
                             for p in payload]))
    if summary:
        where = summary.get("destination") if summary.get("delivered") else summary.get("not_delivered_because")
        parts.append(f"<p>{'Delivered to' if summary.get('delivered') else 'Not delivered:'} {_e(where)}</p>")
        if summary.get("payload_folder"):
            parts.append(f"<p class='note'>Built files kept in <code>{_e(summary['payload_folder'])}</code></p>")

    # -- schools ------------------------------------------------------------------------------------------------
    names = _school_names(build_dir)
    per_school = (guard or {}).get("schools") or {}
    parts.append("<h2>Students per school</h2>")
    if per_school:
        peak = max(max(c["before"], c["after"]) for c in per_school.values()) or 1
        rows, classes = [], []
        for school, counts in sorted(per_school.items()):
            delta = counts["after"] - counts["before"]
            delta_cls = "delta-neg" if delta < 0 else "delta-pos" if delta > 0 else ""
            rows.append([
                _td(school), _td(names.get(school, "")), _td(counts["before"], True), _td(counts["after"], True),
                f"<td class='n {delta_cls}'>{delta:+,}</td>",
                f"<td><span class='bar before' style='width:{round(200 * counts['before'] / peak)}px'></span><br>"
                f"<span class='bar' style='width:{round(200 * counts['after'] / peak)}px'></span></td>"])
            classes.append("bad" if counts["before"] and not counts["after"] else "")
        parts.append(_table(["school", "name", "last delivery", "this run", "change", ""], rows, classes))
        parts.append("<p class='note'><span class='bar before' style='width:24px'></span> last delivery &nbsp; "
                     "<span class='bar' style='width:24px'></span> this run; a school that lost all its students "
                     "is red.</p>")
    else:
        counts = students_per_school(build_dir)
        if counts:
            peak = max(counts.values()) or 1
            parts.append(_table(["school", "name", "students", ""], [
                [_td(s), _td(names.get(s, "")), _td(n, True),
                 f"<td><span class='bar' style='width:{round(240 * n / peak)}px'></span></td>"]
                for s, n in sorted(counts.items())]))
        else:
            parts.append("<p class='note'>Not available for this format (see the files above).</p>")

    # -- changes against the last delivery ----------------------------------------------------------------------
    parts.append("<h2>Changes against the last delivery</h2>")
    if guard is None:
        parts.append("<p class='note'>No change check for this run (dry run, or a format without one).</p>")
    elif not guard.get("entities"):
        parts.append(f"<p class='note'>{_e(guard.get('note') or 'Nothing to compare with.')}</p>")
    else:
        parts.append(f"<p>Compared with the {_e(guard.get('baseline'))}.</p>")
        if guard.get("reasons"):
            parts.append("<ul class='reasons'>" + "".join(f"<li>{_e(r)}</li>" for r in guard["reasons"]) + "</ul>")
        if guard.get("approved_by_reason"):
            parts.append(f"<p>Approved with the reason: {_e(guard['approved_by_reason'])}</p>")
        rows, classes = [], []
        for ent in guard["entities"]:
            rows.append([_td(ent["entity"]), _td(ent["before"], True), _td(ent["after"], True),
                         _td(ent["added"], True), _td(ent["deleted"], True), _td(ent["updated"], True),
                         _td(f"{ent['deleted_pct']:.1f} %", True), _td(f"{ent['updated_pct']:.1f} %", True)])
            classes.append("over" if any(ent["entity"] in r for r in guard.get("reasons", [])) else "")
        parts.append(_table(["entity", "before", "after", "added", "deleted", "updated", "deleted %", "updated %"],
                            rows, classes))
    changes = ((summary or {}).get("details") or {}).get("changes")
    if changes:  # subgroup feeds: counts of what changed (the audit trail has the rows)
        parts.append(_table(["students added", "students removed", "values changed"], [[
            _td(changes.get("students_added", 0), True), _td(changes.get("students_removed", 0), True),
            _td(changes.get("values_changed", 0), True)]]))

    # -- validation ---------------------------------------------------------------------------------------------
    parts.append("<h2>Validation</h2>")
    if validation is None:
        parts.append("<p class='note'>Validation did not run.</p>")
    else:
        state = "passed" if validation.get("ok") else "FAILED"
        parts.append(f"<p id='validation'>Validation <b>{state}</b>: {len(validation.get('files', {}))} file(s) "
                     f"checked, {validation.get('finding_count', 0)} finding(s).</p>")
        findings = validation.get("findings") or []
        if findings:
            rows = []
            for f in findings:
                lines = ", ".join(str(r) for r in f.get("rows", []))
                more = f.get("count", 0) - len(f.get("rows", []))
                rows.append([_td(f["file"]), _td(f["rule"]), _td(f.get("column") or ""), _td(f.get("count", 0), True),
                             _td(lines + (f" (+{more:,} more)" if more > 0 else "")), _td(f.get("message", ""))])
            parts.append(_table(["file", "rule", "column", "rows", "lines", "message"], rows,
                                ["bad"] * len(rows)))

    # -- what was left out --------------------------------------------------------------------------------------
    dropped = (summary or {}).get("dropped_by_reason") or built.get("dropped") or {}
    rejected = (summary or {}).get("sis_records_rejected") or {}
    withheld = (summary or {}).get("withheld_records", built.get("withheld", 0))
    if dropped or rejected or withheld:
        parts.append("<h2>Left out, by reason</h2>")
        rows = [[_td(reason), _td(count, True)] for reason, count in sorted(dropped.items())]
        rows += [[_td(f"SIS record rejected: {rule}"), _td(count, True)] for rule, count in sorted(rejected.items())]
        if withheld:
            rows.append([_td("withheld (conflicting ids or usernames; reports/withheld.csv)"), _td(withheld, True)])
        parts.append(_table(["reason", "records"], rows))
    imports = (summary or {}).get("imports") or []
    if imports:
        parts.append("<h2>Receiver's import results</h2>")
        parts.append(_table(["file", "import", "status", "message"], [
            [_td(i.get("file")), _td(i.get("import_id")), _td(i.get("status")), _td(i.get("message") or "")]
            for i in imports]))
    parts.append(f"<p class='note'>Reports folder: <code>{_e(reports)}</code>. Counts only: this page never "
                 "shows a student's or staff member's name, id or e-mail.</p></body></html>")
    return "\n".join(parts)


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
