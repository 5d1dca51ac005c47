"""The demo district generator (rostering.sis.demo): shape, keys, edge populations, determinism and loading."""
from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from rostering.sis.demo import COLUMNS, GRADES, default_school_year, generate_district, load_district, main
from rostering.sis.schema import TABLES, create_schema

YEAR = 2027
N = 2000
YEAR_START = "2026-08-14"   # a Friday: the generator keeps weekdays


@pytest.fixture(scope="module")
def district() -> dict[str, pd.DataFrame]:
    return generate_district(N, seed=11, school_year=YEAR)


@pytest.fixture(scope="module")
def tiny() -> dict[str, pd.DataFrame]:
    return generate_district(60, seed=3, school_year=YEAR)


@pytest.fixture(scope="module")
def ddl() -> dict[str, dict]:
    """Columns, keys and foreign keys of every table, as the DDL declares them (reflected from SQLite)."""
    engine = sa.create_engine("sqlite://")
    create_schema(engine)
    inspector = sa.inspect(engine)
    out = {}
    for table in inspector.get_table_names():
        columns = inspector.get_columns(table)
        out[table] = {
            "columns": [c["name"] for c in columns],
            "not_null": [c["name"] for c in columns if not c["nullable"]],
            "keys": [inspector.get_pk_constraint(table)["constrained_columns"]]
            + [u["column_names"] for u in inspector.get_unique_constraints(table)],
            "foreign": inspector.get_foreign_keys(table),
        }
    engine.dispose()
    return out


def _present(series: pd.Series) -> pd.Series:
    return series[series.notna()]


def _edge_populations(t: dict[str, pd.DataFrame]) -> dict[str, set]:
    """Student ids (or section ids) of every edge population the generator promises."""
    student, enr, sec_enr, school = t["student"], t["school_enrollment"], t["section_enrollment"], t["school"]
    open_enr = enr[enr["exit_date"].isna()]
    multi = enr.groupby("student_id")["school_id"].nunique()
    reentries = sec_enr[sec_enr.duplicated(["student_id", "section_id"], keep=False)]
    excluded_schools = school.loc[school["excluded_from_state_reporting"] == 1, "school_id"]
    lead_counts = t["section_staff"].query("staff_role == 'lead'").groupby("section_id").size()
    return {
        "no_ssid": set(student.loc[student["ssid"].isna(), "student_id"]),
        "excluded_student": set(student.loc[student["excluded_from_state_reporting"] == 1, "student_id"]),
        "excluded_enrollment": set(enr.loc[enr["excluded_from_state_reporting"] == 1, "student_id"]),
        "status_20": set(enr.loc[enr["enrollment_status"] == "20", "student_id"]),
        "status_30": set(enr.loc[enr["enrollment_status"] == "30", "student_id"]),
        "withdrew": set(student["student_id"]) - set(open_enr["student_id"]),
        "changed_school": set(multi[multi > 1].index),
        "reentered": set(reentries["student_id"]),
        "late_entry": set(enr.loc[enr["entry_date"] > YEAR_START, "student_id"]) - set(multi[multi > 1].index),
        "excluded_school": set(enr.loc[enr["school_id"].isin(excluded_schools), "student_id"]),
        "inactive_section": set(t["section"].loc[t["section"]["is_active"] == 0, "section_id"]),
        "empty_section": set(t["section"]["section_id"]) - set(sec_enr["section_id"]),
        "two_leads": set(lead_counts[lead_counts > 1].index),
        "co_teacher": set(t["section_staff"].query("staff_role == 'co_teacher'")["section_id"]),
        "job_share": set(t["section_staff"].query("staff_role == 'job_share'")["section_id"]),
        "aide": set(t["section_staff"].query("staff_role == 'aide'")["section_id"]),
        "two_school_teacher": set(t["staff_school"].groupby("staff_id").filter(lambda g: len(g) > 1)["staff_id"]),
        "teacher_without_seid": set(t["staff"].query("staff_role == 'teacher' and state_educator_id.isna()",
                                                      engine="python")["staff_id"]),
        "inactive_staff": set(t["staff"].loc[t["staff"]["is_active"] == 0, "staff_id"]),
        "program_exited": set(t["student_program"].loc[t["student_program"]["end_date"].notna(), "student_id"]),
        "program_mid_year": set(t["student_program"].loc[t["student_program"]["start_date"] > YEAR_START,
                                                         "student_id"]),
    }


# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "day, expected",
    [(dt.date(2026, 11, 23), 2027), (dt.date(2026, 8, 1), 2027), (dt.date(2026, 7, 31), 2026),
     (dt.date(2027, 1, 1), 2027), (dt.date(2027, 6, 30), 2027)],
)
def test_default_school_year(day, expected):
    assert default_school_year(day) == expected


def test_default_school_year_is_used_when_none_is_given():
    terms = generate_district(60, seed=1)["term"]
    assert set(terms["school_year"]) == {default_school_year()}


def test_tables_and_columns_match_the_ddl(district, ddl):
    assert list(district) == list(TABLES)
    assert set(ddl) == set(TABLES)
    for table, frame in district.items():
        assert list(frame.columns) == ddl[table]["columns"], table
        assert COLUMNS[table] == tuple(ddl[table]["columns"]), table


def test_deterministic_for_a_seed_and_different_across_seeds():
    a = generate_district(500, seed=7, school_year=YEAR)
    b = generate_district(500, seed=7, school_year=YEAR)
    for table in TABLES:
        pd.testing.assert_frame_equal(a[table], b[table], obj=table)
    c = generate_district(500, seed=8, school_year=YEAR)
    assert not a["student"].equals(c["student"])
    assert not a["section_enrollment"].equals(c["section_enrollment"])


def test_keys_unique_and_not_null_columns_filled(district, ddl):
    for table, frame in district.items():
        for key in ddl[table]["keys"]:
            assert not frame.duplicated(key).any(), (table, key)
        for column in ddl[table]["not_null"]:
            assert frame[column].notna().all(), (table, column)


def test_foreign_keys_hold(district, ddl):
    checked = 0
    for table, frame in district.items():
        for fk in ddl[table]["foreign"]:
            parent = district[fk["referred_table"]]
            for column, referred in zip(fk["constrained_columns"], fk["referred_columns"]):
                values = _present(frame[column])
                missing = values[~values.isin(parent[referred])]
                assert missing.empty, (table, column, missing.head().tolist())
                checked += 1
    assert checked >= 20


def test_value_conventions(district):
    iso = re.compile(r"^\d{4}-\d{2}-\d{2}$")
    for table, frame in district.items():
        for column in frame.columns:
            values = frame[column]
            if column.endswith("_date"):
                present = _present(values)
                assert present.map(lambda v: bool(iso.match(v))).all(), (table, column)
                pd.to_datetime(present, format="%Y-%m-%d")          # real dates
            if column.startswith("is_") or column in ("excluded_from_state_reporting", "reading_level_imputed"):
                assert pd.api.types.is_integer_dtype(values.dtype), (table, column)
                assert set(values.unique()) <= {0, 1}, (table, column)
            if not pd.api.types.is_numeric_dtype(values.dtype):
                assert not _present(values).eq("").any(), (table, column)          # COPY would read '' as NULL
                assert not _present(values).map(lambda v: v != v.strip()).any(), (table, column)
    for table, start, end in [("term", "start_date", "end_date"), ("school_enrollment", "entry_date", "exit_date"),
                              ("section_enrollment", "entry_date", "exit_date"),
                              ("student_program", "start_date", "end_date"),
                              ("section_staff", "start_date", "end_date")]:
        frame = district[table]
        closed = frame[frame[end].notna()]
        assert (closed[start] <= closed[end]).all(), table


