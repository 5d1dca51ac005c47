"""The columnar vocabulary of the vendor builds and checks: vectorised helpers on pandas and Arrow columns (no
per-row Python).

pandas 3.1 on Arrow-backed strings is slow wherever it hashes or sorts them (``isin``, ``map``, ``merge``,
multi-key ``sort_values``, ``drop_duplicates`` box every value as a Python object or factorize each time). These
helpers work on the Arrow arrays behind the columns instead, or code strings once as integers (Arrow hash lookups,
digit strings cast to their numbers) and then sort, join and compare integers. Same results as the pandas calls they
replace, missing values included: a missing value equals a missing value and sorts last, strings sort by code point
(= UTF-8 byte order, Arrow's).

* Arrow strings in and out: ``strings``, ``string_series``, ``string_frame``, ``repeated``, ``is_arrow_strings``.
* Runs, order and integer codes: ``run_starts``, ``run_ends``, ``position_in_run``, ``first_rows``, ``is_sorted``,
  ``stable_order``, ``sort_codes``, ``dense_ranks``, ``equal_codes``, ``pair_codes``, ``sort_dedupe``.
* Lookups and joins: ``isin``, ``map_values``, ``merge_unique``, ``key_positions``, ``key_positions_arrays``,
  ``join_values``, ``all_distinct``, ``all_rows_distinct``, ``take_rows``.
* Text: ``value_bytes``, ``holds_line_break``, ``clean_text``, ``clean_text_arrow``.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

LINE_BREAKS = r"[\r\n]+"
STRING = pd.StringDtype("pyarrow")  # pandas' Arrow-backed strings ("string"): missing = pd.NA
TEXT = pa.large_string()  # the Arrow type those hold: no conversion either way


# --------------------------------------------------------------------------------------------------------------------
# Arrow strings in and out


def strings(values, type: pa.DataType = pa.string()) -> pa.Array:
    """Any column as one Arrow string array of ``type`` (missing -> null).

    ``values``: a pandas Series or Index (no copy for Arrow-backed strings; another dtype as ``astype("string")``
    gives), an Arrow array, or Python strings (None -> null). ``string`` (the default) hashes and sorts faster;
    ``TEXT`` (``large_string``) is what pandas holds, so a column built from it goes back to pandas without a copy.
    """
    if isinstance(values, (pd.Series, pd.Index)):
        array = _string_array(values, type)
        if array is not None:
            return array
        values = pa.array(values.astype("string").array)
    elif not isinstance(values, (pa.Array, pa.ChunkedArray)):
        return pa.array(list(values), type)
    return _one_array(values, type)


def string_series(array: pa.Array | pa.ChunkedArray, index: pd.Index | None = None,
                  name: str | None = None) -> pd.Series:
    """Arrow strings as a pandas ``string`` Series (no copy for ``large_string``)."""
    if isinstance(array, pa.Array):
        array = pa.chunked_array([array], type=array.type)
    return pd.Series(pd.arrays.ArrowStringArray(array), index=index, name=name, dtype=STRING)


def string_frame(columns: dict[str, pa.Array | pa.ChunkedArray]) -> pd.DataFrame:
    """Arrow string columns as a DataFrame of ``string`` columns with a RangeIndex."""
    return pd.DataFrame({name: string_series(array) for name, array in columns.items()})


def repeated(value: str | None, n: int, type: pa.DataType = pa.string()) -> pa.Array:
    """``value`` ``n`` times (null when None)."""
    return pa.repeat(pa.scalar(value, type), n)


def is_arrow_strings(frame: pd.DataFrame, columns: list[str]) -> bool:
    """Whether every named column is Arrow-backed strings (what the Arrow paths here need)."""
    return all(_holds_arrow_strings(frame[c]) for c in columns)


def _holds_arrow_strings(values) -> bool:
    """A pandas Series/Index of Arrow-backed strings (``string`` or ``str``)."""
    return (isinstance(values, (pd.Series, pd.Index)) and isinstance(values.dtype, pd.StringDtype)
            and values.dtype.storage == "pyarrow")


def _string_array(values, type: pa.DataType = pa.string()) -> pa.Array | None:
    """The Arrow strings behind an Arrow-backed pandas string Series/Index (no copy), as ``type``; else None."""
    if not _holds_arrow_strings(values):
        return None
    # pandas holds large_string; Arrow hashes (group_by: 5x) and sorts (1.3x) plain string faster, and the cast
    # only rewrites the offsets
    return _one_array(pa.array(values.array), type)


def _one_array(array: pa.Array | pa.ChunkedArray, type: pa.DataType | None) -> pa.Array:
    """One Arrow array (the chunks combined) of ``type`` (None: as it is)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.cast(type) if type is not None and array.type != type else array


def _python_strings(values) -> pa.Array | None:
    """A set, list or tuple of Python strings as Arrow strings; None when it holds anything else."""
    if not isinstance(values, (set, frozenset, list, tuple)) or not all(isinstance(v, str) for v in values):
        return None
    return strings(values)


# --------------------------------------------------------------------------------------------------------------------
# runs, order and integer codes


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


