"""The mass-deprovisioning guard: hold deliveries that would delete or change too much, per entity and per school."""
from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from rostering import operations, pipeline
from rostering.delivery.guard import compare, payload_reader
from rostering.delivery.holds import DeliveryHeld, record_hold
from rostering.delivery.records import last_good, record_delivery
from rostering.oneroster import vendor
from rostering.run_options import RunOptions
from rostering.vendors.profile import load_profile
from test_oneroster_vendors import snapshot


def students(n: int, school: str = "sch-1", changed: int = 0, start: int = 0) -> pd.DataFrame:
    keys = [f"s{i}" for i in range(start, start + n)]
    return pd.DataFrame({"key": keys, "school": school,
                         "fingerprint": [1 if i < changed else 0 for i in range(n)]}).astype(
        {"key": "string", "school": "string", "fingerprint": "uint64"})


@pytest.mark.parametrize(
    "after, held, reason",
    [
        (students(91), False, None),                          # 9 % deleted: passes
        (students(89), True, "11.0% deleted"),                # over 10 %
        (students(100, changed=76), True, "76.0% updated"),   # over 75 % updated
        (students(100, changed=75), False, None),
        (students(0).iloc[0:0], True, "dropped to zero"),
        (pd.concat([students(100), students(25, start=100)]), False, None),  # 25 % added: passes
        (pd.concat([students(100), students(26, start=100)]), True, "26.0% added"),  # over 25 %
    ],
)
def test_thresholds(after, held, reason):
    diff = compare({"students": students(100)}, {"students": after})
    assert diff.held is held
    if reason:
        assert any(reason in r for r in diff.reasons), diff.reasons


def test_a_school_losing_all_its_students_holds_even_under_the_percentage():
    before = pd.concat([students(95, "sch-big"), students(5, "sch-small", start=95)])
    diff = compare({"students": before}, {"students": students(95, "sch-big")})
    assert diff.held and "1 school(s) that had students now have none" in diff.reasons
    assert diff.schools["sch-small"] == {"before": 5, "after": 0}


def test_limits_are_configurable():
    assert not compare({"s": students(100)}, {"s": students(80)}, {"max_delete_pct": 25}).held


def test_summary_holds_counts_only():
    diff = compare({"students": students(100)}, {"students": students(50)})
    text = diff.summary() + json.dumps(diff.to_dict())
    assert "s42" not in text and "50" in text


# -- on real builds of the hand-made district ------------------------------------------------------------------------


def build(tmp_path, name, *updates):
    info = snapshot(tmp_path / name, *updates)
    paths = pipeline.RunPaths.for_run("stmath_oneroster", name)  # where an approval finds the held run
    vendor.build(info, load_profile("stmath"), paths.build)
    payload = vendor.payload(load_profile("stmath"), paths.build, paths.payload)
    return paths, payload


@pytest.fixture()
def delivered_baseline(tmp_path, monkeypatch):
    monkeypatch.setenv("ROSTERING_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ROSTERING_WORK_DIR", str(tmp_path / "work"))
    paths, payload = build(tmp_path, "baseline")
    record_delivery(vendor="stmath", destination="sftp://x/~", run_id="r1", as_of_date="2026-11-23",
                    files=[__import__("pathlib").Path(payload[0].path)], checksums={"OneRoster.zip": payload[0].sha256})
    return paths


RUN = RunOptions.from_params({}, run_after=dt.datetime(2026, 11, 23, 12, tzinfo=dt.timezone.utc), timezone="UTC")


def test_the_same_data_passes_and_the_diff_is_written(tmp_path, delivered_baseline):
    paths, _ = build(tmp_path, "same")
    report = pipeline.change_guard(load_profile("stmath"), paths, RUN)
    assert report["held"] is False
    assert all(e["added"] == e["deleted"] == e["updated"] == 0 for e in report["entities"])
    assert json.loads((paths.reports / "guard.json").read_text())["held"] is False


def approving(held_run_id: str, reason: str = "S2 closed for renovation") -> RunOptions:
    return RunOptions.from_params({"approve_changes_reason": reason, "approve_held_run_id": held_run_id},
                                  run_after=dt.datetime(2026, 11, 23, 12, tzinfo=dt.timezone.utc), timezone="UTC")


