"""Small vectorised helpers shared by the vendor transforms (no per-row Python)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

LINE_BREAKS = r"[\r\n]+"


def join_values(frame: pd.DataFrame, key: str, value: str, *, sep: str = ",", order: list[str] | None = None) -> pd.Series:
    """For each ``key``, the distinct ``value``s joined by ``sep``, sorted (by ``order`` columns, else by value).

    Done in Arrow (stable sorts, group_by list aggregate + binary_join), so it costs the same at 500,000 keys as at
    50: the distinct (key, value) pairs are the first occurrences, ordered by ``key``, then ``order`` (else value),
    then first occurrence -- what ``drop_duplicates`` + a stable ``sort_values`` give.
    """
    columns = list(dict.fromkeys([key, value, *(order or [])]))
    arrays = {c: _string_array(frame[c]) if c in (key, value) else _sortable_array(frame[c]) for c in columns}
    if any(a is None for a in arrays.values()):
        return _join_values_pandas(frame, key, value, sep=sep, order=order)
    names = {c: f"c{i}" for i, c in enumerate(columns)}
    table = pa.table({names[c]: arrays[c] for c in columns} | {"pos": pa.array(np.arange(len(frame)))})
    # first occurrence of each (key, value) (a hash aggregate: few pairs, many rows), then the stable order
    first = table.group_by([names[key], names[value]], use_threads=False).aggregate([("pos", "min")])
    deduped = table.take(first["pos_min"])
    sort_by = [key, *(order or [value])]
    ordered = deduped.take(pc.sort_indices(deduped, sort_keys=[(names[c], "ascending", "at_end") for c in sort_by]
                                           + [("pos", "ascending", "at_end")]))
    pairs = pa.table({key: ordered[names[key]], value: ordered[names[value]]})
    grouped = pairs.group_by(key, use_threads=False).aggregate([(value, "list")])
    joined = pc.binary_join(grouped[f"{value}_list"], pa.scalar(sep, pairs[value].type))
    # Arrow-backed strings both ways (to_numpy would make 500,000 Python strings)
    index = pd.Index(pd.arrays.ArrowStringArray(grouped[key].combine_chunks()), name=key)
    return pd.Series(pd.arrays.ArrowStringArray(joined.combine_chunks()), index=index, name=value)


def _join_values_pandas(frame: pd.DataFrame, key: str, value: str, *, sep: str = ",",
                        order: list[str] | None = None) -> pd.Series:
    sort_by = [key, *(order or [value])]
    subset = frame[list(dict.fromkeys([key, value, *(order or [])]))].drop_duplicates([key, value])
    subset = subset.sort_values(sort_by, kind="stable")
    table = pa.Table.from_pandas(subset[[key, value]].astype("string"), preserve_index=False)
    table = table.cast(pa.schema([(key, pa.string()), (value, pa.string())]))
    grouped = table.group_by(key, use_threads=False).aggregate([(value, "list")])
    joined = pc.binary_join(grouped[f"{value}_list"], sep)
    index = pd.Index(grouped[key].to_numpy(zero_copy_only=False), name=key)
    return pd.Series(joined.to_numpy(zero_copy_only=False), index=index, name=value, dtype="string")


def _sortable_array(series: pd.Series) -> pa.Array | None:
    """A numeric column as Arrow (NaN as null: pandas sorts both last), or Arrow strings; else None."""
    strings = _string_array(series)
    if strings is not None:
        return strings
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        return pa.array(series.to_numpy(dtype="float64", na_value=np.nan), from_pandas=True)
    return None


def run_starts(*columns: np.ndarray | pa.Array | pa.ChunkedArray) -> np.ndarray:
    """For rows sorted (or grouped) by ``columns`` (numpy or Arrow): True where a row's values differ from the row
    before (missing equals missing)."""
    n = len(columns[0])
    starts = np.ones(n, dtype=bool)
    if n < 2:
        return starts
    same = np.ones(n - 1, dtype=bool)
    for column in columns:
        if isinstance(column, np.ndarray):
            same &= column[1:] == column[:-1]
            continue
        before, after = column.slice(0, n - 1), column.slice(1)
        equal = pc.fill_null(pc.equal(before, after), False).to_numpy(zero_copy_only=False)
        both_missing = pc.and_(pc.is_null(before), pc.is_null(after)).to_numpy(zero_copy_only=False)
        same &= equal | both_missing
    starts[1:] = ~same
    return starts


def is_arrow_strings(frame: pd.DataFrame, columns: list[str]) -> bool:
    """Whether every named column is Arrow-backed strings (what the Arrow paths here need)."""
    return all(_string_array(frame[c]) is not None for c in columns)


def isin(series: pd.Series, values) -> pd.Series:
    """``series.isin(values)``, hashed in Arrow when both sides are strings.

    pandas 3.1's ``isin`` on Arrow-backed strings turns every *value* into a Python object first (a list
    comprehension over ``values``): 20 s of a 500,000-student build went there. Same result, missing values matching
    missing values as in pandas; anything that is not strings on both sides goes to pandas.
    """
    left = _string_array(series)
    right = _string_array(values) if isinstance(values, (pd.Series, pd.Index)) else _python_strings(values)
    if left is None or right is None:
        return series.isin(values)
    mask = pc.is_in(left, value_set=right)
    return pd.Series(mask.to_numpy(zero_copy_only=False), index=series.index, name=series.name, dtype=bool)


def map_values(series: pd.Series, mapping: pd.Series) -> pd.Series:
    """``series.map(mapping)`` for a Series ``mapping`` with unique index: an Arrow hash lookup and take.

    Same values, dtype (the mapping's), index and name as pandas; a value missing from the index maps to missing.
    Anything else (non-string keys or values, a repeated index) goes to ``Series.map`` unchanged.
    """
    keys = _string_array(series)
    index = _string_array(mapping.index)
    values = _string_array(mapping)
    if keys is None or index is None or values is None or not _unique(index):
        return series.map(mapping)
    taken = pc.take(values, pc.index_in(keys, value_set=index))
    return pd.Series(pd.arrays.ArrowStringArray(taken), index=series.index, name=series.name).astype(mapping.dtype)


def merge_unique(left: pd.DataFrame, right: pd.DataFrame, on: str | list[str]) -> pd.DataFrame:
    """``left.merge(right, on=on)`` (inner join, left order kept) where ``right``'s key is unique.

    Each left row then matches at most one right row, so the join is a hash lookup of the key (Arrow) and a take:
    the same rows, order, columns and dtypes as pandas, missing keys matching missing keys as pandas does. Falls
    back to ``DataFrame.merge`` when the right key repeats, a key is not Arrow strings on both sides, or a non-key
    column name is on both sides (pandas would add suffixes).
    """
    on = [on] if isinstance(on, str) else list(on)
    extra = [c for c in right.columns if c not in on]
    positions = None
    if not set(extra) & set(left.columns) and all(left[k].dtype == right[k].dtype for k in on):
        positions = _key_positions([_string_array(left[k]) for k in on], [_string_array(right[k]) for k in on])
    if positions is None:
        return left.merge(right, on=on)
    found = pc.is_valid(positions)
    rows = np.flatnonzero(found.to_numpy(zero_copy_only=False))
    matches = positions.filter(found).to_numpy(zero_copy_only=False)
    out = left.iloc[rows].reset_index(drop=True)
    for column in extra:
        out[column] = right[column].iloc[matches].reset_index(drop=True)
    return out


def _unique(array: pa.Array) -> bool:
    """No value twice (a missing value counts as a value, as in a pandas index)."""
    if array.null_count > 1:
        return False
    return all_distinct(array)


def all_distinct(array: pa.Array | pa.ChunkedArray) -> bool:
    """No non-null value twice. Sorts and compares neighbours: for millions of ids several times faster than
    hashing them (``count_distinct``/``unique``) on this hardware."""
    values = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    if values.null_count:
        values = values.drop_null()
    if len(values) < 2:
        return True
    if pc.all(pc.greater(values.slice(1), values.slice(0, len(values) - 1))).as_py():
        return True  # already strictly increasing (a file we wrote sorted by its id): no sort needed
    ordered = values.take(pc.array_sort_indices(values))
    return not pc.any(pc.equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1))).as_py()


def take_rows(table: pa.Table, indices: pa.Array) -> pa.Table:
    """``table.take(indices)`` with the columns taken on two threads (a take of millions of strings is memory-bound
    and releases the GIL; the workers have two cores)."""
    if table.num_rows < 100_000 or table.num_columns < 2:
        return table.take(indices)
    with ThreadPoolExecutor(max_workers=2) as pool:
        columns = list(pool.map(lambda column: column.take(indices), table.columns))
    return pa.Table.from_arrays(columns, schema=table.schema)


def all_rows_distinct(frame: pd.DataFrame, columns: list[str]) -> bool:
    """Whether no two rows have equal values in ``columns`` (missing equals missing). A hash count in Arrow; False
    also when a column cannot go to Arrow as is (the caller then looks with pandas)."""
    if len(frame) < 2:
        return True
    try:
        table = pa.table({f"k{i}": _arrow_column(frame[c]) for i, c in enumerate(columns)})
    except (pa.ArrowException, TypeError, ValueError):
        return False
    return table.group_by(table.column_names, use_threads=False).aggregate([]).num_rows == len(frame)


def _arrow_column(series: pd.Series) -> pa.Array:
    strings = _string_array(series)
    if strings is not None:
        return strings
    array = pa.array(series.array)
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def sort_dedupe(frame: pd.DataFrame, by: list[str], subset: list[str]) -> pd.DataFrame:
    """``frame.sort_values(by, kind="stable").drop_duplicates(subset, keep="last")`` with Arrow's stable sort (nulls
    last, like pandas) when every ``by`` column is Arrow strings; ``subset`` must be a prefix of ``by``."""
    keys = [_string_array(frame[c]) for c in by]
    if any(k is None for k in keys) or list(by[: len(subset)]) != list(subset):
        return frame.sort_values(by, kind="stable").drop_duplicates(subset, keep="last")
    table = pa.table({f"k{i}": k for i, k in enumerate(keys)})
    order = pc.sort_indices(table, sort_keys=[(f"k{i}", "ascending", "at_end") for i in range(len(keys))])
    ordered = frame.take(order.to_numpy())
    starts = run_starts(*[keys[i].take(order) for i in range(len(subset))])
    last = np.append(starts[1:], True) if len(starts) else starts  # a row is kept when the next one starts a run
    return ordered[last]


def column_array(series: pd.Series) -> pa.Array:
    """The Arrow strings behind an Arrow-backed string column (no copy; check with ``is_arrow_strings``)."""
    array = _string_array(series)
    if array is None:
        raise TypeError(f"column {series.name!r} is not Arrow-backed strings")
    return array


def key_positions(left: pd.DataFrame, right: pd.DataFrame, on: list[str]) -> pa.Array | None:
    """For each ``left`` row, the position of the ``right`` row with the same ``on`` key (null: none). None when a key
    column is not Arrow strings on both sides or ``right``'s key repeats (then a join is needed, not a lookup)."""
    return _key_positions([_string_array(left[k]) for k in on], [_string_array(right[k]) for k in on])


