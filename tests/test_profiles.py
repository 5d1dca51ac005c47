"""Vendor profiles are checked against a typed model when they load (DAG parse time): a typo'd key, a missing one or
a value of the wrong type fails with one error naming the file, the key and the fix -- never a silent default, a
bare KeyError or a pydantic dump."""
from __future__ import annotations

import dataclasses
import shutil
import types
import typing
from pathlib import Path

import pytest
import yaml

from rostering.vendors.profile import VendorProfile, load_profile

REPO = Path(__file__).resolve().parents[1]
PROFILES = sorted((REPO / "config" / "vendors").glob("*.yaml"))


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    """A copy of the project's config/ under ROSTERING_HOME, for profiles edited by a test."""
    shutil.copytree(REPO / "config", tmp_path / "config")
    monkeypatch.setenv("ROSTERING_HOME", str(tmp_path))
    return tmp_path


def edit(home: Path, vendor: str, old: str, new: str) -> None:
    path = home / "config" / "vendors" / f"{vendor}.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def problems(vendor: str) -> list[str]:
    """The lines of the error loading ``vendor`` raises (it must be our ProfileError, a ValueError)."""
    with pytest.raises(ValueError) as info:
        load_profile(vendor)
    assert type(info.value).__name__ == "ProfileError", repr(info.value)
    text = str(info.value)
    assert "pydantic" not in text and "validation error" not in text.lower() and "Input should" not in text
    return text.splitlines()


def test_a_typo_in_a_top_level_key_fails_and_says_which_key_was_meant(home):
    edit(home, "stmath", "schedule: snapshot", "schedul: snapshot")  # was: an unscheduled DAG
    assert problems("stmath") == ["config/vendors/stmath.yaml: schedul: unknown key - did you mean schedule?"]


def test_a_typo_in_a_delivery_key_fails(home):
    edit(home, "stmath", "max_per_day: 1", "max_per_dya: 1")  # was: ignored, so no once-a-day limit
    assert problems("stmath") == ["config/vendors/stmath.yaml: delivery.max_per_dya: unknown key - did you mean "
                                  "max_per_day?"]


def test_a_typo_in_a_format_key_fails(home):
    edit(home, "stmath", "zip_name: OneRoster.zip", "zip_nam: OneRoster.zip")  # was: plain files, not the zip
    assert problems("stmath") == ["config/vendors/stmath.yaml: oneroster.zip_nam: unknown key - did you mean "
                                  "zip_name?"]


def test_a_missing_delivery_kind_is_named_with_its_choices(home):
    edit(home, "stmath", "  kind: sftp\n", "")  # was: KeyError: 'kind', naming no file
    assert problems("stmath") == ["config/vendors/stmath.yaml: delivery.kind: required - one of sftp, cers_api"]


def test_values_of_the_wrong_type_fail_and_every_problem_of_the_file_is_listed(home):
    edit(home, "stmath", "max_per_day: 1", 'max_per_day: "one"')
    edit(home, "stmath", "manifest: true", 'manifest: "yes please"')
    assert problems("stmath") == [
        "config/vendors/stmath.yaml: delivery.max_per_day: must be a whole number, got 'one'",
        "config/vendors/stmath.yaml: oneroster.manifest: must be true or false, got 'yes please'",
    ]


def test_an_unknown_change_guard_limit_fails_at_parse(home):
    guard = "\n  guard: {max_delete_pc: 5, max_add_pct: 30}"
    edit(home, "stmath", "  skip_unchanged: true", "  skip_unchanged: true" + guard)
    assert problems("stmath") == ["config/vendors/stmath.yaml: delivery.guard.max_delete_pc: unknown key - did you "
                                  "mean max_delete_pct?"]
    edit(home, "stmath", "max_delete_pc: 5", "max_delete_pct: 5")
    assert load_profile("stmath").delivery.options["guard"] == {"max_delete_pct": 5, "max_add_pct": 30}