def test_an_extract_missing_a_school_is_held_and_can_be_approved(tmp_path, delivered_baseline):
    paths, _ = build(tmp_path, "broken", "DELETE FROM school_enrollment WHERE school_id = 'S2'")
    with pytest.raises(DeliveryHeld) as held:
        pipeline.change_guard(load_profile("stmath"), paths, RUN)
    assert held.value.diff.schools["sch-S2"] == {"before": 4, "after": 0}
    assert "students" in str(held.value) and "José" not in str(held.value)
    assert json.loads((paths.reports / "guard.json").read_text())["held"] is True

    # the next run builds the same files against the same last delivery: the approval of "broken" releases it
    again, _ = build(tmp_path, "approved", "DELETE FROM school_enrollment WHERE school_id = 'S2'")
    report = pipeline.change_guard(load_profile("stmath"), again, approving("broken"))
    assert report["held"] is True and report["approved_by_reason"] == "S2 closed for renovation"
    assert report["approved_held_run"] == "broken"


def test_an_approval_is_bound_to_the_held_runs_data(tmp_path, delivered_baseline):
    """Not a blank cheque: an approval releases only the change a person looked at."""
    paths, _ = build(tmp_path, "broken", "DELETE FROM school_enrollment WHERE school_id = 'S2'")
    with pytest.raises(DeliveryHeld) as first:
        pipeline.change_guard(load_profile("stmath"), paths, RUN)
    assert first.value.kind == "guard" and first.value.diff.reasons

    # the SIS lost another school since: the approval of "broken" does not cover this data
    worse, _ = build(tmp_path, "worse", "DELETE FROM school_enrollment WHERE school_id IN ('S2', 'S1')")
    with pytest.raises(DeliveryHeld) as held:
        pipeline.change_guard(load_profile("stmath"), worse, approving("broken"))
    assert "approval not applied: the data changed since run broken was held" in str(held.value)
    assert json.loads((worse.reports / "guard.json").read_text())["approved_by_reason"] is None

    # a reason alone, or naming a run that was never held, releases nothing
    for run_id, refusal in (("", "needs approve_held_run_id"), ("nope", "run nope of stmath_oneroster is not a held")):
        with pytest.raises(DeliveryHeld, match=refusal):
            pipeline.change_guard(load_profile("stmath"), worse, approving(run_id))

    # a discarded run's approval is void: the hold as pipeline.deliver records it, discarded by the operations DAG
    record = record_hold(paths, first.value, "broken")
    assert record["kind"] == "guard" and record["fingerprint"] == json.loads(
        (paths.reports / "guard.json").read_text())["fingerprint"]
    operations.discard_held(load_profile("stmath"), run_id="broken", reason="the SIS lost S2 by mistake")
    same, _ = build(tmp_path, "same-as-broken", "DELETE FROM school_enrollment WHERE school_id = 'S2'")
    with pytest.raises(DeliveryHeld, match="run broken was discarded"):
        pipeline.change_guard(load_profile("stmath"), same, approving("broken"))


def test_the_baseline_is_read_from_the_kept_zip(tmp_path, delivered_baseline):
    record = last_good("stmath")
    read = payload_reader([record.path("OneRoster.zip")])
    assert len(read("users.csv")) == 12 and read("nope.csv").empty


def test_derivita_holds_on_lost_students_but_not_on_flag_flips(tmp_path):
    from rostering.subgroups import vendor as subgroups
    from rostering.subgroups.config import subgroup_config

    profile = load_profile("derivita")
    name = subgroup_config(profile).file_name

    def entities(folder, ids, flag):
        folder.mkdir()
        (folder / name).write_text("student_id,ell\r\n" + "".join(f'"{i}","{flag}"\r\n' for i in ids))
        return subgroups.guard_entities(payload_reader([folder / name]), profile)

    before = entities(tmp_path / "a", range(100), "n")
    assert not compare(before, entities(tmp_path / "b", range(100), "y")).held  # every flag flipped: fine
    assert compare(before, entities(tmp_path / "c", range(80), "n")).held  # 20 % of students gone


# -- additions, and losses that compound night after night ---------------------------------------------------------

def test_ten_times_the_students_is_held():
    diff = compare({"students": students(1_000)}, {"students": students(10_000)})
    assert diff.held and "students: 900.0% added (limit 25%)" in diff.reasons


def test_unknown_guard_limits_are_refused():
    with pytest.raises(ValueError, match=r"unknown limit\(s\) \['max_delete_pc'\]"):
        compare({"s": students(10)}, {"s": students(10)}, {"max_delete_pc": 50})


DAY0 = dt.datetime(2026, 11, 16, 6, tzinfo=dt.timezone.utc)


