"""The CERS upload against the local CERS endpoint, a real HTTP server on 127.0.0.1 (devservers.cers_server)."""
from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import pytest

from cers_helpers import EXPECTED, rows
from rostering.delivery import cers_api
from rostering.delivery.cers_api import (
    CersAuthError, CersClient, CersForbiddenError, CersImportFailed, CersTransientError, deliver_payload,
    is_transient, sanitise_message,
)
from rostering.devservers.cers_server import LocalCersServer, validate_group_file
from rostering.vendors.profile import Delivery

CLIENT_ID, CLIENT_SECRET, USER, PASSWORD = "district-sis", "client-secret-value", "sysuser", "system-password"
FAST = {"backoff_s": 0.01, "max_backoff_s": 5, "first_poll_s": 0.01, "poll_interval_s": 0.02, "request_timeout_s": 5}
GOOD = EXPECTED / "ps_sections.csv"


@pytest.fixture(scope="module", autouse=True)
def airflow_configured():
    """Airflow (re)configures logging the first time a connection is read; do it before caplog attaches."""
    from airflow.sdk import BaseHook

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_CERS_WARMUP", json.dumps({"conn_type": "http", "host": "http://127.0.0.1"}))
        BaseHook.get_connection("cers_warmup")


@pytest.fixture()
def server(monkeypatch):
    with LocalCersServer(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, users={USER: PASSWORD},
                         process_after_polls=2) as srv:
        connect(monkeypatch, srv)
        yield srv


def connect(monkeypatch, srv, **changes):
    conn = {"conn_type": "http", "host": srv.url, "login": USER, "password": PASSWORD,
            "extra": {"token_url": "/auth/token", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                      "verify": str(srv.ca_path)}}
    conn["extra"].update(changes.pop("extra", {}))
    conn.update(changes)
    monkeypatch.setenv("AIRFLOW_CONN_CERS_API", json.dumps(conn))


def payload(tmp_path: Path, *sources: Path, names: tuple[str, ...] = ()) -> list[Path]:
    folder = tmp_path / "manual__run1" / "payload"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, source in enumerate(sources):
        target = folder / (names[i] if names else source.name)
        shutil.copyfile(source, target)
        files.append(target)
    return files


def delivery(**options) -> Delivery:
    return Delivery(kind="cers_api", conn_id="cers_api", options={**FAST, **options})


def calls(server, method, path):
    return [r for r in server.requests if r["method"] == method and r["path"] == path]


def file_values(path: Path) -> set[str]:
    return {v for r in rows(path) for k, v in r.items() if k in ("student_ssid", "group_user_login") and v}


