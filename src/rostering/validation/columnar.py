"""The expectation suites checked column by column on Arrow data: an exact pass/fail screen in front of GX.

A file that passes every rule (the normal night) is judged here, on every row, in about a second for a
500,000-student district; Great Expectations (whose import alone takes 5-8 s of a task) then runs only for a file
where a rule fails or cannot be judged here, and it produces the findings (counts, line numbers, messages) exactly as
before. The suites stay the single source of rules (``include/expectations/*.json``); nothing is sampled.

Each supported expectation is evaluated with the same pandas call GX's pandas engine makes (GX 1.24
``column_map_metrics``): nulls are left out of the map expectations, ``match_regex`` is
``column.astype(str).str.contains(regex)``, ``be_in_set`` is ``column.isin(value_set)``, ``be_unique`` flags every
repeated non-null value, ``not_be_null``/``be_null`` count nulls. ``tests/test_columnar_validation.py`` compares the
verdicts with GX's on generated frames. Anything else -- another expectation type, another keyword (``mostly``,
``row_condition``, …), a missing column, a column that is not Arrow-backed strings, an error -- is "cannot judge",
and GX decides.

``ROSTERING_VALIDATION_ENGINE=gx`` turns the screen off (every file through GX), e.g. to audit it.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rostering.frames import all_distinct, holds_line_break, is_arrow_strings, string_series, value_bytes
from rostering.oneroster import spec

ENGINE_ENV = "ROSTERING_VALIDATION_ENGINE"

# expectation type -> the keyword arguments it may carry here (besides "column")
SUPPORTED: dict[str, frozenset[str]] = {
    "expect_column_values_to_not_be_null": frozenset(),
    "expect_column_values_to_be_null": frozenset(),
    "expect_column_values_to_be_unique": frozenset(),
    "expect_column_values_to_match_regex": frozenset({"regex"}),
    "expect_column_values_to_not_match_regex": frozenset({"regex"}),
    "expect_column_values_to_be_in_set": frozenset({"value_set"}),
}


def enabled() -> bool:
    return os.environ.get(ENGINE_ENV, "").strip().lower() != "gx"


def suite_passes(frame: pd.DataFrame, expectations: list[dict[str, Any]]) -> bool:
    """True only when every expectation certainly holds on every row of ``frame``; False when one fails or when
    one cannot be judged here (the caller then runs GX)."""
    return all(expectation_passes(frame, expectation) is True for expectation in expectations)


def expectation_passes(frame: pd.DataFrame, expectation: dict[str, Any]) -> bool | None:
    """True (holds), False (fails) or None (cannot judge here)."""
    kind = expectation.get("type")
    kwargs = dict(expectation.get("kwargs") or {})
    column = kwargs.pop("column", None)
    if kind not in SUPPORTED or set(kwargs) - SUPPORTED[kind] or column not in frame.columns:
        return None
    if not isinstance(column, str) or list(frame.columns).count(column) != 1:
        return None
    if not is_arrow_strings(frame, [column]):
        return None
    try:
        return _evaluate(kind, kwargs, frame[column])
    except Exception:  # noqa: BLE001 - GX reports what it makes of it ("rule could not be evaluated")
        return None


def _arrow(series: pd.Series) -> pa.ChunkedArray:
    array = pa.array(series.array)
    return array if isinstance(array, pa.ChunkedArray) else pa.chunked_array([array])


def _evaluate(kind: str, kwargs: dict[str, Any], series: pd.Series) -> bool | None:
    array = _arrow(series)
    nulls = array.null_count
    if kind == "expect_column_values_to_not_be_null":
        return nulls == 0
    if kind == "expect_column_values_to_be_null":
        return nulls == len(array)
    present = series[series.notna()] if nulls else series  # GX leaves nulls out of the map expectations
    if len(present) == 0:
        return True
    if kind == "expect_column_values_to_be_unique":
        return all_distinct(array)
    if kind == "expect_column_values_to_be_in_set":
        value_set = kwargs.get("value_set")
        if value_set is None:
            return True
        return bool(present.isin(value_set).all())
    regex = kwargs.get("regex")
    if not isinstance(regex, str):
        return None
    if _certainly_holds(kind, regex, array):
        return True
    if _few_distinct(array):  # dates, codes: the same verdict per value, so judge each distinct value once
        present = string_series(pc.unique(array.combine_chunks()).drop_null())
    found = present.astype(str).str.contains(regex)
    if found.isna().any():
        return None
    if kind == "expect_column_values_to_match_regex":
        return bool(found.all())
    return not bool(found.any())  # expect_column_values_to_not_match_regex


# --------------------------------------------------------------------------------------------------------------------
# Byte-level fast paths for the suites' most common patterns. Each one only ever answers "certainly holds" (from the
# column's raw UTF-8 bytes and value lengths); anything else goes through the pandas call above, which decides.

_GUID = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-_/@"
ID_REGEX = spec.GUID_PATTERN  # a OneRoster sourcedId, as the suites write it
ID_LIST_REGEX = rf"^{spec.GUID_ITEM}(?:,{spec.GUID_ITEM})*\Z"  # a comma-separated list of them
LINE_BREAK_REGEX = "[\\r\\n]"


def _values(array: pa.ChunkedArray) -> tuple[bytes, np.ndarray]:
    """(the UTF-8 bytes of all non-null values, back to back; each value's length in bytes)."""
    values = array.combine_chunks().drop_null()
    return value_bytes(values), pc.binary_length(values).to_numpy(zero_copy_only=False)


def _only(raw: bytes, allowed: bytes) -> bool:
    return not raw.translate(None, allowed)  # deleting every allowed byte leaves nothing


def _certainly_holds(kind: str, regex: str, array: pa.ChunkedArray) -> bool:
    if len(array) == array.null_count:
        return False
    if kind == "expect_column_values_to_not_match_regex" and regex == LINE_BREAK_REGEX:
        return not holds_line_break(array)
    if kind != "expect_column_values_to_match_regex" or regex not in (ID_REGEX, ID_LIST_REGEX):
        return False
    raw, lengths = _values(array)
    if regex == ID_REGEX:  # only GUID characters, 1..255 of them
        return _only(raw, _GUID) and lengths.min() >= 1 and lengths.max() <= 255
    # A list: only GUID characters and commas, no empty item (no leading, trailing or double comma), and a whole
    # value of at most 255 bytes, so no item can be longer.
    if not (_only(raw, _GUID + b",") and lengths.min() >= 1 and lengths.max() <= 255):
        return False
    values = array.combine_chunks().drop_null()
    return not (pc.any(pc.starts_with(values, ",")).as_py() or pc.any(pc.ends_with(values, ",")).as_py()
                or pc.any(pc.match_substring(values, ",,")).as_py())


def _few_distinct(array: pa.ChunkedArray, sample: int = 10_000) -> bool:
    """Whether a column repeats its values a lot (judged on its first rows): then judging distinct values is
    cheaper."""
    if len(array) < 10 * sample:
        return False
    head = array.slice(0, sample)
    return len(pc.unique(head)) * 20 < sample
