"""A vendor profile: what to build (format and options), when (schedule) and where to deliver it.

Profiles are reviewable configuration (``config/vendors/<name>.yaml``); adding a OneRoster vendor is a new YAML file.
Loading is cheap (YAML and a typed model, nothing heavy) because the DAG factory does it at parse time. Every profile
is checked against its model (``rostering.vendors.schema``) as it loads: an unknown key, a missing one or a value of
the wrong type fails the DAG's parse with one ``ProfileError`` listing every problem of the file, e.g.

    config/vendors/stmath.yaml: delivery.max_per_dya: unknown key - did you mean max_per_day?
    config/vendors/stmath.yaml: oneroster.manifest: must be true or false, got 'yes please'

Times are the district's (``config/sis.yaml`` ``timezone``), one setting for every vendor: ``VendorProfile.timezone``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rostering.paths import config_dir, project_root
from rostering.vendors.schema import ON_SNAPSHOT, validate_profile
from rostering.vendors.strict import ProfileError, where

__all__ = ["ON_SNAPSHOT", "Delivery", "ProfileError", "VendorProfile", "delivered_asset_name", "load_profile",
           "profile_path", "vendor_names"]


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


@dataclass(frozen=True)
class VendorProfile:
    name: str
    title: str
    format: str  # oneroster
    dag_id: str
    # "snapshot": when the night's SIS snapshot is published (Airflow Asset); a cron string: at those times, district
    # time (the run reads that day's snapshot, or makes it when the nightly one has not run); None: on demand only
    schedule: str | None
    timezone: str  # the district's, from config/sis.yaml (never set per profile)
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
    def from_dict(cls, data: dict[str, Any], *, source: str | None = None, file_name: str | None = None,
                  timezone: str | None = None) -> "VendorProfile":
        """Check ``data`` against the profile model (rostering.vendors.schema), then build the profile.

        ``source`` names the profile in errors (its file); ``file_name``: the file's stem, which ``name:`` must
        equal; ``timezone``: the district's (default: ``config/sis.yaml``).
        """
        _, problems = validate_profile(data, file_name=file_name, vendors=vendor_names())
        if problems:
            if source is None:
                source = f"profile {data.get('name')!r}" if isinstance(data, dict) else "profile"
            raise ProfileError(source, [(where(path), message) for path, message in problems])
        data = copy.deepcopy(dict(data))
        fmt = data["format"]
        if timezone is None:
            from rostering.sis.config import load_sis_config

            timezone = load_sis_config().timezone
        return cls(
            name=data["name"],
            title=data["title"],
            format=fmt,
            dag_id=data["dag_id"],
            schedule=data.get("schedule"),
            timezone=timezone,
            tags=tuple(data.get("tags", ())),
            delivery=Delivery.from_dict(data["delivery"]),
            options=dict(data.get(fmt) or {}),
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


def vendor_names() -> tuple[str, ...]:
    """Every vendor profile in config/vendors/ (by file name)."""
    return tuple(sorted(p.stem for p in (config_dir() / "vendors").glob("*.yaml")))


def load_profile(name: str) -> VendorProfile:
    path = profile_path(name)
    source = _shown(path)
    with open(path, encoding="utf-8") as handle:
        loader = _UniqueKeyLoader(handle)
        try:
            data = loader.get_single_data()
        except yaml.YAMLError as exc:
            raise ProfileError(source, [("", f"not valid YAML: {' '.join(str(exc).split())}")]) from None
        finally:
            loader.dispose()
    if loader.duplicates:
        raise ProfileError(source, loader.duplicates)
    return VendorProfile.from_dict(data, source=source, file_name=name)


def _shown(path: Path) -> str:
    """``config/vendors/stmath.yaml``: the path from the project's root when the file is in it."""
    try:
        return str(path.resolve().relative_to(project_root().resolve()))
    except ValueError:
        return str(path)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; a profile that sets a key twice is an error."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[str, str]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key, line = key_node.value, key_node.start_mark.line + 1
                if key in seen:
                    self.duplicates.append((f"line {line}", f"{key} is set twice (first on line {seen[key]}) - "
                                                            "keep one"))
                seen.setdefault(key, line)
        return super().construct_mapping(node, deep=deep)
