import datetime as dt

import pytest

from rostering.run_options import RunOptions

LATE_EVENING_UTC = dt.datetime(2026, 11, 24, 5, 0, tzinfo=dt.timezone.utc)  # still the 23rd in California


def test_as_of_defaults_to_the_run_date_in_the_district_timezone():
    run = RunOptions.from_params({}, run_after=LATE_EVENING_UTC, timezone="America/Los_Angeles")
    assert run.as_of == dt.date(2026, 11, 23)
    assert run.school_year == 2027
    assert run.delivery_blocked_reason() is None


def test_as_of_param_wins_and_sets_the_school_year():
    run = RunOptions.from_params({"as_of_date": "2026-05-01"}, run_after=LATE_EVENING_UTC, timezone="UTC")
    assert (run.as_of, run.school_year) == (dt.date(2026, 5, 1), 2026)


def test_bad_as_of_is_a_clear_error():
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        RunOptions.from_params({"as_of_date": "11/23/2026"}, run_after=LATE_EVENING_UTC, timezone="UTC")


def test_dry_run_and_school_subsets_never_deliver():
    dry = RunOptions.from_params({"dry_run": True}, run_after=LATE_EVENING_UTC, timezone="UTC")
    subset = RunOptions.from_params({"schools": [" 101 ", "101", ""]}, run_after=LATE_EVENING_UTC, timezone="UTC")
    assert dry.delivery_blocked_reason().startswith("dry run")
    assert subset.schools == ("101",)
    assert "deprovision" in subset.delivery_blocked_reason()
