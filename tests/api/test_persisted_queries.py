"""Automatic persisted queries (Apollo's protocol) and trusted documents (app/api/documents.py),
over POST and GET, as Apollo's persisted-query link, GraphQL Code Generator's client preset
and Relay send them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api.documents import TrustedDocuments
from app.core.db import Database
from app.core.document_cache import sha256_hex
from app.core.security import TokenService
from app.core.settings import Settings, SettingsError, TransportSettings
from tests.app_fixtures import (
    GRAPHQL_RESPONSE,
    Org,
    new_org,
    start_server,
    stop_server,
    without_cost,
)

VIEWER = "query Me { viewer { email } }"
PROJECTS = "query Projects($n: Int) { projects(first: $n) { totalCount } }"
CREATE = "mutation New($name: String!) { createProject(input: {name: $name}) { errors { code } } }"


def persisted(document: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(document)}}


async def post(
    http: httpx.AsyncClient, org: Org | None, payload: dict[str, Any], **headers: str
) -> httpx.Response:
    if org is not None:
        headers["authorization"] = f"Bearer {org.token}"
    return await http.post("/graphql", json=payload, headers=headers)


async def get(
    http: httpx.AsyncClient, org: Org | None, params: dict[str, Any], **headers: str
) -> httpx.Response:
    if org is not None:
        headers["authorization"] = f"Bearer {org.token}"
    encoded = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()}
    return await http.get("/graphql", params=encoded, headers=headers)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert "data" not in body, body
    [error] = body["errors"]
    return dict(error)


NOT_FOUND = {
    "message": "PersistedQueryNotFound",
    "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
}


# --- automatic persisted queries ----------------------------------------------------------------


async def test_the_apollo_link_flow_over_post(http: httpx.AsyncClient, org: Org) -> None:
    # when: the hash alone (unknown), then hash and document, then the hash alone again
    first = await post(http, org, {"extensions": persisted(VIEWER)})
    second = await post(http, org, {"query": VIEWER, "extensions": persisted(VIEWER)})
    third = await post(http, org, {"extensions": persisted(VIEWER), "operationName": "Me"})

    # then: Apollo's words and code (its link retries on them, with a 200 in application/json)
    assert first.status_code == 200
    assert error_of(first) == NOT_FOUND
    expected = {"data": {"viewer": {"email": org.members[0].email}}}
    assert without_cost(second.json()) == expected
    assert without_cost(third.json()) == expected


async def test_the_apollo_link_flow_over_get(http: httpx.AsyncClient, org: Org) -> None:
    # Apollo's `useGETForHashedQueries`: the hash in `extensions`, no query, variables in URL.
    params = {"extensions": persisted(PROJECTS), "variables": json.dumps({"n": 1})}

    missing = await get(http, org, params)
    registered = await post(
        http, org, {"query": PROJECTS, "variables": {"n": 1}, "extensions": persisted(PROJECTS)}
    )
    found = await get(http, org, params)

    assert error_of(missing) == NOT_FOUND
    assert without_cost(registered.json()) == {"data": {"projects": {"totalCount": 0}}}
    assert without_cost(found.json()) == {"data": {"projects": {"totalCount": 0}}}


async def test_with_the_graphql_media_type_an_unknown_hash_is_404(
    http: httpx.AsyncClient, org: Org
) -> None:
    response = await post(
        http, org, {"extensions": persisted(f"{VIEWER} # 404")}, **GRAPHQL_RESPONSE
    )

    assert response.status_code == 404
    assert error_of(response) == NOT_FOUND


async def test_a_document_that_does_not_match_its_hash_is_refused_and_not_kept(
    http: httpx.AsyncClient, org: Org, statements: list[str]
) -> None:
    # given: a hash of one document sent with another
    other = "query Other { viewer { id } }"
    payload = {"query": VIEWER, "extensions": persisted(other)}

    # when
    response = await post(http, org, payload)

    # then: nothing ran, and the hash still finds nothing
    assert error_of(response)["extensions"] == {"code": "PERSISTED_QUERY_HASH_MISMATCH"}
    assert not [s for s in statements if "users" in s]
    assert error_of(await post(http, org, {"extensions": persisted(other)})) == NOT_FOUND


async def test_an_invalid_document_is_never_kept(http: httpx.AsyncClient, org: Org) -> None:
    invalid = "query Bad { viewer { nope } }"

    refused = await post(http, org, {"query": invalid, "extensions": persisted(invalid)})

    assert error_of(refused)["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert error_of(await post(http, org, {"extensions": persisted(invalid)})) == NOT_FOUND


async def test_documents_are_kept_per_tenant(
    http: httpx.AsyncClient, database: Database, tokens: TokenService
) -> None:
    # given: a document only tenant A's client registered
    a, b = await new_org(database, tokens), await new_org(database, tokens)
    document = f"query Mine {{ viewer {{ id }} }} # {a.slug}"
    assert (
        "errors"
        not in (await post(http, a, {"query": document, "extensions": persisted(document)})).json()
    )

    # when: B and an anonymous caller probe its hash
    as_b = await post(http, b, {"extensions": persisted(document)})
    anonymous = await post(http, None, {"extensions": persisted(document)})

    # then: unknown to them, as any hash they never sent
    assert error_of(as_b) == NOT_FOUND
    assert error_of(anonymous) == NOT_FOUND
    assert "data" in (await post(http, a, {"extensions": persisted(document)})).json()


async def test_a_persisted_mutation_runs_over_post_only(
    http: httpx.AsyncClient, org: Org, database: Database
) -> None:
    variables = {"name": "persisted"}
    registered = await post(
        http, org, {"query": CREATE, "variables": variables, "extensions": persisted(CREATE)}
    )
    again = await post(http, org, {"variables": variables, "extensions": persisted(CREATE)})
    over_get = await get(
        http, org, {"variables": json.dumps(variables), "extensions": persisted(CREATE)}
    )

    assert without_cost(registered.json()) == {"data": {"createProject": {"errors": []}}}
    assert without_cost(again.json()) == {"data": {"createProject": {"errors": []}}}
    assert over_get.status_code == 405
    assert over_get.headers["allow"] == "POST"
    async with database.transaction(org.id, readonly=True) as session:
        assert await session.fetchval("SELECT count(*) FROM projects") == 2


@pytest.mark.parametrize(
    "extension",
    [
        {"version": 2, "sha256Hash": "0" * 64},
        {"version": 1, "sha256Hash": "not-a-hash"},
        {"version": 1, "sha256Hash": "A" * 64},
        {"version": 1},
        "yes",
    ],
)
async def test_a_malformed_persisted_query_extension_is_a_bad_request(
    http: httpx.AsyncClient, org: Org, extension: Any
) -> None:
    response = await post(http, org, {"query": VIEWER, "extensions": {"persistedQuery": extension}})

    assert response.status_code == 422
    assert error_of(response)["extensions"] == {"code": "BAD_REQUEST"}


@pytest.fixture
async def without_apq(
    app_settings: Settings, database: Database, http: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    """A server with automatic persisted queries off (after `http`'s, which made the keys)."""
    settings = replace(app_settings, transport=TransportSettings(apq=False))
    server, url = await start_server(settings, database)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield client
    finally:
        await stop_server(server)


async def test_with_apq_off_a_hash_is_not_supported(
    without_apq: httpx.AsyncClient, org: Org
) -> None:
    # Apollo's link then stops sending hashes (and retries with the document alone).
    for payload in (
        {"extensions": persisted(VIEWER)},
        {"query": VIEWER, "extensions": persisted(VIEWER)},
    ):
        response = await post(without_apq, org, payload)

        assert error_of(response) == {
            "message": "PersistedQueryNotSupported",
            "extensions": {"code": "PERSISTED_QUERY_NOT_SUPPORTED"},
        }
    assert (await post(without_apq, org, {"query": VIEWER})).json()["data"]["viewer"]


async def test_a_document_id_needs_the_trusted_mode(http: httpx.AsyncClient, org: Org) -> None:
    response = await post(http, org, {"documentId": sha256_hex(VIEWER)})

    assert error_of(response)["extensions"] == {"code": "PERSISTED_QUERY_NOT_SUPPORTED"}


# --- trusted documents --------------------------------------------------------------------------

# A document registered by its SHA-256 (GraphQL Code Generator's client preset), one by an
# MD5 id (Relay's local persistence), one in Apollo's manifest format.
RELAY_QUERY = "query RelayProjects { projects(first: 2) { totalCount } }"
APOLLO_QUERY = "query ApolloViewer { viewer { id } }"
RELAY_ID = hashlib.md5(RELAY_QUERY.encode(), usedforsecurity=False).hexdigest()


def codegen_manifest(path: Path) -> Path:
    path.write_text(
        json.dumps({sha256_hex(VIEWER): VIEWER, RELAY_ID: RELAY_QUERY, sha256_hex(CREATE): CREATE})
    )
    return path


def apollo_manifest(path: Path) -> Path:
    operations = [
        {
            "id": sha256_hex(APOLLO_QUERY),
            "name": "ApolloViewer",
            "type": "query",
            "body": APOLLO_QUERY,
        }
    ]
    path.write_text(
        json.dumps(
            {"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations}
        )
    )
    return path


@pytest.fixture
async def trusted(
    app_settings: Settings, database: Database, http: httpx.AsyncClient, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """A server running only the operations of a GraphQL Code Generator manifest."""
    manifest = codegen_manifest(tmp_path / "persisted-documents.json")
    settings = replace(app_settings, transport=TransportSettings(trusted_documents_file=manifest))
    server, url = await start_server(settings, database)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield client
    finally:
        await stop_server(server)


async def test_registered_operations_run_by_id_or_hash(
    trusted: httpx.AsyncClient, org: Org
) -> None:
    expected = {"data": {"viewer": {"email": org.members[0].email}}}
    # GraphQL over HTTP's persisted documents, with and without the sha256: prefix; Apollo's
    # hash; the document itself; Relay's id; over POST and GET.
    assert (
        without_cost((await post(trusted, org, {"documentId": sha256_hex(VIEWER)})).json())
        == expected
    )
    prefixed = await post(trusted, org, {"documentId": f"sha256:{sha256_hex(VIEWER)}"})
    assert without_cost(prefixed.json()) == expected
    assert (
        without_cost((await post(trusted, org, {"extensions": persisted(VIEWER)})).json())
        == expected
    )
    assert without_cost((await post(trusted, org, {"query": VIEWER})).json()) == expected
    assert (
        without_cost((await get(trusted, org, {"documentId": sha256_hex(VIEWER)})).json())
        == expected
    )
    relay = await post(trusted, org, {"documentId": RELAY_ID})
    assert without_cost(relay.json()) == {"data": {"projects": {"totalCount": 0}}}
    created = await post(
        trusted, org, {"documentId": sha256_hex(CREATE), "variables": {"name": "x"}}
    )
    assert without_cost(created.json()) == {"data": {"createProject": {"errors": []}}}


@pytest.mark.parametrize("media", ["application/json", "application/graphql-response+json"])
async def test_anything_unregistered_is_refused_before_it_runs(
    trusted: httpx.AsyncClient, org: Org, statements: list[str], media: str
) -> None:
    unregistered = "query Me { viewer { email id } }"
    attempts = [
        {"query": unregistered},
        {"extensions": persisted(unregistered)},
        {"query": unregistered, "extensions": persisted(unregistered)},
        {"documentId": sha256_hex(unregistered)},
        # A registered id with another document.
        {"documentId": sha256_hex(VIEWER), "query": unregistered},
        {"query": "{ __schema { types { name } } }"},
    ]
    statements.clear()

    for payload in attempts:
        response = await post(trusted, org, payload, accept=media)

        assert response.status_code == (200 if media == "application/json" else 403)
        assert error_of(response)["extensions"] == {"code": "PERSISTED_QUERY_NOT_IN_LIST"}
    assert not [s for s in statements if "users" in s], statements


async def test_nothing_is_registered_at_run_time(trusted: httpx.AsyncClient, org: Org) -> None:
    unregistered = "query Sneaky { viewer { id } }"
    await post(trusted, org, {"query": unregistered, "extensions": persisted(unregistered)})

    response = await post(trusted, org, {"extensions": persisted(unregistered)})

    assert error_of(response)["extensions"] == {"code": "PERSISTED_QUERY_NOT_IN_LIST"}


def test_apollo_manifests_are_read_too(tmp_path: Path) -> None:
    documents = TrustedDocuments.load(apollo_manifest(tmp_path / "manifest.json"))

    assert documents.find(sha256_hex(APOLLO_QUERY)) == APOLLO_QUERY
    assert documents.find(f"sha256:{sha256_hex(APOLLO_QUERY)}") == APOLLO_QUERY
    assert documents.find(sha256_hex(VIEWER)) is None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json", "cannot read"),
        ("[]", "neither"),
        ("{}", "neither"),
        (json.dumps({"a": 1}), "neither"),
        (json.dumps({"format": "apollo-persisted-query-manifest", "operations": "x"}), "neither"),
        (json.dumps({"a": "query {"}), "does not parse"),
    ],
)
def test_a_broken_manifest_stops_the_server(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(content)

    with pytest.raises(SettingsError, match=problem):
        TrustedDocuments.load(path)


def test_a_missing_manifest_stops_the_server(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        TrustedDocuments.load(tmp_path / "absent.json")


def test_settings_from_the_environment(tmp_path: Path) -> None:
    settings = TransportSettings.from_env(
        {
            "TENANTRY_APQ": "false",
            "TENANTRY_APQ_TTL": "600",
            "TENANTRY_APQ_MAX_ENTRIES": "50",
            "TENANTRY_APQ_MAX_DOCUMENT_BYTES": "4096",
            "TENANTRY_TRUSTED_DOCUMENTS": str(tmp_path / "m.json"),
            "TENANTRY_MAX_BATCH": "5",
        }
    )

    assert settings == TransportSettings(
        apq=False,
        apq_ttl_seconds=600,
        apq_max_entries=50,
        apq_max_document_bytes=4096,
        trusted_documents_file=tmp_path / "m.json",
        max_batch_operations=5,
    )
    assert TransportSettings.from_env({}) == TransportSettings()
    with pytest.raises(SettingsError):
        TransportSettings.from_env({"TENANTRY_MAX_BATCH": "101"})
