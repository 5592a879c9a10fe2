"""`ioc run`: scheduled jobs through the real APScheduler and its job store in the real
PostGIS; real `ioc run` processes (two at once, one killed with SIGKILL mid-crawl) crawling
the offline test news site; the digest built at its hour, stored and served from the store."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from crawler.localsite import LocalSite
from tests.crawler.conftest import ARTICLE_PATHS, SITE_DIR, SITES_TEMPLATE

pytestmark = [pytest.mark.postgis]


# A database of this module's own (own_database_url, tests/conftest.py):
# the digest of a day counts every article of that day, so articles other modules crawled
# from the test site (published 2025-08-03) would be counted.
@pytest.fixture(scope="module")
def database_url(own_database_url):
    return own_database_url


@pytest.fixture(scope="module")
def engine(own_engine):
    return own_engine


REPO = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
CRAWL = "crawl:testsite"


def _clean(engine, base: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM stored_digests"))
        conn.execute(text("DELETE FROM job_runs"))
        conn.execute(text("DELETE FROM apscheduler_jobs"))
        if base:
            conn.execute(text("DELETE FROM articles WHERE url LIKE :b"), {"b": base + "%"})
            conn.execute(
                text("DELETE FROM crawl_failures WHERE source_name = 'testsite' OR url LIKE :b"),
                {"b": base + "%"},
            )


@pytest.fixture()
def site(engine):
    with LocalSite(SITE_DIR) as s:
        _clean(engine, s.base)
        yield s
        _clean(engine, s.base)


@pytest.fixture()
def service_env(site, database_url, tmp_path):
    sites_file = tmp_path / "sites.yaml"
    sites_file.write_text(SITES_TEMPLATE.replace("{base}", site.base), encoding="utf-8")
    return {
        **os.environ,
        "IOC_DATABASE_URL": database_url,
        "IOC_STATE_DIR": str(tmp_path / "state"),
        "IOC_CRAWL_SITES_FILE": str(sites_file),
        "IOC_CRAWL_DOWNLOAD_DELAY": "0",
        "IOC_CRAWL_AUTOTHROTTLE": "false",
        "IOC_CRAWL_SCORING": "false",
        "IOC_SCHEDULE_DISABLED": "digest,imagery,backup,retrain",
        "IOC_SCHEDULE_POLL_SECONDS": "0.5",
        "IOC_LOG_LEVEL": "INFO",
        "PYTHONWARNINGS": "ignore",
    }


def _start_service(env: dict, tmp_path: Path, tag: str) -> subprocess.Popen:
    log = open(tmp_path / f"run-{tag}.log", "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "ioc.cli", "run", "--no-api"],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=log,
    )


def _ioc(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ioc.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _runs(engine, job: str = CRAWL) -> list:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT id, status, error, counts, pid FROM job_runs WHERE job = :j ORDER BY id"
                ),
                {"j": job},
            )
        )


def _wait(cond, timeout: float, what: str, logs: list[Path] = ()):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.3)
    tails = "\n".join(
        f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:] for p in logs if p.exists()
    )
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _articles(engine, base: str) -> list:
    with engine.connect() as conn:
        return list(
            conn.execute(text("SELECT url FROM articles WHERE url LIKE :b"), {"b": base + "%"})
        )


@pytest.mark.slow
def test_two_services_run_each_turn_once(engine, site, service_env, tmp_path):
    logs = [tmp_path / "run-a.log", tmp_path / "run-b.log"]
    a = _start_service(service_env, tmp_path, "a")
    b = _start_service(service_env, tmp_path, "b")
    try:
        # a new crawl job's first turn is at start: both processes reach it
        _wait(
            lambda: [r for r in _runs(engine) if r.status == "succeeded"],
            120,
            "the first crawl",
            logs,
        )
        time.sleep(3)  # the other process has had every chance to run the same turn
        runs = _runs(engine)
        assert len(runs) == 1, runs
        # the next turn, made "now" through the shared job store: again one run in all
        out = _ioc(service_env, "jobs", "trigger", CRAWL)
        assert out.returncode == 0, out.stderr
        _wait(
            lambda: len([r for r in _runs(engine) if r.status == "succeeded"]) == 2,
            120,
            "the triggered crawl",
            logs,
        )
        time.sleep(3)
        runs = _runs(engine)
        assert [r.status for r in runs] == ["succeeded", "succeeded"], runs
        assert {r.pid for r in runs} <= {a.pid, b.pid}
    finally:
        _stop(a)
        _stop(b)
    urls = [r.url for r in _articles(engine, site.base)]
    assert len(urls) == len(set(urls)) == len(ARTICLE_PATHS)
    # `ioc jobs` lists them, as a table and as JSON
    listed = _ioc(service_env, "jobs", "--job", "crawl", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["job"] for r in rows] == [CRAWL, CRAWL]
    assert all(r["counts"]["outlet"] == "testsite" and r["finished_at"] for r in rows)
    table = _ioc(service_env, "jobs")
    assert table.returncode == 0 and CRAWL in table.stdout and "succeeded" in table.stdout


@pytest.mark.slow
def test_killed_service_run_is_failed_then_next_turn_completes(engine, site, service_env, tmp_path):
    env = {
        **service_env,
        "IOC_CRAWL_DOWNLOAD_DELAY": "0.4",
        "IOC_CRAWL_CONCURRENCY_PER_DOMAIN": "1",
    }
    logs = [tmp_path / "run-killed.log", tmp_path / "run-again.log"]
    victim = _start_service(env, tmp_path, "killed")
    try:
        # kill -9 while the crawl is running and has stored part of the articles
        _wait(
            lambda: (
                [r for r in _runs(engine) if r.status == "running"] and _articles(engine, site.base)
            ),
            120,
            "a crawl in progress",
            logs,
        )
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
    stored_at_kill = len(_articles(engine, site.base))
    assert 0 < stored_at_kill < len(ARTICLE_PATHS)
    time.sleep(2)
    # the crawl child died with its parent: nothing more is stored
    assert len(_articles(engine, site.base)) == stored_at_kill
    [run] = _runs(engine)
    assert run.status == "running"  # nobody has noticed yet

    again = _start_service(env, tmp_path, "again")
    try:
        # on start, the dead process's run is reported as failed, with the reason
        _wait(lambda: _runs(engine)[0].status == "failed", 60, "the killed run marked failed", logs)
        first = _runs(engine)[0]
        assert "interrupted" in first.error and str(victim.pid) in first.error
        # the job's next turn (made now) runs it again, to the end
        out = _ioc(env, "jobs", "trigger", CRAWL)
        assert out.returncode == 0, out.stderr
        _wait(
            lambda: any(r.status == "succeeded" for r in _runs(engine)), 180, "the next crawl", logs
        )
    finally:
        _stop(again)
    statuses = [r.status for r in _runs(engine)]
    assert statuses == ["failed", "succeeded"], statuses
    urls = [r.url for r in _articles(engine, site.base)]
    assert len(urls) == len(set(urls))
    assert {u.removeprefix(site.base) for u in urls} == ARTICLE_PATHS


# ------------------------------------------------------------------------------ digest


def _seed_scored_article(engine, base: str, title: str) -> int:
    with engine.begin() as conn:
        article_id = conn.execute(
            text(
                "INSERT INTO articles (url, canonical_url, title, text, published_at, content_hash, relevant) "
                "VALUES (:u, :u, :t, :x, '2025-08-04T09:15:00+07:00', md5(:u), true) RETURNING id"
            ),
            {
                "u": base + "/xa-hoi/digest-test-9001.html",
                "t": title,
                "x": "Người dân xã Thanh Liêm phản ánh kênh mương bị ô nhiễm kéo dài.",
            },
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO article_scores (article_id, model_version, label, probabilities, topic) "
                "VALUES (:a, 'test', 'negative', CAST(:p AS jsonb), 'environment')"
            ),
            {
                "a": article_id,
                "p": json.dumps({"negative": 0.9, "neutral": 0.08, "positive": 0.02}),
            },
        )
    return article_id


def test_digest_built_at_its_hour_stored_and_served_from_the_store(
    engine, database_url, site, tmp_path, monkeypatch
):
    from aiosmtpd.controller import Controller

    from ioc.run import Service
    from ioc.scheduler import ScheduleSettings

    title = "Kênh mương Thanh Liêm ô nhiễm kéo dài"
    _seed_scored_article(engine, site.base, title)
    monkeypatch.setenv("IOC_CRAWL_SITES_FILE", str(tmp_path / "none.yaml"))
    # delivery to a real SMTP server on 127.0.0.1 (the SMTP details are tested in test_delivery.py)
    received: list[bytes] = []

    class Inbox:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope.original_content or envelope.content)
            return "250 OK"

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        smtp_port = sock.getsockname()[1]
    inbox = Controller(Inbox(), hostname="127.0.0.1", port=smtp_port)
    inbox.start()
    recipients = tmp_path / "recipients.yaml"
    recipients.write_text("default: ['Ban biên tập <bbt@example.vn>']\n", encoding="utf-8")
    for key, value in {
        "IOC_SMTP_HOST": "127.0.0.1",
        "IOC_SMTP_PORT": str(smtp_port),
        "IOC_SMTP_STARTTLS": "false",
        "IOC_SMTP_FROM": "IOC <ioc@example.vn>",
        "IOC_DELIVERY_RECIPIENTS_FILE": str(recipients),
        "IOC_DELIVERY_ATTEMPTS": "1",
    }.items():
        monkeypatch.setenv(key, value)
    # the clock of the jobs: the digest's hour on 5 August 2025
    at_hour = dt.datetime(2025, 8, 5, 6, 30, tzinfo=TZ)
    settings = ScheduleSettings(
        disabled=["crawl", "imagery", "backup", "retrain"], poll_seconds=0.2
    )
    service = Service(
        database_url, tmp_path / "state", clock=lambda: at_hour, schedule_settings=settings
    )
    service.start()
    try:
        job = service.scheduler.get_job("digest")
        # stored with its cron trigger: the next turn is 06:30 in the province's time zone
        nxt = job.next_run_time.astimezone(TZ)
        assert (nxt.hour, nxt.minute) == (6, 30)
        assert service.scheduler.get_job("digest").next_run_time > dt.datetime.now(dt.UTC)
        # the hour comes: the turn is made now in the job store, the scheduler runs it
        service.scheduler.modify_job("digest", next_run_time=dt.datetime.now(dt.UTC))
        _wait(
            lambda: [r for r in _runs(engine, "digest") if r.status != "running"],
            300,
            "the digest run",
        )
    finally:
        service.stop()
        inbox.stop()
    [run] = _runs(engine, "digest")
    assert run.status == "succeeded", run.error
    assert run.counts["day"] == "2025-08-04" and run.counts["articles"] >= 1
    # delivered after it was stored: one message to the one recipient, the digest as its HTML part
    assert run.counts["delivery"]["sent"] == 1 and run.counts["delivery"]["ok"]
    [raw] = received
    message = email.message_from_bytes(raw, policy=email.policy.default)
    html_part = message.get_body(("html",))
    assert title in html_part.get_content()
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT * FROM stored_digests WHERE day = '2025-08-04'")).one()
    assert title in stored.html
    assert stored.data["date"] == "2025-08-04"
    assert (stored.pdf or b"").startswith(b"%PDF") or stored.pdf_error
    assert stored.run_id == run.id
    assert len(stored.delivery["sent"]) == 1 and stored.delivery["ok"]

    # served as stored: the article's title changes afterwards, the 4 August digest does not
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE articles SET title = 'Đã sửa sau' WHERE url LIKE :b"),
            {"b": site.base + "%"},
        )
    from starlette.testclient import TestClient

    from api.app import create_app
    from api.settings import ApiSettings

    with TestClient(create_app(ApiSettings(), database_url, engine=engine)) as client:
        page = client.get("/digest/2025-08-04")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert title in page.text and "Đã sửa sau" not in page.text
        data = client.get("/digest/2025-08-04?f=json").json()
        assert data["totals"]["articles"] >= 1 and data["date"] == "2025-08-04"
        if stored.pdf:
            assert client.get("/digest/2025-08-04?f=pdf").content == bytes(stored.pdf)
        # a day without a stored digest is still built on request
        assert client.get("/digest/2025-08-03?f=json").json()["totals"]["articles"] == 0
        listed = client.get("/service/digests").json()["digests"]
        assert listed[0]["date"] == "2025-08-04"
        runs = client.get("/service/runs", params={"job": "digest"}).json()
        assert [r["id"] for r in runs["runs"]] == [run.id] and runs["runs"][0][
            "status"
        ] == "succeeded"
        assert client.get(f"/service/runs/{run.id}").json()["counts"]["day"] == "2025-08-04"
        assert client.get("/service/runs/999999999").status_code == 404
        assert client.get("/service/runs", params={"status": "lost"}).status_code == 400


def test_bad_schedule_settings_are_one_sentence(tmp_path):
    from ioc.scheduler import ScheduleError, ScheduleSettings, load_schedule

    with pytest.raises(ScheduleError, match="IOC_SCHEDULE_DIGEST = '61 6 \\* \\* \\*'"):
        load_schedule(ScheduleSettings(digest="61 6 * * *"), ["a"])
    with pytest.raises(ScheduleError, match="time zone"):
        load_schedule(ScheduleSettings(timezone="Mars/Olympus"), ["a"])
    with pytest.raises(ScheduleError, match="unknown job"):
        load_schedule(ScheduleSettings(disabled=["crawl:nowhere"]), ["a"])
    f = tmp_path / "schedule.yaml"
    f.write_text(
        "crawl:\n  every_minutes: 15\n  outlets: {a: 5}\ndigest: '0 7 * * *'\n", encoding="utf-8"
    )
    schedule = load_schedule(ScheduleSettings(file=f), ["a", "b"])
    by_name = {j.name: j for j in schedule.jobs}
    assert str(by_name["crawl:a"].trigger) == "interval[0:05:00]"
    assert str(by_name["crawl:b"].trigger) == "interval[0:15:00]"
    assert "hour='7'" in str(by_name["digest"].trigger)
    f.write_text("digets: '0 7 * * *'\n", encoding="utf-8")
    with pytest.raises(ScheduleError, match="unknown key"):
        load_schedule(ScheduleSettings(file=f), ["a"])


def _service(database_url, state_dir: Path, clock, keep: list[str], monkeypatch, **extra):
    from ioc.run import Service
    from ioc.scheduler import JOB_KINDS, ScheduleSettings

    monkeypatch.setenv("IOC_CRAWL_SITES_FILE", str(state_dir / "none.yaml"))
    settings = ScheduleSettings(
        disabled=[k for k in JOB_KINDS if k not in keep], poll_seconds=0.2, **extra
    )
    service = Service(database_url, state_dir, clock=clock, schedule_settings=settings)
    service.start()
    return service


def _turn(engine, service, job: str, n: int, timeout: float = 120) -> list:
    """Make ``job``'s next turn now through the scheduler; wait for its n-th finished run."""
    service.scheduler.modify_job(job, next_run_time=dt.datetime.now(dt.UTC))
    return _wait(
        lambda: (lambda rs: rs if len(rs) >= n else None)(
            [r for r in _runs(engine, job) if r.status != "running"]
        ),
        timeout,
        f"run {n} of {job}",
    )


