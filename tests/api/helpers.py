"""Small helpers shared by the API tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from app.api.relay import decode_global_id, encode_global_id
from tests.app_fixtures import Member


def user_gid(member: Member) -> str:
    return encode_global_id("User", member.id)


def pk(global_id: str) -> UUID:
    decoded = decode_global_id(global_id)
    assert decoded is not None, global_id
    return decoded[1]


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def refused_input(body: dict[str, Any]) -> str | None:
    """The field named when a request was refused before running for a string no service
    could store (NUL, a lone surrogate: app/api/inputs.py); None when the operation ran."""
    if body.get("data") is not None:
        return None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "INVALID", body
    field: str = error["extensions"]["field"]
    return field
