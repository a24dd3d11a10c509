"""Input checks shared by every domain: clear messages that name the offending field.

Values are checked here, before SQL, so the database's own CHECK constraints are a last
line of defence rather than the source of client-visible errors (whose text would name
constraints).
"""

from __future__ import annotations

import enum
import json
import re
import unicodedata
from typing import Final, Literal, TypeVar, Union

from app.core.errors import Invalid
from app.core.origins import OriginError, origin

# PostgreSQL text cannot hold NUL, and UTF-8 cannot hold a lone surrogate (which JSON's
# "\ud800" escape carries into a Python str): no input may contain either (the GraphQL
# boundary checks every string argument, app/api/inputs.py).
_UNENCODABLE = re.compile("[\x00\ud800-\udfff]")
# Other control characters (except tab and newlines) are never legitimate in names, titles or
# bodies and make logs and UIs misbehave.
_CONTROL = re.compile(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]")
T = TypeVar("T")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


def text(
    value: str, *, field: str, max_length: int, min_length: int = 1, strip: bool = True
) -> str:
    """A Unicode-normalised (NFC), optionally stripped string within the length bounds."""
    cleaned = unicodedata.normalize("NFC", value)
    if strip:
        cleaned = cleaned.strip()
    if _CONTROL.search(cleaned) or not encodable(cleaned):
        raise not_allowed(field)
    if len(cleaned) < min_length:
        what = "must not be empty" if min_length == 1 else f"needs at least {min_length} characters"
        raise Invalid(f"`{field}` {what}", field=field)
    if len(cleaned) > max_length:
        raise Invalid(f"`{field}` must be at most {max_length} characters", field=field)
    return cleaned


def encodable(value: str) -> bool:
    """Whether the database and UTF-8 can hold `value` (no NUL, no lone surrogate)."""
    return _UNENCODABLE.search(value) is None


def not_allowed(field: str) -> Invalid:
    """The error for a string holding characters no input may contain."""
    return Invalid(f"`{field}` contains characters that are not allowed", field=field)


def json_value(raw: str | bytes) -> object:
    """`raw` parsed as JSON, or ValueError for anything that is not JSON: bytes that are not
    UTF-8 (UnicodeDecodeError), malformed text (JSONDecodeError), and nesting deeper than the
    parser's recursion limit (a RecursionError, which is no ValueError: uncaught, it would be
    an internal error). For every JSON a client can send, opened or wrapped in a token."""
    # Strict UTF-8, as RFC 8259 requires between systems (a leading byte order mark is
    # ignored, as it allows): json.loads would also take UTF-16 and, with "surrogatepass",
    # surrogates encoded in UTF-8 (which no UTF-8 text holds).
    text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


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
