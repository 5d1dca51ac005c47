"""What every SIS source adapter produces: the SIS-neutral model's tables, read once, plus what it had to reject.

An adapter (``sql_model``, ``powerschool``, ``aeries``) reads the SIS for one school year and returns the 14 tables of
the model (``rostering.sis.schema.COLUMNS``, semantics in include/sql/schema/sis_schema.sql): ISO date strings,
**inclusive** end dates (``None`` = open), CEDS grade codes (PK TK KG 01..12), flags as int 0/1, ids as strings,
``None`` for missing. The tables hold the year's history, not only what is active: the snapshot SQL
(include/sql/snapshot/*.sql) decides what is active on the as-of date, the same way for every source
(rostering.sis.snapshot). Records an adapter cannot map (a malformed date, an unknown grade code, a section whose
teacher does not exist) are left out of the tables and listed in ``rejected`` by resource, row, SIS key, column
and rule -- never by value.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Protocol, runtime_checkable

import pandas as pd

from rostering.errors import ValueFreeError
from rostering.sis.schema import COLUMNS

# rejected.csv's columns (rostering.sis.checks.REPORT_COLUMNS): "file" names the source resource for an API source,
# e.g. "powerschool:students" or "aeries:/api/v5/schools/{sc}/students".
REJECTION_COLUMNS = ("file", "row", "sis_key", "column", "rule")


class SourceError(ValueFreeError, RuntimeError):  # messages name resource, key and rule, never a value
    """The source could not be read completely; the snapshot fails and no vendor runs. Never carries a value of
    the data (no names, ids of students, or response bodies)."""


class SourceAccessError(SourceError):
    """The SIS refused a resource (401 after a token refresh, 403, 404): the district has not granted it."""

    def __init__(self, source: str, resource: str, status: int, hint: str = ""):
        self.source, self.resource, self.status = source, resource, status
        what = {401: "rejected our credentials", 403: "has not granted access to",
                404: "does not have (or has not exposed)"}.get(status, "refused")
        message = f"{source}: the SIS {what} {resource} (HTTP {status})"
        super().__init__(f"{message}. {hint}".strip() if hint else message)


class IncompleteReadError(SourceError):
    """A paged resource did not add up (rows repeated or skipped: the count the SIS announced disagrees)."""


@dataclass
class Rejections:
    """Collects records an adapter leaves out. Vectorised: ``add`` takes a boolean mask over a frame."""

    rows: list[pd.DataFrame] = field(default_factory=list)

    def add(self, resource: str, frame: pd.DataFrame, mask: Any, *, key: str | Iterable[str], column: str,
            rule: str, row: Any = None) -> None:
        """Reject ``frame[mask]``: ``key`` is the SIS key column(s) named in the report (joined by ``+``), ``row``
        the 1-based position of each record in the resource (default: the frame's order + 1)."""
        mask = pd.Series(mask, index=frame.index).fillna(False).astype(bool)
        if not mask.any():
            return
        keys = [key] if isinstance(key, str) else list(key)
        picked = frame.loc[mask, keys].astype("string").fillna("")
        sis_key = picked[keys[0]] if len(keys) == 1 else picked.agg("+".join, axis=1)
        positions = (pd.Series(range(1, len(frame) + 1), index=frame.index) if row is None
                     else pd.Series(row, index=frame.index))
        self.rows.append(pd.DataFrame({
            "file": resource, "row": positions[mask].astype("int64").to_numpy(),
            "sis_key": sis_key.to_numpy(), "column": column, "rule": rule,
        }))

    def frame(self) -> pd.DataFrame:
        if not self.rows:
            return pd.DataFrame({c: pd.Series(dtype="string") for c in REJECTION_COLUMNS}).astype({"row": "int64"})
        out = pd.concat(self.rows, ignore_index=True)
        return out.sort_values(["file", "row", "rule"], kind="stable").reset_index(drop=True)


@dataclass
class SourceRead:
    """What an adapter returns: the model's tables, the records it rejected, and per-resource counts."""

    tables: dict[str, pd.DataFrame]
    rejected: pd.DataFrame = field(default_factory=lambda: Rejections().frame())
    # resource -> {"requests": n, "records": n, "bytes": n, "seconds": s} (API sources); never data.
    # Every ``rejected.file`` must be a key here with the resource's ``records`` read: the snapshot fails when a
    # resource loses more than ``max_rejected_share`` of them (rostering.sis.snapshot).
    stats: dict[str, dict[str, float]] = field(default_factory=dict)
    pull_seconds: float | None = None  # wall time of the HTTP reading alone (ApiClient.pull_seconds), for the bench

    def __post_init__(self) -> None:
        missing = [t for t in COLUMNS if t not in self.tables]
        if missing:
            raise ValueError(f"source read is missing model table(s) {missing}")
        for name, frame in self.tables.items():
            if tuple(frame.columns) != COLUMNS[name]:
                raise ValueError(f"{name}: columns {list(frame.columns)} differ from the model's {list(COLUMNS[name])}")


@runtime_checkable
class SisSource(Protocol):
    """A configured, connected SIS source. ``name`` is its key in config/sis.yaml (``source:``)."""

    name: ClassVar[str]

    def read(self, *, as_of: dt.date, school_year: int) -> SourceRead:
        """Read the school year ``school_year`` (spring year) as the SIS holds it on ``as_of``."""
        ...


@dataclass(frozen=True)
class SourceConnection:
    """The fields of an Airflow connection an API source needs, resolved by the orchestration layer (no Airflow
    import below it). Secrets stay in memory; ``repr`` never shows them."""

    host: str  # the base URL, e.g. https://district.powerschool.com
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


def empty_table(name: str) -> pd.DataFrame:
    """A model table with no rows (a source that cannot carry it, e.g. student groups in a SIS without them)."""
    return pd.DataFrame({c: pd.Series(dtype="object") for c in COLUMNS[name]})
