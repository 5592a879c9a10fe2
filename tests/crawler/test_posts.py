"""``ioc posts import``: social-listening exports -> posts, scores, places, published views.

Real PostGIS (tests/conftest.py); the shipped sentiment model and gazetteer.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from crawler.posts import PostFileError, RecordError, import_posts, map_record
from gis.admin_units import load_reference_units

pytestmark = pytest.mark.postgis
REPO = Path(__file__).resolve().parents[2]
SAMPLE_JSONL = REPO / "data" / "posts" / "sample_posts.jsonl"
SAMPLE_CSV = REPO / "data" / "posts" / "sample_posts.csv"


# A database of this module's own (own_database_url, tests/conftest.py): its tests count every
# row of posts, so posts other modules committed would be counted; and the reference units it
# loads and the posts it imports go with its database instead of staying in the session one.
@pytest.fixture(scope="module")
def database_url(own_database_url):
    return own_database_url


@pytest.fixture(scope="module")
def engine(own_engine):
    return own_engine


@pytest.fixture(scope="module")
def units(engine):
    load_reference_units(engine, REPO / "data" / "admin")
    return engine


@pytest.fixture(scope="module")
def scorer():
    from nlp.scoring import load_scorer

    return load_scorer(use_ner=False)


@pytest.fixture()
def clean(engine):
    """Posts are committed by the import: remove them after each test."""
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM posts"))


def _count(engine, sql: str, **params) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def _jsonl(path: Path, records: list) -> Path:
    path.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records)
        + "\n",
        encoding="utf-8",
    )
    return path


# --------------------------------------------------------------------------------------------
# mapping of one record
# --------------------------------------------------------------------------------------------


def test_aliases_of_common_export_tools_are_mapped():
    rec = map_record(
        {
            "Message": "Nước sạch ở xã Thanh Hà bị đục mấy hôm nay",
            "Permalink": "https://www.facebook.com/x/posts/1?utm_source=share",
            "from": {"name": "Người Dân", "id": "9"},
            "Created Time": "10/03/2026 09:15",
            "Network": "Facebook",
            "post_id": "9_1",
            "likes": 3,
        }
    )
    assert rec.text.startswith("Nước sạch") and rec.author == "Người Dân"
    assert rec.source == "facebook" and rec.external_id == "9_1"
    assert rec.canonical_url == "https://www.facebook.com/x/posts/1"
    assert rec.published.isoformat() == "2026-03-10T09:15:00+07:00"
    assert rec.extra == {"likes": 3}
    # the same post by URL has the same identity, whatever else the export says
    again = map_record({"text": "khác", "url": "https://WWW.facebook.com/x/posts/1#c"})
    assert again.post_key == rec.post_key
    # without URL and id: who + when + what
    a = map_record({"text": "Hay quá", "user": "a", "date": "2026-03-10"}, default_source="zalo")
    b = map_record({"text": "Hay quá", "user": "b", "date": "2026-03-10"}, default_source="zalo")
    assert a.source == "zalo" and a.post_key != b.post_key


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"url": "https://x.vn/1"}, "no text"),
        ({"text": None}, "no text"),
        ({"text": 12345}, "text is a number, not a string"),
        ({"message": ["a", "b"]}, "message is a list, not a string"),
        ({"text": "x" * (5 * 1024 * 1024)}, "too long (5,242,880 characters"),
        ({"text": "Ngập <p>ở phường</p> Phủ Lý"}, "contains HTML ('<p>')"),
        ({"text": "Ngập ở phường Phủ Lý &amp; Phù Vân"}, "contains HTML ('&amp;')"),
        ({"text": "   \n "}, "text is empty"),
        ({"text": "Ngập", "date": "hôm qua"}, "published 'hôm qua' is not a date"),
        ({"text": "Ngập", "created_time": "32/13/2026"}, "is not a date"),
        ({"text": "Ngập", "timestamp": "1999-01-01"}, "not a plausible date"),
        ({"text": "Ngập", "link": "javascript:alert(1)"}, "is not an http(s) URL"),
        (["text"], "not a JSON object"),
    ],
)
def test_bad_records_are_named(raw, message):
    with pytest.raises(RecordError, match=None) as info:
        map_record(raw)
    assert message in str(info.value)


def test_html_can_be_stripped_and_comparisons_stay_text():
    rec = map_record(
        {"text": "<p>Ngập ở <b>Phủ Lý</b></p><p>Nhanh &amp; sâu</p><script>x()</script>"},
        strip_html=True,
    )
    assert rec.text == "Ngập ở Phủ Lý\nNhanh & sâu"
    # a '<' in plain text is not HTML
    assert map_record({"text": "giá < 5 triệu, lãi > 3%"}).text == "giá < 5 triệu, lãi > 3%"


# --------------------------------------------------------------------------------------------
# import into PostGIS
# --------------------------------------------------------------------------------------------


def test_import_scores_places_and_reimport_does_not_duplicate(units, scorer, clean):
    engine = units
    report = import_posts(engine, SAMPLE_JSONL, scorer=scorer)
    assert (report.records, report.new, report.failed) == (7, 7, 0)
    # every post is scored, or stored unscored with the scorer's reason (the model shipped
    # before issue 11 refuses text typed without diacritics)
    assert report.scored + report.not_scored == 7 and report.scored >= 6
    assert report.model_version == scorer.model_version
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT p.external_id, p.source, p.author, s.genre, s.label, s.model_version "
                "FROM posts p LEFT JOIN post_scores s ON s.post_id = p.id ORDER BY p.external_id"
            )
        ).all()
        reasons = conn.execute(
            text(
                "SELECT count(*) FROM posts p WHERE NOT EXISTS (SELECT 1 FROM post_scores s "
                "WHERE s.post_id = p.id) AND p.extra ? 'not_scored'"
            )
        ).scalar_one()
        places = conn.execute(
            text(
                "SELECT p.external_id, u.code FROM post_places pp JOIN posts p ON p.id = pp.post_id "
                "JOIN admin_units u ON u.id = pp.admin_unit_id"
            )
        ).all()
    assert len(rows) == 7 and {r.genre for r in rows if r.label} == {"post"}
    assert {r.label for r in rows if r.label} <= {"negative", "neutral", "positive"}
    assert reasons == report.not_scored
    by_id = {r.external_id: r for r in rows}
    assert by_id["fb-0001"].author == "Nguyễn Văn An" and by_id["zl-0004"].source == "zalo"
    placed = {(pid, code) for pid, code in places}
    assert ("fb-0001", "13285") in placed  # "phường Phủ Lý", a new (2025) ward
    assert ("fb-0003", "13318") in placed  # "Chau Son" typed without diacritics
    # the same file again: updated, not duplicated; the scores are upserted per model version
    again = import_posts(engine, SAMPLE_JSONL, scorer=scorer)
    assert (again.new, again.updated) == (0, 7)
    assert _count(engine, "SELECT count(*) FROM posts") == 7
    assert _count(engine, "SELECT count(*) FROM post_scores") == report.scored
    # articles are untouched by posts
    assert _count(engine, "SELECT count(*) FROM articles WHERE url LIKE '%facebook%'") == 0


def test_published_views_posts_and_commune_sentiment_by_genre(units, scorer, clean):
    engine = units
    import_posts(engine, SAMPLE_JSONL, scorer=scorer)
    with engine.connect() as conn:
        cols = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT attname FROM pg_attribute WHERE attrelid = 'api_posts'::regclass AND attnum > 0"
                )
            )
        ]
        assert "author" not in cols and {"text", "sentiment", "place_codes", "geom"} <= set(cols)
        one = conn.execute(
            text(
                "SELECT sentiment, place_codes, ST_GeometryType(geom) AS g FROM api_posts "
                "WHERE url LIKE '%1000000000000001'"
            )
        ).one()
        assert one.sentiment in ("negative", "neutral", "positive") and "13285" in one.place_codes
        assert one.g == "ST_MultiPoint"
        rows = conn.execute(
            text(
                "SELECT id, genre, articles, negative + neutral + positive AS labelled FROM api_commune_sentiment "
                "WHERE commune_code = '13285' AND day = '2026-03-10'"
            )
        ).all()
    post_rows = [r for r in rows if r.genre == "post"]
    assert len(post_rows) == 1 and post_rows[0].id == "13285:2026-03-10:post"
    # fb-0001 and zl-0004 mention Phủ Lý on 10 March (Vietnam time)
    assert post_rows[0].articles == post_rows[0].labelled == 2


def test_exact_copies_of_long_texts_are_linked_short_ones_are_not(units, clean, tmp_path):
    engine = units
    long = "Đề nghị chính quyền phường Phủ Lý kiểm tra việc đổ trộm rác thải ven đê suốt tuần qua"
    path = _jsonl(
        tmp_path / "dup.jsonl",
        [
            {"text": long, "url": "https://fb.test/p/1", "date": "2026-03-10 08:00"},
            {"text": long, "url": "https://fb.test/p/2", "date": "2026-03-10 09:00"},
            {"text": "Hay quá", "url": "https://fb.test/p/3"},
            {"text": "Hay quá", "url": "https://fb.test/p/4"},
        ],
    )
    report = import_posts(engine, path)
    assert (report.new, report.duplicates) == (4, 1)
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT url, duplicate_of IS NOT NULL FROM posts")).all())
        published = conn.execute(text("SELECT count(*) FROM api_posts")).scalar_one()
    assert rows == {
        "https://fb.test/p/1": False,
        "https://fb.test/p/2": True,
        "https://fb.test/p/3": False,
        "https://fb.test/p/4": False,
    }
    assert published == 3
    # re-import: the first copy stays the first copy
    import_posts(engine, path)
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM posts WHERE duplicate_of IS NOT NULL")
            ).scalar_one()
            == 1
        )


class _BrokenScorer:
    model_version = "broken"

    def __init__(self) -> None:
        self.calls = 0

    def score_records(self, records, genre="auto"):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("scorer crashed")
        return [
            {
                **r,
                "sentiment": {"label": "neutral", "scores": {"neutral": 1.0}},
                "genre": genre,
                "confidence": 0.5,
                "places": [],
                "model_version": "broken",
            }
            for r in records
        ]


def test_nothing_half_written_when_the_import_fails(units, clean, tmp_path):
    engine = units
    path = _jsonl(
        tmp_path / "p.jsonl",
        [
            {"text": f"Bài số {i} về đường phố ở phường Phủ Lý", "url": f"https://fb.test/h/{i}"}
            for i in range(5)
        ],
    )
    scorer = _BrokenScorer()
    with pytest.raises(RuntimeError, match="scorer crashed"):
        import_posts(engine, path, scorer=scorer, batch_size=2)
    assert scorer.calls == 2
    assert _count(engine, "SELECT count(*) FROM posts") == 0
    # the scorer's genre and confidence are stored when it gives them
    report = import_posts(engine, path, scorer=_BrokenScorer(), batch_size=10)
    assert report.scored == 5
    with engine.connect() as conn:
        assert conn.execute(text("SELECT DISTINCT genre, confidence FROM post_scores")).all() == [
            ("post", 0.5)
        ]


def test_unreadable_files_raise_one_error(tmp_path, engine):
    with pytest.raises(PostFileError, match="does not exist"):
        import_posts(engine, tmp_path / "missing.jsonl")
    with pytest.raises(PostFileError, match="folder"):
        import_posts(engine, tmp_path)
    xlsx = tmp_path / "export.xlsx"
    xlsx.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(PostFileError, match="binary file"):
        import_posts(engine, xlsx)
    utf16 = tmp_path / "p.csv"
    utf16.write_bytes("text\nĐường ngập\n".encode("utf-16-le"))
    with pytest.raises(PostFileError, match="not UTF-8"):
        import_posts(engine, utf16)
    notext = tmp_path / "q.csv"
    notext.write_text("url,author\nhttps://a.vn,b\n", encoding="utf-8")
    with pytest.raises(PostFileError, match="no text column"):
        import_posts(engine, notext)


# --------------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------------


def test_cli_reports_bad_records_with_line_numbers_and_goes_on(run_ioc, units, clean, tmp_path):
    tag = uuid.uuid4().hex[:8]
    path = _jsonl(
        tmp_path / "mixed.jsonl",
        [
            {
                "text": "Đường ở phường Phủ Lý ngập sâu, xe chết máy hàng loạt",
                "url": f"https://fb.test/{tag}/1",
                "date": "2026-03-10 08:00",
            },
            {"url": f"https://fb.test/{tag}/2"},  # 2: no text
            {"text": 42},  # 3: not a string
            {"text": "x" * (5 * 1024 * 1024)},  # 4: 5 MB
            {"text": "<div>Ngập ở Phủ Lý</div>"},  # 5: HTML
            {"text": "Ngập ở Phủ Lý", "date": "hôm qua"},  # 6: bad date
            "{not json",  # 7
            "",  # 8: blank, skipped
            {
                "text": "Cầu mới ở Phù Vân đẹp quá, đi lại thuận tiện",
                "url": f"https://fb.test/{tag}/9",
            },
        ],
    )
    res = run_ioc("posts", "import", str(path), "--no-score", "--no-ner")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert (summary["records"], summary["stored"], summary["failed"]) == (8, 2, 6)
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith(str(path))]
    assert [ln.split(":")[1] for ln in errors] == ["2", "3", "4", "5", "6", "7"]
    assert "no text" in errors[0] and "not a string" in errors[1] and "too long" in errors[2]
    assert "HTML" in errors[3] and "not a date" in errors[4] and "not valid JSON" in errors[5]
    assert summary["placed"] == 2  # places found without the model
    # --strip-html takes the HTML record
    res = run_ioc("posts", "import", str(path), "--no-score", "--no-ner", "--strip-html")
    assert json.loads(res.stdout)["stored"] == 3


def test_cli_csv_and_exit_statuses(run_ioc, units, clean, tmp_path):
    res = run_ioc("posts", "import", str(SAMPLE_CSV), "--no-score", "--no-ner")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["stored"] == 2
    # a CSV whose rows span several lines: the line where the record starts is reported
    csv_path = tmp_path / "export.csv"
    csv_path.write_text(
        "Content;Link;Date\n"
        '"dòng một\ndòng hai ở phường Phủ Lý";https://z.test/1;2026-03-10\n'
        ";https://z.test/2;2026-03-10\n"
        '"ổn";https://z.test/3;ngày mai\n',
        encoding="utf-8",
    )
    res = run_ioc("posts", "import", str(csv_path), "--no-score", "--no-ner", "--source", "Zalo")
    assert res.returncode == 0, res.stderr
    assert [ln.split(":")[1] for ln in res.stderr.splitlines() if ln.startswith(str(csv_path))] == [
        "4",
        "5",
    ]
    # every record failed: exit 1, nothing stored
    before = _count(units, "SELECT count(*) FROM posts")
    bad = _jsonl(tmp_path / "bad.jsonl", [{"text": 1}, {"message": ""}])
    res = run_ioc("posts", "import", str(bad), "--no-score", "--no-ner")
    assert res.returncode == 1 and "none of the 2 records" in res.stderr
    assert _count(units, "SELECT count(*) FROM posts") == before
    # unreadable file, unknown format: exit 2 with one line
    res = run_ioc("posts", "import", str(tmp_path / "nope.jsonl"))
    assert res.returncode == 2 and "does not exist" in res.stderr
    res = run_ioc("posts", "import", str(bad), "--format", "xml")
    assert res.returncode == 2 and "xml" in res.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    res = run_ioc("posts", "import", str(empty), "--no-score", "--no-ner")
    assert res.returncode == 2 and "no posts" in res.stderr


def test_demo_stage_imports_the_sample_posts(units, clean):
    from types import SimpleNamespace

    from crawler.posts import demo_stage

    said: list[str] = []
    demo_stage(SimpleNamespace(engine=units, data_dir=REPO / "data", echo=said.append))
    assert _count(units, "SELECT count(*) FROM posts") == 9
    assert _count(units, "SELECT count(*) FROM post_places") >= 7
    assert any("sample_posts.jsonl: 7 posts stored" in s for s in said), said


@pytest.mark.slow
def test_cli_shows_progress_on_long_imports(run_ioc, units, clean, tmp_path):
    path = _jsonl(
        tmp_path / "many.jsonl",
        [
            {
                "text": f"Ý kiến số {i} về đường phố phường Phủ Lý",
                "url": f"https://fb.test/many/{i}",
            }
            for i in range(1300)
        ],
    )
    res = run_ioc("posts", "import", str(path), "--no-score", "--no-ner", "--batch-size", "300")
    assert res.returncode == 0, res.stderr
    progress = [ln for ln in res.stderr.splitlines() if ln.startswith("posts import:")]
    assert progress == ["posts import: 1200 records read, 1200 stored, 0 refused"]  # ~ every 1,000
    assert json.loads(res.stdout)["new"] == 1300


def test_a_post_the_database_refuses_is_named_and_the_batch_goes_on(units, clean, tmp_path):
    path = _jsonl(
        tmp_path / "nul.jsonl",
        [
            {"text": "Bài một về đường phố phường Phủ Lý", "url": "https://fb.test/nul/1"},
            {"text": "Bài hai về chợ Phù Vân", "url": "https://fb.test/nul/2", "note": "a\u0000b"},
            {"text": "Bài ba về đê Châu Sơn", "url": "https://fb.test/nul/3"},
        ],
    )
    errors: list[tuple[str, str]] = []
    report = import_posts(units, path, on_error=lambda w, r: errors.append((w, r)))
    assert (report.new, report.failed) == (2, 1)
    assert errors[0][0] == "line 2" and "rejected by the database" in errors[0][1]
    assert _count(units, "SELECT count(*) FROM posts") == 2
