"""File-level and cross-file checks of a built OneRoster 1.1 package directory.

``validate_package`` reads each file once (bytes -> pyarrow CSV, every column a string, empty -> null), then checks

1. the bytes: UTF-8 without BOM, header line exactly the expected header, RFC 4180-parseable, at least one data row;
2. the manifest: ``propertyName,value``, versions, all 13 ``file.*`` rows, ``bulk`` iff the file is in the package;
3. the per-column Great Expectations suites (:func:`rostering.validation.gx_suites.validate_frame`);
4. cross-file rules: references resolve (spec.REFERENCES, list columns split on ','), sourcedIds unique ignoring case
   per file, usernames unique ignoring case, enrollment school = class school, the user belongs to the class's
   school, at most one primary teacher per class, ``primary`` on teacher rows only, students have grades.

Everything is vectorised with pyarrow compute / numpy (a big district has 3.5 million enrollments); the only Python
loops are over files, rules and the 16-row manifest, plus a csv-module scan that runs only on a file pyarrow could
not parse, to find the offending line numbers.

Semantic rules look only at rows whose references resolve: an orphan is reported once, by its ``*_resolves`` rule,
not again as a school mismatch. References are compared exactly (case-sensitively); case-insensitive collisions are
reported by the ``*_unique_ignoring_case`` rules.

Line numbers are physical lines of the file (header = 1); a quoted field containing a line break moves the following
rows down, and findings account for that.
"""
from __future__ import annotations

import csv
import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from rostering.frames import STRING, holds_line_break
from rostering.oneroster import spec
from rostering.validation.gx_suites import suite_json, validate_frame
from rostering.validation.report import Finding, ValidationReport

log = logging.getLogger(__name__)

MANIFEST = "manifest.csv"
MANIFEST_HEADER = ("propertyName", "value")
BOM = b"\xef\xbb\xbf"


@dataclass
class ParsedFile:
    """One CSV file as read: its table (all strings) and, when rows span several lines, each row's line number."""

    name: str
    table: pa.Table | None
    lines: np.ndarray | None = None
    usable: bool = False  # parsed cleanly and has every expected column once: content checks can run
    _columns: dict[str, pa.Array] = field(default_factory=dict, repr=False)

    @property
    def rows(self) -> int:
        return 0 if self.table is None else self.table.num_rows

    def line_numbers(self, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64)
        return self.lines[positions] if self.lines is not None else positions + 2

    def column(self, name: str) -> pa.Array:
        if name not in self._columns:
            self._columns[name] = self.table.column(name).combine_chunks()
        return self._columns[name]

    def frame(self, columns: tuple[str, ...]) -> pd.DataFrame:
        frame = self.table.select(list(columns)).to_pandas(types_mapper={pa.string(): STRING}.get)
        if self.lines is not None:
            frame.index = pd.Index(self.lines - 2)  # GX reports index + 2 as the line
        return frame


# --------------------------------------------------------------------------------------------------------------------
# bytes, header, parsing


def _header_finding(name: str, actual: list[str], expected: tuple[str, ...]) -> Finding:
    position = next((i for i, col in enumerate(expected) if i >= len(actual) or actual[i] != col), None)
    if position is None:
        column, where = None, f"extra column(s) after the {len(expected)} expected ones"
    else:
        column, where = expected[position], f"first difference at position {position + 1}"
    # Only expected (configured) column names are named: the actual header line may not be a header at all.
    return Finding(name, "csv.header_exact", column, (1,), 1,
                   f"header line is not exactly the expected {len(expected)} column names in order, unquoted ({where})")