def test_times_are_the_districts_and_a_profile_cannot_set_its_own_timezone(home):
    edit(home, "../sis", "timezone: America/Los_Angeles", "timezone: America/Chicago")
    assert {load_profile(p.stem).timezone for p in PROFILES} == {"America/Chicago"}  # one setting: config/sis.yaml

    edit(home, "literably", "schedule: snapshot\n", "schedule: snapshot\ntimezone: America/Denver\n")
    [line] = problems("literably")
    assert line.startswith("config/vendors/literably.yaml: timezone: ") and "set once in config/sis.yaml" in line


def test_a_section_for_another_format_fails(home):
    edit(home, "stmath", "\ndelivery:", "\ncers:\n  consolidate: true\n\ndelivery:")
    assert problems("stmath") == ["config/vendors/stmath.yaml: cers: a section for format cers, but this profile's "
                                  "format is 'oneroster' - remove it (or fix format:)"]


def test_messages_name_the_file_and_key_and_suggest_the_fix_for_every_section(home):
    edit(home, "literably", "student_source: local_id", "student_source: sis_id")
    edit(home, "literably", "metadata.literably.ELL: ell", "metadata.literably.ELL: el")
    edit(home, "literably", "{mode: connection", "{mode: conection")
    edit(home, "literably", "on_success: false", "on_succes: false")
    assert problems("literably") == [
        "config/vendors/literably.yaml: notify.on_succes: unknown key - did you mean on_success?",
        "config/vendors/literably.yaml: oneroster.user_ids.student_source: must be one of local_id, ssid, got "
        "'sis_id' - did you mean ssid?",
        "config/vendors/literably.yaml: oneroster.staff_password.mode: must be one of connection, sis, got "
        "'conection' - did you mean connection?",
        "config/vendors/literably.yaml: oneroster.extensions[\"users.csv\"][\"metadata.literably.ELL\"]: unknown "
        "source 'el' - did you mean ell?",
    ]
    edit(home, "stmath", 'grades: []', 'grades: [01, "3", KG]')
    edit(home, "stmath", "licensed: []", "licensed: [GR6MS]")
    edit(home, "stmath", 'schedule: snapshot', 'schedule: snapshots')
    assert problems("stmath") == [
        "config/vendors/stmath.yaml: schedule: must be snapshot, a cron expression of five fields (\"30 2 * * *\", "
        "district time) or left out (on demand only), got 'snapshots' - did you mean snapshot?",
        "config/vendors/stmath.yaml: oneroster.grades[0]: must be a grade as quoted text (PK, TK, KG, 01, 02, 03, 04, "
        "05, 06, 07, 08, 09, 10, 11, 12), got the number 1 (YAML reads unquoted 01 as 1): write \"01\"",
        "config/vendors/stmath.yaml: oneroster.grades[1]: grades have two digits: write \"03\", got '3'",
        "config/vendors/stmath.yaml: oneroster.products.licensed[0]: 'GR6MS' is not a product of by_grade or "
        "sixth_grade_by_school - did you mean GR6MSS?",
    ]
    edit(home, "cers", "max_attempts: 5", "max_attempts: 0")
    edit(home, "cers", "poll_interval_s: 10", 'poll_interval_s: "10s"')
    edit(home, "cers", "type: boolean", "typ: boolean")
    assert problems("cers") == [
        "config/vendors/cers.yaml: params.consolidate.typ: unknown key - did you mean type?",
        "config/vendors/cers.yaml: delivery.max_attempts: must be at least 1, got 0",
        "config/vendors/cers.yaml: delivery.poll_interval_s: must be a number, got '10s'",
    ]
    edit(home, "derivita", "after: stmath", "after: stmth")
    edit(home, "derivita", "file_name: student_subgroups.csv", "file_nam: student_subgroups.csv")
    lines = problems("derivita")
    assert lines[0] == "config/vendors/derivita.yaml: after: no vendor profile 'stmth' in config/vendors/ - did you " \
                       "mean stmath?"
    assert lines[-1].startswith("config/vendors/derivita.yaml: subgroups: unknown setting(s) ['file_nam']")