def test_nightly_backup_job_with_retention(engine, database_url, tmp_path, monkeypatch):
    _clean(engine)
    backups = tmp_path / "backups"
    monkeypatch.setenv("IOC_BACKUP_DIR", str(backups))
    monkeypatch.setenv("IOC_BACKUP_KEEP_DAILY", "2")
    monkeypatch.setenv("IOC_BACKUP_KEEP_WEEKLY", "0")
    now = {"t": dt.datetime(2025, 8, 1, 1, 30, tzinfo=TZ)}
    service = _service(database_url, tmp_path / "state", lambda: now["t"], ["backup"], monkeypatch)
    try:
        nxt = service.scheduler.get_job("backup").next_run_time.astimezone(TZ)
        assert (nxt.hour, nxt.minute) == (1, 30)
        for day in range(3):  # three nights
            now["t"] = dt.datetime(2025, 8, 1 + day, 1, 30, tzinfo=TZ)
            runs = _turn(engine, service, "backup", day + 1)
            assert runs[-1].status == "succeeded", runs[-1].error
    finally:
        service.stop()
    names = sorted(p.name for p in backups.iterdir())
    assert names == ["ioc-20250801T183000Z.iocbak", "ioc-20250802T183000Z.iocbak"]
    last = _runs(engine, "backup")[-1]
    assert last.counts["pruned"] == ["ioc-20250731T183000Z.iocbak"]
    assert last.counts["tables"] > 10 and last.counts["bytes"] > 0