def _locate_bad_rows(text: str, column_count: int) -> list[int]:
    """Failure path only: lines of rows with the wrong number of fields, or where strict RFC 4180 parsing stops."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    bad: list[int] = []
    previous = 0
    try:
        for row in reader:
            first_line, previous = previous + 1, reader.line_num
            if first_line > 1 and len(row) != column_count:
                bad.append(first_line)
    except csv.Error:
        bad.append(previous + 1)
    return bad


def _row_lines(table: pa.Table) -> np.ndarray | None:
    """Line number of each row when some field holds a line break; None when every row is one line (the norm)."""
    if not any(holds_line_break(column) for column in table.columns):
        return None
    extra = np.zeros(table.num_rows, dtype=np.int64)
    for column in table.columns:
        counts = pc.fill_null(pc.count_substring_regex(column, r"\r\n|\r|\n"), 0)
        extra += counts.to_numpy().astype(np.int64)
    if not extra.any():
        return None
    before = np.concatenate(([0], np.cumsum(extra)[:-1]))
    return np.arange(table.num_rows, dtype=np.int64) + 2 + before


def _has_data_after(data: bytes, offset: int) -> bool:
    """Whether anything but line breaks follows the header (without copying a big file's bytes)."""
    head = data[offset:offset + 64]
    if head.strip(b"\r\n"):
        return True
    return len(data) - offset > 64 and bool(data[offset:].strip(b"\r\n"))


def read_csv_file(path: Path, expected: tuple[str, ...]) -> tuple[ParsedFile, list[Finding]]:
    """Read one file once and check its bytes: no BOM, UTF-8, exact header, RFC 4180, at least one data row."""
    name = path.name
    findings: list[Finding] = []
    data = path.read_bytes()
    start = 0
    if data[:3] == BOM:
        findings.append(Finding(name, "csv.no_bom", None, (1,), 1, "file starts with a UTF-8 byte order mark"))
        start = 3
    newline = data.find(b"\n", start)
    header_end = len(data) if newline < 0 else newline
    header_bytes = data[start:header_end].rstrip(b"\r")
    header_text = header_bytes.decode("utf-8", errors="replace")
    if header_text != ",".join(expected):
        findings.append(_header_finding(name, header_text.split(",") if header_text else [], expected))
    actual = next(csv.reader([header_text])) if header_text else []
    distinct = len(set(actual)) == len(actual)
    names = actual if distinct and actual else [f"column_{i}" for i in range(max(len(actual), 1))]

    if not _has_data_after(data, header_end):
        findings.append(Finding(name, "csv.has_data_rows", None, (), 0, "file has no data rows"))
        table = pa.table({col: pa.array([], pa.string()) for col in names}) if distinct else None
        usable = table is not None and set(expected) <= set(actual)
        return ParsedFile(name, table, None, usable), findings

    invalid_rows = 0

    def on_invalid_row(_row: object) -> str:
        nonlocal invalid_rows
        invalid_rows += 1
        return "skip"

    buffer = pa.py_buffer(data)
    try:
        table = pacsv.read_csv(
            pa.BufferReader(buffer.slice(start) if start else buffer),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=16 << 20),
            parse_options=pacsv.ParseOptions(delimiter=",", quote_char='"', double_quote=True, escape_char=False,
                                             newlines_in_values=True, ignore_empty_lines=False,
                                             invalid_row_handler=on_invalid_row),
            convert_options=pacsv.ConvertOptions(column_types={col: pa.string() for col in names},
                                                 null_values=[""], strings_can_be_null=True,
                                                 quoted_strings_can_be_null=True),
        )
    except (pa.ArrowInvalid, pa.ArrowException):
        table = None
    if table is None or invalid_rows:
        try:
            text = data[start:].decode("utf-8")
        except UnicodeDecodeError as error:
            line = data.count(b"\n", 0, start + error.start) + 1
            findings.append(Finding(name, "csv.utf8", None, (line,), 1, "bytes are not valid UTF-8"))
        else:
            bad = _locate_bad_rows(text, len(names))
            findings.append(Finding.at(name, "csv.rfc4180", None, bad,
                                       "row is not RFC 4180 CSV with the header's number of fields"))
            if not bad:  # pyarrow refused it but the csv module did not say where
                findings[-1] = Finding(name, "csv.rfc4180", None, (), 1, "file is not parseable as RFC 4180 CSV")
        return ParsedFile(name, None), findings

    lines = _row_lines(table)
    usable = distinct and set(expected) <= set(actual)
    return ParsedFile(name, table, lines, usable), findings


# --------------------------------------------------------------------------------------------------------------------
# manifest


