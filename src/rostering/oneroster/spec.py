"""OneRoster 1.1 CSV binding as data: file headers in order, vocabularies, the manifest.

Source: ../shared/reference/oneroster-1.1-csv.md (1EdTech "OneRoster v1.1 Final CSV Tables").
Vendor extension columns are appended to the right of these by the vendor profiles, never interleaved.
"""
from __future__ import annotations

import re

HEADERS: dict[str, tuple[str, ...]] = {
    "orgs.csv": ("sourcedId", "status", "dateLastModified", "name", "type", "identifier", "parentSourcedId"),
    "academicSessions.csv": (
        "sourcedId", "status", "dateLastModified", "title", "type", "startDate", "endDate", "parentSourcedId",
        "schoolYear",
    ),
    "courses.csv": (
        "sourcedId", "status", "dateLastModified", "schoolYearSourcedId", "title", "courseCode", "grades",
        "orgSourcedId", "subjects", "subjectCodes",
    ),
    "classes.csv": (
        "sourcedId", "status", "dateLastModified", "title", "grades", "courseSourcedId", "classCode", "classType",
        "location", "schoolSourcedId", "termSourcedIds", "subjects", "subjectCodes", "periods",
    ),
    "users.csv": (
        "sourcedId", "status", "dateLastModified", "enabledUser", "orgSourcedIds", "role", "username", "userIds",
        "givenName", "familyName", "middleName", "identifier", "email", "sms", "phone", "agentSourcedIds", "grades",
        "password",
    ),
    "enrollments.csv": (
        "sourcedId", "status", "dateLastModified", "classSourcedId", "schoolSourcedId", "userSourcedId", "role",
        "primary", "beginDate", "endDate",
    ),
}

# Required columns (R in the binding). status/dateLastModified are "delta only": blank in bulk files.
REQUIRED: dict[str, tuple[str, ...]] = {
    "orgs.csv": ("sourcedId", "name", "type"),
    "academicSessions.csv": ("sourcedId", "title", "type", "startDate", "endDate", "schoolYear"),
    "courses.csv": ("sourcedId", "title", "orgSourcedId"),
    "classes.csv": ("sourcedId", "title", "courseSourcedId", "classType", "schoolSourcedId", "termSourcedIds"),
    "users.csv": ("sourcedId", "enabledUser", "orgSourcedIds", "role", "username", "givenName", "familyName"),
    "enrollments.csv": ("sourcedId", "classSourcedId", "schoolSourcedId", "userSourcedId", "role"),
}

BULK_BLANK_COLUMNS = ("status", "dateLastModified")

# Every v1.1 file, in the manifest's order.
MANIFEST_FILES = (
    "academicSessions", "categories", "classes", "classResources", "courses", "courseResources", "demographics",
    "enrollments", "lineItems", "orgs", "resources", "results", "users",
)

ORG_TYPES = ("department", "school", "district", "local", "state", "national")
SESSION_TYPES = ("gradingPeriod", "semester", "schoolYear", "term")
CLASS_TYPES = ("homeroom", "scheduled")
USER_ROLES = ("administrator", "aide", "guardian", "parent", "proctor", "relative", "student", "teacher")
ENROLLMENT_ROLES = ("administrator", "proctor", "student", "teacher")
BOOLEANS = ("true", "false")
GRADES = ("IT", "PR", "PK", "TK", "KG", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12",
          "13", "PS", "UG", "Other")

# GUID: 1..255 of 0-9 a-z A-Z . - _ / @. Patterns end in \Z, not $: GX matches with Python's re, where "$" also
# matches before a final line break (an id "a7\n" would pass).
GUID_ITEM = r"[0-9A-Za-z.\-_/@]{1,255}"
GUID_PATTERN = rf"^{GUID_ITEM}\Z"
GUID_RE = re.compile(GUID_PATTERN)
DATE_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])\Z"
YEAR_PATTERN = r"^\d{4}\Z"

# Columns holding a list of GUIDs (comma-separated inside one quoted field).
GUID_LIST_COLUMNS = {
    "classes.csv": ("termSourcedIds",),
    "users.csv": ("orgSourcedIds", "agentSourcedIds"),
}

# Cross-file references: (file, column, target file). List columns are split before checking.
REFERENCES = (
    ("orgs.csv", "parentSourcedId", "orgs.csv"),
    ("academicSessions.csv", "parentSourcedId", "academicSessions.csv"),
    ("courses.csv", "schoolYearSourcedId", "academicSessions.csv"),
    ("courses.csv", "orgSourcedId", "orgs.csv"),
    ("classes.csv", "courseSourcedId", "courses.csv"),
    ("classes.csv", "schoolSourcedId", "orgs.csv"),
    ("classes.csv", "termSourcedIds", "academicSessions.csv"),
    ("users.csv", "orgSourcedIds", "orgs.csv"),
    ("enrollments.csv", "classSourcedId", "classes.csv"),
    ("enrollments.csv", "schoolSourcedId", "orgs.csv"),
    ("enrollments.csv", "userSourcedId", "users.csv"),
)


def manifest_rows(present: set[str], *, system_name: str = "rostering") -> list[tuple[str, str]]:
    """manifest.csv rows: bulk for each file in the package, absent for the rest of the 13."""
    rows = [("manifest.version", "1.0"), ("oneroster.version", "1.1")]
    rows += [(f"file.{name}", "bulk" if f"{name}.csv" in present else "absent") for name in MANIFEST_FILES]
    rows.append(("source.systemName", system_name))
    return rows
