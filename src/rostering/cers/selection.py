"""Who may be in a CERS group: PowerSchool's selection criteria, applied to every roster type, counted by reason.

A student is evaluated once per school where the snapshot has an active enrollment (a student enrolled at two
schools is evaluated at each). Rules, in order; an enrollment failing several is counted under the first:

====================================================  ===========================================================
reason (key in the run summary's dropped_by_reason)    rule
====================================================  ===========================================================
student.excluded_from_state_reporting                  the student is not excluded from state reporting
enrollment.excluded_from_state_reporting               the school enrollment is not excluded from state reporting
school.excluded_from_state_reporting                   the school is not excluded from state reporting
school.cds_code_not_14_digits                          the school has a 14-digit CDS code (CERS school_natural_id)
student.no_ssid                                        the student has an SSID
student.ssid_not_10_digits                             ... of 10 digits
student.ssid_shared_with_another_student               ... that no other student record has (both are left out)
enrollment.status_not_primary                          the enrollment status is 10 (primary)
student.no_qualifying_section                          the student is actively enrolled, at that school, in a section
                                                       whose CAASPP subject is ELA, Math or ALL and that is active in
                                                       the school year and on the as-of date
====================================================  ===========================================================

Section activity (flag, term in the school year, as-of date within its dates) is already decided by the snapshot
(include/sql/snapshot/sections.sql); exclusion flags and status codes are not, on purpose, so they are counted here.
Several stints at one school: the enrollment passes if any stint passes.

Group users (educators) must be active staff with a valid e-mail (the CERS login); additional users also need a
state educator id (SEID), as in Aeries. Staff left out are counted once per person by reason.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rostering.cers.spec import CAASPP_SUBJECTS, CDS_CODE, EMAIL, SSID
from rostering.frames import (
    dense_ranks, equal_codes, first_rows, isin, merge_unique, pair_codes, run_ends, run_starts, stable_order, strings,
)

Reader = Callable[[str], pd.DataFrame]

RULES = (
    "student.excluded_from_state_reporting",
    "enrollment.excluded_from_state_reporting",
    "school.excluded_from_state_reporting",
    "school.cds_code_not_14_digits",
    "student.no_ssid",
    "student.ssid_not_10_digits",
    "student.ssid_shared_with_another_student",
    "enrollment.status_not_primary",
    "student.no_qualifying_section",
)
PRIMARY_STATUS = "10"


@dataclass
class Selection:
    eligible: pd.DataFrame  # one row per eligible (student, school): student_id, school_id, ssid, grade, counselor
    sections: pd.DataFrame  # qualifying sections (CAASPP subject set, active) + subject_code
    memberships: pd.DataFrame  # eligible students' active enrollments in qualifying sections: student_id, section_id
    excluded: Counter  # reason -> enrollments (student x school) left out


def _text(series: pd.Series) -> pd.Series:
    return series.astype("string").str.strip()


def qualifying_sections(sections: pd.DataFrame) -> pd.DataFrame:
    """Sections whose CAASPP subject area is ELA, Math or ALL (any case), with the file's ``subject_code``."""
    subject = _text(sections["caaspp_subject"]).str.upper().map(CAASPP_SUBJECTS)
    return sections.assign(subject_code=subject)[subject.notna()].copy()


