"""Bulk-load the SIS model's tables (rostering.sis.schema.COLUMNS) into a database: the demo district, test
fixtures, and the staging database an API source's tables pass through on the way to the snapshot
(rostering.sis.snapshot)."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa

from rostering.sis.schema import COLUMNS, TABLES, create_schema


def _checked(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    if tuple(frame.columns) != COLUMNS[table]:
        raise ValueError(f"{table}: columns {list(frame.columns)} differ from the DDL's {list(COLUMNS[table])}")
    return frame


def _python_columns(frame: pd.DataFrame) -> list:
    """Per column, a sequence of plain Python values (None for missing) that any DB-API driver accepts."""
    out = []
    for name in frame.columns:
        series = frame[name]
        if isinstance(series.dtype, np.dtype) and np.issubdtype(series.dtype, np.integer):
            out.append(series.tolist())
        else:
            out.append(series.to_numpy(dtype=object, na_value=None))
    return out


def _rows(frame: pd.DataFrame, chunk: int):
    """Rows as Python tuples, one chunk at a time (a whole column of Python objects at once would double the
    memory of a 3.5-million-row table)."""
    for start in range(0, len(frame), chunk):
        yield list(zip(*_python_columns(frame.iloc[start:start + chunk])))


def _csv_for_copy(frame: pd.DataFrame) -> io.BytesIO:
    """UTF-8 CSV for ``COPY ... (FORMAT csv)``: NULL as an unquoted empty field, every string quoted (so an empty
    string, which the generator never produces anyway, would still arrive as '' rather than NULL)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    buffer.seek(0)
    return buffer


def _load_postgres(engine: sa.Engine, frames: list[tuple[str, pd.DataFrame]]) -> None:
    """COPY every table in one transaction; keys and foreign keys are dropped first and re-created (validated) after,
    which is several times faster than checking each row."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SET client_encoding TO 'UTF8'")
        cursor.execute("SET LOCAL maintenance_work_mem TO '256MB'")
        cursor.execute(
            "SELECT r.relname, c.conname, c.contype, pg_get_constraintdef(c.oid) FROM pg_constraint c "
            "JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace ns ON ns.oid = r.relnamespace "
            "WHERE ns.nspname = current_schema() AND r.relname = ANY(%s) AND c.contype IN ('p', 'u', 'f')",
            (list(TABLES),),
        )
        constraints = sorted(cursor.fetchall(), key=lambda c: (TABLES.index(c[0]), c[1]))
        foreign = [c for c in constraints if c[2] == "f"]
        keys = [c for c in constraints if c[2] != "f"]
        for table, name, _, _ in foreign + keys:
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for table, frame in frames:
            copy_sql = f"COPY {table} ({', '.join(frame.columns)}) FROM STDIN WITH (FORMAT csv)"
            buffer = _csv_for_copy(frame)
            if hasattr(cursor, "copy_expert"):      # psycopg2
                cursor.copy_expert(copy_sql, buffer)
            else:                                   # psycopg 3
                with cursor.copy(copy_sql) as copy:
                    while block := buffer.read(1 << 20):
                        copy.write(block)
        for table, name, _, definition in keys + foreign:
            cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        for table, _ in frames:
            cursor.execute(f"ANALYZE {table}")
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()


def _load_sqlite(engine: sa.Engine, frames: list[tuple[str, pd.DataFrame]], chunk: int = 100_000) -> None:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA journal_mode=OFF")
        cursor.execute("PRAGMA synchronous=OFF")
        for table, frame in frames:
            sql = f"INSERT INTO {table} ({', '.join(frame.columns)}) VALUES ({', '.join('?' * len(frame.columns))})"
            for rows in _rows(frame, chunk):
                cursor.executemany(sql, rows)
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()


def _load_generic(engine: sa.Engine, frames: list[tuple[str, pd.DataFrame]], chunk: int = 20_000) -> None:
    paramstyle = engine.dialect.paramstyle
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for table, frame in frames:
            cols = list(frame.columns)
            if paramstyle == "qmark":
                marks = ["?"] * len(cols)
            elif paramstyle in ("format", "pyformat"):
                marks = ["%s"] * len(cols)
            elif paramstyle == "numeric":
                marks = [f":{i + 1}" for i in range(len(cols))]
            else:  # named
                marks = [f":{c}" for c in cols]
            sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(marks)})"
            for rows in _rows(frame, chunk):
                cursor.executemany(sql, rows if paramstyle != "named" else [dict(zip(cols, r)) for r in rows])
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()


def stage_tables(tables: dict[str, pd.DataFrame], path) -> sa.Engine:
    """Load an API source's model tables into a new SQLite file, table by table, **taking each out of** ``tables``
    as it is written, so its memory goes before the next table's rows are made (a 500,000-student district)."""
    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        raise ValueError(f"not SIS model tables: {unknown}")
    engine = sa.create_engine(f"sqlite:///{path}")
    create_schema(engine, drop_existing=True)
    for table in TABLES:
        if table in tables:
            _load_sqlite(engine, [(table, _checked(table, tables.pop(table)))])
    return engine


def load_district(tables: dict[str, pd.DataFrame], url_or_engine: str | sa.URL | sa.Engine) -> None:
    """Create the SIS schema (dropping existing tables) and bulk-load ``tables`` in foreign-key order.

    PostgreSQL: COPY in one transaction. SQLite: executemany in one transaction with journaling off (a demo file).
    Other databases: executemany in chunks in one transaction.
    """
    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        raise ValueError(f"not SIS model tables: {unknown}")
    frames = [(t, _checked(t, tables[t])) for t in TABLES if t in tables]
    owned = not isinstance(url_or_engine, sa.Engine)
    engine = sa.create_engine(url_or_engine) if owned else url_or_engine
    try:
        create_schema(engine, drop_existing=True)
        if engine.dialect.name == "postgresql":
            _load_postgres(engine, frames)
        elif engine.dialect.name == "sqlite":
            _load_sqlite(engine, frames)
        else:
            _load_generic(engine, frames)
    finally:
        if owned:
            engine.dispose()
