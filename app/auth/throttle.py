"""Throttling of attempts to prove an identity: passwords (signIn, changePassword,
platformSignIn), second factors (verifyMfa, TOTP enrolment) and external ID tokens
(exchangeToken). The model, with every count, key, limit and what an attacker can and
cannot do with it, is in docs/authentication.md ("Throttling").

- **Canonical identities.** Every count is keyed on what an attempt resolves to, never on
  how it was spelled: the tenant's id (for a name no tenant has, its one canonical form,
  `app.tenants.service.canonical_name`); the account's id (for an email no account has,
  the email as the account lookup compares it, which that lookup returns: a spelling that
  reaches an account always shares its counts, and one that reaches none is counted just
  as if it did, so the counts reveal nothing); and the client's network (an IPv4 address,
  an IPv6 /64, which one subscriber holds whole).
- **Reserve before verifying.** An attempt is claimed atomically on every count that
  applies (`Store.claim`: one Lua script in Redis, a lock in memory) before any password
  hash, code or token is checked. Only a success gives its claim back, so what stays
  counted is failures; N concurrent attempts verify at most the limit between them.
- **No lockout as a weapon.** Failures count per account *and client*; the counts that
  span clients (per account, per client network, per tenant) apply only to clients the
  account has not proven itself from recently. An attacker without the credentials
  therefore cannot lock a user out of the addresses they use.

Keys carry a digest, never an email; a tenant's keys carry its id (purged with it).
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from uuid import UUID

from app.core.errors import DomainError
from app.core.request_meta import RequestMeta
from app.core.settings import AuthSettings
from app.core.store import Claim, Limit, Store, StoreKey, platform_key, tenant_key


class TooManyAttempts(DomainError):
    code = "TOO_MANY_ATTEMPTS"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many failed attempts; try again in {retry_after} seconds")
        self.retry_after = retry_after


# The scope of platform administrators' accounts: '@' is never part of a tenant's canonical
# name (a slug or a UUID), so no tenant shares these counts.
PLATFORM_SCOPE = "@platform"


@dataclass(frozen=True)
class Account:
    """The identity an attempt tries to prove, in canonical form."""

    # Set for an existing tenant: its keys are the tenant's (tenant_key).
    tenant_id: UUID | None
    # The tenant id, the canonical form of a name no tenant has, or PLATFORM_SCOPE.
    scope: str
    # The account's id, or a digest of the email as the lookup compares it.
    subject: str

    def key(self, *parts: str) -> StoreKey:
        if self.tenant_id is not None:
            return tenant_key(self.tenant_id, "signin", *parts)
        return platform_key("signin", self.scope, *parts)


def _subject(account_id: UUID | None, compared_email: str) -> str:
    if account_id is not None:
        return str(account_id)
    return "email-" + hashlib.sha256(compared_email.encode()).hexdigest()[:32]


def tenant_account(tenant_id: UUID, account_id: UUID | None, compared_email: str) -> Account:
    """A user of an existing tenant: by id when the email found one, else by the email as
    the lookup compared it (`users.service.look_up`)."""
    return Account(tenant_id, str(tenant_id), _subject(account_id, compared_email))


def unknown_tenant_account(name: UUID | str, compared_email: str) -> Account:
    """An email in a tenant name that names no tenant (`canonical_name` of what was typed).
    The name is digested: whatever a client types, a key stays short."""
    digest = hashlib.sha256(str(name).encode(errors="replace")).hexdigest()[:32]
    return Account(None, f"name-{digest}", _subject(None, compared_email))


def platform_account(admin_id: UUID | None, compared_email: str) -> Account:
    """A platform administrator, by id when the email found one."""
    return Account(None, PLATFORM_SCOPE, _subject(admin_id, compared_email))


def client_network(ip: str | None) -> str:
    """The network a client address stands for: an IPv4 address itself (also when written as
    an IPv4-mapped IPv6 address), an IPv6 address's /64 (a subscriber's whole allocation:
    counting single addresses there would give each client 2^64 budgets), else a digest."""
    if ip is None:
        return "unknown"
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return "other-" + hashlib.sha256(ip.encode(errors="replace")).hexdigest()[:32]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


def _client_key(network: str) -> StoreKey:
    # Shared by every tenant and the platform: one client's failures anywhere add up.
    return platform_key("signin", "client", network)


@dataclass(frozen=True)
class Attempt:
    """A claimed attempt. Nothing needs doing when it fails: it stays counted. Call
    `succeeded` once the identity is proven."""

    _store: Store
    _claim: Claim
    # Where to remember that the account proved itself from this client (password attempts).
    _familiar: StoreKey | None = None
    _familiar_ttl_seconds: int = 0

    async def succeeded(self) -> None:
        """The identity was proven: the attempt is given back (only failures stay counted)
        and, for an account, its client becomes familiar."""
        await self._store.release(self._claim)
        if self._familiar is not None:
            await self._store.put(self._familiar, 1, ttl_seconds=self._familiar_ttl_seconds)


class SignInThrottle:
    """The counts of one server's settings over its store."""

    def __init__(self, store: Store, settings: AuthSettings) -> None:
        self._store = store
        self._settings = settings

    async def reserve(self, account: Account, meta: RequestMeta) -> Attempt:
        """Claim one attempt to prove `account` from the request's client, before anything
        is verified; TooManyAttempts (nothing counted) when a count that applies is used up.

        Always: failures of this account from this client network. Only when the account
        has not proven itself from this network within TENANTRY_THROTTLE_FAMILIAR_DAYS:
        its failures from all such networks, this network's failures on every account, and
        the scope's (tenant's) failures from all such networks.
        """
        settings = self._settings
        network = client_network(meta.ip)
        # Familiarity off (0 days): every client is a stranger.
        remember_days = settings.throttle_familiar_days
        familiar = account.key("familiar", account.subject, network) if remember_days else None
        limits = [
            Limit(
                account.key("account-client", account.subject, network),
                settings.throttle_per_account,
            )
        ]
        if familiar is None or not await self._store.get(familiar):
            limits += [
                Limit(account.key("account", account.subject), settings.throttle_per_account_total),
                Limit(_client_key(network), settings.throttle_per_ip),
                Limit(account.key("scope"), settings.throttle_per_tenant),
            ]
        claim = await self._claim(limits)
        return Attempt(self._store, claim, familiar, remember_days * 86400)

    async def reserve_client(self, meta: RequestMeta) -> Attempt:
        """Claim one attempt that names no account (an external ID token, whose user is
        unknown until it is verified): only the client network's count, so a forged or
        garbage token spends its sender's budget and nobody else's."""
        limit = Limit(_client_key(client_network(meta.ip)), self._settings.throttle_per_ip)
        return Attempt(self._store, await self._claim([limit]))

    async def reserve_second_factor(self, tenant_id: UUID, user_id: UUID) -> Attempt:
        """Claim one check of a user's TOTP or recovery code. Per user, whatever the client:
        only someone who proved the password holds a challenge, and a code space of 10^6
        must not get a budget per address."""
        key = tenant_key(tenant_id, "mfa-failures", str(user_id))
        return Attempt(
            self._store, await self._claim([Limit(key, self._settings.throttle_per_account)])
        )

    async def _claim(self, limits: list[Limit]) -> Claim:
        claim = await self._store.claim(
            limits, window_seconds=self._settings.throttle_window_seconds
        )
        if not claim.granted:
            raise TooManyAttempts(claim.resets_in)
        return claim
