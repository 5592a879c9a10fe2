"""The one generic news spider, driven by the sites file.

Discovery per outlet: RSS/Atom feeds, (news) sitemaps and sitemap indexes, section pages with
pagination (``rel=next`` links and ``follow_url_patterns``). Article links are recognised by
the outlet's ``article_url_patterns``. Incremental: URLs already in the database are not
requested again, and entries older than ``--since`` (feed/sitemap dates) are skipped.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import scrapy
from scrapy.http import Request, Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet.error import DNSLookupError, TCPTimedOutError, TimeoutError

from crawler.extraction import canonicalize_url, parse_date

if TYPE_CHECKING:
    from crawler.sites import Site
    from crawler.store import ArticleStore

log = logging.getLogger(__name__)

_HTML_TYPES = (b"text/html", b"application/xhtml")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


class NewsSpider(scrapy.Spider):
    """Crawl the given outlets. Arguments are validated objects, not strings."""

    name = "news"

    def __init__(
        self,
        sites: list[Site],
        store: ArticleStore | None = None,
        since: dt.datetime | None = None,
        max_pages_per_section: int = 3,
        skip_known: bool = True,
        distributed: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sites = list(sites)
        self.sites_by_name = {s.name: s for s in self.sites}
        self.store = store
        self.since = since
        self.max_pages_per_section = max_pages_per_section
        self.distributed = distributed
        self.known: set[str] = set()
        self.skip_known = skip_known
        domains: list[str] = []
        for site in self.sites:
            domains.extend(d.split(":")[0] for d in site.allowed_domains)
        self.allowed_domains = sorted(set(domains))

    # -- start --------------------------------------------------------------------------------
    async def start(self):
        for request in self._start_requests():
            yield request

    def _start_requests(self):
        if self.store is not None and self.skip_known:
            try:
                self.known = self.store.known_urls()
            except Exception as exc:  # noqa: BLE001 - crawl anyway; store stage spools
                log.warning("cannot read known URLs from the database: %s", exc)
            for site in self.sites:
                try:
                    self.store.ensure_source(site)
                except Exception as exc:  # noqa: BLE001
                    log.warning("cannot register source %s: %s", site.name, exc)
        # feeds are re-read on every run; in distributed mode the shared dupefilter decides
        again = not self.distributed
        for site in self.sites:
            for url in site.feeds:
                yield Request(
                    url,
                    callback=self.parse_feed,
                    errback=self.on_error,
                    dont_filter=again,
                    meta={"site": site.name, "feed": True},
                    priority=10,
                )
            for url in site.sitemaps:
                yield Request(
                    url,
                    callback=self.parse_sitemap,
                    errback=self.on_error,
                    dont_filter=again,
                    meta={"site": site.name},
                    priority=5,
                )
            for url in site.start_urls:
                yield Request(
                    url,
                    callback=self.parse_section,
                    errback=self.on_error,
                    dont_filter=again,
                    meta={"site": site.name, "page_no": 1},
                )

    # -- helpers ------------------------------------------------------------------------------
    def _site(self, response_or_request: Any) -> Site:
        return self.sites_by_name[response_or_request.meta["site"]]

    def _article_request(self, url: str, site: Site, feed_date: dt.datetime | None = None):
        url = canonicalize_url(url)
        if not self._in_domain(url, site):
            return None
        if self.skip_known and url in self.known:
            self.crawler.stats.inc_value("ioc/skipped/known_url")
            return None
        if self.since and feed_date and feed_date < self.since:
            self.crawler.stats.inc_value("ioc/skipped/older_than_since")
            return None
        return Request(
            url,
            callback=self.parse_article,
            errback=self.on_error,
            meta={"site": site.name, "feed_date": feed_date.isoformat() if feed_date else None},
        )

    @staticmethod
    def _in_domain(url: str, site: Site) -> bool:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        hostport = f"{host}:{parts.port}" if parts.port else host
        return any(
            host == d or host.endswith("." + d) or hostport == d for d in site.allowed_domains
        )

    def _failure(self, url: str, site: str | None, stage: str, reason: str) -> dict[str, Any]:
        return {"kind": "failure", "url": url, "site": site, "stage": stage, "reason": reason}

    # -- feeds --------------------------------------------------------------------------------
    def parse_feed(self, response: Response):
        site = self._site(response)
        try:
            root = _xml_root(response.body)
        except ValueError as exc:
            yield self._failure(response.url, site.name, "feed", f"the feed is not XML ({exc})")
            return
        if _local(root.tag) in ("urlset", "sitemapindex"):
            yield from self.parse_sitemap(response)
            return
        found = 0
        for entry in root.iter():
            tag = _local(entry.tag)
            if tag not in ("item", "entry"):
                continue
            link, date = None, None
            for child in entry:
                ctag = _local(child.tag)
                if ctag == "link":
                    link = (child.get("href") if child.get("href") else child.text) or link
                elif ctag in ("pubdate", "published", "updated", "date") and child.text:
                    date = (
                        date or parse_date(child.text.strip(), tz=site.zone) or _rfc822(child.text)
                    )
                elif ctag == "guid" and not link and (child.text or "").startswith("http"):
                    link = child.text
            if not link:
                continue
            found += 1
            request = self._article_request(urljoin(response.url, link.strip()), site, date)
            if request is not None:
                yield request
        if not found:
            yield self._failure(response.url, site.name, "feed", "the feed lists no items")

    # -- sitemaps -----------------------------------------------------------------------------
    def parse_sitemap(self, response: Response):
        site = self._site(response)
        body = response.body
        if body[:2] == b"\x1f\x8b":
            import gzip

            try:
                body = gzip.decompress(body)
            except OSError as exc:
                yield self._failure(response.url, site.name, "sitemap", f"bad gzip ({exc})")
                return
        try:
            root = _xml_root(body)
        except ValueError as exc:
            yield self._failure(response.url, site.name, "sitemap", f"not XML ({exc})")
            return
        kind = _local(root.tag)
        for node in root:
            loc, date = None, None
            for child in node.iter():
                ctag = _local(child.tag)
                if ctag == "loc" and child.text:
                    loc = child.text.strip()
                elif ctag in ("publication_date", "lastmod") and child.text and date is None:
                    date = parse_date(child.text.strip(), tz=site.zone)
            if not loc:
                continue
            if kind == "sitemapindex":
                if self.since and date and date < self.since:
                    continue
                yield Request(
                    loc,
                    callback=self.parse_sitemap,
                    errback=self.on_error,
                    meta={"site": site.name},
                )
            elif site.is_article_url(loc):
                request = self._article_request(loc, site, date)
                if request is not None:
                    yield request

    # -- section pages ------------------------------------------------------------------------
    def parse_section(self, response: Response):
        site = self._site(response)
        if not isinstance(response, TextResponse):
            yield self._failure(response.url, site.name, "section", "not an HTML page")
            return
        page_no = response.meta.get("page_no", 1)
        next_pages: list[str] = []
        for href in response.css("a::attr(href)").getall():
            href = href.strip()
            if not href or href.startswith(("#", "javascript:", "mailto:")):
                continue
            url = urljoin(response.url, href)
            if not self._in_domain(url, site):
                continue
            if site.is_follow_url(url):
                next_pages.append(url)
            elif site.is_article_url(url) and url.split("#")[0] != response.url:
                request = self._article_request(url, site)
                if request is not None:
                    yield request
        next_pages = (
            response.css('a[rel~="next"]::attr(href), link[rel~="next"]::attr(href)').getall()
            + next_pages
        )
        if page_no < self.max_pages_per_section:
            for href in dict.fromkeys(next_pages):
                yield Request(
                    urljoin(response.url, href),
                    callback=self.parse_section,
                    errback=self.on_error,
                    meta={"site": site.name, "page_no": page_no + 1},
                )

    # -- articles -----------------------------------------------------------------------------
    def parse_article(self, response: Response):
        site = self._site(response)
        ctype = response.headers.get(b"Content-Type", b"text/html").lower()
        if not any(t in ctype for t in _HTML_TYPES):
            yield self._failure(
                response.url, site.name, "fetch", f"not an HTML page ({ctype.decode('latin-1')})"
            )
            return
        encoding = None
        m = re.search(rb"charset=([\w.:-]+)", ctype)
        if m:
            encoding = m.group(1).decode("ascii")
        yield {
            "kind": "page",
            "url": response.url,
            "body": response.body,
            "encoding": encoding,
            "site": site.name,
            "status": response.status,
            "feed_date": response.meta.get("feed_date"),
        }

    # -- errors -------------------------------------------------------------------------------
    def on_error(self, failure: Any):
        request = failure.request
        site = request.meta.get("site")
        if failure.check(HttpError):
            reason = f"HTTP {failure.value.response.status}"
        elif failure.check(DNSLookupError):
            reason = "DNS lookup failed"
        elif failure.check(TimeoutError, TCPTimedOutError):
            reason = "timed out"
        else:
            reason = f"{failure.type.__name__}: {failure.getErrorMessage()}"[:500]
        stage = "fetch" if request.callback == self.parse_article else "discover"
        log.warning("%s failed: %s", request.url, reason)
        yield self._failure(request.url, site, stage, reason)


def _xml_root(body: bytes):
    import lxml.etree

    if not body.strip():
        raise ValueError("empty document")
    parser = lxml.etree.XMLParser(
        recover=False, resolve_entities=False, no_network=True, huge_tree=False
    )
    try:
        return lxml.etree.fromstring(body.strip(), parser=parser)
    except lxml.etree.XMLSyntaxError as exc:
        # feeds with a stray character: try a recovering parse before giving up
        parser = lxml.etree.XMLParser(recover=True, resolve_entities=False, no_network=True)
        root = lxml.etree.fromstring(body.strip(), parser=parser)
        if root is None or _local(root.tag) not in (
            "rss",
            "feed",
            "rdf",
            "urlset",
            "sitemapindex",
            "channel",
        ):
            raise ValueError(str(exc).splitlines()[0]) from exc
        return root


def _rfc822(value: str) -> dt.datetime | None:
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return None
