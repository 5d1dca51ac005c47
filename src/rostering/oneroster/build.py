"""SIS snapshot -> the OneRoster 1.1 tables (orgs, academicSessions, courses, classes, users, enrollments).

Shared by every OneRoster vendor; a vendor profile only chooses options (scope, id source, roles, extension columns).
Rules decided here (documented in docs/oneroster.md):
- Only what is active on the as-of date (the snapshot already is): enrolled students, active staff, active sections.
- A student belongs to every in-scope school with an active school enrollment (any status code); a student's
  section enrollment is kept only when the student is enrolled in that section's school, so "a user enrolled in a
  class belongs to the class's school" holds by construction. Dropped rows are counted by reason.
- Staff belong to their staff_school schools plus the schools of the sections they teach; district administrators
  to the district org. One users row per person, all orgs in ``orgSourcedIds``.
- Teachers of a section are its lead, co-teacher and job-share staff, one row per person (the earliest assignment).
  ``primary=true`` goes to exactly one lead, chosen from every lead assignment before the rows become one: the
  earliest start date, then the smallest sourcedId. Other leads, co-teachers and job-shares are ``false``; aides
  are not enrolled (OneRoster 1.1 enrollments have no aide role). A section without a lead has no primary.
- Users whose sourcedId or username equals another's ignoring case, as written (trimmed, one line), are withheld
  with their enrollments; ``classes.grades`` is computed from the enrollments that are sent.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rostering.frames import (
    STRING, clean_text, clean_text_arrow, is_arrow_strings, isin, join_values, key_positions, key_positions_arrays,
    map_values, merge_unique, run_ends, run_starts, sort_dedupe, string_series, strings, take_rows,
)
from rostering.oneroster import ids
from rostering.oneroster.spec import GRADES, HEADERS

TEACHING_ROLES = ("lead", "co_teacher", "job_share")
DISTRICT_ROLES = ("district_administrator",)


@dataclass(frozen=True)
class UserIdOptions:
    """Where user sourcedIds come from. Receivers anchor assessment history to them: change only deliberately."""

    student_source: str = "local_id"  # local_id (SIS student_id) | ssid (state id)
    student_prefix: str = ""
    staff_prefix: str = "staff-"

    def __post_init__(self) -> None:
        if self.student_source not in ("local_id", "ssid"):
            raise ValueError(f"user_ids.student_source must be local_id or ssid, not {self.student_source!r}")
        if self.student_prefix == self.staff_prefix:
            raise ValueError("user_ids: student and staff prefixes must differ so their ids can never collide")


@dataclass(frozen=True)
class OneRosterOptions:
    user_ids: UserIdOptions = field(default_factory=UserIdOptions)
    # SIS staff_role -> OneRoster role; staff whose role is not listed are not sent (unless they teach a section).
    staff_roles: Mapping[str, str] = field(
        default_factory=lambda: {"teacher": "teacher", "administrator": "administrator"}
    )
    schools: tuple[str, ...] = ()  # SIS school_id scope (licensed schools); empty = every active school
    grades: tuple[str, ...] = ()  # student grade scope (licensed grades); empty = all
    district_org_type: str = "district"  # OneRoster org type of the district row ("local" for Literably)
    include_student_email: bool = True
    # Vendor extension columns, appended right of the spec's: file -> {header: source}; sources in EXTENSION_SOURCES.
    extensions: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Students' product by grade (ST Math), the per-school 6th-grade choice, and the licensed products to keep.
    grade_products: Mapping[str, str] = field(default_factory=dict)
    sixth_grade_by_school: Mapping[str, str] = field(default_factory=dict)
    licensed_products: tuple[str, ...] = ()
    staff_password: str | None = None  # value for every staff row's password (e.g. an SSO placeholder); never logged
    staff_password_from_sis: bool = False  # per-user value from staff.initial_password instead


# Extension sources a profile can use (docs/oneroster.md): computed per user or per org.
EXTENSION_SOURCES = {
    "users.csv": ("ell", "home_language", "reading_level", "reading_level_imputed"),
    "orgs.csv": ("classification", "gender", "boarding"),
}


@dataclass
class BuildResult:
    tables: dict[str, pd.DataFrame]
    dropped: Counter  # reason -> count of SIS rows not sent (no names, just counts)
    normalised: Counter  # "file.column" -> count of values whose line breaks were replaced
    withheld: pd.DataFrame  # sis_table, sis_key, rule: records not emitted because they conflict (for the DBA)
    products: Counter = field(default_factory=Counter)  # students per vendor product (ST Math), when configured

    def row_counts(self) -> dict[str, int]:
        return {name: len(frame) for name, frame in self.tables.items()}


Reader = Callable[[str], pd.DataFrame]


def build_oneroster(read: Reader, options: OneRosterOptions, *, only_users: bool = False) -> BuildResult:
    """Build the six OneRoster tables from a snapshot reader (``name -> DataFrame``, e.g. ``SnapshotInfo.read``).

    ``only_users``: just ``users.csv``, by the same rules (who is sent, ids, conflicts withheld) -- for a consumer
    that needs the roster's users and not its classes and enrollments (Derivita); the counts in ``dropped`` then
    leave out the enrollment and class reasons.
    """
    dropped: Counter = Counter()
    normalised: Counter = Counter()

    districts = read("districts")
    schools = read("schools")
    if options.schools:
        schools = schools[schools["school_id"].isin(options.schools)]
    school_ids = set(schools["school_id"])

    # --- students and their schools --------------------------------------------------------------------------
    students = read("students")
    school_enrollments = read("school_enrollments")
    in_scope = isin(school_enrollments["school_id"], school_ids)
    dropped["school_enrollment.school_out_of_scope"] += int((~in_scope).sum())
    school_enrollments = school_enrollments[in_scope]
    students = students[isin(students["student_id"], school_enrollments["student_id"])]
    if options.grades:
        in_grades = students["grade_level"].isin(options.grades)
        dropped["student.grade_out_of_scope"] += int((~in_grades).sum())
        students = students[in_grades]
    not_ceds = ~students["grade_level"].isin(GRADES)  # OneRoster grades are CEDS codes; the SIS must map its own
    dropped["student.grade_not_ceds"] += int(not_ceds.sum())
    rejected_grades = pd.DataFrame({"sis_table": "student", "sis_key": students.loc[not_ceds, "student_id"],
                                    "rule": "users.grade_not_ceds"})
    students = students[~not_ceds]
    products: Counter = Counter()
    if options.grade_products:
        students = students.assign(product=_products(students, school_enrollments, options))
        unmapped = students["product"].isna()
        dropped["student.grade_has_no_product"] += int(unmapped.sum())
        students = students[~unmapped]
        if options.licensed_products:
            licensed = students["product"].isin(options.licensed_products)
            dropped["student.product_not_licensed"] += int((~licensed).sum())
            students = students[licensed]
        products.update(students["product"].value_counts().to_dict())
    key = students["ssid"] if options.user_ids.student_source == "ssid" else students["student_id"]
    missing_key = key.isna() | (key.astype("string").str.strip() == "")
    dropped["student.missing_user_id"] += int(missing_key.sum())
    students = students[~missing_key].assign(sourced_id=ids.user_id(key[~missing_key], options.user_ids.student_prefix))
    school_enrollments = school_enrollments.merge(students[["student_id", "sourced_id"]], on="student_id")
    school_enrollments["org"] = ids.school_id(school_enrollments["school_id"])

    # --- sections, teachers ------------------------------------------------------------------------------------
    sections = read("sections")
    sections = sections[isin(sections["school_id"], school_ids)].copy()
    sections["class_sid"] = ids.class_id(sections["school_id"], sections["section_id"])

    staff = read("staff")
    section_staff = read("section_staff").merge(sections[["section_id", "school_id", "class_sid"]], on="section_id")
    is_teaching = section_staff["staff_role"].isin(TEACHING_ROLES)
    dropped["section_staff.not_a_teaching_role"] += int((~is_teaching).sum())
    section_staff = section_staff[is_teaching]

    staff_schools = read("staff_schools")
    staff_schools = staff_schools[isin(staff_schools["school_id"], school_ids)]
    staff_orgs = pd.concat(
        [staff_schools[["staff_id", "school_id"]], section_staff[["staff_id", "school_id"]]], ignore_index=True
    )
    staff_orgs["org"] = ids.school_id(staff_orgs["school_id"])
    district_org = ids.district_id(districts["district_id"]).iloc[0] if len(districts) else None
    district_staff = staff[staff["staff_role"].isin(DISTRICT_ROLES)]
    if district_org is not None:
        staff_orgs = pd.concat(
            [staff_orgs, pd.DataFrame({"staff_id": district_staff["staff_id"], "org": district_org})],
            ignore_index=True,
        )

    roles = dict(options.staff_roles)
    staff = staff.assign(role=staff["staff_role"].map(roles).astype("string"))
    teaches = isin(staff["staff_id"], section_staff["staff_id"])
    staff.loc[staff["role"].isna() & teaches, "role"] = "teacher"
    unmapped = staff["role"].isna()
    dropped["staff.role_not_sent"] += int(unmapped.sum())
    staff = staff[~unmapped]
    has_org = isin(staff["staff_id"], staff_orgs["staff_id"])
    dropped["staff.no_school_in_scope"] += int((~has_org).sum())
    staff = staff[has_org]
    staff = staff.assign(sourced_id=ids.user_id(staff["staff_id"], options.user_ids.staff_prefix))

    users = _users(students, school_enrollments, staff, staff_orgs, options)
    if options.extensions.get("users.csv"):
        users = _user_extensions(users, students, read("student_programs"), options.extensions["users.csv"])
    users, withheld = _withhold_conflicts(users, dropped)
    withheld = pd.concat([rejected_grades, withheld], ignore_index=True) if len(rejected_grades) else withheld
    if only_users:
        users = _conform(users, "users.csv", normalised, tuple(options.extensions.get("users.csv", {})))
        return BuildResult({"users.csv": users}, +dropped, +normalised, withheld, +products)

    # --- enrollments ---------------------------------------------------------------------------------------------
    student_enrollments = _student_enrollments(read("section_enrollments"), sections, school_enrollments, dropped)
    teacher_enrollments = _teacher_enrollments(section_staff, staff)
    # Withheld users take their enrollments with them -- before classes.grades is computed, so a withheld student's
    # grade never shows on a class.
    student_enrollments = _of_sent_users(student_enrollments, users, dropped)
    teacher_enrollments = _of_sent_users(teacher_enrollments, users, dropped)
    enrollments = pd.concat([student_enrollments, teacher_enrollments], ignore_index=True)
    orgs = _orgs(districts, schools, options)
    if options.extensions.get("orgs.csv"):
        orgs = _org_extensions(orgs, schools, options.extensions["orgs.csv"])

    tables = {
        "orgs.csv": orgs,
        "academicSessions.csv": _sessions(read("terms"), school_ids),
        "courses.csv": _courses(read("courses"), sections, read("terms"), district_org),
        "classes.csv": _classes(sections, read("courses"), student_enrollments, students),
        "users.csv": users,
        "enrollments.csv": enrollments,
    }
    for name, frame in tables.items():
        extension_headers = tuple(options.extensions.get(name, {}))
        tables[name] = _conform(frame, name, normalised, extension_headers)
    return BuildResult(tables, +dropped, +normalised, withheld, +products)


def _of_sent_users(enrollments: pd.DataFrame, users: pd.DataFrame, dropped: Counter) -> pd.DataFrame:
    kept = isin(enrollments["userSourcedId"], users["sourcedId"])
    dropped["enrollment.user_withheld"] += int((~kept).sum())
    return enrollments[kept]


def _products(students: pd.DataFrame, school_enrollments: pd.DataFrame, options: OneRosterOptions) -> pd.Series:
    """Each student's vendor product from their grade; 6th grade depends on the school (ST Math's GR6 vs GR6MSS).

    The school that decides is the student's primary (status 10) enrollment, else the first by school id.
    """
    home = school_enrollments.assign(not_primary=school_enrollments["enrollment_status"] != "10")
    home = home.sort_values(["student_id", "not_primary", "school_id"], kind="stable").drop_duplicates("student_id")
    school = map_values(students["student_id"], home.set_index("student_id")["school_id"])
    product = students["grade_level"].map(dict(options.grade_products)).astype("string")
    sixth = school.map(dict(options.sixth_grade_by_school)).astype("string")
    return product.mask((students["grade_level"] == "06") & sixth.notna(), sixth)


def _withhold_conflicts(users: pd.DataFrame, dropped: Counter) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Users whose sourcedId or username collides case-insensitively with another user's are not emitted.

    Receivers compare ids and usernames ignoring case (ST Math, Literably) and reject or merge such files; guessing
    which record is right could hand one child's account to another. Both records are withheld and reported to the
    DBA by SIS key (never by name) in the run's ``withheld.csv``; counts go to the summary. Values are compared as
    ``_conform`` writes them (trimmed, line breaks as one space): " a.b " and "A.B" collide in the file.
    """
    withheld = []
    for column, rule in (("sourcedId", "users.duplicate_id_ignoring_case"),
                         ("username", "users.duplicate_username_ignoring_case")):
        folded = clean_text(users[column])[0].str.casefold()  # as ``_conform`` will write it
        clash = folded.notna() & folded.duplicated(keep=False)
        if clash.any():
            withheld.append(users.loc[clash, ["sis_table", "sis_key"]].assign(rule=rule))
            dropped[rule] += int(clash.sum())
            users = users[~clash]
    report = pd.concat(withheld, ignore_index=True) if withheld else pd.DataFrame(columns=["sis_table", "sis_key", "rule"])
    return users, report.sort_values(["rule", "sis_table", "sis_key"], kind="stable").reset_index(drop=True)


