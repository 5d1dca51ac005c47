"""`make demo` on a district's own SIS model database: its connection is kept, the vendors stay local stand-ins."""
from __future__ import annotations

import json
from pathlib import Path


class _Sftp:
    host, port, host_key_line = "127.0.0.1", 2222, "ssh-ed25519 AAAA"


class _Passwords(dict):
    def __missing__(self, key):
        return "demo-pass"


def test_the_demo_keeps_a_districts_own_sis_db_connection(monkeypatch):
    from rostering.devservers.demo import airflow_env

    own = json.dumps({"conn_type": "postgres", "host": "sis.district.example.org", "schema": "sis_model"})
    monkeypatch.setenv("AIRFLOW_CONN_SIS_DB", own)
    env = airflow_env(Path("var/demo/sis.sqlite"), _Sftp(), _Passwords())
    assert env["AIRFLOW_CONN_SIS_DB"] == own
    assert json.loads(env["AIRFLOW_CONN_STMATH_SFTP"])["host"] == "127.0.0.1"  # vendors: still the local server


def test_without_one_the_demo_reads_the_generated_district(monkeypatch):
    from rostering.devservers.demo import airflow_env

    monkeypatch.delenv("AIRFLOW_CONN_SIS_DB", raising=False)
    env = airflow_env(Path("var/demo/sis.sqlite"), _Sftp(), _Passwords())
    assert json.loads(env["AIRFLOW_CONN_SIS_DB"]) == {"conn_type": "sqlite", "host": "var/demo/sis.sqlite"}