def test_terms(district):
    term = district["term"].set_index("term_id")
    year = term.loc[f"{YEAR}-Y"]
    assert year["term_type"] == "schoolYear" and pd.isna(year["school_id"]) and pd.isna(year["parent_term_id"])
    assert year["start_date"].startswith(f"{YEAR - 1}-08-") and year["end_date"].startswith(f"{YEAR}-06-")
    for semester in ("S1", "S2"):
        row = term.loc[f"{YEAR}-{semester}"]
        assert row["term_type"] == "semester" and row["parent_term_id"] == f"{YEAR}-Y"
        assert year["start_date"] <= row["start_date"] <= row["end_date"] <= year["end_date"]
    assert term.loc[f"{YEAR}-S1", "end_date"] < term.loc[f"{YEAR}-S2", "start_date"]
    periods = term[term["term_type"] == "gradingPeriod"]
    assert len(periods) == 4 and set(periods["parent_term_id"]) == {f"{YEAR}-S1", f"{YEAR}-S2"}
    assert (term["school_year"] == YEAR).all()


def test_schools_and_grade_codes_match_levels(district, tiny):
    rank = {g: i for i, g in enumerate(GRADES)}
    for t in (district, tiny):
        school = t["school"].set_index("school_id")
        active = school[school["is_active"] == 1]
        for level in ("elementary", "middle", "high"):
            assert (active["school_level"] == level).sum() >= 1, level
        assert ((school["is_active"] == 1) & (school["excluded_from_state_reporting"] == 1)).sum() == 1
        assert (school["is_active"] == 0).sum() >= 1
        assert school["cds_code"].str.fullmatch(r"\d{14}").all() and school["cds_code"].is_unique
        assert school["cds_code"].str[:7].eq(t["district"]["cds_district_code"].iloc[0]).all()
        assert school["nces_id"].str.fullmatch(r"\d{12}").all()
        assert school["school_number"].str.fullmatch(r"\d{3,}").all()
        enr = t["school_enrollment"].merge(t["student"][["student_id", "grade_level"]], on="student_id")
        enr = enr.join(school[["school_level", "low_grade", "high_grade", "is_active"]], on="school_id")
        assert (enr["is_active"] == 1).all()
        grade = enr["grade_level"].map(rank)
        assert grade.notna().all()
        assert (grade >= enr["low_grade"].map(rank)).all() and (grade <= enr["high_grade"].map(rank)).all()
        expected = {"elementary": {"PK", "TK", "KG", "01", "02", "03", "04", "05"}, "middle": {"06", "07", "08"},
                    "high": {"09", "10", "11", "12"}}
        for level, grades in expected.items():
            assert set(enr.loc[enr["school_level"] == level, "grade_level"]) <= grades, level
        assert set(t["student"]["grade_level"]) == set(GRADES)           # every grade, PK included
    district_row = district["district"].iloc[0]
    assert district_row["district_id"] == "D1" and district_row["state_code"] == "CA"
    assert re.fullmatch(r"\d{7}", district_row["cds_district_code"])


def test_school_sizes_follow_levels():
    t = generate_district(20000, seed=5, school_year=YEAR)
    enr = t["school_enrollment"][t["school_enrollment"]["exit_date"].isna()]
    sizes = enr.groupby("school_id").size().rename("n").to_frame().join(t["school"].set_index("school_id"))
    mean = sizes.groupby("school_level")["n"].mean()
    assert 300 <= mean["elementary"] <= 600
    assert 650 <= mean["middle"] <= 1200
    assert 1300 <= mean["high"] <= 2400
    assert mean["other"] < 200