def select_students(read: Reader, schools_in_scope: Iterable[str]) -> Selection:
    """Apply the rules to every active enrollment at ``schools_in_scope``; count what is left out, by reason.

    Joins are Arrow hash lookups (frames.isin / merge_unique) and ids are integer codes (frames.equal_codes):
    pandas' joins, sorts and de-duplications of a million strings were most of the build's time.
    """
    scope = set(schools_in_scope)
    students = read("students")
    schools = read("schools")
    enrollments = read("school_enrollments")
    enrollments = enrollments[isin(enrollments["school_id"], scope)]

    sections = qualifying_sections(read("sections"))
    sections = sections[isin(sections["school_id"], scope)]
    in_qualifying = _enrollments_in(read("section_enrollments"), sections)

    ssid = _text(students["ssid"])
    shared = _shared(ssid)
    people = students[["student_id", "grade_level", "counselor_staff_id"]].assign(
        ssid=ssid, _student_excluded=students["excluded_from_state_reporting"].fillna(0).astype(int) == 1,
        _shared=shared,
    )
    frame = merge_unique(
        merge_unique(enrollments[["student_id", "school_id", "enrollment_status", "excluded_from_state_reporting"]]
                     .rename(columns={"excluded_from_state_reporting": "_enrollment_excluded"}), people, "student_id"),
        schools[["school_id", "excluded_from_state_reporting"]]
        .rename(columns={"excluded_from_state_reporting": "_school_excluded"})
        .assign(_bad_cds=~_text(schools["cds_code"]).fillna("").str.match(CDS_CODE.pattern)), "school_id",
    )  # (the CDS code rule is decided per school, not per enrollment)
    # (student, school) of every enrollment and of every qualifying section enrollment as one integer (the same
    # integer for the same pair in both), so the lookups below hash integers, not strings.
    students_of = equal_codes(strings(frame["student_id"]), strings(in_qualifying["student_id"]))
    schools_of = equal_codes(strings(frame["school_id"]), strings(in_qualifying["school_id"]))
    pair, section_pair = np.split(pair_codes(np.concatenate(students_of), np.concatenate(schools_of)), [len(frame)])
    has_section = pd.Series(pair).isin(section_pair).to_numpy()  # (pandas hashes integers fastest)
    conditions = [
        frame["_student_excluded"],
        frame["_enrollment_excluded"].fillna(0).astype(int) == 1,
        frame["_school_excluded"].fillna(0).astype(int) == 1,
        frame["_bad_cds"],
        frame["ssid"].isna() | (frame["ssid"] == ""),
        ~frame["ssid"].fillna("").str.match(SSID.pattern),
        frame["_shared"].astype(bool),
        _text(frame["enrollment_status"]).fillna("") != PRIMARY_STATUS,
        ~has_section,
    ]
    passed = len(RULES)
    rule = np.select([np.asarray(c, dtype=bool) for c in conditions], list(range(len(RULES))), default=passed)
    # Several stints at one school: keep the stint that gets furthest (a passing one if any): the last row of each
    # (student, school) after a stable sort by student, school, rule -- sort_values + drop_duplicates(keep="last").
    rank = dense_ranks(strings(frame["student_id"]), strings(frame["school_id"]))
    order = stable_order(rank, rule)
    order = order[run_ends(run_starts(rank[order]))]
    best, best_rule = frame.take(order), rule[order]
    failed, counts = np.unique(best_rule[best_rule < passed], return_counts=True)
    excluded = Counter({RULES[i]: int(n) for i, n in zip(failed, counts)})
    eligible = best[best_rule == passed][["student_id", "school_id", "ssid", "grade_level", "counselor_staff_id"]]
    eligible = eligible.reset_index(drop=True)

    # eligible students' enrollments in qualifying sections (the merge on the pair), once per student and section
    at = pd.Index(pair[order][best_rule == passed]).get_indexer(section_pair)  # eligible pairs are unique
    found = at >= 0
    memberships = in_qualifying[found].reset_index(drop=True)
    memberships["ssid"] = eligible["ssid"].take(at[found]).reset_index(drop=True)
    sections_of = equal_codes(strings(memberships["section_id"]))[0]
    memberships = memberships[first_rows(pair_codes(students_of[1][found], sections_of))].reset_index(drop=True)
    return Selection(eligible=eligible, sections=sections.reset_index(drop=True), memberships=memberships,
                     excluded=excluded)


def _enrollments_in(enrollments: pd.DataFrame, sections: pd.DataFrame) -> pd.DataFrame:
    """The section enrollments (two million at XL) in the given sections, with the section's school: a hash lookup
    of the section id (a section id twice: pandas' merge)."""
    return merge_unique(enrollments[["student_id", "section_id"]], sections[["section_id", "school_id"]], "section_id")


def _shared(ssid: pd.Series) -> np.ndarray:
    """A present, non-blank SSID that another student record has too (``duplicated(keep=False)`` on codes)."""
    values = strings(ssid)
    present = _np(pc.and_(pc.is_valid(values), pc.not_equal(pc.fill_null(values, ""), "")))
    shared = np.zeros(len(values), dtype=bool)
    shared[present] = pd.Series(equal_codes(values.filter(pa.array(present)))[0]).duplicated(keep=False).to_numpy()
    return shared


def _np(mask: pa.Array) -> np.ndarray:
    return mask.to_numpy(zero_copy_only=False)


def screen_staff(candidates: pd.Series, staff: pd.DataFrame, *, need_seid: bool = False,
                 prefix: str = "staff") -> tuple[pd.DataFrame, Counter]:
    """Which candidate staff can be group users: active, with a valid e-mail (and a SEID when ``need_seid``).

    Returns (staff_id, login) for those that can, and counts per person of those that cannot, by reason.
    """
    ids = pd.Series(candidates.dropna().astype("string").unique(), dtype="string", name="staff_id")
    known = staff[["staff_id", "email", "state_educator_id"]].astype("string")
    frame = pd.DataFrame({"staff_id": ids}).merge(known, on="staff_id", how="left", indicator=True)
    email = _text(frame["email"])
    seid = _text(frame["state_educator_id"])
    conditions = [
        frame["_merge"] == "left_only",
        email.isna() | (email == ""),
        ~email.fillna("").str.match(EMAIL.pattern),
        (seid.isna() | (seid == "")) if need_seid else pd.Series(False, index=frame.index),
    ]
    reasons = ("not_active_or_unknown", "no_email", "email_invalid", "no_state_educator_id")
    code = np.select([np.asarray(c, dtype=bool) for c in conditions], list(range(len(reasons))), default=len(reasons))
    counts = Counter({f"{prefix}.{reasons[i]}": int(n) for i, n in pd.Series(code[code < len(reasons)])
                     .value_counts().items()})
    valid = frame.loc[code == len(reasons), ["staff_id"]].assign(login=email[code == len(reasons)])
    return valid.reset_index(drop=True), counts