def key_positions_arrays(left: list[pa.Array], right: list[pa.Array]) -> pa.Array | None:
    """``key_positions`` on Arrow string arrays."""
    return _key_positions(list(left), list(right))


def _key_positions(left: list[pa.Array | None], right: list[pa.Array | None]) -> pa.Array | None:
    """For each left row, the position of the right row with the same key (null when none); None = use pandas."""
    if any(a is None for a in left + right):
        return None
    if len(left) == 1:
        left_key, right_key = left[0], right[0]
    else:  # several key columns: code each column by the right side's distinct values, combine into one int64
        left_key = right_key = None
        for lcol, rcol in zip(left, right):
            distinct = pc.unique(rcol)
            lcode = pc.index_in(lcol, value_set=distinct).cast(pa.int64())
            rcode = pc.index_in(rcol, value_set=distinct).cast(pa.int64())
            if left_key is None:
                left_key, right_key, width = lcode, rcode, len(distinct)
                continue
            width *= max(len(distinct), 1)
            if width >= 2**62:
                return None
            left_key = pc.add(pc.multiply(left_key, len(distinct)), lcode)  # null when any part is unmatched
            right_key = pc.add(pc.multiply(right_key, len(distinct)), rcode)
    if not _unique(right_key):
        return None
    return pc.index_in(left_key, value_set=right_key)


