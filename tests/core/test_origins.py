"""Allowlist entries are single web origins, written the way browsers send `Origin`."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.origins import OriginError, origin


@pytest.mark.parametrize(
    ("given_text", "expected"),
    [
        ("https://app.example.com", "https://app.example.com"),
        ("  HTTPS://App.Example.COM  ", "https://app.example.com"),
        ("https://app.example.com:443", "https://app.example.com"),
        ("http://localhost:80", "http://localhost"),
        ("http://localhost:5173", "http://localhost:5173"),
        ("https://app.example.com:8443", "https://app.example.com:8443"),
        ("http://127.0.0.1:3000", "http://127.0.0.1:3000"),
        ("http://[0:0:0:0:0:0:0:1]:8080", "http://[::1]:8080"),
        ("https://xn--bcher-kva.example", "https://xn--bcher-kva.example"),
    ],
)
def test_origins_are_written_as_browsers_send_them(given_text: str, expected: str) -> None:
    assert origin(given_text) == expected


@pytest.mark.parametrize(
    ("given_text", "reason"),
    [
        ("", "at most"),
        ("app.example.com", "https://"),
        ("null", "https://"),
        ("file://", "https://"),
        ("ftp://app.example.com", "https://"),
        ("https://app.example.com/", "without a path"),
        ("https://app.example.com/app", "without a path"),
        ("https://*.example.com", "wildcards"),
        ("*", "https://"),
        ("https://user:pw@app.example.com", "one host"),
        ("https://app.example.com?x=1", "one host"),
        ("https://app.example.com#top", "one host"),
        ("https://app example.com", "one host"),
        ("https://bücher.example", "xn--"),
        ("https://app_1.example.com", "host name"),
        ("https://-app.example.com", "host name"),
        ("https://app..example.com", "host name"),
        ("https://app.example.com.", "host name"),
        ("https://127.1", "IPv4"),
        ("https://[::1", "malformed"),
        ("https://[fe80::1%25eth0]", "one host"),
        ("https://app.example.com:0", "1-65535"),
        ("https://app.example.com:70000", "malformed"),
        ("https://app.example.com:https", "malformed"),
        ("https://" + "a" * 300 + ".example", "at most"),
    ],
)
def test_anything_but_one_origin_is_refused_with_a_reason(given_text: str, reason: str) -> None:
    with pytest.raises(OriginError, match=re.escape(reason)):
        origin(given_text)


LABEL = st.from_regex(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?", fullmatch=True)


@given(
    scheme=st.sampled_from(["http", "https", "HTTPS", "Http"]),
    labels=st.lists(LABEL, min_size=1, max_size=4),
    port=st.none() | st.integers(min_value=1, max_value=65535),
)
def test_a_valid_origin_comes_back_in_its_one_canonical_form(
    scheme: str, labels: list[str], port: int | None
) -> None:
    host = ".".join(labels)
    if re.fullmatch(r"[0-9.]+", host):
        return  # all digits: an IPv4 address, covered above
    text = f"{scheme}://{host}" + ("" if port is None else f":{port}")

    result = origin(text)

    default = {"http": 80, "https": 443}[scheme.lower()]
    shown = "" if port in (None, default) else f":{port}"
    assert result == f"{scheme.lower()}://{host.lower()}{shown}"
    assert origin(result) == result


@given(text=st.text(max_size=60) | st.from_regex(r"https?://[ -~]{0,40}", fullmatch=True))
def test_whatever_is_accepted_is_one_plain_origin(text: str) -> None:
    try:
        result = origin(text)
    except OriginError:
        return

    assert re.fullmatch(r"https?://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:[0-9]{1,5})?", result), result
    assert origin(result) == result
