"""One DAG per vendor profile, all from this factory (edu_edfi_airflow style).

Parse-time work is limited to reading the vendor's YAML; pandas, pyarrow, SQLAlchemy, GX and the SFTP client are
imported inside the tasks. Tasks hand each other file paths and counts, never DataFrames.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task, teardown
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from rostering.vendors.profile import VendorProfile, delivered_asset_name, load_profile

log = logging.getLogger(__name__)

DEFAULT_ARGS = {
    "owner": "data-engineering",
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=2),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": dt.timedelta(minutes=30),
}


def run_params(profile: VendorProfile) -> dict[str, Param]:
    """The params every vendor DAG takes, plus the vendor's own from its YAML (``params:``).

    Optional params allow null (``type: ["null", ...]``): Airflow's trigger form treats every other field as
    required, and would not let an operator trigger a run without inventing an as-of date or an approval reason.
    """
    return {
        "as_of_date": Param(
            "", type=["null", "string"], title="As-of date",
            description="YYYY-MM-DD. Build the roster as it was on this date (backfills, 'what would we have sent'). "
            "Empty = the run's date in the district's timezone.",
        ),
        "schools": Param(
            [], type=["null", "array"], items={"type": "string"}, title="Schools",
            description="SIS school_id values to build. Empty = all licensed schools. For OneRoster vendors a subset "
            "is built but never delivered (they replace everything they hold: it would deprovision the other "
            "schools); CERS replaces only the groups a file names, so a subset is delivered.",
        ),
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Build and validate, keep the files for download, deliver nothing."),
        "force": Param(False, type="boolean", title="Force",
                       description="Deliver even when the vendor's once-a-day or unchanged-payload rule would skip."),
        "approve_changes_reason": Param(
            "", type=["null", "string"], title="Approve held changes (reason)",
            description="Release a delivery the change guard held (too many deletions, additions or updates, a "
            "school emptied): give the reason AND the held run's id below. It is sent only if this run builds the "
            "same files against the same last delivery as the held run; if the data changed since, it is held "
            "again. The reason is kept in the delivery record and the decisions log. Read the held run's report "
            "first.",
        ),
        "approve_held_run_id": Param(
            "", type=["null", "string"], title="Held run id (for the approval)",
            description="The run_id of the held run this approval releases (in the HELD e-mail's subject).",
        ),
        "deliver_other_date_reason": Param(
            "", type=["null", "string"], title="Deliver a roster of another date (reason)",
            description="A run whose as_of_date is not its own date builds and validates only: the receiver would "
            "replace today's roster with it. Give a reason here to send it anyway (kept in the delivery record).",
        ),
        **{name: Param(**_optional(spec)) for name, spec in profile.params.items()},
    }


def _optional(spec: dict[str, Any]) -> dict[str, Any]:
    """An empty default ("" or []) means "not given": allow null, or the UI's trigger form marks the field required
    and keeps the Trigger button disabled until someone types something (seen in tests/test_ui_browser.py)."""
    kind = spec.get("type")
    if isinstance(kind, str) and kind in {"string", "array"} and spec.get("default") in ("", []):
        return {**spec, "type": ["null", kind]}
    return spec


def notifications(profile: VendorProfile) -> dict[str, Any]:
    """E-mail for profiles with ``notify: {email: [...]}`` (rostering.alerts composes the content).

    Returns ``{"dag": {...}, "task": {...}}``: the failure mail is a *task* callback (it runs after the task's last
    try, where the task ran, and can say why -- e.g. that a delivery was HELD); the optional success mail
    (``on_success: true``) is the *DAG* callback after the whole run, with the run summary.
    """
    recipients = profile.notify.get("email")
    if not recipients:
        return {"dag": {}, "task": {}}
    from rostering.alerts import RunMail

    options = dict(recipients=list(recipients), title=profile.title,
                   smtp_conn_id=profile.notify.get("smtp_conn_id", "smtp_default"),
                   from_email=profile.notify.get("from_email"))
    dag_callbacks = {}
    if profile.notify.get("on_success"):
        dag_callbacks["on_success_callback"] = RunMail(kind="success", **options)
    return {"dag": dag_callbacks, "task": {"on_failure_callback": RunMail(kind="failure", **options)}}


def write_html_report(profile: VendorProfile, paths: Any, run_id: str, summary: dict | None = None) -> str | None:
    """The run's ``reports/report.html`` (rostering.report_html); its path, or None. Never fails the task."""
    from rostering.report_html import write_report

    path = write_report(title=profile.title, dag_id=profile.dag_id, run_id=run_id, reports=paths.reports,
                        build_dir=paths.build, summary=summary)
    return str(path) if path else None


