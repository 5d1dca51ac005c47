"""The CERS student-group file as the receiver (Smarter Balanced RDW, deployed in California as CERS) defines it.

One place for the constants every other CERS module and the local endpoint agree on. Source: the RDW group import
contract (docs/cers.md, ../shared/reference/cers-student-groups.md) and PowerSchool's 20-character group name.
"""
from __future__ import annotations

import re

HEADER: tuple[str, ...] = (
    "group_name", "school_natural_id", "school_year", "subject_code", "student_ssid", "group_user_login",
)

MAX_STUDENTS_PER_GROUP = 200
"""The receiver rejects a group with more students; bigger rosters are split with a numeric suffix."""

DEFAULT_GROUP_NAME_MAX_LENGTH = 20
"""The strictest documented receiver limit: PowerSchool's CERS extract allows 20 characters (RDW itself 255)."""

RECEIVER_GROUP_NAME_MAX_LENGTH = 255
RECEIVER_COLUMN_SIZES = {
    "group_name": 255, "school_natural_id": 40, "subject_code": 10, "student_ssid": 65, "group_user_login": 255,
}
MAX_FILE_BYTES = 500 * 1024 * 1024  # the import service's upload limit

# The subject codes we write (the receiver matches them case-insensitively; CA also loads ELPAC groups).
SUBJECT_CODES = ("ELA", "Math", "All")
RECEIVER_SUBJECT_CODES = ("ELA", "Math", "All", "ELPAC")
# SIS section.caaspp_subject (any case) -> the file's subject_code.
CAASPP_SUBJECTS = {"ELA": "ELA", "MATH": "Math", "ALL": "All"}

CDS_CODE = re.compile(r"^\d{14}$")
SSID = re.compile(r"^\d{10}$")
SCHOOL_YEAR = re.compile(r"^\d{4}$")
# An educator login: one address, no spaces or commas, a dot in the domain. Deliberately simple: CERS matches the
# login against TOMS accounts; this only catches what can never be a login (blank, "n/a", two addresses).
EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")

# Teaching roles whose staff become group users of a class (PowerSchool: lead, co-teacher, job share). Aides not.
TEACHING_ROLES = ("lead", "co_teacher", "job_share")