def test_sections_shape(district):
    sec, enr, course = district["section"], district["section_enrollment"], district["course"]
    assert (sec.groupby("section_number")["school_id"].nunique() > 1).any()       # numbers repeat across schools
    assert not sec.duplicated(["school_id", "section_number"]).any()
    sec = sec.merge(course[["course_id", "course_number", "subject_area"]], on="course_id")
    homeroom = sec[sec["class_type"] == "homeroom"]
    assert not homeroom.empty and (homeroom["caaspp_subject"] == "ALL").all()
    assert homeroom["term_id"].eq(f"{YEAR}-Y").all()
    scheduled = sec[sec["class_type"] == "scheduled"]
    assert set(scheduled["caaspp_subject"].dropna()) == {"Math", "ELA"}
    assert scheduled.loc[scheduled["subject_area"] == "Mathematics", "caaspp_subject"].eq("Math").all()
    assert scheduled.loc[scheduled["caaspp_subject"] == "ELA", "subject_area"].eq("English Language Arts").all()
    assert scheduled["caaspp_subject"].isna().any()
    periods = scheduled.loc[scheduled["period_code"].str.fullmatch(r"\d"), "period_code"]
    assert set(periods) == {str(p) for p in range(1, 8)}
    assert (scheduled["class_expression"] == scheduled["period_code"] + "(A)").all()
    assert {f"{YEAR}-Y", f"{YEAR}-S1", f"{YEAR}-S2"} <= set(scheduled["term_id"])
    per_section = enr.groupby("section_id").size()
    assert 18 <= per_section.mean() <= 32                     # classes of ~25
    assert per_section.max() <= 40
    assert course["course_number"].is_unique
    assert {"Mathematics", "English Language Arts", "Science", "History-Social Science", "Physical Education",
            "Visual and Performing Arts"} <= set(course["subject_area"])


def test_enrollments_per_student_and_staff_ratio(district):
    current = district["school_enrollment"].drop_duplicates("student_id", keep="last")
    level = current.set_index("student_id")["school_id"].map(district["school"].set_index("school_id")["school_level"])
    per_student = district["section_enrollment"].groupby("student_id").size().reindex(level.index, fill_value=0)
    pop = _edge_populations(district)
    regular = level.index.difference(list(pop["withdrew"] | pop["changed_school"] | pop["reentered"]))
    secondary = per_student[regular][level[regular].isin(["middle", "high"])]
    elementary = per_student[regular][level[regular] == "elementary"]
    assert 6.5 <= secondary.mean() <= 8.0 and secondary.min() >= 7
    assert 1.0 <= elementary.mean() <= 2.0 and elementary.min() >= 1 and elementary.max() <= 3
    staff = district["staff"]
    assert 12 <= N / len(staff) <= 24                      # about one staff member per 20 students (small N: fewer)
    roles = staff["staff_role"].value_counts()
    assert roles["teacher"] > 0.7 * len(staff)
    assert {"administrator", "district_administrator", "counselor", "aide"} <= set(roles.index)
    principal_schools = district["staff_school"].merge(staff[staff["staff_role"] == "administrator"], on="staff_id")
    active = district["school"].query("is_active == 1")["school_id"]
    assert set(active) <= set(principal_schools["school_id"])


def test_secondary_schedules_have_one_section_per_period(district):
    enr = district["section_enrollment"].merge(district["section"], on="section_id")
    enr = enr[enr["period_code"].str.fullmatch(r"[1-7]") & enr["exit_date"].isna()]
    # a student is never in two sections of the same period in the same semester
    for semester in ("S1", "S2"):
        rows = enr[enr["term_id"].isin([f"{YEAR}-Y", f"{YEAR}-{semester}"])]
        assert not rows.duplicated(["student_id", "period_code"]).any(), semester


