"""CERS group files from the fixture district, against files worked out by hand (tests/fixtures/cers_expected/)."""
from __future__ import annotations

import pytest

from cers_helpers import EXPECTED, FIXTURES, cers_profile, make_district, rows, snapshot_of
from rostering.cers import vendor
from rostering.cers.build import build_groups
from rostering.cers.profiles import CersProfileError, load_profiles, parse_profile
from rostering.cers.spec import HEADER

PROFILE_NAMES = sorted(p.stem for p in EXPECTED.glob("*.csv"))


@pytest.fixture(scope="module")
def district(tmp_path_factory):
    return make_district(tmp_path_factory.mktemp("cers") / "sis.sqlite")


@pytest.fixture(scope="module")
def snapshot(district, tmp_path_factory):
    return snapshot_of(district, tmp_path_factory.mktemp("snap"))


@pytest.fixture(scope="module")
def per_school(snapshot, tmp_path_factory):
    """ps_sections, one file per school (built once for the tests that only read it)."""
    out = tmp_path_factory.mktemp("per_school")
    return vendor.build(snapshot, cers_profile(), out, extra={"profiles": ["ps_sections"]}), out


@pytest.fixture(scope="module")
def consolidated(snapshot, tmp_path_factory):
    out = tmp_path_factory.mktemp("consolidated")
    vendor.build(snapshot, cers_profile(), out, extra={"profiles": ["ps_sections"], "consolidate": True})
    return out / "student_groups.csv"


def ssids_in(folder) -> set[str]:
    return {r["student_ssid"] for path in folder.glob("*.csv") for r in rows(path) if r["student_ssid"]}


def test_every_roster_type_and_name_pattern_has_a_hand_worked_file():
    catalog = load_profiles(FIXTURES / "cers_profiles.yaml")
    assert set(PROFILE_NAMES) == set(catalog)
    assert {p.roster_type for p in catalog.values()} == {"master_schedule", "elementary_teachers",
                                                         "elementary_grade_level", "counselor", "student_group"}
    assert {p.name_pattern for p in catalog.values()} == {"powerschool", "teacher_period", "teacher_section",
                                                          "teacher_course_title", "teacher", "grade", "group_code"}


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_files_match_the_hand_worked_expectation(snapshot, tmp_path, name):
    result = vendor.build(snapshot, cers_profile(), tmp_path, extra={"profiles": [name], "consolidate": True})
    assert (tmp_path / "student_groups.csv").read_bytes() == (EXPECTED / f"{name}.csv").read_bytes()
    assert result["files"] == {"student_groups.csv": len(rows(EXPECTED / f"{name}.csv"))}
    report = vendor.validate(cers_profile(), tmp_path)
    assert report.ok, report.summary()


def test_exclusions_are_counted_by_reason(per_school):
    result, _ = per_school
    assert result["dropped"] == {
        "student.excluded_from_state_reporting": 1,       # 1011
        "enrollment.excluded_from_state_reporting": 1,    # 1012
        "school.excluded_from_state_reporting": 1,        # 1031 at S3
        "school.cds_code_not_14_digits": 1,               # 1041 at S4
        "student.no_ssid": 1,                             # 1013
        "student.ssid_not_10_digits": 1,                  # 1015
        "student.ssid_shared_with_another_student": 2,    # 1016, 1017
        "enrollment.status_not_primary": 2,               # 1014; 1028 at S1 (status 30)
        "student.no_qualifying_section": 6,               # 1021-1025 at S2, 1027 at S1
        "staff.no_email": 1,                              # T8
        "staff.email_invalid": 1,                         # T13
        "section.no_teacher": 1,                          # SEC11
        "group.no_eligible_students": 2,                  # SEC8 (S3), SEC12 (S4)
    }
    details = result["details"]
    assert details["groups"] == {"total": 6, "split_into_parts": 0, "by_profile": {"ps_sections": 6}}
    assert details["students_in_groups"] == 11 and details["profiles"] == ["ps_sections"]


def test_one_file_per_school_holds_exactly_that_schools_rows(per_school):
    result, tmp_path = per_school
    assert result["files"] == {"student_groups_19647330000001.csv": 8, "student_groups_19647330000002.csv": 21}
    expected = rows(EXPECTED / "ps_sections.csv")
    for cds in ("19647330000001", "19647330000002"):
        got = rows(tmp_path / f"student_groups_{cds}.csv")
        assert got == [r for r in expected if r["school_natural_id"] == cds]
    assert vendor.validate(cers_profile(), tmp_path).ok


