"""Digest and feedback against a real PostGIS (fixtures of tests/conftest.py)."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest
from sqlalchemy import text

from nlp.digest import build_digest, render_html, render_pdf
from nlp.errors import InputError
from nlp.feedback import load_corrections, record_correction
from tests._digest_day import DAY
from tests._digest_day import seed_digest_day as _seed

pytestmark = pytest.mark.postgis


# A database of this module's own (own_database_url, tests/conftest.py):
# the digest counts every post and article of the day and maps every commune, so rows other
# modules committed (posts of 2026-03-10, the reference units) would be counted; this module's
# own commits (the reference units of _seed_province) go with its database.
@pytest.fixture(scope="module")
def database_url(own_database_url):
    return own_database_url


@pytest.fixture(scope="module")
def engine(own_engine):
    return own_engine


def test_feedback_is_validated_and_stored(connection):
    ids = _seed(connection)
    fid = record_correction(connection, ids["neg2"], "neutral", "biên tập viên A", "tin trung tính")
    assert fid > 0
    row = connection.execute(
        text("SELECT old_label, new_label, reviewer FROM label_feedback WHERE id = :i"), {"i": fid}
    ).one()
    assert tuple(row) == ("negative", "neutral", "biên tập viên A")
    assert load_corrections(connection)[0]["label"] == "neutral"
    with pytest.raises(InputError, match="not one of"):
        record_correction(connection, ids["neg2"], "bad", "A")
    with pytest.raises(InputError, match="does not exist"):
        record_correction(connection, 10**9, "neutral", "A")
    with pytest.raises(InputError, match="reviewer"):
        record_correction(connection, ids["neg2"], "neutral", " ")


def test_digest_gathers_the_day(connection, tmp_path):
    ids = _seed(connection)
    record_correction(connection, ids["neg2"], "neutral", "biên tập viên A")
    d = build_digest(connection, DAY, days=7)
    json.dumps(d, default=str)  # serialisable
    assert d["totals"] == {
        "articles": 3,
        "negative": 1,
        "neutral": 1,
        "positive": 1,
    }  # correction applied
    assert [s["total"] for s in d["series"]][-3:] == [1, 0, 3]
    assert d["negative_articles"][0]["id"] == ids["neg1"]
    assert d["negative_articles"][0]["phrases"] == ["cháy lớn"]
    stats = {c["code"]: c for c in d["commune_stats"]}
    assert (
        stats["99001"]["negative"] == 1 and stats["99002"]["articles"] == 2
    )  # old commune via crosswalk
    assert {c["code"] for c in d["communes"]} == {"99001", "99002"} and d["communes"][0][
        "path"
    ].startswith("M")
    assert d["alerts"][0]["commune_code"] == "99001" and d["alerts"][0]["severity"] == "high"
    assert {t["key"] for t in d["by_topic"]} == {
        "security_order",
        "environment_pollution",
        "land_construction",
    }
    assert d["by_source"][0]["name"] == "Báo Thử"
    html = render_html(d, feedback_url="https://api.test/digest/feedback")
    assert "Bản tin dư luận trực tuyến" in html and "<svg" in html and "Cháy lớn thiêu rụi" in html
    assert "https://api.test/digest/feedback" in html and "Authorization" in html
    (tmp_path / "digest.html").write_text(html, encoding="utf-8")


def test_empty_day(connection):
    d = build_digest(connection, dt.date(2001, 1, 1), days=3)
    assert d["totals"]["articles"] == 0 and d["map"] is None
    assert "Không có tin tiêu cực" in render_html(d)


@pytest.mark.chromium
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_pdf(connection):
    _seed(connection)
    pdf = render_pdf(build_digest(connection, DAY))
    assert pdf.startswith(b"%PDF") and len(pdf) > 5000


def test_ioc_digest_and_retrain_status_commands(run_ioc, tmp_path):
    out = tmp_path / "d.json"
    res = run_ioc("digest", "--date", "2001-01-01", "--format", "json", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert json.loads(out.read_text(encoding="utf-8"))["totals"]["articles"] == 0
    html = tmp_path / "d.html"
    assert run_ioc("digest", "--date", "2001-01-01", "--out", str(html)).returncode == 0
    assert "Bản tin dư luận" in html.read_text(encoding="utf-8")
    bad = run_ioc("digest", "--date", "01/02/2001")
    assert bad.returncode != 0 and "YYYY-MM-DD" in bad.stderr
    status = run_ioc("nlp", "retrain", "--status", "--registry", str(tmp_path / "reg"))
    assert status.returncode == 0 and json.loads(status.stdout)["current"] is None
    rb = run_ioc("nlp", "retrain", "--rollback", "--registry", str(tmp_path / "reg"))
    assert rb.returncode != 0 and "roll back" in rb.stderr


# --------------------------------------------------------------------------------------------
# citizens' posts, tag chips, the printed digest (issue 11, issue 12 item 9)
# --------------------------------------------------------------------------------------------

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]
VN = dt.timezone(dt.timedelta(hours=7))


def _seed_posts(conn, day: dt.date, unit_ids: dict[str, int], items) -> list[int]:
    ids = []
    for n, (body, label, codes, phrases) in enumerate(items):
        pid = conn.execute(
            text(
                "INSERT INTO posts (post_key, source, url, author, published_at, text, content_hash) "
                "VALUES (:k, 'facebook', :u, 'Người Riêng Tư', :p, :t, :h) RETURNING id"
            ),
            {
                "k": f"test-{day}-{n}",
                "u": f"https://fb.test/p/{day}/{n}",
                "t": body,
                "h": f"h{n}",
                "p": dt.datetime.combine(day, dt.time(8 + n % 10, 0), tzinfo=VN),
            },
        ).scalar_one()
        ids.append(pid)
        if label:
            probs = {"negative": 0.1, "neutral": 0.1, "positive": 0.1, label: 0.8}
            reasons = [{"kind": "phrase", "text": ph} for ph in phrases]
            conn.execute(
                text(
                    "INSERT INTO post_scores (post_id, model_version, genre, label, probabilities, confidence, reasons) "
                    "VALUES (:p, 'sentiment-test', 'post', :l, CAST(:pr AS jsonb), 0.7, CAST(:r AS jsonb))"
                ),
                {
                    "p": pid,
                    "l": label,
                    "pr": json.dumps(probs),
                    "r": json.dumps(reasons, ensure_ascii=False),
                },
            )
        for code in codes:
            conn.execute(
                text("INSERT INTO post_places (post_id, admin_unit_id) VALUES (:p, :u)"),
                {"p": pid, "u": unit_ids[code]},
            )
    return ids


def test_digest_shows_posts_apart_from_articles(connection):
    ids = _seed(connection)
    unit = {
        r[0]: r[1]
        for r in connection.execute(
            text("SELECT code, id FROM admin_units WHERE code IN ('99001', '99002', '98001')")
        )
    }
    _seed_posts(
        connection,
        DAY,
        unit,
        [
            (
                "Đường ở phường Thử A ngập sâu mà chưa ai xử lý",
                "negative",
                ["99001"],
                [". sau", "ngập sâu"],
            ),
            ("Khói bụi ở phường Thử A quá nhiều", "negative", ["99001"], ["khói bụi"]),
            ("Cầu mới ở xã Cũ đẹp quá", "positive", ["98001"], ["đẹp"]),
            ("Có ai biết lịch cắt điện không", None, [], []),
        ],
    )
    _seed_posts(
        connection, DAY - dt.timedelta(days=1), unit, [("Hôm qua mưa to", "neutral", [], [])]
    )
    d = build_digest(connection, DAY, days=7)
    assert d["totals"]["articles"] == 3  # articles unchanged by posts
    posts = d["posts"]
    assert posts["totals"] == {
        "posts": 4,
        "negative": 2,
        "neutral": 0,
        "positive": 1,
        "unscored": 1,
    }
    assert [s["total"] for s in posts["series"]][-2:] == [1, 4]
    communes = {c["code"]: c for c in posts["communes"]}
    assert communes["99001"]["posts"] == 2 and communes["99001"]["negative"] == 2
    assert (
        communes["99002"]["name"] == "Xã Thử B" and communes["99002"]["posts"] == 1
    )  # old unit → new
    assert posts["negative_posts"][0]["phrases"] == ["ngập sâu"]  # ". sau" is not a tag
    assert posts["by_source"][0] == {
        "name": "facebook",
        "total": 4,
        "negative": 2,
        "neutral": 0,
        "positive": 1,
        "unscored": 1,
    }
    html = render_html(d)
    assert "Ý kiến người dân trên mạng xã hội" in html and "Đường ở phường Thử A ngập sâu" in html
    assert "Người Riêng Tư" not in html  # authors are private persons
    # media staff correct a post's label from the digest like an article's (POST post_id)
    for p in posts["negative_posts"]:
        assert f'<form class="fix" data-post="{p["id"]}">' in html
    assert "body.post_id = Number(f.dataset.post)" in html
    assert ids  # the articles' section is still there
    assert "Cháy lớn thiêu rụi" in html


def test_tag_chips_are_words_not_tokenisation_artefacts(connection):
    ids = _seed(connection)
    connection.execute(
        text("UPDATE article_scores SET reasons = CAST(:r AS jsonb) WHERE article_id = :a"),
        {
            "a": ids["neg1"],
            "r": json.dumps(
                [
                    {"kind": "phrase", "text": t}
                    for t in (". sau", "sau khi", "cháy_lớn", ", của", "2026", "thiêu rụi .")
                ],
                ensure_ascii=False,
            ),
        },
    )
    d = build_digest(connection, DAY)
    assert d["negative_articles"][0]["phrases"] == ["cháy lớn", "thiêu rụi"]
    html = render_html(d)
    assert (
        '<span class="pill">. sau</span>' not in html
        and '<span class="pill">cháy lớn</span>' in html
    )


def _seed_province(connection, engine) -> None:
    """A realistic day on the shipped units: 30 articles over 10 communes, 12 posts."""
    from gis.admin_units import load_reference_units

    load_reference_units(engine, REPO / "data" / "admin")
    codes = [
        r[0]
        for r in connection.execute(
            text(
                "SELECT code FROM admin_units WHERE level = 'commune' AND valid_to IS NULL AND geom IS NOT NULL "
                "AND province_code = '37' ORDER BY code LIMIT 10"
            )
        )
    ]
    unit = dict(
        connection.execute(
            text("SELECT code, id FROM admin_units WHERE code = ANY(:c) AND valid_to IS NULL"),
            {"c": codes},
        ).all()
    )
    labels = ("negative", "neutral", "positive")
    for n in range(30):
        label = labels[n % 3]
        aid = connection.execute(
            text(
                "INSERT INTO articles (url, canonical_url, title, lead, text, published_at, content_hash) "
                "VALUES (:u, :u, :t, 'Tóm tắt.', 'Nội dung.', :p, :h) RETURNING id"
            ),
            {
                "u": f"https://bao.test/pdf/{n}",
                "t": f"Tin số {n} về đời sống người dân trong tỉnh",
                "p": dt.datetime.combine(DAY, dt.time(7 + n % 12, 0), tzinfo=VN),
                "h": f"pdf{n}",
            },
        ).scalar_one()
        probs = {"negative": 0.1, "neutral": 0.1, "positive": 0.1, label: 0.8}
        reasons = [
            {"kind": "sentence", "text": "Câu nêu lý do của nhãn.", "score": 0.8},
            {"kind": "phrase", "text": ". sau"},
            {"kind": "phrase", "text": "ô_nhiễm"},
        ]
        connection.execute(
            text(
                "INSERT INTO article_scores (article_id, model_version, label, probabilities, topic, reasons) "
                "VALUES (:a, 'sentiment-test', :l, CAST(:p AS jsonb), 'environment_pollution', CAST(:r AS jsonb))"
            ),
            {
                "a": aid,
                "l": label,
                "p": json.dumps(probs),
                "r": json.dumps(reasons, ensure_ascii=False),
            },
        )
        connection.execute(
            text("INSERT INTO article_places (article_id, admin_unit_id) VALUES (:a, :u)"),
            {"a": aid, "u": unit[codes[n % len(codes)]]},
        )
    _seed_posts(
        connection,
        DAY,
        unit,
        [
            (
                f"Bài đăng số {n}: đường làng ngập nước, mong được sửa sớm",
                labels[n % 3],
                [codes[n % 4]],
                [". sau", "ngập"],
            )
            for n in range(12)
        ],
    )


@pytest.mark.chromium
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_pdf_is_a4_and_page_one_is_filled(connection, engine, tmp_path):
    import re
    import subprocess

    _seed_province(connection, engine)
    d = build_digest(connection, DAY)
    assert len(d["communes"]) >= 10 and d["posts"]["totals"]["posts"] == 12
    pdf = render_pdf(d)
    (tmp_path / "digest.pdf").write_bytes(pdf)
    boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)
    assert boxes, "no page size in the PDF"
    for w, h in boxes:  # A4 = 210 x 297 mm = 595.3 x 841.9 pt (US Letter is 612 x 792)
        assert abs(float(w) - 595.3) < 2 and abs(float(h) - 841.9) < 2, (w, h)
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed: page fill not checked")
    page1 = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", "-layout", str(tmp_path / "digest.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = [ln for ln in page1.splitlines() if ln.strip()]
    # the map section starts on page 1 (a section kept whole used to push it to page 2)
    assert "Bản đồ sắc thái theo xã, phường" in page1, page1[:500]
    assert len(lines) >= 20, f"page 1 has only {len(lines)} lines of text"
    assert (
        ". sau"
        not in subprocess.run(
            ["pdftotext", str(tmp_path / "digest.pdf"), "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
