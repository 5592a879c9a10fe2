"""Render a local news mirror (section pages, RSS, news sitemap, robots.txt, articles) from
article data, in markup that mimics Vietnamese outlets: JSON-LD NewsArticle, og: tags, the
sapo outside the body container, related-links and comment boilerplate, a byline at the end.

Used for the demo mirror (data/news_mirror/), the test site and the throughput benchmark.
URLs are written with the ``{{BASE}}`` placeholder that :class:`crawler.localsite.LocalSite`
fills in when serving.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["MirrorArticle", "render_article", "write_mirror"]

BASE = "{{BASE}}"


@dataclass
class MirrorArticle:
    slug: str
    title: str
    lead: str
    paragraphs: list[str]
    author: str
    published: dt.datetime
    section: str = "xa-hoi"
    style: str = "ld"  # "ld": JSON-LD + og + h2.sapo; "plain": og only, date in a span
    related: list[tuple[str, str]] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"/{self.section}/{self.slug}.html"


_WEEKDAYS = ["Thứ hai", "Thứ ba", "Thứ tư", "Thứ năm", "Thứ sáu", "Thứ bảy", "Chủ nhật"]


def render_article(a: MirrorArticle, site_title: str = "Báo Mẫu Địa Phương") -> str:
    """One article page."""
    e = html.escape
    url = BASE + a.path
    body = "\n".join(f"<p>{e(p)}</p>" for p in a.paragraphs)
    related = "".join(f'<li><a href="{e(href)}">{e(text)}</a></li>' for href, text in a.related)
    local = a.published.strftime("%d/%m/%Y, %H:%M")
    weekday = _WEEKDAYS[a.published.weekday()]
    ld = ""
    if a.style == "ld":
        ld = json.dumps(
            {
                "@context": "https://schema.org",
                "@type": "NewsArticle",
                "mainEntityOfPage": {"@type": "WebPage", "@id": url},
                "headline": a.title,
                "description": a.lead,
                "datePublished": a.published.isoformat(),
                "author": {"@type": "Person", "name": a.author},
                "publisher": {"@type": "Organization", "name": site_title},
                "articleSection": a.section,
            },
            ensure_ascii=False,
        )
        ld = f'<script type="application/ld+json">{ld}</script>'
    return f"""<!DOCTYPE html>
<html lang="vi">
<head>
<meta charset="utf-8">
<title>{e(a.title)} - {e(site_title)}</title>
<link rel="canonical" href="{url}">
<meta property="og:type" content="article">
<meta property="og:site_name" content="{e(site_title)}">
<meta property="og:title" content="{e(a.title)}">
<meta property="og:description" content="{e(a.lead)}">
<meta property="og:url" content="{url}">
{ld}
<script>window.dataLayer = window.dataLayer || []; function track() {{ return 1; }}</script>
</head>
<body>
<header class="site-header"><a href="/">{e(site_title)}</a>
<nav class="main-menu"><a href="/xa-hoi/">Xã hội</a> <a href="/kinh-te/">Kinh tế</a>
<a href="/rss.xml">RSS</a></nav></header>
<main class="container">
<div class="breadcrumb"><a href="/">Trang chủ</a> › <a href="/{a.section}/">{e(a.section)}</a></div>
<span class="date">{weekday}, {local} (GMT+7)</span>
<h1 class="title-detail">{e(a.title)}</h1>
<h2 class="sapo">{e(a.lead)}</h2>
<article class="fck_detail">
{body}
<p class="author" style="text-align:right;"><strong>{e(a.author)}</strong></p>
</article>
<div class="box-related"><h3>Tin liên quan</h3><ul>{related}</ul></div>
<div class="social-share"><a href="#">Chia sẻ</a> <a href="#">Lưu bài</a></div>
<section id="comments" class="comment-box"><h3>Ý kiến bạn đọc (2)</h3>
<div class="comment"><b>Bạn đọc Minh</b><p>Bài viết hay, mong tỉnh tiếp tục quan tâm.</p></div>
<div class="comment"><b>Bạn đọc Hà</b><p>Cảm ơn phóng viên đã phản ánh kịp thời.</p></div>
<form><textarea name="c"></textarea><button>Gửi ý kiến</button></form></section>
</main>
<footer class="site-footer"><p>© {e(site_title)}. Giấy phép số 00/GP-BTTTT. Địa chỉ: 01 đường Mẫu.</p></footer>
</body></html>
"""


def _rss(articles: list[MirrorArticle], site_title: str) -> str:
    items = "\n".join(
        f"<item><title>{html.escape(a.title)}</title><link>{BASE}{a.path}</link>"
        f"<guid>{BASE}{a.path}</guid>"
        f"<pubDate>{a.published.strftime('%a, %d %b %Y %H:%M:%S %z')}</pubDate>"
        f"<description>{html.escape(a.lead)}</description></item>"
        for a in articles
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
        f"<title>{html.escape(site_title)}</title><link>{BASE}/</link>\n{items}\n</channel></rss>\n"
    )


def _sitemap(articles: list[MirrorArticle], site_title: str) -> str:
    urls = "\n".join(
        f"<url><loc>{BASE}{a.path}</loc><news:news><news:publication>"
        f"<news:name>{html.escape(site_title)}</news:name><news:language>vi</news:language>"
        f"</news:publication><news:publication_date>{a.published.isoformat()}"
        f"</news:publication_date><news:title>{html.escape(a.title)}</news:title>"
        f"</news:news></url>"
        for a in articles
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">\n'
        f"{urls}\n</urlset>\n"
    )


def _section_pages(section: str, articles: list[MirrorArticle], per_page: int) -> dict[str, str]:
    pages: dict[str, str] = {}
    chunks = [articles[i : i + per_page] for i in range(0, len(articles), per_page)] or [[]]
    for n, chunk in enumerate(chunks, start=1):
        name = "index.html" if n == 1 else f"trang-{n}.html"
        links = "\n".join(
            f'<div class="item-news"><h3><a href="{a.path}">{html.escape(a.title)}</a></h3>'
            f'<p class="description">{html.escape(a.lead[:120])}</p></div>'
            for a in chunk
        )
        nxt = (
            f'<a rel="next" class="next-page" href="/{section}/trang-{n + 1}.html">Trang sau</a>'
            if n < len(chunks)
            else ""
        )
        pages[f"{section}/{name}"] = (
            f'<!DOCTYPE html><html lang="vi"><head><meta charset="utf-8"><title>{section} - '
            f"trang {n}</title></head><body><h1>Chuyên mục {section}</h1>{links}"
            f'<div class="pagination">{nxt}</div></body></html>\n'
        )
    return pages


def write_mirror(
    root: Path,
    articles: Iterable[MirrorArticle],
    site_title: str = "Báo Mẫu Địa Phương",
    per_page: int = 10,
    robots_disallow: Iterable[str] = ("/private/",),
) -> list[MirrorArticle]:
    """Write the mirror under ``root``; return the articles written."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    arts = list(articles)
    for a in arts:
        target = root / a.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render_article(a, site_title), encoding="utf-8")
    sections: dict[str, list[MirrorArticle]] = {}
    for a in arts:
        sections.setdefault(a.section, []).append(a)
    for section, items in sections.items():
        for name, text in _section_pages(section, items, per_page).items():
            (root / name).write_text(text, encoding="utf-8")
    newest = sorted(arts, key=lambda a: a.published, reverse=True)
    (root / "rss.xml").write_text(_rss(newest[:50], site_title), encoding="utf-8")
    (root / "sitemap-news.xml").write_text(_sitemap(newest, site_title), encoding="utf-8")
    robots = "User-agent: *\n" + "".join(f"Disallow: {p}\n" for p in robots_disallow)
    (root / "robots.txt").write_text(robots + f"Sitemap: {BASE}/sitemap-news.xml\n")
    return arts


