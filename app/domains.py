"""The domains, the order they depend on each other in, and the tables each one owns.

One declaration that docs/architecture.md explains and tests/core/test_architecture.py
enforces: a domain imports only domains before it in `ORDER` (so the graph has no cycle),
never another domain's `queries` module, and only the owner's `queries.py` names a table in
SQL (everyone else calls the owner's service). Adding a table means adding its owner here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

# Lowest first. Below them all: app/api (the GraphQL toolkit) and app/core.
ORDER: Final = (
    "audit",
    "rbac",
    "tenants",
    "users",
    "auth",
    "mfa",
    "identity",
    "accounts",
    "idempotency",
    "projects",
    "tasks",
    "comments",
    "platform",
)

# Every table of the migrations and the one domain whose queries.py runs SQL on it.
OWNERS: Final[Mapping[str, str]] = {
    "account_tokens": "accounts",
    "outbox": "accounts",
    "audit_log": "audit",
    "platform_audit_log": "audit",
    "auth_sessions": "auth",
    "refresh_tokens": "auth",
    "comments": "comments",
    "idempotency_keys": "idempotency",
    "platform_idempotency_keys": "idempotency",
    "identity_providers": "identity",
    "user_identities": "identity",
    "mfa_recovery_codes": "mfa",
    "mfa_totp": "mfa",
    "platform_admins": "platform",
    "platform_sessions": "platform",
    "tenant_provisioning": "platform",
    "projects": "projects",
    "role_permissions": "rbac",
    "roles": "rbac",
    "user_roles": "rbac",
    "tasks": "tasks",
    "tenant_features": "tenants",
    "tenants": "tenants",
    "users": "users",
}
