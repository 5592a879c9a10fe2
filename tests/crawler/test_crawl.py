"""Crawl the offline test site into a real PostGIS and check what a user would see."""

from __future__ import annotations

import signal
import time

import pytest
from sqlalchemy import text

from tests.crawler.conftest import ARTICLE_PATHS, run_crawl_process, start_crawl

pytestmark = [pytest.mark.postgis, pytest.mark.slow]


def _cleanup(engine, base: str) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM articles WHERE url LIKE :b"), {"b": base + "%"})
        conn.execute(
            text("DELETE FROM crawl_failures WHERE url LIKE :b OR source_name = 'testsite'"),
            {"b": base + "%"},
        )


@pytest.fixture()
def clean_db(engine, local_site):
    _cleanup(engine, local_site.base)
    yield engine
    _cleanup(engine, local_site.base)


def _articles(engine, base):
    with engine.connect() as conn:
        return {
            r.url.removeprefix(base): r
            for r in conn.execute(
                text("SELECT * FROM articles WHERE url LIKE :b ORDER BY id"), {"b": base + "%"}
            )
        }


def _failures(engine, base):
    with engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT url, stage, reason FROM crawl_failures WHERE url LIKE :b"),
                {"b": base + "%"},
            )
        )


def test_crawl_fills_the_database(clean_db, local_site, database_url, tmp_path):
    engine = clean_db
    base = local_site.base
    conf = {"base": base, "state_dir": str(tmp_path), "database_url": database_url, "job": "full"}
    stats = run_crawl_process(conf, tmp_path, "1")
    arts = _articles(engine, base)
    assert set(arts) == ARTICLE_PATHS - {"/__slow/1.5/dac-biet/trang-cham-1012.html"} | {
        "/__slow/1.5/dac-biet/trang-cham-1012.html"
    }

    a = arts["/xa-hoi/xa-thanh-liem-nao-vet-kenh-1001.html"]
    assert a.title == "Xã Thanh Liêm ra quân nạo vét kênh mương trước mùa mưa"
    assert a.published_at.isoformat().startswith("2025-08-04T02:15:00")  # 09:15 +07:00 in UTC
    assert a.author == "Minh Anh"
    assert a.lead.startswith("Sáng 4/8, hơn 300 người dân")
    assert "Tin liên quan" not in a.text and "Ý kiến bạn đọc" not in a.text
    assert "Minh Anh" not in a.text
    assert a.relevant and "Thanh Liêm" in a.matched_terms
    assert a.language == "vi"
    assert a.canonical_url == base + "/xa-hoi/xa-thanh-liem-nao-vet-kenh-1001.html"

    plain = arts["/xa-hoi/phu-ly-sua-duong-1002.html"]  # no JSON-LD: date from the page text
    assert plain.published_at is not None and plain.author == "Thu Hà"

    other = arts["/kinh-te/ha-noi-hoi-cho-1005.html"]
    assert other.relevant is False

    copy = arts["/kinh-te/ban-sao-thanh-liem-1006.html"]  # syndicated: linked, not dropped
    # whichever was seen first is the original; the other points at it
    assert {a.duplicate_of, copy.duplicate_of} in ({None, a.id}, {None, copy.id})
    assert (a.duplicate_of or copy.duplicate_of) in (a.id, copy.id)

    legacy = arts["/dac-biet/tin-cu-tcvn3-1007.html"]
    assert legacy.title == "Huyện Kim Bảng tổng kết phong trào xây dựng nông thôn mới"
    assert "đường giao thông" in legacy.text

    broken = arts["/dac-biet/trang-loi-cu-phap-1008.html"]
    assert broken.title.startswith("Duy Tiên khai trương") and broken.published_at is None

    failures = {f.url.removeprefix(base): f for f in _failures(engine, base)}
    assert "HTTP 404" in failures["/dac-biet/mat-tich-1010.html"].reason
    assert "HTTP 500" in failures["/__error/500/dac-biet/loi-may-chu-1011.html"].reason
    assert any(k.startswith("/__loop/") for k in failures)
    assert failures["/dac-biet/khong-co-bai-1009.html"].stage in ("extract", "clean")
    assert "not XML" in failures["/bad-feed.xml"].reason
    enormous = failures["/__big/17000000/dac-biet/trang-khong-lo-1015.html"]
    assert (
        enormous.stage == "fetch" and "Cancelled" in enormous.reason or "size" in (enormous.reason)
    )
    assert "/private/bi-mat-1014.html" not in local_site.hits  # robots.txt obeyed
    assert stats.get("ioc/stored", 0) >= 9

    # second run: incremental — known articles are not fetched again, nothing duplicated
    hits_before = len([h for h in local_site.hits if h in ARTICLE_PATHS])
    run_crawl_process(conf, tmp_path, "2")
    hits_after = len([h for h in local_site.hits if h in ARTICLE_PATHS])
    assert hits_after == hits_before
    assert len(_articles(engine, base)) == len(arts)


