"""Validate CERS student-group files against every receiver rule before anything is uploaded.

The receiver rejects the whole file (BAD_DATA) on a single error, so everything it checks is checked here first,
plus our own stricter conventions. Findings name file, line (header = line 1), column and rule -- never a value.

=========================  ======================================================================================
rule                       what must hold
=========================  ======================================================================================
header                     the header is exactly ``group_name,school_natural_id,school_year,subject_code,...``
malformed_csv              every line parses as 6 comma-separated fields (the lines that do not are listed)
line_break_in_value        no value contains a line break
no_data_rows               the file has at least one data row
required                   group_name, school_natural_id and school_year are present on every row
group_name_length          group names are at most ``group_name_max_length`` characters (default 20)
group_name_characters      group names are printable ASCII without commas (the receiver trims spaces)
school_natural_id          a 14-digit CDS code
school_year                a 4-digit integer (the spring year)
subject_code               blank or ELA / Math / All / ELPAC (any case)
subject_redefined          a group never changes its subject from one row to another
subject_stated_once        exactly one row of each group carries its subject (our convention)
row_empty                  every row carries a student, a user or the group's subject
student_ssid               a 10-digit SSID when present
group_user_login           an e-mail address when present
not_contiguous             rows are contiguous by school, and within a school by group and year
group_name_not_unique      no two groups of one school differ only in upper/lower case (the receiver would merge
                           them)
too_many_students          at most 200 students per group
duplicate_student          a student appears at most once per group
file_too_large             at most 500 MB (the import service's limit)
group_in_several_files     a group is in one file only (two uploads would replace each other)
=========================  ======================================================================================
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from rostering.cers.spec import (
    CDS_CODE, DEFAULT_GROUP_NAME_MAX_LENGTH, EMAIL, HEADER, MAX_FILE_BYTES, MAX_STUDENTS_PER_GROUP,
    RECEIVER_SUBJECT_CODES, SCHOOL_YEAR, SSID,
)
from rostering.frames import equal_codes, run_starts
from rostering.validation.report import Finding, ValidationReport

_SUBJECTS_LOWER = sorted({s.lower() for s in RECEIVER_SUBJECT_CODES})
_GROUP_NAME = r"[\x21-\x2b\x2d-\x7e](?:[\x20-\x2b\x2d-\x7e]*[\x21-\x2b\x2d-\x7e])?"  # printable ASCII, no comma
_PARSE = dict(
    parse_options=pacsv.ParseOptions(newlines_in_values=True),
    convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in HEADER},
                                         strings_can_be_null=False, quoted_strings_can_be_null=False),
)


# -- reading ---------------------------------------------------------------------------------------------------------


@dataclass
class _File:
    """One file as read: its structural findings and, once parsed, its rows (Arrow strings, not yet trimmed; moved
    into the rows of all files by ``_read``, which leaves ``rows``: the number of data rows checked, or None)."""

    name: str
    findings: list[Finding] = field(default_factory=list)
    table: pa.Table | None = None
    rows: int | None = None
    raw: bytes = b""
    readable: bool = False  # not empty, the right header: its rows are parsed
    plain_rows: int | None = None  # a plain file (see _plain): its number of data rows, known before parsing


def _open(path: Path) -> _File:
    """The structural checks that need no parsing: size, empty, header."""
    file = _File(path.name, raw=path.read_bytes())
    raw = file.raw
    if len(raw) > MAX_FILE_BYTES:
        file.findings.append(Finding(file.name, "file_too_large", None,
                                     message=f"the file is larger than {MAX_FILE_BYTES} bytes"))
    if not raw.strip():
        file.findings.append(Finding(file.name, "header", None, message="the file is empty"))
        return file
    first_line = raw.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8-sig", errors="replace")
    if tuple(next(csv.reader([first_line]))) != HEADER:
        file.findings.append(Finding(file.name, "header", None, (1,),
                                     message="the header must be exactly " + ",".join(HEADER)))
        return file
    file.readable = True
    if _plain(raw):
        file.plain_rows = raw.count(b"\n") - 1
    return file


def _plain(raw: bytes) -> bool:
    """No quote, every line ends in CRLF, no empty line (what we write): then every line after the header is one
    row, so files like this can be parsed together and their rows told apart by count."""
    crlf = raw.count(b"\r\n")
    return (b'"' not in raw and raw.endswith(b"\r\n") and raw.count(b"\r") == crlf == raw.count(b"\n")
            and b"\r\n\r\n" not in raw)


def _parse_one(file: _File) -> None:
    """Parse one file's rows; a CSV syntax error becomes a finding listing the bad lines."""
    try:
        file.table = pacsv.read_csv(io.BytesIO(file.raw), read_options=pacsv.ReadOptions(
            skip_rows=1, column_names=list(HEADER), use_threads=False), **_PARSE)
    except (pa.ArrowInvalid, UnicodeDecodeError):
        # Only on this error path: find the offending line numbers with the csv module (pyarrow's message would
        # quote the line's values).
        bad = [number for number, record in enumerate(
            csv.reader(io.StringIO(file.raw.decode("utf-8-sig", errors="replace"), newline="")), start=1)
            if len(record) != len(HEADER)]
        file.findings.append(Finding.at(file.name, "malformed_csv", None, bad or [1],
                                        f"the line does not have {len(HEADER)} fields (or is not UTF-8)"))