def test_section_staff(district):
    sst, sec, staff = district["section_staff"], district["section"], district["staff"]
    leads = sst[sst["staff_role"] == "lead"]
    assert set(leads["section_id"]) == set(sec["section_id"])                  # every section has a lead
    assert set(sst["staff_role"]) == {"lead", "co_teacher", "job_share", "aide"}
    lead_counts = leads.groupby("section_id").size()
    share = (lead_counts > 1).mean()
    assert 0.002 <= share <= 0.03
    assert 0.01 <= sst["staff_role"].eq("co_teacher").sum() / len(sec) <= 0.06
    start = sec[["section_id", "term_id"]].merge(district["term"][["term_id", "start_date"]], on="term_id").set_index("section_id")["start_date"]
    assert (sst["start_date"] == sst["section_id"].map(start)).all()
    roles = sst.merge(staff[["staff_id", "staff_role"]], on="staff_id", suffixes=("", "_staff"))
    assert roles.loc[roles["staff_role"] != "aide", "staff_role_staff"].eq("teacher").all()
    assert roles.loc[roles["staff_role"] == "aide", "staff_role_staff"].eq("aide").all()


def test_staff_schools_and_identifiers(district):
    staff, ss = district["staff"], district["staff_school"]
    teachers = staff[staff["staff_role"] == "teacher"]
    per_teacher = ss[ss["staff_id"].isin(teachers["staff_id"])].groupby("staff_id")
    two = per_teacher.size()
    assert 0.01 <= (two == 2).sum() / len(teachers) <= 0.06 and two.max() <= 2
    assert per_teacher["is_home"].sum().eq(1).all()                           # exactly one home school each
    # a teacher's second school is where they actually teach
    taught = district["section_staff"].merge(district["section"][["section_id", "school_id"]], on="section_id")
    second = ss[ss["is_home"] == 0]
    assert second.merge(taught, on=["staff_id", "school_id"]).drop_duplicates(["staff_id", "school_id"]).shape[0] \
        == len(second)
    emails = staff["email"].dropna()
    assert emails.str.lower().is_unique and staff["username"].dropna().str.lower().is_unique
    assert emails.str.fullmatch(r"[a-z]+\.[a-z]+\d*@[a-z0-9.-]+\.example\.org").all()
    certificated = staff["staff_role"].isin(["teacher", "administrator", "district_administrator", "counselor"])
    assert staff.loc[~certificated, "state_educator_id"].isna().all()
    seid = staff.loc[certificated, "state_educator_id"]
    assert 0 < seid.isna().sum() <= 0.05 * certificated.sum()
    assert _present(seid).str.fullmatch(r"\d{10}").all() and _present(seid).is_unique
    assert staff["is_active"].eq(0).sum() >= 2


def test_student_identifiers_and_attributes(district):
    st = district["student"]
    assert st["student_id"].str.fullmatch(r"\d{6,7}").all() and st["student_id"].is_unique
    ssid = _present(st["ssid"])
    assert ssid.str.fullmatch(r"\d{10}").all() and ssid.is_unique
    email = _present(st["email"])
    assert email.str.lower().is_unique and email.map(str.isascii).all()
    assert (email == "s" + st.loc[email.index, "student_id"] + "@students.demousd.example.org").all()
    assert _present(st["username"]).str.lower().is_unique
    secondary = st["grade_level"].isin([f"{g:02d}" for g in range(6, 13)])
    assert st.loc[secondary, "counselor_staff_id"].notna().all()
    assert st.loc[~secondary, "counselor_staff_id"].isna().all()
    counselors = district["staff"].query("staff_role == 'counselor'")["staff_id"]
    assert st["counselor_staff_id"].dropna().isin(counselors).all()
    lang = st["home_language_code"].value_counts(normalize=True)
    assert lang["00"] > 0.5 and lang["01"] > 0.1 and {"02", "03", "04", "07"} <= set(lang.index)
    elementary = st["grade_level"].isin(["TK", "KG", "01", "02", "03", "04", "05"])
    assert st.loc[elementary, "reading_level"].notna().mean() > 0.9
    assert st.loc[~elementary, "reading_level"].isna().all()
    assert 0 < st.loc[elementary, "reading_level_imputed"].mean() < 0.25
    # birth dates fit the grade: a 3rd grader is 8 on September 1
    birth = pd.to_datetime(st["birth_date"])
    age = (pd.Timestamp(f"{YEAR - 1}-09-01") - birth).dt.days / 365.25
    offset = st["grade_level"].map({g: i - 2 for i, g in enumerate(GRADES)})   # KG -> 0
    assert ((age - offset) >= 4.9).all() and ((age - offset) <= 7.1).all()


