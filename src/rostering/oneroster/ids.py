"""Stable OneRoster sourcedIds, derived from SIS natural keys.

Receivers anchor history to sourcedIds (a changed id is a new person), so ids are pure functions of SIS keys: the
same SIS row gets the same id on every run. Prefixes keep id spaces apart (staff vs students, class vs course), and
a class id carries its school because section numbers repeat across schools. Characters outside OneRoster's GUID set
(``0-9 A-Z a-z . - _ / @``) become ``_``; the validator then checks case-insensitive uniqueness, so a collision
created by that mapping (or by SIS keys differing only in case) stops the run instead of merging two people.
"""
from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_NOT_GUID = r"[^0-9A-Za-z.\-_/@]"


def safe(series: pd.Series) -> pd.Series:
    return series.astype("string").str.replace(_NOT_GUID, "_", regex=True)


def district_id(district: pd.Series) -> pd.Series:
    return "d-" + safe(district)


def school_id(school: pd.Series) -> pd.Series:
    return "sch-" + safe(school)


def term_id(term: pd.Series) -> pd.Series:
    return "term-" + safe(term)


def course_id(course: pd.Series) -> pd.Series:
    return "crs-" + safe(course)


def class_id(school: pd.Series, section: pd.Series) -> pd.Series:
    return "cls-" + safe(school) + "-" + safe(section)


def user_id(key: pd.Series, prefix: str) -> pd.Series:
    return prefix + safe(key)


def enrollment_id(class_sourced_id: pd.Series, user_sourced_id: pd.Series, begin_date: pd.Series) -> pd.Series:
    """Class + user + begin date: a re-entry into the same class is a new enrollment, not a changed one."""
    parts = [pa.array(part.astype("string").array) for part in (class_sourced_id, user_sourced_id, begin_date)]
    parts[2] = pc.replace_substring(parts[2], "-", "")
    # one pass over two million rows instead of five intermediate columns; a missing part gives a missing id
    joined = pc.binary_join_element_wise(pa.scalar("e", parts[0].type), *parts, pa.scalar("-", parts[0].type))
    return pd.Series(pd.arrays.ArrowStringArray(joined), index=class_sourced_id.index).astype("string")
