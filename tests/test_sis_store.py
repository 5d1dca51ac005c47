"""The snapshot store (rostering.sis.store): publish, find, replace, link, prune, lock, and failures that leave
nothing findable. Snapshots are real ones, made by the snapshot SQL on a generated district in SQLite."""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from rostering.sis.extract import SNAPSHOT_META, SnapshotInfo, extract_snapshot
from rostering.sis.store import CURRENT, SnapshotStore

AS_OF = dt.date(2026, 11, 3)


@pytest.fixture(scope="module")
def sis_engine(tmp_path_factory):
    from rostering.sis.demo import generate_district, load_district

    path = tmp_path_factory.mktemp("sis") / "sis.sqlite"
    load_district(generate_district(300, school_year=2027), f"sqlite:///{path}")
    engine = sa.create_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


@pytest.fixture()
def store(tmp_path) -> SnapshotStore:
    return SnapshotStore(tmp_path / "snapshots")


def taker(engine, as_of=AS_OF, calls: list | None = None):
    def take(out_dir: Path) -> SnapshotInfo:
        if calls is not None:
            calls.append(out_dir)
        return extract_snapshot(engine, out_dir, as_of=as_of, school_year=2027)
    return take


def test_a_published_snapshot_is_found_complete_private_and_read_only(store, sis_engine, tmp_path):
    assert store.find(AS_OF) is None
    published = store.publish(AS_OF, taker(sis_engine), source="sql_model")
    found = store.find(AS_OF)
    assert found == published and found.version == published.version
    folder = Path(found.info.directory)
    assert folder == store.root / AS_OF.isoformat() / found.version
    assert (store.root / AS_OF.isoformat() / CURRENT).read_text().strip() == found.version
    assert found.info.row_counts["students"] > 200 and found.info.as_of_date == AS_OF.isoformat()
    # snapshot.json names the folder it is in (not the temporary one it was written in)
    assert SnapshotInfo.load(folder).directory == str(folder)
    assert pd.read_parquet(found.info.path("students")).shape[0] == found.info.row_counts["students"]
    # children's records: owner-only folders, read-only files; no temporaries left
    assert oct(store.root.stat().st_mode & 0o777) == "0o700"
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert {oct(p.stat().st_mode & 0o777) for p in folder.iterdir()} == {"0o400"}
    assert list((store.root / ".tmp").iterdir()) == []
    assert store.find(AS_OF + dt.timedelta(days=1)) is None  # another date: nothing


def test_a_run_links_the_snapshot_and_keeps_it_when_a_rerun_replaces_it_and_prune_removes_the_old_one(
        store, sis_engine, tmp_path):
    first = store.publish(AS_OF, taker(sis_engine))
    run_dir = tmp_path / "work" / "stmath_oneroster" / "run1" / "snapshot"
    (run_dir.parent / ".snapshot.killed").mkdir(parents=True)  # a killed try's half-made links
    stored, linked = store.checkout(AS_OF, run_dir)
    assert [p.name for p in run_dir.parent.iterdir()] == ["snapshot"]
    assert stored.version == first.version and linked.directory == str(run_dir)
    assert SnapshotInfo.load(run_dir).directory == str(run_dir)  # the build reads the run's own names
    students = run_dir / "students.parquet"
    assert os.path.samefile(students, Path(first.info.directory) / "students.parquet")  # a hard link, not a copy

    second = store.publish(AS_OF, taker(sis_engine))  # a re-run of the same date
    assert second.version > first.version and store.find(AS_OF).version == second.version
    assert store.versions(AS_OF) == [first.version, second.version]
    removed = store.prune(retention_days=14, today=AS_OF)
    assert removed["versions"] == 1 and store.versions(AS_OF) == [second.version]
    assert not Path(first.info.directory).exists()
    # the run that linked the first version still reads all of it
    assert pd.read_parquet(students).shape[0] == first.info.row_counts["students"]
    assert SnapshotInfo.load(run_dir).row_counts == first.info.row_counts


def test_link_into_copies_across_filesystems(store, sis_engine):
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == store.root.parent.stat().st_dev:
        pytest.skip("no second filesystem to copy to")
    published = store.publish(AS_OF, taker(sis_engine))
    target = shm / f"rostering-test-{os.getpid()}" / "snapshot"
    try:
        info = store.link_into(published, target)
        assert pd.read_parquet(info.path("students")).shape[0] == published.info.row_counts["students"]
        assert not os.path.samefile(target / "students.parquet", Path(published.info.directory) / "students.parquet")
    finally:
        import shutil
        shutil.rmtree(target.parent, ignore_errors=True)