def _user_extensions(users, students, programs, wanted: Mapping[str, str]) -> pd.DataFrame:
    """Student extension values (Literably): ELL flag, home language, initial reading level and whether imputed."""
    by_sid = students.set_index("sourced_id")
    ell_students = programs.loc[
        (programs["program_code"] == "ELL") & programs["status_code"].fillna("EL").isin(["EL"]), "student_id"
    ]
    is_student = users["role"] == "student"
    values = {
        "ell": isin(by_sid["student_id"], ell_students).map({True: "true", False: "false"}),
        "home_language": by_sid["home_language_code"],
        "reading_level": by_sid["reading_level"],
        "reading_level_imputed": by_sid["reading_level_imputed"].map({1: "true", 0: "false"}).where(
            by_sid["reading_level"].notna()
        ),
    }
    users = users.copy()
    for header, source in wanted.items():
        if source not in values:
            raise ValueError(f"unknown users.csv extension source {source!r}; known: {sorted(values)}")
        users[header] = _lookup(users["sourcedId"], values[source]).where(is_student).astype("string")
    return users


def _lookup(keys: pd.Series, mapping: pd.Series) -> pd.Series:
    return map_values(keys, mapping) if isinstance(mapping.dtype, pd.StringDtype) else keys.map(mapping)


