"""Sign-in throttling (docs/authentication.md, "Throttling"): every count is keyed on the
canonical identity, every attempt is claimed before the password is verified, and failures
from elsewhere cannot lock a user out of an address they signed in from."""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from app.auth.throttle import client_network
from app.core.db import Database
from app.core.passwords import argon2_computations
from app.core.security import TokenService
from app.core.settings import Settings
from app.tenants.service import canonical_name, create_tenant
from app.users.service import create_user
from tests.app_fixtures import PASSWORD, GraphQL, Org, new_org
from tests.auth.helpers import (
    ERRORS,
    STORES,
    fresh_ip,
    fresh_ipv6_prefix,
    from_ip,
    sign_in,
    throttled_server,
)

LIMITS = {
    "throttle_per_account": 3,
    "throttle_per_account_total": 6,
    "throttle_per_ip": 5,
    "throttle_per_tenant": 8,
}
PER_ACCOUNT = LIMITS["throttle_per_account"]
TOO_MANY = ["TOO_MANY_ATTEMPTS"]
INVALID = ["INVALID_CREDENTIALS"]


@pytest.fixture
async def strict(app_settings: Settings, database: Database) -> AsyncIterator[GraphQL]:
    async with throttled_server(app_settings, database, **LIMITS) as gql:
        yield gql


@pytest.fixture
async def team(database: Database, tokens: TokenService) -> Org:
    return await new_org(database, tokens, members=2, password=PASSWORD)


def _codes(result: dict[str, Any]) -> list[str]:
    return [e["code"] for e in result["errors"]]


async def _attempt(gql: GraphQL, tenant: str, email: str, password: str, ip: str) -> list[str]:
    return _codes(await sign_in(gql, tenant, email, password, from_ip(ip)))


async def _fail(gql: GraphQL, tenant: str, email: str, ip: str, times: int = 1) -> None:
    for _ in range(times):
        assert await _attempt(gql, tenant, email, "wrong password", ip) == INVALID


# -- Guessing stays bounded -------------------------------------------------------------------


async def test_one_address_gets_a_few_guesses_per_account_then_not_even_the_right_one(
    strict: GraphQL, team: Org
) -> None:
    member, ip = team.members[0], fresh_ip()
    await _fail(strict, team.slug, member.email, ip, times=PER_ACCOUNT)

    before = argon2_computations.value
    blocked = await sign_in(strict, team.slug, member.email, PASSWORD, from_ip(ip))

    # refused before any password work
    assert argon2_computations.value == before
    assert _codes(blocked) == TOO_MANY
    assert blocked["accessToken"] is None
    assert 1 <= blocked["errors"][0]["retryAfterSeconds"] <= 900
    # the same account from another address, and another account from this one, still work
    assert await _attempt(strict, team.slug, member.email, PASSWORD, fresh_ip()) == []
    assert await _attempt(strict, team.slug, team.members[1].email, PASSWORD, ip) == []


async def test_unfamiliar_addresses_together_get_a_bounded_number_of_guesses(
    strict: GraphQL, team: Org
) -> None:
    member = team.members[0]
    total = LIMITS["throttle_per_account_total"]
    # a botnet: every guess from an address of its own
    for _ in range(total):
        await _fail(strict, team.slug, member.email, fresh_ip())

    blocked = await _attempt(strict, team.slug, member.email, PASSWORD, fresh_ip())

    assert blocked == TOO_MANY
    assert await _attempt(strict, team.slug, team.members[1].email, PASSWORD, fresh_ip()) == []


async def test_an_address_is_bounded_across_accounts_and_tenants(
    strict: GraphQL, team: Org, other_org: Org
) -> None:
    ip = fresh_ip()
    for i in range(LIMITS["throttle_per_ip"]):
        await _fail(strict, team.slug, f"nobody{i}@x.example", ip)

    blocked = await sign_in(
        strict, other_org.slug, other_org.members[0].email, PASSWORD, from_ip(ip)
    )

    assert _codes(blocked) == TOO_MANY
    assert await _attempt(strict, team.slug, team.members[0].email, PASSWORD, fresh_ip()) == []