def test_names_carry_the_hard_characters(district, tiny):
    for t in (district, tiny):
        st = t["student"]
        firsts, lasts = set(st["first_name"]), set(st["last_name"])
        assert {'Robert "Bobby"', "José", "Zoë", "王芳", "Алексей", "محمد", "김민준", "Ελένη"} <= firsts
        assert {"O'Brien", "D'Angelo", "Smith, Jr.", "Nguyễn", "Müller", "Núñez", "李"} <= lasts
    st = district["student"]
    assert st["middle_name"].isna().any() and st["middle_name"].notna().any()


def test_edge_populations_exist_and_have_their_shares(district):
    pop = _edge_populations(district)
    for name, members in pop.items():
        assert members, name
    share = {name: len(members) / N for name, members in pop.items()}
    assert 0.012 <= share["no_ssid"] <= 0.03
    pk = district["student"].query("grade_level == 'PK'")["student_id"]
    assert not pk.empty and set(pk) <= pop["no_ssid"]
    assert 0.005 <= share["excluded_student"] <= 0.02
    n_enr = len(district["school_enrollment"])
    assert 0.002 <= district["school_enrollment"]["excluded_from_state_reporting"].sum() / n_enr <= 0.01
    assert 0.01 <= share["status_20"] + share["status_30"] <= 0.035
    assert 0.01 <= share["withdrew"] <= 0.035
    assert 0.005 <= share["changed_school"] <= 0.02
    assert 0.0005 <= share["reentered"] <= 0.01
    assert district["school"]["school_id"].nunique() >= 5


def test_edge_populations_exist_in_a_tiny_district(tiny):
    for name, members in _edge_populations(tiny).items():
        assert members, name


def test_withdrawals_close_their_sections_the_same_day(district):
    enr, sec_enr = district["school_enrollment"], district["section_enrollment"]
    withdrew = _edge_populations(district)["withdrew"]
    exits = enr[enr["student_id"].isin(withdrew)].groupby("student_id")["exit_date"].max()
    assert exits.between(f"{YEAR - 1}-09-01", f"{YEAR - 1}-11-30").all()         # the past part of the year
    rows = sec_enr[sec_enr["student_id"].isin(withdrew)]
    assert rows["exit_date"].notna().all()
    last = rows.groupby("student_id")["exit_date"].max()
    assert (last == exits[last.index]).all()
    assert not rows.merge(district["section"], on="section_id")["term_id"].eq(f"{YEAR}-S2").any()


def test_school_changes_move_the_section_enrollments(district):
    enr, sec_enr, sec = district["school_enrollment"], district["section_enrollment"], district["section"]
    changers = _edge_populations(district)["changed_school"]
    moves = enr[enr["student_id"].isin(changers)].sort_values(["student_id", "entry_date"])
    first = moves.groupby("student_id").nth(0).set_index("student_id")
    second = moves.groupby("student_id").nth(1).set_index("student_id")
    assert (moves.groupby("student_id").size() == 2).all()
    assert first["exit_date"].notna().all() and second["exit_date"].isna().all()
    assert (second["entry_date"] > first["exit_date"]).all()
    assert (first["school_id"] != second["school_id"]).all()
    cds = district["school"].query("excluded_from_state_reporting == 1")["school_id"].iloc[0]
    assert (second["school_id"] == cds).any()                          # some were referred to community day
    rows = sec_enr[sec_enr["student_id"].isin(changers)].merge(sec[["section_id", "school_id"]], on="section_id")
    at_first = rows[rows["school_id"] == rows["student_id"].map(first["school_id"])]
    at_second = rows[rows["school_id"] == rows["student_id"].map(second["school_id"])]
    assert len(at_first) + len(at_second) == len(rows)
    assert (at_first["exit_date"] == at_first["student_id"].map(first["exit_date"])).all()
    assert (at_second["entry_date"] >= at_second["student_id"].map(second["entry_date"])).all()
    assert set(at_second["student_id"]) == changers


