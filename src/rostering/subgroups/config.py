"""The ``subgroups:`` section of a vendor profile, parsed and checked once, with errors that name the setting.

```yaml
subgroups:
  student_ids_from: stmath        # the roster profile whose oneroster.user_ids make student_id (one setting)
  file_name: student_subgroups.csv
  columns:                        # the file's columns, in this order, after student_id
    - {name: ell, program: ELL, format: map, values: {EL: EL, RFEP: RFEP}, none: EO}
    - {name: sped, program: SPED, format: y/n}
    - {name: other_language, attribute: home_language_code, false_values: ["00", eng], format: "1/0"}
```

Sources: ``program`` (a ``student_program`` code active on the as-of date, optionally only some ``statuses``) or
``attribute`` (a column of the student table). Formats: ``y/n``, ``yes/no``, ``1/0`` (flags) or ``map`` (the program's
status code, or the attribute value, through ``values``; ``none`` when not in the program / attribute empty, ``other``
for a value ``values`` does not list). ``allow_blank: true`` lets a column hold empty values.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

FLAG_FORMATS: dict[str, tuple[str, str]] = {"y/n": ("y", "n"), "yes/no": ("yes", "no"), "1/0": ("1", "0")}
FORMATS = (*FLAG_FORMATS, "map")
DEFAULT_ROSTER = "stmath"
DEFAULT_FILE_NAME = "student_subgroups.csv"
ID_COLUMN = "student_id"
# Student columns that identify a child: never a subgroup source (the feed carries subgroup values, not identities).
IDENTIFYING_ATTRIBUTES = frozenset(
    {"student_id", "ssid", "first_name", "middle_name", "last_name", "birth_date", "email", "username"}
)
_COLUMN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\.csv$")


class SubgroupConfigError(ValueError):
    """The ``subgroups:`` section of a profile is wrong; the message names the setting (never student data)."""


def _text(value: Any, where: str) -> str:
    """A configured value as text. YAML reads ``yes``/``no``/``on``/``off``/``true`` unquoted as booleans."""
    if isinstance(value, bool):
        raise SubgroupConfigError(f"{where}: YAML read an unquoted yes/no/true/false/on/off as a boolean; quote it")
    if isinstance(value, (int, str)) and str(value) != "":
        if any(ch in str(value) for ch in "\r\n"):
            raise SubgroupConfigError(f"{where}: must not contain a line break")
        return str(value)
    raise SubgroupConfigError(f"{where}: must be a non-empty string")


def _texts(values: Any, where: str) -> tuple[str, ...]:
    if values is None:
        return ()
    if not isinstance(values, (list, tuple)):
        raise SubgroupConfigError(f"{where}: must be a list")
    return tuple(_text(v, f"{where}[{i}]") for i, v in enumerate(values))


@dataclass(frozen=True)
class SubgroupColumn:
    """One column of the file: where its value comes from and how it is written."""

    name: str
    format: str  # y/n | yes/no | 1/0 | map
    program: str | None = None  # student_program.program_code
    statuses: tuple[str, ...] = ()  # program flags: only these status codes count (empty = any)
    attribute: str | None = None  # a student table column
    true_values: tuple[str, ...] = ()  # attribute flags: true when the value is one of these
    false_values: tuple[str, ...] = ()  # attribute flags: true when a value is present and is none of these
    values: Mapping[str, str] = field(default_factory=dict)  # map: source value -> written value
    none: str | None = None  # map: not in the program / attribute empty
    other: str | None = None  # map: a source value that ``values`` does not list
    allow_blank: bool = False

    @property
    def is_flag(self) -> bool:
        return self.format in FLAG_FORMATS

    def allowed_values(self) -> tuple[str, ...]:
        """Every value this column may hold (blank aside), in a stable order."""
        if self.is_flag:
            return FLAG_FORMATS[self.format]
        written = [*self.values.values(), *(v for v in (self.none, self.other) if v is not None)]
        return tuple(dict.fromkeys(written))

    @classmethod
    def from_dict(cls, data: Any, position: int) -> "SubgroupColumn":
        where = f"subgroups.columns[{position}]"
        if not isinstance(data, Mapping):
            raise SubgroupConfigError(f"{where}: must be a mapping with name, program or attribute, format")
        known = {"name", "format", "program", "statuses", "attribute", "true_values", "false_values", "values",
                 "none", "other", "allow_blank"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SubgroupConfigError(f"{where}: unknown setting(s) {unknown}; allowed: {sorted(known)}")
        name = _text(data.get("name"), f"{where}.name")
        where = f"subgroups.columns[{position}] ({name})"
        if not _COLUMN_NAME.match(name):
            raise SubgroupConfigError(f"{where}: column names are a letter then letters, digits or _ (max 64)")
        if name == ID_COLUMN:
            raise SubgroupConfigError(f"{where}: {ID_COLUMN} is the first column already")
        fmt = _text(data.get("format"), f"{where}.format")
        if fmt not in FORMATS:
            raise SubgroupConfigError(f"{where}.format: must be one of {list(FORMATS)}")
        program = _text(data["program"], f"{where}.program") if data.get("program") is not None else None
        attribute = _text(data["attribute"], f"{where}.attribute") if data.get("attribute") is not None else None
        if (program is None) == (attribute is None):
            raise SubgroupConfigError(f"{where}: give exactly one source, program or attribute")
        if attribute in IDENTIFYING_ATTRIBUTES:
            raise SubgroupConfigError(f"{where}.attribute: {attribute} identifies a student and is never a subgroup")
        statuses = _texts(data.get("statuses"), f"{where}.statuses")
        true_values = _texts(data.get("true_values"), f"{where}.true_values")
        false_values = _texts(data.get("false_values"), f"{where}.false_values")
        raw_values = data.get("values") or {}
        if not isinstance(raw_values, Mapping):
            raise SubgroupConfigError(f"{where}.values: must be a mapping of source value -> written value")
        values = {_text(k, f"{where}.values key"): _text(v, f"{where}.values[{k}]") for k, v in raw_values.items()}
        none = _text(data["none"], f"{where}.none") if data.get("none") is not None else None
        other = _text(data["other"], f"{where}.other") if data.get("other") is not None else None
        allow_blank = data.get("allow_blank", False)
        if not isinstance(allow_blank, bool):
            raise SubgroupConfigError(f"{where}.allow_blank: must be true or false")

        if fmt == "map":
            if not values:
                raise SubgroupConfigError(f"{where}: format map needs values (source value -> written value)")
            if statuses or true_values or false_values:
                raise SubgroupConfigError(f"{where}: statuses/true_values/false_values are for flag formats")
        else:
            if values or none is not None or other is not None:
                raise SubgroupConfigError(f"{where}: values/none/other are for format map; {fmt} writes "
                                          f"{'/'.join(FLAG_FORMATS[fmt])}")
            if program is not None and (true_values or false_values):
                raise SubgroupConfigError(f"{where}: true_values/false_values are for attribute sources "
                                          "(a program flag is its active row, optionally limited by statuses)")
            if attribute is not None:
                if statuses:
                    raise SubgroupConfigError(f"{where}: statuses are for program sources")
                if bool(true_values) == bool(false_values):
                    raise SubgroupConfigError(f"{where}: an attribute flag needs exactly one of true_values or "
                                              "false_values")
        return cls(name=name, format=fmt, program=program, statuses=statuses, attribute=attribute,
                   true_values=true_values, false_values=false_values, values=values, none=none, other=other,
                   allow_blank=allow_blank)


@dataclass(frozen=True)
class SubgroupConfig:
    roster: str  # the roster vendor profile whose user_ids make student_id, and whose delivery is cross-checked
    file_name: str
    columns: tuple[SubgroupColumn, ...]

    @property
    def header(self) -> tuple[str, ...]:
        return (ID_COLUMN, *(c.name for c in self.columns))

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, after: str | None = None) -> "SubgroupConfig":
        known = {"student_ids_from", "file_name", "columns"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise SubgroupConfigError(f"subgroups: unknown setting(s) {unknown}; allowed: {sorted(known)}")
        roster = _text(options.get("student_ids_from", DEFAULT_ROSTER), "subgroups.student_ids_from")
        if after is not None and after != roster:
            raise SubgroupConfigError(
                f"after: {after} but subgroups.student_ids_from: {roster}; the subgroup feed must follow the roster "
                "it shares student ids with (set both to the same vendor)"
            )
        file_name = _text(options.get("file_name", DEFAULT_FILE_NAME), "subgroups.file_name")
        if not _FILE_NAME.match(file_name):
            raise SubgroupConfigError("subgroups.file_name: a plain file name ending in .csv")
        raw = options.get("columns")
        if not isinstance(raw, list) or not raw:
            raise SubgroupConfigError("subgroups.columns: a non-empty list of columns")
        columns = tuple(SubgroupColumn.from_dict(item, i) for i, item in enumerate(raw))
        names = [c.name for c in columns]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise SubgroupConfigError(f"subgroups.columns: duplicate column name(s) {duplicated}")
        return cls(roster=roster, file_name=file_name, columns=columns)


def subgroup_config(profile: Any) -> SubgroupConfig:
    """The parsed ``subgroups:`` section of a vendor profile."""
    return SubgroupConfig.from_options(profile.options, after=profile.after)