def test_prune_removes_dates_older_than_the_retention_and_keeps_the_rest(store, sis_engine):
    days = [AS_OF - dt.timedelta(days=n) for n in (0, 13, 14, 15, 40)]
    for day in days:
        store.publish(day, taker(sis_engine, as_of=day))
    removed = store.prune(retention_days=14, today=AS_OF)
    assert removed["dates"] == 2
    assert store.dates() == sorted(days[:3])
    assert [store.find(day) is not None for day in days] == [True, True, True, False, False]


def test_a_failure_mid_write_leaves_nothing_findable_and_the_previous_version_served(store, sis_engine):
    def half_then_fail(out_dir: Path) -> SnapshotInfo:
        extract_snapshot(sis_engine, out_dir, as_of=AS_OF, school_year=2027)  # every file written ...
        (out_dir / "students.parquet").write_bytes(b"truncated")
        raise ConnectionError("the SIS went away")  # ... and then the source fails

    with pytest.raises(ConnectionError):
        store.publish(AS_OF, half_then_fail)
    assert store.find(AS_OF) is None and store.versions(AS_OF) == []
    assert list((store.root / ".tmp").iterdir()) == []

    good = store.publish(AS_OF, taker(sis_engine))
    with pytest.raises(ConnectionError):  # a failed re-run of the same date
        store.publish(AS_OF, half_then_fail)
    assert store.find(AS_OF).version == good.version
    assert pd.read_parquet(store.find(AS_OF).info.path("students")).shape[0] == good.info.row_counts["students"]


def test_a_snapshot_of_another_date_is_refused(store, sis_engine):
    with pytest.raises(ValueError, match="not 2026-11-03"):
        store.publish(AS_OF, taker(sis_engine, as_of=AS_OF - dt.timedelta(days=1)))
    assert store.find(AS_OF) is None


def test_two_runs_asking_for_the_same_date_at_once_make_it_once(store, sis_engine):
    calls: list = []
    started = threading.Event()

    def slow_take(out_dir: Path) -> SnapshotInfo:
        calls.append(out_dir)
        started.set()
        time.sleep(0.5)  # the second run arrives while this one is still writing
        return extract_snapshot(sis_engine, out_dir, as_of=AS_OF, school_year=2027)

    results = []
    first = threading.Thread(target=lambda: results.append(store.find_or_publish(AS_OF, slow_take)))
    first.start()
    assert started.wait(10)
    assert store.find(AS_OF) is None  # being written: not findable yet
    second = store.find_or_publish(AS_OF, slow_take)
    first.join()
    assert len(calls) == 1
    (made_by_first, made), (made_by_second, made_again) = results[0], second
    assert made and not made_again and made_by_first.version == made_by_second.version


def test_a_killed_writer_leaves_a_temporary_that_is_never_found_and_is_swept(store, sis_engine, tmp_path):
    """A real process killed while writing: its lock dies with it, its temporary folder is garbage."""
    script = (
        "import datetime as dt, sys, time\n"
        "from pathlib import Path\n"
        "from rostering.sis.store import SnapshotStore\n"
        "def take(out_dir):\n"
        "    (out_dir / 'students.parquet').write_bytes(b'partial')\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
        "SnapshotStore(Path(sys.argv[1])).publish(dt.date(2026, 11, 3), take)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", script, str(store.root)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        assert store.prune(retention_days=14, today=AS_OF)["temporaries"] == 0  # a live writer's folder is kept
        assert len(list((store.root / ".tmp").iterdir())) == 1
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert store.find(AS_OF) is None
    published = store.publish(AS_OF, taker(sis_engine))  # the lock died with the writer: no waiting
    assert store.find(AS_OF).version == published.version
    assert store.prune(retention_days=14, today=AS_OF)["temporaries"] == 1
    assert list((store.root / ".tmp").iterdir()) == []


def test_a_pointer_to_a_missing_version_is_not_a_snapshot(store, sis_engine):
    published = store.publish(AS_OF, taker(sis_engine))
    (store.root / AS_OF.isoformat() / CURRENT).write_text("v20990101T000000000000Z-abcdef\n")
    assert store.find(AS_OF) is None
    (store.root / AS_OF.isoformat() / CURRENT).write_text("../../etc\n")  # never followed outside the store
    assert store.find(AS_OF) is None
    (store.root / AS_OF.isoformat() / CURRENT).write_text(published.version + "\n")
    assert store.find(AS_OF).version == published.version
    assert (Path(published.info.directory) / SNAPSHOT_META).exists()
