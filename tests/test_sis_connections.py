"""The ``sis_db`` connection types the docs name (docs/operations.md, "Configure the connections") resolve through
Airflow to a hook and a SQLAlchemy engine: mysql end to end against the MariaDB service; mssql and oracle only as
far as the hook, the URL and the DB-API import (no server of either here: nothing connects)."""
from __future__ import annotations

import datetime as dt
import json
import uuid
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

AS_OF = dt.date(2026, 11, 3)


def _sis_db(monkeypatch, **fields) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SIS_DB", json.dumps(fields))


def _connection():
    from airflow.sdk import BaseHook

    return BaseHook.get_connection("sis_db")


@pytest.fixture()
def mariadb_sis(mariadb_url):
    """A database of its own on the MariaDB service (other tests use ``test``), holding a small demo district."""
    from rostering.sis.demo import generate_district, load_district

    admin = sa.create_engine(mariadb_url, isolation_level="AUTOCOMMIT")
    name = f"rostering_conn_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    district = generate_district(300, seed=5, school_year=2027)
    try:
        load_district(district, sa.make_url(mariadb_url).set(database=name))
        yield SimpleNamespace(url=sa.make_url(mariadb_url), database=name, district=district)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


@pytest.mark.mariadb
def test_a_mysql_connection_snapshots_the_sis_model_on_mariadb(mariadb_sis, tmp_path, monkeypatch):
    """conn_type mysql, as an operator writes it in .env: the snapshot reads the SIS model through it (PyMySQL)."""
    from rostering.orchestration.sis_source import snapshot_for_run
    from rostering.pipeline import RunPaths
    from rostering.run_options import RunOptions
    from rostering.sis.config import load_sis_config

    url = mariadb_sis.url
    _sis_db(monkeypatch, conn_type="mysql", host=url.host, port=url.port or 3306, login=url.username,
            password=url.password or "", schema=mariadb_sis.database)
    monkeypatch.setenv("ROSTERING_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("ROSTERING_SNAPSHOT_DIR", str(tmp_path / "snapshots"))
    monkeypatch.delenv("ROSTERING_SIS_SOURCE", raising=False)

    conn = _connection()
    assert type(conn.get_hook()).__name__ == "MySqlHook"  # before: Unknown hook type "mysql"

    from rostering.orchestration.sis_source import database_engine

    engine = database_engine(conn)
    try:
        assert (engine.dialect.name, engine.dialect.driver) == ("mysql", "pymysql")
        with engine.connect() as db:
            students = db.execute(sa.text("SELECT COUNT(*) FROM student")).scalar_one()
        assert students == len(mariadb_sis.district["student"])
    finally:
        engine.dispose()

    taken = snapshot_for_run(RunPaths.for_run("stmath_oneroster", "r1"),
                             RunOptions(AS_OF, 2027, dry_run=True, force=False, schools=()),
                             config=load_sis_config(source="sql_model"))
    assert taken["source"] == "sql_model" and taken["as_of_date"] == AS_OF.isoformat()
    assert 250 < taken["rows"]["students"] <= students
    assert taken["rows"]["schools"] > 0 and taken["rows"]["section_enrollments"] > 0


PASSWORD = "p@ss/w:rd?#"  # every URL delimiter: the URL must carry it escaped


@pytest.mark.parametrize(
    ("fields", "hook", "drivername", "database", "query"),
    [
        ({"conn_type": "mysql", "host": "sis.example.org", "port": 3306, "schema": "sis"},
         "MySqlHook", "mysql+pymysql", "sis", {}),
        ({"conn_type": "mysql", "host": "sis.example.org", "schema": "sis",
          "extra": {"client": "mysql-connector-python"}},
         "MySqlHook", "mysql+mysqlconnector", "sis", {}),
        ({"conn_type": "mssql", "host": "sis.example.org", "port": 1433, "schema": "sis"},
         "MsSqlHook", "mssql+pymssql", "sis", {}),
        ({"conn_type": "oracle", "host": "sis.example.org", "port": 1521, "schema": "SISPDB"},
         "OracleHook", "oracle+oracledb", "SISPDB", {}),
        ({"conn_type": "oracle", "host": "sis.example.org", "extra": {"service_name": "sis.district.org"}},
         "OracleHook", "oracle+oracledb", None, {"service_name": "sis.district.org"}),
    ],
    ids=["mysql", "mysql-connector", "mssql", "oracle-sid", "oracle-service"],
)
def test_a_documented_connection_type_resolves_to_a_hook_and_a_driver(monkeypatch, fields, hook, drivername,
                                                                       database, query):
    """No server: the provider's hook, the URL (dialect+driver, the password escaped) and an engine whose DB-API
    imports. Connecting is not tried."""
    _sis_db(monkeypatch, login="rostering_ro", password=PASSWORD, **fields)
    conn = _connection()
    assert type(conn.get_hook()).__name__ == hook  # before: Unknown hook type

    from rostering.orchestration.sis_source import database_url

    url = database_url(conn)
    assert url.drivername == drivername
    assert (url.host, url.username, url.password, url.database) == ("sis.example.org", "rostering_ro", PASSWORD,
                                                                     database)
    assert dict(url.query) == query
    engine = sa.create_engine(url)  # loads the dialect and imports its DB-API; opens no connection
    try:
        assert f"{engine.dialect.name}+{engine.dialect.driver}" == drivername
    finally:
        engine.dispose()


def test_the_sql_model_source_opens_through_the_connection_types_engine(monkeypatch, tmp_path):
    """source_from_airflow hands the sql_model source the engine database_engine makes (here: sqlite, as before)."""
    from rostering.orchestration.sis_source import source_from_airflow
    from rostering.sis.config import load_sis_config

    path = tmp_path / "sis.sqlite"
    sa.create_engine(f"sqlite:///{path}").dispose()
    _sis_db(monkeypatch, conn_type="sqlite", host=str(path))
    with source_from_airflow(load_sis_config(source="sql_model")) as source:
        assert source.engine.dialect.name == "sqlite" and source.engine.url.database == str(path)
