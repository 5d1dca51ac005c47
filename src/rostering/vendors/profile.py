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
    kind: str  # a key of rostering.pipeline.DELIVERIES: sftp, …
    conn_id: str  # the Airflow connection holding host, credentials and (SFTP) the pinned host key
    remote_dir: str = ""
    options: dict[str, Any] = field(default_factory=dict)  # anything else the delivery kind needs

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Delivery":
        data = dict(data)
        return cls(kind=data.pop("kind"), conn_id=data.pop("conn_id"), remote_dir=data.pop("remote_dir", ""),
                   options=data)


# ``schedule:`` value that runs a vendor when the night's SIS snapshot is published (the sis_snapshot DAG's Asset)
ON_SNAPSHOT = "snapshot"


@dataclass(frozen=True)
class VendorProfile:
    name: str
    title: str
    format: str  # oneroster
    dag_id: str
    # "snapshot": when the night's SIS snapshot is published (Airflow Asset); a cron string: at those times, district
    # time (the run reads that day's snapshot, or makes it when the nightly one has not run); None: on demand only
    schedule: str | None
    timezone: str
    tags: tuple[str, ...]
    delivery: Delivery
    options: dict[str, Any] = field(default_factory=dict)  # the format's own section (e.g. ``oneroster:``)
    after: str | None = None  # run when this vendor's delivery lands (Airflow Asset) instead of on a schedule
    # True when the receiver replaces everything it holds with each delivery (OneRoster bulk): a school subset is
    # then never delivered. False when it replaces only what the file names (CERS groups).
    replaces_everything: bool = True
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # extra trigger params: name -> Param kwargs
    notify: dict[str, Any] = field(default_factory=dict)  # email: [..], on_success: bool, smtp_conn_id

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VendorProfile":
        data = dict(data)
        fmt = data["format"]
        if "sis_conn_id" in data:  # one SIS read per night for every vendor now: config/sis.yaml says which
            raise ValueError(f"profile {data.get('name')!r}: sis_conn_id is no longer a profile setting; the SIS "
                             "source and its connection are in config/sis.yaml")
        if data.get("after") and data.get("schedule"):
            raise ValueError(f"profile {data.get('name')!r}: set either after: or schedule:, not both")
        return cls(
            name=data["name"],
            title=data["title"],
            format=fmt,
            dag_id=data["dag_id"],
            schedule=data.get("schedule"),
            timezone=data.get("timezone", "UTC"),
            tags=tuple(data.get("tags", ())),
            delivery=Delivery.from_dict(data["delivery"]),
            options=dict(data.get(fmt, {})),
            after=data.get("after"),
            replaces_everything=bool(data.get("replaces_everything", True)),
            params=dict(data.get("params") or {}),
            notify=dict(data.get("notify") or {}),
        )

    @property
    def on_snapshot(self) -> bool:
        return self.schedule == ON_SNAPSHOT


def delivered_asset_name(vendor: str) -> str:
    """The Airflow Asset a vendor's successful delivery emits (``after:`` in another profile waits for it)."""
    return f"rostering_{vendor}_delivered"


def profile_path(name: str) -> Path:
    return config_dir() / "vendors" / f"{name}.yaml"


def load_profile(name: str) -> VendorProfile:
    with open(profile_path(name), encoding="utf-8") as handle:
        return VendorProfile.from_dict(yaml.safe_load(handle))
