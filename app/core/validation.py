"""Input checks shared by every domain: clear messages that name the offending field.

Values are checked here, before SQL, so the database's own CHECK constraints are a last
line of defence rather than the source of client-visible errors (whose text would name
constraints).
"""

from __future__ import annotations

import enum
import re
import unicodedata
from typing import Final, Literal, TypeVar, Union

from app.core.errors import Invalid
from app.core.origins import OriginError, origin

# PostgreSQL text cannot hold NUL; other control characters (except tab and newlines) are
# never legitimate in names, titles or bodies and make logs and UIs misbehave.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
T = TypeVar("T")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


def text(
    value: str, *, field: str, max_length: int, min_length: int = 1, strip: bool = True
) -> str:
    """A Unicode-normalised (NFC), optionally stripped string within the length bounds."""
    cleaned = unicodedata.normalize("NFC", value)
    if strip:
        cleaned = cleaned.strip()
    if _CONTROL.search(cleaned) or any(0xD800 <= ord(c) <= 0xDFFF for c in cleaned):
        raise Invalid(f"`{field}` contains characters that are not allowed", field=field)
    if len(cleaned) < min_length:
        what = "must not be empty" if min_length == 1 else f"needs at least {min_length} characters"
        raise Invalid(f"`{field}` {what}", field=field)
    if len(cleaned) > max_length:
        raise Invalid(f"`{field}` must be at most {max_length} characters", field=field)
    return cleaned


def email(value: str, *, field: str = "email") -> str:
    """A trimmed address of plausible shape; case is kept (uniqueness ignores it)."""
    cleaned = text(value, field=field, max_length=320, min_length=3)
    if not _EMAIL.match(cleaned):
        raise Invalid(f"`{field}` is not a valid email address", field=field)
    return cleaned


def origins(values: list[str], *, field: str, max_count: int) -> list[str]:
    """At most `max_count` web origins, as browsers send them (app/core/origins.py), in the
    order given, duplicates dropped."""
    # Counted before any parsing: an oversized list costs nothing to refuse.
    if len(values) > max_count:
        raise Invalid(f"`{field}` may hold at most {max_count} origins", field=field)
    found: list[str] = []
    for value in values:
        try:
            normalised = origin(value)
        except OriginError as error:
            raise Invalid(f"`{field}`: {value[:100]!r} {error}", field=field) from None
        if normalised not in found:
            found.append(normalised)
    return found


class _Missing(enum.Enum):
    MISSING = "missing"


# "Not given" in a partial update, as opposed to None ("set to null").
MISSING: Final = _Missing.MISSING
Patch = Union[T, Literal[_Missing.MISSING]]  # noqa: UP007 (a generic alias needs Union)


def given(changes: dict[str, object]) -> dict[str, object]:
    """The entries of a partial update that were actually given."""
    return {k: v for k, v in changes.items() if v is not MISSING}