def test_reentries_are_a_second_row_after_a_closed_one(district):
    sec_enr = district["section_enrollment"]
    dup = sec_enr[sec_enr.duplicated(["student_id", "section_id"], keep=False)]
    dup = dup.sort_values(["student_id", "section_id", "entry_date"])
    earlier = dup.groupby(["student_id", "section_id"]).nth(0)
    later = dup.groupby(["student_id", "section_id"]).nth(1)
    assert len(earlier) == len(later) > 0
    assert earlier["exit_date"].notna().all()
    assert (later["entry_date"].to_numpy() > earlier["exit_date"].to_numpy()).all()


def test_programs(district):
    prog = district["student_program"]
    students = prog.groupby("program_code")["student_id"].nunique() / N
    expected = {"ELL": (0.14, 0.26), "SPED": (0.10, 0.14), "504": (0.02, 0.04), "TITLE1": (0.2, 0.65),
                "GATE": (0.06, 0.10), "FOSTER": (0.002, 0.01), "HOMELESS": (0.012, 0.03), "SED": (0.45, 0.65)}
    assert set(students.index) == set(expected)
    for code, (low, high) in expected.items():
        assert low <= students[code] <= high, (code, students[code])
    ell = prog[prog["program_code"] == "ELL"]
    assert set(ell["status_code"]) == {"EL", "RFEP", "IFEP"}
    # reclassified students keep their closed EL row, ending the day before RFEP starts
    rfep = ell[ell["status_code"] == "RFEP"].set_index("student_id")
    was_el = ell[(ell["status_code"] == "EL") & ell["student_id"].isin(rfep.index)].set_index("student_id")
    assert len(was_el) == len(rfep) and (was_el["end_date"] < rfep.loc[was_el.index, "start_date"]).all()
    for code in ("SPED", "GATE", "504"):
        rows = prog[prog["program_code"] == code]
        assert (rows["end_date"] < YEAR_START).any(), code                        # exited before this year
        assert (rows["start_date"] > YEAR_START).any(), code                      # started mid-year
    title1 = prog[prog["program_code"] == "TITLE1"].merge(district["school_enrollment"], on="student_id")
    assert not title1.empty
    pk = set(district["student"].query("grade_level == 'PK'")["student_id"])
    assert not (set(ell["student_id"]) & pk)


def test_student_groups(district):
    groups, members = district["student_group"], district["student_group_member"]
    assert {"Reading intervention", "ELD 2"} <= set(groups["name"])
    assert groups["owner_staff_id"].notna().any()
    assert members["student_group_id"].isin(groups["student_group_id"]).all()
    current = district["school_enrollment"].drop_duplicates("student_id", keep="last").set_index("student_id")
    joined = members.merge(groups, on="student_group_id")
    assert (joined["school_id"] == joined["student_id"].map(current["school_id"])).all()
    assert 0.02 <= members["student_id"].nunique() / N <= 0.4


def _counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in TABLES}
    finally:
        engine.dispose()


