"""One authentication error shape (issue 14): a missing, malformed, forged, expired or revoked
token is the same UNAUTHENTICATED request error for anything not `@public`, and never blocks
what is (signing in, refreshing a token, introspection).

The media type decides only the status: 200 with application/json (Apollo Client's and
urql's error links then see `extensions.code`), 401 with application/graphql-response+json
(whose clients read the body whatever the status). Each refusal still runs nothing, and a
request whose token was refused counts as anonymous for every anonymous limit.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from uuid import uuid4

import httpx
import pytest

from app.core.db import Database
from app.core.errors import Unauthenticated
from app.core.keys import KeyRing
from app.core.security import TokenService
from app.core.settings import Limits, Settings
from tests.app_fixtures import (
    PASSWORD,
    GraphQL,
    Org,
    new_org,
    start_server,
    stop_server,
    without_cost,
)
from tests.auth.helpers import REFRESH, SIGN_IN, SIGN_OUT

GRAPHQL_RESPONSE = "application/graphql-response+json"
VIEWER = "query Me { viewer { email } }"
CREATE_PROJECT = """
mutation New($name: String!) { createProject(input: {name: $name}) { project { id } } }
"""
INTROSPECTION = "{ __schema { queryType { name } } }"
SIGNED_OUT = {"message": "Sign in required", "extensions": {"code": "UNAUTHENTICATED"}}
REFUSED = {"message": "Invalid access token", "extensions": {"code": "UNAUTHENTICATED"}}


@pytest.fixture(scope="module")
async def expiring(
    app_settings: Settings, database: Database, gql: GraphQL
) -> AsyncIterator[GraphQL]:
    """A server whose access tokens are expired when issued (120 s in the past, beyond the
    leeway): what a client holds once its token has run out, without waiting for it.
    (After `gql`, whose server creates the key files this one reads.)"""
    settings = replace(app_settings, access_token_ttl_seconds=-120)
    server, url = await start_server(settings, database)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield GraphQL(client)
    finally:
        await stop_server(server)


async def post(
    client: GraphQL,
    document: str,
    variables: dict[str, Any] | None = None,
    *,
    authorization: str | None,
    accept: str | None,
) -> httpx.Response:
    headers = {}
    if authorization is not None:
        headers["authorization"] = authorization
    if accept is not None:
        headers["accept"] = accept
    return await client.http.post(
        "/graphql", json={"query": document, "variables": variables or {}}, headers=headers
    )


async def sign_in(client: GraphQL, org: Org, **headers: str) -> dict[str, Any]:
    variables = {"input": {"tenant": org.slug, "email": org.members[0].email, "password": PASSWORD}}
    response = await client.http.post(
        "/graphql", json={"query": SIGN_IN, "variables": variables}, headers=headers
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["data"]["signIn"]
    assert result["errors"] == [], result
    return result


@pytest.fixture
async def member(database: Database, tokens: TokenService) -> Org:
    return await new_org(database, tokens, password=PASSWORD)


@pytest.mark.parametrize(
    ("accept", "status"), [(None, 200), ("application/json", 200), (GRAPHQL_RESPONSE, 401)]
)
async def test_every_kind_of_missing_or_bad_token_gets_the_same_answer(
    gql: GraphQL,
    expiring: GraphQL,
    member: Org,
    database: Database,
    statements: list[str],
    accept: str | None,
    status: int,
) -> None:
    # given: a token of every kind a client may still hold
    expired = (await sign_in(expiring, member))["accessToken"]
    revoked = (await sign_in(gql, member))["accessToken"]
    signed_out = await post(gql, SIGN_OUT, authorization=f"Bearer {revoked}", accept=None)
    assert signed_out.json()["data"]["signOut"]["revokedSessions"] == 1
    given = {
        "none": None,
        "garbage": "Bearer garbage",
        "not-bearer": "Basic dXNlcjpwYXNz",
        "expired": f"Bearer {expired}",
        "revoked": f"Bearer {revoked}",
    }
    statements.clear()

    for kind, authorization in given.items():
        for document, variables in ((VIEWER, None), (CREATE_PROJECT, {"name": kind})):
            # when
            response = await post(
                gql, document, variables, authorization=authorization, accept=accept
            )

            # then: one request error, no data, the same body; the header tells the two apart
            assert response.status_code == status, (kind, response.text)
            assert without_cost(response.json()) == {
                "errors": [SIGNED_OUT if authorization is None else REFUSED]
            }
            expected = "Bearer" if authorization is None else 'Bearer error="invalid_token"'
            assert response.headers["www-authenticate"] == expected
            media_type = accept if accept == GRAPHQL_RESPONSE else "application/json"
            assert response.headers["content-type"].startswith(media_type)
    # and nothing ran: not a read, not a write (the revoked session's check is the store's)
    assert not [s for s in statements if "projects" in s or "users" in s], statements


@pytest.mark.parametrize("accept", [None, GRAPHQL_RESPONSE])
async def test_an_expired_token_never_blocks_signing_in_or_refreshing(
    expiring: GraphQL, member: Org, accept: str | None
) -> None:
    # given: a client whose access token has expired, still sending it (as a link does)
    signed_in = await sign_in(expiring, member)
    stale = f"Bearer {signed_in['accessToken']}"
    refused = await post(expiring, VIEWER, authorization=stale, accept=accept)
    assert without_cost(refused.json()) == {"errors": [REFUSED]}

    # when: the refresh goes out with the same header, then a sign-in
    refreshed = await post(
        expiring,
        REFRESH,
        {"token": signed_in["refreshToken"]},
        authorization=stale,
        accept=accept,
    )
    again = await sign_in(expiring, member, authorization=stale)

    # then: both run (a mutation of only `@public` fields), as for an anonymous caller
    assert refreshed.status_code == 200
    result = refreshed.json()["data"]["refreshToken"]
    assert result["errors"] == []
    assert result["refreshToken"] not in (None, signed_in["refreshToken"])
    assert again["accessToken"]


async def test_a_refreshed_token_works_where_the_stale_one_was_refused(
    gql: GraphQL, expiring: GraphQL, member: Org
) -> None:
    # given: a refresh token of a session whose access token expired
    stale = await sign_in(expiring, member)

    # when: refreshed on a server issuing tokens that last
    response = await post(
        gql,
        REFRESH,
        {"token": stale["refreshToken"]},
        authorization=f"Bearer {stale['accessToken']}",
        accept=None,
    )
    fresh = response.json()["data"]["refreshToken"]["accessToken"]

    # then: the new token is accepted where the stale one was not
    viewer = await post(gql, VIEWER, authorization=f"Bearer {fresh}", accept=None)
    assert without_cost(viewer.json()) == {"data": {"viewer": {"email": member.members[0].email}}}


async def test_introspection_runs_whatever_token_comes_with_it(gql: GraphQL) -> None:
    # Code generators and GraphiQL keep sending the header of a session long gone.
    for authorization in (None, "Bearer garbage"):
        response = await post(gql, INTROSPECTION, authorization=authorization, accept=None)

        assert without_cost(response.json()) == {
            "data": {"__schema": {"queryType": {"name": "Query"}}}
        }


async def test_an_operation_mixing_public_and_other_fields_is_refused_whole(
    gql: GraphQL, member: Org, database: Database
) -> None:
    # given: signing in and reading the viewer in one operation, with a refused token
    document = """
    mutation Both($input: SignInInput!) {
      signIn(input: $input) { accessToken }
      signOut { revokedSessions }
    }
    """
    variables = {"input": {"tenant": member.slug, "email": member.members[0].email}}
    variables["input"]["password"] = PASSWORD
    async with database.transaction(member.id, readonly=True) as session:
        before = await session.fetchval("SELECT count(*) FROM auth_sessions")

    # when
    response = await post(gql, document, variables, authorization="Bearer x", accept=None)

    # then: not even the public field ran: no session was created
    assert without_cost(response.json()) == {"errors": [REFUSED]}
    async with database.transaction(member.id, readonly=True) as session:
        assert await session.fetchval("SELECT count(*) FROM auth_sessions") == before


@pytest.fixture
async def strict(
    app_settings: Settings, database: Database, gql: GraphQL
) -> AsyncIterator[httpx.AsyncClient]:
    """A server of its own allowing 2 anonymous requests per address (in memory)."""
    limits = replace(Limits(), anonymous_burst=2, anonymous_per_minute=1)
    settings = replace(app_settings, redis_url=None, limits=limits)
    server, url = await start_server(settings, database)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield client
    finally:
        await stop_server(server)


async def test_a_refused_token_counts_as_anonymous_for_the_rate_limit(
    strict: httpx.AsyncClient, org: Org
) -> None:
    # given: one address, a garbage token on every request
    headers = {"x-forwarded-for": f"10.{secrets.randbelow(250)}.0.1", "authorization": "Bearer x"}
    body = {"query": INTROSPECTION}

    # when
    answers = [await strict.post("/graphql", json=body, headers=headers) for _ in range(3)]
    signed_in = await strict.post(
        "/graphql",
        json=body,
        headers={**headers, "authorization": f"Bearer {org.token}"},
    )

    # then: the garbage token bought nothing beyond the anonymous burst
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert signed_in.status_code == 200


async def test_a_refused_token_gets_the_anonymous_body_limit(
    gql: GraphQL, app_settings: Settings, org: Org
) -> None:
    # given: a body within the signed-in limit but over the anonymous one
    padding = " " * app_settings.limits.max_anonymous_body_bytes
    body = {"query": INTROSPECTION + padding}

    # when
    refused = await gql.http.post("/graphql", json=body, headers={"authorization": "Bearer x"})
    signed_in = await gql.http.post(
        "/graphql", json=body, headers={"authorization": f"Bearer {org.token}"}
    )

    # then
    assert refused.status_code == 413
    assert refused.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert signed_in.status_code == 200


@pytest.mark.parametrize(("ttl", "valid"), [(-120, False), (600, True)])
def test_the_expiring_server_really_issues_expired_tokens(
    app_settings: Settings, ttl: int, valid: bool
) -> None:
    # The keys and settings of `expiring`: only the lifetime makes its tokens invalid.
    keys = KeyRing.from_file(app_settings.keys_file, create=True)
    issuer = TokenService.from_settings(keys, replace(app_settings, access_token_ttl_seconds=ttl))
    token = issuer.issue_access_token(
        user_id=uuid4(), tenant_id=uuid4(), session_id=uuid4(), aal=1, amr=("pwd",), auth_time=0
    ).token

    if valid:
        assert TokenService.from_settings(keys, app_settings).verify_bearer(token)
    else:
        with pytest.raises(Unauthenticated):
            TokenService.from_settings(keys, app_settings).verify_bearer(token)
