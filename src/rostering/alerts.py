"""E-mail alerts: a failed task, a HELD delivery, and (optionally) the summary of every successful run.

Wired by ``rostering.orchestration.dag_factory.notifications`` from a profile's ``notify:``::

    notify:
      email: [rostering-alerts@district.example.org]
      on_success: true          # also mail the run summary after each successful run (default: failures only)
      smtp_conn_id: smtp_default

Sent with the SMTP provider's ``SmtpNotifier`` over the Airflow connection (host, port, login/password,
``extra.from_email``). The content is composed here from the run's own value-free reports (``summary.json``,
``guard.json``, ``validation.json``, ``held.json`` in ``RunPaths.reports``) and from the failed task's exception
message only when it is one of ours (``AirflowFailException``: validation summaries, held summaries, permanent
delivery errors -- all written without data values). Anything else is named by its exception class only. A mail
never carries a name, SSID, e-mail address, password or any other value from a student or staff record.

- failure: a task-level ``on_failure_callback`` (runs where the task ran, after its last retry), so the mail can
  say exactly what went wrong; a held delivery's subject says **HELD** and the body says how to release or
  discard it;
- success: a DAG-level ``on_success_callback`` (run by the dag-processor, which reads the same shared work folder).
"""
from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except (OSError, json.JSONDecodeError):
        return None


def _paths(dag_id: str, run_id: str):
    from rostering.pipeline import RunPaths

    return RunPaths.for_run(dag_id, run_id)


def safe_error_text(error: BaseException | None) -> str:
    """The exception's text if it is one of ours (crafted without data values), else only its class name."""
    if error is None:
        return ""
    try:
        from airflow.sdk.exceptions import AirflowFailException
    except ImportError:  # pragma: no cover - outside Airflow
        AirflowFailException = ()  # type: ignore[assignment]  # noqa: N806
    from rostering.delivery.holds import DeliveryHeld

    if isinstance(error, (AirflowFailException, DeliveryHeld)):  # a hold's reason is value-free too
        return str(error)
    return f"{type(error).__name__} (details in the task log)"


def _counts_html(reports: Path) -> str:
    """Files and rows, changes against the last delivery, validation: counts only."""
    summary = _read(reports / "summary.json")
    built = _read(reports / "build.json") or {}
    guard = _read(reports / "guard.json")
    validation = _read(reports / "validation.json")
    parts = []
    files = (summary or {}).get("files") or built.get("files") or {}
    if files:
        parts.append("<h3>Files</h3><table border='1' cellpadding='4' cellspacing='0'><tr><th>file</th>"
                     "<th>rows</th></tr>" + "".join(f"<tr><td>{_e(n)}</td><td align='right'>{r:,}</td></tr>"
                                                    for n, r in files.items()) + "</table>")
    if summary and summary.get("payload"):
        parts.append("<p>Payload: " + "; ".join(
            f"{_e(p['name'])} ({p['bytes']:,} bytes, sha256 {_e(p['sha256'][:16])}…)" for p in summary["payload"])
            + "</p>")
    if guard and guard.get("entities"):
        parts.append(f"<h3>Changes against the last delivery</h3><p>Compared with the {_e(guard.get('baseline'))}."
                     "</p><table border='1' cellpadding='4' cellspacing='0'><tr><th>entity</th><th>before</th>"
                     "<th>after</th><th>added</th><th>deleted</th><th>updated</th></tr>" + "".join(
                         f"<tr><td>{_e(x['entity'])}</td><td align='right'>{x['before']:,}</td>"
                         f"<td align='right'>{x['after']:,}</td><td align='right'>{x['added']:,}</td>"
                         f"<td align='right'>{x['deleted']:,} ({x['deleted_pct']:.1f} %)</td>"
                         f"<td align='right'>{x['updated']:,} ({x['updated_pct']:.1f} %)</td></tr>"
                         for x in guard["entities"]) + "</table>")
        emptied = [s for s, c in (guard.get("schools") or {}).items() if c["before"] and not c["after"]]
        if emptied:
            parts.append(f"<p><b>Schools that lost all their students:</b> {_e(', '.join(emptied))}</p>")
    elif guard and guard.get("note"):
        parts.append(f"<p>{_e(guard['note'])}</p>")
    changes = ((summary or {}).get("details") or {}).get("changes")
    if changes:
        parts.append(f"<p>Changes: {changes.get('students_added', 0):,} students added, "
                     f"{changes.get('students_removed', 0):,} removed, {changes.get('values_changed', 0):,} values "
                     "changed.</p>")
    if validation is not None:
        state = "passed" if validation.get("ok") else "FAILED"
        parts.append(f"<p>Validation {state}: {len(validation.get('files', {}))} file(s) checked, "
                     f"{validation.get('finding_count', 0)} finding(s).</p>")
    return "\n".join(parts)