def _org_extensions(orgs, schools, wanted: Mapping[str, str]) -> pd.DataFrame:
    """School extension values (Literably): classification (public/charter/private); gender/boarding not in the model."""
    by_org = schools.assign(org=ids.school_id(schools["school_id"])).set_index("org")
    values = {"classification": by_org["classification"], "gender": None, "boarding": None}
    orgs = orgs.copy()
    for header, source in wanted.items():
        if source not in values:
            raise ValueError(f"unknown orgs.csv extension source {source!r}; known: {sorted(values)}")
        orgs[header] = orgs["sourcedId"].map(values[source]) if values[source] is not None else pd.NA
    return orgs


def _student_enrollments(section_enrollments, sections, school_enrollments, dropped: Counter) -> pd.DataFrame:
    """One row per kept section enrollment (80 % of a district's rows): found by row positions, materialised once.

    Rules: the section is active and in scope; the student is enrolled in that section's school; of overlapping
    stints of one student in one section the latest entry (the current one) is kept.
    """
    sections = sections[["section_id", "school_id", "class_sid"]]
    enrolled_at = school_enrollments[["student_id", "school_id", "sourced_id", "org"]].drop_duplicates(
        ["student_id", "school_id"]
    )
    # Row positions instead of joined frames: a join materialises every column of 2 million rows, three times over.
    arrow_ready = (is_arrow_strings(section_enrollments, ["student_id", "section_id", "entry_date", "exit_date"])
                   and is_arrow_strings(sections, list(sections.columns))
                   and is_arrow_strings(enrolled_at, list(enrolled_at.columns)))
    section_of = key_positions(section_enrollments, sections, ["section_id"]) if arrow_ready else None
    if section_of is None:  # a repeated key or non-string ids: the general (slower) path
        return _student_enrollments_merged(section_enrollments, sections, enrolled_at, dropped)
    active = np.flatnonzero(pc.is_valid(section_of).to_numpy(zero_copy_only=False))
    section_rows = section_of.filter(pc.is_valid(section_of))
    dropped["section_enrollment.section_not_active_or_out_of_scope"] += len(section_enrollments) - len(active)
    student = strings(section_enrollments["student_id"]).take(active)
    enrolled_of = key_positions_arrays(
        [student, strings(sections["school_id"]).take(section_rows)],
        [strings(enrolled_at["student_id"]), strings(enrolled_at["school_id"])],
    )
    if enrolled_of is None:
        return _student_enrollments_merged(section_enrollments, sections, enrolled_at, dropped)
    matched = pc.is_valid(enrolled_of)
    rows = active[matched.to_numpy(zero_copy_only=False)]
    section_rows, enrolled_rows = section_rows.filter(matched), enrolled_of.filter(matched)
    dropped["section_enrollment.student_not_enrolled_in_school"] += len(active) - len(rows)
    # Overlapping stints: sort by student, section, entry date (stable) and keep the last row of each (student,
    # section) run -- the latest entry.
    keys = [strings(section_enrollments[c]).take(rows) for c in ("student_id", "section_id", "entry_date")]
    order = pc.sort_indices(pa.table({f"k{i}": k for i, k in enumerate(keys)}),
                            sort_keys=[(f"k{i}", "ascending", "at_end") for i in range(3)])
    keep = order.take(pa.array(np.flatnonzero(run_ends(run_starts(keys[0].take(order), keys[1].take(order)))),
                               pa.int64()))
    dropped["section_enrollment.overlapping_stint"] += len(rows) - len(keep)
    rows = pa.array(rows).take(keep)
    class_sid = strings(sections["class_sid"]).take(section_rows.take(keep))
    enrolled_rows = enrolled_rows.take(keep)
    sourced_id = strings(enrolled_at["sourced_id"]).take(enrolled_rows)
    entry_date = strings(section_enrollments["entry_date"]).take(rows)
    return pd.DataFrame(
        {
            "sourcedId": ids.enrollment_id(string_series(class_sid), string_series(sourced_id),
                                           string_series(entry_date)),
            "classSourcedId": string_series(class_sid),
            "schoolSourcedId": string_series(strings(enrolled_at["org"]).take(enrolled_rows)),
            "userSourcedId": string_series(sourced_id),
            "role": "student",
            "beginDate": string_series(entry_date),
            "endDate": string_series(strings(section_enrollments["exit_date"]).take(rows)),
        }
    )


