"""The five roster types (Aeries' profile types): which groups exist, who is in them, who sees them.

Every roster type starts from the same eligible students (rostering.cers.selection) and returns three frames:

- ``groups``: one row per logical group (before the 200-student split) with its identity, school, subject code,
  name pattern and name components;
- ``members``: (group_id, student_id, ssid);
- ``users``: (group_id, staff_id) -- candidates, screened for an e-mail later.

Definitions (docs/cers.md explains them for district staff):

- *Teachers of a class*: its staff with role lead, co_teacher or job_share (never aides). The *named teacher* (whose
  name goes into the group name, and who is the group for elementary_teachers) is the lead with the earliest start
  date, then the smallest staff_id; a class without a lead is named after its first co-teacher/job-share; a class
  with no teacher at all is left out (``section.no_teacher``).
- *Qualifying class*: a section active on the as-of date whose CAASPP subject area is ELA, Math or ALL. Only
  qualifying classes become class groups (PowerSchool).
- *Primary class*: a qualifying class with ``class_type = 'homeroom'`` -- the self-contained class a student
  belongs to (Aeries "Tracking Primary Classes"; PowerSchool homeroom sections). SIS mapping: mark exactly those
  sections ``homeroom`` (docs/sis-model.md).
- Subject filter: a profile with subject ELA takes classes whose CAASPP subject is ELA or ALL, Math likewise; All
  and ``section`` take every qualifying class. ``section`` writes each class's own subject (ALL -> All); a group
  merged from classes of different subjects is written as All.

Roster types:

- ``master_schedule``: class groups from qualifying classes, narrowed by department, course subject area, course
  number, teacher (any teaching role) and ``primary_classes_only``. The name pattern also decides what one group
  is: ``powerschool`` and ``teacher_section``: one group per class; ``teacher_period``: all classes of the named
  teacher in one period (combination classes); ``teacher_course_title``: all classes of the named teacher in one
  course. Users: the teachers of every class in the group.
- ``elementary_teachers``: one group per named teacher of primary classes (a teacher with AM and PM kindergarten
  gets one group), filtered by teacher. Users: the teachers of those classes.
- ``elementary_grade_level``: one group per school and grade level, filtered by grade. Users: the teachers of the
  primary classes the group's students are in (so grade 3 at a school is seen by its grade-3 homeroom teachers).
- ``counselor``: one group per counselor (student.counselor_staff_id) and school, filtered by counselor. User: the
  counselor. A counselor who is not active staff has no group (``group.counselor_not_active``).
- ``student_group``: one group per SIS student group, filtered by group code. User: the group's owner.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rostering.cers.profiles import CersProfile
from rostering.cers.spec import TEACHING_ROLES
from rostering.frames import equal_codes, first_rows, isin, merge_unique, pair_codes, strings

HOMEROOM = "homeroom"
GROUP_COLUMNS = ("group_id", "school_id", "subject_code", "pattern", "prefix", "last_name", "first_name",
                 "class_expression", "course_number", "section_number", "period_code", "course_title", "grade_level",
                 "group_code", "fallback_id")


@dataclass
class RosterContext:
    """Everything the roster types read, loaded once per run."""

    eligible: pd.DataFrame  # student_id, school_id, ssid, grade_level, counselor_staff_id
    sections: pd.DataFrame  # qualifying sections + course columns (course_number, course_title, department, …)
    memberships: pd.DataFrame  # student_id, section_id, school_id, ssid
    teaching: pd.DataFrame  # section_id, staff_id, staff_role, start_date (teaching roles only)
    named_teacher: pd.DataFrame  # section_id, teacher_id
    staff: pd.DataFrame  # staff_id, first_name, last_name, …
    student_groups: pd.DataFrame
    student_group_members: pd.DataFrame

    @classmethod
    def load(cls, read, sections: pd.DataFrame, eligible: pd.DataFrame, memberships: pd.DataFrame) -> "RosterContext":
        courses = read("courses").rename(columns={"title": "course_title"})
        sections = sections.merge(
            courses[["course_id", "course_number", "course_title", "department", "subject_area"]],
            on="course_id", how="left",
        )
        section_staff = read("section_staff")
        teaching = section_staff[isin(section_staff["staff_role"], TEACHING_ROLES)
                                 & isin(section_staff["section_id"], sections["section_id"])]
        teaching = teaching.sort_values(["section_id", "staff_id", "start_date"], kind="stable")
        teaching = teaching.drop_duplicates(["section_id", "staff_id"])[["section_id", "staff_id", "staff_role",
                                                                          "start_date"]]
        ranked = teaching.assign(_not_lead=(teaching["staff_role"] != "lead").astype(int))
        ranked = ranked.sort_values(["section_id", "_not_lead", "start_date", "staff_id"], kind="stable")
        named = ranked.drop_duplicates("section_id")[["section_id", "staff_id"]].rename(
            columns={"staff_id": "teacher_id"})
        return cls(
            eligible=eligible, sections=sections, memberships=merge_unique(memberships, sections[["section_id"]],
                                                                           "section_id"),
            teaching=teaching.reset_index(drop=True), named_teacher=named.reset_index(drop=True),
            staff=read("staff"), student_groups=read("student_groups"),
            student_group_members=read("student_group_members"),
        )


@dataclass
class RosterGroups:
    groups: pd.DataFrame
    members: pd.DataFrame
    users: pd.DataFrame
    counts: Counter


def build_roster(ctx: RosterContext, profile: CersProfile, schools: tuple[str, ...]) -> RosterGroups:
    builder = {
        "master_schedule": _master_schedule,
        "elementary_teachers": _elementary_teachers,
        "elementary_grade_level": _grade_level,
        "counselor": _counselor,
        "student_group": _student_group,
    }[profile.roster_type]
    counts: Counter = Counter()
    groups, members, users = builder(ctx, profile, set(schools), counts)
    groups = groups.assign(pattern=profile.name_pattern, prefix=profile.name_prefix)
    for column in GROUP_COLUMNS:
        if column not in groups:
            groups[column] = pd.NA
    members = members[["group_id", "student_id", "ssid"]]
    return RosterGroups(groups[list(GROUP_COLUMNS)].reset_index(drop=True),
                        members[_first_of_pairs(members["group_id"], members["student_id"])],
                        users[["group_id", "staff_id"]].dropna().drop_duplicates(), counts)


# -- helpers -----------------------------------------------------------------------------------------------------


def _first_of_pairs(a: pd.Series, b: pd.Series) -> np.ndarray:
    """``~duplicated([a, b])`` for a million members, on integer codes of the two columns."""
    return first_rows(pair_codes(*equal_codes(strings(a)), *equal_codes(strings(b))))


def _key(*parts: pd.Series | str) -> pd.Series:
    """A group id from string parts joined by ``|`` (vectorised; at least one part is a column)."""
    result = None
    for part in parts:
        value = part.astype("string").fillna("") if isinstance(part, pd.Series) else part
        result = value if result is None else result + "|" + value
    return result


def _subject_sections(sections: pd.DataFrame, subject: str) -> pd.DataFrame:
    if subject in ("ELA", "Math"):
        return sections[isin(sections["subject_code"], [subject, "All"])]
    return sections


def _group_subject(rows: pd.DataFrame, subject: str) -> pd.Series:
    """Per group_id: the profile's subject, or (``section``) the classes' own subject, All when they differ."""
    if subject != "section":
        return pd.Series(subject, index=pd.Index(rows["group_id"].unique(), name="group_id"), dtype="string")
    distinct = rows.drop_duplicates(["group_id", "subject_code"])
    several = distinct["group_id"].duplicated(keep=False)
    chosen = distinct.assign(subject_code=distinct["subject_code"].mask(several, "All"))
    return chosen.drop_duplicates("group_id").set_index("group_id")["subject_code"].astype("string")


def _teacher_names(frame: pd.DataFrame, staff: pd.DataFrame, column: str) -> pd.DataFrame:
    names = staff[["staff_id", "first_name", "last_name"]].rename(columns={"staff_id": column})
    return frame.merge(names, on=column, how="left")


def _class_groups(ctx: RosterContext, sections: pd.DataFrame, key: list[str], profile: CersProfile,
                  kind: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Groups made of classes: ``sections`` (with teacher_id) grouped by ``key``."""
    sections = sections.assign(group_id=_key(profile.name, kind, sections["school_id"],
                                             *[sections[k] for k in key]))
    first = sections.sort_values(["group_id", "section_number", "section_id"], kind="stable").drop_duplicates(
        "group_id")
    groups = _teacher_names(first, ctx.staff, "teacher_id")
    groups = groups.assign(subject_code=groups["group_id"].map(_group_subject(sections, profile.subject)),
                           fallback_id=groups["teacher_id"])
    link = sections[["section_id", "group_id"]]
    members = merge_unique(ctx.memberships, link, "section_id")
    users = ctx.teaching[["section_id", "staff_id"]].merge(link, on="section_id")
    return groups, members, users