def test_load_into_sqlite_and_read_back(district, tmp_path):
    url = f"sqlite:///{tmp_path / 'sis.sqlite'}"
    load_district(district, url)
    assert _counts(url) == {t: len(f) for t, f in district.items()}
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        names = set(conn.execute(sa.text("SELECT last_name FROM student")).scalars())
        nulls = conn.execute(sa.text("SELECT COUNT(*) FROM student WHERE ssid IS NULL")).scalar_one()
        flags = conn.execute(sa.text("SELECT DISTINCT typeof(is_active) FROM section")).scalars().all()
    engine.dispose()
    assert {"Smith, Jr.", "O'Brien", "Nguyễn", "李"} <= names
    assert nulls == district["student"]["ssid"].isna().sum()
    assert flags == ["integer"]
    load_district(district, url)                                     # reloading replaces, never appends
    assert _counts(url)["student"] == N


@pytest.mark.postgres
def test_load_into_postgres_and_read_back(district, ddl, postgres_url):
    load_district(district, postgres_url)
    assert _counts(postgres_url) == {t: len(f) for t, f in district.items()}
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        st = pd.read_sql(sa.text("SELECT student_id, ssid, first_name, middle_name, last_name FROM student"), conn)
        mine = "SELECT COUNT(*) FROM pg_constraint WHERE connamespace = current_schema()::regnamespace AND contype = "
        fks = conn.execute(sa.text(mine + "'f'")).scalar_one()
        pks = conn.execute(sa.text(mine + "'p'")).scalar_one()
        dates = conn.execute(sa.text("SELECT MIN(entry_date)::text FROM school_enrollment")).scalar_one()
    engine.dispose()
    def normalised(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.sort_values("student_id").reset_index(drop=True).astype(object)
        return frame.where(frame.notna(), None)

    expected = district["student"][["student_id", "ssid", "first_name", "middle_name", "last_name"]]
    assert normalised(st).equals(normalised(expected))              # quotes, commas, scripts and NULLs survive COPY
    assert fks == sum(len(d["foreign"]) for d in ddl.values()) and pks == len(TABLES)                         # the keys dropped for COPY are back
    assert dates == YEAR_START


def test_cli_writes_a_sqlite_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(["--students", "120", "--seed", "4", "--school-year", str(YEAR)])
    out = capsys.readouterr().out.splitlines()
    path = tmp_path / "var" / "demo" / "sis.sqlite"
    assert path.exists()
    counts = _counts(f"sqlite:///{path}")
    printed = {line.split()[0]: int(line.split()[1]) for line in out}
    assert printed == counts and counts["student"] == 120
    assert all(re.fullmatch(r"[a-z_]+\s+\d+", line) for line in out)   # counts only, never names


def test_cli_as_a_module(tmp_path):
    target = tmp_path / "nested" / "demo.sqlite"
    env = dict(os.environ)
    result = subprocess.run(
        [sys.executable, "-m", "rostering.sis.demo", "--students", "80", "--sqlite", str(target)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert target.exists() and _counts(f"sqlite:///{target}")["student"] == 80
    with pytest.raises(SystemExit):
        main(["--students", "10", "--sqlite", str(target)])


def test_rejects_bad_input(district):
    with pytest.raises(ValueError):
        generate_district(10)
    broken = dict(district, student=district["student"].drop(columns=["ssid"]))
    with pytest.raises(ValueError):
        load_district(broken, "sqlite://")
    with pytest.raises(ValueError):
        load_district({"students": district["student"]}, "sqlite://")
    assert np.issubdtype(district["term"]["school_year"].dtype, np.integer)


@pytest.mark.mariadb
def test_load_into_mariadb_and_read_back(mariadb_url):
    small = generate_district(300, seed=9, school_year=YEAR)
    load_district(small, mariadb_url)
    assert _counts(mariadb_url) == {t: len(f) for t, f in small.items()}
    engine = sa.create_engine(mariadb_url)
    with engine.connect() as conn:
        names = conn.execute(sa.text("SELECT student_id, first_name, last_name FROM student")).all()
    engine.dispose()
    expected = small["student"].set_index("student_id")
    assert all(expected.loc[sid, "first_name"] == first and expected.loc[sid, "last_name"] == last
               for sid, first, last in names)