def _student_enrollments_merged(section_enrollments, sections, enrolled_at, dropped: Counter) -> pd.DataFrame:
    """The same rules with pandas-shaped joins (any key types)."""
    active = merge_unique(section_enrollments, sections, on="section_id")
    dropped["section_enrollment.section_not_active_or_out_of_scope"] += len(section_enrollments) - len(active)
    matched = merge_unique(active, enrolled_at, on=["student_id", "school_id"])
    dropped["section_enrollment.student_not_enrolled_in_school"] += len(active) - len(matched)
    deduped = sort_dedupe(matched, ["student_id", "section_id", "entry_date"], ["student_id", "section_id"])
    dropped["section_enrollment.overlapping_stint"] += len(matched) - len(deduped)
    return pd.DataFrame(
        {
            "sourcedId": ids.enrollment_id(deduped["class_sid"], deduped["sourced_id"], deduped["entry_date"]),
            "classSourcedId": deduped["class_sid"],
            "schoolSourcedId": deduped["org"],
            "userSourcedId": deduped["sourced_id"],
            "role": "student",
            "beginDate": deduped["entry_date"],
            "endDate": deduped["exit_date"],
        }
    )


def _teacher_enrollments(section_staff: pd.DataFrame, staff: pd.DataFrame) -> pd.DataFrame:
    """One row per teacher per class (the earliest assignment: its start date is in the enrollment's sourcedId).

    The primary is chosen from every lead assignment before a teacher's rows become one: a teacher listed first as
    co-teacher and later as the lead keeps the earliest row, and that row is the class's primary.
    """
    rows = section_staff.merge(staff[["staff_id", "sourced_id"]], on="staff_id")
    leads = rows[rows["staff_role"] == "lead"].sort_values(["class_sid", "start_date", "sourced_id"], kind="stable")
    primary_lead = leads.drop_duplicates("class_sid", keep="first")[["class_sid", "sourced_id"]]
    rows = rows.sort_values(["class_sid", "sourced_id", "start_date"], kind="stable")
    rows = rows.drop_duplicates(["class_sid", "sourced_id"], keep="first")
    is_primary = rows.merge(primary_lead, on=["class_sid", "sourced_id"], how="left", indicator=True)["_merge"]
    primary = pd.Series(np.where(is_primary == "both", "true", "false"), index=rows.index, dtype="string")
    return pd.DataFrame(
        {
            "sourcedId": ids.enrollment_id(rows["class_sid"], rows["sourced_id"], rows["start_date"]),
            "classSourcedId": rows["class_sid"],
            "schoolSourcedId": ids.school_id(rows["school_id"]),
            "userSourcedId": rows["sourced_id"],
            "role": "teacher",
            "primary": primary,
            "beginDate": rows["start_date"],
            "endDate": rows["end_date"],
        }
    )


