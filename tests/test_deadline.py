"""The morning alarm: a vendor whose night has not reached it by 06:00 district time is named, and mailed."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from rostering.deadline import due_night, latest_night, missed, note_outcome
from rostering.vendors.profile import load_profile

LA = "America/Los_Angeles"
SIS_CRON = "0 1 * * *"


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=ZoneInfo(LA))  # Fri 4, Sat 5, Wed 9 December 2026


def profiles():
    return [load_profile(name) for name in ("cers", "derivita", "literably", "stmath")]


def test_each_nightly_vendor_without_tonights_roster_is_named(tmp_path):
    note_outcome("stmath", night=dt.date(2026, 12, 9), outcome="delivered", base=tmp_path)
    note_outcome("literably", night=dt.date(2026, 12, 9), outcome="unchanged", base=tmp_path)  # holds it already
    note_outcome("derivita", night=dt.date(2026, 12, 8), outcome="delivered", base=tmp_path)  # last night's only
    late = missed(profiles(), sis_schedule=SIS_CRON, deadline=at(9, 6), timezone=LA, base=tmp_path)
    assert late == ["Derivita (derivita_subgroups): the roster of 2026-12-09 has not reached it (newest: 2026-12-08)"]


def test_cers_is_due_only_after_its_weekly_run():
    assert due_night("30 22 * * 5", deadline=at(9, 6), timezone=LA) is None  # a Wednesday
    assert due_night("30 22 * * 5", deadline=at(5, 6), timezone=LA) == dt.date(2026, 12, 4)  # Saturday morning
    assert due_night(SIS_CRON, deadline=at(9, 6), timezone=LA) == dt.date(2026, 12, 9)


def test_a_roster_of_an_older_night_never_replaces_the_newest(tmp_path):
    note_outcome("stmath", night=dt.date(2026, 12, 9), outcome="delivered", base=tmp_path)
    note_outcome("stmath", night=dt.date(2026, 11, 2), outcome="delivered", base=tmp_path)  # a backfill sent later
    assert latest_night("stmath", base=tmp_path) == dt.date(2026, 12, 9)


@pytest.mark.airflow
def test_the_deadline_dag_fails_and_mails_the_vendors_that_missed_the_morning(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    from rostering.devservers.mail_catcher import MailCatcher

    monkeypatch.setenv("ROSTERING_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ROSTERING_WORK_DIR", str(tmp_path / "work"))
    dag = DagBag(dag_folder=str(Path(__file__).resolve().parents[1] / "dags" / "rostering_deadline.py")).get_dag(
        "rostering_deadline")
    with MailCatcher() as smtp:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp.connection_json())
        dag_run = dag.test()  # nothing was delivered tonight
        mails = smtp.wait_for(1, timeout=30)
    assert dag_run.state == "failed"
    [mail] = mails
    assert "Deliveries due by 06:00" in mail.subject and mail.rcpt_tos == ["rostering-alerts@district.example.org"]
    body = mail.body()
    assert "NOT delivered by 06:00" in body
    for title in ("ST Math (stmath_oneroster)", "Literably (literably_oneroster)", "Derivita (derivita_subgroups)"):
        assert title in body, body
    assert json.dumps(body)  # a plain text list: counts and names of vendors only
