"""Create the SIS model (include/sql/schema/sis_schema.sql) in any SQLAlchemy database."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, get_args

import sqlalchemy as sa

from rostering.paths import sql_dir

# Child tables last, so dropping in reverse order respects foreign keys.
TABLES = (
    "district", "school", "term", "course", "section", "staff", "staff_school", "section_staff", "student",
    "school_enrollment", "section_enrollment", "student_program", "student_group", "student_group_member",
)

# --------------------------------------------------------------------------------------------------------------------
# The tables' columns, in DDL order (tests/test_demo_district.py checks them against the DDL). Every SIS source
# produces exactly these (rostering.sis.sources).

COLUMNS: dict[str, tuple[str, ...]] = {
    "district": ("district_id", "name", "cds_district_code", "nces_id", "state_code"),
    "school": (
        "school_id", "district_id", "school_number", "name", "cds_code", "nces_id", "school_level", "low_grade",
        "high_grade", "classification", "is_active", "excluded_from_state_reporting",
    ),
    "term": ("term_id", "school_id", "school_year", "term_type", "title", "start_date", "end_date", "parent_term_id"),
    "course": ("course_id", "course_number", "title", "department", "subject_area"),
    "section": (
        "section_id", "school_id", "course_id", "term_id", "section_number", "period_code", "class_expression", "room",
        "caaspp_subject", "class_type", "is_active", "start_date", "end_date",
    ),
    "staff": (
        "staff_id", "first_name", "middle_name", "last_name", "email", "username", "state_educator_id", "staff_role",
        "is_active", "initial_password",
    ),
    "staff_school": ("staff_id", "school_id", "is_home"),
    "section_staff": ("section_id", "staff_id", "staff_role", "start_date", "end_date"),
    "student": (
        "student_id", "ssid", "first_name", "middle_name", "last_name", "grade_level", "birth_date", "email",
        "username", "counselor_staff_id", "home_language_code", "reading_level", "reading_level_imputed",
        "excluded_from_state_reporting",
    ),
    "school_enrollment": (
        "student_id", "school_id", "entry_date", "exit_date", "enrollment_status", "excluded_from_state_reporting",
    ),
    "section_enrollment": ("student_id", "section_id", "entry_date", "exit_date"),
    "student_program": ("student_id", "program_code", "status_code", "start_date", "end_date"),
    "student_group": ("student_group_id", "school_id", "group_code", "name", "owner_staff_id"),
    "student_group_member": ("student_group_id", "student_id"),
}

# The model's value vocabularies (the DDL's comments): option maps of every source are typed with them, so a typo in
# config/sis.yaml fails at parse time instead of turning into wrong rosters.
CedsGrade = Literal["PK", "TK", "KG", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12"]
TermType = Literal["schoolYear", "semester", "term", "gradingPeriod"]
StaffRole = Literal["teacher", "administrator", "district_administrator", "counselor", "aide", "other"]
SectionStaffRole = Literal["lead", "co_teacher", "job_share", "aide"]
SchoolLevel = Literal["elementary", "middle", "high", "other"]
CaasppSubject = Literal["ELA", "Math", "ALL"]
EnglishLearnerStatus = Literal["EL", "RFEP", "IFEP"]
STAFF_ROLES: tuple[str, ...] = get_args(StaffRole)

# Each table's primary key (the DDL's): sources return their tables sorted by it; tests compare tables by it.
PRIMARY_KEYS: dict[str, list[str]] = {
    "district": ["district_id"], "school": ["school_id"], "term": ["term_id"], "course": ["course_id"],
    "section": ["section_id"], "staff": ["staff_id"], "staff_school": ["staff_id", "school_id"],
    "section_staff": ["section_id", "staff_id", "start_date"], "student": ["student_id"],
    "school_enrollment": ["student_id", "school_id", "entry_date"],
    "section_enrollment": ["student_id", "section_id", "entry_date"],
    "student_program": ["student_id", "program_code", "start_date"], "student_group": ["student_group_id"],
    "student_group_member": ["student_group_id", "student_id"],
}


def split_statements(text: str) -> list[str]:
    """Statements of a SQL script: ``--`` comments removed, split at a semicolon that ends a line."""
    text = re.sub(r"--[^\n]*", "", text)
    return [s.strip() for s in re.split(r";\s*(?:\n|$)", text) if s.strip()]


def ddl_statements() -> list[str]:
    return split_statements((sql_dir() / "schema" / "sis_schema.sql").read_text(encoding="utf-8"))


def run_script(engine: sa.Engine, path: Path) -> None:
    """Execute a SQL script (e.g. a test fixture of INSERTs) in one transaction."""
    with engine.begin() as conn:
        for statement in split_statements(path.read_text(encoding="utf-8")):
            conn.execute(sa.text(statement))


def create_schema(engine: sa.Engine, *, drop_existing: bool = False) -> None:
    with engine.begin() as conn:
        if drop_existing:
            for table in reversed(TABLES):
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        for statement in ddl_statements():
            conn.execute(sa.text(statement))
