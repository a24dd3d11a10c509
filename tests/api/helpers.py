"""Small helpers shared by the API tests."""

from __future__ import annotations

from datetime import datetime
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
