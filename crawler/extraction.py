"""Article extraction from one HTML page, usable without Scrapy.

Combines several sources and lets the most reliable one win per field:

* per-site overrides (CSS/XPath selectors of the sites file) first;
* structured metadata: JSON-LD (NewsArticle & co., ``@graph`` too), Open Graph / ``article:``
  meta tags, ``itemprop``, ``<link rel=canonical>``;
* trafilatura (precision mode) for the body, with the JSON-LD ``articleBody`` as a fallback;
* the lead paragraph (sapo) found by the site selector or generic class names (``sapo``,
  ``lead``, ``description``, ``standfirst``...), kept even when it sits outside the body
  container, which trafilatura drops;
* dates with their offset; naive dates are local to the site's time zone
  (Asia/Ho_Chi_Minh, +07:00, for Vietnamese outlets);
* NFC and legacy-encoding repair (:mod:`crawler.textnorm`, backed by :mod:`nlp.text`).

Examples
--------
>>> html = '''<html lang="vi"><head><title>X</title>
... <script type="application/ld+json">{"@type": "NewsArticle", "headline": "Tin Phủ Lý",
...  "datePublished": "2025-08-01 08:30", "author": {"@type": "Person", "name": "Lan Anh"}}
... </script></head><body><h1>Tin Phủ Lý</h1><p class="sapo">Sáng nay, phường Phủ Lý ra quân
... dọn vệ sinh môi trường trên toàn địa bàn.</p><article><p>Hàng trăm người dân đã tham gia
... dọn rác dọc bờ sông Đáy và các tuyến phố chính của phường Phủ Lý.</p></article>
... </body></html>'''
>>> art = extract_article(html, url="https://example.vn/tin-phu-ly-1.html")
>>> art.title, art.author, art.published.isoformat()
('Tin Phủ Lý', 'Lan Anh', '2025-08-01T08:30:00+07:00')
>>> art.lead[:8]
'Sáng nay'
"""

from __future__ import annotations

import copy
import datetime as dt
import gzip
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import lxml.etree
import lxml.html
import trafilatura
from cssselect import GenericTranslator, SelectorError

from crawler.errors import ExtractionError
from crawler.textnorm import decode_html, normalize, vietnamese_ratio
from nlp.text import decode_tcvn3, decode_vni

if TYPE_CHECKING:
    from crawler.sites import Site, SitesFile

__all__ = [
    "Article",
    "canonicalize_url",
    "extract_article",
    "extract_file",
    "parse_date",
]

DEFAULT_TZ = "Asia/Ho_Chi_Minh"
MAX_PAGE_BYTES = 8 * 1024 * 1024
MIN_BODY_CHARS = 50

_ARTICLE_TYPES = {
    "newsarticle",
    "article",
    "reportagenews",
    "blogposting",
    "analysisnewsarticle",
    "opinionnewsarticle",
    "backgroundnewsarticle",
    "reviewnewsarticle",
    "webpage",
    "socialmediaposting",
    "liveblogposting",
    "scholarlyarticle",
    "techarticle",
}
_LEAD_CLASS_RE = re.compile(
    r"(^|[\s_-])(sapo|chapeau|standfirst|lead|lede|summary|excerpt|description|intro|"
    r"teaser|deck|subtitle|sub-title|subhead)([\s_-]|$)",
    re.IGNORECASE,
)
_LEAD_TAGS = ("p", "div", "h2", "h3", "span", "section")
_BYLINE_XPATH = (
    "//*[@rel='author']|//*[@itemprop='author']//*[@itemprop='name']|//*[@itemprop='author']"
    "|//*[contains(concat(' ', normalize-space(@class), ' '), ' author-name ')]"
    "|//*[contains(concat(' ', normalize-space(@class), ' '), ' byline ')]"
    "|//*[contains(concat(' ', normalize-space(@class), ' '), ' author ')]"
)
_LEGACY_FONT_RE = re.compile(
    r"\.vn(time|arial|avant|helve|univer)|vni[- ](times|helve|aptima)", re.I
)
_NAME_LINE_RE = re.compile(r"(?:[A-ZÀ-ỸĐ][a-zà-ỹđ]+\s){1,3}[A-ZÀ-ỸĐ][a-zà-ỹđ]+")
_TRACKING_PARAMS = re.compile(r"^(utm_\w+|fbclid|gclid|zarsrc|mc_cid|mc_eid|_ga|ref|cmpid)$", re.I)