def _report_line(reports: Path) -> str:
    """Where the run's report is: its page in the Airflow UI when ``[api] base_url`` is set (rostering.report_web,
    sign-in required), and always its path on the shared volume."""
    report = reports / "report.html"
    if report.exists():
        from rostering.report_web import configured_base_url, report_url_for

        url = report_url_for(reports, configured_base_url())
        if url:
            return (f"<p>The run's report: <a href=\"{_e(url)}\">{_e(url)}</a> (in Airflow, sign in first); on the "
                    f"shared volume: <code>{_e(report)}</code></p>")
        return f"<p>The run's report (open it in a browser): <code>{_e(report)}</code></p>"
    return f"<p>The run's reports: <code>{_e(reports)}</code></p>"


def failure_mail(*, title: str, dag_id: str, run_id: str, task_id: str, error: BaseException | None,
                 try_number: int | None = None) -> tuple[str, str]:
    """(subject, html body) for a task that failed for good. A held delivery says HELD in both."""
    from rostering.delivery.holds import HELD_REPORT, held_error

    paths = _paths(dag_id, run_id)
    reports = paths.reports
    text = safe_error_text(error)
    # one notion of a hold (rostering.delivery.holds): the run's held.json, or the DeliveryHeld the task raised
    held_record = _read(reports / HELD_REPORT)
    held = bool(held_record and held_record.get("held")) or held_error(error) is not None
    if held:
        subject = f"[rostering] {title}: delivery HELD, nothing sent (run {run_id})"
        head = (f"<p><b>The {_e(title)} delivery was HELD.</b> Nothing was sent: {_e(title)} keeps the previous "
                "delivery. The change against the last good delivery is larger than the safety limits (or a "
                "change the vendor must agree to first).</p>"
                + (f"<p>Held by the {_e(held_record.get('kind') or 'delivery')} check: "
                   f"{_e(held_record.get('reason'))}</p>" if held_record and held_record.get("reason") else "")
                + "<p><b>What to do:</b> look at the run's report (below) and its <code>reports/held.json</code> "
                "(and <code>guard.json</code>). "
                f"If the change is expected, trigger <code>{_e(dag_id)}</code> again with "
                "<code>approve_changes_reason</code> and <code>approve_held_run_id</code> = "
                f"<code>{_e(run_id)}</code> (the reason is recorded with the delivery; it is sent only if the data "
                "is still what this run held). If it is not, "
                "fix the SIS and discard this run: DAG <code>rostering_operations</code>, action "
                f"<code>discard_held</code>, vendor, run_id <code>{_e(run_id)}</code>, reason. Runbook: "
                "docs/operations.md.</p>")
    elif task_id == "validate":
        subject = f"[rostering] {title}: validation FAILED, nothing sent (run {run_id})"
        head = (f"<p><b>Validation of the {_e(title)} files FAILED</b>; nothing was sent. The findings below name "
                "file, line, column and rule (never a value): fix the SIS record or the mapping, then clear the "
                "run.</p>")
    else:
        subject = f"[rostering] {title}: run FAILED at {task_id} (run {run_id})"
        head = (f"<p><b>Task <code>{_e(task_id)}</code> of <code>{_e(dag_id)}</code> failed</b>"
                + (f" (attempt {try_number})" if try_number else "")
                + ". Nothing partial was delivered: a file set goes whole or not at all, and a receiver that "
                "takes file by file (CERS) keeps only the files it accepted, which are recorded. Open the run in "
                "Airflow; the task log says why (it never contains student data).</p>")
    body = [head]
    if text:
        body.append(f"<pre>{_e(text)}</pre>")
    body.append(_counts_html(reports))
    body.append(_report_line(reports))
    body.append(f"<p style='color:#666'>DAG {_e(dag_id)}, run {_e(run_id)}, task {_e(task_id)}.</p>")
    return subject, "\n".join(body)


def success_mail(*, title: str, dag_id: str, run_id: str) -> tuple[str, str]:
    """(subject, html body): the run summary of a successful run -- files, counts, changes, where it went."""
    reports = _paths(dag_id, run_id).reports
    summary = _read(reports / "summary.json") or {}
    if summary.get("delivered"):
        subject = f"[rostering] {title}: delivered (run {run_id})"
        head = f"<p><b>{_e(title)}: delivered</b> to {_e(summary.get('destination'))}.</p>"
    else:
        subject = f"[rostering] {title}: succeeded, not delivered (run {run_id})"
        head = (f"<p><b>{_e(title)}: the run succeeded but delivered nothing</b>: "
                f"{_e(summary.get('not_delivered_because') or 'see the run summary')}.</p>")
    imports = summary.get("imports") or []
    lines = [head, _counts_html(reports)]
    if imports:
        lines.append("<h3>Imports</h3><ul>" + "".join(
            f"<li>{_e(i.get('file'))}: {_e(i.get('status'))} {_e(i.get('message') or '')}</li>" for i in imports)
            + "</ul>")
    lines.append(_report_line(reports))
    return subject, "\n".join(lines)


