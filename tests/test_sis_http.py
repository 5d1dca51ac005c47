"""The API client every SIS source reads through, against a real HTTP server on loopback (the stand-in base)."""
from __future__ import annotations

import logging
import threading
import time

import pytest

from rostering.devservers.api_standin import StandinResponse, StandinServer, error, page_slice
from rostering.sis.sources.base import SourceAccessError, SourceError
from rostering.sis.sources.http import ApiClient, HeaderAuth, OAuthClientCredentials

SECRET_NAME = "Zoë Student-Secret"  # stands for a child's record in a response body


class TinySis(StandinServer):
    """Bearer tokens from /token; /items paged; /slow counts requests in flight."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.tokens: set[str] = set()
        self.issued = 0
        self.in_flight = self.max_in_flight = 0
        self._count_lock = threading.Lock()
        self.items = [{"id": i, "name": SECRET_NAME} for i in range(25)]
        self.route("POST", "/token", self._token)
        self.route("GET", "/items", lambda req: {"items": list(page_slice(self.items, page=int(req.query["page"]),
                                                                          page_size=10))})
        self.route("GET", "/slow", self._slow)
        self.route("GET", "/broken", lambda req: error(500, f"crashed on {SECRET_NAME}"))

    def _token(self, request):
        if request.header("Authorization") != "Basic Y2xpZW50OnNlY3JldA==":  # client:secret
            return error(401, "invalid_client")
        self.issued += 1
        token = f"t{self.issued}"
        self.tokens.add(token)
        return {"access_token": token, "token_type": "Bearer", "expires_in": 3600}

    def authenticate(self, request):
        if request.path == "/token":
            return None
        if (request.header("Authorization") or "").removeprefix("Bearer ") not in self.tokens:
            return StandinResponse(401, {"message": "Invalid token"}, {"WWW-Authenticate": "Bearer"})
        return None

    def _slow(self, request):
        with self._count_lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(0.05)
        with self._count_lock:
            self.in_flight -= 1
        return {"ok": True}


@pytest.fixture
def sis():
    with TinySis() as server:
        yield server


def client(server, **kwargs) -> ApiClient:
    auth = OAuthClientCredentials(token_url=f"{server.url}/token", client_id="client", client_secret="secret",
                                  backoff_s=0.01)
    return ApiClient(source="tiny", base_url=server.url, auth=auth, backoff_s=0.01, **kwargs)


def test_pages_are_read_in_order_and_counted(sis):
    api = client(sis)
    pages = api.map(lambda page: api.get_json("/items", resource="items", params={"page": page})["items"], [1, 2, 3])
    api.progress("items", records=sum(map(len, pages)))
    assert [len(p) for p in pages] == [10, 10, 5] and pages[2][0]["id"] == 20
    assert api.stats["items"]["requests"] == 3 and api.stats["items"]["records"] == 25
    assert api.stats["items"]["bytes"] > 0 and 0 < api.pull_seconds < 5


def test_concurrency_is_bounded_even_when_maps_nest(sis):
    api = client(sis, max_concurrency=3)
    api.map(lambda _: api.map(lambda _: api.get_json("/slow", resource="slow"), range(6)), range(4))
    assert sis.max_in_flight == 3


def test_429_waits_as_retry_after_says(sis):
    api = client(sis)
    api.get_json("/items", resource="items", params={"page": 1})  # token fetched
    sis.fail_next(1, status=429, retry_after="1", path_prefix="/items")
    started = time.monotonic()
    assert len(api.get_json("/items", resource="items", params={"page": 1})["items"]) == 10
    assert time.monotonic() - started >= 0.95
    assert [s for m, p, s in sis.requests if p == "/items"][-2:] == [429, 200]


def test_5xx_is_retried_with_backoff_then_reported_without_the_body(sis, caplog):
    api = client(sis, max_retries=2)
    sis.fail_next(2, status=503, path_prefix="/items")
    assert api.get_json("/items", resource="items", params={"page": 1})["items"]
    with caplog.at_level(logging.DEBUG), pytest.raises(SourceError, match=r"tiny: broken answered HTTP 500") as err:
        api.get_json("/broken", resource="broken")
    assert [s for m, p, s in sis.requests if p == "/broken"] == [500, 500, 500]  # first try + 2 retries
    assert SECRET_NAME not in str(err.value) and SECRET_NAME not in caplog.text


def test_an_expired_token_is_fetched_again_once(sis):
    api = client(sis)
    api.get_json("/items", resource="items", params={"page": 1})
    sis.tokens.clear()  # the SIS revoked every token
    assert api.get_json("/items", resource="items", params={"page": 2})["items"]
    assert sis.issued == 2


def test_a_token_that_keeps_failing_is_an_access_error(sis):
    api = client(sis)
    api.get_json("/items", resource="items", params={"page": 1})
    sis.authenticate = lambda request: (None if request.path == "/token"
                                        else StandinResponse(401, {"message": "nope"}))
    with pytest.raises(SourceAccessError, match=r"tiny: the SIS rejected our credentials items \(HTTP 401\)"):
        api.get_json("/items", resource="items", params={"page": 1})
    assert sis.issued == 2  # refreshed once, not in a loop


def test_wrong_client_secret_names_the_token_endpoint(sis):
    auth = OAuthClientCredentials(token_url=f"{sis.url}/token", client_id="client", client_secret="wrong")
    api = ApiClient(source="tiny", base_url=sis.url, auth=auth)
    with pytest.raises(SourceAccessError, match="OAuth token endpoint"):
        api.get_json("/items", resource="items", params={"page": 1})
    assert "wrong" not in repr(auth)


def test_a_resource_not_granted_names_resource_and_status(sis):
    api = client(sis)
    api.access_hint = "Ask the SIS admin to grant it."
    sis.deny("/items")
    with pytest.raises(SourceAccessError) as refused:
        api.get_json("/items", resource="students", params={"page": 1})
    assert (refused.value.resource, refused.value.status) == ("students", 403)
    assert "has not granted access to students (HTTP 403). Ask the SIS admin" in str(refused.value)


def test_header_auth_and_rate_limit():
    class CertSis(StandinServer):
        def __init__(self):
            super().__init__(rate_limit_per_s=5)
            self.route("GET", "/x", lambda req: {"ok": True})

        def authenticate(self, request):
            return None if request.header("AERIES-CERT") == "cert" else error(401, "bad certificate")

    with CertSis() as server:
        api = ApiClient(source="cert", base_url=server.url, auth=HeaderAuth("AERIES-CERT", "cert"), backoff_s=0.01,
                        max_retries=10)
        for _ in range(12):  # over 5 a second: some answered 429 + Retry-After, all eventually read
            assert api.get_json("/x", resource="x") == {"ok": True}
        assert 429 in {s for _, _, s in server.requests}
        assert "cert'" not in repr(api.auth)
