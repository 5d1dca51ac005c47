import datetime as dt
import stat

from rostering.delivery.records import last_good, list_deliveries, record_delivery


def test_records_keep_an_owner_only_copy_and_the_newest_is_last_good(tmp_path):
    payload = tmp_path / "OneRoster.zip"
    assert last_good("stmath", base=tmp_path / "state") is None
    for day, content in ((3, b"first"), (4, b"second")):
        payload.write_bytes(content)
        record_delivery(vendor="stmath", destination="sftp://x/~", run_id=f"scheduled__2026-11-0{day}",
                        as_of_date=f"2026-11-0{day}", files=[payload], checksums={"OneRoster.zip": f"sha{day}"},
                        now=dt.datetime(2026, 11, day, 10, tzinfo=dt.timezone.utc), base=tmp_path / "state")
    records = list_deliveries("stmath", base=tmp_path / "state")
    assert [r.as_of_date for r in records] == ["2026-11-03", "2026-11-04"]
    good = last_good("stmath", base=tmp_path / "state")
    assert good.path("OneRoster.zip").read_bytes() == b"second"
    assert good.files == [{"name": "OneRoster.zip", "bytes": 6, "sha256": "sha4"}]
    assert stat.S_IMODE(good.path("OneRoster.zip").stat().st_mode) == 0o600
    assert last_good("literably", base=tmp_path / "state") is None
