"""Extraction without Scrapy or a database: the pages of the offline test site and the
saved VnExpress pages (shared data, read by path, skipped when absent)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from crawler.cli import crawl
from crawler.errors import ExtractionError, SitesFileError
from crawler.extraction import canonicalize_url, extract_article, extract_file, parse_date
from crawler.sites import load_sites, parse_sites
from crawler.store import content_hash, jaccard, shingle_set, simhash
from tests.conftest import SHARED_DATA

SITE = Path(__file__).resolve().parent / "site"
VI_NEWS = SHARED_DATA / "extraction" / "vi_news"


def page(path: str) -> bytes:
    return (SITE / path).read_bytes().replace(b"{{BASE}}", b"http://127.0.0.1:1")


def test_jsonld_article_with_sapo_outside_the_body():
    a = extract_article(
        page("xa-hoi/xa-thanh-liem-nao-vet-kenh-1001.html"),
        url="http://127.0.0.1:1/xa-hoi/xa-thanh-liem-nao-vet-kenh-1001.html",
    )
    assert a.title == "Xã Thanh Liêm ra quân nạo vét kênh mương trước mùa mưa"
    assert a.published.isoformat() == "2025-08-04T09:15:00+07:00"
    assert a.author == "Minh Anh"
    assert a.lead.startswith("Sáng 4/8, hơn 300 người dân xã Thanh Liêm")
    assert a.text.startswith("Theo kế hoạch của UBND xã Thanh Liêm")
    for boilerplate in ("Tin liên quan", "Ý kiến bạn đọc", "Giấy phép", "Chia sẻ"):
        assert boilerplate not in a.text
    assert a.language == "vi"
    assert a.canonical_url == "http://127.0.0.1:1/xa-hoi/xa-thanh-liem-nao-vet-kenh-1001.html"


def test_page_without_jsonld_gets_date_from_text_with_offset():
    a = extract_article(page("xa-hoi/phu-ly-sua-duong-1002.html"), url="http://x/1002.html")
    assert a.published.isoformat() == "2025-08-05T14:30:00+07:00"
    assert a.author == "Thu Hà"


def test_legacy_tcvn3_page_is_converted_to_unicode_nfc():
    a = extract_article(
        page("dac-biet/tin-cu-tcvn3-1007.html"), url="http://x/1007.html", encoding="windows-1252"
    )
    assert a.title == "Huyện Kim Bảng tổng kết phong trào xây dựng nông thôn mới"
    assert "làm đường giao thông nông thôn" in a.text
    assert a.published.isoformat() == "2012-03-15T08:30:00+07:00"


def test_windows_1258_bytes_decode_to_nfc():
    from nlp.text import encode_legacy

    text = "Người dân xã Bình Lục phấn khởi đón mùa lúa mới, năng suất cao hơn năm trước."
    html = (
        b"<html><head><meta charset='windows-1258'><title>T</title></head><body><article><p>"
        + encode_legacy(text * 3, "windows-1258")
        + b"</p></article></body></html>"
    )
    a = extract_article(html, url="http://x/a.html")
    assert text in a.text


def test_malformed_page_keeps_what_can_be_extracted():
    a = extract_article(page("dac-biet/trang-loi-cu-phap-1008.html"), url="http://x/1008.html")
    assert a.title.startswith("Duy Tiên khai trương chợ nông sản")
    assert "40 gian hàng" in a.text
    assert a.published is None and "no published date found" in a.warnings


@pytest.mark.parametrize(
    "body", [b"", b"   ", "<html><body><nav>Trang chủ</nav></body></html>".encode()]
)
def test_page_without_article_is_refused(body):
    with pytest.raises(ExtractionError):
        extract_article(body, url="http://x/empty.html")


def test_enormous_page_is_refused():
    with pytest.raises(ExtractionError, match="too large"):
        extract_article(b"<p>x</p>" * 1000, url="http://x/big.html", max_bytes=1000)


def test_nfd_text_is_stored_as_nfc():
    import unicodedata

    text = unicodedata.normalize("NFD", "Hội nghị tổng kết công tác thủy lợi của tỉnh Hà Nam. " * 5)
    a = extract_article(
        f"<html lang='vi'><body><article><p>{text}</p></article></body></html>",
        url="http://x/nfd.html",
    )
    assert unicodedata.is_normalized("NFC", a.text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-10-22T19:25:52+07:00", "2025-10-22T19:25:52+07:00"),
        ("2025-10-22T12:25:52Z", "2025-10-22T12:25:52+00:00"),
        ("2025-10-22 19:25", "2025-10-22T19:25:00+07:00"),
        ("Thứ tư, 22/10/2025, 19:25 (GMT+7)", "2025-10-22T19:25:00+07:00"),
        ("19:25 22/10/2025", "2025-10-22T19:25:00+07:00"),
        ("22-10-2025", "2025-10-22T00:00:00+07:00"),
    ],
)
def test_parse_date(value, expected):
    assert parse_date(value).isoformat() == expected


def test_unknown_date_format_gives_none():
    assert parse_date("hôm qua") is None


def test_canonical_url_drops_tracking_and_fragment():
    assert canonicalize_url("https://A.vn/x?utm_source=f&id=2#c") == "https://a.vn/x?id=2"


def test_near_duplicate_fingerprints():
    a = extract_article(page("xa-hoi/xa-thanh-liem-nao-vet-kenh-1001.html"), url="http://x/1")
    b = extract_article(page("kinh-te/ban-sao-thanh-liem-1006.html"), url="http://x/2")
    c = extract_article(page("kinh-te/ha-noi-hoi-cho-1005.html"), url="http://x/3")
    assert jaccard(shingle_set(a.full_text), shingle_set(b.full_text)) > 0.8
    assert jaccard(shingle_set(a.full_text), shingle_set(c.full_text)) < 0.1
    assert content_hash("Xin  chào, Hà Nam!") == content_hash("xin chào hà nam")
    assert isinstance(simhash(a.text), int)


# -- the sites file ---------------------------------------------------------------------------


def test_shipped_sites_file_is_valid():
    sites = load_sites()
    names = {s.name for s in sites.sites}
    assert {
        "vnexpress",
        "dantri",
        "tuoitre",
        "thanhnien",
        "vietnamnet",
        "vtv",
        "nhandan",
        "baoninhbinh",
        "ninhbinh-portal",
        "baohanam",
        "hanam-portal",
    } <= names
    checked = {s.name for s in sites.sites if s.checked_against_saved_page}
    assert checked == {"vnexpress"}  # the only outlet we have saved pages of


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"homepage": "vnexpress.net"}, "sites[0] (name 'x'): homepage: 'vnexpress.net' is not"),
        ({"feeds": ["https://other.vn/rss"]}, "outside allowed_domains"),
        ({"article_url_patterns": ["(unclosed"]}, "not a valid regular expression"),
        ({"selectors": {"body": "div[["}}, "not a valid CSS/XPath selector"),
        ({"date_formats": ["dd/mm/yyyy"]}, "not a strptime format"),
        ({"scope": "global"}, "scope"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_site_entry_gets_a_clear_error(change, message):
    entry = {
        "name": "x",
        "title": "X",
        "homepage": "https://x.vn/",
        "scope": "national",
        "feeds": ["https://x.vn/rss"],
        "allowed_domains": ["x.vn"],
        **change,
    }
    with pytest.raises(
        SitesFileError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        parse_sites({"version": 1, "sites": [entry]}, "sites.yaml")


def test_duplicate_site_names_are_refused():
    entry = {
        "name": "x",
        "title": "X",
        "homepage": "https://x.vn/",
        "scope": "national",
        "feeds": ["https://x.vn/rss"],
        "allowed_domains": ["x.vn"],
    }
    with pytest.raises(SitesFileError, match="appears twice"):
        parse_sites({"version": 1, "sites": [entry, entry]})


# -- the saved VnExpress pages (shared data) --------------------------------------------------

needs_vi_news = pytest.mark.skipif(not VI_NEWS.is_dir(), reason="shared vi_news pages absent")


@needs_vi_news
def test_vnexpress_fields_right():
    gt = json.loads((VI_NEWS / "fundus_vnexpress" / "VnExpress.json").read_text())["V1"]
    a = extract_file(
        VI_NEWS / "fundus_vnexpress" / "VnExpress_2025_10_22.html.gz", sites=load_sites()
    )
    assert a.title == gt["title"]
    assert a.published.isoformat() == gt["publishing_date"].replace(" ", "T")
    assert a.author == gt["authors"][0]
    assert a.lead == gt["body"]["summary"][0]
    assert gt["body"]["sections"][0]["paragraphs"][0] in a.text
    b = extract_file(VI_NEWS / "htmldate_vnexpress" / "VnExpress.net-Kinh-doanh.html")
    assert b.published.isoformat() == "2023-11-02T19:20:45+07:00"
    assert b.author == "Anh Minh" and b.lead.startswith("Bộ trưởng Tài chính")


# -- the CLI contract -------------------------------------------------------------------------


def test_cli_extract_writes_one_json_line_per_file(tmp_path):
    gz = tmp_path / "a.html.gz"
    gz.write_bytes(gzip.compress(page("xa-hoi/kim-bang-ngo-doc-thuc-pham-1003.html")))
    plain = SITE / "xa-hoi" / "phu-ly-sua-duong-1002.html"
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(crawl, ["extract", str(gz), str(plain), "--output", str(out)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["source"] for x in lines] == [str(gz), str(plain)]
    keys = {"source", "url", "title", "published", "author", "lead", "text", "language"}
    assert all(set(x) == keys for x in lines)
    assert lines[0]["published"] == "2025-08-06T18:05:00+07:00"
    assert lines[0]["url"].endswith("/xa-hoi/kim-bang-ngo-doc-thuc-pham-1003.html")


def test_cli_extract_bad_file_exits_non_zero(tmp_path):
    bad = tmp_path / "bad.html.gz"
    bad.write_bytes(b"not gzip at all")
    result = CliRunner().invoke(crawl, ["extract", str(bad)])
    assert result.exit_code == 1
    assert "not a valid gzip file" in result.output


# --------------------------------------------------------------------------------------------
# boilerplate lines on sites without selectors (crawler/boilerplate_lines.json)
# --------------------------------------------------------------------------------------------

_BODY = [
    "Sáng 12/3, UBND phường Phủ Lý tổ chức ra quân nạo vét kênh Biên Hòa đoạn qua trung tâm "
    "phường, huy động hơn 300 người dân và đoàn viên thanh niên tham gia.",
    "Theo lãnh đạo phường, tuyến kênh dài gần 2 km đã bị bồi lắng nặng sau mùa mưa năm ngoái, "
    "nhiều đoạn ùn ứ rác thải sinh hoạt gây mùi hôi cho các khu dân cư hai bên bờ.",
    "Sau buổi sáng, lực lượng tham gia đã thu gom khoảng 15 tấn bùn đất và rác, phát quang 1,5 km "
    "bờ kênh; phường cũng cho lắp thêm biển cấm đổ rác ở các điểm nóng.",
    "Bà Nguyễn Thị Hòa, người dân tổ 5, cho biết mong phường duy trì việc kiểm tra thường xuyên "
    "để kênh không bị tái ô nhiễm như những năm trước.",
]
_PROMO = [
    "Xem thêm: Phủ Lý ra quân làm sạch môi trường đầu xuân",
    "Mời bạn đọc đăng ký nhận bản tin hằng ngày",
]


def _unseen_page(lines: list[str]) -> str:
    paras = "".join(f"<p>{t}</p>" for t in lines)
    return (
        "<html lang='vi'><head><title>Phủ Lý nạo vét kênh Biên Hòa</title></head><body>"
        f"<h1>Phủ Lý nạo vét kênh Biên Hòa</h1><div class='content'>{paras}</div></body></html>"
    )


def test_learned_filter_drops_promotion_lines_of_an_unseen_site():
    from crawler.extraction import default_line_filter

    flt = default_line_filter()
    assert flt is not None and flt.meta["pages"] == 91  # learned on aeb-dev, shipped as JSON
    html = _unseen_page(
        _BODY + _PROMO[:1] + ["Hà Nam đẩy nhanh các dự án giao thông trọng điểm"] + _PROMO[1:]
    )
    raw = extract_article(html, url="https://bao.test/a.html", line_filter=False)
    assert all(p in raw.text for p in _PROMO)
    art = extract_article(html, url="https://bao.test/a.html")
    assert all(p in art.text for p in _BODY)  # every paragraph of the article kept
    assert not any(p in art.text for p in _PROMO)
    assert "2 boilerplate line(s) dropped" in art.warnings


def test_line_filter_guards_and_site_selectors():
    from crawler.extraction import LINE_FEATURES, LineFilter, default_line_filter

    flt = default_line_filter()
    # short bodies are left alone; so is a body the model would cut by more than 40 %
    assert flt.apply("\n".join(_PROMO), "x") == ("\n".join(_PROMO), 0)
    drop_all = LineFilter(flt.mean, flt.scale, [0.0] * len(LINE_FEATURES), -10.0, 0.5)
    text = "\n".join(_BODY + _PROMO)
    assert drop_all.apply(text, "x") == (text, 0)
    # a body found by the outlet's own selector is trusted as it is
    sites = parse_sites(
        {
            "sites": [
                {
                    "name": "baothu",
                    "title": "Báo Thử",
                    "homepage": "https://bao.test/",
                    "scope": "provincial",
                    "start_urls": ["https://bao.test/"],
                    "allowed_domains": ["bao.test"],
                    "article_url_patterns": [r"/a\.html$"],
                    "selectors": {"body": ["div.content"]},
                }
            ]
        },
        "test",
    )
    art = extract_article(
        _unseen_page(_BODY + _PROMO),
        url="https://bao.test/a.html",
        site=sites.for_url("https://bao.test/a.html"),
    )
    assert all(p in art.text for p in _PROMO)


def test_line_filter_file_must_match_the_features(tmp_path):
    from crawler.extraction import BOILERPLATE_MODEL, LineFilter

    raw = json.loads(BOILERPLATE_MODEL.read_text(encoding="utf-8"))
    raw["features"] = raw["features"][:-1]
    bad = tmp_path / "f.json"
    bad.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ValueError, match="features differ"):
        LineFilter.load(bad)