def check_manifest(directory: Path, present: set[str]) -> list[Finding]:
    """manifest.csv: header, versions, one row per v1.1 file, ``bulk`` iff the file is in the package."""
    path = directory / MANIFEST
    if not path.is_file():
        return [Finding(MANIFEST, "manifest.present", None, (), 0, "manifest.csv is missing")]
    parsed, findings = read_csv_file(path, MANIFEST_HEADER)
    if not parsed.usable or parsed.table is None:
        return findings
    properties = parsed.table.column("propertyName").to_pylist()
    values = parsed.table.column("value").to_pylist()
    lines = parsed.line_numbers(np.arange(len(properties))).tolist()
    seen: dict[str, list[int]] = {}
    for prop, line in zip(properties, lines):
        seen.setdefault(prop or "", []).append(line)
    value_of = {prop: (value, line) for prop, value, line in zip(properties, values, lines)}

    allowed = {"manifest.version", "oneroster.version", "source.systemName", "source.systemCode"}
    allowed |= {f"file.{name}" for name in spec.MANIFEST_FILES}
    unknown = [line for prop, line in zip(properties, lines) if prop not in allowed]
    if unknown:
        findings.append(Finding.at(MANIFEST, "manifest.unknown_property", "propertyName", unknown,
                                   "propertyName is not a OneRoster 1.1 manifest property"))
    duplicated = sorted(line for prop, found in seen.items() if prop in allowed and len(found) > 1 for line in found)
    if duplicated:
        findings.append(Finding.at(MANIFEST, "manifest.duplicate_property", "propertyName", duplicated,
                                   "manifest property appears more than once"))
    for prop, wanted, rule in (("manifest.version", "1.0", "manifest.version"),
                               ("oneroster.version", "1.1", "manifest.oneroster_version")):
        if prop not in value_of:
            findings.append(Finding(MANIFEST, rule, "propertyName", (), 0, f"{prop} row is missing"))
        elif value_of[prop][0] != wanted:
            findings.append(Finding(MANIFEST, rule, "value", (value_of[prop][1],), 1, f"{prop} must be {wanted}"))
    for name in spec.MANIFEST_FILES:
        prop, file_name = f"file.{name}", f"{name}.csv"
        if prop not in value_of:
            findings.append(Finding(MANIFEST, "manifest.file_row_missing", "propertyName", (), 0,
                                    f"{prop} row is missing"))
            continue
        value, line = value_of[prop]
        wanted = "bulk" if file_name in present else "absent"
        if value != wanted:
            state = "in the package" if file_name in present else "not in the package"
            findings.append(Finding(MANIFEST, "manifest.file_mode", "value", (line,), 1,
                                    f"{file_name} is {state}, so {prop} must be {wanted}"))
    return findings


# --------------------------------------------------------------------------------------------------------------------
# cross-file rules (vectorised)


