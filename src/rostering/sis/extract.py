"""Run the snapshot queries (include/sql/snapshot/*.sql) and write one Parquet file per query.

The snapshot is the SIS as of one date; every vendor transform reads it and nothing else. Values are typed the same
way whatever the database: identifiers, text and dates (ISO ``YYYY-MM-DD``) are strings, flags and years integers.
PostgreSQL is read with ``COPY … TO STDOUT`` (the fastest way out of it), two queries at a time on two connections;
other databases through SQLAlchemy in chunks, one query at a time.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlalchemy as sa

from rostering.paths import sql_dir

log = logging.getLogger(__name__)

INT_COLUMNS = frozenset({"school_year", "is_home", "excluded_from_state_reporting", "reading_level_imputed"})
CHUNK_ROWS = 250_000
EXTRACT_CONNECTIONS = 2  # PostgreSQL: snapshot queries read side by side (the workers have two cores)
LARGEST_FIRST = ("section_enrollments", "students", "school_enrollments", "student_programs")  # start these first
SNAPSHOT_META = "snapshot.json"
REJECTED = "rejected.csv"  # SIS records the checks removed: file, row, SIS key, column, rule (no values)
# The snapshot lives for one run and is read by every task of it: without dictionary encoding it is written and read
# about twice as fast (mostly ids, which do not repeat); snappy keeps it small.
PARQUET_OPTIONS = {"use_dictionary": False, "compression": "snappy"}


class SnapshotReadError(ValueError):
    """A snapshot query's rows could not be read (the message never carries a value of the data)."""


@dataclass(frozen=True)
class SnapshotInfo:
    directory: str
    as_of_date: str
    school_year: int
    row_counts: dict[str, int]
    rejected: dict[str, int] = field(default_factory=dict)  # rule -> SIS records removed by rostering.sis.checks
    source: str = "sql_model"  # the SIS source it was read from (config/sis.yaml)

    def path(self, name: str) -> Path:
        return Path(self.directory) / f"{name}.parquet"

    def read(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(self.path(name))

    @classmethod
    def load(cls, directory: str | Path) -> "SnapshotInfo":
        return cls(**json.loads((Path(directory) / SNAPSHOT_META).read_text()))


def school_year_for(day: dt.date) -> int:
    """Spring year of the school year containing ``day`` (school years run August to July)."""
    return day.year + 1 if day.month >= 8 else day.year


def snapshot_queries() -> dict[str, str]:
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted((sql_dir() / "snapshot").glob("*.sql"))}


def _arrow_schema(columns: list[str]) -> pa.Schema:
    return pa.schema([(c, pa.int32() if c in INT_COLUMNS else pa.string()) for c in columns])


def _typed(frame: pd.DataFrame) -> pa.Table:
    """Normalise a DB-API result chunk: dates and ids to strings, flags to int (vectorised, per column)."""
    columns = {}
    for name in frame.columns:
        series = frame[name]
        if name in INT_COLUMNS:
            columns[name] = pa.array(pd.to_numeric(series).astype("Int32"), type=pa.int32())
        else:
            columns[name] = pa.array(series.astype("string"), type=pa.string())
    return pa.table(columns, schema=_arrow_schema(list(frame.columns)))


def _read_generic(conn: sa.Connection, sql: str, params: dict, target: Path) -> int:
    rows = 0
    writer = None
    try:
        for chunk in pd.read_sql(sa.text(sql), conn, params=params, chunksize=CHUNK_ROWS, coerce_float=False):
            table = _typed(chunk)
            writer = writer or pq.ParquetWriter(target, table.schema, **PARQUET_OPTIONS)
            writer.write_table(table)
            rows += table.num_rows
        if writer is None:  # no rows: still write a typed, empty file
            columns = list(conn.execute(sa.text(sql), params).keys())
            pq.write_table(_arrow_schema(columns).empty_table(), target, **PARQUET_OPTIONS)
    finally:
        if writer is not None:
            writer.close()
    return rows


_NAMED_PARAM = re.compile(r"(?<![:\w]):(\w+)")


def _read_postgres(engine: sa.Engine, sql: str, params: dict, target: Path) -> pa.Table:
    """One snapshot query through ``COPY … TO STDOUT``, parsed by pyarrow *while* PostgreSQL still sends it (a pipe
    between the COPY and the CSV reader), then written as Parquet."""
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            bound = cursor.mogrify(_NAMED_PARAM.sub(r"%(\1)s", sql.replace("%", "%%")), params).decode()
            table = _stream_copy(cursor, f"COPY ({bound}) TO STDOUT WITH (FORMAT csv, HEADER true)")
        pq.write_table(table, target, **PARQUET_OPTIONS)
        return table
    finally:
        raw.close()