def _named_sections(ctx: RosterContext, sections: pd.DataFrame, counts: Counter) -> pd.DataFrame:
    named = sections.merge(ctx.named_teacher, on="section_id", how="left")
    missing = named["teacher_id"].isna()
    counts["section.no_teacher"] += int(missing.sum())
    return named[~missing]


# -- the roster types ----------------------------------------------------------------------------------------------


def _master_schedule(ctx, profile: CersProfile, schools, counts):
    sections = _subject_sections(ctx.sections[isin(ctx.sections["school_id"], schools)], profile.subject)
    for column, key in (("department", "departments"), ("subject_area", "subject_areas"),
                        ("course_number", "courses")):
        wanted = profile.filter_values(key)
        if wanted:
            sections = sections[isin(sections[column], wanted)]
    if profile.primary_classes_only:
        sections = sections[sections["class_type"] == HOMEROOM]
    teachers = profile.filter_values("teachers")
    if teachers:
        taught = ctx.teaching.loc[isin(ctx.teaching["staff_id"], teachers), "section_id"]
        sections = sections[isin(sections["section_id"], taught)]
    sections = _named_sections(ctx, sections, counts)
    key = {
        "powerschool": ["section_id"],
        "teacher_section": ["section_id"],
        "teacher_period": ["teacher_id", "period_code"],
        "teacher_course_title": ["teacher_id", "course_id"],
    }[profile.name_pattern]
    return _class_groups(ctx, sections, key, profile, "class")


