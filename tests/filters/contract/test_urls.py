"""URL identity: normalised URLs, and the key derived from them."""

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
