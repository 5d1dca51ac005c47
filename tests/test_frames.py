"""The columnar helpers (rostering.frames) give what the pandas calls they replace give, missing values included."""
from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from rostering.frames import (
    STRING, TEXT, clean_text, dense_ranks, equal_codes, first_rows, is_sorted, merge_unique, pair_codes,
    position_in_run, repeated, run_ends, run_starts, sort_codes, stable_order, string_frame, string_series, strings,
)

KINDS = {
    "ssids": lambda r: f"{r.randrange(10**9, 10**9 + 40)}",  # one width: coded as numbers
    "ids": lambda r: str(r.randrange(1, 3000)),  # no leading zero: coded as numbers
    "padded": lambda r: r.choice(["7", "07", "007", "70", "1"]),  # leading zeros: hashed
    "text": lambda r: r.choice(["b", "a", "B", "ä", "", "a b", "10", "9"]),
}


def column(kind: str, n: int, seed: int, nulls: bool = False) -> pd.Series:
    r = random.Random(seed)
    values = [None if nulls and r.random() < .1 else KINDS[kind](r) for _ in range(n)]
    return pd.Series(values, dtype="string")


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("nulls", [False, True])
def test_codes_sort_and_compare_like_the_values(kind, nulls):
    a, b = column(kind, 400, 1, nulls), column("text", 400, 2, nulls)
    frame = pd.DataFrame({"a": a, "b": b})
    expected = frame.sort_values(["a", "b"], kind="stable").index.to_numpy()
    assert (stable_order(sort_codes(strings(a)), sort_codes(strings(b))) == expected).all()
    ranks = frame.groupby(["a", "b"], sort=True, dropna=False).ngroup().to_numpy()
    assert (dense_ranks(strings(a), strings(b)) == ranks).all()
    ordered = frame.loc[expected]  # already in order: ranked without sorting
    assert (dense_ranks(strings(ordered["a"]), strings(ordered["b"])) == ranks[expected]).all()
    codes_a, codes_b = equal_codes(strings(a))[0], equal_codes(strings(b))[0]
    assert (first_rows(pair_codes(codes_a, codes_b)) == ~frame.duplicated().to_numpy()).all()
    left, right = equal_codes(strings(a), strings(a.iloc[::-1]))
    assert (left == right[::-1]).all()


@pytest.mark.parametrize("nulls", [False, True])
def test_runs_are_what_groupby_and_drop_duplicates_give(nulls):
    frame = pd.DataFrame({"a": column("padded", 300, 4, nulls), "b": column("text", 300, 5, nulls)})
    ordered = frame.sort_values(["a", "b"], kind="stable", na_position="last").reset_index(drop=True)
    starts = run_starts(strings(ordered["a"]), strings(ordered["b"]))
    groups = ordered.groupby(["a", "b"], sort=False, dropna=False)
    assert (position_in_run(starts) == groups.cumcount().to_numpy()).all()
    assert (run_ends(starts) == ~ordered.duplicated(keep="last").to_numpy()).all()
    assert is_sorted(strings(ordered["a"]), strings(ordered["b"])) is (not nulls)  # a null anywhere: not known
    assert run_ends(np.ones(0, dtype=bool)).size == 0


def test_is_sorted_compares_rows_column_by_column():
    a, b = strings(["1", "1", "2", "2"]), strings(["b", "c", "a", "a"])
    assert is_sorted(a) and is_sorted(a, b) and not is_sorted(b) and not is_sorted(b, a)
    assert is_sorted(strings([])) and is_sorted(strings(["x"])) and not is_sorted(strings([None, "x"]))


def test_merge_unique_is_an_inner_merge_on_a_unique_key():
    keys = pd.DataFrame({"k": column("ids", 300, 3, nulls=True), "v": column("text", 300, 6)})
    index = pd.DataFrame({"k": pd.Series(["5", "17", "2999", "x", None], dtype="string"),
                          "w": pd.Series(["a", "b", None, "d", "null"], dtype="string")})
    for right in (index, index.iloc[:2], index.astype(object)):  # Arrow lookup; pandas' merge for other dtypes
        pd.testing.assert_frame_equal(merge_unique(keys, right, "k"), keys.merge(right, on="k"))
    repeated_key = pd.concat([index, index.iloc[:1]], ignore_index=True)
    pd.testing.assert_frame_equal(merge_unique(keys, repeated_key, "k"), keys.merge(repeated_key, on="k"))


@pytest.mark.parametrize("values", [
    pd.Series(["a", None, "c"], dtype="string"),  # Arrow-backed, missing = NA
    pd.Series(["a", None, "c"], dtype="str"),  # Arrow-backed, missing = NaN
    pd.Series(["a", None, "c"], dtype=object),  # anything else: as astype("string") gives
    pd.Index(["a", None, "c"], dtype="string"),
    pa.chunked_array([["a"], [None, "c"]]),
    pa.array(["a", None, "c"], TEXT),
    ["a", None, "c"],  # Python strings
])
@pytest.mark.parametrize("arrow_type", [pa.string(), TEXT])
def test_strings_gives_one_arrow_array_of_the_type_asked(values, arrow_type):
    array = strings(values, arrow_type)
    assert isinstance(array, pa.Array) and array.type == arrow_type
    assert array.to_pylist() == ["a", None, "c"]
    assert strings(values).type == pa.string()


def test_a_non_string_column_becomes_its_text():
    assert strings(pd.Series([1, None, 3], dtype="Int64")).to_pylist() == ["1", None, "3"]


def test_arrow_strings_back_to_pandas():
    series = string_series(strings(["x", None], TEXT), pd.Index([4, 5]), "c")
    expected = pd.Series(["x", None], index=[4, 5], name="c", dtype="string")
    pd.testing.assert_series_equal(series, expected)
    assert series.dtype == STRING
    frame = string_frame({"a": strings(["1", "2"]), "b": repeated("z", 2, TEXT), "c": repeated(None, 2)})
    pd.testing.assert_frame_equal(frame, pd.DataFrame({"a": ["1", "2"], "b": ["z", "z"], "c": [None, None]},
                                                      dtype="string"))
    assert repeated("z", 0).type == pa.string() and len(repeated("z", 0)) == 0


def test_clean_text_is_str_replace_and_strip():
    series = pd.Series([" Ana\r\nMaria ", "Bo", None, "\tLi\n"], dtype="string", name="n", index=[3, 1, 2, 0])
    cleaned, changed = clean_text(series)
    expected = series.str.replace(r"[\r\n]+", " ", regex=True).str.strip()
    pd.testing.assert_series_equal(cleaned, expected)
    assert changed == 2