def _string_array(values) -> pa.Array | None:
    """The Arrow strings behind an Arrow-backed pandas string Series/Index (no copy), else None."""
    if not isinstance(values, (pd.Series, pd.Index)):
        return None
    dtype = values.dtype
    if not (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"):
        return None
    array = pa.array(values.array)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    # pandas holds large_string; Arrow hashes (group_by: 5x) and sorts (1.3x) plain string faster, and the cast
    # only rewrites the offsets
    return array.cast(pa.string()) if array.type != pa.string() else array


def _python_strings(values) -> pa.Array | None:
    if not isinstance(values, (set, frozenset, list, tuple)) or not all(isinstance(v, str) for v in values):
        return None
    return pa.array(list(values), type=pa.string())


_VISIBLE_ASCII = bytes(range(0x21, 0x7F))


def value_bytes(array: pa.Array | pa.ChunkedArray) -> bytes:
    """The UTF-8 data of a string array's values, back to back (one copy of the data buffers' used ranges): byte
    searches over it answer column-wide questions without touching values one by one."""
    if isinstance(array, pa.ChunkedArray):
        return b"".join(value_bytes(chunk) for chunk in array.chunks)
    data = array.buffers()[2]
    if data is None or not len(array):
        return b""
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64 if pa.types.is_large_string(array.type) else np.int32)
    return memoryview(data)[offsets[array.offset]:offsets[array.offset + len(array)]].tobytes()


