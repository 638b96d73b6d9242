"""A real `poolui serve` refuses what is not allowed and changes nothing: lax types, unknown query
parameters, tokens in the URL, two Authorization headers; and the lease verbs over HTTP and headless."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from server_fixtures import Served, pool_table, served

POOLS = {"p": pool_table("instant", target_ready=2, min_ready=1, max_ready=5, max_total=10)}


@pytest.fixture(scope="module")
def srv() -> Iterator[Served]:
    with served(POOLS) as s:
        yield s


def call(s: Served, method: str, path: str, body: Any = None, **headers: str) -> httpx.Response:
    h = {"authorization": f"Bearer {s.token}", **headers}
    return httpx.request(method, s.url + path, json=body, headers=h, timeout=10)


def claimed(s: Served) -> int:
    return int(call(s, "GET", "/pools/p?members=false").json()["counts"]["claimed"])


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/pools/p/claim", {"timeout": True}, "timeout"),
    ("/pools/p/claim", {"check_health": "yes"}, "check_health"),
    ("/pools/p/claim", {"lease": float("inf")}, "lease"),
    ("/pools/p/claim", {"lease": 10**9}, "lease"),
    ("/pools/p/claim", {"timeout": 10**9}, "timeout"),
    ("/pools/p/resize", {"target": "5"}, "target"),
    ("/pools/p/resize", {"target": True}, "target"),
    ("/pools/p/resize", {"target": 10**17}, "target"),
])
def test_lax_types_and_out_of_range_values_are_422_naming_the_field(srv: Served, path: str, body: Any,
                                                                    field: str) -> None:
    before = call(srv, "GET", "/pools/p?members=false").json()
    # allow_nan: inf goes out as the non-standard Infinity, as a careless client would send it
    r = httpx.post(srv.url + path, content=json.dumps(body, allow_nan=True),
                   headers={"authorization": f"Bearer {srv.token}", "content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert field in r.text
    after = call(srv, "GET", "/pools/p?members=false").json()
    assert (after["target_ready"], after["counts"]["claimed"]) == (before["target_ready"], before["counts"]["claimed"])


def test_an_unknown_query_parameter_is_422_naming_it(srv: Served) -> None:
    r = call(srv, "GET", "/pools/p?member=false")  # a typo of members
    assert r.status_code == 422 and "member" in r.text and "allowed here: members" in r.text
    assert call(srv, "POST", "/pools/p/pause?now=1").status_code == 422
    assert call(srv, "GET", "/pools/p").json()["state"] == "healthy"  # the pause did not happen


@pytest.mark.parametrize("name", ["api-key", "x-api-key", "bearer", "token", "access_token"])
def test_a_token_in_the_url_is_refused(srv: Served, name: str) -> None:
    r = httpx.get(f"{srv.url}/pools?{name}={srv.token}", timeout=10)
    assert r.status_code == 401 and "never accepted in the query string" in r.text


def test_two_authorization_headers_are_400(srv: Served) -> None:
    good = f"Bearer {srv.token}"
    r = httpx.get(srv.url + "/pools", headers=[("authorization", good), ("authorization", "Bearer nope")])
    assert r.status_code == 400 and "2 Authorization headers" in r.text


def test_renew_and_release_by_key_over_http(srv: Served) -> None:
    c = call(srv, "POST", "/pools/p/claim", {"lease": 30, "claim_key": "k-http"}).json()
    assert c["lease_expires_at"] is not None
    r = call(srv, "POST", f"/pools/p/sandboxes/{c['id']}/renew", {"lease": 60})
    assert r.status_code == 200 and r.json()["lease_expires_at"] > c["lease_expires_at"]
    assert call(srv, "POST", f"/pools/p/sandboxes/{c['id']}/renew", {"lease": "60"}).status_code == 422
    assert call(srv, "POST", "/pools/p/claims/k-http/release").json() == {"id": "k-http", "released": True}
    assert call(srv, "POST", "/pools/p/claims/k-http/release").json()["released"] is False
    ended = call(srv, "POST", f"/pools/p/sandboxes/{c['id']}/renew", {"lease": 60})
    assert ended.status_code == 410 and ended.json()["error"] == "claim_ended"


def test_headless_lease_verbs(srv: Served) -> None:
    r = srv.headless("claim", "--lease", "30", "--key", "k-cli", "--json")
    assert r.returncode == 0, r.stderr
    sid = json.loads(r.stdout)["id"]
    r = srv.headless("renew", sid, "--lease", "90", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["id"] == sid, r.stderr
    r = srv.headless("release", "--key", "k-cli")
    assert r.returncode == 0 and "released the claim of key k-cli" in r.stdout, r.stderr
    r = srv.headless("renew", sid)
    assert r.returncode == 1 and "has ended" in r.stderr
    r = srv.headless("release")
    assert r.returncode == 2 and "give a sandbox ID or --key" in r.stderr
    assert claimed(srv) == 0
