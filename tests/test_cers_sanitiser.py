"""The CERS receiver-message sanitiser removes every value and keeps row numbers, counts and rule texts (issue 15).

Receiver messages end up in the task log, the run ledger (cers_imports.json), XCom, the run summary and e-mails, so
``sanitise_message`` must fail safe: a word it does not know becomes ``<value>``. The messages the local stand-in
and the documents show must stay readable word for word.
"""
from __future__ import annotations

import re
import time

import pytest

from rostering.delivery.cers_api import MAX_MESSAGE_LINES, sanitise_message
from rostering.devservers.cers_server import HEADER, MAX_STUDENTS, validate_group_file


def row(number: int, text: str) -> str:
    return f"Row: {number} Failure: {text}"


def clean(number: int, text: str) -> str:
    return sanitise_message(row(number, text))


# -- names -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("Student Maria Lopez is not enrolled", "Student <value> is not enrolled"),
    ("student Maria Lopez is not enrolled", "student <value> is not enrolled"),
    ("user jane doe has no account", "user <value> has no account"),
    ("Maria Lopez is not enrolled in the school", "<value> is not enrolled in the school"),
    ("student LOPEZ, MARIA is not enrolled", "student <value> is not enrolled"),
    ("student Núñez-O'Brien, José is not enrolled", "student <value> is not enrolled"),
    ("teacher McDonald, Ana has no login", "teacher <value> has no login"),
    ("student Will Brown is not enrolled", "student <value> is not enrolled"),
])
def test_unquoted_names_are_replaced(text, expected):
    assert clean(4, text) == row(4, expected)


# -- dates -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("date", [
    "2014-03-07", "03/07/2014", "3/7/14", "07.03.2014", "March 7, 2014", "Mar 7 2014", "7 March 2014",
    "7th of March, 2014", "March 2014", "2014-03-07T00:00:00",
])
def test_birth_dates_in_any_format_are_replaced(date):
    assert clean(6, f"birth date {date} is not valid") == row(6, "birth date <value> is not valid")


# -- ids ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1234567", "12345", "123456", "12345678", "123456789", "12345678901",
                                   "1234567890123", "0042"])
def test_ids_of_any_length_are_replaced(value):
    assert clean(7, f"local student id {value} is not known") == row(7, "local student id <value> is not known")


def test_staff_ids_and_ids_mixed_with_letters_are_replaced():
    assert clean(8, "teacher 7654321 has no login") == row(8, "teacher <value> has no login")
    assert clean(8, "student S1234567 is not enrolled") == row(8, "student <value> is not enrolled")
    assert clean(8, "group 6thGradeMathLopez2 is not known") == row(8, "group <value> is not known")


@pytest.mark.parametrize("ssid, expected", [
    ("1234567890", "<ssid>"),  # a plain SSID keeps its own placeholder
    ("123-456-7890", "<value>"),
    ("123 456 7890", "<value>"),
    ("SSID1234567890A", "<value>"),
    ("12345678901", "<value>"),  # a mistyped SSID
])
def test_ssids_in_any_shape_are_replaced(ssid, expected):
    assert clean(9, f"student_ssid {ssid} is not known") == row(9, f"student_ssid {expected} is not known")


@pytest.mark.parametrize("phone", ["(555) 123-4567", "555-123-4567", "+1 555 123 4567", "555.123.4567"])
def test_phone_like_numbers_are_replaced(phone):
    result = clean(10, f"contact {phone} is not valid")
    assert not re.search(r"\d", result.split("Failure:")[1]), result
    assert result.startswith(row(10, "contact ")) and result.endswith(" is not valid")


@pytest.mark.parametrize("text, expected", [
    ("StudentId=1234567 not found", "StudentId=<value> not found"),
    ("student_id: 1234567 not found", "student_id: <value> not found"),
    ("LocalId:A12345 not found", "LocalId:<value> not found"),
    ("name=maria not found", "name=<value> not found"),
    ("grade=3 is not valid", "grade=<value> is not valid"),
    ("student: will is not enrolled", "student: <value> is not enrolled"),
])
def test_values_after_equals_or_colon_are_replaced(text, expected):
    assert clean(11, text) == row(11, expected)


