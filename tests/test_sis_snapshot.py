"""One snapshot path for every source: an API source's model tables, staged, give the sql_model's snapshot."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from rostering.sis.config import SisConfigError, load_sis_config
from rostering.sis.demo import generate_district, load_district
from rostering.sis.snapshot import SnapshotRejected, take_snapshot
from rostering.sis.sources import open_source
from rostering.sis.sources.base import Rejections, SourceRead
from rostering.sis.sources.sql_model import SqlModelSource

AS_OF = dt.date(2027, 2, 10)
YEAR = 2027


@pytest.fixture(scope="module")
def district() -> dict[str, pd.DataFrame]:
    return generate_district(300, school_year=YEAR)


class TablesSource:
    """An API source stand-in at the adapter seam: hands back ready model tables (and optional rejections)."""

    name: ClassVar[str] = "tables"

    def __init__(self, tables, rejected=None, stats=None):
        self.tables, self.rejected, self.stats = tables, rejected, stats or {}

    def read(self, *, as_of, school_year) -> SourceRead:
        read = SourceRead({k: v.copy() for k, v in self.tables.items()}, stats=self.stats)
        if self.rejected is not None:
            read.rejected = self.rejected
        return read


def _snapshot_tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {p.stem: pq.read_table(p).to_pandas() for p in sorted(folder.glob("*.parquet"))}


def test_staged_tables_give_the_sql_model_snapshot(tmp_path, district):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'sis.sqlite'}")
    load_district(district, engine)
    direct = take_snapshot(SqlModelSource(engine), tmp_path / "direct", as_of=AS_OF, school_year=YEAR,
                           max_rejected_share=0.02)
    staged = take_snapshot(TablesSource(district), tmp_path / "staged", as_of=AS_OF, school_year=YEAR,
                           max_rejected_share=0.02)
    assert direct.source == "sql_model" and staged.source == "tables"
    assert direct.row_counts == staged.row_counts and direct.row_counts["students"] > 250
    left, right = _snapshot_tables(tmp_path / "direct"), _snapshot_tables(tmp_path / "staged")
    assert left.keys() == right.keys()
    for name in left:
        pd.testing.assert_frame_equal(left[name], right[name], obj=name)
    assert not (tmp_path / "staged" / "staging.sqlite").exists()  # children's records do not linger


def _rejections(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    found = Rejections()
    mask = pd.Series([i < n for i in range(len(frame))], index=frame.index)
    found.add("api:students", frame, mask, key="student_id", column="grade_level", rule="api.students.grade_unknown")
    return found.frame()


def test_adapter_rejections_are_reported_first_and_counted(tmp_path, district):
    students = district["student"]
    kept = {**district, "student": students.iloc[3:].reset_index(drop=True)}
    source = TablesSource(kept, _rejections(students, 3), stats={"api:students": {"records": len(students)}})
    info = take_snapshot(source, tmp_path / "s", as_of=AS_OF, school_year=YEAR, max_rejected_share=0.02)
    report = pd.read_csv(tmp_path / "s" / "rejected.csv", dtype=str)
    assert list(report.columns) == ["file", "row", "sis_key", "column", "rule"]
    assert report["file"].iloc[0] == "api:students" and list(report["row"].iloc[:3]) == ["1", "2", "3"]
    assert info.rejected["api.students.grade_unknown"] == 3
    assert set(report["sis_key"].iloc[:3]) == set(students["student_id"].iloc[:3])
    assert not set(report.to_numpy().ravel()) & set(students["last_name"])  # keys and rules, never names


def test_more_than_the_share_rejected_refuses_the_snapshot(tmp_path, district):
    students = district["student"]
    many = 30  # 10 % of 300 students
    kept = {**district, "student": students.iloc[many:].reset_index(drop=True)}
    source = TablesSource(kept, _rejections(students, many), stats={"api:students": {"records": len(students)}})
    with pytest.raises(SnapshotRejected, match=r"api:students: 30 of 300 \(10.0%\)") as refused:
        take_snapshot(source, tmp_path / "s", as_of=AS_OF, school_year=YEAR, max_rejected_share=0.02)
    assert "rejected.csv" in str(refused.value)
    take_snapshot(source, tmp_path / "t", as_of=AS_OF, school_year=YEAR, max_rejected_share=0.15)  # under: passes


def test_a_resource_the_adapter_did_not_count_fails_closed(tmp_path, district):
    students = district["student"]
    source = TablesSource(district, _rejections(students, 1))  # no stats for api:students
    with pytest.raises(SnapshotRejected):
        take_snapshot(source, tmp_path / "s", as_of=AS_OF, school_year=YEAR, max_rejected_share=0.5)


def test_sis_config_rejects_typos_and_takes_the_env_override(tmp_path, monkeypatch):
    path = tmp_path / "sis.yaml"
    path.write_text("source: powerschool\nretention_dys: 3\n")
    with pytest.raises(SisConfigError, match="retention_dys"):
        load_sis_config(path)
    path.write_text("source: powerschool\npowerschool: {conn_id: ps, max_concurrency: 2}\n")
    config = load_sis_config(path)
    assert (config.source, config.conn_id, config.options) == ("powerschool", "ps", {"max_concurrency": 2})
    monkeypatch.setenv("ROSTERING_SIS_SOURCE", "aeries")
    assert load_sis_config(path).conn_id == "aeries_api"
    monkeypatch.setenv("ROSTERING_SIS_SOURCE", "infinite_campus")
    with pytest.raises(SisConfigError, match="source must be one of"):
        load_sis_config(path)


def test_the_shipped_config_opens_the_sql_model(tmp_path, monkeypatch):
    monkeypatch.delenv("ROSTERING_SIS_SOURCE", raising=False)
    config = load_sis_config()
    assert config.source == "sql_model" and config.conn_id == "sis_db"
    engine = sa.create_engine("sqlite://")
    assert open_source(config, engine=engine).engine is engine
    with pytest.raises(ValueError, match="engine"):
        open_source(config)