def subgroup_night(tmp_path, name: str, ids) -> pipeline.RunPaths:
    """A Derivita build of the given student ids (the guard counts its students by id)."""
    from rostering.subgroups.config import subgroup_config

    paths = pipeline.RunPaths.for_run("derivita_subgroups", name)
    paths.build.mkdir(parents=True)
    target = paths.build / subgroup_config(load_profile("derivita")).file_name
    target.write_text("student_id,ell\r\n" + "".join(f'"{i}","n"\r\n' for i in ids))
    return paths


def deliver_night(tmp_path, night: int, ids, note: str = "") -> None:
    paths = subgroup_night(tmp_path, f"night{night}", ids)
    [built] = paths.build.glob("*.csv")
    record_delivery(vendor="derivita", destination="sftp://x/~", run_id=f"night{night}", as_of_date="2026-11-16",
                    files=[built], checksums={built.name: "0" * 64}, now=DAY0 + dt.timedelta(days=night), note=note)


def test_nightly_losses_that_compound_are_held_against_the_rolling_window(tmp_path, monkeypatch):
    """9.9 % a night passes the nightly limit; three nights of it is 27 % of the district since the window began."""
    monkeypatch.setenv("ROSTERING_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ROSTERING_WORK_DIR", str(tmp_path / "work"))
    profile = load_profile("derivita")
    counts = [1000, 901, 812, 732]
    for night, count in enumerate(counts[:3]):
        deliver_night(tmp_path, night, range(count))
    tonight = subgroup_night(tmp_path, "night3", range(counts[3]))
    with pytest.raises(DeliveryHeld) as held:
        pipeline.change_guard(profile, tonight, RUN, now=DAY0 + dt.timedelta(days=3))
    assert held.value.diff.reasons == [
        "students: 26.8% deleted since the delivery of 2026-11-16T06:00:00+00:00 (7-day limit 20%)"]
    report = json.loads((tonight.reports / "guard.json").read_text())
    assert report["entities"][0]["deleted_pct"] < 10  # the nightly comparison alone passes
    assert report["window"]["entities"][0]["before"] == 1000

    # a week on, nights 0 and 1 have left the window: night 2, the last delivery, is all it holds
    assert pipeline.change_guard(profile, tonight, RUN, now=DAY0 + dt.timedelta(days=8, hours=1))["held"] is False


def test_an_approved_delivery_starts_the_window_again(tmp_path, monkeypatch):
    monkeypatch.setenv("ROSTERING_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ROSTERING_WORK_DIR", str(tmp_path / "work"))
    deliver_night(tmp_path, 0, range(1000))
    deliver_night(tmp_path, 1, range(700), note="changes approved (held run night1): two schools left the program")
    tonight = subgroup_night(tmp_path, "night2", range(650))  # 7 % fewer than the approved delivery
    report = pipeline.change_guard(load_profile("derivita"), tonight, RUN, now=DAY0 + dt.timedelta(days=2))
    assert report["held"] is False and "window" not in report


# -- a roster built for another date is not delivered by accident ---------------------------------------------------

def test_a_run_for_another_date_builds_but_does_not_deliver_without_a_reason():
    tonight = dt.datetime(2026, 11, 24, 5, tzinfo=dt.timezone.utc)
    for as_of in ("2026-11-02", "2026-12-25"):  # a backfill, a future date
        run = RunOptions.from_params({"as_of_date": as_of}, run_after=tonight, timezone="America/Los_Angeles")
        assert run.own_date == dt.date(2026, 11, 23)
        assert run.delivery_blocked_reason() == (
            f"built as of {as_of}, not this run's date (2026-11-23): the receiver would replace today's roster with "
            "it, not delivered (deliver_other_date_reason sends it anyway)")
        forced = RunOptions.from_params({"as_of_date": as_of, "deliver_other_date_reason": "vendor asked for a resend"},
                                        run_after=tonight, timezone="America/Los_Angeles")
        assert forced.delivery_blocked_reason() is None
        assert forced.approval_note(approved=False) == (
            f"delivered as of {as_of} on 2026-11-23: vendor asked for a resend")
    # an Asset-triggered run is for the night its event names, even when it starts after midnight
    late = RunOptions.from_params({}, run_after=tonight + dt.timedelta(hours=9), timezone="America/Los_Angeles",
                                  own_date=dt.date(2026, 11, 23))
    assert late.as_of == dt.date(2026, 11, 23) and late.delivery_blocked_reason() is None
