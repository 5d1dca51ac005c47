"""Fixtures and helpers for SFTP tests: a real LocalSFTPServer on loopback, paramiko clients pinned to its key.

Import the fixtures into a test module with ``from sftp_fixtures import ...``.
"""
from __future__ import annotations

import base64
import json
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncssh
import paramiko
import pytest

from rostering.devservers.sftp_server import LocalSFTPServer, public_key_line

USER = "vendor"
PASSWORD = "s3cret-Pässword"


@pytest.fixture
def sftp_server(tmp_path: Path) -> Iterator[LocalSFTPServer]:
    """A started server with one user (``USER``/``PASSWORD``), host key persisted under tmp_path."""
    with LocalSFTPServer(root=tmp_path / "sftp-root", users={USER: PASSWORD},
                         host_key_path=tmp_path / "host-key" / "ssh_host_ed25519_key") as server:
        yield server


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME points at a fresh folder with an EMPTY ~/.ssh/known_hosts and no ~/.ssh/config; no ssh-agent.

    Airflow's SSHHook reads ~/.ssh/config and paramiko reads ~/.ssh/known_hosts and ~/.ssh/id_*: redirecting
    HOME keeps the developer's files out of the tests (neither read nor modified). The state dir (where
    ``deliver_files`` keeps its destination locks) moves under tmp_path too. Returns the known_hosts path.
    """
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    known_hosts = home / ".ssh" / "known_hosts"
    known_hosts.write_text("")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("ROSTERING_STATE_DIR", str(tmp_path / "state"))
    return known_hosts


def other_host_key_line() -> str:
    """The public key line of a freshly generated ed25519 key that no server uses."""
    return public_key_line(asyncssh.generate_private_key("ssh-ed25519"))


def pinned_key(host_key_line: str) -> paramiko.PKey:
    key_type, blob = host_key_line.split()[:2]
    assert key_type == "ssh-ed25519"
    return paramiko.Ed25519Key(data=base64.b64decode(blob))


@contextmanager
def paramiko_sftp(host: str, port: int, host_key_line: str, *, user: str = USER,
                  password: str = PASSWORD) -> Iterator[paramiko.SFTPClient]:
    """A paramiko SFTP session that trusts exactly ``host_key_line`` (no known_hosts, RejectPolicy)."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.get_host_keys().add(f"[{host}]:{port}", "ssh-ed25519", pinned_key(host_key_line))
    client.connect(host, port=port, username=user, password=password, look_for_keys=False, allow_agent=False,
                   timeout=10, banner_timeout=10, auth_timeout=10)
    try:
        sftp = client.open_sftp()
        sftp.get_channel().settimeout(20)
        try:
            yield sftp
        finally:
            sftp.close()
    finally:
        client.close()


@contextmanager
def server_sftp(server: LocalSFTPServer, **kwargs: str) -> Iterator[paramiko.SFTPClient]:
    with paramiko_sftp(server.host, server.port, server.host_key_line, **kwargs) as sftp:
        yield sftp


def set_airflow_sftp_connection(monkeypatch: pytest.MonkeyPatch, *, port: int, extra: dict[str, str],
                                login: str = USER, password: str = PASSWORD) -> str:
    """Define a fresh Airflow connection through ``AIRFLOW_CONN_<ID>`` (JSON form); returns its conn id."""
    conn_id = f"vendor_sftp_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
        "conn_type": "sftp", "host": "127.0.0.1", "port": port, "login": login, "password": password,
        "extra": extra,
    }))
    return conn_id


def free_port() -> int:
    """A loopback port nothing listens on (bound and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
