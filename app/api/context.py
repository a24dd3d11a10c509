"""The typed per-operation context every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

import strawberry
from starlette.requests import Request

from app.api.loaders import Loaders
from app.core.db import Database, Session
from app.core.errors import Unauthenticated
from app.core.security import TokenService
from app.core.settings import Settings

if TYPE_CHECKING:
    from starlette.responses import Response


@dataclass(frozen=True)
class Principal:
    """Who is calling: a verified user of exactly one tenant."""

    user_id: UUID
    tenant_id: UUID


@dataclass
class Context:
    request: Request
    response: Response
    settings: Settings
    database: Database
    tokens: TokenService
    principal: Principal | None
    # The operation's one transaction, bound to the principal's tenant (or to none).
    session: Session
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.session)

    def require_principal(self) -> Principal:
        if self.principal is None:
            raise Unauthenticated("Sign in required")
        return self.principal


Info = strawberry.Info[Context, Any]
