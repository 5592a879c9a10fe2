"""Outlets as data: the sites file (YAML) validated by pydantic models.

One entry per outlet. A bad entry gives one sentence naming the file, the entry and the field.

Examples
--------
>>> sites = load_sites(DEFAULT_SITES_FILE)
>>> sites.get("vnexpress").checked_against_saved_page
True
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from crawler.errors import SitesFileError
from crawler.settings import DEFAULT_SITES_FILE

__all__ = ["DEFAULT_SITES_FILE", "Selectors", "Site", "SitesFile", "load_sites"]

_NAME_RE = r"^[a-z0-9][a-z0-9_-]{0,63}$"


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"'{value}' is not an absolute http(s) URL")
    return value


def _check_selector(value: str) -> str:
    """CSS or XPath (XPath when it starts with '/' or '(')."""
    from parsel import Selector

    try:
        sel = Selector(text="<html></html>")
        if value.lstrip().startswith(("/", "(")):
            sel.xpath(value)
        else:
            sel.css(value)
    except Exception as exc:  # cssselect/lxml raise several types
        raise ValueError(f"'{value}' is not a valid CSS/XPath selector ({exc})") from exc
    return value


class Selectors(BaseModel):
    """Per-site overrides (CSS, or XPath when starting with '/'); each a list tried in order."""

    model_config = ConfigDict(extra="forbid")

    title: list[str] = Field(default_factory=list)
    lead: list[str] = Field(default_factory=list)
    body: list[str] = Field(default_factory=list)
    author: list[str] = Field(default_factory=list)
    date: list[str] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list, description="Boilerplate removed first.")

    @field_validator("title", "lead", "body", "author", "date", "remove", mode="before")
    @classmethod
    def _listify(cls, value):
        return [value] if isinstance(value, str) else value

    @field_validator("title", "lead", "body", "author", "date", "remove")
    @classmethod
    def _valid(cls, value: list[str]) -> list[str]:
        return [_check_selector(v) for v in value]


class Site(BaseModel):
    """One outlet."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME_RE, description="Short id used by --site.")
    title: str
    homepage: str
    scope: Literal["national", "provincial"]
    language: str = Field(default="vi", pattern=r"^[a-z]{2}$")
    start_urls: list[str] = Field(default_factory=list, description="Section pages.")
    feeds: list[str] = Field(default_factory=list, description="RSS/Atom feeds.")
    sitemaps: list[str] = Field(default_factory=list, description="(News) sitemaps or indexes.")
    allowed_domains: list[str] = Field(min_length=1)
    article_url_patterns: list[str] = Field(
        default_factory=list, description="Regexes; a link matching one is an article."
    )
    follow_url_patterns: list[str] = Field(
        default_factory=list, description="Regexes; pagination/section links to follow."
    )
    deny_url_patterns: list[str] = Field(default_factory=list)
    selectors: Selectors = Field(default_factory=Selectors)
    date_formats: list[str] = Field(
        default_factory=list, description="strptime formats for dates found by selectors."
    )
    timezone: str = "Asia/Ho_Chi_Minh"
    download_delay: float | None = Field(default=None, ge=0)
    concurrency: int | None = Field(default=None, ge=1, le=16)
    enabled: bool = True
    checked_against_saved_page: bool = Field(
        default=False, description="True only when the selectors were checked on a real page."
    )
    notes: str | None = None

    @field_validator("homepage")
    @classmethod
    def _homepage(cls, value: str) -> str:
        return _check_url(value)

    @field_validator("start_urls", "feeds", "sitemaps")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        return [_check_url(v) for v in value]

    @field_validator("allowed_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        for domain in value:
            if "/" in domain or not re.fullmatch(r"[A-Za-z0-9.-]+(:\d+)?", domain):
                raise ValueError(f"'{domain}' is not a bare domain name")
        return [d.lower() for d in value]

    @field_validator("article_url_patterns", "follow_url_patterns", "deny_url_patterns")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"'{pattern}' is not a valid regular expression ({exc})") from exc
        return value

    @field_validator("date_formats")
    @classmethod
    def _formats(cls, value: list[str]) -> list[str]:
        for fmt in value:
            if "%" not in fmt:
                raise ValueError(f"'{fmt}' is not a strptime format (no % directive)")
            try:
                datetime.now().strftime(fmt)
            except ValueError as exc:
                raise ValueError(f"'{fmt}' is not a valid strptime format ({exc})") from exc
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"'{value}' is not a known time zone") from exc
        return value

    @model_validator(mode="after")
    def _discovery(self) -> Site:
        if not (self.start_urls or self.feeds or self.sitemaps):
            raise ValueError("needs at least one of start_urls, feeds or sitemaps")
        for url in [self.homepage, *self.start_urls, *self.feeds, *self.sitemaps]:
            host = (urlsplit(url).hostname or "").lower()
            port = urlsplit(url).port
            hostport = f"{host}:{port}" if port else host
            if not any(
                host == d or host.endswith("." + d) or hostport == d for d in self.allowed_domains
            ):
                raise ValueError(f"URL '{url}' is outside allowed_domains {self.allowed_domains}")
        return self

    def is_article_url(self, url: str) -> bool:
        """True when ``url`` looks like an article of this outlet."""
        if any(re.search(p, url) for p in self.deny_url_patterns):
            return False
        if not self.article_url_patterns:
            return True
        return any(re.search(p, url) for p in self.article_url_patterns)

    def is_follow_url(self, url: str) -> bool:
        """True when ``url`` is a section/pagination page to follow."""
        if any(re.search(p, url) for p in self.deny_url_patterns):
            return False
        return any(re.search(p, url) for p in self.follow_url_patterns)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class SitesFile(BaseModel):
    """The whole sites file."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    sites: list[Site]

    @model_validator(mode="after")
    def _unique(self) -> SitesFile:
        seen: set[str] = set()
        for site in self.sites:
            if site.name in seen:
                raise ValueError(f"site name '{site.name}' appears twice")
            seen.add(site.name)
        return self

    def get(self, name: str) -> Site:
        for site in self.sites:
            if site.name == name:
                return site
        known = ", ".join(s.name for s in self.sites)
        raise SitesFileError(f"Unknown site '{name}'; the sites file has: {known}.")

    def for_url(self, url: str) -> Site | None:
        """The outlet whose allowed domains contain ``url``'s host, if any."""
        host = (urlsplit(url).hostname or "").lower()
        port = urlsplit(url).port
        for site in self.sites:
            for d in site.allowed_domains:
                if host == d or host.endswith("." + d) or f"{host}:{port}" == d:
                    return site
        return None

    def select(self, names: list[str] | tuple[str, ...] | None = None) -> list[Site]:
        """The named sites (all enabled ones when ``names`` is empty)."""
        if names:
            return [self.get(n) for n in names]
        return [s for s in self.sites if s.enabled]


