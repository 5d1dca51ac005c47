"""``sql_model``: the SIS-neutral model (include/sql/schema/sis_schema.sql) in a database the district fills.

The snapshot SQL (include/sql/snapshot/*.sql) runs in that database itself -- on PostgreSQL through ``COPY`` -- so
this source has no ``read``: rostering.sis.snapshot hands its engine straight to the extraction.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import sqlalchemy as sa


@dataclass
class SqlModelSource:
    engine: sa.Engine
    name: ClassVar[str] = "sql_model"
