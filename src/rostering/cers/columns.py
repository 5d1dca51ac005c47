"""Column helpers of the CERS build and checks: Arrow kernels and integer codes instead of pandas on strings.

pandas 3.1 on Arrow-backed strings is slow wherever it hashes or sorts them (``isin``, ``merge``, ``sort_values``,
``drop_duplicates`` make Python objects or factorize each time); these helpers code strings once (Arrow hash
lookups) and then sort, join and compare integers. Same results as the pandas calls they replace, missing values
included (a missing value equals a missing value and sorts last, as in pandas).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rostering.frames import run_starts  # noqa: F401 - part of this module's vocabulary (build, vendor, checks)


def strings(values: pd.Series | pa.Array | pa.ChunkedArray) -> pa.Array:
    """A column as one Arrow ``string`` array (missing -> null; another pandas dtype via ``astype("string")``)."""
    if isinstance(values, pd.Series):
        values = pa.array(values.astype("string").array)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values.cast(pa.string()) if values.type != pa.string() else values


def position_in_run(starts: np.ndarray) -> np.ndarray:
    """Each row's 0-based position in its run (``groupby(...).cumcount()`` of sorted rows)."""
    index = np.arange(len(starts))
    return index - np.maximum.accumulate(np.where(starts, index, 0))


def first_rows(keys: np.ndarray) -> np.ndarray:
    """Mask of the first row of each distinct integer key (``~duplicated(keep="first")``; pandas hashes integers
    fast, unlike its Arrow strings)."""
    return ~pd.Series(keys).duplicated().to_numpy()


def sort_codes(values: pa.Array | pa.DictionaryArray) -> np.ndarray:
    """Non-negative integers that sort like ``values`` (equal values equal, null last).

    Digit strings of one width (SSIDs) are their numbers; else the column is hash-encoded (unless it comes
    encoded) and only its distinct values are sorted (faster than sorting a million strings).
    """
    if isinstance(values, pa.DictionaryArray):
        encoded = values
    else:
        numbers = _fixed_width_numbers(values)
        if numbers is not None:
            return numbers - numbers.min(initial=0)
        encoded = pc.dictionary_encode(values)
    dictionary = encoded.dictionary
    rank = np.empty(len(dictionary) + 1, dtype=np.int64)
    rank[pc.array_sort_indices(dictionary).to_numpy()] = np.arange(len(dictionary))
    rank[-1] = len(dictionary)  # null
    return rank[pc.fill_null(encoded.indices, len(dictionary)).to_numpy(zero_copy_only=False)]


def _fixed_width_numbers(values: pa.Array) -> np.ndarray | None:
    """The values as int64 when all are ASCII digit strings of one width (up to 18): then number order is string
    order. None otherwise."""
    if not len(values) or values.null_count:
        return None
    width = pc.min_max(pc.binary_length(values)).as_py()
    if width["min"] != width["max"] or not 0 < width["max"] <= 18 or not pc.all(pc.ascii_is_decimal(values)).as_py():
        return None
    return pc.cast(values, pa.int64()).to_numpy()


def stable_order(*keys: np.ndarray) -> np.ndarray:
    """Positions that sort the rows by ``keys`` (non-negative integer codes, first key first), ties in row order."""
    if not keys or not len(keys[0]):
        return np.arange(len(keys[0]) if keys else 0)
    combined, width = np.zeros(len(keys[0]), dtype=np.int64), 1
    for key in keys:  # one int64 key while the codes fit (one stable argsort), else numpy's lexsort
        size = int(key.max()) + 1
        width *= size
        if width >= 2**62:
            return np.lexsort(keys[::-1])
        combined = combined * size + key
    return np.argsort(combined, kind="stable")


def dense_ranks(*columns: pa.Array) -> np.ndarray:
    """Each row's dense rank by ``columns`` (first column first, nulls last; equal rows share a rank)."""
    if _ascending(*columns):  # already in order (the snapshot's tables come sorted by their keys)
        return np.cumsum(run_starts(*columns)) - 1
    names = [f"c{i}" for i in range(len(columns))]
    order = pc.sort_indices(pa.table(dict(zip(names, columns))),
                            sort_keys=[(name, "ascending", "at_end") for name in names]).to_numpy()
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.cumsum(run_starts(*[column.take(order) for column in columns])) - 1
    return rank


def _ascending(*columns: pa.Array) -> bool:
    """Whether the rows are sorted by ``columns`` (lexicographically; no nulls)."""
    n = len(columns[0])
    if n < 2:
        return True
    if any(column.null_count for column in columns):
        return False
    ordered = None  # row i <= row i+1 on the columns from here on
    for column in reversed(columns):
        before, after = column.slice(0, n - 1), column.slice(1)
        ordered = (pc.less_equal(before, after) if ordered is None else
                   pc.or_(pc.less(before, after), pc.and_(pc.equal(before, after), ordered)))
    return pc.all(ordered).as_py()


def equal_codes(*columns: pa.Array) -> list[np.ndarray]:
    """Non-negative integer codes, one array per column, equal exactly where the values are equal -- across all
    the columns (null equals null). No order, and not dense.

    SIS ids and SSIDs are digit strings: when every value is one (see _id_numbers) the code is the number (a cast,
    where hashing a million strings costs a tenth of a second); else the columns are hash-encoded together by Arrow.
    """
    numbers = [_id_numbers(column) for column in columns]
    if all(n is not None for n in numbers):
        return numbers
    encoded = pc.dictionary_encode(pa.chunked_array(columns, type=pa.string()).combine_chunks())
    codes = pc.fill_null(encoded.indices, len(encoded.dictionary)).to_numpy(zero_copy_only=False).astype(np.int64)
    return np.split(codes, np.cumsum([len(c) for c in columns])[:-1])


def _id_numbers(values: pa.Array) -> np.ndarray | None:
    """Digit strings as their numbers + 1 (null -> 0) when that keeps them apart: no leading zero, or one width
    (SSIDs); at most 18 digits. None when a value is anything else."""
    if len(values) - values.null_count and not pc.all(pc.ascii_is_decimal(values)).as_py():
        return None
    lengths = pc.min_max(pc.binary_length(values)).as_py()
    if (lengths["max"] or 0) > 18:
        return None
    if lengths["min"] != lengths["max"]:
        leading_zero = pc.and_(pc.starts_with(values, "0"), pc.greater(pc.binary_length(values), 1))
        if pc.any(leading_zero).as_py():
            return None
    return pc.fill_null(pc.add(pc.cast(values, pa.int64()), 1), 0).to_numpy()


def pair_codes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One non-negative int64 per (a, b) pair of codes, equal where both are equal. (Codes too large to combine
    are made dense first; so call it once for all the rows whose pairs are compared.)"""
    if len(a) and (int(a.max()) + 1) * (int(b.max()) + 1) >= 2**62:
        a, b = pd.factorize(a)[0], pd.factorize(b)[0]
    return a * (int(b.max(initial=0)) + 1) + b


def lookup(keys: pa.Array, index: pa.Array) -> np.ndarray | None:
    """For each of ``keys``, its position in ``index`` (-1: not there), on integer codes; None when ``index``
    repeats a value (a join would then repeat rows)."""
    key_codes, index_codes = equal_codes(keys, index)
    positions = pd.Index(index_codes)
    if not positions.is_unique:
        return None
    return positions.get_indexer(key_codes)
