"""The change guard on CERS payloads: only the schools a file names are compared, memberships count."""
from __future__ import annotations

from cers_helpers import cers_profile, make_district, snapshot_of

from rostering.cers import vendor
from rostering.delivery.guard import compare, payload_reader


def entities(tmp_path, name, db, *statements):
    snapshot = snapshot_of(db, tmp_path / name, statements=statements)
    out = tmp_path / name / "build"
    vendor.build(snapshot, cers_profile(), out)
    return vendor.guard_entities(payload_reader(sorted(out.glob("*.csv"))))


def test_losing_ssids_holds_but_naming_fewer_schools_does_not(tmp_path):
    db = make_district(tmp_path / "sis.sqlite")
    before = entities(tmp_path, "a", db)
    assert {"groups", "students", "memberships"} <= set(before)
    schools = sorted(set(before["students"]["school"]))
    assert len(schools) >= 2

    same = entities(tmp_path, "b", db)
    assert not compare(before, same, same_schools_only=True).held

    only_one = {e: f[f["school"] == schools[0]] for e, f in same.items()}  # a run for one school
    assert not compare(before, only_one, same_schools_only=True).held
    assert compare(before, only_one).held  # what a whole-district comparison would wrongly call a deletion

    # Half the students lose their SSID (a broken join): their groups are still named, with fewer members.
    broken = entities(tmp_path, "c", db, "UPDATE student SET ssid = NULL WHERE student_id IN "
                      "(SELECT student_id FROM student ORDER BY student_id LIMIT (SELECT COUNT(*) / 2 FROM student))")
    diff = compare(before, broken, same_schools_only=True)
    assert diff.held and any(r.startswith("memberships") or r.startswith("students") for r in diff.reasons)

    # Every SSID gone: no group qualifies, the file names no group, and CERS changes nothing -- not a deletion.
    empty = entities(tmp_path, "d", db, "UPDATE student SET ssid = NULL")
    assert empty == {} and not compare(before, empty, same_schools_only=True).held