class RunMail:
    """A callback that composes the mail at run time and sends it with the SMTP provider's SmtpNotifier."""

    def __init__(self, *, kind: str, title: str, recipients: list[str], smtp_conn_id: str,
                 from_email: str | None = None) -> None:
        if kind not in {"failure", "success"}:
            raise ValueError(kind)
        self.kind = kind
        self.title = title
        self.recipients = list(recipients)
        self.smtp_conn_id = smtp_conn_id
        self.from_email = from_email
        self.__name__ = f"rostering_{kind}_mail"

    def compose(self, context: dict[str, Any]) -> tuple[str, str]:
        dag_run = context.get("dag_run")
        dag = context.get("dag")
        dag_id = getattr(dag_run, "dag_id", None) or getattr(dag, "dag_id", "")
        run_id = context.get("run_id") or getattr(dag_run, "run_id", "")
        if self.kind == "success":
            return success_mail(title=self.title, dag_id=dag_id, run_id=run_id)
        ti = context.get("ti") or context.get("task_instance")
        return failure_mail(title=self.title, dag_id=dag_id, run_id=run_id,
                            task_id=getattr(ti, "task_id", "?"), error=context.get("exception"),
                            try_number=getattr(ti, "try_number", None))

    def __call__(self, context: dict[str, Any]) -> None:
        """Send the mail. A mail that cannot go out never fails the run nor hides its outcome: a missing SMTP
        connection is one warning per run saying how to fix it; any other send error is a warning naming its class."""
        run_id = context.get("run_id") or getattr(context.get("dag_run"), "run_id", "")
        connection = smtp_connection(self.smtp_conn_id)
        if connection is None:
            self._warn_once(context, f"the {self.kind} e-mail for run {run_id} was not sent: the SMTP connection "
                                     f"'{self.smtp_conn_id}' is not defined. Add it as an Airflow connection (host, "
                                     "port, login, password, extra.from_email): docs/operations.md, section 9 Alerts.")
            return
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        # the sender resolved here, not by the notifier: it would render it as a template against the callback's
        # SerializedDAG, which has no template environment (AttributeError in every DAG-level callback)
        from_email = self.from_email or connection.extra_dejson.get("from_email")
        if not from_email:
            self._warn_once(context, f"the {self.kind} e-mail for run {run_id} was not sent: no sender. Set "
                                     f"extra.from_email on the SMTP connection '{self.smtp_conn_id}' (or notify."
                                     "from_email): docs/operations.md, section 9 Alerts.")
            return
        subject, body = self.compose(context)
        notifier = SmtpNotifier(to=self.recipients, from_email=from_email, subject=subject,
                                html_content=body, smtp_conn_id=self.smtp_conn_id)
        try:
            notifier.notify(context)  # not __call__: our text is final, it is not a Jinja template
        except Exception as error:  # noqa: BLE001 - the run's outcome stands whatever the mail relay does
            # the class only: an SMTP error can quote the recipients or the message
            log.warning("the %s e-mail for run %s was not sent: %s talking to SMTP connection '%s' "
                        "(docs/operations.md, section 9 Alerts)", self.kind, run_id, type(error).__name__,
                        self.smtp_conn_id)
            return
        log.info("sent the %s mail for %s to %d recipient(s)", self.kind, run_id, len(self.recipients))

    def _warn_once(self, context: dict[str, Any], message: str) -> None:
        """Log ``message`` once per run (the failure and success callbacks of a run may run in different processes:
        the run's reports folder remembers it was said)."""
        dag_run = context.get("dag_run")
        dag_id = getattr(dag_run, "dag_id", None) or getattr(context.get("dag"), "dag_id", "")
        run_id = context.get("run_id") or getattr(dag_run, "run_id", "")
        try:
            reports = _paths(dag_id, run_id).reports
            reports.mkdir(mode=0o700, parents=True, exist_ok=True)
            with open(reports / MAIL_NOT_SENT, "x") as marker:
                marker.write(message + "\n")
        except FileExistsError:
            return
        except OSError:
            pass  # no run folder to remember it in: saying it twice beats not saying it
        log.warning(message)


MAIL_NOT_SENT = "mail_not_sent.txt"


def smtp_connection(conn_id: str) -> Any | None:
    """The Airflow connection (secrets backend, environment or metadata DB), or None -- without the traceback the
    SMTP hook prints when it is missing."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
