"""The operations DAG: re-deliver a vendor's last good delivery, discard a held run, purge expired copies."""
from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from rostering.orchestration.dag_factory import DEFAULT_ARGS
from rostering.paths import config_dir

ACTIONS = ("purge_expired", "redeliver_last_good", "discard_held")


def vendor_names() -> list[str]:
    return sorted(p.stem for p in (config_dir() / "vendors").glob("*.yaml"))


def build_operations_dag(*, doc_md: str | None = None):
    from airflow.sdk import CronTriggerTimetable

    from rostering.sis.config import load_sis_config

    @dag(
        dag_id="rostering_operations",
        description="Operator actions: re-deliver last good, discard a held delivery, purge expired copies",
        doc_md=doc_md,
        schedule=CronTriggerTimetable("0 5 * * *", timezone=load_sis_config().timezone),  # nightly purge
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        catchup=False,
        max_active_runs=1,
        tags=["rostering", "operations"],
        default_args={**DEFAULT_ARGS, "retries": 0},  # operator actions are not repeated behind a person's back
        params={
            "action": Param("purge_expired", enum=list(ACTIONS), title="Action"),
            "vendor": Param("", type="string", enum=["", *vendor_names()], title="Vendor"),
            "run_id": Param("", type="string", title="Held run id (discard_held)"),
            "reason": Param("", type="string", title="Reason (recorded; required to re-deliver or discard)"),
            "retention_days": Param(30, type="integer", minimum=1, title="Retention in days (purge_expired)"),
        },
    )
    def rostering_operations():
        @task
        def act() -> dict:
            from rostering import operations
            from rostering.vendors.profile import load_profile

            ctx = get_current_context()
            params = ctx["params"]
            try:
                if params["action"] == "purge_expired":
                    return operations.purge_expired(vendor_names(), retention_days=int(params["retention_days"]))
                if not params["vendor"]:
                    raise ValueError(f"{params['action']} needs a vendor")
                profile = load_profile(params["vendor"])
                if params["action"] == "redeliver_last_good":
                    return operations.redeliver_last_good(profile, reason=params["reason"], run_id=ctx["run_id"])
                return operations.discard_held(profile, run_id=params["run_id"], reason=params["reason"])
            except ValueError as error:
                from rostering.errors import safe_text  # ours are value-free; a library's may quote data

                raise AirflowFailException(safe_text(error)) from None

        act()

    return rostering_operations()