def _parse_together(files: list[_File]) -> bool:
    """Parse plain files as one CSV (one pyarrow call instead of one per file: most of the reading time) and cut
    the rows back into files by their counts. False when that fails (a bad row somewhere): parse them one by one."""
    bodies = [file.raw[file.raw.index(b"\n") + 1:] for file in files]
    try:  # (unquoted: no value can span lines, so pyarrow may parse without looking for that)
        table = pacsv.read_csv(io.BytesIO(b"".join(bodies)), read_options=pacsv.ReadOptions(
            column_names=list(HEADER), use_threads=False), parse_options=pacsv.ParseOptions(newlines_in_values=False),
            convert_options=_PARSE["convert_options"])
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return False
    if table.num_rows != sum(file.plain_rows for file in files):
        return False
    offset = 0
    for file in files:
        file.table = table.slice(offset, file.plain_rows)
        offset += file.plain_rows
    return True


@dataclass
class _Rows:
    """The rows of several files in one table: trimmed columns, the file (index into ``names``) and the line."""

    names: list[str]
    columns: dict[str, pa.Array]
    file: np.ndarray
    line: np.ndarray  # 1-based line of the file (header = line 1)

    @classmethod
    def of(cls, names: list[str], tables: list[pa.Table]) -> "_Rows":
        sizes = [t.num_rows for t in tables]
        table = pa.concat_tables(tables) if tables else pa.table({c: pa.array([], pa.string()) for c in HEADER})
        columns = {c: pc.utf8_trim_whitespace(table[c].combine_chunks()) for c in HEADER}
        file = np.repeat(np.arange(len(tables)), sizes)
        line = np.arange(len(file)) - np.repeat(np.cumsum(sizes) - sizes, sizes) + 2
        return cls(names, columns, file, line)

    def where(self, keep: np.ndarray) -> "_Rows":
        return _Rows(self.names, {c: a.filter(pa.array(keep)) for c, a in self.columns.items()},
                     self.file[keep], self.line[keep])

    def findings(self, rule: str, column: str | None, mask: np.ndarray, message: str) -> dict[int, Finding]:
        """Per file with a True row: the finding naming its lines (``Finding.at``, as the per-file check did)."""
        hits = np.flatnonzero(mask)
        files, starts = np.unique(self.file[hits], return_index=True)
        return {int(f): Finding.at(self.names[f], rule, column, lines, message)
                for f, lines in zip(files, np.split(self.line[hits], starts[1:]))}