def _orgs(districts: pd.DataFrame, schools: pd.DataFrame, options: OneRosterOptions) -> pd.DataFrame:
    district_rows = pd.DataFrame(
        {
            "sourcedId": ids.district_id(districts["district_id"]),
            "name": districts["name"],
            "type": options.district_org_type,
            "identifier": districts["nces_id"],
        }
    )
    school_rows = pd.DataFrame(
        {
            "sourcedId": ids.school_id(schools["school_id"]),
            "name": schools["name"],
            "type": "school",
            "identifier": schools["nces_id"],
            "parentSourcedId": ids.district_id(schools["district_id"]),
        }
    )
    return pd.concat([district_rows, school_rows], ignore_index=True)


def _sessions(terms: pd.DataFrame, school_ids: set[str]) -> pd.DataFrame:
    terms = terms[terms["school_id"].isna() | isin(terms["school_id"], school_ids)]
    return pd.DataFrame(
        {
            "sourcedId": ids.term_id(terms["term_id"]),
            "title": terms["title"],
            "type": terms["term_type"],
            "startDate": terms["start_date"],
            "endDate": terms["end_date"],
            "parentSourcedId": ids.term_id(terms["parent_term_id"]),
            "schoolYear": terms["school_year"].astype("string"),
        }
    )


