"""The ``sis_snapshot`` DAG: the night's one read of the SIS, published to the snapshot store for every vendor run.

    snapshot  -- read the configured source (config/sis.yaml) through its Airflow connection, check it, publish it
                 (rostering.sis.store); the rejected-records report goes to the run's reports/ folder
    announce  -- emit the Airflow Asset ``rostering_sis_snapshot`` with extra {as_of_date, school_year, version, rows}:
                 the vendor DAGs scheduled on it start and read this snapshot. Only after a successful snapshot, and
                 only for the run's own date: re-taking a past date (the ``as_of_date`` param) refreshes the store for
                 backfills but does not make vendors deliver an old roster
    prune     -- teardown, even after a failure: snapshots older than ``retention_days`` and superseded versions go

Parse time reads config/sis.yaml only (YAML); the source, pandas and SQLAlchemy are imported inside the tasks.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import Asset, Param, dag, get_current_context, task, teardown
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from rostering.orchestration.dag_factory import DEFAULT_ARGS
from rostering.sis.config import load_sis_config

DAG_ID = "sis_snapshot"


def snapshot_params() -> dict[str, Param]:
    return {
        "as_of_date": Param(
            "", type=["null", "string"], title="As-of date",
            description="YYYY-MM-DD. Empty = the run's date in the district's timezone (what the vendors then run "
            "on). Another date replaces that date's stored snapshot (for backfills) without triggering the vendors.",
        ),
    }


def build_snapshot_dag(*, doc_md: str | None = None):
    from airflow.sdk import CronTriggerTimetable

    config = load_sis_config()
    snapshot_asset = Asset(name=config.asset_name)
    schedule = CronTriggerTimetable(config.schedule, timezone=config.timezone) if config.schedule else None

    @dag(
        dag_id=DAG_ID,
        description=f"SIS ({config.source}) -> snapshot store -> Asset {config.asset_name} (vendor DAGs run on it)",
        doc_md=doc_md,
        schedule=schedule,
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        catchup=False,
        max_active_runs=1,
        tags=["rostering", "sis", "snapshot"],
        params=snapshot_params(),
        default_args={**DEFAULT_ARGS, **failure_mail(config)},
        render_template_as_native_obj=True,
    )
    def sis_snapshot():
        @task
        def snapshot() -> dict[str, Any]:
            """Read the SIS once for the as-of date and publish it to the snapshot store (counts in the log only)."""
            import json
            import logging

            from rostering.orchestration.sis_source import final_source_error, snapshot_for
            from rostering.sis.sources.base import SourceError
            from rostering.sis.store import SnapshotStore

            log = logging.getLogger("rostering.sis_snapshot")
            sis, run, paths = _context()
            paths.reports.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                stored, _ = snapshot_for(sis, SnapshotStore(), as_of=run.as_of, school_year=run.school_year,
                                         reports_dir=paths.reports, replace=True)
            except SourceError as error:  # value-free by contract (rostering.sis.sources.base)
                paths.write_report("snapshot.json", {"published": False, "source": sis.source,
                                                     "as_of_date": run.as_of.isoformat(), "error": str(error)})
                if final_source_error(error):
                    listed = paths.reports / "rejected.csv"
                    where = f"\nRecords to fix (keys and rules, no values): {listed}" if listed.exists() else ""
                    raise AirflowFailException(
                        f"snapshot failed, nothing published, no vendor runs: {error}{where}") from None
                raise
            info = stored.info
            result = {"as_of_date": info.as_of_date, "school_year": info.school_year, "version": stored.version,
                      "source": info.source, "rows": dict(info.row_counts), "rejected": dict(info.rejected),
                      "stored_in": info.directory}
            paths.write_report("snapshot.json", {"published": True, **result})
            log.info("snapshot %s of %s (%s): %s rows in %d tables; %d SIS record(s) rejected%s",
                     stored.version, info.as_of_date, info.source, f"{sum(info.row_counts.values()):,}",
                     len(info.row_counts), sum(info.rejected.values()),
                     f" (by rule: {json.dumps(info.rejected, sort_keys=True)}; list: {paths.reports / 'rejected.csv'})"
                     if info.rejected else "")
            return result

        @task(outlets=[snapshot_asset])
        def announce(taken: dict[str, Any]) -> dict[str, Any]:
            """Emit the snapshot Asset (vendor DAGs start on it) -- for the run's own date only."""
            ctx = get_current_context()
            sis = load_sis_config()
            own_date = run_date(ctx["dag_run"].run_after, sis.timezone)
            if not announces(taken["as_of_date"], own_date=own_date):
                raise AirflowSkipException(
                    f"snapshot as of {taken['as_of_date']} stored (version {taken['version']}) for runs of that "
                    f"date; vendors are triggered only by the snapshot of the run's own date ({own_date})")
            extra = {key: taken[key] for key in ("as_of_date", "school_year", "version", "rows")}
            ctx["outlet_events"][snapshot_asset].extra = extra
            return extra

        @teardown
        def prune() -> dict[str, int]:
            """Retention (config/sis.yaml retention_days), also after a failed snapshot: children's records."""
            from rostering.sis.store import SnapshotStore

            sis = load_sis_config()
            today = run_date(dt.datetime.now(dt.timezone.utc), sis.timezone)
            return SnapshotStore().prune(retention_days=sis.retention_days, today=today)

        taken = snapshot()
        announce(taken) >> prune()

    return sis_snapshot()


def failure_mail(config) -> dict[str, Any]:
    """A failed snapshot task is mailed (``notify:`` in config/sis.yaml): that night no vendor gets a file."""
    recipients = config.notify.get("email")
    if not recipients:
        return {}
    from rostering.alerts import RunMail

    return {"on_failure_callback": RunMail(kind="failure", title="SIS snapshot", recipients=list(recipients),
                                           smtp_conn_id=config.notify.get("smtp_conn_id", "smtp_default"),
                                           from_email=config.notify.get("from_email"))}


def run_date(moment: dt.datetime, timezone: str) -> dt.date:
    """The district's calendar date at ``moment`` (a run's own date)."""
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo(timezone)).date()


def announces(as_of_date: str, *, own_date: dt.date) -> bool:
    """Whether a snapshot triggers the vendors: only the one of the run's own date. A snapshot re-taken for a past
    (or future) date is for runs of that date (backfills, dry runs); announcing it would make the vendors deliver
    an old roster over today's."""
    return as_of_date == own_date.isoformat()


def _context():
    """The SIS configuration, run options (as-of date from the param, else the run's date) and run folder."""
    from rostering.pipeline import RunPaths
    from rostering.run_options import RunOptions

    ctx = get_current_context()
    sis = load_sis_config()
    dag_run = ctx["dag_run"]
    try:
        run = RunOptions.from_params(ctx["params"], run_after=dag_run.run_after, timezone=sis.timezone)
    except ValueError as error:
        raise AirflowFailException(str(error)) from None
    paths = RunPaths.for_run(dag_run.dag_id, dag_run.run_id)
    paths.make_private()
    return sis, run, paths
