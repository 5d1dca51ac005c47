"""The snapshot input checks, on hand-made rows: exactly the bad records go, each reported by rule, without values."""
import pandas as pd

from rostering.sis.checks import check_table


def test_each_rule_rejects_exactly_its_rows():
    students = pd.DataFrame({
        "student_id": ["1", "2", "2", "4", None],
        "first_name": ["Ana", None, "Bo", "  ", "Cy"],
        "last_name": ["Lee", "Li", "Li", "Ng", "Ox"],
        "grade_level": ["03", "03", "04", "05", "06"],
    })
    result = check_table("students", students)
    assert list(result.clean["student_id"]) == ["1"]
    got = {(r.row, r.column, r.rule) for r in result.rejected.itertuples()}
    assert got == {
        (2, "first_name", "students.first_name_required"),
        (2, "student_id", "students.key_unique"),
        (3, "student_id", "students.key_unique"),
        (4, "first_name", "students.first_name_required"),
        (5, "student_id", "students.student_id_required"),
    }
    assert "Ana" not in result.rejected.to_csv() and "Bo" not in result.rejected.to_csv()


def test_dates_out_of_order_are_rejected_open_ends_are_not():
    enrollments = pd.DataFrame({
        "student_id": ["1", "2", "3"], "section_id": ["A", "A", "A"],
        "entry_date": ["2026-08-13", "2026-09-01", "2026-09-01"], "exit_date": [None, "2026-08-01", "2026-09-01"],
    })
    result = check_table("section_enrollments", enrollments)
    assert list(result.clean["student_id"]) == ["1", "3"]
    assert list(result.rejected["rule"]) == ["section_enrollments.exit_date_not_before_entry_date"]
    assert list(result.rejected["sis_key"]) == ["2"]


def test_two_active_primary_enrollments_are_both_rejected():
    enrollments = pd.DataFrame({
        "student_id": ["1", "1", "2", "2", "3"], "school_id": ["A", "B", "A", "B", "A"],
        "entry_date": ["2026-08-13"] * 5, "exit_date": [None] * 5,
        "enrollment_status": ["10", "10", "10", "20", "10"],
    })
    result = check_table("school_enrollments", enrollments)
    assert list(zip(result.clean["student_id"], result.clean["school_id"])) == [("2", "A"), ("2", "B"), ("3", "A")]
    assert list(result.rejected["rule"]) == ["school_enrollments.one_primary_enrollment"] * 2
    assert list(result.rejected["sis_key"]) == ["1", "1"] and list(result.rejected["row"]) == [1, 2]