# -- e-mails and quoted values -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text, leaked", [
    ("group_user_login mary.o'brien@school.org is not a user", ("mary", "brien")),
    ("group_user_login jane.doe at school dot org is not a user", ("jane", "doe")),
    ("group_user_login jane.doe@school is not a user", ("jane", "doe")),
])
def test_emails_are_replaced(text, leaked):
    result = clean(12, text)
    assert not [word for word in leaked if word in result.lower()], result
    assert result.endswith(" is not a user")


@pytest.mark.parametrize("quoted", ["“Maria Lopez”", "‘Maria Lopez’", "«Maria Lopez»", "'Maria Lopez",
                                    "\"Maria Lopez"])
def test_quoted_values_in_any_quotes_are_replaced(quoted):
    result = clean(13, f"group_name {quoted} is too long")
    assert "Maria" not in result and "Lopez" not in result, result
    assert result.startswith(row(13, "group_name ")) and result.endswith("is too long")


def test_a_quoted_column_name_stays():
    assert clean(2, "column 'student_ssid' is missing") == row(2, "column 'student_ssid' is missing")


# -- fail safe: what it does not know is a value -----------------------------------------------------------------


def test_unknown_words_and_stray_characters_become_values():
    assert clean(3, "Zorglub frobnicated quux") == row(3, "<value>")
    assert "\x1b" not in sanitise_message("Row: 3 Failure: bad \x1b[31mred\x1b[0m value")
    assert sanitise_message("Lopez") == "<value>"


def test_no_value_survives_a_mixed_message():
    values = ["Maria", "Lopez", "1234567", "2014-03-07", "jane.doe@x.org", "7654321", "1178197650", "555",
              "Johnson", "0042", "A12345", "José"]
    message = "\n".join([
        "Row: 2 Failure: Student Maria Lopez (1234567) born 2014-03-07 is not enrolled",
        "Row: 3 Failure: user jane.doe@x.org, staff id 7654321, is not a TOMS user",
        "Row: 4 Failure: student_ssid=1178197650 phone (555) 010-0199 guardian Mrs. Johnson",
        "Row: 5 Failure: StudentNumber:0042 LocalId=A12345 name José",
        "Import failed for Lopez, Maria",
    ])
    result = sanitise_message(message)
    assert not [value for value in values if value in result], result
    assert result.splitlines()[0].startswith("Row: 2 Failure: Student <value>")


@pytest.mark.parametrize("text, expected", [
    ("Jean-Luc is 7 years old", "<value> is <value> years <value>"),  # an age is no count of anything here
    ("Lea Day is not enrolled", "<value> is not enrolled"),  # known words that are names too stay values
    ("Will May has no login", "<value> has no login"),
    ("student Grant's class is full", "student <value> class is <value>"),
])
def test_known_words_that_are_names_are_replaced(text, expected):
    assert clean(14, text) == row(14, expected)


def test_row_numbers_counts_and_school_codes_stay():
    assert sanitise_message("Row: 3 Error: Maria") == "Row: 3 Error: <value>"
    assert clean(3, "duplicate of rows 1 and 2") == row(3, "duplicate of rows 1 and 2")
    assert clean(3, "Unknown school 19647330000001") == row(3, "Unknown school 19647330000001")
    assert clean(3, "student 19647330000001 is unknown") == row(3, "student <value> is unknown")


def test_the_row_number_is_the_only_number_of_a_prefix():
    # a huge "row number" is not a row number: it is treated as text
    assert sanitise_message("Row: 1234567890123 Failure: x") == "Row: <value> Failure: <value>"


# -- documented and stand-in messages stay readable --------------------------------------------------------------


