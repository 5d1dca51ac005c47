"""Property-based: hostile SIS data never crashes a run and never reaches a vendor file malformed.

Hypothesis mutates a real snapshot of the hand-made district (nulls in required columns, duplicate ids, dates out of
order, dangling references, SSIDs that are not 10 digits, emails without @, CR/LF/quotes/commas/emoji in names,
300-character names, a section with 450 students) and every run must end in receiver-valid files for the good
records plus a precise, value-free report of the rejected ones.
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rostering.oneroster import vendor
from rostering.sis.extract import SNAPSHOT_META, SnapshotInfo, extract_snapshot, reject_invalid_records
from rostering.sis.schema import create_schema, run_script
from rostering.vendors.profile import load_profile

FIXTURES = Path(__file__).parent / "fixtures"
HOSTILE_TEXT = ["Ann\r\nMarie", 'Robert "Bobby", Jr.', "Zoë 🦄", "O'Brien,\nSr.", "x" * 300, "  ", "李\r"]
NAME_COLUMNS = {"students": ["first_name", "last_name", "middle_name", "username"],
                "staff": ["first_name", "last_name", "email", "username"],
                "schools": ["name"], "courses": ["title"], "sections": ["section_number", "room"]}
KEY_COLUMNS = {"students": "student_id", "staff": "staff_id", "sections": "section_id", "schools": "school_id",
               "section_enrollments": "student_id", "school_enrollments": "student_id"}


@pytest.fixture(scope="module")
def base_snapshot(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    engine = sa.create_engine(f"sqlite:///{folder / 'sis.sqlite'}")
    create_schema(engine, drop_existing=True)
    run_script(engine, FIXTURES / "tiny_district.sql")
    extract_snapshot(engine, folder / "snapshot", as_of=dt.date(2026, 11, 23))
    engine.dispose()
    return folder / "snapshot"


def mutation():
    return st.one_of(
        st.tuples(st.just("text"), st.sampled_from(sorted(NAME_COLUMNS)), st.integers(0, 20), st.sampled_from(HOSTILE_TEXT)),
        st.tuples(st.just("null"), st.sampled_from(sorted(KEY_COLUMNS)), st.integers(0, 20), st.booleans()),
        st.tuples(st.just("duplicate"), st.sampled_from(sorted(KEY_COLUMNS)), st.integers(0, 20), st.booleans()),
        st.tuples(st.just("dates"), st.sampled_from(["school_enrollments", "section_enrollments"]), st.integers(0, 20),
                  st.booleans()),
        st.tuples(st.just("dangling"), st.just("section_enrollments"), st.integers(0, 20), st.booleans()),
        st.tuples(st.just("ssid"), st.just("students"), st.integers(0, 20), st.sampled_from(["123", "12345678901", "abc"])),
        st.tuples(st.just("email"), st.sampled_from(["students", "staff"]), st.integers(0, 20), st.just("no-at-sign")),
        st.tuples(st.just("crowd"), st.just("section_enrollments"), st.just(0), st.just(450)),
    )


def apply(frames: dict[str, pd.DataFrame], op) -> None:
    kind, table, index, value = op
    frame = frames[table]
    if frame.empty:
        return
    row = frame.index[index % len(frame)]
    if kind == "text":
        frame[NAME_COLUMNS[table][index % len(NAME_COLUMNS[table])]] = frame[
            NAME_COLUMNS[table][index % len(NAME_COLUMNS[table])]].astype("object")
        frame.loc[row, NAME_COLUMNS[table][index % len(NAME_COLUMNS[table])]] = value
    elif kind == "null":
        column = KEY_COLUMNS[table] if value else ("first_name" if "first_name" in frame else KEY_COLUMNS[table])
        frame[column] = frame[column].astype("object")
        frame.loc[row, column] = None
    elif kind == "duplicate":
        frames[table] = pd.concat([frame, frame.loc[[row]]], ignore_index=True)
    elif kind == "dates":
        end = "exit_date"
        frame[end] = frame[end].astype("object")
        frame.loc[row, end] = "2000-01-01"
    elif kind == "dangling":
        frame.loc[row, "section_id"] = "NO-SUCH-SECTION"
    elif kind == "ssid":
        frame.loc[row, "ssid"] = value
    elif kind == "email":
        frame.loc[row, "email"] = value
    elif kind == "crowd":  # 450 students in one section
        students = frames["students"]
        extra = pd.DataFrame({column: students.iloc[0][column] for column in students.columns}, index=range(value))
        extra["student_id"] = [f"crowd{i}" for i in range(value)]
        extra["username"] = [f"crowd{i}" for i in range(value)]
        extra["email"] = [f"crowd{i}@example.org" for i in range(value)]
        frames["students"] = pd.concat([students, extra], ignore_index=True)
        enrol = frames["school_enrollments"]
        school_rows = enrol[enrol["school_id"] == "S2"].iloc[[0]]
        frames["school_enrollments"] = pd.concat(
            [enrol, school_rows.loc[school_rows.index.repeat(value)].assign(student_id=extra["student_id"].to_numpy())],
            ignore_index=True)
        sec = frame[frame["section_id"] == "SEC2"].iloc[[0]]
        frames[table] = pd.concat(
            [frame, sec.loc[sec.index.repeat(value)].assign(student_id=extra["student_id"].to_numpy())],
            ignore_index=True)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(mutation(), min_size=1, max_size=5))
def test_hostile_snapshot_gives_valid_files_or_a_precise_report(base_snapshot, tmp_path_factory, ops):
    work = tmp_path_factory.mktemp("run")
    snapshot = work / "snapshot"
    shutil.copytree(base_snapshot, snapshot)
    meta = json.loads((snapshot / SNAPSHOT_META).read_text())
    frames = {name: pd.read_parquet(snapshot / f"{name}.parquet") for name in meta["row_counts"]}
    for op in ops:
        apply(frames, op)
    for name, frame in frames.items():
        frame.to_parquet(snapshot / f"{name}.parquet", index=False)
    counts = {name: len(frame) for name, frame in frames.items()}
    meta["rejected"] = reject_invalid_records(snapshot, counts)
    meta["row_counts"] = counts
    (snapshot / SNAPSHOT_META).write_text(json.dumps(meta))

    for name in ("stmath", "literably"):
        profile = load_profile(name)
        build = work / name
        result = vendor.build(SnapshotInfo.load(snapshot), profile, build, reports_dir=work / f"{name}-reports")
        report = vendor.validate(profile, build)
        assert report.ok, report.summary()  # the good records always make receiver-valid files
        assert result["files"]["users.csv"] >= 1
        for path in build.glob("*.csv"):  # no hostile text reaches a file unnormalised
            body = path.read_bytes().replace(b"\r\n", b"")
            assert b"\r" not in body and b"\n" not in body, path.name
    rejected = snapshot / "rejected.csv"
    if rejected.exists():  # the report names file, row, key, column and rule -- and no values
        text = rejected.read_text(encoding="utf-8")
        assert text.startswith("file,row,sis_key,column,rule")
        assert not any(value in text for value in HOSTILE_TEXT if value.strip())


@pytest.fixture(autouse=True)
def staff_password_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LITERABLY_STAFF_PASSWORD", json.dumps({"conn_type": "generic", "password": "p"}))
