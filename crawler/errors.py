"""Exceptions of the web side.

Data errors (a bad page, a refused image) become counted statuses in the pipeline; these
exceptions carry them from the place they are found to the place they are counted.
"""

from __future__ import annotations


class CrawlerError(Exception):
    """Base class of the crawler's own errors."""


class SearchBlocked(CrawlerError):
    """The search engine answered with its anti-spider page (or a redirect to a captcha).

    The query is not "without results": the crawl backs off, retries a bounded number of times
    and then records the query as blocked.
    """


class SearchResponseError(CrawlerError):
    """A search answer that cannot be read as a result page (HTML instead of JSON, a JSON value
    that is not an object, a `data` field that is not a list)."""


class UnsafeDestination(OSError):
    """A download destination resolves to a loopback, private, link-local, multicast or otherwise
    non-public address that is not on the allow-list.

    It subclasses OSError so that aiohttp hands it through its connector errors unchanged
    (as `ClientConnectorError.os_error`) when a resolver raises it.
    """


class QueryFileError(CrawlerError, ValueError):
    """A query file that cannot be read as UTF-8 text, one query per line."""
