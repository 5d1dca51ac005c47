"""Where the project's non-Python assets live (SQL, expectation suites, vendor config).

The package is installed from the repository (``pip install -e .``) or baked into the image next to ``include/`` and
``config/``; ``ROSTERING_HOME`` overrides the root when they live elsewhere.
"""
from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    env = os.environ.get("ROSTERING_HOME")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2]


def sql_dir() -> Path:
    return project_root() / "include" / "sql"


def expectations_dir() -> Path:
    return project_root() / "include" / "expectations"


def config_dir() -> Path:
    return project_root() / "config"


def work_dir() -> Path:
    """Scratch space for a run's Parquet and built files (shared volume when workers are on other hosts)."""
    return Path(os.environ.get("ROSTERING_WORK_DIR", project_root() / "var" / "work"))


def state_dir() -> Path:
    """What outlives a run: delivery records, kept copies of delivered payloads, the subgroup audit trail."""
    return Path(os.environ.get("ROSTERING_STATE_DIR", project_root() / "var" / "state"))


def snapshot_dir() -> Path:
    """The night's SIS snapshots, shared by every vendor run (rostering.sis.store). Beside the work dir by default:
    the same filesystem, so a run links a snapshot's files into its folder instead of copying them."""
    env = os.environ.get("ROSTERING_SNAPSHOT_DIR")
    return Path(env) if env else work_dir().parent / "snapshots"
