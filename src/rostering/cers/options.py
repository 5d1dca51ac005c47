"""The ``cers:`` section of a vendor profile, as a typed model (validated when the profile loads; docs/cers.md).

Every key ``rostering.cers.vendor`` reads; the profile keeps its section as written (``VendorProfile.options``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from rostering.cers.spec import DEFAULT_GROUP_NAME_MAX_LENGTH, MAX_STUDENTS_PER_GROUP, RECEIVER_GROUP_NAME_MAX_LENGTH
from rostering.paths import config_dir
from rostering.vendors.strict import Problem, Strict, Text, show


class CersSection(Strict):
    profiles_file: Text = "cers_profiles.yaml"  # relative to config/ (or absolute)
    group_name_max_length: Annotated[int, Field(ge=1, le=RECEIVER_GROUP_NAME_MAX_LENGTH)] = \
        DEFAULT_GROUP_NAME_MAX_LENGTH
    max_students_per_group: Annotated[int, Field(ge=1, le=MAX_STUDENTS_PER_GROUP)] = MAX_STUDENTS_PER_GROUP
    consolidate: bool = False  # the run param's default: one file per school, or one file

    def problems(self) -> list[Problem]:
        path = Path(self.profiles_file)
        path = path if path.is_absolute() else config_dir() / path
        if not path.is_file():
            return [(("profiles_file",), f"{show(self.profiles_file)}: no such file ({path}); it is relative to "
                                         "config/")]
        return []
