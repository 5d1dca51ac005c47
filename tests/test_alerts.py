"""Alerts really go out: a HELD delivery run through Airflow mails a real SMTP server (aiosmtpd on loopback).

The e-mail and the per-run HTML report are checked for what a person needs (HELD in the subject, what to do, the
counts) and for what must never be there (names, SSIDs, e-mail addresses of students and staff).
"""
from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from rostering.devservers.mail_catcher import MailCatcher

RECIPIENT = "rostering-alerts@district.example.org"  # config/vendors/stmath.yaml notify.email


def personal_values(district) -> list[str]:
    values = []
    for table in ("student", "staff"):
        frame = district[table]
        values += (frame["first_name"] + " " + frame["last_name"]).tolist()
        values += frame["email"].dropna().tolist()
    values += district["student"]["ssid"].dropna().tolist()
    return [v for v in values if v]


def leaked(values: list[str], text: str) -> list[str]:
    return sorted({v for v in values if v in text})


# -- composing (no Airflow run) ----------------------------------------------------------------------------------------

def _reports(tmp_path, monkeypatch, run_id="manual__1") -> Path:
    from rostering.pipeline import RunPaths

    monkeypatch.setenv("ROSTERING_WORK_DIR", str(tmp_path / "work"))
    return RunPaths.for_run("stmath_oneroster", run_id).reports


def test_a_validation_failure_mail_names_rules_and_lines_but_no_values(tmp_path, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from rostering.alerts import failure_mail

    reports = _reports(tmp_path, monkeypatch)
    reports.mkdir(parents=True)
    (reports / "validation.json").write_text(json.dumps({
        "ok": False, "files": {"users.csv": 12}, "finding_count": 1,
        "findings": [{"file": "users.csv", "rule": "users.sourcedId_unique", "column": "sourcedId", "rows": [3, 9],
                      "count": 2, "message": "duplicate sourcedId"}]}))
    error = AirflowFailException("validation FAILED: 1 finding(s) in 1 file(s)\n- users.csv lines 3, 9 "
                                 "[users.sourcedId_unique] column sourcedId: duplicate sourcedId")
    subject, body = failure_mail(title="ST Math", dag_id="stmath_oneroster", run_id="manual__1", task_id="validate",
                                 error=error)
    assert subject.startswith("[rostering] ST Math: validation FAILED") and "HELD" not in subject
    assert "users.sourcedId_unique" in body and "lines 3, 9" in body and "1 finding(s)" in body


def test_an_unexpected_error_is_named_by_its_class_only(tmp_path, monkeypatch):
    from rostering.alerts import failure_mail

    _reports(tmp_path, monkeypatch)
    # e.g. a database error quoting a row: its text must not reach a mailbox
    error = ValueError("duplicate key value (ssid)=(1234567890) for Maria Lopez")
    subject, body = failure_mail(title="ST Math", dag_id="stmath_oneroster", run_id="manual__1", task_id="extract",
                                 error=error)
    assert "FAILED at extract" in subject
    assert "ValueError" in body and "1234567890" not in body and "Maria" not in body


def test_the_mail_links_the_report_in_the_airflow_ui_when_the_base_url_is_set(tmp_path, monkeypatch):
    from rostering.alerts import failure_mail, success_mail

    run_id = "scheduled__2026-11-03T09:00:00+00:00"
    reports = _reports(tmp_path, monkeypatch, run_id)
    reports.mkdir(parents=True)
    (reports / "summary.json").write_text(json.dumps({"delivered": True, "destination": "sftp://stmath_sftp/~"}))
    (reports / "report.html").write_text("<p>run report</p>")
    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)
    _, body = success_mail(title="ST Math", dag_id="stmath_oneroster", run_id=run_id)
    assert str(reports / "report.html") in body and "<a href" not in body  # no base URL: the path only

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.district.example.org/")
    link = ("https://airflow.district.example.org/rostering/reports/stmath_oneroster/"
            "scheduled__2026-11-03T09_00_00_00_00")
    for _, body in (success_mail(title="ST Math", dag_id="stmath_oneroster", run_id=run_id),
                    failure_mail(title="ST Math", dag_id="stmath_oneroster", run_id=run_id, task_id="deliver",
                                 error=None)):
        assert f'<a href="{link}">{link}</a>' in body, body
        assert str(reports / "report.html") in body  # and still the path on the shared volume