def _bool(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return pc.fill_null(array, False).to_numpy(zero_copy_only=False).astype(bool, copy=False)


def _int(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Integer positions as int64 numpy (nulls as 0: callers mask them out)."""
    return pc.fill_null(array, 0).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def _finding(parsed: ParsedFile, rule: str, column: str | None, mask: np.ndarray, message: str) -> list[Finding]:
    positions = np.flatnonzero(mask)
    if positions.size == 0:
        return []
    return [Finding.at(parsed.name, rule, column, parsed.line_numbers(positions[:20]), message,
                       count=int(positions.size))]


def _duplicates_ignoring_case(values: pa.Array, exactly_unique: bool = False) -> np.ndarray:
    """Rows whose value equals another row's value when case is ignored.

    ``exactly_unique``: the values are known to be unique as they are (GX checked it), so only values containing
    upper case can collide -- usually there are none, and the full hash count over millions of ids is skipped.
    """
    lowered = pc.utf8_lower(values)
    candidates = None
    if exactly_unique:
        changed = pc.filter(lowered, pc.not_equal(lowered, values))
        if len(changed) == 0:
            return np.zeros(len(values), dtype=bool)
        candidates = _bool(pc.is_in(lowered, value_set=changed))
        counts = pc.value_counts(pc.filter(lowered, pa.array(candidates)))
    else:
        counts = pc.value_counts(lowered)
    repeated = pc.and_(pc.greater(counts.field("counts"), 1), pc.is_valid(counts.field("values")))
    duplicated = pc.filter(counts.field("values"), repeated)
    if len(duplicated) == 0:
        return np.zeros(len(values), dtype=bool)
    mask = _bool(pc.is_in(lowered, value_set=duplicated))
    return mask if candidates is None else mask & candidates


def _split_list(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """A list column's items and, for each item, the position of its row."""
    lists = pc.split_pattern(values, ",")
    return pc.list_flatten(lists), pc.list_parent_indices(lists).to_numpy().astype(np.int64)


class Lookups:
    """Positions of referenced rows, computed once per (file, column, target) and shared by the checks: each lookup
    hashes millions of strings, integer positions are cheap to compare afterwards."""

    def __init__(self, files: dict[str, ParsedFile]) -> None:
        self.files = files
        self._cache: dict[tuple[str, str, str], pa.Array] = {}

    def position(self, file: str, column: str, target: str) -> pa.Array:
        """For each row of ``file``, the row in ``target`` whose sourcedId equals ``column`` (first one), or null."""
        key = (file, column, target)
        if key not in self._cache:
            self._cache[key] = pc.index_in(self.files[file].column(column),
                                           value_set=self.files[target].column("sourcedId"))
        return self._cache[key]


def check_references(files: dict[str, ParsedFile], lookups: Lookups | None = None) -> list[Finding]:
    lookups = lookups or Lookups(files)
    findings: list[Finding] = []
    for file, column, target in spec.REFERENCES:
        if file not in files or target not in files:
            continue
        source, ids = files[file], files[target].column("sourcedId")
        values = source.column(column)
        if column in spec.GUID_LIST_COLUMNS.get(file, ()):
            items, parents = _split_list(values)
            missing = ~_bool(pc.is_in(items, value_set=ids))
            mask = np.zeros(source.rows, dtype=bool)
            mask[parents[missing]] = True
        else:
            mask = _bool(pc.is_valid(values)) & ~_bool(pc.is_valid(lookups.position(file, column, target)))
        findings += _finding(source, f"{file[:-4]}.{column}_resolves", column, mask,
                             f"reference does not match any sourcedId in {target}")
    return findings


def check_uniqueness(files: dict[str, ParsedFile], exactly_unique: set[str] = frozenset()) -> list[Finding]:
    """sourcedId unique ignoring case in each file, username unique ignoring case in users.csv.

    ``exactly_unique``: files whose sourcedIds are already known to be unique as they are (the GX rule passed).
    """
    findings: list[Finding] = []
    for name, parsed in files.items():
        if name in spec.HEADERS:
            findings += _finding(parsed, f"{name[:-4]}.sourcedId_unique_ignoring_case", "sourcedId",
                                 _duplicates_ignoring_case(parsed.column("sourcedId"), name in exactly_unique),
                                 "sourcedId equals another row's sourcedId when case is ignored")
    if "users.csv" in files:
        users = files["users.csv"]
        findings += _finding(users, "users.username_unique_ignoring_case", "username",
                             _duplicates_ignoring_case(users.column("username")),
                             "username equals another user's username when case is ignored")
    return findings


def check_users(files: dict[str, ParsedFile]) -> list[Finding]:
    if "users.csv" not in files:
        return []
    users = files["users.csv"]
    student = _bool(pc.equal(users.column("role"), "student"))
    no_grades = ~_bool(pc.is_valid(users.column("grades")))
    return _finding(users, "users.student_grades_required", "grades", student & no_grades,
                    "student row has no grades")


def check_enrollments(files: dict[str, ParsedFile], lookups: Lookups | None = None) -> list[Finding]:
    if "enrollments.csv" not in files:
        return []
    enrollments = files["enrollments.csv"]
    findings: list[Finding] = []
    class_ids = enrollments.column("classSourcedId")
    role = enrollments.column("role")
    primary = enrollments.column("primary")

    teacher = _bool(pc.equal(role, "teacher"))
    primary_teacher = teacher & _bool(pc.equal(primary, "true"))
    if primary_teacher.any():
        counts = pc.value_counts(pc.filter(class_ids, pa.array(primary_teacher)))
        several = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
        if len(several):
            findings += _finding(enrollments, "enrollments.one_primary_teacher_per_class", "primary",
                                 primary_teacher & _bool(pc.is_in(class_ids, value_set=several)),
                                 "more than one primary teacher enrollment in this class")
    findings += _finding(enrollments, "enrollments.primary_only_for_teachers", "primary",
                         _bool(pc.is_valid(primary)) & _bool(pc.is_valid(role)) & ~teacher,
                         "primary is set on an enrollment whose role is not teacher")

    if "classes.csv" not in files or "orgs.csv" not in files:
        return findings
    lookups = lookups or Lookups(files)
    org_count = len(files["orgs.csv"].column("sourcedId"))
    # the class's school as a row of orgs.csv (null when the class or its school does not resolve)
    class_school = pc.take(lookups.position("classes.csv", "schoolSourcedId", "orgs.csv"),
                           lookups.position("enrollments.csv", "classSourcedId", "classes.csv"))
    school = lookups.position("enrollments.csv", "schoolSourcedId", "orgs.csv")
    class_school_known = _bool(pc.is_valid(class_school))
    findings += _finding(enrollments, "enrollments.schoolSourcedId_matches_class", "schoolSourcedId",
                         class_school_known & _bool(pc.not_equal(school, class_school)),
                         "schoolSourcedId differs from the class's schoolSourcedId")

    if "users.csv" not in files:
        return findings
    users = files["users.csv"]
    items, parents = _split_list(users.column("orgSourcedIds"))
    item_org = pc.index_in(items, value_set=files["orgs.csv"].column("sourcedId"))
    known = _bool(pc.is_valid(item_org))
    member_keys = parents[known] * org_count + _int(item_org)[known]
    user = lookups.position("enrollments.csv", "userSourcedId", "users.csv")
    both = _bool(pc.is_valid(user)) & class_school_known
    keys = _int(user) * org_count + _int(class_school)
    member = _bool(pc.is_in(pa.array(keys), value_set=pa.array(member_keys, pa.int64())))
    findings += _finding(enrollments, "enrollments.user_in_class_school", "userSourcedId", both & ~member,
                         "the user's orgSourcedIds do not include the class's school")
    return findings


# --------------------------------------------------------------------------------------------------------------------
# the package


def validate_package(
    directory: Path, expected_headers: dict[str, tuple[str, ...]], *, manifest: bool = True
) -> ValidationReport:
    """Validate a built OneRoster package directory; one report with every finding.

    ``expected_headers`` maps each data file of the package (not manifest.csv) to its full header: spec.HEADERS[file]
    followed by the vendor's extension columns.
    """
    directory = Path(directory)
    report = ValidationReport()
    started = time.perf_counter()

    present = {p.name for p in directory.iterdir()} if directory.is_dir() else set()
    for entry in sorted(present - set(expected_headers) - {MANIFEST}):
        report.add(Finding(entry, "package.unexpected_file", None, (), 0, "file is not part of this vendor's package"))
    for name, header in expected_headers.items():
        defined = spec.HEADERS.get(name)
        if defined is None or tuple(header[: len(defined)]) != defined:
            report.add(Finding(name, "package.expected_header", None, (), 0,
                               "configured header does not start with the OneRoster columns of this file"))

    parsed: dict[str, ParsedFile] = {}
    for name, header in expected_headers.items():
        if name not in present or not (directory / name).is_file():
            report.add(Finding(name, "package.file_missing", None, (), 0, "file of the package is missing"))
            continue
        file, findings = read_csv_file(directory / name, tuple(header))
        report.extend(findings)
        report.files[name] = file.rows
        parsed[name] = file
    if manifest:  # a zipped OneRoster package carries one; plain files for some vendors (Literably) do not
        report.extend(check_manifest(directory, {n for n in present if n != MANIFEST and (directory / n).is_file()}))
    elif MANIFEST in present:
        report.add(Finding(MANIFEST, "package.unexpected_file", None, (), 0, "file is not part of this vendor's package"))
    report.timings["read"] = time.perf_counter() - started

    gx_started = time.perf_counter()
    for name, file in parsed.items():
        if not file.usable or file.rows == 0:
            continue
        suite_name = f"oneroster.{name[:-4]}"
        try:
            suite_json(suite_name)
        except FileNotFoundError:
            report.add(Finding(name, "package.no_suite", None, (), 0, "no expectation suite for this file"))
            continue
        file_started = time.perf_counter()
        report.extend(validate_frame(name, file.frame(tuple(expected_headers[name])), suite_name))
        report.timings[f"gx:{name}"] = time.perf_counter() - file_started
    report.timings["gx"] = time.perf_counter() - gx_started

    cross_started = time.perf_counter()
    usable = {name: file for name, file in parsed.items() if file.usable and name in spec.HEADERS}
    failed_rules = report.rules()
    exactly_unique = {name for name in usable
                      if f"gx:{name}" in report.timings and f"{name[:-4]}.sourcedId_unique" not in failed_rules}
    report.extend(check_uniqueness(usable, exactly_unique))
    lookups = Lookups(usable)
    report.extend(check_references(usable, lookups))
    report.extend(check_users(usable))
    report.extend(check_enrollments(usable, lookups))
    report.timings["cross_file"] = time.perf_counter() - cross_started
    report.timings["total"] = time.perf_counter() - started
    log.info("validated %s: %d finding(s), %s", directory.name, len(report.findings),
             ", ".join(f"{k} {v:.2f}s" for k, v in report.timings.items()))
    return report