async def test_a_tenant_is_bounded_across_accounts_and_addresses(
    strict: GraphQL, team: Org
) -> None:
    for i in range(LIMITS["throttle_per_tenant"]):
        await _fail(strict, team.slug, f"guess{i}@x.example", fresh_ip())

    blocked = await _attempt(strict, team.slug, team.members[0].email, PASSWORD, fresh_ip())

    assert blocked == TOO_MANY


async def test_aliases_in_one_operation_each_count(strict: GraphQL, team: Org) -> None:
    member = team.members[0]
    fields = "\n".join(
        f'a{i}: signIn(input: {{tenant: "{team.slug}", email: "{member.email}",'
        f' password: "wrong {i}"}}) {{ accessToken {ERRORS} }}'
        for i in range(6)
    )
    response = await strict.http.post(
        "/graphql", json={"query": f"mutation {{ {fields} }}"}, headers=from_ip(fresh_ip())
    )

    data = response.json()["data"]
    codes = [data[f"a{i}"]["errors"][0]["code"] for i in range(6)]
    assert codes == INVALID * PER_ACCOUNT + TOO_MANY * (6 - PER_ACCOUNT)


async def test_unknown_tenants_and_accounts_are_throttled_alike(strict: GraphQL) -> None:
    slug, ip = f"missing-{secrets.token_hex(4)}", fresh_ip()
    results = [
        await _attempt(strict, slug, "who@x.example", "wrong password", ip)
        for _ in range(PER_ACCOUNT + 1)
    ]

    assert results == [INVALID] * PER_ACCOUNT + [TOO_MANY]


# -- Lockout is no weapon ---------------------------------------------------------------------


async def test_failures_from_other_addresses_never_lock_a_user_out_of_their_own(
    strict: GraphQL, team: Org
) -> None:
    # given a member who signed in from home once
    member, home = team.members[0], fresh_ip()
    assert await _attempt(strict, team.slug, member.email, PASSWORD, home) == []
    # when attackers from many addresses guess their password, and spray the tenant, until
    # every count that spans addresses is used up
    guesses = [
        await _attempt(strict, team.slug, member.email, f"guess {i}", fresh_ip())
        for i in range(3 * PER_ACCOUNT)
    ]
    sprayed = [
        await _attempt(strict, team.slug, f"who{i}@x.example", "guess", fresh_ip())
        for i in range(LIMITS["throttle_per_tenant"])
    ]

    at_home = await sign_in(strict, team.slug, member.email, PASSWORD, from_ip(home))

    # then the member still signs in from home...
    assert at_home["errors"] == []
    assert at_home["accessToken"]
    # ...while guessing was cut off at the documented limits
    assert guesses.count(INVALID) == LIMITS["throttle_per_account_total"]
    assert sprayed.count(INVALID) == LIMITS["throttle_per_tenant"] - guesses.count(INVALID)
    assert await _attempt(strict, team.slug, member.email, PASSWORD, fresh_ip()) == TOO_MANY


async def test_a_familiar_address_still_gets_only_a_few_guesses(strict: GraphQL, team: Org) -> None:
    member, home = team.members[0], fresh_ip()
    assert await _attempt(strict, team.slug, member.email, PASSWORD, home) == []

    await _fail(strict, team.slug, member.email, home, times=PER_ACCOUNT)

    assert await _attempt(strict, team.slug, member.email, PASSWORD, home) == TOO_MANY


# -- Every spelling is one identity -----------------------------------------------------------


async def test_every_spelling_of_the_tenant_counts_as_the_tenant(
    strict: GraphQL, team: Org
) -> None:
    member, ip, tid = team.members[0], fresh_ip(), team.id
    await _fail(strict, team.slug, member.email, ip, times=PER_ACCOUNT)
    spellings = [
        team.slug.upper(),
        f"  {team.slug} ",
        str(tid),
        str(tid).upper(),
        tid.hex,
        f"{{{tid}}}",
        f"urn:uuid:{tid}",
    ]

    results = {s: await _attempt(strict, s, member.email, PASSWORD, ip) for s in spellings}

    assert results == dict.fromkeys(spellings, TOO_MANY)


