"""Shared fixtures. Real servers only: PostgreSQL/MariaDB services on loopback, a real SFTP server, a real HTTP server."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Airflow reads these at import time; tests never touch the developer's ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", str(REPO / "var" / "airflow"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
PG_ADMIN_URL = os.environ.get("ROSTERING_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
MARIADB_URL = os.environ.get("ROSTERING_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def _service_unavailable(name: str, error: Exception) -> None:
    message = f"{name} is not reachable ({type(error).__name__}: {error})"
    if IN_CI:
        pytest.fail(f"{message} -- CI=true requires it", pytrace=False)
    pytest.skip(f"!!! SKIPPED: {message}. Start it to run these tests; CI runs them.")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A fresh, empty PostgreSQL database for this test session (dropped afterwards)."""
    import sqlalchemy as sa

    try:
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            name = f"rostering_test_{uuid.uuid4().hex[:8]}"
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # noqa: BLE001 - any connection failure means "service missing"
        _service_unavailable("PostgreSQL", error)
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def mariadb_url() -> str:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(MARIADB_URL)
        with engine.connect():
            pass
    except Exception as error:  # noqa: BLE001
        _service_unavailable("MariaDB", error)
    return MARIADB_URL


# One Airflow cluster (the docker-compose topology, natively) per session, shared by the e2e and the browser tests.
from airflow_cluster import e2e_cluster, e2e_endpoints  # noqa: E402,F401 - session fixtures


def pytest_collection_modifyitems(config, items):
    """Tests that use the Airflow cluster run last and together: it starts once and stops with the session."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)  # stable: the rest keep their order