def _courses(courses, sections, terms, district_org) -> pd.DataFrame:
    courses = courses[isin(courses["course_id"], sections["course_id"])]
    year_terms = terms[(terms["term_type"] == "schoolYear") & terms["school_id"].isna()]
    year_sid = ids.term_id(year_terms["term_id"]).iloc[0] if len(year_terms) else None
    return pd.DataFrame(
        {
            "sourcedId": ids.course_id(courses["course_id"]),
            "schoolYearSourcedId": year_sid,
            "title": courses["title"],
            "courseCode": courses["course_number"],
            "orgSourcedId": district_org,
            "subjects": courses["subject_area"],
        }
    )


def _classes(sections, courses, student_enrollments, students) -> pd.DataFrame:
    course_titles = courses.set_index("course_id")["title"]
    subjects = courses.set_index("course_id")["subject_area"]
    enrolled_grades = merge_unique(
        student_enrollments[["classSourcedId", "userSourcedId"]],
        students[["sourced_id", "grade_level"]].rename(columns={"sourced_id": "userSourcedId"}), on="userSourcedId"
    )
    # each grade's position in the CEDS list (a hash lookup in Arrow: Series.map boxes 2 million values)
    enrolled_grades["rank"] = pc.index_in(pa.array(enrolled_grades["grade_level"].array), value_set=pa.array(GRADES)
                                          ).to_numpy(zero_copy_only=False)
    grades = join_values(enrolled_grades, "classSourcedId", "grade_level", order=["rank"])
    title = sections["course_id"].map(course_titles).astype("string") + " - " + sections["section_number"]
    return pd.DataFrame(
        {
            "sourcedId": sections["class_sid"],
            "title": title,
            "grades": map_values(sections["class_sid"], grades),
            "courseSourcedId": ids.course_id(sections["course_id"]),
            "classCode": sections["section_number"],
            "classType": sections["class_type"],
            "location": sections["room"],
            "schoolSourcedId": ids.school_id(sections["school_id"]),
            "termSourcedIds": ids.term_id(sections["term_id"]),
            "subjects": sections["course_id"].map(subjects),
            "periods": sections["period_code"],
        }
    )


