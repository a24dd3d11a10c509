"""The `RateLimit` and `RateLimit-Policy` response fields, as draft-ietf-httpapi-ratelimit-headers
(the revision of September 2025) writes them: Structured Field Lists of named items.

    RateLimit-Policy: "tenant";q=120;w=60, "concurrency";q=2;qu="concurrent-requests"
    RateLimit: "tenant";r=119;t=1, "concurrency";r=1

For a token bucket, `q` is its burst and `w` the seconds it takes to refill; `r` the whole
tokens left and `t` the seconds until the next one is there (0: the bucket is full; on a
refusal, the Retry-After, which the draft asks never to be earlier than `t`).
"""

from __future__ import annotations

import math

from starlette.datastructures import MutableHeaders
from starlette.types import Message

from app.core.ratelimit import Rate, Take


def policy_item(name: str, rate: Rate) -> str:
    return f'"{name}";q={rate.burst};w={rate.refill_seconds}'


def limit_item(name: str, rate: Rate, take: Take) -> str:
    if not take.allowed:
        wait = take.retry_after
    elif take.remaining >= rate.burst:
        wait = 0
    else:
        # A bucket that is not full gains its next token within one refill interval.
        wait = max(1, math.ceil(1 / rate.per_second))
    return f'"{name}";r={take.remaining};t={wait}'


def concurrency_policy_item(slots: int) -> str:
    return f'"concurrency";q={slots};qu="concurrent-requests"'


def concurrency_limit_item(free: int) -> str:
    return f'"concurrency";r={free}'


def fields(policy: list[str], limit: list[str]) -> list[tuple[bytes, bytes]]:
    """The two fields as raw headers (none for no item)."""
    if not policy:
        return []
    return [
        (b"ratelimit-policy", ", ".join(policy).encode()),
        (b"ratelimit", ", ".join(limit).encode()),
    ]


def add_fields(message: Message, policy: list[str], limit: list[str]) -> None:
    """Add the two fields to a response's start message."""
    headers = MutableHeaders(scope=message)
    for name, value in fields(policy, limit):
        headers[name.decode()] = value.decode()