async def test_every_spelling_of_the_email_counts_as_the_account(
    strict: GraphQL, database: Database
) -> None:
    # given an account whose address has an i and a k, and an address that used it up
    slug = f"org-{secrets.token_hex(5)}"
    tenant = await create_tenant(database, slug=slug, name="Spellings", plan="enterprise")
    email = f"kim.ito@{slug}.example"
    async with database.transaction(tenant.id) as session:
        await create_user(session, email=email, display_name="Kim", password=PASSWORD)
    ip = fresh_ip()
    await _fail(strict, slug, email, ip, times=PER_ACCOUNT)
    spellings = [
        email.upper(),
        f"  {email.title()} ",
        # U+0130 (capital I with dot) and U+212A (Kelvin sign): PostgreSQL's lower() may make
        # them an i and a k, and so reach the account, where Python's lower() does not
        email.replace("i", "\u0130"),
        email.replace("k", "\u212a"),
    ]

    results = {s: await _attempt(strict, slug, s, PASSWORD, ip) for s in spellings}

    # then each spelling that reaches the account (as the database compares it) is refused
    # as the account is; one that reaches no account is a failed sign-in of nobody
    async with database.transaction(None, readonly=True) as session:
        reaches = {
            s: await session.fetchval("SELECT lower($1) = lower($2)", s.strip(), email)
            for s in spellings
        }
    assert results == {s: TOO_MANY if reaches[s] else INVALID for s in spellings}
    assert reaches[email.upper()]


async def test_an_unknown_tenant_is_counted_under_one_form_of_its_name(strict: GraphQL) -> None:
    missing, ip = uuid.uuid4(), fresh_ip()
    for _ in range(PER_ACCOUNT):
        assert await _attempt(strict, str(missing), "who@x.example", "guess", ip) == INVALID

    again = await _attempt(strict, f"{{{str(missing).upper()}}}", "WHO@x.example", "guess", ip)

    assert again == TOO_MANY


async def test_addresses_of_one_ipv6_network_share_its_count(strict: GraphQL, team: Org) -> None:
    # one subscriber's /64 holds 2^64 addresses: each is not a client of its own
    prefix = fresh_ipv6_prefix()
    for i in range(LIMITS["throttle_per_ip"]):
        await _fail(strict, team.slug, f"nobody{i}@x.example", f"{prefix}{i + 1:x}:0:0:1")

    blocked = await _attempt(strict, team.slug, team.members[0].email, PASSWORD, f"{prefix}:ffff")
    elsewhere = await _attempt(
        strict, team.slug, team.members[0].email, PASSWORD, f"{fresh_ipv6_prefix()}:1"
    )

    assert blocked == TOO_MANY
    assert elsewhere == []


async def test_an_ipv4_address_is_one_client_however_it_is_written(
    strict: GraphQL, team: Org
) -> None:
    ip = fresh_ip()
    for i in range(LIMITS["throttle_per_ip"]):
        await _fail(strict, team.slug, f"nobody{i}@x.example", f"::ffff:{ip}")

    assert await _attempt(strict, team.slug, team.members[0].email, PASSWORD, ip) == TOO_MANY


# -- Attempts are claimed before anything is verified -----------------------------------------


@pytest.mark.parametrize("store", STORES)
async def test_concurrent_sign_ins_verify_at_most_the_limit(
    store: str, app_settings: Settings, database: Database, tokens: TokenService
) -> None:
    # given an account and 40 wrong passwords sent at once from one address
    org = await new_org(database, tokens, password=PASSWORD)
    member, ip = org.members[0], fresh_ip()
    async with throttled_server(app_settings, database, store=store, **LIMITS) as gql:
        before = argon2_computations.value
        results = await asyncio.gather(
            *(sign_in(gql, org.slug, member.email, f"guess {i}", from_ip(ip)) for i in range(40))
        )
        verified = argon2_computations.value - before

    # then only the limit's worth of them reached Argon2; the others were refused unverified
    assert verified == PER_ACCOUNT
    codes = sorted(code for r in results for code in _codes(r))
    assert codes == INVALID * PER_ACCOUNT + TOO_MANY * (40 - PER_ACCOUNT)


