"""Small vectorised helpers shared by the vendor transforms (no per-row Python)."""
from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

LINE_BREAKS = r"[\r\n]+"


def join_values(frame: pd.DataFrame, key: str, value: str, *, sep: str = ",", order: list[str] | None = None) -> pd.Series:
    """For each ``key``, the distinct ``value``s joined by ``sep``, sorted (by ``order`` columns, else by value).

    Done in Arrow (group_by list aggregate + binary_join), so it costs the same at 500,000 keys as at 50.
    """
    sort_by = [key, *(order or [value])]
    subset = frame[list(dict.fromkeys([key, value, *(order or [])]))].drop_duplicates([key, value])
    subset = subset.sort_values(sort_by, kind="stable")
    table = pa.Table.from_pandas(subset[[key, value]].astype("string"), preserve_index=False)
    table = table.cast(pa.schema([(key, pa.string()), (value, pa.string())]))
    grouped = table.group_by(key, use_threads=False).aggregate([(value, "list")])
    joined = pc.binary_join(grouped[f"{value}_list"], sep)
    index = pd.Index(grouped[key].to_numpy(zero_copy_only=False), name=key)
    return pd.Series(joined.to_numpy(zero_copy_only=False), index=index, name=value, dtype="string")


def clean_text(series: pd.Series) -> tuple[pd.Series, int]:
    """Replace line breaks inside a value by one space and trim; return the cleaned column and how many changed.

    OneRoster and CERS forbid CR/LF inside a field; a name typed with a line break in the SIS is still the same name.
    """
    text = series.astype("string")
    cleaned = text.str.replace(LINE_BREAKS, " ", regex=True).str.strip()
    changed = int((cleaned.fillna("") != text.fillna("")).sum())
    return cleaned, changed