def test_since_skips_older_articles(clean_db, local_site, database_url, tmp_path):
    conf = {
        "base": local_site.base,
        "state_dir": str(tmp_path),
        "database_url": database_url,
        "job": "since",
        "since": "2025-08-06T00:00:00+07:00",
    }
    run_crawl_process(conf, tmp_path)
    arts = _articles(clean_db, local_site.base)
    assert "/xa-hoi/kim-bang-ngo-doc-thuc-pham-1003.html" in arts
    assert "/xa-hoi/xa-thanh-liem-nao-vet-kenh-1001.html" not in arts
    assert "/dac-biet/tin-cu-tcvn3-1007.html" not in arts  # 2012


def test_resumes_after_a_kill(clean_db, local_site, database_url, tmp_path):
    conf = {
        "base": local_site.base,
        "state_dir": str(tmp_path),
        "database_url": database_url,
        "job": "resume",
        "settings": {"concurrency": 1, "concurrency_per_domain": 1, "download_delay": 0.7},
    }
    proc = start_crawl(conf, tmp_path, "a")
    deadline = time.time() + 60
    while time.time() < deadline and len(_articles(clean_db, local_site.base)) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    first = _articles(clean_db, local_site.base)
    assert 2 <= len(first) < len(ARTICLE_PATHS)
    hits_first = {h for h in local_site.hits if h in first}
    conf["settings"] = {"download_delay": 0.0}
    run_crawl_process(conf, tmp_path, "b")
    arts = _articles(clean_db, local_site.base)
    assert set(arts) == ARTICLE_PATHS
    # articles stored before the kill were not fetched again
    for path in hits_first:
        assert local_site.hits.count(path) == 1, path


def test_database_outage_loses_nothing(local_site, database_url, engine, tmp_path):
    base = local_site.base
    _cleanup(engine, base)
    try:
        dead = "postgresql://ioc@127.0.0.1:9/ioc"  # nothing listens on port 9
        conf = {"base": base, "state_dir": str(tmp_path), "database_url": dead, "job": "outage"}
        run_crawl_process(conf, tmp_path)
        spool = tmp_path / "crawl" / "jobs" / "outage" / "spool.jsonl"
        assert spool.exists()
        assert _articles(engine, base) == {}
        # the database is back: the next run writes the spooled items first
        conf["database_url"] = database_url
        run_crawl_process(conf, tmp_path, "again")
        assert set(_articles(engine, base)) == ARTICLE_PATHS
        assert not spool.exists()
        assert _failures(engine, base)  # dead letters were spooled too
    finally:
        _cleanup(engine, base)


def test_cli_run_contract(clean_db, local_site, database_url, tmp_path):
    """`ioc crawl run --site NAME --since DATE` against the database of IOC_DATABASE_URL."""
    import os
    import subprocess
    import sys

    from tests.crawler.conftest import SITES_TEMPLATE

    sites_file = tmp_path / "sites.yaml"
    sites_file.write_text(SITES_TEMPLATE.replace("{base}", local_site.base), encoding="utf-8")
    env = {
        **os.environ,
        "IOC_DATABASE_URL": database_url,
        "IOC_STATE_DIR": str(tmp_path),
        "IOC_CRAWL_DOWNLOAD_DELAY": "0",
        "IOC_CRAWL_AUTOTHROTTLE": "false",
    }
    ioc = [sys.executable, "-c", "from ioc.cli import main; main()"]
    done = subprocess.run(
        [
            *ioc,
            "crawl",
            "run",
            "--sites-file",
            str(sites_file),
            "--site",
            "testsite",
            "--since",
            "2025-08-07",
            "--log-level",
            "WARNING",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    arts = _articles(clean_db, local_site.base)
    assert set(arts) == {
        "/kinh-te/binh-luc-lua-mua-1004.html",
        "/kinh-te/ha-noi-hoi-cho-1005.html",
        "/__slow/1.5/dac-biet/trang-cham-1012.html",
        "/dac-biet/trang-loi-cu-phap-1008.html",
    }  # no date: cannot be skipped
    bad = subprocess.run(
        [*ioc, "crawl", "run", "--sites-file", str(sites_file), "--site", "nope"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "Unknown site 'nope'" in bad.stderr