def _read(paths: list[Path]) -> tuple[list[_File], _Rows]:
    """Open and parse every file. A file with a line break in a value gets that finding and no rows (``rows``
    None). Returns the files and the rows of the others, in one table."""
    files = [_open(path) for path in paths]
    plain = [f for f in files if f.plain_rows is not None]
    together = bool(plain) and _parse_together(plain)
    for file in files:
        if file.readable and (file.plain_rows is None or not together):
            _parse_one(file)
    parsed = [i for i, f in enumerate(files) if f.table is not None]
    rows = _Rows.of([files[i].name for i in parsed], [files[i].table for i in parsed])
    for file in files:  # (the bytes and per-file tables are not needed any more)
        file.rows, file.table, file.raw = None if file.table is None else file.table.num_rows, None, b""
    breaks = np.zeros(len(rows.file), dtype=bool)
    if any(files[i].plain_rows is None for i in parsed):  # a plain file has no quotes: no value can hold a break
        for column in rows.columns.values():
            breaks |= _np(pc.or_(pc.match_substring(column, "\r"), pc.match_substring(column, "\n")))
    broken = rows.findings("line_break_in_value", None, breaks, "a value contains a line break")
    for index, finding in broken.items():
        files[parsed[index]].findings.append(finding)
        files[parsed[index]].rows = None
    if broken:
        rows = rows.where(~np.isin(rows.file, list(broken)))
    return files, rows


def read_group_file(path: Path) -> tuple[pd.DataFrame | None, list[Finding]]:
    """Parse a group file (all values as trimmed strings, blanks as ""); structural problems become findings."""
    files, rows = _read([Path(path)])
    if files[0].rows is None:
        return None, files[0].findings
    return pa.table(rows.columns).to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get), files[0].findings


# -- the rules -------------------------------------------------------------------------------------------------------
#
# Rows of one group, school or spelling come in runs (the files are sorted so), so most rules look only at the
# rows where a value changes: hashing and regexes run on those (tens of thousands) instead of on a million rows.


