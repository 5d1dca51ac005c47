"""The integer-code helpers of the CERS build (rostering.cers.columns) give what the pandas calls they replace give,
and the CERS writer writes the bytes of the shared CSV writer."""
from __future__ import annotations

import random

import pandas as pd
import pytest

from rostering.cers.columns import (
    dense_ranks, equal_codes, first_rows, lookup, pair_codes, sort_codes, stable_order, strings,
)
from rostering.cers.spec import HEADER
from rostering.cers.vendor import _header_table, _school_slices, write_group_file
from rostering.csvio import write_csv

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


def test_lookup_is_an_inner_merge_on_a_unique_key():
    keys, index = column("ids", 300, 3), pd.Series(["5", "17", "2999", "x"], dtype="string")
    at = lookup(strings(keys), strings(index))
    expected = keys.map({v: i for i, v in enumerate(index)}).fillna(-1).astype(int).to_numpy()
    assert (at == expected).all()
    assert lookup(strings(keys), strings(pd.Series(["5", "5"], dtype="string"))) is None


def test_the_writer_writes_the_shared_writers_bytes(tmp_path):
    rows = pd.DataFrame({
        "group_name": ["2027LiB2AM6001", "2027LiB2AM6001", "101ONeilAna1"],
        "school_natural_id": ["19647330000001", "19647330000001", "19647330000002"],
        "school_year": ["2027"] * 3, "subject_code": ["Math", None, None],
        "student_ssid": [None, None, "1000000001"], "group_user_login": [None, "t.one@x.org", None],
        "school_id": ["S1", "S1", "S2"],
    }, dtype="string")
    expected = write_csv(rows, tmp_path / "expected.csv", HEADER, quoting="none")
    written = write_group_file(rows, tmp_path / "a.csv")
    sliced = dict(_school_slices(_header_table(rows)))
    assert list(sliced) == ["19647330000001", "19647330000002"]
    part = write_group_file(sliced["19647330000001"], tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "expected.csv").read_bytes()
    assert (written.rows, written.size, written.sha256) == (expected.rows, expected.size, expected.sha256)
    write_csv(rows.iloc[:2], tmp_path / "c.csv", HEADER, quoting="none")
    assert (tmp_path / "b.csv").read_bytes() == (tmp_path / "c.csv").read_bytes()
    assert part.rows == 2 and (tmp_path / "b.csv").stat().st_mode & 0o777 == 0o600
    with pytest.raises(Exception):  # a value that would need quotes is refused, as by the shared writer
        write_group_file(rows.assign(group_name="a,b"), tmp_path / "d.csv")
