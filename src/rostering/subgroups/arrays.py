"""Arrow helpers for the subgroup build and audit (no per-row Python).

pandas 3.1's ``isin``/``map``/``merge``/multi-key ``sort_values`` on Arrow-backed strings box every value as a Python
object; these work on the Arrow arrays behind the columns instead. Orders are the ones pandas gives: strings by code
point (= UTF-8 byte order, Arrow's), a missing value equal to another missing value.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rostering.frames import run_starts  # noqa: F401 - used by the audit

STRING = pd.StringDtype("pyarrow")  # "string": Arrow-backed, missing = pd.NA
TEXT = pa.large_string()  # what pandas' Arrow-backed strings hold: no conversion either way


def strings(series: pd.Series | pd.Index) -> pa.Array:
    """A column as one Arrow ``large_string`` array (missing -> null); a non-string column as ``astype("string")``
    gives. No copy for pandas' Arrow-backed strings."""
    if not (isinstance(series.dtype, pd.StringDtype) and series.dtype.storage == "pyarrow"):
        series = series.astype("string")
    array = pa.array(series.array)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.cast(TEXT) if array.type != TEXT else array


def text(values) -> pa.Array:
    """Python strings (None -> null) as ``large_string``."""
    return pa.array(list(values), TEXT)


def string_series(array: pa.Array | pa.ChunkedArray, index: pd.Index | None = None) -> pd.Series:
    """Arrow strings as a pandas ``string`` Series (no copy for ``large_string``)."""
    if isinstance(array, pa.Array):
        array = pa.chunked_array([array], type=array.type)
    return pd.Series(pd.arrays.ArrowStringArray(array), index=index, dtype=STRING)


def string_frame(columns: dict[str, pa.Array | pa.ChunkedArray]) -> pd.DataFrame:
    """Arrow string columns as a DataFrame of ``string`` columns with a RangeIndex."""
    return pd.DataFrame({name: string_series(array) for name, array in columns.items()})


def repeated(value: str | None, n: int) -> pa.Array:
    """``value`` ``n`` times (null when None)."""
    if value is None:
        return pa.nulls(n, TEXT)
    return pc.take(text([value]), pa.array(np.zeros(n, dtype=np.int64)))


def is_sorted(values: pa.Array) -> bool:
    """Ascending already (no null anywhere)."""
    if values.null_count:
        return False
    return len(values) < 2 or pc.all(pc.less_equal(values.slice(0, len(values) - 1), values.slice(1))).as_py()