def _describe(error: dict, data: object) -> str:
    loc = list(error.get("loc", ()))
    where = []
    if len(loc) >= 2 and loc[0] == "sites" and isinstance(loc[1], int):
        idx = loc[1]
        name = None
        if isinstance(data, dict) and isinstance(data.get("sites"), list):
            items = data["sites"]
            if idx < len(items) and isinstance(items[idx], dict):
                name = items[idx].get("name")
        where.append(f"sites[{idx}]" + (f" (name '{name}')" if name else ""))
        loc = loc[2:]
    if loc:
        where.append(".".join(str(p) for p in loc))
    msg = error.get("msg", "invalid").removeprefix("Value error, ")
    return (": ".join(where) + ": " if where else "") + msg


def parse_sites(data: object, source: str = "<sites>") -> SitesFile:
    """Validate already-loaded YAML data; raise :class:`SitesFileError` on the first problem."""
    try:
        return SitesFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = len(exc.errors()) - 1
        extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise SitesFileError(f"{source}: {_describe(first, data)}{extra}.") from exc


def load_sites(path: str | Path = DEFAULT_SITES_FILE) -> SitesFile:
    """Read and validate a sites file.

    Parameters
    ----------
    path : path of a YAML file with ``version: 1`` and a ``sites:`` list.

    Raises
    ------
    SitesFileError
        One sentence naming the file, the entry and the field that is wrong.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SitesFileError(f"Cannot read sites file {path}: {exc.strerror}.") from exc
    except yaml.YAMLError as exc:
        raise SitesFileError(f"{path} is not valid YAML: {exc}.") from exc
    if not isinstance(data, dict):
        raise SitesFileError(f"{path}: expected a mapping with a 'sites' list at the top.")
    return parse_sites(data, str(path))
