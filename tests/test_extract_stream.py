"""PostgreSQL COPY streamed into pyarrow (rostering.sis.extract._stream_copy): every row, typed; errors surface.

The COPY runs on a thread writing into a pipe while the CSV is parsed from the other end, so the two failure
directions matter: a COPY that fails must raise (not look like a short, valid table), and a reader that fails must
stop the COPY instead of leaving it blocked on a full pipe.
"""
from __future__ import annotations

import threading

import psycopg2
import pyarrow as pa
import pytest
import sqlalchemy as sa

from rostering.sis import extract


@pytest.fixture()
def cursor(postgres_url):
    engine = sa.create_engine(sa.engine.make_url(postgres_url).set(drivername="postgresql+psycopg2"))
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            yield cur
    finally:
        raw.close()
        engine.dispose()


def _copy(sql: str) -> str:
    return f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true)"


def test_every_row_arrives_typed(cursor):
    # 300,000 rows: more than the pipe and the reader's blocks hold, so reading and writing really interleave
    table = extract._stream_copy(cursor, _copy(
        "SELECT 'stu-' || g AS student_id, CASE WHEN g % 7 = 0 THEN NULL ELSE 'Ana, \"Li\"' END AS first_name, "
        "2027 AS school_year, '' AS empty_text FROM generate_series(1, 300000) AS g ORDER BY g"))
    assert table.num_rows == 300_000
    assert table.schema == pa.schema([("student_id", pa.string()), ("first_name", pa.string()),
                                      ("school_year", pa.int32()), ("empty_text", pa.string())])
    assert table["student_id"][299_999].as_py() == "stu-300000"
    assert table["first_name"].null_count == 300_000 // 7
    assert table["first_name"][0].as_py() == 'Ana, "Li"'
    assert table["empty_text"].null_count == 0  # '' stays a value: only unquoted empty fields are NULL


def test_no_rows_gives_a_typed_empty_table(cursor):
    table = extract._stream_copy(cursor, _copy("SELECT 'x'::text AS staff_id, 1 AS is_home WHERE false"))
    assert table.num_rows == 0
    assert table.schema == pa.schema([("staff_id", pa.string()), ("is_home", pa.int32())])


def test_a_failing_copy_raises_instead_of_returning_what_arrived(cursor):
    # division by zero at row 200,000: rows before it were already streamed
    with pytest.raises(psycopg2.Error):
        extract._stream_copy(cursor, _copy("SELECT g, 1 / (200000 - g) AS x FROM generate_series(1, 300000) AS g"))


def test_a_failing_reader_stops_the_copy(cursor):
    threads_before = threading.active_count()
    # a text value in an integer column makes the reader fail mid-stream, while the COPY still has rows to send
    with pytest.raises(extract.SnapshotReadError) as raised:
        extract._stream_copy(cursor, _copy(
            "SELECT CASE WHEN g = 150000 THEN 'Ana Lopez' ELSE '2027' END AS school_year, repeat('x', 50) AS pad "
            "FROM generate_series(1, 400000) AS g"))
    assert threading.active_count() == threads_before  # the COPY thread ended (it was joined)
    assert "Ana" not in str(raised.value) and raised.value.__cause__ is None  # pyarrow's message quotes the row