def _stream_copy(cursor: Any, copy_sql: str) -> pa.Table:
    """Run ``copy_sql`` on a thread writing into a pipe; read the CSV from the other end as it arrives."""
    read_fd, write_fd = os.pipe()
    source, sink = os.fdopen(read_fd, "rb", buffering=1 << 20), os.fdopen(write_fd, "wb", buffering=1 << 20)
    failed: list[BaseException] = []

    def copy_out() -> None:
        try:
            cursor.copy_expert(copy_sql, sink)
        except BaseException as error:  # noqa: BLE001 - re-raised by the reading thread below
            failed.append(error)
        finally:
            try:
                sink.close()  # end of the stream for the reader
            except OSError:
                pass  # the reader stopped first (it raises its own error)

    writer = threading.Thread(target=copy_out, name="snapshot-copy", daemon=True)
    writer.start()
    try:
        header = source.readline().decode().rstrip("\r\n").split(",")
        schema = _arrow_schema(header)
        if not source.peek(1):
            table = schema.empty_table()
        else:
            reader = pacsv.open_csv(
                source,
                read_options=pacsv.ReadOptions(column_names=header, block_size=16 << 20),
                convert_options=pacsv.ConvertOptions(
                    column_types=schema, strings_can_be_null=True, quoted_strings_can_be_null=False
                ),
            )
            table = reader.read_all()
    except BaseException as error:
        source.close()  # a COPY still writing gets EPIPE and stops
        writer.join()
        if failed:
            raise failed[0]
        if isinstance(error, pa.ArrowInvalid):  # pyarrow's message quotes the offending row: children's data
            raise SnapshotReadError(f"the COPY output of a snapshot query could not be parsed "
                                    f"({type(error).__name__}); run the query by hand to see the row") from None
        raise
    source.close()
    writer.join()
    if failed:
        raise failed[0]
    return table.cast(schema)


def _read_postgres_all(engine: sa.Engine, queries: dict[str, str], params: dict, out_dir: Path) -> dict[str, tuple]:
    """Every query on ``EXTRACT_CONNECTIONS`` connections at once, largest first, each file checked as soon as it is
    written: a COPY is one PostgreSQL server process, and reading its CSV and writing Parquet happen in Arrow without
    the GIL, so two queries (or one query and the checks of a finished file) run side by side.

    Returns name -> (rows read, (rejected rows or None, rows kept)).
    """
    def read_and_check(name: str) -> tuple:
        target = out_dir / f"{name}.parquet"
        table = _read_postgres(engine, queries[name], params, target)
        return table.num_rows, _check_snapshot_file(name, target, table)

    order = sorted(queries, key=lambda name: (LARGEST_FIRST.index(name) if name in LARGEST_FIRST else len(LARGEST_FIRST),
                                              name))
    with ThreadPoolExecutor(max_workers=EXTRACT_CONNECTIONS, thread_name_prefix="snapshot") as pool:
        futures = {name: pool.submit(read_and_check, name) for name in order}
        return {name: futures[name].result() for name in queries}


def _psycopg2(engine: sa.Engine) -> sa.Engine:
    """The COPY reader needs psycopg2's ``copy_expert``; Airflow's postgres hook may hand us a psycopg 3 engine."""
    if engine.dialect.driver == "psycopg2":
        return engine
    return sa.create_engine(engine.url.set(drivername="postgresql+psycopg2"), poolclass=sa.pool.NullPool)


def extract_snapshot(
    engine: sa.Engine, out_dir: Path, *, as_of: dt.date, school_year: int | None = None
) -> SnapshotInfo:
    """Write ``<query>.parquet`` for every snapshot query plus ``snapshot.json`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    school_year = school_year or school_year_for(as_of)
    params = {"as_of_date": as_of.isoformat(), "school_year": school_year}
    counts: dict[str, int] = {}
    checked: dict[str, tuple] = {}
    queries = snapshot_queries()
    if engine.dialect.name == "postgresql":
        read = _read_postgres_all(_psycopg2(engine), queries, params, out_dir)
        counts = {name: rows for name, (rows, _) in read.items()}
        checked = {name: result for name, (_, result) in read.items()}
    else:
        for name, sql in queries.items():
            with engine.connect() as conn:
                counts[name] = _read_generic(conn, sql, params, out_dir / f"{name}.parquet")
    for name, rows in counts.items():
        log.info("snapshot %s: %d rows", name, rows)
    rejected = reject_invalid_records(out_dir, counts, checked)
    info = SnapshotInfo(str(out_dir), as_of.isoformat(), school_year, counts, rejected)
    (out_dir / SNAPSHOT_META).write_text(json.dumps(asdict(info), indent=2, sort_keys=True))
    return info


def _check_snapshot_file(name: str, path: Path, table: pa.Table | None = None) -> tuple[pd.DataFrame | None, int]:
    """rostering.sis.checks on one snapshot file (``table``: its content, when still in memory); a file that loses
    rows is rewritten without them. Returns (the rejected rows or None, rows kept)."""
    from rostering.sis.checks import check_table

    table = table if table is not None else pq.read_table(path)
    result = check_table(name, table.to_pandas(types_mapper=pd.ArrowDtype))
    if not len(result.rejected):
        return None, table.num_rows
    pq.write_table(pa.Table.from_pandas(result.clean, preserve_index=False).cast(table.schema), path,
                   **PARQUET_OPTIONS)
    return result.rejected, len(result.clean)


def reject_invalid_records(out_dir: Path, counts: dict[str, int],
                           checked: dict[str, tuple] | None = None) -> dict[str, int]:
    """Apply rostering.sis.checks to every snapshot file; rewrite files that lose rows, report them in rejected.csv.

    ``checked``: files already checked as they were written (the PostgreSQL path), name -> (rejected or None, rows).
    """
    from rostering.csvio import write_csv
    from rostering.sis.checks import REPORT_COLUMNS

    reports = []
    for name in counts:
        found, rows = (checked or {}).get(name) or _check_snapshot_file(name, out_dir / f"{name}.parquet")
        if found is not None:
            counts[name] = rows
            reports.append(found)
    if not reports:
        return {}
    rejected = pd.concat(reports, ignore_index=True)
    write_csv(rejected.astype("string"), out_dir / REJECTED, REPORT_COLUMNS)
    by_rule = rejected["rule"].value_counts().sort_index()
    log.warning("snapshot: %d SIS record(s) rejected (see %s): %s", len(rejected), REJECTED, by_rule.to_dict())
    return {str(rule): int(count) for rule, count in by_rule.items()}