@dataclass
class Article:
    """An extracted article. ``published`` is timezone-aware (or None when not found)."""

    url: str | None
    canonical_url: str | None
    title: str | None
    published: dt.datetime | None
    author: str | None
    lead: str | None
    text: str
    language: str | None
    modified: dt.datetime | None = None
    site_name: str | None = None
    description: str | None = None
    section: str | None = None
    tags: list[str] = field(default_factory=list)
    image: str | None = None
    encoding: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_record(self, source: str | None = None) -> dict[str, Any]:
        """The ``ioc crawl extract`` JSON contract (plus nothing else)."""
        return {
            "source": source,
            "url": self.canonical_url or self.url,
            "title": self.title,
            "published": self.published.isoformat() if self.published else None,
            "author": self.author,
            "lead": self.lead,
            "text": self.text,
            "language": self.language,
        }

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["published"] = self.published.isoformat() if self.published else None
        d["modified"] = self.modified.isoformat() if self.modified else None
        return d

    @property
    def full_text(self) -> str:
        """Lead + body (the lead only when the body does not already start with it)."""
        if self.lead and self.lead[:60] not in self.text[: len(self.lead) + 200]:
            return f"{self.lead}\n{self.text}".strip()
        return self.text


# --------------------------------------------------------------------------------------------
# URLs
# --------------------------------------------------------------------------------------------


def canonicalize_url(url: str, base: str | None = None) -> str:
    """Absolute URL with lower-case host, no fragment, no tracking parameters, sorted query.

    >>> canonicalize_url("HTTPS://Example.VN:443/a?utm_source=x&b=2&a=1#top")
    'https://example.vn/a?a=1&b=2'
    """
    if base:
        url = urljoin(base, url)
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    query = sorted(
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not _TRACKING_PARAMS.match(k)
    )
    path = parts.path or "/"
    return urlunsplit((scheme, host, path, urlencode(query), ""))


# --------------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------------

_VI_DATE_RE = re.compile(
    r"(?P<d>\d{1,2})[/.-](?P<m>\d{1,2})[/.-](?P<y>\d{4})"
    r"(?:\D{0,12}?(?P<H>\d{1,2})[:hg](?P<M>\d{2})(?::(?P<S>\d{2}))?)?"
)
_TIME_FIRST_RE = re.compile(
    r"(?P<H>\d{1,2})[:hg](?P<M>\d{2})(?::(?P<S>\d{2}))?\D{0,12}?"
    r"(?P<d>\d{1,2})[/.-](?P<m>\d{1,2})[/.-](?P<y>\d{4})"
)
_GMT_RE = re.compile(r"(?:GMT|UTC)\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?", re.I)


