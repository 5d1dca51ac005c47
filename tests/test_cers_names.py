"""Where CERS group names are built (rostering.cers.group_names): deterministic, safe, unique, within the limit."""
from __future__ import annotations

import pandas as pd
import pytest

from rostering.cers.group_names import assign_names, fit, fold, identity_hash


def groups(*rows: dict, **common) -> pd.DataFrame:
    base = {"school_id": "S1", "part": 1, "prefix": "", "school_number": "101", "school_year": "2027"}
    return pd.DataFrame([{**base, **common, "identity": f"g{i}", **row} for i, row in enumerate(rows)])


def test_fold_keeps_ascii_letters_and_digits_only():
    folded = fold(pd.Series(["O'Neil", "Núñez", "Smith, Jr.", "李", "Brzęczyszczykiewicz", None, "2(A)"]))
    assert folded.tolist() == ["ONeil", "Nunez", "SmithJr", "", "Brzeczyszczykiewicz", "", "2A"]


def test_powerschool_pattern_is_powerschools_concatenation():
    frame = groups({"pattern": "powerschool", "last_name": "Li", "first_name": "Bo", "class_expression": "2(A)",
                    "course_number": "M600", "section_number": "1"})
    assert assign_names(frame, max_length=20).tolist() == ["2027LiB2AM6001"]


def test_aeries_patterns_start_with_the_school_number_and_end_with_the_part():
    frame = groups(
        {"pattern": "teacher_period", "last_name": "Li", "first_name": "Bo", "period_code": "2"},
        {"pattern": "teacher_section", "last_name": "Li", "first_name": "Bo", "section_number": "17"},
        {"pattern": "teacher_course_title", "last_name": "Li", "first_name": "Bo", "course_title": "Math 6"},
        {"pattern": "teacher_period", "last_name": "Li", "first_name": "Bo", "period_code": "2", "part": 2,
         "identity": "g0"},
    )
    assert assign_names(frame.assign(school_number="201"), max_length=20).tolist() == [
        "201LiBo21", "201LiBo171", "201LiBoMath61", "201LiBo22"]


def test_long_names_shrink_the_teacher_name_first_and_keep_the_part_number():
    frame = groups(*[{"pattern": "teacher_course_title", "last_name": "Kowalczykowska-Brzęczyszczykiewicz",
                      "first_name": "Marta", "course_title": "English Language Arts 6", "part": part,
                      "identity": "g"} for part in (1, 2, 10)])
    names = assign_names(frame, max_length=20).tolist()
    # first name to an initial, course title to 8, last name down to what is left; "10" costs one more character
    assert names == ["101KowalczMEnglishL1", "101KowalczMEnglishL2", "101KowalcMEnglishL10"]
    assert all(len(n) <= 20 for n in names)


def test_truncation_never_makes_two_groups_collide():
    """Two teachers whose names only differ after the cut, same period: the natural names would be equal."""
    frame = groups(
        {"pattern": "teacher_period", "last_name": "Vanderbiltworthington", "first_name": "Al", "period_code": "3",
         "identity": "profile|class|S1|T1|3"},
        {"pattern": "teacher_period", "last_name": "Vanderbiltworthingham", "first_name": "Al", "period_code": "3",
         "identity": "profile|class|S1|T2|3"},
        {"pattern": "teacher_period", "last_name": "Short", "first_name": "Al", "period_code": "3",
         "identity": "profile|class|S1|T3|3"},
    )
    names = assign_names(frame, max_length=16).tolist()
    assert len(set(n.lower() for n in names)) == 3 and all(len(n) <= 16 for n in names)
    assert names[2] == "101ShortAl31"  # not involved in the collision: its natural name
    # natural names would both be "101VanderbiltA31"; both get 4 characters less + the hash of their identity
    assert names[0] == "101VanderA3" + identity_hash("profile|class|S1|T1|3") + "1"
    assert names[1] == "101VanderA3" + identity_hash("profile|class|S1|T2|3") + "1"


def test_collisions_are_case_insensitive_and_per_school():
    frame = groups(
        {"pattern": "group_code", "group_code": "read", "identity": "a"},
        {"pattern": "group_code", "group_code": "READ", "identity": "b"},
        {"pattern": "group_code", "group_code": "READ", "identity": "c", "school_id": "S2"},
    )
    names = assign_names(frame, max_length=20).tolist()
    assert names[0].lower() != names[1].lower()
    assert names[2] == "101READ1"  # same name at another school is fine


def test_names_do_not_depend_on_row_order():
    rows = [{"pattern": "teacher", "last_name": name, "first_name": "Jo", "identity": f"id{i}"}
            for i, name in enumerate(["Smith", "Smith", "Smyth", "Lee"])]
    forward = groups(*rows)
    backward = groups(*reversed(rows))
    by_id = dict(zip(forward["identity"], assign_names(forward, max_length=20)))
    assert by_id == dict(zip(backward["identity"], assign_names(backward, max_length=20)))
    assert by_id["id2"] == "101SmythJo1" and by_id["id3"] == "101LeeJo1"
    assert by_id["id0"] != by_id["id1"]


def test_nameless_teacher_and_group_code_fall_back_to_their_ids():
    frame = groups({"pattern": "teacher", "last_name": "李", "first_name": "明", "fallback_id": "T9"},
                   {"pattern": "group_code", "group_code": "読書", "fallback_id": "G3"})
    assert assign_names(frame, max_length=20).tolist() == ["101TT91", "101GG31"]


def test_prefix_and_limit():
    frame = groups({"pattern": "grade", "grade_level": "03", "prefix": "Lit"})
    assert assign_names(frame, max_length=20).tolist() == ["Lit101Grade031"]
    with pytest.raises(ValueError, match="at least 12"):
        assign_names(frame, max_length=8)


def test_fit_shrinks_in_order_then_cuts():
    parts = {"a": "AAAA", "b": "BBBBBB", "c": "CC"}
    assert fit(parts, ("a", "b", "c"), (("b", 2), ("a", 1)), 8) == "AAAABBCC"
    assert fit(parts, ("a", "b", "c"), (("b", 2), ("a", 1)), 5) == "ABBCC"
    assert fit(parts, ("a", "b", "c"), (), 5) == "AAAAB"