def test_scheduled_profiles_consolidated_into_one_file(snapshot, tmp_path):
    """No profile named: the ones with include_in_scheduled_run (ps_sections, counselors), in one file."""
    result = vendor.build(snapshot, cers_profile(), tmp_path, extra={"profiles": [], "consolidate": True})
    assert result["details"]["profiles"] == ["counselors", "ps_sections"]
    got = rows(tmp_path / "student_groups.csv")
    expected = rows(EXPECTED / "ps_sections.csv") + rows(EXPECTED / "counselors.csv")
    key = lambda r: (r["school_natural_id"], r["group_name"])  # noqa: E731
    assert sorted(got, key=key) == sorted(expected, key=key)  # same rows, counselor group sorted into school S2
    assert [r["group_name"] for r in got] == [r["group_name"] for r in sorted(got, key=key)]
    assert vendor.validate(cers_profile(), tmp_path).ok


def test_co_teacher_and_job_share_are_users_aides_are_not(consolidated):
    users = {r["group_user_login"] for r in rows(consolidated)
             if r["group_name"] == "2027LiB2AM6001" and r["group_user_login"]}
    assert users == {"bo.li@cers.example.org", "carl.smith@cers.example.org", "jo.share@cers.example.org"}
    # SEC10 has two leads: the earlier (T2) names the group, the later (T3) is a user too
    sec10 = {r["group_user_login"] for r in rows(consolidated)
             if r["group_name"] == "2027LiB2AM7008" and r["group_user_login"]}
    assert sec10 == {"bo.li@cers.example.org", "carl.smith@cers.example.org"}


def test_rebuild_is_byte_identical(snapshot, per_school, tmp_path):
    _, earlier = per_school
    vendor.build(snapshot, cers_profile(), tmp_path / "b", extra={"profiles": ["ps_sections"]})
    first, second = sorted(earlier.glob("*.csv")), sorted((tmp_path / "b").glob("*.csv"))
    assert [p.name for p in first] == [p.name for p in second] and len(first) == 2
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second))
    payload = vendor.payload(cers_profile(), earlier, tmp_path / "payload")
    assert [p.name for p in first] == [p.split("/")[-1] for p in (w.path for w in payload)]
    assert all(w.rows == len(rows(first[i])) for i, w in enumerate(payload))


def test_file_conventions(consolidated):
    path = consolidated
    raw = path.read_bytes()
    assert raw.startswith(",".join(HEADER).encode() + b"\r\n") and not raw.startswith(b"\xef\xbb\xbf")
    assert b'"' not in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_school_subset_builds_only_those_schools(snapshot, tmp_path):
    result = vendor.build(snapshot, cers_profile(), tmp_path, schools=("S1",), extra={"profiles": ["ps_sections"]})
    assert list(result["files"]) == ["student_groups_19647330000001.csv"]
    with pytest.raises(CersProfileError, match="none of the requested schools"):
        vendor.build(snapshot, cers_profile(), tmp_path / "x", schools=("S2",), extra={"profiles": ["elem_teachers"]})


def test_unknown_profile_is_a_clear_error(snapshot, tmp_path):
    with pytest.raises(CersProfileError, match=r"unknown CERS profile\(s\) \['nope'\]"):
        vendor.build(snapshot, cers_profile(), tmp_path, extra={"profiles": ["nope"]})


@pytest.mark.parametrize("body, message", [
    ({"roster_type": "master_schedule", "filters": {"grades": ["03"]}}, "do not apply to master_schedule"),
    ({"roster_type": "counselor", "name_pattern": "powerschool"}, "name_pattern must be one of"),
    ({"roster_type": "counselor", "subject": "section"}, "subject must be one of"),
    ({"roster_type": "master_schedule", "filter": {}}, "unknown key"),
    ({"roster_type": "homeroom"}, "roster_type must be one of"),
    ({"roster_type": "student_group", "name_prefix": "a,b"}, "name_prefix"),
    ({"roster_type": "master_schedule", "filters": {"primary_classes_only": "yes"}}, "true or false"),
])
def test_profile_mistakes_are_refused(body, message):
    with pytest.raises(CersProfileError, match=message):
        parse_profile("p", body)


