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

from rostering.cers.spec import CAASPP_SUBJECTS, CDS_CODE, EMAIL, SSID

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
    """Apply the rules to every active enrollment at ``schools_in_scope``; count what is left out, by reason."""
    scope = set(schools_in_scope)
    students = read("students")
    schools = read("schools")
    enrollments = read("school_enrollments")
    enrollments = enrollments[enrollments["school_id"].isin(scope)]

    sections = qualifying_sections(read("sections"))
    sections = sections[sections["school_id"].isin(scope)]
    section_enrollments = read("section_enrollments")
    in_qualifying = section_enrollments[["student_id", "section_id"]].merge(
        sections[["section_id", "school_id"]], on="section_id"
    )
    has_section = in_qualifying[["student_id", "school_id"]].drop_duplicates().assign(_has_section=True)

    ssid = _text(students["ssid"])
    shared = ssid.notna() & (ssid != "") & ssid.duplicated(keep=False)
    people = students[["student_id", "grade_level", "counselor_staff_id"]].assign(
        ssid=ssid, _student_excluded=students["excluded_from_state_reporting"].fillna(0).astype(int) == 1,
        _shared=shared,
    )
    frame = (
        enrollments[["student_id", "school_id", "enrollment_status", "excluded_from_state_reporting"]]
        .rename(columns={"excluded_from_state_reporting": "_enrollment_excluded"})
        .merge(people, on="student_id")
        .merge(schools[["school_id", "cds_code", "excluded_from_state_reporting"]]
               .rename(columns={"excluded_from_state_reporting": "_school_excluded"}), on="school_id")
        .merge(has_section, on=["student_id", "school_id"], how="left")
    )
    conditions = [
        frame["_student_excluded"],
        frame["_enrollment_excluded"].fillna(0).astype(int) == 1,
        frame["_school_excluded"].fillna(0).astype(int) == 1,
        ~_text(frame["cds_code"]).fillna("").str.match(CDS_CODE.pattern),
        frame["ssid"].isna() | (frame["ssid"] == ""),
        ~frame["ssid"].fillna("").str.match(SSID.pattern),
        frame["_shared"].astype(bool),
        _text(frame["enrollment_status"]).fillna("") != PRIMARY_STATUS,
        frame["_has_section"].isna(),
    ]
    passed = len(RULES)
    frame["_rule"] = np.select([np.asarray(c, dtype=bool) for c in conditions], list(range(len(RULES))),
                               default=passed)
    # Several stints at one school: keep the stint that gets furthest (a passing one if any).
    best = frame.sort_values(["student_id", "school_id", "_rule"], kind="stable").drop_duplicates(
        ["student_id", "school_id"], keep="last"
    )
    failed = best[best["_rule"] < passed]
    excluded = Counter({RULES[i]: int(n) for i, n in failed["_rule"].value_counts().items()})
    eligible = best[best["_rule"] == passed][["student_id", "school_id", "ssid", "grade_level", "counselor_staff_id"]]
    eligible = eligible.reset_index(drop=True)

    memberships = in_qualifying.merge(eligible[["student_id", "school_id", "ssid"]], on=["student_id", "school_id"])
    memberships = memberships.drop_duplicates(["student_id", "section_id"]).reset_index(drop=True)
    return Selection(eligible=eligible, sections=sections.reset_index(drop=True), memberships=memberships,
                     excluded=excluded)


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
