"""A vendor profile: what to build (format and options), when (schedule) and where to deliver it.

Profiles are reviewable configuration (``config/vendors/<name>.yaml``); adding a OneRoster vendor is a new YAML file.
Loading is cheap (YAML only) because the DAG factory does it at parse time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rostering.paths import config_dir


@dataclass(frozen=True)
class Delivery:
    kind: str  # sftp
    conn_id: str
    remote_dir: str = ""


@dataclass(frozen=True)
class VendorProfile:
    name: str
    title: str
    format: str  # oneroster
    dag_id: str
    schedule: str | None
    timezone: str
    tags: tuple[str, ...]
    sis_conn_id: str
    delivery: Delivery
    options: dict[str, Any] = field(default_factory=dict)  # the format's own section (e.g. ``oneroster:``)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VendorProfile":
        data = dict(data)
        fmt = data["format"]
        return cls(
            name=data["name"],
            title=data["title"],
            format=fmt,
            dag_id=data["dag_id"],
            schedule=data.get("schedule"),
            timezone=data.get("timezone", "UTC"),
            tags=tuple(data.get("tags", ())),
            sis_conn_id=data.get("sis_conn_id", "sis_db"),
            delivery=Delivery(**data["delivery"]),
            options=dict(data.get(fmt, {})),
        )


def profile_path(name: str) -> Path:
    return config_dir() / "vendors" / f"{name}.yaml"


def load_profile(name: str) -> VendorProfile:
    with open(profile_path(name), encoding="utf-8") as handle:
        return VendorProfile.from_dict(yaml.safe_load(handle))
