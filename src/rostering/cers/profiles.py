"""CERS profiles: named, reviewable selections of student groups (Aeries' "profiles"), kept in one YAML file.

``config/cers_profiles.yaml`` holds every profile; a run builds the profiles named in its ``profiles`` param, or,
when that is empty, every profile with ``include_in_scheduled_run: true``. A profile says which schools, which
subject code the groups carry, which roster type builds them (and that type's filters), how they are named, and
which extra users see every group. Unknown keys are errors: a typo in a filter must never silently widen a roster.

    profiles:
      caaspp_sections:
        description: PowerSchool's criteria -- one group per CAASPP section
        schools: []                   # SIS school_id values; empty = every active school
        subject: section              # ELA | Math | All | section (each section's own CAASPP subject)
        roster_type: master_schedule  # see ROSTER_TYPES
        filters: {}                   # see FILTERS
        name_pattern: powerschool     # see PATTERNS (rostering.cers.group_names)
        name_prefix: ""               # optional ASCII letters/digits put in front of every name
        additional_users: []          # staff_id values added to every group (need a SEID and an email)
        include_in_scheduled_run: true
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

ROSTER_TYPES = ("master_schedule", "elementary_teachers", "elementary_grade_level", "counselor", "student_group")

# Filters each roster type accepts (all lists; an empty list = no filter). primary_classes_only is a boolean.
FILTERS: dict[str, tuple[str, ...]] = {
    "master_schedule": ("departments", "subject_areas", "courses", "teachers", "primary_classes_only"),
    "elementary_teachers": ("teachers",),
    "elementary_grade_level": ("grades",),
    "counselor": ("counselors",),
    "student_group": ("groups",),
}

# Name patterns each roster type accepts; the first is the default. Built in rostering.cers.group_names.
PATTERNS: dict[str, tuple[str, ...]] = {
    "master_schedule": ("powerschool", "teacher_period", "teacher_section", "teacher_course_title"),
    "elementary_teachers": ("teacher",),
    "elementary_grade_level": ("grade",),
    "counselor": ("teacher",),
    "student_group": ("group_code",),
}

SUBJECTS = ("ELA", "Math", "All", "section")
PROFILE_KEYS = frozenset({
    "description", "schools", "subject", "roster_type", "filters", "name_pattern", "name_prefix", "additional_users",
    "include_in_scheduled_run",
})
_NAME = re.compile(r"^[a-z0-9_]{1,64}$")
_PREFIX = re.compile(r"^[A-Za-z0-9]{0,8}$")


class CersProfileError(ValueError):
    """A profile file or profile selection that cannot be used; the message names file, profile, key and rule."""


@dataclass(frozen=True)
class CersProfile:
    name: str
    roster_type: str
    subject: str
    name_pattern: str
    schools: tuple[str, ...] = ()
    filters: Mapping[str, Any] = field(default_factory=dict)
    name_prefix: str = ""
    additional_users: tuple[str, ...] = ()
    include_in_scheduled_run: bool = False
    description: str = ""

    def filter_values(self, key: str) -> tuple[str, ...]:
        return tuple(str(v) for v in self.filters.get(key) or ())

    @property
    def primary_classes_only(self) -> bool:
        return bool(self.filters.get("primary_classes_only", False))


def _string_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        raise CersProfileError(f"{where}: must be a list of strings")
    return tuple(str(v).strip() for v in value)


def parse_profile(name: str, data: Any, *, source: str = "profiles") -> CersProfile:
    where = f"{source}: profile {name!r}"
    if not _NAME.match(str(name)):
        raise CersProfileError(f"{where}: profile names are lower-case letters, digits and _ (at most 64)")
    if not isinstance(data, dict):
        raise CersProfileError(f"{where}: must be a mapping")
    unknown = sorted(set(data) - PROFILE_KEYS)
    if unknown:
        raise CersProfileError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(PROFILE_KEYS)}")
    roster_type = data.get("roster_type")
    if roster_type not in ROSTER_TYPES:
        raise CersProfileError(f"{where}: roster_type must be one of {list(ROSTER_TYPES)}, got {roster_type!r}")
    subject = data.get("subject", "All")
    allowed_subjects = SUBJECTS if roster_type in ("master_schedule", "elementary_teachers") else SUBJECTS[:3]
    if subject not in allowed_subjects:
        raise CersProfileError(f"{where}: subject must be one of {list(allowed_subjects)} for {roster_type}, "
                               f"got {subject!r}")
    pattern = data.get("name_pattern") or PATTERNS[roster_type][0]
    if pattern not in PATTERNS[roster_type]:
        raise CersProfileError(f"{where}: name_pattern must be one of {list(PATTERNS[roster_type])} for "
                               f"{roster_type}, got {pattern!r}")
    filters = data.get("filters") or {}
    if not isinstance(filters, dict):
        raise CersProfileError(f"{where}: filters must be a mapping")
    bad = sorted(set(filters) - set(FILTERS[roster_type]))
    if bad:
        raise CersProfileError(f"{where}: filter(s) {bad} do not apply to {roster_type}; "
                               f"allowed: {list(FILTERS[roster_type])}")
    clean: dict[str, Any] = {}
    for key, value in filters.items():
        if key == "primary_classes_only":
            if not isinstance(value, bool):
                raise CersProfileError(f"{where}: filters.primary_classes_only must be true or false")
            clean[key] = value
        else:
            clean[key] = _string_list(value, f"{where}: filters.{key}")
    prefix = str(data.get("name_prefix") or "")
    if not _PREFIX.match(prefix):
        raise CersProfileError(f"{where}: name_prefix must be at most 8 ASCII letters or digits")
    scheduled = data.get("include_in_scheduled_run", False)
    if not isinstance(scheduled, bool):
        raise CersProfileError(f"{where}: include_in_scheduled_run must be true or false")
    return CersProfile(
        name=str(name),
        roster_type=roster_type,
        subject=subject,
        name_pattern=pattern,
        schools=_string_list(data.get("schools"), f"{where}: schools"),
        filters=clean,
        name_prefix=prefix,
        additional_users=_string_list(data.get("additional_users"), f"{where}: additional_users"),
        include_in_scheduled_run=scheduled,
        description=str(data.get("description") or ""),
    )


def load_profiles(path: Path) -> dict[str, CersProfile]:
    """Every profile in ``path`` (a YAML file with a top-level ``profiles:`` mapping), by name."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CersProfileError(f"CERS profiles file not found: {path}") from None
    except yaml.YAMLError as error:
        raise CersProfileError(f"{path}: not valid YAML ({type(error).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("profiles"), dict) or not data["profiles"]:
        raise CersProfileError(f"{path}: needs a non-empty top-level 'profiles:' mapping")
    return {str(name): parse_profile(str(name), body, source=path.name) for name, body in data["profiles"].items()}


def select_profiles(catalog: Mapping[str, CersProfile], requested: Iterable[str] | None) -> list[CersProfile]:
    """The profiles a run builds: ``requested`` by name, or (when empty) those included in the scheduled run."""
    names = sorted({str(n).strip() for n in requested or () if str(n).strip()})
    if not names:
        chosen = [p for p in catalog.values() if p.include_in_scheduled_run]
        if not chosen:
            raise CersProfileError("no profile given and none has include_in_scheduled_run: true "
                                   f"(profiles: {sorted(catalog)})")
        return sorted(chosen, key=lambda p: p.name)
    unknown = [n for n in names if n not in catalog]
    if unknown:
        raise CersProfileError(f"unknown CERS profile(s) {unknown}; known: {sorted(catalog)}")
    return [catalog[n] for n in names]


def profile_schools(profiles: Sequence[CersProfile], available: Iterable[str], requested: Sequence[str] = ()
                    ) -> dict[str, tuple[str, ...]]:
    """Each profile's schools on this run: its own list (empty = all ``available``), narrowed to ``requested``."""
    available = tuple(sorted(set(available)))
    scoped = {}
    for profile in profiles:
        own = tuple(s for s in profile.schools if s in available) if profile.schools else available
        scoped[profile.name] = tuple(s for s in own if not requested or s in requested)
    if requested and not any(scoped.values()):
        raise CersProfileError("none of the requested schools is in the selected profiles' schools")
    return scoped
