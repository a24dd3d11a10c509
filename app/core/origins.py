"""Web origins as browsers write them in the `Origin` header: `scheme://host[:port]`.

CORS compares an allowlist entry with the request's `Origin` header as plain strings (the
Fetch standard's serialisation is canonical), so every entry, from the server's setting or
a tenant's settings, is checked and put in that one form here: lowercase scheme and host,
no default port, nothing else. Wildcards, paths, credentials and the opaque `null` origin
are refused: each entry names exactly one origin.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
# One DNS label (letters, digits, hyphens; no hyphen at either end).
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Whatever could make an entry stand for more (or other) than one origin.
_NOT_AN_ORIGIN = re.compile(r"[\s*?#@%\\]")
MAX_ORIGIN_LENGTH = 300


class OriginError(ValueError):
    """Why a string is not a single web origin (the message is safe to show its author)."""


def origin(value: str) -> str:
    """`value` in the form a browser sends it: `https://app.example.com`, `http://[::1]:8080`.

    Raises OriginError (saying why) for anything that is not exactly one http(s) origin.
    """
    text = value.strip()
    if not text or len(text) > MAX_ORIGIN_LENGTH:
        raise OriginError(
            f"must be an origin of at most {MAX_ORIGIN_LENGTH} characters, such as "
            "https://app.example.com"
        )
    if not text.isascii() or not text.isprintable():
        raise OriginError("must be written in ASCII (a non-ASCII host name in its xn-- form)")
    scheme, separator, rest = text.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in _DEFAULT_PORTS:
        raise OriginError("must start with https:// or http://")
    if "/" in rest:
        raise OriginError("must be an origin without a path, such as https://app.example.com")
    if _NOT_AN_ORIGIN.search(rest):
        raise OriginError("must name one host: no wildcards, user names, queries or fragments")
    try:
        parts = urlsplit(f"{scheme}://{rest}")
        port = parts.port
    except ValueError:
        raise OriginError("has a malformed host or port") from None
    host = _host(parts.hostname or "", bracketed=rest.startswith("["))
    if port is not None and not 1 <= port <= 65535:
        raise OriginError("has a port outside 1-65535")
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _host(name: str, *, bracketed: bool) -> str:
    if bracketed:
        try:
            return f"[{ipaddress.IPv6Address(name).compressed}]"
        except ValueError:
            raise OriginError("has a malformed IPv6 address") from None
    if re.fullmatch(r"[0-9.]+", name):
        # Browsers rewrite shorthand like 127.1 to dotted quads; only the written-out form
        # compares equal to what they send.
        try:
            return str(ipaddress.IPv4Address(name))
        except ValueError:
            raise OriginError("has a malformed IPv4 address") from None
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise OriginError(
            "has a malformed host name (letters, digits, hyphens and dots; a non-ASCII "
            "name in its xn-- form)"
        )
    return name