def _np(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow boolean result (never null here: values are never missing) as numpy."""
    return mask.to_numpy(zero_copy_only=False)


def _codes(*columns: pa.Array | np.ndarray) -> np.ndarray:
    """Dense integer codes, equal exactly where the rows are equal on all ``columns`` (Arrow or numpy)."""
    key = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        if isinstance(column, np.ndarray):
            codes = pd.factorize(column)[0]
        else:
            encoded = pc.dictionary_encode(column)
            codes = pc.fill_null(encoded.indices, len(encoded.dictionary)).to_numpy(zero_copy_only=False)
            codes = codes.astype(np.int64)
        key = pd.factorize(key * (int(codes.max(initial=0)) + 1) + codes)[0]
    return key


def _row_codes(*columns: pa.Array | np.ndarray) -> np.ndarray:
    """``_codes`` of every row, hashed only on the rows that differ from the row before (a run shares its code)."""
    starts = run_starts(*columns)
    at = np.flatnonzero(starts)
    codes = _codes(*[c[at] if isinstance(c, np.ndarray) else c.take(pa.array(at)) for c in columns])
    return codes[np.cumsum(starts) - 1]


def _first(codes: np.ndarray) -> np.ndarray:
    """True on the first row of each code (``~duplicated()``); a first row always starts a run of its code."""
    starts = run_starts(codes)
    at = np.flatnonzero(starts)
    first = np.zeros(len(codes), dtype=bool)
    first[at[~pd.Series(codes[at]).duplicated().to_numpy()]] = True
    return first


def _fullmatch(values: pa.Array, pattern: str) -> np.ndarray:
    r"""``Series.str.fullmatch(pattern)`` as pandas does it on Arrow strings: RE2, except that a pattern with
    ``\d`` meets non-ASCII text with Python's ``re`` (its ``\d`` is Unicode-aware, RE2's ASCII only). Evaluated
    once per run of equal values."""
    starts = run_starts(values)
    at = np.flatnonzero(starts)
    distinct = values.take(pa.array(at))
    matched = _np(pc.match_substring_regex(distinct, f"^(?:{pattern})$"))
    if r"\d" in pattern:
        other = np.flatnonzero(~_np(pc.string_is_ascii(distinct)))
        if other.size:
            compiled = re.compile(pattern)
            matched[other] = [compiled.fullmatch(v) is not None for v in distinct.take(pa.array(other)).to_pylist()]
    return matched[np.cumsum(starts) - 1]


def _check(rows: _Rows, max_length: int) -> dict[int, list[Finding]]:
    """Every row-level and group-level rule over the rows of all files at once, each file on its own (a group,
    a run or a duplicate never spans two files); returns each file's findings in rule order."""
    found: dict[int, list[Finding]] = {}

    def add(rule: str, column: str | None, mask: np.ndarray, message: str) -> None:
        for index, finding in rows.findings(rule, column, mask, message).items():
            found.setdefault(index, []).append(finding)

    def blank(array: pa.Array) -> np.ndarray:
        return _np(pc.equal(array, ""))

    c, file = rows.columns, rows.file
    group, school, year = c["group_name"], c["school_natural_id"], c["school_year"]
    subject, ssid, login = c["subject_code"], c["student_ssid"], c["group_user_login"]
    for column in ("group_name", "school_natural_id", "school_year"):
        add("required", column, blank(c[column]), "is required on every row")
    add("group_name_length", "group_name", _np(pc.greater(pc.utf8_length(group), max_length)),
        f"is longer than {max_length} characters")
    add("group_name_characters", "group_name", ~blank(group) & ~_fullmatch(group, _GROUP_NAME),
        "must be printable ASCII without commas")
    add("school_natural_id", "school_natural_id", ~blank(school) & ~_fullmatch(school, CDS_CODE.pattern.strip("^$")),
        "must be a 14-digit CDS code")
    add("school_year", "school_year", ~blank(year) & ~_fullmatch(year, SCHOOL_YEAR.pattern.strip("^$")),
        "must be a 4-digit year (the spring year)")
    stated = ~blank(subject)
    subject_lower = pc.utf8_lower(subject.filter(pa.array(stated)))
    known = np.ones(len(stated), dtype=bool)
    known[stated] = _np(pc.is_in(subject_lower, value_set=pa.array(_SUBJECTS_LOWER)))
    add("subject_code", "subject_code", ~known, "must be blank or one of " + ", ".join(RECEIVER_SUBJECT_CODES))
    add("row_empty", None, ~stated & blank(ssid) & blank(login), "the row carries no student, no user and no subject")
    add("student_ssid", "student_ssid", ~blank(ssid) & ~_fullmatch(ssid, SSID.pattern.strip("^$")),
        "must be a 10-digit SSID")
    add("group_user_login", "group_user_login", ~blank(login) & ~_fullmatch(login, EMAIL.pattern.strip("^$")),
        "must be an e-mail address")

    # Groups as the receiver sees them: school + name (case-insensitive) + year, joined as text (as the per-file
    # check keyed them), within one file.
    lower = pc.utf8_lower(group)
    key = _row_codes(file, pc.binary_join_element_wise(school, lower, year, "\x1f"))
    stated_key, stated_subject = key[stated], _codes(subject_lower)
    first_subject = pd.Series(stated_subject).groupby(stated_key).transform("first").to_numpy()
    redefined = np.zeros(len(key), dtype=bool)
    redefined[stated] = stated_subject != first_subject
    add("subject_redefined", "subject_code", redefined, "changes the group's subject stated on an earlier row")
    again = np.zeros(len(key), dtype=bool)
    again[stated] = pd.Series(stated_key).duplicated().to_numpy()
    add("subject_stated_once", "subject_code", again, "the group's subject is stated again")
    has_subject = np.zeros(int(key.max(initial=-1)) + 1, dtype=bool)
    has_subject[stated_key] = True
    add("subject_stated_once", "subject_code", ~has_subject[key] & _first(key),
        "no row of the group states its subject")

    # A run starts where the file or the value changes; a run of a value already seen in its file is out of place.
    for label, codes in (("school", _row_codes(file, school)), ("group", key)):
        add("not_contiguous", "school_natural_id" if label == "school" else "group_name",
            run_starts(codes) & ~_first(codes), f"rows of one {label} must be contiguous (sort by school, group, year)")

    # the first row of a second (third, ...) spelling of a school's case-insensitive group name
    add("group_name_not_unique", "group_name",
        _first(_row_codes(file, school, lower, group)) & ~_first(_row_codes(file, school, lower)),
        "differs from another group name of the school only in upper/lower case")

    student = ~blank(ssid)
    repeated = np.zeros(len(key), dtype=bool)
    student_key = _codes(key[student], equal_codes(ssid.filter(pa.array(student)))[0])
    repeated[student] = pd.Series(student_key).duplicated().to_numpy()
    add("duplicate_student", "student_ssid", repeated, "the student is already in this group")
    distinct = student & ~repeated
    position = np.zeros(len(key), dtype=np.int64)
    position[distinct] = pd.Series(key[distinct]).groupby(key[distinct]).cumcount().to_numpy()
    add("too_many_students", "student_ssid", distinct & (position >= MAX_STUDENTS_PER_GROUP),
        f"the group has more than {MAX_STUDENTS_PER_GROUP} students")
    return found


