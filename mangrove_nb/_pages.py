"""Reading the API's list endpoints: every page, in order, never silently truncated.

``Pagination`` is the part of ``HttpClient`` that turns a list endpoint into its items: page 1 first, then,
when its ``info`` block is self-consistent, the other pages concurrently (at most ``max_concurrent_pages`` at
once); otherwise the chain of ``next_page`` links, one page at a time. A link that does not advance, more
pages than ``max_pages``, or a listing whose total keeps changing while it is read is an error, never a
short list. It sends nothing itself: every page is one ``HttpClient.get`` (retries, rate limit, deadline).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

from .errors import MalformedResponseError, MangroveError, secret_safe_logger

if TYPE_CHECKING:
    from .settings import Settings

log = secret_safe_logger("mangrove_nb")

# A listing whose total changes while it is being read is read again, at most this many times.
LISTING_ATTEMPTS = 3


@dataclass(frozen=True)
class Page:
    """One page of a list endpoint: its items and its ``info`` block (``None`` when the server sent none).

    ``size`` is how many items the server sent. A page read with a ``digest`` keeps only what the digest made
    of its items (``items`` is then empty).
    """

    items: list[Any]
    info: Mapping[str, Any] | None
    size: int
    digest: Any = None


class Pagination:
    """``list_all``, ``read_until``, ``read_listing`` and ``page`` for ``HttpClient`` (which provides ``get``,
    ``settings`` and its clock)."""

    settings: Settings
    _clock: Callable[[], float]

    if TYPE_CHECKING:
        def get(self, path: str, params: Mapping[str, Any] | None = None, *, deadline: float | None = None
                ) -> Any: ...

    def page(self, path: str, params: Mapping[str, Any], number: int, *, deadline: float,
             digest: Callable[[list[Any]], Any] | None = None) -> Page:
        """Page ``number`` of a list endpoint; with ``digest``, its items are replaced by ``digest(items)``."""
        query = {**params, "page": number, "page_size": params.get("page_size", self.settings.page_size)}
        body = self.get(path, query, deadline=deadline)
        items = data_list(body, "GET", path)
        info = body.get("info") if isinstance(body, dict) else None
        if info is not None and not isinstance(info, dict):
            raise MalformedResponseError(f"GET {path}: 'info' is not an object.", method="GET", url=path)
        if digest is None:
            return Page(items, info, len(items))
        return Page([], info, len(items), digest(items))

    def list_all(self, path: str, params: Mapping[str, Any]) -> list[Any]:
        """Every item of a list endpoint, following ``info.next_page``; never silently truncated.

        A missing ``info`` is one page. Once page 1 gives a consistent ``total_pages``, the other pages are
        fetched concurrently (at most ``max_concurrent_pages`` at once, paced by the rate limit). Items are
        de-duplicated by id; if the total changes while reading, the listing is read again.
        """
        pages = self._read_listing(path, params, None)
        return _unique(item for p in pages for item in p.items)

    def read_until(self, path: str, params: Mapping[str, Any], enough: Callable[[list[Any]], bool]) -> list[Any]:
        """The items of a list endpoint's pages in order, stopping after the first page where ``enough(items)``
        is true (or the last page). Follows ``next_page`` with the same checks as ``list_all`` (a link that does
        not advance, more than ``max_pages``), one page at a time; repeated ids are dropped."""
        deadline = self._clock() + self.settings.call_deadline
        params = dict(params)
        current = self.page(path, params, 1, deadline=deadline)
        items, seen = list(current.items), {1}
        while not enough(current.items):
            following = _next_page(current, path)
            if following is None:
                break
            if following in seen or len(seen) >= self.settings.max_pages:
                raise MalformedResponseError(f"GET {path}: next_page {following} does not advance or passes "
                                             f"max_pages ({self.settings.max_pages}); the server's pagination is "
                                             "broken.", method="GET", url=path)
            seen.add(following)
            current = self.page(path, params, following, deadline=deadline)
            items.extend(current.items)
        return _unique(iter(items))

    def read_listing(self, path: str, params: Mapping[str, Any], digest: Callable[[list[Any]], Any]
                     ) -> list[Any] | None:
        """Every page of a list endpoint, as ``list_all`` reads them, each kept only as ``digest(items)``.

        ``digest`` runs in the thread that fetched the page, as soon as it arrives, and the page's parsed
        items are dropped. Keeping a few column lists instead of thousands of dicts matters: while the other
        pages arrive, the garbage collector no longer re-scans every batch read so far (for 5,000 batches,
        about 50 collections and a full one of ~45 ms every other listing), and the memory they took is
        freed page by page. ``digest`` must be pure and thread-safe; it returns None for items it cannot take.

        Returns the digests in page order, or None when ``digest`` returned None for some page: then read
        the listing with ``list_all``. De-duplication is the caller's (the digests hold the ids).
        """
        pages = self._read_listing(path, params, digest)
        digests = [page.digest for page in pages]
        return None if any(d is None for d in digests) else digests

    def _read_listing(self, path: str, params: Mapping[str, Any],
                      digest: Callable[[list[Any]], Any] | None) -> list[Page]:
        deadline = self._clock() + self.settings.call_deadline
        for _attempt in range(LISTING_ATTEMPTS):
            pages = self._read_pages(path, dict(params), deadline, digest)
            totals = [p.info.get("total_items") for p in pages if p.info is not None]
            if all(t == totals[0] for t in totals):
                return pages
            log.info("GET %s changed while it was read; reading it again", path)
        raise MangroveError(f"GET {path} kept changing while it was read ({LISTING_ATTEMPTS} attempts); "
                            "try again when no generation is running.")

    def _read_pages(self, path: str, params: dict[str, Any], deadline: float,
                    digest: Callable[[list[Any]], Any] | None) -> list[Page]:
        first = self.page(path, params, 1, deadline=deadline, digest=digest)
        if first.info is None:
            return [first]
        return [first, *self._following_pages(path, params, first, deadline, digest)]

    def _following_pages(self, path: str, params: dict[str, Any], first: Page, deadline: float,
                         digest: Callable[[list[Any]], Any] | None) -> list[Page]:
        info = first.info or {}
        planned = _planned_pages(info, first.size)
        if planned > self.settings.max_pages:
            raise MalformedResponseError(f"GET {path} reports {planned} pages, more than max_pages "
                                         f"({self.settings.max_pages}); narrow the request or raise max_pages.",
                                         method="GET", url=path)
        fetched: dict[int, Page] = {}
        if planned > 2 and self.settings.max_concurrent_pages > 1:
            fetched = self._prefetch(path, params, range(2, planned + 1), deadline, digest)
        # Walk the chain of next_page links, using prefetched pages where they are and fetching the rest.
        pages: list[Page] = []
        current, seen = first, {1}
        while True:
            following = _next_page(current, path)
            if following is None:
                return pages
            if following in seen:
                raise MalformedResponseError(f"GET {path}: next_page {following} does not advance (already read); "
                                             "the server's pagination is broken.", method="GET", url=path)
            if len(seen) >= self.settings.max_pages:
                raise MalformedResponseError(f"GET {path} has more than max_pages ({self.settings.max_pages}) pages; "
                                             "narrow the request or raise max_pages.", method="GET", url=path)
            seen.add(following)
            current = fetched.get(following) or self.page(path, params, following, deadline=deadline, digest=digest)
            pages.append(current)

    def _prefetch(self, path: str, params: dict[str, Any], numbers: range, deadline: float,
                  digest: Callable[[list[Any]], Any] | None) -> dict[int, Page]:
        """Pages fetched concurrently; after the first failure, the pages not yet started are not requested."""
        pool = ThreadPoolExecutor(max_workers=min(self.settings.max_concurrent_pages, len(numbers)),
                                  thread_name_prefix="mangrove-page")
        try:
            futures = {n: pool.submit(self.page, path, params, n, deadline=deadline, digest=digest) for n in numbers}
            return {number: future.result() for number, future in futures.items()}
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def data_list(body: Any, method: str, path: str) -> list[Any]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise MalformedResponseError(f"{method} {path} did not answer with a 'data' list as documented.",
                                     method=method, url=path)
    return data


def _count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _planned_pages(info: Mapping[str, Any], first_items: int) -> int:
    """How many pages to prefetch: ``total_pages`` when the info block is self-consistent, else 1."""
    total_pages, total_items, size = info.get("total_pages"), info.get("total_items"), info.get("page_size")
    if not (_count(total_pages) and _count(total_items) and _count(size)):
        return 1
    try:
        expected = max(1, math.ceil(total_items / size)) if size >= 1 else None
    except OverflowError:  # a total too large to divide as a float: not a page count to trust
        return 1
    if expected is None or total_pages != expected or (total_pages > 1 and first_items != size):
        return 1  # the documentation shows inconsistent info blocks: then trust next_page alone
    return total_pages


def _next_page(page: Page, path: str) -> int | None:
    if page.info is None:
        return None
    following, current = page.info.get("next_page"), page.info.get("current_page")
    if following is None:
        return None
    if isinstance(following, bool) or not isinstance(following, int) or (
            isinstance(current, int) and following <= current):
        raise MalformedResponseError(f"GET {path}: next_page {following!r} does not advance from page {current!r}; "
                                     "the server's pagination is broken.", method="GET", url=path)
    return following


def _unique(items: Iterator[Any]) -> list[Any]:
    """Items in order, dropping repeats of an id (an insertion during a listing shifts later pages)."""
    seen: set[Any] = set()
    unique = []
    for item in items:
        key = item.get("id") if isinstance(item, dict) else None
        if key is not None:
            if isinstance(key, bool) or not isinstance(key, str | int):
                raise MalformedResponseError(f"A listed item's id is a {type(key).__name__}, not a string or an "
                                             "integer, so the answer does not match the documented Mangrove API.",
                                             field="id")
            if key in seen:
                continue
            seen.add(key)
        unique.append(item)
    return unique