def holds_line_break(array: pa.Array | pa.ChunkedArray) -> bool:
    """Whether a value holds a CR or LF byte (in UTF-8 those bytes are only ever those characters)."""
    raw = value_bytes(array)
    return b"\n" in raw or b"\r" in raw


def _only_visible_ascii(array: pa.Array) -> bool:
    """Whether every value is printable ASCII without spaces (deleting those bytes leaves nothing)."""
    return not value_bytes(array).translate(None, _VISIBLE_ASCII)


def clean_text(series: pd.Series) -> tuple[pd.Series, int]:
    """Replace line breaks inside a value by one space and trim; return the cleaned column and how many changed.

    OneRoster and CERS forbid CR/LF inside a field; a name typed with a line break in the SIS is still the same name.
    """
    cleaned, changed = clean_text_arrow(series)
    return pd.Series(pd.arrays.ArrowStringArray(cleaned), index=series.index, name=series.name).astype("string"), changed


def clean_text_arrow(series: pd.Series) -> tuple[pa.Array, int]:
    """``clean_text`` as Arrow strings: the kernels pandas' ``str.replace``/``str.strip`` use on Arrow data
    (``replace_substring_regex``, ``utf8_trim_whitespace``), the regex only on a column holding a line break."""
    array = _string_array(series.astype("string"))
    if _only_visible_ascii(array):  # ids, codes, dates: no whitespace at all, so nothing to trim or replace
        return array, 0
    cleaned = array
    if holds_line_break(array):
        cleaned = pc.replace_substring_regex(cleaned, LINE_BREAKS, " ")
    cleaned = pc.utf8_trim_whitespace(cleaned)
    changed = pc.sum(pc.fill_null(pc.not_equal(cleaned, array), False)).as_py() or 0
    return cleaned, int(changed)
