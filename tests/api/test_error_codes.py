"""Every domain error a mutation can return has its code in the SDL's ErrorCode enum: a new
error class without one would reach clients as an internal error instead of its code."""

from __future__ import annotations

from collections.abc import Iterator

import app.main  # noqa: F401  (imports every domain, so every error class exists)
from app.api.mutations import ErrorCode
from app.core.errors import DomainError

# Raised while validating the document, before any resolver: a top-level error only.
TOP_LEVEL_ONLY = {"QUERY_TOO_COMPLEX", "QUERY_TOO_DEEP", "QUERY_TOO_LARGE", "TOO_MANY_ALIASES"}


def subclasses(cls: type[DomainError]) -> Iterator[type[DomainError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


def test_every_domain_error_code_is_in_the_enum() -> None:
    codes = {cls.code for cls in subclasses(DomainError)} - TOP_LEVEL_ONLY
    assert len(codes) >= 13
    assert codes <= {code.value for code in ErrorCode}