def check_rows(name: str, rows: pd.DataFrame, *, max_length: int = DEFAULT_GROUP_NAME_MAX_LENGTH) -> list[Finding]:
    """Every row-level and group-level rule on one parsed file (as ``read_group_file`` returns it)."""
    if rows.empty:
        return [Finding(name, "no_data_rows", None, message="the file has no data rows")]
    table = pa.Table.from_pandas(rows[list(HEADER)].astype("string"), preserve_index=False)
    return _check(_Rows.of([name], [table.cast(pa.schema([(c, pa.string()) for c in HEADER]))]),
                  max_length).get(0, [])


def validate_files(paths: Iterable[Path], *, max_length: int = DEFAULT_GROUP_NAME_MAX_LENGTH) -> ValidationReport:
    """Validate every file, then the files together (a group must be in one file only).

    The rows of all files are checked in one pass (checking file by file cost some twenty pandas operations per
    file, 746 files at XL); the findings are those of a per-file check, in the same order: each file's structural
    findings, then its rows' findings, then the groups found in several files.
    """
    report = ValidationReport()
    paths = sorted(Path(p) for p in paths)
    if not paths:
        report.add(Finding("(build)", "no_data_rows", None,
                           message="no student group was built: check the profiles' schools and filters, and "
                                   "whether sections are active on the as-of date"))
        return report
    files, rows = _read(paths)
    found = _check(rows, max_length)
    index = {name: i for i, name in enumerate(rows.names)}
    for file in files:
        report.extend(file.findings)
        if file.rows is None:
            report.files[file.name] = 0
            continue
        report.files[file.name] = file.rows
        if not file.rows:
            report.add(Finding(file.name, "no_data_rows", None, message="the file has no data rows"))
        report.extend(found.get(index[file.name], []))
    if sum(file.rows is not None for file in files) > 1:  # a group (school, name in any case, year) in two files
        key = _row_codes(pc.binary_join_element_wise(rows.columns["school_natural_id"],
                                                     pc.utf8_lower(rows.columns["group_name"]),
                                                     rows.columns["school_year"], "\x1f"))
        owned = _first(_row_codes(rows.file, key))  # each file's distinct groups
        files_per_group = np.bincount(key[owned], minlength=int(key.max(initial=-1)) + 1)
        shared = owned & (files_per_group[key] > 1)
        counts = np.bincount(rows.file[shared], minlength=len(rows.names))
        for name in sorted(n for n, count in zip(rows.names, counts) if count):
            report.add(Finding(name, "group_in_several_files", "group_name", count=int(counts[index[name]]),
                               message="a group of this file is also in another file of the run"))
    return report
