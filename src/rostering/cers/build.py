"""Snapshot + profiles -> the rows of the CERS student-group file(s).

Steps (all vectorised; the only Python loops are over profiles and, in group_names, over group parts):

1. each selected profile's schools (its own list, or all active schools; narrowed by the run's ``schools``);
2. eligible students (rostering.cers.selection: PowerSchool's criteria, counted by reason);
3. each profile's groups, members and candidate users (rostering.cers.rosters);
4. groups without an eligible student are not sent (``group.no_eligible_students``): CERS keeps what it has for a
   group a file does not name;
5. users screened: an active staff member with a valid e-mail (additional users also need a SEID); the profile's
   additional users join every group of the profile;
6. the 200-student split: students in SSID order, parts of 200, every part gets all of the group's users;
7. names (rostering.cers.group_names), unique per school across all selected profiles;
8. rows: per group part one row carrying the subject, then one row per user (login order), then one per student
   (SSID order); groups ordered by school CDS code, then group name (the receiver's "sort by school, group, year").
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Sequence

import pandas as pd

from rostering.cers.group_names import assign_names
from rostering.cers.profiles import CersProfile, profile_schools
from rostering.cers.rosters import RosterContext, build_roster
from rostering.cers.selection import screen_staff, select_students
from rostering.cers.spec import DEFAULT_GROUP_NAME_MAX_LENGTH, HEADER, MAX_STUDENTS_PER_GROUP

Reader = Callable[[str], pd.DataFrame]
KIND_SUBJECT, KIND_USER, KIND_STUDENT = 0, 1, 2


@dataclass
class CersBuild:
    rows: pd.DataFrame  # HEADER columns + school_id (for one file per school)
    dropped: Counter  # reason -> count (students per school enrollment, staff per person, groups)
    groups_by_profile: dict[str, int] = field(default_factory=dict)  # group parts written, per profile
    groups: int = 0  # group parts written
    split_groups: int = 0  # logical groups split into more than one part
    students: int = 0  # distinct students in at least one group


def build_groups(read: Reader, profiles: Sequence[CersProfile], *, school_year: int, schools: Sequence[str] = (),
                 max_length: int = DEFAULT_GROUP_NAME_MAX_LENGTH,
                 max_students: int = MAX_STUDENTS_PER_GROUP) -> CersBuild:
    if not 1 <= max_students <= MAX_STUDENTS_PER_GROUP:
        raise ValueError(f"max_students_per_group must be 1..{MAX_STUDENTS_PER_GROUP}, got {max_students}")
    school_rows = read("schools")
    scoped = profile_schools(profiles, school_rows["school_id"], tuple(schools))
    in_scope = sorted({s for ids in scoped.values() for s in ids})
    selection = select_students(read, in_scope)
    dropped: Counter = Counter(selection.excluded)
    ctx = RosterContext.load(read, selection.sections, selection.eligible, selection.memberships)

    groups, members, users, extra_users = [], [], [], []
    for profile in profiles:
        roster = build_roster(ctx, profile, scoped[profile.name])
        dropped.update(roster.counts)
        groups.append(roster.groups.assign(profile=profile.name))
        members.append(roster.members)
        users.append(roster.users)
        if profile.additional_users:
            extra_users.append(roster.groups[["group_id"]].merge(
                pd.DataFrame({"staff_id": list(profile.additional_users)}, dtype="string"), how="cross"))
    groups_df = pd.concat(groups, ignore_index=True)
    members_df = pd.concat(members, ignore_index=True)
    users_df = pd.concat(users, ignore_index=True).astype("string")

    # 5. only groups with students (before screening users, so only the users of sent groups are counted)
    has_students = groups_df["group_id"].isin(members_df["group_id"])
    dropped["group.no_eligible_students"] += int((~has_students).sum())
    groups_df = groups_df[has_students]
    users_df = users_df[users_df["group_id"].isin(groups_df["group_id"])]
    extra_users = [frame[frame["group_id"].isin(groups_df["group_id"])] for frame in extra_users]

    staff = read("staff")
    logins, staff_counts = screen_staff(users_df["staff_id"], staff)
    dropped.update(staff_counts)
    users_df = users_df.merge(logins, on="staff_id")
    if any(len(frame) for frame in extra_users):
        extra_df = pd.concat(extra_users, ignore_index=True).astype("string")
        extra_logins, extra_counts = screen_staff(extra_df["staff_id"], staff, need_seid=True,
                                                  prefix="additional_user")
        dropped.update(extra_counts)
        users_df = pd.concat([users_df, extra_df.merge(extra_logins, on="staff_id")], ignore_index=True)

    # 6. the split: parts of max_students in SSID order
    members_df = members_df.sort_values(["group_id", "ssid", "student_id"], kind="stable").reset_index(drop=True)
    members_df["part"] = members_df.groupby("group_id", sort=False).cumcount() // max_students + 1
    parts = members_df[["group_id", "part"]].drop_duplicates()
    split = parts.groupby("group_id")["part"].max()
    parts = parts.merge(groups_df, on="group_id")

    # 7. names
    school_info = school_rows[["school_id", "school_number", "cds_code"]].assign(
        cds_code=school_rows["cds_code"].astype("string").str.strip())
    parts = parts.merge(school_info, on="school_id").assign(school_year=str(school_year))
    parts["group_name"] = assign_names(parts.rename(columns={"group_id": "identity"}), max_length=max_length)

    # 8. rows
    part_key = ["group_id", "part"]
    base = parts[[*part_key, "group_name", "cds_code", "school_id", "subject_code"]]
    subject_rows = base.assign(kind=KIND_SUBJECT, student_ssid=pd.NA, group_user_login=pd.NA)
    user_rows = (base.drop(columns="subject_code")
                 .merge(users_df[["group_id", "login"]].drop_duplicates(), on="group_id")
                 .drop_duplicates([*part_key, "login"])
                 .rename(columns={"login": "group_user_login"})
                 .assign(kind=KIND_USER, student_ssid=pd.NA, subject_code=pd.NA))
    student_rows = (base.drop(columns="subject_code")
                    .merge(members_df[[*part_key, "ssid"]], on=part_key)
                    .rename(columns={"ssid": "student_ssid"})
                    .assign(kind=KIND_STUDENT, group_user_login=pd.NA, subject_code=pd.NA))
    rows = pd.concat([subject_rows, user_rows, student_rows], ignore_index=True)
    rows = rows.assign(school_natural_id=rows["cds_code"], school_year=str(school_year),
                       _value=rows["group_user_login"].fillna(rows["student_ssid"]).fillna(""))
    rows = rows.sort_values(["school_natural_id", "group_name", "kind", "_value"], kind="stable")
    rows = rows[[*HEADER, "school_id"]].astype("string").reset_index(drop=True)

    by_profile = parts.groupby("profile").size()
    return CersBuild(
        rows=rows,
        dropped=+dropped,
        groups_by_profile={p.name: int(by_profile.get(p.name, 0)) for p in profiles},
        groups=len(parts),
        split_groups=int((split > 1).sum()),
        students=int(members_df["student_id"].nunique()),
    )