def test_the_repository_profiles_load():
    from rostering.paths import config_dir

    catalog = load_profiles(config_dir() / "cers_profiles.yaml")
    assert sorted(p.name for p in catalog.values() if p.include_in_scheduled_run) == [
        "caaspp_sections", "counselor_caseloads"]


# -- every selection rule excludes exactly its student --------------------------------------------------------
# The rules applied in Python (the snapshot keeps flags and statuses on purpose): one student per rule; undoing the
# one thing that excludes the student must bring that student -- and nobody else -- into the file.

RULE_CASES = [
    # (student, reason, snapshot table, key column, key, column, value that makes the student eligible)
    ("1011", "student.excluded_from_state_reporting", "students", "student_id", "1011",
     "excluded_from_state_reporting", 0),
    ("1012", "enrollment.excluded_from_state_reporting", "school_enrollments", "student_id", "1012",
     "excluded_from_state_reporting", 0),
    ("1031", "school.excluded_from_state_reporting", "schools", "school_id", "S3", "excluded_from_state_reporting", 0),
    ("1041", "school.cds_code_not_14_digits", "schools", "school_id", "S4", "cds_code", "19647330000004"),
    ("1013", "student.no_ssid", "students", "student_id", "1013", "ssid", "1000000013"),
    ("1015", "student.ssid_not_10_digits", "students", "student_id", "1015", "ssid", "1000000015"),
    ("1016", "student.ssid_shared_with_another_student", "students", "student_id", "1017", "ssid", "1000000017"),
    ("1014", "enrollment.status_not_primary", "school_enrollments", "student_id", "1014", "enrollment_status", "10"),
    ("1021", "student.no_qualifying_section", "sections", "section_id", "SEC4", "caaspp_subject", "ALL"),
]
APPEARING = {"1016": {"1000000016", "1000000017"}}  # both records sharing the SSID come back once it is fixed


class EditedSnapshot:
    """The snapshot's frames with one value changed (the reader interface build_groups takes)."""

    def __init__(self, snapshot, table=None, key_column=None, key=None, column=None, value=None):
        self.frames = {name: snapshot.read(name) for name in snapshot.row_counts}
        if table:
            frame = self.frames[table]
            frame.loc[frame[key_column] == key, column] = value

    def read(self, name):
        return self.frames[name].copy()


def built_ssids(read, profile_name="ps_sections"):
    result = build_groups(read, [load_profiles(FIXTURES / "cers_profiles.yaml")[profile_name]], school_year=2027)
    return result, set(result.rows["student_ssid"].dropna())


@pytest.fixture(scope="module")
def unedited(snapshot):
    return built_ssids(EditedSnapshot(snapshot).read)


@pytest.mark.parametrize("student, reason, table, key_column, key, column, value", RULE_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in RULE_CASES])
def test_each_rule_excludes_exactly_its_student(snapshot, unedited, student, reason, table, key_column, key, column,
                                                value):
    before, before_ssids = unedited
    ssid = f"10000000{student[2:]}"
    appearing = APPEARING.get(student, {ssid})
    assert ssid not in before_ssids and before.dropped[reason] >= len(appearing)

    after, after_ssids = built_ssids(EditedSnapshot(snapshot, table, key_column, key, column, value).read)
    assert after_ssids - before_ssids == appearing  # the one fix brings in that student and nobody else
    assert after.dropped.get(reason, 0) == before.dropped[reason] - len(appearing)


def test_sections_not_active_on_the_as_of_date_do_not_qualify(district, unedited, tmp_path):
    """Decided by the snapshot SQL: spring, inactive, last year's, left, and another school's sections."""
    fixes = (
        "UPDATE section SET term_id = 'Y2027' WHERE section_id IN ('SEC5', 'SEC7')",       # 1022 spring, 1024 old
        "UPDATE section_enrollment SET entry_date = '2026-08-13' WHERE student_id IN ('1022', '1024')",
        "UPDATE section_staff SET start_date = '2026-08-13' WHERE section_id = 'SEC5'",
        "INSERT INTO section_staff (section_id, staff_id, staff_role, start_date) VALUES ('SEC7', 'T2', 'lead', "
        "'2026-08-13')",
        "UPDATE section SET is_active = 1 WHERE section_id = 'SEC6'",                         # 1023 inactive
        "UPDATE section_enrollment SET exit_date = NULL WHERE student_id = '1025'",           # 1025 left the class
        "UPDATE school_enrollment SET school_id = 'S2' WHERE student_id = '1027'",            # 1027 other school
    )
    before, before_ssids = unedited
    after, after_ssids = built_ssids(snapshot_of(district, tmp_path, statements=fixes).read)
    assert after_ssids - before_ssids == {"1000000022", "1000000023", "1000000024", "1000000025", "1000000027"}
    assert after.dropped["student.no_qualifying_section"] == before.dropped["student.no_qualifying_section"] - 5