# -- a mail that cannot go out ----------------------------------------------------------------------------------------

CALL_TWICE = """
from rostering.alerts import RunMail
mail = RunMail(kind="{kind}", title="CERS", recipients=["rostering-alerts@district.example.org"],
               smtp_conn_id="smtp_default")
class DagRun:
    dag_id = "cers_student_groups"
    run_id = "manual__1"
class TaskInstance:
    task_id = "deliver"
    try_number = 1
for _ in range(2):  # e.g. a failed task's callback and the run's: one warning per run
    mail({{"dag_run": DagRun(), "run_id": "manual__1", "ti": TaskInstance(), "exception": ValueError("x")}})
print("run outcome stands")
"""


def _call_the_callback_twice(tmp_path, kind: str, smtp_connection: str | None):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env["ROSTERING_WORK_DIR"] = str(tmp_path / "work")
    if smtp_connection:
        env["AIRFLOW_CONN_SMTP_DEFAULT"] = smtp_connection
    done = subprocess.run([sys.executable, "-c", CALL_TWICE.format(kind=kind)], env=env, capture_output=True,
                          text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("kind", ["success", "failure"])
def test_a_missing_smtp_connection_is_one_clear_warning_not_a_traceback(tmp_path, kind):
    code, output = _call_the_callback_twice(tmp_path, kind, smtp_connection=None)
    assert code == 0 and "run outcome stands" in output, output
    assert "Traceback" not in output and "SMTP connection is not found" not in output, output
    warnings = [line for line in output.splitlines() if "was not sent" in line]
    assert len(warnings) == 1, output  # once per run, however many callbacks fire
    assert "'smtp_default' is not defined" in warnings[0] and "docs/operations.md" in warnings[0]


def test_an_smtp_relay_that_refuses_is_a_warning_naming_the_connection_not_a_traceback(tmp_path):
    from rostering.devservers.mail_catcher import MailCatcher

    catcher = MailCatcher()  # its port, never started: the relay refuses the connection
    code, output = _call_the_callback_twice(tmp_path, "success", smtp_connection=catcher.connection_json())
    assert code == 0 and "run outcome stands" in output, output
    assert "Traceback" not in output, output
    assert "not sent: ConnectionRefusedError talking to SMTP connection 'smtp_default'" in output, output
    assert "rostering-alerts@district.example.org" not in output  # recipients are not logged either


def test_the_demo_points_every_alert_connection_at_its_mail_catcher_and_lists_what_it_caught(capsys):
    import smtplib
    from email.message import EmailMessage

    from rostering.devservers.demo import airflow_env, report_mails, smtp_conn_ids
    from rostering.devservers.mail_catcher import MailCatcher

    with MailCatcher() as catcher:
        env = airflow_env(Path("sis.sqlite"), sftp=_NoSftp(), passwords=_AnyPassword(), mail=catcher)
        assert "smtp_default" in smtp_conn_ids()
        for conn_id in smtp_conn_ids():
            assert json.loads(env[f"AIRFLOW_CONN_{conn_id.upper()}"])["port"] == catcher.port
        message = EmailMessage()
        message["Subject"], message["From"], message["To"] = "[rostering] CERS: delivered", "a@x.org", RECIPIENT
        message.set_content("Body with Maria Lopez")
        with smtplib.SMTP("127.0.0.1", catcher.port) as smtp:
            smtp.send_message(message)
        catcher.wait_for(1, timeout=10)
        report_mails(catcher)
    printed = capsys.readouterr().out
    assert f"[rostering] CERS: delivered  ->  {RECIPIENT}" in printed
    assert "Maria" not in printed  # subject and recipients only


class _NoSftp:
    host, port, host_key_line = "127.0.0.1", 0, "ssh-ed25519 AAAA"


class _AnyPassword(dict):
    def __missing__(self, key):
        return "demo-pass"


# -- a real run, a real SMTP server ------------------------------------------------------------------------------------

@pytest.fixture()
def held_stmath(tmp_path, monkeypatch):
    """A generated district whose last ST Math delivery (yesterday) had one school more than the SIS has now."""
    import sqlalchemy as sa

    from rostering import pipeline
    from rostering.delivery.records import record_delivery
    from rostering.devservers.sftp_server import LocalSFTPServer
    from rostering.run_options import RunOptions
    from rostering.sis.demo import generate_district, load_district
    from rostering.vendors.profile import load_profile

    district = generate_district(400, seed=7)
    sis = tmp_path / "sis.sqlite"
    load_district(district, f"sqlite:///{sis}")
    monkeypatch.setenv("ROSTERING_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("ROSTERING_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("AIRFLOW_CONN_SIS_DB", json.dumps({"conn_type": "sqlite", "host": str(sis)}))

    # the baseline: the whole district built, validated and packaged by the pipeline, recorded as delivered yesterday
    profile = load_profile("stmath")
    now = dt.datetime.now(dt.timezone.utc)
    run = RunOptions.from_params({}, run_after=now, timezone=profile.timezone)
    paths = pipeline.RunPaths.for_run(profile.dag_id, "baseline")
    engine = sa.create_engine(f"sqlite:///{sis}")
    try:
        pipeline.extract(engine, paths, run)
        pipeline.build(profile, paths, run)
        pipeline.validate(profile, paths)
        packaged = pipeline.package(profile, paths)
        files = [Path(f["path"]) for f in packaged["files"]]
        record_delivery(vendor="stmath", destination="sftp://stmath_sftp/~", run_id="baseline",
                        as_of_date=run.as_of.isoformat(), files=files,
                        checksums={Path(f["path"]).name: f["sha256"] for f in packaged["files"]},
                        now=now - dt.timedelta(days=1))
        # tonight's extract is missing the biggest school (a failed join, a term rollover ...)
        with engine.begin() as conn:
            school = conn.execute(sa.text(
                "SELECT school_id FROM school_enrollment GROUP BY school_id ORDER BY COUNT(*) DESC LIMIT 1")).scalar()
            conn.execute(sa.text("DELETE FROM school_enrollment WHERE school_id = :s"), {"s": school})
    finally:
        engine.dispose()

    with LocalSFTPServer(root=tmp_path / "sftp", users={"stmath": "demo-pass"}) as sftp, MailCatcher() as smtp:
        monkeypatch.setenv("AIRFLOW_CONN_STMATH_SFTP", json.dumps(
            {"conn_type": "sftp", "host": sftp.host, "port": sftp.port, "login": "stmath", "password": "demo-pass",
             "extra": {"host_key": sftp.host_key_line}}))
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp.connection_json())
        yield {"smtp": smtp, "sftp": sftp, "district": district, "school": school}


@pytest.mark.airflow
def test_a_held_delivery_mails_HELD_with_counts_and_what_to_do(held_stmath):  # noqa: N802
    from airflow.dag_processing.dagbag import DagBag

    from rostering.pipeline import RunPaths

    dag = DagBag(dag_folder=str(Path(__file__).resolve().parents[1] / "dags" / "stmath_oneroster.py")).get_dag(
        "stmath_oneroster")
    dag_run = dag.test()
    assert dag_run.state == "failed"
    assert list(held_stmath["sftp"].home("stmath").iterdir()) == []  # nothing was sent

    messages = held_stmath["smtp"].wait_for(1, timeout=30)
    assert len(messages) == 1, [m.subject for m in messages]  # one mail: the deliver task, after its only try
    mail = messages[0]
    assert mail.rcpt_tos == [RECIPIENT]
    assert mail.mail_from == "rostering@district.example.org"
    assert "ST Math" in mail.subject and "HELD" in mail.subject and dag_run.run_id in mail.subject
    body = mail.body()
    assert "was HELD" in body and "Nothing was sent" in body
    assert "approve_changes_reason" in body and "discard_held" in body and dag_run.run_id in body
    assert "school(s) that had students now have none" in body  # the guard's reason
    assert re.search(r"<td>students</td><td align='right'>\d[\d,]*</td>", body)  # counts per entity
    assert "users.csv" in body  # files and rows
    assert "report.html" in body
    values = personal_values(held_stmath["district"])
    assert leaked(values, mail.message.as_string()) == []

    # the page a person looks at: written although the run stopped at deliver
    report = RunPaths.for_run("stmath_oneroster", dag_run.run_id).reports / "report.html"
    assert report.exists() and oct(report.stat().st_mode & 0o777) == "0o600"
    page = report.read_text()
    assert "Delivery HELD" in page and "discard_held" in page
    school = held_stmath["school"]
    row = re.search(rf"<tr class=\"bad\"><td>sch-{re.escape(school)}</td><td>[^<]*</td><td class=\"n\">([\d,]+)</td>"
                    r"<td class=\"n\">0</td>", page)
    assert row and int(row.group(1).replace(",", "")) > 0, "the emptied school is highlighted with before/after"
    assert "Validation <b>passed</b>" in page
    assert leaked(values, page) == []


@pytest.mark.airflow
def test_a_dry_run_shows_that_a_real_run_would_be_held(held_stmath):
    """The operator previews tonight's change before the night: the guard runs in a dry run and says HELD."""
    from airflow.dag_processing.dagbag import DagBag

    from rostering.pipeline import RunPaths

    dag = DagBag(dag_folder=str(Path(__file__).resolve().parents[1] / "dags" / "stmath_oneroster.py")).get_dag(
        "stmath_oneroster")
    dag_run = dag.test(run_conf={"dry_run": True})
    assert dag_run.state == "success"  # a dry run never fails on the guard ...
    assert list(held_stmath["sftp"].home("stmath").iterdir()) == []
    reports = RunPaths.for_run("stmath_oneroster", dag_run.run_id).reports
    outcome = json.loads((reports / "delivery.json").read_text())
    assert outcome["reason"].startswith("dry run") and "a real run would be HELD" in outcome["reason"], (
        (reports / "guard.json").read_text())
    assert "1 school(s) that had students now have none" in outcome["would_be_held"]  # ... but says so
    guard = json.loads((reports / "guard.json").read_text())
    assert guard["held"] is True and guard["preview"] is True
    assert held_stmath["smtp"].wait_for(1, timeout=2) == []  # and mails no HELD alert
    page = (reports / "report.html").read_text()
    assert "a real run WOULD BE HELD" in page and "Delivery HELD — nothing was sent" not in page


# -- what an operator reads in the UI ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dag_file", ["stmath_oneroster", "literably_oneroster", "cers_student_groups",
                                      "derivita_subgroups"])
def test_every_vendor_dag_doc_says_what_it_does_its_params_and_what_to_do_when_failed_or_held(dag_file):
    import ast

    doc = ast.get_docstring(ast.parse((Path(__file__).resolve().parents[1] / "dags" / f"{dag_file}.py").read_text()))
    for needed in ("**Params**", "`as_of_date`", "`schools`", "`dry_run`", "`force`", "**When it fails**",
                   "**When it is held**", "approve_changes_reason", "discard_held", "report.html"):
        assert needed in doc, f"{dag_file}: {needed!r} missing from its doc_md"