def test_upload_is_processed_and_cers_holds_the_groups(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    files = payload(tmp_path, GOOD)
    result = deliver_payload(delivery(), files)

    assert result["destination"] == "cers_api://cers_api/groups/imports"
    assert result["imports"] == [{"file": "ps_sections.csv", "import_id": 34001, "status": "PROCESSED",
                                  "message": "2 group(s) accepted for 19647330000001.\n"
                                             "4 group(s) accepted for 19647330000002."}]
    group = server.groups[("19647330000002", "2027lib2am6001", "2027")]
    assert group["students"] == {"1000000003", "1000000004", "1000000006", "1000000007"}
    assert group["users"] == {"bo.li@cers.example.org", "carl.smith@cers.example.org", "jo.share@cers.example.org"}
    assert group["subject"] == "Math" and len(server.groups) == 6

    api = [r for r in server.requests if r["path"] != "/auth/token"]
    assert {r["auth"] for r in api} == {"Bearer"}  # never Basic auth with the system user's password
    assert [r["auth"] for r in calls(server, "POST", "/auth/token")] == [None]
    assert not {"client_secret", "client_id", "token_url"} & {h for r in server.requests for h in r["headers"]}
    assert len(calls(server, "GET", "/imports/34001")) == 2  # ACCEPTED, then PROCESSED

    ledger = json.loads((tmp_path / "manual__run1" / "reports" / "cers_imports.json").read_text())
    assert [(i["file"], i["import_id"], i["status"]) for i in ledger["imports"]] == [
        ("ps_sections.csv", 34001, "PROCESSED")]
    logged = caplog.text
    assert "PROCESSED" in logged
    for secret in (CLIENT_SECRET, PASSWORD, *file_values(GOOD)):
        assert secret not in logged


def test_each_named_group_is_replaced_and_other_groups_are_untouched(server, tmp_path):
    deliver_payload(delivery(), payload(tmp_path, GOOD))
    untouched = dict(server.groups[("19647330000001", "2027oneilahrae3001", "2027")])
    changed = tmp_path / "changed.csv"  # only group 2027LiB2AM6001, now with one student and one user
    changed.write_bytes(b"group_name,school_natural_id,school_year,subject_code,student_ssid,group_user_login\r\n"
                        b"2027LiB2AM6001,19647330000002,2027,Math,,\r\n"
                        b"2027LiB2AM6001,19647330000002,2027,,,bo.li@cers.example.org\r\n"
                        b"2027LiB2AM6001,19647330000002,2027,,1000000003,\r\n")
    deliver_payload(delivery(), payload(tmp_path / "second", changed))
    group = server.groups[("19647330000002", "2027lib2am6001", "2027")]
    assert group["students"] == {"1000000003"} and group["users"] == {"bo.li@cers.example.org"}
    assert server.groups[("19647330000001", "2027oneilahrae3001", "2027")] == untouched
    assert len(server.groups) == 6


def test_bad_data_fails_permanently_with_the_receivers_row_messages(server, tmp_path, caplog):
    bad = tmp_path / "bad.csv"
    lines = GOOD.read_bytes().split(b"\r\n")
    bad.write_bytes(b"\r\n".join([lines[0], lines[5], *lines[1:5], *lines[6:]]))  # a group's rows split apart
    with pytest.raises(CersImportFailed) as failure:
        deliver_payload(delivery(), payload(tmp_path, bad))
    assert not is_transient(failure.value)
    text = str(failure.value)
    assert "bad.csv: import 34001 BAD_DATA" in text
    assert "Row: 7 Failure: rows must be sorted by school, group and year" in text
    assert server.groups == {}  # the whole file was rejected
    ledger = json.loads((tmp_path / "manual__run1" / "reports" / "cers_imports.json").read_text())
    assert ledger["imports"][0]["status"] == "BAD_DATA" and "Row: 7 Failure" in ledger["imports"][0]["message"]
    assert "Row: 7 Failure" in caplog.text
    assert not file_values(bad) & set(text.split())


def test_503_twice_then_success_uploads_once(server, tmp_path):
    server.fail_next(2, status=503, path="/groups/imports", method="POST")
    result = deliver_payload(delivery(), payload(tmp_path, GOOD))
    assert result["imports"][0]["status"] == "PROCESSED"
    posts = calls(server, "POST", "/groups/imports")
    assert [r["status"] for r in posts] == [503, 503, 202]
    assert len(calls(server, "GET", "/groups/imports")) == 2  # before each re-send: did the receiver get it?
    assert len(server.imports) == 1


def test_429_honours_retry_after(server, tmp_path):
    server.fail_next(1, status=429, retry_after="2", path="/imports/")
    deliver_payload(delivery(), payload(tmp_path, GOOD))
    reads = calls(server, "GET", "/imports/34001")
    assert [r["status"] for r in reads] == [429, 200, 200]
    assert reads[1]["at"] - reads[0]["at"] >= 1.9  # Retry-After (2 s) wins over the 0.01 s backoff


def test_retry_after_is_capped_at_max_backoff(server, tmp_path):
    server.fail_next(1, status=503, retry_after="60", path="/groups/imports", method="GET")
    server.fail_next(1, status=503, path="/groups/imports", method="POST")  # then the batch lookup gets the 503
    deliver_payload(delivery(max_backoff_s=1), payload(tmp_path, GOOD))
    lookups = calls(server, "GET", "/groups/imports")
    assert [r["status"] for r in lookups] == [503, 200]
    assert 0.9 <= lookups[1]["at"] - lookups[0]["at"] < 10  # waited max_backoff_s, not the 60 s asked for


def test_receiver_down_is_transient_after_the_retries(server, tmp_path):
    server.fail_next(3, status=502, path="/auth/token")
    with pytest.raises(CersTransientError, match="token request: HTTP 502 after 3 attempts") as failure:
        deliver_payload(delivery(max_attempts=3), payload(tmp_path, GOOD))
    assert is_transient(failure.value)
    assert server.imports == {}


def test_expired_token_is_renewed_once_per_request(server, tmp_path):
    server.token_max_uses = 1  # every token dies after one API request, as if it expired in between
    result = deliver_payload(delivery(), payload(tmp_path, GOOD))
    assert result["imports"][0]["status"] == "PROCESSED"
    api = [r["status"] for r in server.requests if r["path"] != "/auth/token"]
    assert api == [202, 401, 200, 401, 200]  # upload; each status read: 401 (expired), new token, 200
    assert len(calls(server, "POST", "/auth/token")) == 3


def test_a_second_401_with_a_fresh_token_fails_without_retrying(server, tmp_path):
    server.token_max_uses = 0  # the receiver refuses every token
    with pytest.raises(CersAuthError, match="401 Unauthorized again with a fresh token") as failure:
        deliver_payload(delivery(), payload(tmp_path, GOOD))
    assert not is_transient(failure.value)
    assert [r["status"] for r in calls(server, "POST", "/groups/imports")] == [401, 401]
    assert len(calls(server, "POST", "/auth/token")) == 2


@pytest.mark.parametrize("change, error", [
    ({"extra": {"client_secret": "wrong"}}, "invalid_client"),
    ({"password": "wrong"}, "invalid_grant"),
])
def test_refused_credentials_fail_at_once(server, monkeypatch, tmp_path, change, error):
    connect(monkeypatch, server, **change)
    with pytest.raises(CersAuthError, match=f"token request refused \\({error}\\)") as failure:
        deliver_payload(delivery(), payload(tmp_path, GOOD))
    assert not is_transient(failure.value)
    assert "wrong" not in str(failure.value) and PASSWORD not in str(failure.value)
    assert len(calls(server, "POST", "/auth/token")) == 1 and server.imports == {}


def test_403_for_a_school_the_user_may_not_write(server, tmp_path):
    server.user_schools = {USER: {"19647330000001"}}
    with pytest.raises(CersForbiddenError, match="403") as failure:
        deliver_payload(delivery(), payload(tmp_path, GOOD))
    assert not is_transient(failure.value)
    assert len(calls(server, "POST", "/groups/imports")) == 1


def test_an_upload_whose_answer_was_lost_is_found_by_its_batch_not_sent_again(server, tmp_path):
    server.slow_next(1, seconds=2.0, after_handling=True, path="/groups/imports", method="POST")  # answer lost
    result = deliver_payload(delivery(request_timeout_s=0.5), payload(tmp_path, GOOD))
    assert result["imports"][0]["status"] == "PROCESSED"
    assert len(server.imports) == 1
    assert len(calls(server, "POST", "/groups/imports")) == 1
    assert len(calls(server, "GET", "/groups/imports")) == 1  # the batch lookup


def test_a_retried_task_skips_files_already_processed_in_the_run(server, tmp_path):
    files = payload(tmp_path, GOOD, EXPECTED / "counselors.csv", names=("a.csv", "b.csv"))
    server.fail_next(10, status=503, path="/imports/34002")  # a.csv goes through; b.csv's status never comes
    with pytest.raises(CersTransientError) as failure:
        deliver_payload(delivery(max_attempts=2), files)
    assert is_transient(failure.value)
    ledger = {i["file"]: i["status"] for i in json.loads(
        (tmp_path / "manual__run1" / "reports" / "cers_imports.json").read_text())["imports"]}
    assert ledger == {"a.csv": "PROCESSED", "b.csv": "ACCEPTED"}

    server.clear_faults()
    result = deliver_payload(delivery(), files)  # the task retry
    assert [(i["file"], i["import_id"], i["status"]) for i in result["imports"]] == [
        ("a.csv", 34001, "PROCESSED"), ("b.csv", 34002, "PROCESSED")]
    assert len(calls(server, "POST", "/groups/imports")) == 2  # one upload per file, none repeated
    assert len(server.imports) == 2


def test_identical_file_already_processed_is_not_processed_again(server, tmp_path):
    first = deliver_payload(delivery(), payload(tmp_path, GOOD))
    second = deliver_payload(delivery(), payload(tmp_path / "other-run", GOOD))
    assert second["imports"][0]["import_id"] == first["imports"][0]["import_id"] == 34001
    assert len(server.imports) == 1


def test_connection_without_oauth_settings_is_a_clear_error(server, monkeypatch):
    connect(monkeypatch, server, extra={"client_secret": "", "token_url": ""})
    with pytest.raises(ValueError, match="lacks extra.client_secret, extra.token_url") as failure:
        CersClient("cers_api")
    assert not is_transient(failure.value)


def test_receiver_messages_are_sanitised():
    message = ("Row: 3 Failure: student_ssid 1234567890 unknown\n"
               "Row: 4 Failure: user 'Jane Doe' (jane.doe@x.org) not found\n"
               "3 group(s) accepted for 19647331932367.")
    assert sanitise_message(message) == ("Row: 3 Failure: student_ssid <ssid> unknown\n"
                                         "Row: 4 Failure: user <value> (<email>) not found\n"
                                         "3 group(s) accepted for 19647331932367.")
    assert sanitise_message("\n".join(f"Row: {i} Failure: x" for i in range(60))).endswith("(+10 more lines)")


def test_the_local_receiver_applies_the_receivers_rules():
    header = b"group_name,school_natural_id,school_year,subject_code,student_ssid,group_user_login\r\n"
    big = header + b"G,19647330000001,2027,Math,,\r\n" + b"".join(
        b"G,19647330000001,2027,,%010d,\r\n" % i for i in range(201))
    assert validate_group_file(big)[0] == ["Row: 203 Failure: group has more than 200 students"]
    assert validate_group_file(header + b"G,19647330000001,2027,Math,,\r\nG,19647330000001,2027,ELA,,\r\n")[0] == [
        "Row: 3 Failure: subject_code differs from an earlier row of the group"]
    assert validate_group_file(header + b",19647330000001,year,Science,,nobody\r\n")[0] == [
        "Row: 2 Failure: group_name is required"]
    assert validate_group_file(b"name,school\r\n")[0][0].startswith("Row: 1 Failure: header must be")


def test_one_failed_import_does_not_stop_the_other_files(server, tmp_path):
    server.known_schools = {"19647330000001"}  # school 2 unknown to the receiver
    files = payload(tmp_path, EXPECTED / "counselors.csv", EXPECTED / "primary_only.csv")
    with pytest.raises(CersImportFailed) as failure:
        deliver_payload(delivery(), files)
    assert not is_transient(failure.value) and failure.value.statuses == ("UNKNOWN_SCHOOL",)
    assert "counselors.csv: import 34001 UNKNOWN_SCHOOL" in str(failure.value)
    assert [i.status for i in server.imports.values()] == ["UNKNOWN_SCHOOL", "PROCESSED"]
    assert sorted(name for _, name, _ in server.groups) == ["101oneilana11", "101tt921"]
    assert is_transient(CersImportFailed("x", ("PIPELINE_FAILURE",)))

    server.known_schools = None  # the state fixed its school list; the run is cleared and retried
    result = deliver_payload(delivery(), files)
    assert [(i["file"], i["import_id"], i["status"]) for i in result["imports"]] == [
        ("counselors.csv", 34003, "PROCESSED"), ("primary_only.csv", 34002, "PROCESSED")]
    batches = [i.batch for i in sorted(server.imports.values(), key=lambda i: i.id)]
    assert batches[0] != batches[2]  # sent again under a new batch: the failed import is never taken for it


def test_the_local_receiver_takes_a_raw_csv_body_too(server):
    import requests

    http = requests.Session()
    http.verify = str(server.ca_path)  # the stand-in's own CA
    http.trust_env = False  # else REQUESTS_CA_BUNDLE, when set, would replace it
    token = http.post(server.token_url, data={"grant_type": "password", "username": USER, "password": PASSWORD,
                                                  "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
                          timeout=5).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    answer = http.post(f"{server.url}/groups/imports", params={"filename": "raw.csv", "batch": "b1"},
                           data=(EXPECTED / "counselors.csv").read_bytes(),
                           headers={**auth, "Content-Type": "application/csv"}, timeout=5)
    assert answer.status_code == 202 and answer.json()["status"] == "ACCEPTED"
    import_id = answer.json()["id"]
    statuses = [http.get(f"{server.url}/imports/{import_id}", headers=auth, timeout=5).json()["status"]
                for _ in range(2)]
    assert statuses == ["ACCEPTED", "PROCESSED"]  # process_after_polls=2
    listed = http.get(f"{server.url}/groups/imports", params={"batch": "b1"}, headers=auth, timeout=5).json()
    assert [i["id"] for i in listed] == [import_id]
    assert http.get(f"{server.url}/groups/imports", headers=auth, timeout=5).status_code == 400  # no filter
    assert http.get(f"{server.url}/imports/{import_id}", timeout=5).status_code == 401  # no token
    assert server.groups[("19647330000002", "201counselorgus1", "2027")]["users"] == {"gus.c@cers.example.org"}


# -- transport: TLS only, certificates always verified ---------------------------------------------------------------


@pytest.mark.parametrize("change, fix", [
    ({"host": "http://127.0.0.1:9"}, "host"),
    ({"extra": {"token_url": "http://127.0.0.1:9/auth/token"}}, "token_url"),
    ({"host": "127.0.0.1:9", "schema": "http"}, "host"),
], ids=["http-base-url", "http-token-url", "schema-http"])
def test_plain_http_is_refused_before_anything_is_sent(server, monkeypatch, change, fix):
    connect(monkeypatch, server, **change)
    with pytest.raises(cers_api.CersTransportPolicyError, match="https") as refused:
        CersClient("cers_api")
    assert "'cers_api'" in str(refused.value) and fix in str(refused.value)
    assert not is_transient(refused.value)
    assert server.requests == []


@pytest.mark.parametrize("setting", [{"verify": False}, {"verify": "false"}, {"verify": 0}, {"verify": "0"},
                                     {"verify_ssl": "False"}, {"verify": ""}, {"verify": "/no/such/ca.pem"}])
def test_switching_certificate_checks_off_is_refused(server, monkeypatch, setting):
    connect(monkeypatch, server, extra=setting)
    with pytest.raises(cers_api.CersTransportPolicyError, match="verify") as refused:
        CersClient("cers_api")
    assert "'cers_api'" in str(refused.value) and not is_transient(refused.value)
    assert server.requests == []


def test_a_certificate_the_connection_does_not_trust_is_refused(server, monkeypatch, tmp_path):
    connect(monkeypatch, server, extra={"verify": True})  # the system CAs: the stand-in's own CA is not among them
    with pytest.raises(Exception) as refused:
        deliver_payload(delivery(max_attempts=1), payload(tmp_path, GOOD))
    assert "SSL" in repr(refused.value) or "certificate" in repr(refused.value).lower()
    assert server.imports == {} and calls(server, "POST", "/auth/token") == []


def test_a_redirect_is_not_followed(server, tmp_path):
    server.fail_next(1, status=307, location="http://127.0.0.1:9/auth/token", path="/auth/token")
    with pytest.raises(cers_api.CersTransportPolicyError, match="redirect") as refused:
        deliver_payload(delivery(), payload(tmp_path, GOOD))
    assert not is_transient(refused.value)
    assert [r["status"] for r in server.requests] == [307] and server.imports == {}


def test_the_stand_in_serves_https_with_its_own_ca(server):
    assert server.url.startswith("https://127.0.0.1:") and server.token_url.startswith("https://")
    assert Path(server.ca_path).read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_a_guard_section_in_the_delivery_is_the_pipelines_not_an_unknown_transport_option(server, tmp_path):
    """docs/safety.md suggests delivery.guard for CERS too: it once failed every delivery with "unknown option(s)
    ['guard']", because the pipeline and the transport read one options bag."""
    result = deliver_payload(delivery(guard={"max_delete_pct": 5}), payload(tmp_path, GOOD))
    assert [i["status"] for i in result["imports"]] == ["PROCESSED"]
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['gaurd'\]"):  # a typo is still refused
        deliver_payload(delivery(gaurd={}), payload(tmp_path / "typo", GOOD))


def test_a_cers_delivery_waits_for_another_one_to_the_same_receiver(server, tmp_path, monkeypatch):
    from rostering.delivery import cers_api, locks

    monkeypatch.setattr(cers_api, "destination_lock",
                        lambda key: locks.destination_lock(key, timeout_s=0.5))  # the real lock, a short wait
    with locks.destination_lock("cers_api://cers_api/groups/imports"):  # e.g. a re-delivery in progress
        with pytest.raises(locks.DestinationBusyError, match="cers_api://cers_api/groups/imports"):
            deliver_payload(delivery(), payload(tmp_path, GOOD))
    assert calls(server, "POST", "/groups/imports") == []  # nothing was sent meanwhile


# -- OAuth2 (authlib): the token is refreshed with the receiver's refresh token, not the password ------------------


def test_an_expiring_token_is_refreshed_with_its_refresh_token_and_a_refused_one_falls_back(monkeypatch):
    """A receiver that issues refresh tokens gets the refresh grant before the access token runs out (the system
    user's password is sent once); a refresh token it refuses makes the client ask the password grant again."""
    with LocalCersServer(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, users={USER: PASSWORD},
                         refresh_tokens=True, token_lifetime_s=2) as srv:
        connect(monkeypatch, srv)
        client = CersClient("cers_api", cers_api.CersApiOptions(**FAST))
        assert client.find_batch("b1") is None
        time.sleep(1.2)  # renewed half-way through a 2 s token
        assert client.find_batch("b1") is None
        srv.revoke_refresh_tokens()
        time.sleep(1.2)
        assert client.find_batch("b1") is None
        grants = [(r["grant"], r["status"]) for r in calls(srv, "POST", "/auth/token")]
        assert grants == [("password", 200), ("refresh_token", 200), ("refresh_token", 400), ("password", 200)]
        assert [r["status"] for r in calls(srv, "GET", "/groups/imports")] == [200, 200, 200]  # never a 401
        assert {r["auth"] for r in calls(srv, "POST", "/auth/token")} == {None}  # client secret in the form only
