"""The columnar screen's shortcuts for big files must give the verdict of the plain check.

tests/test_columnar_validation.py compares the screen with Great Expectations on small generated columns; these
tests cover what only happens on large ones: byte-level checks of ids and line breaks, checking each distinct value
of a repetitive column once, and uniqueness of a column that is already sorted.
"""
from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from rostering.frames import all_distinct
from rostering.validation import columnar

ROWS = 120_000  # above the size where the distinct-value shortcut is tried
DATE = "^\\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\\d|3[01])$"


def _verdict(values: list, kind: str, **kwargs) -> bool | None:
    frame = pd.DataFrame({"c": pd.Series(values, dtype="string[pyarrow]")})
    return columnar.expectation_passes(frame, {"type": kind, "kwargs": {"column": "c", **kwargs}})


def _plain(values: list, regex: str, *, match: bool) -> bool:
    found = pd.Series([v for v in values if v is not None], dtype="string[pyarrow]").astype(str).str.contains(regex)
    return bool(found.all()) if match else not bool(found.any())


@pytest.mark.parametrize("bad", [None, "2027-02-30x", "2027-13-01", "2027-1-01", "٢٠٢٧-02-01"])
def test_a_repetitive_date_column_is_judged_like_every_row(bad):
    values = [f"2027-0{1 + i % 9}-1{i % 10}" for i in range(ROWS)]
    if bad is not None:
        values[ROWS - 7] = bad  # far past the rows the shortcut samples
    values[5] = None
    expected = _plain(values, DATE, match=True)
    assert _verdict(values, "expect_column_values_to_match_regex", regex=DATE) is expected
    assert expected is (bad is None or bad.startswith("٢"))  # pandas' (and GX's) \\d takes Arabic-Indic digits


@pytest.mark.parametrize("bad", [None, "e-cls-1 2", "é-1", "", "x" * 256, "a\n", "a,b"])
def test_ids_are_judged_like_the_regex(bad):
    values = [f"e-cls-{i}-stu/{i}@x.y_z" for i in range(ROWS)]
    if bad is not None:
        values[-3] = bad
    expected = _plain(values, columnar.ID_REGEX, match=True)
    assert _verdict(values, "expect_column_values_to_match_regex", regex=columnar.ID_REGEX) is expected
    assert expected is (bad is None)  # "a\n" too: the suites end their patterns in \Z, not "$"


@pytest.mark.parametrize("bad", [None, ",sch-1", "sch-1,", "sch-1,,sch-2", "sch 1", "x" * 300, "sch-1,é"])
def test_id_lists_are_judged_like_the_regex(bad):
    values = [f"sch-{i % 700},sch-{i % 13}" if i % 3 else f"sch-{i}" for i in range(ROWS)]
    if bad is not None:
        values[ROWS // 2] = bad
    expected = _plain(values, columnar.ID_LIST_REGEX, match=True)
    assert _verdict(values, "expect_column_values_to_match_regex", regex=columnar.ID_LIST_REGEX) is expected
    assert expected is (bad is None)


@pytest.mark.parametrize("bad", [None, "two\nlines", "carriage\rreturn", "crlf\r\n"])
def test_line_breaks_are_found_in_any_row(bad):
    values = [f"Name {i}" for i in range(ROWS)]
    if bad is not None:
        values[ROWS - 1] = bad
    expected = _plain(values, columnar.LINE_BREAK_REGEX, match=False)
    assert _verdict(values, "expect_column_values_to_not_match_regex", regex=columnar.LINE_BREAK_REGEX) is expected
    assert expected is (bad is None)


@pytest.mark.parametrize("values, distinct", [
    (["a", "b", "c"], True),                 # sorted: answered without sorting
    (["a", "b", "b", "c"], False),           # sorted with a repeat
    (["c", "a", "b"], True),                 # not sorted: sorted to compare neighbours
    (["c", "a", "c"], False),
    (["a", None, "b", None], True),          # missing values are not values
    (["B", "a"], True),                      # byte order, case counts
])
def test_all_distinct(values, distinct):
    assert all_distinct(pa.chunked_array([pa.array(values, pa.string())])) is distinct


def test_an_id_ending_in_a_line_break_fails_the_suite_in_gx_and_in_the_screen():
    import great_expectations as gx

    from rostering.validation import gx_suites

    rule = next(e for e in gx_suites.suite_json("oneroster.orgs")["expectations"]
                if e["meta"]["rule"] == "orgs.sourcedId_guid")
    frame = pd.DataFrame({"sourcedId": pd.Series(["sch-1", "sch-2\n"], dtype="string[pyarrow]")})
    assert columnar.expectation_passes(frame, rule) is False
    suite = gx.ExpectationSuite(name="guid_line_break", expectations=[dict(rule)])
    batch = gx_suites.batch_definition().get_batch(batch_parameters={"dataframe": frame})
    assert batch.validate(suite, result_format=gx_suites.BOOLEAN_ONLY).success is False
