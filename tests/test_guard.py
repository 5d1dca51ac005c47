"""The mass-deprovisioning guard: hold deliveries that would delete or change too much, per entity and per school."""
from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from rostering import pipeline
from rostering.delivery.guard import DeliveryHeld, compare, payload_reader
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
        (pd.concat([students(100), students(50, start=100)]), False, None),  # additions never hold
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
    paths = pipeline.RunPaths(tmp_path / name)
    vendor.build(info, load_profile("stmath"), paths.build)
    payload = vendor.payload(load_profile("stmath"), paths.build, paths.payload)
    return paths, payload


@pytest.fixture()
def delivered_baseline(tmp_path, monkeypatch):
    monkeypatch.setenv("ROSTERING_STATE_DIR", str(tmp_path / "state"))
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


def test_an_extract_missing_a_school_is_held_and_can_be_approved(tmp_path, delivered_baseline):
    paths, _ = build(tmp_path, "broken", "DELETE FROM school_enrollment WHERE school_id = 'S2'")
    with pytest.raises(DeliveryHeld) as held:
        pipeline.change_guard(load_profile("stmath"), paths, RUN)
    assert held.value.diff.schools["sch-S2"] == {"before": 4, "after": 0}
    assert "students" in str(held.value) and "José" not in str(held.value)
    assert json.loads((paths.reports / "guard.json").read_text())["held"] is True

    approved = RunOptions.from_params({"approve_changes_reason": "S2 closed for renovation"},
                                      run_after=dt.datetime(2026, 11, 23, 12, tzinfo=dt.timezone.utc), timezone="UTC")
    report = pipeline.change_guard(load_profile("stmath"), paths, approved)
    assert report["held"] is True and report["approved_by_reason"] == "S2 closed for renovation"


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