def run_ends(starts: np.ndarray) -> np.ndarray:
    """From ``run_starts``: True at the last row of each run (``drop_duplicates(keep="last")`` of sorted rows)."""
    return np.append(starts[1:], True) if len(starts) else starts


def position_in_run(starts: np.ndarray) -> np.ndarray:
    """Each row's 0-based position in its run (``groupby(...).cumcount()`` of sorted rows)."""
    index = np.arange(len(starts))
    return index - np.maximum.accumulate(np.where(starts, index, 0))


def first_rows(keys: np.ndarray) -> np.ndarray:
    """Mask of the first row of each distinct integer key (``~duplicated(keep="first")``; pandas hashes integers
    fast, unlike its Arrow strings)."""
    return ~pd.Series(keys).duplicated().to_numpy()


def is_sorted(*columns: pa.Array) -> bool:
    """Whether the rows are in ascending order by ``columns`` already (first column first; no null anywhere)."""
    if any(column.null_count for column in columns):
        return False
    n = len(columns[0])
    if n < 2:
        return True
    ordered = None  # row i <= row i+1 on the columns from here on
    for column in reversed(columns):
        before, after = column.slice(0, n - 1), column.slice(1)
        ordered = (pc.less_equal(before, after) if ordered is None else
                   pc.or_(pc.less(before, after), pc.and_(pc.equal(before, after), ordered)))
    return pc.all(ordered).as_py()


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


def dense_ranks(*columns: pa.Array) -> np.ndarray:
    """Each row's dense rank by ``columns`` (first column first, nulls last; equal rows share a rank)."""
    if is_sorted(*columns):  # already in order (the snapshot's tables come sorted by their keys)
        return np.cumsum(run_starts(*columns)) - 1
    names = [f"c{i}" for i in range(len(columns))]
    order = pc.sort_indices(pa.table(dict(zip(names, columns))),
                            sort_keys=[(name, "ascending", "at_end") for name in names]).to_numpy()
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.cumsum(run_starts(*[column.take(order) for column in columns])) - 1
    return rank


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


def sort_dedupe(frame: pd.DataFrame, by: list[str], subset: list[str]) -> pd.DataFrame:
    """``frame.sort_values(by, kind="stable").drop_duplicates(subset, keep="last")`` with Arrow's stable sort (nulls
    last, like pandas) when every ``by`` column is Arrow strings; ``subset`` must be a prefix of ``by``."""
    keys = [_string_array(frame[c]) for c in by]
    if any(k is None for k in keys) or list(by[: len(subset)]) != list(subset):
        return frame.sort_values(by, kind="stable").drop_duplicates(subset, keep="last")
    table = pa.table({f"k{i}": k for i, k in enumerate(keys)})
    order = pc.sort_indices(table, sort_keys=[(f"k{i}", "ascending", "at_end") for i in range(len(keys))])
    ordered = frame.take(order.to_numpy())
    return ordered[run_ends(run_starts(*[keys[i].take(order) for i in range(len(subset))]))]


# --------------------------------------------------------------------------------------------------------------------
# lookups and joins


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
    return string_series(taken, series.index, series.name).astype(mapping.dtype)


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
    """A column as one Arrow array: its Arrow strings, else what pyarrow makes of its values."""
    array = _string_array(series)
    return array if array is not None else _one_array(pa.array(series.array), None)


def take_rows(table: pa.Table, indices: pa.Array) -> pa.Table:
    """``table.take(indices)`` with the columns taken on two threads (a take of millions of strings is memory-bound
    and releases the GIL; the workers have two cores)."""
    if table.num_rows < 100_000 or table.num_columns < 2:
        return table.take(indices)
    with ThreadPoolExecutor(max_workers=2) as pool:
        columns = list(pool.map(lambda column: column.take(indices), table.columns))
    return pa.Table.from_arrays(columns, schema=table.schema)


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
    return string_series(joined.combine_chunks(), index, value)


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
    array = _string_array(series)
    if array is not None:
        return array
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        return pa.array(series.to_numpy(dtype="float64", na_value=np.nan), from_pandas=True)
    return None


# --------------------------------------------------------------------------------------------------------------------
# text


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
    return string_series(cleaned, series.index, series.name), changed


def clean_text_arrow(series: pd.Series) -> tuple[pa.Array, int]:
    """``clean_text`` as Arrow strings: the kernels pandas' ``str.replace``/``str.strip`` use on Arrow data
    (``replace_substring_regex``, ``utf8_trim_whitespace``), the regex only on a column holding a line break."""
    array = strings(series)
    if _only_visible_ascii(array):  # ids, codes, dates: no whitespace at all, so nothing to trim or replace
        return array, 0
    cleaned = array
    if holds_line_break(array):
        cleaned = pc.replace_substring_regex(cleaned, LINE_BREAKS, " ")
    cleaned = pc.utf8_trim_whitespace(cleaned)
    changed = pc.sum(pc.fill_null(pc.not_equal(cleaned, array), False)).as_py() or 0
    return cleaned, int(changed)