def _elementary_teachers(ctx, profile: CersProfile, schools, counts):
    sections = _subject_sections(ctx.sections[isin(ctx.sections["school_id"], schools)], profile.subject)
    sections = _named_sections(ctx, sections[sections["class_type"] == HOMEROOM], counts)
    teachers = profile.filter_values("teachers")
    if teachers:
        sections = sections[isin(sections["teacher_id"], teachers)]
    return _class_groups(ctx, sections, ["teacher_id"], profile, "teacher")


def _grade_level(ctx, profile: CersProfile, schools, counts):
    students = ctx.eligible[isin(ctx.eligible["school_id"], schools)]
    grades = profile.filter_values("grades")
    if grades:
        students = students[isin(students["grade_level"], grades)]
    students = students.assign(group_id=_key(profile.name, "grade", students["school_id"], students["grade_level"]))
    groups = students.drop_duplicates("group_id")[["group_id", "school_id", "grade_level"]].assign(
        subject_code=profile.subject)
    homerooms = ctx.sections.loc[ctx.sections["class_type"] == HOMEROOM, ["section_id", "school_id"]]
    in_homeroom = merge_unique(ctx.memberships[["student_id", "section_id"]], homerooms, "section_id")
    classes = students[["group_id", "student_id", "school_id"]].merge(in_homeroom, on=["student_id", "school_id"])
    users = classes[["group_id", "section_id"]].drop_duplicates().merge(
        ctx.teaching[["section_id", "staff_id"]], on="section_id")
    return groups, students, users


def _counselor(ctx, profile: CersProfile, schools, counts):
    students = ctx.eligible[isin(ctx.eligible["school_id"], schools) & ctx.eligible["counselor_staff_id"].notna()]
    counselors = profile.filter_values("counselors")
    if counselors:
        students = students[isin(students["counselor_staff_id"], counselors)]
    active = isin(students["counselor_staff_id"], ctx.staff["staff_id"])
    students = students.assign(group_id=_key(profile.name, "counselor", students["school_id"],
                                             students["counselor_staff_id"]))
    counts["group.counselor_not_active"] += int(students.loc[~active, "group_id"].nunique())
    students = students[active]
    groups = students.drop_duplicates("group_id")[["group_id", "school_id", "counselor_staff_id"]]
    groups = _teacher_names(groups, ctx.staff, "counselor_staff_id")
    groups = groups.assign(subject_code=profile.subject, fallback_id=groups["counselor_staff_id"])
    users = groups[["group_id", "counselor_staff_id"]].rename(columns={"counselor_staff_id": "staff_id"})
    return groups, students, users


def _student_group(ctx, profile: CersProfile, schools, counts):
    sis_groups = ctx.student_groups[isin(ctx.student_groups["school_id"], schools)]
    codes = profile.filter_values("groups")
    if codes:
        sis_groups = sis_groups[isin(sis_groups["group_code"], codes)]
    sis_groups = sis_groups.assign(group_id=_key(profile.name, "group", sis_groups["school_id"],
                                                 sis_groups["student_group_id"]))
    members = ctx.student_group_members.merge(sis_groups[["student_group_id", "school_id", "group_id"]],
                                              on="student_group_id")
    members = merge_unique(members, ctx.eligible[["student_id", "school_id", "ssid"]], ["student_id", "school_id"])
    groups = sis_groups[["group_id", "school_id", "group_code", "student_group_id", "owner_staff_id"]].assign(
        subject_code=profile.subject, fallback_id=sis_groups["student_group_id"])
    users = groups[["group_id", "owner_staff_id"]].rename(columns={"owner_staff_id": "staff_id"})
    return groups, members, users