# -- the 200-student split ---------------------------------------------------------------------------------------


def test_a_class_of_205_is_split_into_200_and_5(tmp_path):
    db = make_district(tmp_path / "big.sqlite", FIXTURES / "cers_big_section.sql")
    snap = snapshot_of(db, tmp_path)
    result = vendor.build(snap, cers_profile(), tmp_path / "build",
                          extra={"profiles": ["ps_sections", "ms_teacher_period"], "consolidate": True})
    got = rows(tmp_path / "build" / "student_groups.csv")
    by_group: dict[str, list[dict[str, str]]] = {}
    for row in got:
        by_group.setdefault(row["group_name"], []).append(row)
    # PowerSchool pattern: part 1 keeps PowerSchool's name, part 2 gets "2"; Aeries patterns number every part
    big = {name: [r["student_ssid"] for r in group if r["student_ssid"]] for name, group in by_group.items()
           if name.startswith("2027LiB3AM6009") or name.startswith("201LiBo3")}
    assert sorted(big) == sorted(["2027LiB3AM6009", "2027LiB3AM60092", "201LiBo31", "201LiBo32"])
    for first, second in (("2027LiB3AM6009", "2027LiB3AM60092"), ("201LiBo31", "201LiBo32")):
        assert big[first] == [f"20000{i:05d}" for i in range(1, 201)]  # SSID order, 200 students
        assert big[second] == [f"20000{i:05d}" for i in range(201, 206)]
        for name in (first, second):  # every part: the subject once, all of the class's users
            group = by_group[name]
            assert [r["subject_code"] for r in group if r["subject_code"]] == ["Math"]
            assert {r["group_user_login"] for r in group if r["group_user_login"]} >= {
                "bo.li@cers.example.org", "jo.share@cers.example.org"}
    assert result["details"]["groups"]["split_into_parts"] == 2
    assert vendor.validate(cers_profile(), tmp_path / "build").ok

    limited = vendor.build(snap, cers_profile(max_students_per_group=100), tmp_path / "b2",
                           extra={"profiles": ["ps_sections"], "consolidate": True})
    names = [r["group_name"] for r in rows(tmp_path / "b2" / "student_groups.csv")]
    assert {"2027LiB3AM6009", "2027LiB3AM60092", "2027LiB3AM60093"} <= set(names)
    assert limited["details"]["groups"]["split_into_parts"] == 1


def test_nothing_to_send_fails_validation_clearly(snapshot, tmp_path):
    result = vendor.build(snapshot, cers_profile(), tmp_path, schools=("S3",), extra={"profiles": ["ps_sections"]})
    assert result["files"] == {} and result["dropped"]["school.excluded_from_state_reporting"] == 1
    report = vendor.validate(cers_profile(), tmp_path)
    assert [f.rule for f in report.findings] == ["no_data_rows"] and "no student group was built" in report.summary()


def test_a_dry_run_summary_says_where_to_view_and_download_the_files(per_school, tmp_path):
    import datetime as dt

    from rostering.run_options import RunOptions
    from rostering.summary import run_summary

    result, build_dir = per_school
    files = vendor.payload(cers_profile(), build_dir, tmp_path / "payload")
    run = RunOptions.from_params({"dry_run": True, "as_of_date": "2026-11-23"},
                                 run_after=dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc), timezone="UTC")
    packaged = {"files": [{"path": f.path, "rows": f.rows, "size": f.size, "sha256": f.sha256} for f in files]}
    summary = run_summary(cers_profile(), run, {"rows": {}}, result, packaged, None)
    assert summary["delivered"] is False and summary["not_delivered_because"].startswith("dry run")
    assert summary["files_kept_in"] == str(tmp_path / "payload")
    assert summary["files"] == result["files"] and summary["details"]["groups"]["total"] == 6
