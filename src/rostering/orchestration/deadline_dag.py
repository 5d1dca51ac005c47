"""The morning alarm DAG: at ``deliveries_due`` (config/sis.yaml, district time) it fails -- and mails, through the
SIS ``notify:`` address -- when a vendor's night has not reached it (rostering.deadline)."""
from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from rostering.orchestration.dag_factory import DEFAULT_ARGS


def build_deadline_dag(*, doc_md: str | None = None):
    from airflow.sdk import CronTriggerTimetable

    from rostering.sis.config import load_sis_config

    sis = load_sis_config()
    due = dt.time.fromisoformat(sis.deliveries_due or "06:00")
    callbacks = {}
    if sis.notify.get("email"):
        from rostering.alerts import RunMail

        callbacks["on_failure_callback"] = RunMail(
            kind="failure", title=f"Deliveries due by {due:%H:%M}", recipients=list(sis.notify["email"]),
            smtp_conn_id=sis.notify.get("smtp_conn_id", "smtp_default"), from_email=sis.notify.get("from_email"))

    @dag(
        dag_id="rostering_deadline",
        description=f"Alarm when a vendor's night has not reached it by {due:%H:%M} district time",
        doc_md=doc_md,
        schedule=CronTriggerTimetable(f"{due.minute} {due.hour} * * *", timezone=sis.timezone)
        if sis.deliveries_due else None,
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        catchup=False,
        max_active_runs=1,
        tags=["rostering", "operations"],
        default_args={**DEFAULT_ARGS, "retries": 0, **callbacks},
    )
    def rostering_deadline():
        @task
        def check() -> dict:
            """Every vendor whose due night has no delivered-or-unchanged outcome; fails (and mails) naming them."""
            from rostering.deadline import missed
            from rostering.orchestration.operations_dag import vendor_names
            from rostering.vendors.profile import load_profile

            deadline = get_current_context()["dag_run"].run_after
            profiles = [load_profile(name) for name in vendor_names()]
            late = missed(profiles, sis_schedule=sis.schedule or "0 1 * * *", deadline=deadline,
                          timezone=sis.timezone)
            if late:
                raise AirflowFailException(
                    f"NOT delivered by {due:%H:%M}: {len(late)} vendor(s)\n- " + "\n- ".join(late)
                    + "\nEach vendor DAG's last run says why (failed, held, still running, never started); "
                    "runbook: docs/operations.md")
            return {"on_time": len(profiles)}

        check()

    return rostering_deadline()
