"""The CERS writer writes the bytes of the shared CSV writer, whole and sliced per school."""
from __future__ import annotations

import pandas as pd
import pytest

from rostering.cers.spec import HEADER
from rostering.cers.vendor import _header_table, _school_slices, write_group_file
from rostering.csvio import write_csv


def test_the_writer_writes_the_shared_writers_bytes(tmp_path):
    rows = pd.DataFrame({
        "group_name": ["2027LiB2AM6001", "2027LiB2AM6001", "101ONeilAna1"],
        "school_natural_id": ["19647330000001", "19647330000001", "19647330000002"],
        "school_year": ["2027"] * 3, "subject_code": ["Math", None, None],
        "student_ssid": [None, None, "1000000001"], "group_user_login": [None, "t.one@x.org", None],
        "school_id": ["S1", "S1", "S2"],
    }, dtype="string")
    expected = write_csv(rows, tmp_path / "expected.csv", HEADER, quoting="none")
    written = write_group_file(rows, tmp_path / "a.csv")
    sliced = dict(_school_slices(_header_table(rows)))
    assert list(sliced) == ["19647330000001", "19647330000002"]
    part = write_group_file(sliced["19647330000001"], tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "expected.csv").read_bytes()
    assert (written.rows, written.size, written.sha256) == (expected.rows, expected.size, expected.sha256)
    write_csv(rows.iloc[:2], tmp_path / "c.csv", HEADER, quoting="none")
    assert (tmp_path / "b.csv").read_bytes() == (tmp_path / "c.csv").read_bytes()
    assert part.rows == 2 and (tmp_path / "b.csv").stat().st_mode & 0o777 == 0o600
    with pytest.raises(Exception):  # a value that would need quotes is refused, as by the shared writer
        write_group_file(rows.assign(group_name="a,b"), tmp_path / "d.csv")