def _context(profile: VendorProfile) -> tuple[Any, Any]:
    """Run options and paths of the current task (every task of a run resolves them identically)."""
    from rostering.pipeline import RunPaths
    from rostering.run_options import RunOptions

    ctx = get_current_context()
    dag_run = ctx["dag_run"]
    # a run started by an Asset event is for the date the event names: the night's snapshot (or, for Derivita, the
    # ST Math delivery it follows), even when it starts after midnight
    event_date = as_of_from_events(ctx.get("triggering_asset_events"))
    try:
        run = RunOptions.from_params(dict(ctx["params"]), run_after=dag_run.run_after, timezone=profile.timezone,
                                     own_date=dt.date.fromisoformat(event_date) if event_date else None)
    except ValueError as error:
        raise AirflowFailException(str(error)) from None
    return run, RunPaths.for_run(dag_run.dag_id, dag_run.run_id)


def _note_night(profile: VendorProfile, run: Any, outcome: str) -> None:
    """For the morning alarm (rostering.deadline): the vendor holds tonight's roster. A roster of another date sent
    with a reason is not tonight's."""
    from rostering.deadline import note_outcome

    if run.own_date is None or run.as_of == run.own_date:
        note_outcome(profile.name, night=run.as_of, outcome=outcome)


def as_of_from_events(events: Any) -> str | None:
    """The newest ``as_of_date`` in the extras of the Asset events that triggered the run, or None (a manual or cron
    run). The sis_snapshot DAG and every vendor's delivery put it there."""
    dates = []
    for asset_events in (events or {}).values():
        for event in asset_events:
            value = str((getattr(event, "extra", None) or {}).get("as_of_date") or "")
            try:
                dates.append(dt.date.fromisoformat(value))
            except ValueError:
                continue
    return max(dates).isoformat() if dates else None


def vendor_schedule(profile: VendorProfile) -> Any:
    """``after: X`` -> X's delivery Asset; ``schedule: snapshot`` -> the SIS snapshot Asset; a cron string -> that
    cron in the district's timezone; nothing -> on demand only."""
    from airflow.sdk import Asset, CronTriggerTimetable

    from rostering.sis.config import ASSET_NAME

    if profile.after:  # e.g. Derivita after the roster it shares ids with
        return [Asset(name=delivered_asset_name(profile.after))]
    if profile.on_snapshot:
        return [Asset(name=ASSET_NAME)]
    if profile.schedule:
        return CronTriggerTimetable(profile.schedule, timezone=profile.timezone)
    return None


def build_vendor_dag(vendor: str, *, doc_md: str | None = None):
    """Create the DAG for ``config/vendors/<vendor>.yaml``."""
    profile = load_profile(vendor)
    return _make_dag(profile, doc_md)


CONFIRM_TASK = "confirm_delivery"


def _confirm_timing(profile: VendorProfile) -> tuple[float, float] | None:
    """For a transport whose receiver confirms later (rostering.delivery.CONFIRMED_LATER: CERS), the
    ``confirm_delivery`` sensor's (poke interval, time-out) in seconds; None for the others (their DAG has no such
    task)."""
    from rostering.delivery import CONFIRMED_LATER

    if profile.delivery.kind not in CONFIRMED_LATER:
        return None
    # from the profile and the typed schema's defaults: importing the transport (requests, authlib) at DAG parse
    # time would cost every parse of this file
    from rostering.vendors.schema import CERS_API_OPTIONS

    options = profile.delivery.options
    return tuple(float(options.get(name, CERS_API_OPTIONS[name][1])) for name in ("poll_interval_s", "poll_timeout_s"))