def _aware(value: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    return value.replace(tzinfo=tz) if value.tzinfo is None else value


def parse_date(
    value: str | None, formats: list[str] | tuple[str, ...] = (), tz: str | ZoneInfo = DEFAULT_TZ
) -> dt.datetime | None:
    """Parse a date string into an aware datetime; naive values are local to ``tz``.

    Tries the given strptime ``formats``, ISO 8601, then Vietnamese ``dd/mm/yyyy[, HH:MM]``
    (either order, with an optional ``GMT+7``). Returns None when nothing matches.

    >>> parse_date("2025-10-22T19:25:52+07:00").isoformat()
    '2025-10-22T19:25:52+07:00'
    >>> parse_date("Thứ tư, 22/10/2025, 19:25 (GMT+7)").isoformat()
    '2025-10-22T19:25:00+07:00'
    >>> parse_date("2025-10-22 19:25").isoformat()
    '2025-10-22T19:25:00+07:00'
    """
    if not value:
        return None
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    text = " ".join(str(value).split())
    for fmt in formats:
        for candidate in (text, _strip_weekday(text)):
            try:
                return _aware(dt.datetime.strptime(candidate, fmt), zone)
            except ValueError:
                continue
    iso = text.replace("Z", "+00:00") if text.endswith("Z") else text
    try:
        return _aware(dt.datetime.fromisoformat(iso), zone)
    except ValueError:
        pass
    offset = None
    gmt = _GMT_RE.search(text)
    if gmt:
        sign = 1 if gmt.group(1) == "+" else -1
        offset = dt.timezone(
            sign * dt.timedelta(hours=int(gmt.group(2)), minutes=int(gmt.group(3) or 0))
        )
    for rx in (_TIME_FIRST_RE, _VI_DATE_RE):
        m = rx.search(text)
        if not m:
            continue
        try:
            out = dt.datetime(
                int(m.group("y")),
                int(m.group("m")),
                int(m.group("d")),
                int(m.group("H") or 0),
                int(m.group("M") or 0),
                int(m.group("S") or 0),
            )
        except (TypeError, ValueError):
            continue
        return out.replace(tzinfo=offset) if offset else _aware(out, zone)
    return None


def _strip_weekday(text: str) -> str:
    return re.sub(r"^(Thứ\s+\w+|Chủ\s+nhật|CN)\s*,\s*", "", text, flags=re.I)


# --------------------------------------------------------------------------------------------
# Page parsing helpers
# --------------------------------------------------------------------------------------------


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _parse_tree(html: str) -> lxml.html.HtmlElement:
    html = re.sub(r"^\s*<\?xml[^>]*\?>", "", html)
    if not html.strip():
        raise ExtractionError("the page is empty")
    try:
        tree = lxml.html.document_fromstring(html)
    except (lxml.etree.ParserError, ValueError) as exc:
        raise ExtractionError(f"the page cannot be parsed as HTML ({exc})") from exc
    return tree


def _text_of(el: lxml.html.HtmlElement) -> str:
    parts = []
    for t in el.itertext():
        parts.append(t)
    return " ".join("".join(parts).split())


_XPATH_CACHE: dict[str, str] = {}


def _to_xpath(selector: str) -> str:
    if selector.lstrip().startswith(("/", "(")):
        return selector
    if selector not in _XPATH_CACHE:
        try:
            _XPATH_CACHE[selector] = GenericTranslator().css_to_xpath(selector)
        except SelectorError as exc:
            raise ExtractionError(f"invalid selector '{selector}': {exc}") from exc
    return _XPATH_CACHE[selector]


def _select(tree: lxml.html.HtmlElement, selector: str) -> list[Any]:
    try:
        return tree.xpath(_to_xpath(selector))
    except lxml.etree.XPathError as exc:
        raise ExtractionError(f"invalid selector '{selector}': {exc}") from exc


def _first_text(tree: lxml.html.HtmlElement, selectors: list[str]) -> str | None:
    for selector in selectors:
        for el in _select(tree, selector):
            text = el if isinstance(el, str) else _text_of(el)
            text = " ".join(str(text).split())
            if text:
                return text
    return None


def _meta(tree: lxml.html.HtmlElement) -> dict[str, str]:
    out: dict[str, str] = {}
    for el in tree.iter("meta"):
        key = el.get("property") or el.get("name") or el.get("itemprop") or el.get("http-equiv")
        content = el.get("content")
        if key and content and key.lower() not in out:
            out[key.lower()] = content.strip()
    return out


def _walk_jsonld(node: Any, out: list[dict[str, Any]]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk_jsonld(item, out)
    elif isinstance(node, dict):
        if "@graph" in node:
            _walk_jsonld(node["@graph"], out)
        out.append(node)


def _jsonld_articles(tree: lxml.html.HtmlElement) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    for script in tree.xpath("//script[contains(translate(@type, 'LDJSON', 'ldjson'), 'ld+json')]"):
        raw = (script.text or "").strip()
        if not raw:
            continue
        try:
            data = json.loads(raw, strict=False)
        except ValueError:
            try:  # a trailing comma or two is common
                data = json.loads(re.sub(r",\s*([}\]])", r"\1", raw), strict=False)
            except ValueError:
                continue
        _walk_jsonld(data, nodes)
    articles = []
    for node in nodes:
        types = node.get("@type") or []
        types = [types] if isinstance(types, str) else types
        if any(str(t).lower() in _ARTICLE_TYPES for t in types):
            articles.append(node)
    # NewsArticle before WebPage
    articles.sort(key=lambda n: "webpage" in str(n.get("@type")).lower())
    return articles


def _ld_get(articles: list[dict[str, Any]], key: str) -> Any:
    for node in articles:
        if node.get(key):
            return node[key]
    return None


def _names(value: Any, persons_only: bool) -> list[str]:
    out: list[str] = []
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, str):
            if not persons_only and not item.startswith("http"):
                out.append(item)
        elif isinstance(item, dict):
            kind = str(item.get("@type", "Person")).lower()
            if persons_only and kind != "person":
                continue
            name = item.get("name")
            if isinstance(name, str) and name.strip():
                out.append(name.strip())
    return out


def _lead_candidates(tree: lxml.html.HtmlElement) -> list[lxml.html.HtmlElement]:
    found = []
    for el in tree.iter(*_LEAD_TAGS):
        cls = f"{el.get('class', '')} {el.get('id', '')}"
        if _LEAD_CLASS_RE.search(cls):
            found.append(el)
    return found


def _clean_title(title: str, site_name: str | None) -> str:
    for sep in (" | ", " - ", " – ", " — "):
        if sep in title:
            head, _, tail = title.rpartition(sep)
            if site_name and site_name.lower() in tail.lower() or len(tail) < 30 < len(head):
                title = head
    return title.strip()


def _declared_language(tree: lxml.html.HtmlElement, meta: dict[str, str]) -> str | None:
    lang = tree.get("lang") or tree.get("{http://www.w3.org/XML/1998/namespace}lang")
    lang = lang or meta.get("content-language") or meta.get("og:locale") or meta.get("language")
    if not lang:
        return None
    code = re.split(r"[-_]", lang.strip().lower())[0]
    return code if re.fullmatch(r"[a-z]{2,3}", code) else None


def _detect_language(text: str, declared: str | None) -> tuple[str | None, str | None]:
    """(language, warning). Vietnamese is recognised from its diacritics; otherwise the
    declared language is kept when the text does not contradict it."""
    sample = text[:20000]
    words = len(sample.split())
    if words < 20:
        return declared, None
    ratio = vietnamese_ratio(sample)
    if ratio >= 0.25:
        if declared and declared != "vi":
            return "vi", f"page declares language '{declared}' but the text is Vietnamese"
        return "vi", None
    if declared == "vi":
        return None, f"page declares Vietnamese but the text is not (diacritic ratio {ratio:.2f})"
    return declared, None


# --------------------------------------------------------------------------------------------
# Body
# --------------------------------------------------------------------------------------------

_TRAFILATURA_OPTS = {
    "favor_precision": True,
    "include_comments": False,
    "include_tables": True,
    "include_images": False,
    "deduplicate": False,
}


def _body_from_container(containers: list[Any], prune: list[str]) -> str | None:
    """Body from an overriding container: trafilatura on it, else its paragraphs."""
    texts = []
    for el in containers:
        if not isinstance(el, lxml.html.HtmlElement):
            continue
        html = lxml.html.tostring(el, encoding="unicode")
        body = trafilatura.extract(
            f"<html><body><article>{html}</article></body></html>",
            prune_xpath=prune or None,
            **_TRAFILATURA_OPTS,
        )
        if not body:
            paras = [_text_of(p) for p in el.iter("p", "h2", "h3", "li")]
            body = "\n".join(p for p in paras if p)
        if body:
            texts.append(body)
    return "\n".join(texts) if texts else None


# --------------------------------------------------------------------------------------------
# Boilerplate lines left in a generic body (learned, site-independent)
# --------------------------------------------------------------------------------------------

BOILERPLATE_MODEL = Path(__file__).resolve().with_name("boilerplate_lines.json")
_WORD_RE = re.compile(r"\w+", re.UNICODE)
_SENTENCE_END_RE = re.compile(r"[.!?…\"”’»)\]:;]$")
_LINK_RE = re.compile(r"https?://|www\.|@\w{2,}")
# Cue phrases of promotion, navigation and credits in English and Vietnamese. They are
# features, not rules: the model learns how much each kind of evidence weighs.
_CUE_RE = re.compile(
    r"(?i)\b(subscribe|newsletter|sign up|follow (us|him|her|them)|click here|read more|see more|"
    r"related|advertisement|sponsored|all rights reserved|share this|have a tip|listen to|"
    r"xem thêm|đọc thêm|tin liên quan|bài liên quan|đăng ký|theo dõi|mời (bạn|quý) (đọc|độc giả)|"
    r"quảng cáo|chia sẻ|bản quyền|liên hệ quảng cáo)\b"
)
_CUE_PREFIX_RE = re.compile(
    r"(?i)^(related|see more|read more|more|watch|video|photo|image|source|xem thêm|đọc thêm|"
    r"ảnh|video|nguồn|clip)\s*[:»>|-]"
)
LINE_FEATURES = (
    "log_chars",
    "under_4_words",
    "under_10_words",
    "sentence_end",
    "position",
    "first",
    "last",
    "last_3",
    "title_jaccard",
    "is_title",
    "pipe",
    "copyright",
    "digit_ratio",
    "capitalised_ratio",
    "link_or_handle",
    "cue_phrase",
    "cue_prefix",
    "in_tail_run",
    "tail_run_share",
)


def line_features(lines: list[str], title: str | None) -> list[list[float]]:
    """Site-independent features of each line of a body (order of :data:`LINE_FEATURES`):
    length, sentence form, position, likeness to the title, credits/links, cue phrases, and
    whether the line belongs to the run of non-sentences that ends the body (related links)."""
    n = len(lines)
    title_words = {w.lower() for w in _WORD_RE.findall(title or "")}
    is_sentence = [bool(_SENTENCE_END_RE.search(line.strip())) for line in lines]
    tail = n
    while tail > 0 and not is_sentence[tail - 1]:
        tail -= 1
    rows = []
    for i, line in enumerate(lines):
        words = _WORD_RE.findall(line)
        lower = {w.lower() for w in words}
        jaccard = (
            len(lower & title_words) / len(lower | title_words) if lower and title_words else 0.0
        )
        rows.append(
            [
                math.log1p(len(line)),
                float(len(words) < 4),
                float(len(words) < 10),
                float(is_sentence[i]),
                i / max(1, n - 1),
                float(i == 0),
                float(i == n - 1),
                float(i >= n - 3),
                jaccard,
                float(jaccard > 0.8),
                float("|" in line),
                float("©" in line or "copyright" in line.lower()),
                sum(ch.isdigit() for ch in line) / max(1, len(line)),
                sum(1 for w in words if w[:1].isupper()) / max(1, len(words)),
                float(bool(_LINK_RE.search(line))),
                float(bool(_CUE_RE.search(line))),
                float(bool(_CUE_PREFIX_RE.search(line.strip()))),
                float(i >= tail),
                (n - tail) / max(1, n),
            ]
        )
    return rows


@dataclass
class LineFilter:
    """A logistic model over :func:`line_features`: a line is dropped when its probability of
    being article text is under ``threshold``. Guards: nothing is dropped from bodies of fewer
    than 3 lines, and when the lines to drop would hold over ``max_drop_share`` of the
    characters the body is kept as it is (a layout the model has not seen)."""

    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    threshold: float
    max_drop_share: float = 0.4
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = BOILERPLATE_MODEL) -> LineFilter:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        if raw.get("features") != list(LINE_FEATURES):
            raise ValueError(f"{path}: features differ from crawler.extraction.LINE_FEATURES")
        return cls(
            raw["mean"],
            raw["scale"],
            raw["coef"],
            float(raw["intercept"]),
            float(raw["threshold"]),
            float(raw.get("max_drop_share", 0.4)),
            raw.get("meta", {}),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "features": list(LINE_FEATURES),
            "mean": self.mean,
            "scale": self.scale,
            "coef": self.coef,
            "intercept": self.intercept,
            "threshold": self.threshold,
            "max_drop_share": self.max_drop_share,
            "meta": self.meta,
        }

    def probabilities(
        self, lines: list[str], title: str | None, rows: list[list[float]] | None = None
    ) -> list[float]:
        out = []
        for row in rows if rows is not None else line_features(lines, title):
            z = self.intercept + sum(
                c * (x - m) / s
                for c, x, m, s in zip(self.coef, row, self.mean, self.scale, strict=True)
            )
            out.append(1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z)))))
        return out

    def apply(
        self, text: str, title: str | None, rows: list[list[float]] | None = None
    ) -> tuple[str, int]:
        """(text without its boilerplate lines, number of lines dropped); ``rows``: the
        lines' features when already computed."""
        lines = text.split("\n")
        if len(lines) < 3:
            return text, 0
        keep = [p >= self.threshold for p in self.probabilities(lines, title, rows)]
        dropped = sum(len(line) for line, k in zip(lines, keep, strict=True) if not k)
        if not dropped or dropped > self.max_drop_share * max(1, len(text)):
            return text, 0
        return "\n".join(line for line, k in zip(lines, keep, strict=True) if k), keep.count(False)