def _users(students, school_enrollments, staff, staff_orgs, options) -> pd.DataFrame:
    student_orgs = join_values(school_enrollments, "sourced_id", "org")
    staff_org_list = join_values(staff_orgs, "staff_id", "org")
    student_rows = pd.DataFrame(
        {
            "sourcedId": students["sourced_id"],
            "enabledUser": "true",
            "orgSourcedIds": map_values(students["sourced_id"], student_orgs),
            "role": "student",
            "username": _first_present(students["username"], students["email"], students["sourced_id"]),
            "givenName": students["first_name"],
            "familyName": students["last_name"],
            "middleName": students["middle_name"],
            "email": students["email"] if options.include_student_email else None,
            "grades": students["grade_level"],
            "sis_table": "student",
            "sis_key": students["student_id"],
        }
    )
    staff_rows = pd.DataFrame(
        {
            "sourcedId": staff["sourced_id"],
            "enabledUser": "true",
            "orgSourcedIds": map_values(staff["staff_id"], staff_org_list),
            "role": staff["role"],
            "username": _first_present(staff["username"], staff["email"], staff["sourced_id"]),
            "givenName": staff["first_name"],
            "familyName": staff["last_name"],
            "middleName": staff["middle_name"],
            "email": staff["email"],
            "password": staff["initial_password"] if options.staff_password_from_sis else options.staff_password,
            "sis_table": "staff",
            "sis_key": staff["staff_id"],
        }
    )
    return pd.concat([student_rows, staff_rows], ignore_index=True)


def _first_present(*candidates: pd.Series) -> pd.Series:
    result = candidates[0].astype("string")
    for candidate in candidates[1:]:
        result = result.mask(result.isna() | (result.str.strip() == ""), candidate.astype("string"))
    return result


def _conform(frame: pd.DataFrame, name: str, normalised: Counter, extension_headers: tuple[str, ...] = ()) -> pd.DataFrame:
    """Exact header order (spec columns, then the vendor's extensions), clean nullable strings, sorted by sourcedId.

    SIS text with line breaks (a name typed over two lines) is normalised to one space and counted per column.
    Done in Arrow: the sort is Arrow's stable sort of sourcedId, nulls last (the order pandas' stable sort gives).
    """
    columns = {}
    for column in (*HEADERS[name], *extension_headers):
        if column in frame:
            columns[column], changed = clean_text_arrow(frame[column])
            normalised[f"{name}.{column}"] += changed
        else:
            columns[column] = pa.nulls(len(frame), pa.string())
    table = take_rows(pa.table(columns), pc.array_sort_indices(columns["sourcedId"], null_placement="at_end"))
    return table.to_pandas(types_mapper={pa.string(): STRING}.get)