DOCUMENTED = [
    # docs/cers.md, ../shared/reference/cers-student-groups.md, the issue
    "Row: 3 Failure: Group name exceeds 50 characters",
    "Row: 12 Failure: group has more than 200 students",
    "3 group(s) accepted for 19647331932367.",
    # the stand-in's row messages (rostering.devservers.cers_server.validate_group_file)
    "Row: 1 Failure: file is not UTF-8",
    "Row: 1 Failure: header must be " + ",".join(HEADER),
    f"Row: 2 Failure: expected {len(HEADER)} fields",
    "Row: 5 Failure: group_name is longer than 255 characters",
    "Row: 5 Failure: school_natural_id is longer than 40 characters",
    "Row: 5 Failure: subject_code is longer than 10 characters",
    "Row: 5 Failure: student_ssid is longer than 65 characters",
    "Row: 5 Failure: group_user_login is longer than 255 characters",
    "Row: 2 Failure: group_name is required",
    "Row: 2 Failure: school_natural_id is required",
    "Row: 2 Failure: school_year is required",
    "Row: 4 Failure: school_year must be an integer",
    "Row: 4 Failure: subject_code is not a known subject",
    "Row: 4 Failure: group_user_login is not an e-mail address",
    "Row: 7 Failure: rows must be sorted by school, group and year",
    "Row: 3 Failure: subject_code differs from an earlier row of the group",
    f"Row: 203 Failure: group has more than {MAX_STUDENTS} students",
    # the stand-in's other answers
    "2 group(s) accepted for 19647330000001.",
    "1 school(s) in the file are not known",
    "the user may not write student groups for a school in the file",
    "at least one of status, batch, after, before is required",
    "no such import",
    "not found",
    "multipart field 'file' is required",
    "send multipart/form-data (field 'file') or application/csv",
    "Bad client credentials",
    "Bad credentials",
    "invalid_client",
    "invalid_grant",
    "invalid_token",
    "unsupported_grant_type",
    "the access token expired",
    "Service Unavailable",
    "Too Many Requests",
    "Bad Gateway",
    # rule texts as our own validator words them (rostering.cers.checks) -- a receiver says similar things
    "Row: 6 Failure: school_natural_id must be a 14-digit CDS code",
    "Row: 6 Failure: school_year must be a 4-digit year (the spring year)",
    "Row: 6 Failure: subject_code must be blank or one of ELA, Math, All, ELPAC",
    "Row: 6 Failure: student_ssid must be a 10-digit SSID",
    "Row: 6 Failure: the row carries no student, no user and no subject",
    "Row: 6 Failure: the student is already in this group",
    "Row: 6 Failure: group_name must be printable ASCII without commas",
    "Row: 8 Failure: rows of one school must be contiguous (sort by school, group, year)",
    "Row: 9 Failure: group_name differs from another group name of the school only in upper/lower case",
    "Row: 9 Failure: Duplicate student in group",
    "Row: 9 Failure: Unknown school",
    "Row: 9 Failure: school_year must be a 4-digit year",
    "Row: 9 Failure: group name must be between 1 and 255 characters",
]


@pytest.mark.parametrize("message", DOCUMENTED)
def test_documented_messages_stay_readable(message):
    assert sanitise_message(message) == message


def test_every_message_the_stand_in_gives_stays_readable():
    header = ",".join(HEADER).encode() + b"\r\n"
    files = [
        b"\xff\xfe",
        b"name,school\r\n",
        header + b"G,19647330000001\r\n",
        header + b"G,19647330000001,2027,,," + b"x" * 300 + b"\r\n",
        header + b",,,,,\r\n",
        header + b"G,19647330000001,20x7,Art,,nobody\r\n",
        header + b"G,19647330000001,2027,Math,,\r\nG,19647330000001,2027,ELA,,\r\n",
        header + b"A,19647330000001,2027,,,a@x.org\r\nB,19647330000001,2027,,,a@x.org\r\n"
                 b"A,19647330000001,2027,,,b@x.org\r\n",
        header + b"".join(b"G,19647330000001,2027,,%010d,\r\n" % i for i in range(MAX_STUDENTS + 1)),
    ]
    messages = [m for content in files for m in validate_group_file(content)[0]]
    assert len(messages) >= 10
    for message in messages:
        assert sanitise_message(message) == message


def test_limits_stay():
    many = "\n".join(f"Row: {i} Failure: group_name is required" for i in range(MAX_MESSAGE_LINES + 10))
    result = sanitise_message(many).splitlines()
    assert len(result) == MAX_MESSAGE_LINES + 1 and result[-1] == "(+10 more lines)"
    assert len(sanitise_message("Row: 2 Failure: " + "group " * 100)) <= 300
    assert sanitise_message(None) == sanitise_message("") == sanitise_message("  \n ") == ""


@pytest.mark.parametrize("hostile", [
    "x" * 200_000,
    "a.b" * 70_000,
    "'" + "a " * 100_000,
    "1-" * 100_000,
    ("Row: 2 Failure: " + "Maria " * 60 + "\n") * 5_000,
])
def test_long_and_hostile_messages_take_linear_time(hostile):
    started = time.perf_counter()
    result = sanitise_message(hostile)
    assert time.perf_counter() - started < 2.0
    assert "Maria" not in result and "xxxx" not in result
