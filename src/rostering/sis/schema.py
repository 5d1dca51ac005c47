"""Create the SIS model (include/sql/schema/sis_schema.sql) in any SQLAlchemy database."""
from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa

from rostering.paths import sql_dir

# Child tables last, so dropping in reverse order respects foreign keys.
TABLES = (
    "district", "school", "term", "course", "section", "staff", "staff_school", "section_staff", "student",
    "school_enrollment", "section_enrollment", "student_program", "student_group", "student_group_member",
)


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