@pytest.mark.parametrize("store", STORES)
async def test_concurrent_guesses_from_many_addresses_verify_at_most_the_total(
    store: str, app_settings: Settings, database: Database, tokens: TokenService
) -> None:
    org = await new_org(database, tokens, password=PASSWORD)
    member = org.members[0]
    async with throttled_server(app_settings, database, store=store, **LIMITS) as gql:
        before = argon2_computations.value
        results = await asyncio.gather(
            *(
                sign_in(gql, org.slug, member.email, f"guess {i}", from_ip(fresh_ip()))
                for i in range(30)
            )
        )
        verified = argon2_computations.value - before

    assert verified == LIMITS["throttle_per_account_total"]
    assert sum(_codes(r) == INVALID for r in results) == LIMITS["throttle_per_account_total"]


async def test_without_familiarity_every_network_is_a_stranger(
    app_settings: Settings, database: Database, team: Org
) -> None:
    member, home = team.members[0], fresh_ip()
    async with throttled_server(app_settings, database, **LIMITS, throttle_familiar_days=0) as gql:
        assert await _attempt(gql, team.slug, member.email, PASSWORD, home) == []
        for _ in range(LIMITS["throttle_per_account_total"]):
            await _fail(gql, team.slug, member.email, fresh_ip())

        assert await _attempt(gql, team.slug, member.email, PASSWORD, home) == TOO_MANY


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("192.0.2.7", "192.0.2.7"),
        (" 192.0.2.7 ", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::ffff", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        (None, "unknown"),
    ],
)
def test_a_client_is_its_network(address: str | None, network: str) -> None:
    assert client_network(address) == network


def test_an_unparseable_client_address_is_a_digest_of_bounded_length() -> None:
    odd = client_network("x" * 10_000)

    assert odd.startswith("other-")
    assert len(odd) < 64
    assert client_network("x" * 10_000) == odd != client_network("y")


# -- Properties of the canonical forms (pure; derandomized in CI) ----------------------------


def _respell(text: str, cases: list[bool]) -> str:
    """`text` with the characters at the True positions of `cases` in upper case."""
    return "".join(c.upper() if i < len(cases) and cases[i] else c for i, c in enumerate(text))


@given(
    tenant_id=st.uuids(),
    cases=st.lists(st.booleans(), max_size=36),
    hyphens=st.booleans(),
    wrapper=st.sampled_from(["{}", "{{{}}}", "urn:uuid:{}", " {} ", "\t{}\n"]),
)
def test_every_spelling_of_a_tenant_id_is_that_id(
    tenant_id: uuid.UUID, cases: list[bool], hyphens: bool, wrapper: str
) -> None:
    text = str(tenant_id) if hyphens else tenant_id.hex
    spelled = wrapper.format(_respell(text, cases))

    assert canonical_name(spelled) == tenant_id


@given(
    slug=st.from_regex(r"[a-z0-9][a-z0-9-]{0,30}[a-z0-9]", fullmatch=True),
    cases=st.lists(st.booleans(), max_size=32),
    padding=st.sampled_from(["", " ", "\t", "  \n"]),
)
def test_every_spelling_of_a_slug_is_that_slug(slug: str, cases: list[bool], padding: str) -> None:
    assume(not _is_uuid(slug))

    assert canonical_name(f"{padding}{_respell(slug, cases)}{padding}") == slug


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


@given(network=st.integers(0, 2**64 - 1), host=st.integers(0, 2**64 - 1))
def test_every_address_of_an_ipv6_64_is_that_network(network: int, host: int) -> None:
    address = ipaddress.IPv6Address(network << 64 | host)
    assume(address.ipv4_mapped is None)

    assert client_network(str(address)) == client_network(address.exploded.upper())
    assert client_network(str(address)) == str(ipaddress.IPv6Network((network << 64, 64)))


@given(address=st.ip_addresses(v=4))
def test_an_ipv4_address_written_as_ipv6_is_that_address(address: ipaddress.IPv4Address) -> None:
    assert client_network(f"::ffff:{address}") == client_network(str(address)) == str(address)
