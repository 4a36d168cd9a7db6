"""URL identity: normalised URLs, and the key derived from them."""

import re

import pytest

from filters import contract


def test_url_key_is_stable():
    assert contract.url_key("https://a.example/1.jpg") == contract.url_key("https://a.example/1.jpg ")
    assert contract.url_key("https://a.example/1.jpg") != contract.url_key("https://a.example/2.jpg")
    assert len(contract.url_key("x")) == 16


def test_urls_that_normalise_alike_share_a_key():
    assert contract.url_key("HTTPS://A.Example:443/1.jpg#top") == contract.url_key("https://a.example/1.jpg")
    assert contract.url_key("https://a.example") == contract.url_key("https://a.example/")
    # Paths and queries are case-sensitive on most servers: they stay apart.
    assert contract.url_key("https://a.example/A.jpg") != contract.url_key("https://a.example/a.jpg")


@pytest.mark.parametrize("url, expected", [
    # scheme and host are case-insensitive; path and query are not; the fragment never reaches the server
    ("HTTP://Img.Example.COM/A.jpg?Size=L#top", "http://img.example.com/A.jpg?Size=L"),
    ("https://a.example", "https://a.example/"),
    # only the scheme's own default port goes
    ("http://a.example:80/x", "http://a.example/x"),
    ("https://a.example:443/x", "https://a.example/x"),
    ("https://a.example:80/x", "https://a.example:80/x"),
    ("http://a.example:443/x", "http://a.example:443/x"),
    ("http://a.example:8080/x", "http://a.example:8080/x"),
    ("ftp://Files.Example:21/x", "ftp://files.example:21/x"),
    # credentials are part of the request: kept, with their case
    ("http://User:Pw@A.Example/x", "http://User:Pw@a.example/x"),
    ("http://user@a.example/x", "http://user@a.example/x"),
    ("http://:secret@a.example/x", "http://:secret@a.example/x"),
    # IPv6 literals keep their brackets
    ("http://[2001:DB8::1]:8080/x", "http://[2001:db8::1]:8080/x"),
    ("http://[::1]/", "http://[::1]/"),
])
def test_normalise_url(url, expected):
    assert contract.normalise_url(url) == expected
    assert contract.normalise_url(expected) == expected  # normal forms are fixed points


@pytest.mark.parametrize("url", [
    "  http://a.example:99999/x  ",  # a port out of range: unparsable
    "http://[::1/x",                 # an unclosed IPv6 bracket
    "a.example/1.jpg",               # no scheme
    "HTTP:///1.jpg",                 # no host
    "file:///tmp/1.jpg",
])
def test_a_url_without_scheme_and_host_comes_back_stripped_and_unchanged(url):
    assert contract.normalise_url(url) == url.strip()


def test_url_key_is_lowercase_hex_and_stable_across_releases():
    # Keys are stored in every shard and compared across runs (resume, de-duplication): the key
    # of a URL must never change, so one is pinned here.
    key = contract.url_key("https://a.example/1.jpg")
    assert key == "5d0cbdef46b8ca17"
    assert re.fullmatch(r"[0-9a-f]{16}", key)
    assert contract.url_key("https://a.example/中文.jpg") == contract.url_key(" HTTPS://A.EXAMPLE/中文.jpg")