def _make_dag(profile: VendorProfile, doc_md: str | None):
    from airflow.sdk import Asset

    schedule = vendor_schedule(profile)
    delivered_asset = Asset(name=delivered_asset_name(profile.name))
    callbacks = notifications(profile)
    confirm_timing = _confirm_timing(profile)
    # the task whose success means the receiver holds the files: it carries the delivered Asset, and its return
    # value is the delivery (summary, cleanup)
    result_task = CONFIRM_TASK if confirm_timing else "deliver"

    def announce(run: Any, **extra: Any) -> None:
        """The delivered Asset's event: what a DAG waiting on this delivery (after:) builds from -- the same
        night's snapshot. Set by the task that has the outlet."""
        get_current_context()["outlet_events"][delivered_asset].extra = {
            "as_of_date": run.as_of.isoformat(), "school_year": run.school_year, **extra}

    @dag(
        dag_id=profile.dag_id,
        description=f"{profile.title}: SIS snapshot -> {profile.format} -> validate -> {profile.delivery.kind}",
        doc_md=doc_md,
        schedule=schedule,
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        catchup=False,
        max_active_runs=1,
        tags=list(profile.tags),
        params=run_params(profile),
        default_args={**DEFAULT_ARGS, **callbacks["task"]},
        render_template_as_native_obj=True,
        **callbacks["dag"],
    )
    def vendor_pipeline():
        @task
        def snapshot() -> dict:
            """The night's SIS snapshot for the run's as-of date, linked into the run folder (made and published
            first when the store has none for that date: a manual run for another date, a cron run before it)."""
            from rostering.orchestration.sis_source import final_source_error, snapshot_for_run
            from rostering.sis.sources.base import SourceError

            run, paths = _context(profile)
            try:
                return snapshot_for_run(paths, run)
            except SourceError as error:  # value-free by contract; the store has nothing new
                if final_source_error(error):
                    raise AirflowFailException(f"no snapshot for {run.as_of}: {error}") from None
                raise

        @task
        def build(extracted: dict) -> dict:
            """Transform the snapshot into the vendor's files."""
            from rostering import pipeline

            run, paths = _context(profile)
            try:
                return pipeline.build(profile, paths, run)
            except ValueError as error:  # configuration or params (an unknown profile, school, id source): final
                from rostering.errors import safe_text

                raise AirflowFailException(f"build refused: {safe_text(error)}") from None

        @task(retries=0)
        def validate(built: dict) -> dict:
            """Great Expectations suites + cross-file checks; a failure names file, row, column and rule."""
            from rostering import pipeline
            from rostering.validation.report import ValidationFailed

            _, paths = _context(profile)
            try:
                return pipeline.validate(profile, paths)
            except ValidationFailed as failure:
                report = write_html_report(profile, paths, get_current_context()["run_id"])
                raise AirflowFailException(f"{failure}\nRun report: {report}") from None

        @task
        def package(validated: dict) -> dict:
            """Zip (or copy) the validated files into the payload folder, with checksums."""
            from rostering import pipeline

            _, paths = _context(profile)
            return pipeline.package(profile, paths)

        @task(outlets=[] if confirm_timing else [delivered_asset])
        def deliver(packaged: dict) -> dict:
            """Deliver the payload (SFTP: temporary name, verify, rename; CERS: upload each file, then
            ``confirm_delivery`` waits for the imports). Skipped for dry runs and school subsets."""
            from rostering import pipeline

            run, paths = _context(profile)
            blocked = run.delivery_blocked_reason(replaces_everything=profile.replaces_everything)
            if blocked:  # this run's files are not what the receiver should hold: nothing downstream either
                outcome: dict[str, Any] = {"delivered": False, "reason": blocked}
                if not (run.schools and profile.replaces_everything):  # a subset would "delete" the other schools
                    guard = pipeline.change_guard(profile, paths, run, preview=True)  # what a real run would meet
                    if guard and guard.get("held") and not guard.get("approved_by_reason"):
                        outcome["would_be_held"] = guard["reasons"]
                        blocked += "; a real run would be HELD: " + "; ".join(guard["reasons"])
                paths.write_report("delivery.json", {**outcome, "reason": blocked})
                raise AirflowSkipException(blocked)
            skipped = pipeline.delivery_skip_reason(profile, packaged, run)
            if skipped:
                # The receiver already holds tonight's roster (unchanged, or sent earlier today): a DAG waiting on
                # this delivery (Derivita after ST Math) must still run, so the task succeeds and emits the event --
                # a skipped task emits none.
                paths.write_report("delivery.json", {"delivered": False, "reason": skipped})
                _note_night(profile, run, "unchanged")
                if not confirm_timing:  # else confirm_delivery, which has the outlet, says so
                    announce(run, delivered=False, reason=skipped)
                log.info("not sent: %s", skipped)
                return None
            from rostering.delivery.holds import GUARD, DeliveryHeld

            try:
                delivered = pipeline.deliver(profile, packaged, run_id=get_current_context()["run_id"], run=run)
                if not confirm_timing:  # else delivered once confirm_delivery says the receiver has it
                    _note_night(profile, run, "delivered")
                    announce(run)
                return delivered
            except DeliveryHeld as held:  # any hold, of any kind: pipeline.deliver wrote reports/held.json
                run_id = get_current_context()["run_id"]
                report = write_html_report(profile, paths, run_id)
                release = (f"Release: trigger this DAG with approve_changes_reason and approve_held_run_id={run_id} "
                           "(it is sent only if the data is still the same)" if held.kind == GUARD else
                           "Release: see the reason above, then trigger this DAG again")
                text = str(held) if str(held).lower().startswith("delivery held") else f"delivery HELD: {held}"
                raise AirflowFailException(
                    f"{text}\nBuilt files kept in {paths.root} for review. {release}; discard: the "
                    f"rostering_operations DAG (discard_held, run_id={run_id}).\nRun report: {report}"
                ) from None  # the alert finds the hold in held.json (and in __context__)
            except Exception as error:
                if pipeline.delivery_module(profile).is_transient(error):
                    raise  # retried with backoff
                from rostering.errors import safe_text

                # a library's message may quote what it was handed (a receiver's answer, a path): class only
                raise AirflowFailException(f"delivery failed permanently: {safe_text(error)}") from None

        def confirm_delivery(packaged: dict, delivered: dict | None):
            """Wait for the receiver to process what ``deliver`` uploaded (CERS: every import PROCESSED), in
            reschedule mode: each poke asks once and frees the worker slot until the next. Each processed file is
            recorded as accepted at once; the delivered Asset is emitted when all are. A failed import fails here."""
            from airflow.sdk import PokeReturnValue

            from rostering import pipeline

            run, paths = _context(profile)
            if not delivered:  # nothing sent: the receiver already holds these files (deliver says why)
                reason = json.loads((paths.reports / "delivery.json").read_text())["reason"]
                announce(run, delivered=False, reason=reason)
                return PokeReturnValue(is_done=True)
            try:
                confirmed = pipeline.confirm_delivery(profile, packaged, run_id=get_current_context()["run_id"],
                                                      run=run, paths=paths)
            except Exception as error:
                if pipeline.delivery_module(profile).is_transient(error):
                    raise  # retried with backoff
                from rostering.errors import safe_text

                # an import that failed, credentials, a refusal: the task log and the alert say which
                raise AirflowFailException(f"delivery failed permanently: {safe_text(error)}") from None
            if confirmed is None:
                return PokeReturnValue(is_done=False)
            _note_night(profile, run, "delivered")
            announce(run)
            return PokeReturnValue(is_done=True, xcom_value=confirmed)

        @task(trigger_rule="none_failed")
        def summary(extracted: dict, built: dict, packaged: dict) -> dict:
            """Counts per file, checksums and destination -- visible in the UI as this task's return value."""
            from rostering.summary import run_summary

            run, paths = _context(profile)
            delivered = get_current_context()["ti"].xcom_pull(task_ids=result_task)  # None when skipped
            skipped = paths.reports / "delivery.json"
            reason = json.loads(skipped.read_text())["reason"] if skipped.exists() and not delivered else None
            result = run_summary(profile, run, extracted, built, packaged, delivered, not_delivered_because=reason)
            paths.write_report("summary.json", result)
            # the page a person looks at (counts per school, changes, validation, checksums); its path is in the
            # summary shown in the UI and in the XCom "report_html"
            result["report"] = write_html_report(profile, paths, get_current_context()["run_id"], summary=result)
            paths.write_report("summary.json", result)
            get_current_context()["ti"].xcom_push(key="report_html", value=result["report"])
            return result

        extracted = snapshot()
        built = build(extracted)
        validated = validate(built)
        packaged = package(validated)
        @teardown
        def cleanup() -> list:
            """Always, even after a failure: remove the run's links to the SIS snapshot (the store keeps it until its
            retention); built files too once the delivery is recorded."""
            from rostering.operations import cleanup_run

            _, paths = _context(profile)
            delivered = bool(get_current_context()["ti"].xcom_pull(task_ids=result_task))
            return cleanup_run(paths, delivered=delivered)

        summarized = summary(extracted, built, packaged)
        delivered = deliver(packaged)
        if confirm_timing:  # the receiver confirms later: a sensor waits for it, holding no worker slot
            poke_interval_s, timeout_s = confirm_timing
            delivered = task.sensor(task_id=CONFIRM_TASK, mode="reschedule", poke_interval=poke_interval_s,
                                    timeout=timeout_s, outlets=[delivered_asset])(confirm_delivery)(
                packaged, delivered)
        delivered >> summarized
        extracted >> cleanup() << summarized

    return vendor_pipeline()