_DEFAULT_FILTER: list[LineFilter | None] = []


def default_line_filter() -> LineFilter | None:
    """The shipped filter (``crawler/boilerplate_lines.json``, learned on the aeb-dev pages by
    ``benchmarks/crawl_extraction.py --learn``), or None when the file is absent."""
    if not _DEFAULT_FILTER:
        _DEFAULT_FILTER.append(LineFilter.load() if BOILERPLATE_MODEL.exists() else None)
    return _DEFAULT_FILTER[0]


# --------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------


def extract_article(
    page: bytes | str,
    url: str | None = None,
    site: Site | None = None,
    encoding: str | None = None,
    default_tz: str = DEFAULT_TZ,
    max_bytes: int = MAX_PAGE_BYTES,
    line_filter: LineFilter | None | bool = True,
) -> Article:
    """Extract one article from a page.

    Parameters
    ----------
    page : the page as bytes (decoded here, legacy encodings repaired) or text.
    url : the URL the page was fetched from (resolves relative canonical links).
    site : the outlet's entry of the sites file (selectors, date formats, time zone).
    encoding : the charset declared by the HTTP response, if any (bytes only).
    default_tz : time zone of naive dates when no site is given.
    max_bytes : larger pages are refused (an enormous page is not an article).
    line_filter : boilerplate lines are dropped from a body found without a site selector by
        the shipped :class:`LineFilter` (True), a given one, or not at all (False/None).

    Raises
    ------
    ExtractionError
        The page is empty, unparsable, too large, or has no article body.
    """
    warnings: list[str] = []
    size = len(page)
    if size > max_bytes:
        raise ExtractionError(f"the page is too large ({size} bytes > {max_bytes})")
    if isinstance(page, bytes):
        hint = _LEGACY_FONT_RE.search(page[:300_000].decode("latin-1"))
        if hint and not _is_utf8(page):
            # a page typed in a legacy Vietnamese font: convert the bytes as a whole
            # (glyphs such as the soft hyphen of TCVN3 'ư' would not survive HTML parsing)
            if hint.group(0).lower().startswith(".vn"):
                html, used = decode_tcvn3(page), "tcvn3"
            else:
                html, used = decode_vni(page.decode("cp1252", "replace")), "vni"
        else:
            html, used = decode_html(page, encoding)
        if used not in ("utf-8", "ascii"):
            warnings.append(f"decoded as {used}")
    else:
        html, used = page, None
    tree = _parse_tree(html)
    zone = site.zone if site is not None else ZoneInfo(default_tz)
    sel = site.selectors if site is not None else None
    formats = site.date_formats if site is not None else []

    for bad in tree.xpath("//script[not(contains(@type, 'ld+json'))]|//style|//noscript"):
        bad.drop_tree()
    meta = _meta(tree)
    ld = _jsonld_articles(tree)
    declared = _declared_language(tree, meta) or (site.language if site else None)
    # legacy-font repair only where Vietnamese is expected: it would mangle e.g. Portuguese
    repair = declared == "vi" or bool(_LEGACY_FONT_RE.search(html[:300_000]))

    def norm(value: str | None) -> str | None:
        return normalize(value, repair=repair)

    site_name = meta.get("og:site_name") or (site.title if site else None)

    # canonical URL
    canonical = None
    for href in (
        *(tree.xpath("//link[translate(@rel, 'CANONICAL', 'canonical')='canonical']/@href")[:1]),
        meta.get("og:url"),
        (_ld_get(ld, "mainEntityOfPage") or {}).get("@id")
        if isinstance(_ld_get(ld, "mainEntityOfPage"), dict)
        else None,
        _ld_get(ld, "url") if isinstance(_ld_get(ld, "url"), str) else None,
        url,
    ):
        if href and isinstance(href, str) and href.strip():
            try:
                candidate = canonicalize_url(href, base=url)
            except ValueError:
                continue
            if urlsplit(candidate).scheme in ("http", "https"):
                canonical = candidate
                break

    # remove per-site boilerplate before anything reads the body
    prune = [_to_xpath(s) for s in sel.remove] if sel else []
    for xp in prune:
        for el in tree.xpath(xp):
            if isinstance(el, lxml.html.HtmlElement) and el.getparent() is not None:
                el.drop_tree()

    # title
    title = _first_text(tree, sel.title) if sel else None
    title = title or _ld_get(ld, "headline") or meta.get("og:title") or meta.get("twitter:title")
    if not title:
        h1 = tree.xpath("//h1")
        title = _text_of(h1[0]) if h1 else None
    if not title:
        t = tree.xpath("//title")
        title = _clean_title(_text_of(t[0]), site_name) if t else None
    title = norm(title) or None

    # lead (sapo)
    lead = _first_text(tree, sel.lead) if sel else None
    description = (
        _ld_get(ld, "description") or meta.get("og:description") or meta.get("description")
    )
    if not lead:
        for el in _lead_candidates(tree):
            text = _text_of(el)
            if (
                40 <= len(text) <= 1200
                and el.tag != "section"
                or (el.tag == "section" and 40 <= len(text) <= 600)
            ):
                lead = text
                break
    if not lead and description and len(description) >= 40:
        # the description is the lead when the page shows it as a paragraph
        needle = " ".join(description.split())[:80]
        for p in tree.iter("p", "h2", "div"):
            if len(p) <= 3 and _text_of(p).startswith(needle):
                lead = _text_of(p)
                break
    lead = norm(lead) or None

    # body
    text = None
    from_selector = False
    if sel and sel.body:
        for selector in sel.body:
            found = _select(tree, selector)
            if found:
                text = _body_from_container(found, [])
                if text:
                    from_selector = True
                    break
        if not text:
            warnings.append("site body selector matched nothing; generic extraction used")
    if not text:
        text = trafilatura.extract(copy.deepcopy(tree), url=url, **_TRAFILATURA_OPTS)
    if not text:  # short or broken pages: recall mode, then plain paragraphs
        opts = {**_TRAFILATURA_OPTS, "favor_precision": False, "favor_recall": True}
        text = trafilatura.extract(copy.deepcopy(tree), url=url, **opts)
        if text and len(text) < 100:
            text = None  # a menu or a caption, not an article
        if text:
            warnings.append("body found in recall mode")
    if not text:
        paras = [_text_of(p) for p in tree.iter("p")]
        paras = [p for p in paras if len(p) >= 40 and p != lead]
        if paras:
            text = "\n".join(paras)
            warnings.append("body from plain paragraphs")
    ld_body = _ld_get(ld, "articleBody")
    if isinstance(ld_body, str) and len(ld_body) > max(200, 2 * len(text or "")):
        text = ld_body
        warnings.append("body from JSON-LD articleBody")
    text = norm(text) or ""
    if len(text) < MIN_BODY_CHARS:
        raise ExtractionError(f"no article body found on the page ({len(text)} characters of text)")

    # published / modified
    published = None
    date_sources = [
        _ld_get(ld, "datePublished"),
        meta.get("article:published_time"),
        meta.get("og:published_time"),
        meta.get("datepublished"),
        meta.get("pubdate"),
        meta.get("publishdate"),
        meta.get("dc.date.issued"),
        meta.get("date"),
    ]
    if sel and sel.date:
        date_sources.insert(1, _first_text(tree, sel.date))
    for value in date_sources:
        if isinstance(value, str) and value.strip():
            published = parse_date(value, formats, zone)
            if published:
                break
    if not published:
        for t in tree.xpath("//time[@datetime]"):
            published = parse_date(t.get("datetime"), formats, zone)
            if published:
                break
    if not published:
        for el in tree.xpath(
            "//*[contains(@class, 'date') or contains(@class, 'time') or contains(@class, 'publish')]"
        )[:20]:
            published = parse_date(_text_of(el)[:120], formats, zone)
            if published:
                break
    if not published:
        try:
            found = trafilatura.extract_metadata(tree, default_url=url)
            day = found.date if found else None
        except Exception:  # noqa: BLE001 - htmldate may fail on odd pages
            day = None
        if day:
            published = parse_date(day, (), zone)
            warnings.append("published date without a time of day")
    if not published:
        warnings.append("no published date found")
    modified = parse_date(
        _ld_get(ld, "dateModified") or meta.get("article:modified_time"), formats, zone
    )

    # author
    author = None
    persons = _names(_ld_get(ld, "author"), persons_only=True)
    if persons:
        author = ", ".join(dict.fromkeys(persons))
    if not author and sel and sel.author:
        author = _first_text(tree, sel.author)
    if not author:
        org_names = {n.lower() for n in _names(_ld_get(ld, "author"), False)}
        org_names |= {n.lower() for n in _names(_ld_get(ld, "publisher"), False)}
        if site_name:
            org_names.add(site_name.lower())
        for value in (meta.get("author"), meta.get("article:author"), meta.get("dc.creator")):
            if value and not value.startswith("http") and value.lower() not in org_names:
                author = value
                break
        if not author:
            for el in tree.xpath(_BYLINE_XPATH)[:5]:
                value = _text_of(el)
                if value and len(value) <= 80 and value.lower() not in org_names:
                    author = value
                    break
    if author:
        author = re.sub(r"^(by|bởi|theo|tác giả)\s*[:\s]\s*", "", author, flags=re.I).strip()
    author = norm(author) or None
    # a byline as the last line of the body (Vietnamese outlets sign at the end)
    head, _, last = text.rpartition("\n")
    if head and last.strip():
        if author and last.strip() == author:
            text = head.strip()
        elif not author and _NAME_LINE_RE.fullmatch(last.strip()):
            author, text = last.strip(), head.strip()

    # boilerplate lines left by the generic path (promotion, related links, credits)
    flt = default_line_filter() if line_filter is True else (line_filter or None)
    if flt is not None and not from_selector:
        text, dropped = flt.apply(text, title)
        if dropped:
            warnings.append(f"{dropped} boilerplate line(s) dropped")

    # language
    language, lang_warning = _detect_language(text, declared)
    if lang_warning:
        warnings.append(lang_warning)

    section = _ld_get(ld, "articleSection") or meta.get("article:section")
    if isinstance(section, list):
        section = section[0] if section else None
    tags = [t for k, t in meta.items() if k == "article:tag"]
    keywords = _ld_get(ld, "keywords") or meta.get("keywords") or meta.get("news_keywords")
    if isinstance(keywords, str):
        tags += [k.strip() for k in keywords.split(",") if k.strip()]
    elif isinstance(keywords, list):
        tags += [str(k).strip() for k in keywords if str(k).strip()]
    image = meta.get("og:image")

    return Article(
        url=url,
        canonical_url=canonical,
        title=title,
        published=published,
        author=author,
        lead=lead,
        text=text,
        language=language,
        modified=modified,
        site_name=norm(site_name) or None,
        description=norm(description) if isinstance(description, str) else None,
        section=norm(section) if isinstance(section, str) else None,
        tags=list(dict.fromkeys(norm(t) for t in tags if t))[:30],
        image=image,
        encoding=used,
        warnings=warnings,
    )


