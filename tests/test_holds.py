"""One notion of a held delivery (rostering.delivery.holds): any format raises DeliveryHeld(reason, kind); the
pipeline writes the one record reports/held.json; the deliver task fails on exactly that class (no name matching);
the alert mail says HELD from the record or the class, never from words in a message."""
from __future__ import annotations

import datetime as dt
import json
import types

import pytest

from rostering.pipeline import RunPaths

RUN_ID = "manual__held"
# a hold whose reason says nothing like "held": it is a hold because of its class, not its words
ODD_REASON = "the receiver's term is closed until 2027-01-04; it takes files again then"


@pytest.fixture()
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("ROSTERING_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ROSTERING_WORK_DIR", str(tmp_path / "work"))
    return tmp_path


def _fake_format(monkeypatch, error: Exception):
    """ST Math's format, with a before_delivery hook that raises ``error`` (nothing is built or sent)."""
    from rostering import pipeline

    real = pipeline.format_module

    def before_delivery(profile, paths, run):
        raise error

    def format_module(profile):
        module = types.SimpleNamespace(**vars(real(profile)))
        module.before_delivery = before_delivery
        return module

    monkeypatch.setattr(pipeline, "format_module", format_module)


def _deliver_task(monkeypatch, profile):
    """The vendor DAG's real ``deliver`` task callable, with the task context of run RUN_ID."""
    from rostering.orchestration import dag_factory

    dag = dag_factory.build_vendor_dag(profile.name)
    now = dt.datetime.now(dt.timezone.utc)
    context = {"dag_run": types.SimpleNamespace(dag_id=profile.dag_id, run_id=RUN_ID, run_after=now),
               "params": {}, "run_id": RUN_ID, "triggering_asset_events": None}
    monkeypatch.setattr(dag_factory, "get_current_context", lambda: context)
    return dag.get_task("deliver").python_callable


def test_a_format_s_own_hold_with_an_unusual_message_is_recorded_failed_and_mailed_as_held(state, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from rostering.alerts import failure_mail
    from rostering.delivery.holds import DeliveryHeld, held_error, read_hold
    from rostering.vendors.profile import load_profile

    profile = load_profile("stmath")
    _fake_format(monkeypatch, DeliveryHeld(ODD_REASON, "calendar"))
    deliver = _deliver_task(monkeypatch, profile)
    with pytest.raises(AirflowFailException) as failed:
        deliver({"files": []})
    assert str(failed.value).startswith(f"delivery HELD: {ODD_REASON}")
    assert "discard_held" in str(failed.value)
    paths = RunPaths.for_run(profile.dag_id, RUN_ID)
    record = json.loads((paths.reports / "held.json").read_text())
    assert {k: record[k] for k in ("held", "kind", "reason", "run_id", "fingerprint")} == {
        "held": True, "kind": "calendar", "reason": ODD_REASON, "run_id": RUN_ID, "fingerprint": None}
    assert read_hold(paths) == record

    subject, body = failure_mail(title=profile.title, dag_id=profile.dag_id, run_id=RUN_ID, task_id="deliver",
                                 error=failed.value)
    assert "delivery HELD, nothing sent" in subject and "discard_held" in body and "calendar" in body
    # the class alone says HELD too: the exception the task raised while handling it, or the hold itself
    (paths.reports / "held.json").unlink()
    assert held_error(failed.value).kind == "calendar"
    for error in (failed.value, DeliveryHeld(ODD_REASON, "calendar")):
        subject, _ = failure_mail(title=profile.title, dag_id=profile.dag_id, run_id=RUN_ID, task_id="deliver",
                                  error=error)
        assert "delivery HELD" in subject


def test_the_deliver_task_does_not_take_an_exception_for_a_hold_by_its_name(state, monkeypatch):
    """An exception that merely looks like a hold (named ...DeliveryHeld, says "delivery held") is a failure: no
    held.json, no HELD mail, nothing a person could approve or discard."""
    from airflow.sdk.exceptions import AirflowFailException

    from rostering.alerts import failure_mail
    from rostering.vendors.profile import load_profile

    class VendorDeliveryHeld(Exception):
        pass

    profile = load_profile("stmath")
    _fake_format(monkeypatch, VendorDeliveryHeld("delivery held: not really"))
    deliver = _deliver_task(monkeypatch, profile)
    with pytest.raises(AirflowFailException) as failed:
        deliver({"files": []})
    assert str(failed.value).startswith("delivery failed permanently")
    paths = RunPaths.for_run(profile.dag_id, RUN_ID)
    assert not (paths.reports / "held.json").exists()
    subject, _ = failure_mail(title=profile.title, dag_id=profile.dag_id, run_id=RUN_ID, task_id="deliver",
                              error=failed.value)
    assert "HELD" not in subject and "run FAILED at deliver" in subject


def test_a_guard_hold_records_its_fingerprint(state):
    from rostering.delivery.holds import DeliveryHeld, clear_hold, read_hold, record_hold

    paths = RunPaths.for_run("stmath_oneroster", RUN_ID)
    paths.write_report("guard.json", {"held": True, "fingerprint": "abc123", "reasons": ["x"]})
    diff = types.SimpleNamespace(reasons=["students: 40.0% deleted (limit 10%)"])
    record = record_hold(paths, DeliveryHeld("delivery HELD: ...", "guard", diff=diff), RUN_ID)
    assert record["fingerprint"] == "abc123" and record["reason"] == "students: 40.0% deleted (limit 10%)"
    assert record["kind"] == "guard"
    assert read_hold(paths) == record
    clear_hold(paths)  # a later attempt of the run passed: the record goes, discard_held refuses the run
    assert read_hold(paths) is None