def test_a_missing_format_section_a_key_set_twice_and_a_misnamed_file_fail(home):
    text = (home / "config" / "vendors" / "stmath.yaml").read_text()
    edit(home, "stmath", "\noneroster:", "\nunused:")
    assert problems("stmath") == [
        "config/vendors/stmath.yaml: unused: unknown key - allowed: name, title, format, dag_id, schedule, after, "
        "tags, replaces_everything, params, notify, delivery, oneroster, cers, subgroups",
        "config/vendors/stmath.yaml: oneroster: required for format: oneroster (with at least files)",
    ]
    (home / "config" / "vendors" / "stmath.yaml").write_text(text + "\nschedule: \"30 2 * * *\"\n")
    [line] = problems("stmath")
    assert line.startswith("config/vendors/stmath.yaml: line ")
    assert line.endswith(": schedule is set twice (first on line 10) - keep one")
    (home / "config" / "vendors" / "stmath.yaml").write_text(text.replace("name: stmath", "name: st_math"))
    assert problems("stmath") == ["config/vendors/stmath.yaml: name: must be the file's name, stmath, got 'st_math'"]


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_every_profile_in_config_vendors_loads_through_the_model(path):
    from rostering.sis.config import load_sis_config
    from rostering.vendors.schema import validate_profile

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    model, found = validate_profile(data, file_name=path.stem, vendors=tuple(p.stem for p in PROFILES))
    assert found == [] and model is not None
    profile = load_profile(path.stem)
    assert profile.timezone == load_sis_config().timezone and "timezone" not in data
    assert profile.options == (data.get(profile.format) or {})  # the rest of the code reads the section as written
    assert (profile.delivery.kind, profile.delivery.conn_id) == (data["delivery"]["kind"], data["delivery"]["conn_id"])


def test_from_dict_checks_too_and_names_the_profile():
    data = {"name": "x", "title": "X", "format": "oneroster", "dag_id": "x", "oneroster": {"files": ["orgs.csv"]},
            "delivery": {"kind": "sftp", "conn_id": "x_sftp", "skip_unchanged": "yes"}}
    with pytest.raises(ValueError, match=r"^profile 'x': delivery.skip_unchanged: must be true or false, got 'yes'$"):
        VendorProfile.from_dict(data)


# -- the model restates what modules that import pandas define (it runs at DAG parse): kept in step here ------------

def test_the_guard_limits_are_the_guards():
    from rostering.delivery.guard import DEFAULTS
    from rostering.vendors.schema import GUARD_DEFAULTS, GuardLimits

    assert GUARD_DEFAULTS == DEFAULTS and list(GuardLimits.model_fields) == list(DEFAULTS)


def test_the_cers_api_delivery_model_has_exactly_the_fields_of_cers_api_options():
    from rostering.delivery.cers_api import CersApiOptions
    from rostering.vendors.schema import CERS_API_OPTIONS, CersApiDelivery

    def types_of(tp) -> set:  # str | None -> {str, NoneType}; Annotated[float, ...] -> {float}
        if typing.get_origin(tp) is typing.Annotated:
            return types_of(typing.get_args(tp)[0])
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            return set().union(*(types_of(t) for t in typing.get_args(tp)))
        return {tp}

    hints = typing.get_type_hints(CersApiOptions)
    derived = {f.name: (types_of(hints[f.name]), f.default) for f in dataclasses.fields(CersApiOptions)}
    assert {name: (types_of(kind), default) for name, (kind, default) in CERS_API_OPTIONS.items()} == derived
    assert list(CersApiDelivery.model_fields) == ["kind", "conn_id", "guard", *derived]


def test_the_oneroster_model_matches_the_builder():
    from rostering.oneroster.build import EXTENSION_SOURCES, UserIdOptions
    from rostering.oneroster.options import EXTENSION_SOURCES as RESTATED, UserIds

    assert RESTATED == EXTENSION_SOURCES
    assert {f.name: f.default for f in dataclasses.fields(UserIdOptions)} == \
        {name: info.default for name, info in UserIds.model_fields.items()}


def test_the_formats_and_delivery_kinds_are_the_pipelines():
    from rostering.pipeline import DELIVERIES, FORMATS
    from rostering.vendors import schema

    assert schema.FORMATS == tuple(FORMATS) and schema.DELIVERY_KINDS == tuple(DELIVERIES)
    assert set(schema.SECTIONS) == set(FORMATS)