def read_page(path: str | Path) -> bytes:
    """Bytes of a saved page (.html or .html.gz)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ExtractionError(f"Cannot read {path}: {exc.strerror}.") from exc
    if path.suffix == ".gz" or data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise ExtractionError(f"{path} is not a valid gzip file ({exc}).") from exc
    return data


_URL_HINT_RE = re.compile(
    rb"""<link[^>]+rel=["']?canonical["']?[^>]*href=["']([^"']+)|"""
    rb"""<link[^>]+href=["']([^"']+)["'][^>]*rel=["']?canonical|"""
    rb"""<meta[^>]+property=["']og:url["'][^>]*content=["']([^"']+)""",
    re.IGNORECASE,
)


def page_url_hint(page: bytes) -> str | None:
    """The canonical/og:url of a saved page, read cheaply (to pick its outlet)."""
    m = _URL_HINT_RE.search(page[:200_000])
    if not m:
        return None
    raw = next(g for g in m.groups() if g)
    return raw.decode("utf-8", "ignore").strip() or None


def extract_file(
    path: str | Path,
    site: Site | None = None,
    url: str | None = None,
    sites: SitesFile | None = None,
) -> Article:
    """Extract a saved page (.html or .html.gz).

    When ``site`` is not given but ``sites`` is, the outlet is chosen from the page's
    canonical URL (or ``url``) so its selectors and date formats apply.
    """
    page = read_page(path)
    url = url or page_url_hint(page)
    if site is None and sites is not None and url:
        site = sites.for_url(url)
    return extract_article(page, url=url, site=site)