# --------------------------------------------------------------------------------------------
# Synthetic articles (throughput benchmark): our own generated sentences, no real news
# --------------------------------------------------------------------------------------------

_PLACES = [
    "Phủ Lý",
    "Duy Tiên",
    "Kim Bảng",
    "Thanh Liêm",
    "Bình Lục",
    "Lý Nhân",
    "Hoa Lư",
    "Tam Điệp",
    "Nam Định",
    "Ý Yên",
]
_SUBJECTS = [
    "UBND xã",
    "Hội Nông dân xã",
    "Đoàn thanh niên phường",
    "Hợp tác xã",
    "Trạm y tế xã",
    "Trường tiểu học",
    "Công an xã",
    "Ban quản lý dự án",
]
_ACTIONS = [
    "tổ chức ra quân nạo vét kênh mương nội đồng",
    "trao quà cho hộ nghèo",
    "triển khai tiêm chủng mở rộng",
    "kiểm tra an toàn thực phẩm tại chợ",
    "khánh thành nhà văn hóa thôn",
    "hướng dẫn bà con chuyển đổi cơ cấu cây trồng",
    "tuyên truyền phòng chống đuối nước cho học sinh",
    "dọn vệ sinh môi trường",
]
_DETAILS = [
    "Hàng trăm người dân đã tham gia từ sáng sớm.",
    "Kinh phí thực hiện lấy từ ngân sách địa phương và nguồn xã hội hóa.",
    "Lãnh đạo địa phương đề nghị các thôn duy trì thường xuyên hoạt động này.",
    "Nhiều hộ gia đình cho biết điều kiện sản xuất đã cải thiện rõ rệt.",
    "Công việc dự kiến hoàn thành trước mùa mưa bão.",
    "Người dân phản ánh một số tuyến đường còn xuống cấp, cần sửa chữa sớm.",
]


def synthetic_articles(n: int, seed: int = 7, sections: int = 5) -> list[MirrorArticle]:
    """``n`` generated articles (templated sentences), for load tests."""
    rng = random.Random(seed)
    tz = dt.timezone(dt.timedelta(hours=7))
    out = []
    start = dt.datetime(2025, 8, 1, 6, 0, tzinfo=tz)
    for i in range(n):
        place = rng.choice(_PLACES)
        subject = rng.choice(_SUBJECTS)
        action = rng.choice(_ACTIONS)
        title = f"{subject} {place} {action} (số {i})"
        lead = (
            f"Ngày {1 + i % 28}/8, {subject.lower()} {place} {action}, thu hút đông đảo người dân."
        )
        paras = [
            " ".join(rng.sample(_DETAILS, 3)) + f" Mã tin {i}." for _ in range(rng.randint(4, 9))
        ]
        out.append(
            MirrorArticle(
                slug=f"tin-{i:05d}",
                title=title,
                lead=lead,
                paragraphs=paras,
                author=rng.choice(["Minh Anh", "Thu Hà", "Văn Nam", "Ngọc Lan"]),
                published=start + dt.timedelta(minutes=17 * i),
                section=f"muc-{i % sections}",
            )
        )
    return out
