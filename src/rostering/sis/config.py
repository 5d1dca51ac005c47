"""The SIS configuration (``config/sis.yaml``): which source the nightly snapshot reads, when, and retention.

Loaded at DAG parse time (YAML only, cheap). Unknown keys fail with the file and the key, so a typo cannot silently
change which SIS is read or how long children's records are kept.
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rostering.paths import config_dir

SOURCES = ("sql_model", "powerschool", "aeries")
SOURCE_ENV = "ROSTERING_SIS_SOURCE"  # overrides `source:` (the demo's SIS=powerschool)
ASSET_NAME = "rostering_sis_snapshot"  # the Airflow Asset the sis_snapshot DAG publishes; vendor DAGs run on it
TOP_LEVEL = {"source", "schedule", "timezone", "retention_days", "max_rejected_share", "notify", "deliveries_due",
             *SOURCES}


class SisConfigError(ValueError):
    pass


@dataclass(frozen=True)
class SisConfig:
    source: str
    conn_id: str
    schedule: str | None = "0 1 * * *"
    timezone: str = "UTC"
    retention_days: int = 14
    max_rejected_share: float = 0.02
    options: dict[str, Any] = field(default_factory=dict)  # the chosen source's section, without conn_id
    asset_name: str = ASSET_NAME
    # email: [..], smtp_conn_id, from_email: a failed snapshot means no vendor runs that night, so it is mailed
    notify: dict[str, Any] = field(default_factory=dict)
    deliveries_due: str | None = "06:00"  # district time: the rostering_deadline DAG alarms on what is not there by then


def sis_config_path() -> Path:
    return config_dir() / "sis.yaml"


def load_sis_config(path: Path | None = None, *, source: str | None = None) -> SisConfig:
    path = path or sis_config_path()
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = sorted(set(data) - TOP_LEVEL)
    if unknown:
        raise SisConfigError(f"{path}: unknown key(s) {unknown}; expected some of {sorted(TOP_LEVEL)}")
    chosen = source or os.environ.get(SOURCE_ENV) or data.get("source")
    if chosen not in SOURCES:
        raise SisConfigError(f"{path}: source must be one of {list(SOURCES)}, got {chosen!r}")
    section = dict(data.get(chosen) or {})
    conn_id = section.pop("conn_id", None) or {"sql_model": "sis_db", "powerschool": "powerschool_api",
                                                "aeries": "aeries_api"}[chosen]
    share = float(data.get("max_rejected_share", 0.02))
    if not 0 <= share <= 1:
        raise SisConfigError(f"{path}: max_rejected_share must be between 0 and 1, got {share}")
    retention = int(data.get("retention_days", 14))
    if retention < 1:
        raise SisConfigError(f"{path}: retention_days must be at least 1, got {retention}")
    notify = dict(data.get("notify") or {})
    unknown_notify = sorted(set(notify) - {"email", "smtp_conn_id", "from_email"})
    if unknown_notify:
        raise SisConfigError(f"{path}: unknown key(s) {unknown_notify} under notify")
    due = data.get("deliveries_due", "06:00")
    if due is not None:
        due = str(due)
        try:
            dt.time.fromisoformat(due)
        except ValueError:
            raise SisConfigError(f"{path}: deliveries_due must be HH:MM (district time), got {due!r}") from None
    return SisConfig(source=chosen, conn_id=str(conn_id), schedule=data.get("schedule") or None,
                     timezone=str(data.get("timezone", "UTC")), retention_days=retention, max_rejected_share=share,
                     options=section, notify=notify, deliveries_due=due)