def test_failing_job_is_recorded_failed_with_its_reason(
    engine, database_url, tmp_path, monkeypatch
):
    _clean(engine)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("x")
    monkeypatch.setenv("IOC_BACKUP_DIR", str(blocked / "backups"))
    service = _service(database_url, tmp_path / "state", None, ["backup"], monkeypatch)
    try:
        [run] = _turn(engine, service, "backup", 1)
    finally:
        service.stop()
    assert run.status == "failed"
    assert (
        run.error.startswith("BackupError: Cannot write the backup in")
        and str(blocked) in run.error
    )


def test_imagery_job_polls_the_intake_and_records_what_it_did(
    engine, database_url, tmp_path, monkeypatch
):
    """gis.intake.poll through the scheduler: an empty watch folder is a run with its counts; a
    watch folder that is gone is a failed run naming it (the scenes themselves are tested in
    tests/gis/test_intake*.py)."""
    _clean(engine)
    watch = tmp_path / "watch"
    watch.mkdir()
    monkeypatch.setenv("IOC_INTAKE_WATCH_DIR", str(watch))
    monkeypatch.delenv("IOC_STAC_URL", raising=False)
    service = _service(database_url, tmp_path / "state", None, ["imagery"], monkeypatch)
    try:
        [ok] = _turn(engine, service, "imagery", 1, timeout=300)
        shutil.rmtree(watch)  # (the intake keeps processed/ and rejected/ in it)
        runs = _turn(engine, service, "imagery", 2, timeout=300)
    finally:
        service.stop()
    assert ok.status == "succeeded", ok.error
    assert ok.counts["watch"]["discovered"] == 0 and "stac" not in ok.counts
    failed = runs[-1]
    assert (
        failed.status == "failed"
        and str(watch) in failed.error
        and "does not exist" in failed.error
    )


