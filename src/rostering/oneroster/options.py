"""The ``oneroster:`` section of a vendor profile, as a typed model (validated when the profile loads).

Every key ``rostering.oneroster.vendor`` reads (``build_options``, ``expected_headers``, ``payload``) is here; nothing
else is allowed. The model only checks: the profile keeps its section as written (``VendorProfile.options``).
This module is imported when DAG files are parsed, so it must not import the builder (pandas): the extension
sources and the user-id options are restated here, and tests/test_profiles.py keeps them in step with
``rostering.oneroster.build``.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union, get_args

from pydantic import BeforeValidator, Field

from rostering.oneroster.spec import ENROLLMENT_ROLES, HEADERS, USER_ROLES
from rostering.sis.schema import CedsGrade, StaffRole
from rostering.vendors.strict import Id, Problem, Strict, Text, matching, show, suggest

# rostering.oneroster.build.EXTENSION_SOURCES (restated: see the module docstring)
EXTENSION_SOURCES: dict[str, tuple[str, ...]] = {
    "users.csv": ("ell", "home_language", "reading_level", "reading_level_imputed"),
    "orgs.csv": ("classification", "gender", "boarding"),
}
CEDS_GRADES: tuple[str, ...] = get_args(CedsGrade)  # PK TK KG 01 … 12
SPLIT_ROLES = {"users.csv": USER_ROLES, "enrollments.csv": ENROLLMENT_ROLES}



def _data_file(value: Any) -> Any:
    if value == "manifest.csv":
        raise ValueError("manifest.csv is not a data file: manifest: true adds it")
    return value


# orgs.csv, academicSessions.csv, courses.csv, classes.csv, users.csv, enrollments.csv
DataFile = Annotated[Literal[tuple(HEADERS)], BeforeValidator(_data_file)]
SplitFile = Literal[tuple(SPLIT_ROLES)]
StaffUserRole = Literal["administrator", "aide", "proctor", "teacher"]  # OneRoster roles a staff member can have


def _grade(value: Any) -> Any:
    """Grades are text: YAML reads an unquoted 01 as the number 1 (and 012 as 10)."""
    if isinstance(value, int) and not isinstance(value, bool):
        hint = f': write "{value:02d}"' if 1 <= value <= 12 else ""
        raise ValueError(f"must be a grade as quoted text ({', '.join(CEDS_GRADES)}), got the number {value}"
                         f" (YAML reads unquoted 01 as 1){hint}")
    if isinstance(value, str) and value.isdigit() and len(value) == 1:
        raise ValueError(f"grades have two digits: write \"0{value}\", got {show(value)}")
    return value


Grade = Annotated[CedsGrade, BeforeValidator(_grade)]


def _file_name(value: Any) -> Any:
    if isinstance(value, str) and ("/" in value or "\\" in value or value.startswith(".")):
        raise ValueError(f"must be a plain file name (no folder), got {show(value)}")
    return value


CsvName = Annotated[str, BeforeValidator(_file_name),
                    matching(r"[A-Za-z0-9][A-Za-z0-9_.-]*\.csv", "a file name ending in .csv")]
ZipName = Annotated[str, BeforeValidator(_file_name),
                    matching(r"[A-Za-z0-9][A-Za-z0-9_.-]*\.zip", "a file name ending in .zip")]


class UserIds(Strict):
    """rostering.oneroster.build.UserIdOptions (restated: see the module docstring)."""

    student_source: Literal["local_id", "ssid"] = "local_id"
    student_prefix: str = ""
    staff_prefix: str = "staff-"

    def problems(self) -> list[Problem]:
        if self.student_prefix == self.staff_prefix:
            return [((), f"student_prefix and staff_prefix must differ (both {show(self.staff_prefix)}), so a "
                          "student id can never equal a staff id")]
        return []


class Products(Strict):
    """ST Math: the product of each grade, the per-school 6th-grade choice, and the products the district bought."""

    by_grade: dict[Grade, Text] = {}
    sixth_grade_by_school: dict[Id, Text] = {}
    licensed: list[Text] = []

    def problems(self) -> list[Problem]:
        if self.licensed and not self.by_grade:
            return [(("licensed",), "needs by_grade (a student's product comes from their grade)")]
        known = {*self.by_grade.values(), *self.sixth_grade_by_school.values()}
        return [(("licensed", i), f"{show(p)} is not a product of by_grade or sixth_grade_by_school"
                                  f"{suggest(p, sorted(known))}")
                for i, p in enumerate(self.licensed) if p not in known]


class PasswordFromConnection(Strict):
    mode: Literal["connection"]
    conn_id: Text  # the Airflow connection whose password is every staff row's password


class PasswordFromSis(Strict):
    mode: Literal["sis"]  # each staff member's staff.initial_password


StaffPassword = Annotated[Union[PasswordFromConnection, PasswordFromSis], Field(discriminator="mode")]


class OneRosterSection(Strict):
    files: Annotated[list[DataFile], Field(min_length=1)]  # required: the vendor's file set is its contract
    manifest: bool = True
    zip_name: ZipName | None = None
    user_ids: UserIds = UserIds()
    staff_roles: dict[StaffRole, StaffUserRole] | None = None  # SIS staff_role -> OneRoster role
    district_org_type: Literal["district", "local"] = "district"
    schools: list[Id] = []  # licensed schools (SIS school_id); empty = all
    grades: list[Grade] = []  # licensed grades; empty = all
    include_student_email: bool = True
    extensions: dict[DataFile, dict[Text, Text]] = {}  # file -> {header: source}
    products: Products | None = None
    staff_password: StaffPassword | None = None
    split_by_role: dict[SplitFile, dict[CsvName, list[Text]]] | None = None  # file -> {part file: [roles]}

    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        for i, name in enumerate(self.files):
            if name in self.files[:i]:
                out.append((("files", i), f"{name} is listed twice"))
        for name, columns in self.extensions.items():
            if name not in self.files:
                out.append((("extensions", name), f"{name} is not in files"))
            sources = EXTENSION_SOURCES.get(name)
            if sources is None:
                out.append((("extensions", name), f"{name} has no extension sources (only "
                                                  f"{', '.join(EXTENSION_SOURCES)} have)"))
                continue
            for header, source in columns.items():
                if header in HEADERS[name]:
                    out.append((("extensions", name, header), f"{header} is a OneRoster column of {name}"))
                if source not in sources:
                    out.append((("extensions", name, header), f"unknown source {show(source)}"
                                f"{suggest(source, sources) or ' - one of ' + ', '.join(sources)}"))
        for name, parts in (self.split_by_role or {}).items():
            if name not in self.files:
                out.append((("split_by_role", name), f"{name} is not in files"))
            seen: dict[str, str] = {}
            for part, roles in parts.items():
                for role in roles:
                    if role not in SPLIT_ROLES[name]:
                        out.append((("split_by_role", name, part), f"{show(role)} is not a role of {name} "
                                    f"({', '.join(SPLIT_ROLES[name])}){suggest(role, SPLIT_ROLES[name])}"))
                    elif role in seen:
                        out.append((("split_by_role", name, part), f"{role} is already in {seen[role]}: each role "
                                                                   "goes to exactly one file"))
                    seen.setdefault(role, part)
        if self.split_by_role and self.zip_name:
            out.append((("split_by_role",), "not used when zip_name is set (the zip holds the whole files): "
                                            "remove one of them"))
        out += [(("user_ids", *path), message) for path, message in self.user_ids.problems()]
        if self.products is not None:
            out += [(("products", *path), message) for path, message in self.products.problems()]
        return out
