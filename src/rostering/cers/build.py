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

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rostering.cers.group_names import assign_names
from rostering.cers.profiles import CersProfile, profile_schools
from rostering.cers.rosters import RosterContext, build_roster
from rostering.cers.selection import screen_staff, select_students
from rostering.cers.spec import DEFAULT_GROUP_NAME_MAX_LENGTH, MAX_STUDENTS_PER_GROUP
from rostering.frames import (
    STRING, dense_ranks, equal_codes, isin, merge_unique, position_in_run, repeated, run_starts, sort_codes,
    stable_order, strings,
)

Reader = Callable[[str], pd.DataFrame]
# The columns the build reads of the largest snapshot tables: a reader may return only these (rostering.cers.vendor
# does: reading the names, dates and e-mails of half a million students that CERS never sends took ~0.4 s).
COLUMNS_READ = {
    "students": ("student_id", "ssid", "grade_level", "counselor_staff_id", "excluded_from_state_reporting"),
    "school_enrollments": ("student_id", "school_id", "enrollment_status", "excluded_from_state_reporting"),
    "section_enrollments": ("student_id", "section_id"),
}
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
    # (Arrow hash lookups, frames.isin / merge_unique: pandas' isin on Arrow strings makes Python objects; the
    # members' group ids are hash-encoded once, for this lookup and the sort in 6.)
    member_groups = pc.dictionary_encode(strings(members_df["group_id"]))
    has_students = pc.is_in(strings(groups_df["group_id"]), value_set=member_groups.dictionary).to_numpy(
        zero_copy_only=False)
    dropped["group.no_eligible_students"] += int((~has_students).sum())
    groups_df = groups_df[has_students]
    users_df = users_df[isin(users_df["group_id"], groups_df["group_id"])]
    extra_users = [frame[isin(frame["group_id"], groups_df["group_id"])] for frame in extra_users]

    staff = read("staff")
    logins, staff_counts = screen_staff(users_df["staff_id"], staff)
    dropped.update(staff_counts)
    users_df = merge_unique(users_df, logins, "staff_id")
    if any(len(frame) for frame in extra_users):
        extra_df = pd.concat(extra_users, ignore_index=True).astype("string")
        extra_logins, extra_counts = screen_staff(extra_df["staff_id"], staff, need_seid=True,
                                                  prefix="additional_user")
        dropped.update(extra_counts)
        users_df = pd.concat([users_df, merge_unique(extra_df, extra_logins, "staff_id")], ignore_index=True)

    # 6. the split: parts of max_students in SSID order. The members' order is worked out on integer codes (the
    # sort by group, SSID, student id of a million members) and only the columns needed later are taken in it.
    ssids = strings(members_df["ssid"])
    group_code, ssid_code = sort_codes(member_groups), sort_codes(ssids)
    order = stable_order(group_code, ssid_code)
    if not run_starts(group_code[order], ssid_code[order]).all():  # a tie: the student id decides
        order = stable_order(group_code, ssid_code, sort_codes(strings(members_df["student_id"])))
    position = position_in_run(run_starts(group_code[order]))  # groupby(group_id).cumcount() of the sorted rows
    part_starts = position % max_students == 0
    parts = pd.DataFrame({"group_id": members_df["group_id"].iloc[order[part_starts]].reset_index(drop=True),
                          "part": position[part_starts] // max_students + 1})  # distinct (group, part), in order
    parts["_part"] = np.arange(len(parts))
    split_groups = int((parts["part"] == 2).sum())
    parts = merge_unique(parts, groups_df, "group_id")

    # 7. names
    school_info = school_rows[["school_id", "school_number", "cds_code"]].assign(
        cds_code=school_rows["cds_code"].astype("string").str.strip())
    parts = merge_unique(parts, school_info, "school_id").assign(school_year=str(school_year))
    parts["group_name"] = assign_names(parts.rename(columns={"group_id": "identity"}), max_length=max_length)

    # 8. rows
    students = _Students(ssid=ssids.take(order), ssid_code=ssid_code[order], part=np.cumsum(part_starts) - 1)
    rows = _rows(parts, users_df, students, school_year)

    by_profile = parts.groupby("profile").size()
    return CersBuild(
        rows=rows,
        dropped=+dropped,
        groups_by_profile={p.name: int(by_profile.get(p.name, 0)) for p in profiles},
        groups=len(parts),
        split_groups=split_groups,
        students=len(pd.unique(equal_codes(strings(members_df["student_id"]))[0])),
    )


@dataclass
class _Students:
    """The members in file order (group, SSID): SSID, its sort code, and the member's row of ``parts``."""

    ssid: pa.Array
    ssid_code: np.ndarray
    part: np.ndarray


def _rows(parts: pd.DataFrame, users: pd.DataFrame, students: _Students, school_year: int) -> pd.DataFrame:
    """The file rows (HEADER + school_id), sorted by school, group name, kind (subject, users, students), value.

    Before the sort the rows are: one subject row per part, the user rows, the student rows (a million at XL).
    They are never built one by one: the sort runs on integer codes (the part's rank by school and group name, the
    kind, the value's rank within its kind -- the order of a stable sort by school, group name, kind, value), and
    each output column is then one Arrow ``take`` from its source (parts, users or members).
    """
    part_key = ["group_id", "part"]
    base = parts[[*part_key, "group_name", "cds_code", "school_id", "subject_code", "_part"]].reset_index(drop=True)
    base["_rank"] = dense_ranks(strings(base["cds_code"]), strings(base["group_name"]))
    users = (base.drop(columns=["subject_code", "_part"])
             .merge(users[["group_id", "login"]].drop_duplicates(), on="group_id")
             .drop_duplicates([*part_key, "login"]))
    # member -> its part's row of base (-1: a merge dropped the part, as the merge of the members would)
    row_of_part = np.full(int(students.part.max(initial=-1)) + 1, -1)
    row_of_part[base["_part"].to_numpy()] = np.arange(len(base))
    member_rows = row_of_part[students.part]
    kept = member_rows >= 0
    at, ssid = member_rows[kept], students.ssid.filter(pa.array(kept))
    ssid_rank = students.ssid_code[kept] if not ssid.null_count else sort_codes(pc.fill_null(ssid, ""))
    logins = strings(users["login"])

    sizes = [len(base), len(users), len(at)]
    order = stable_order(
        np.concatenate([base["_rank"].to_numpy(), users["_rank"].to_numpy(), base["_rank"].to_numpy()[at]]),
        np.repeat([KIND_SUBJECT, KIND_USER, KIND_STUDENT], sizes),
        np.concatenate([np.zeros(len(base), dtype=np.int64), sort_codes(pc.fill_null(logins, "")), ssid_rank]),
    )

    def pick(source: pa.Array, *positions: np.ndarray | None) -> pa.Array:
        """``source`` at each output row: ``positions`` per kind (None: the kind leaves the column empty)."""
        index = np.concatenate([np.full(n, -1) if p is None else p for p, n in zip(positions, sizes)])[order]
        return source.take(pa.array(index, mask=index < 0))

    part_of = np.arange(len(base))
    part_or_user = {c: pa.concat_arrays([strings(base[c]), strings(users[c])])
                    for c in ("group_name", "cds_code", "school_id")}
    user_of = len(base) + np.arange(len(users))
    table = pa.table({
        "group_name": pick(part_or_user["group_name"], part_of, user_of, at),
        "school_natural_id": pick(part_or_user["cds_code"], part_of, user_of, at),
        "school_year": repeated(str(school_year), len(order)),
        "subject_code": pick(strings(base["subject_code"]), part_of, None, None),
        "student_ssid": pick(ssid, None, None, np.arange(len(at))),
        "group_user_login": pick(logins, None, np.arange(len(users)), None),
        "school_id": pick(part_or_user["school_id"], part_of, user_of, at),
    })
    return table.to_pandas(types_mapper={pa.string(): STRING}.get)