def test_retrain_job_waits_for_enough_corrections(engine, database_url, tmp_path, monkeypatch):
    _clean(engine)
    with engine.connect() as conn:
        pending = conn.execute(
            text(
                "SELECT count(DISTINCT coalesce('a' || article_id, 'p' || post_id)) "
                "FROM label_feedback WHERE field = 'sentiment' AND used_in_model_version IS NULL"
            )
        ).scalar_one()
    service = _service(
        database_url,
        tmp_path / "state",
        None,
        ["retrain"],
        monkeypatch,
        retrain_min_corrections=pending + 1,
    )
    try:
        [run] = _turn(engine, service, "retrain", 1)
    finally:
        service.stop()
    assert run.status == "succeeded", run.error
    assert run.counts["corrections_pending"] == pending
    assert f"a proposal needs {pending + 1}" in run.counts["skipped"]
    assert not (tmp_path / "state" / "nlp-models").exists()  # nothing trained, nothing promoted


def test_retrain_job_proposes_with_post_corrections(engine, database_url, tmp_path, monkeypatch):
    """A citizen's post corrected by media staff counts towards a proposal and reaches the
    genre retraining (the recipe of `ioc nlp retrain`), which never promotes from the job."""
    import nlp.registry
    from nlp.feedback import record_correction

    _clean(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM label_feedback"))
        post_id = conn.execute(
            text(
                "INSERT INTO posts (post_key, source, url, canonical_url, published_at, text, "
                "content_hash) VALUES ('job-retrain-1', 'facebook', NULL, NULL, now(), :t, md5(:t)) "
                "RETURNING id"
            ),
            {"t": "đường làng ngập nước mấy ngày rồi mà chưa ai xử lý"},
        ).scalar_one()
        record_correction(conn, item_id=post_id, label="negative", reviewer="tester", genre="post")
    seen = {}

    def fake_retrain_genre(registry, data_dir, corrections, **kwargs):
        seen.update(corrections=list(corrections), **kwargs)
        return nlp.registry.RetrainResult(
            version="2099.01.01.1",
            promoted=False,
            reason="test",
            candidate_scores={"article_macro_f1": 0.7, "post_macro_f1": 0.71},
            current_scores={"article_macro_f1": 0.7, "post_macro_f1": 0.7},
            current_version="2026.11.30.1",
            n_corrections=len(corrections),
            corrections_by_genre={"post": 1},
        )

    monkeypatch.setattr(nlp.registry, "retrain_genre", fake_retrain_genre)
    service = _service(
        database_url, tmp_path / "state", None, ["retrain"], monkeypatch, retrain_min_corrections=1
    )
    try:
        [run] = _turn(engine, service, "retrain", 1)
    finally:
        service.stop()
    assert run.status == "succeeded", run.error
    assert run.counts["corrections_pending"] == 1
    assert [(c["genre"], c["label"]) for c in seen["corrections"]] == [("post", "negative")]
    assert seen["tolerance"] == float("-inf")  # a proposal, never promoted by the job
    assert run.counts["not_worse_than_current"] is True
    assert run.counts["promoted"] is False


@pytest.mark.slow
def test_crawl_job_scores_and_places_articles_stored_unscored(engine, site, tmp_path):
    """An article stored while the scorer was off gets its score after the crawl."""
    from crawler.settings import CrawlSettings
    from ioc.jobs import Services, score_unscored
    from ioc.scheduler import JobRunner, RunContext, ScheduleSettings

    with engine.begin() as conn:
        article_id = conn.execute(
            text(
                "INSERT INTO articles (url, canonical_url, title, lead, text, published_at, content_hash, "
                "relevant, extra) VALUES (:u, :u, :t, :l, :x, now(), md5(:u), true, "
                '\'{"not_scored": "scoring switched off"}\') RETURNING id'
            ),
            {
                "u": site.base + "/xa-hoi/chua-cham-9002.html",
                "t": "Người dân xã Thanh Liêm bức xúc vì rác thải tràn lan",
                "l": "Rác thải sinh hoạt ùn ứ nhiều ngày tại xã Thanh Liêm, tỉnh Hà Nam gây ô nhiễm.",
                "x": "Rác thải sinh hoạt ùn ứ nhiều ngày khiến người dân xã Thanh Liêm bức xúc. "
                "Mùi hôi bốc lên nồng nặc, chính quyền chưa có biện pháp xử lý dứt điểm.",
            },
        ).scalar_one()
    services = Services(
        database_url="",
        state_dir=tmp_path,
        schedule=ScheduleSettings(),
        crawl=CrawlSettings(scorer_ner=False),
    )
    ctx = RunContext(JobRunner(engine, {}, services), "crawl:testsite", 0, None)
    counts = score_unscored(ctx)
    assert counts["rescored"] >= 1
    with engine.connect() as conn:
        score = conn.execute(
            text("SELECT label, model_version FROM article_scores WHERE article_id = :a"),
            {"a": article_id},
        ).one()
        extra = conn.execute(
            text("SELECT extra FROM articles WHERE id = :a"), {"a": article_id}
        ).scalar_one()
    assert score.label in ("negative", "neutral", "positive") and score.model_version
    assert "not_scored" not in extra
    # (places need the admin units, which this database may not have: tests/crawler covers them)
