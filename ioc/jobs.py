"""The bodies of the scheduled jobs of ``ioc run`` (composition root: calls every package).

Each body takes a :class:`ioc.scheduler.RunContext` and returns its counts (stored in
``job_runs.counts``); raising records the run as failed with the exception's sentence.

- ``crawl:<outlet>``: the existing crawl entry point (``python -m crawler.run``, one process
  per crawl since Twisted's reactor cannot restart; killed with its parent), then articles
  stored without scores are scored and placed (``nlp.scoring`` + ``crawler.store``);
- ``digest``: ``nlp.digest`` built for the day, stored in ``stored_digests`` (HTML, PDF,
  JSON), then delivered (``ioc.delivery``, when present);
- ``imagery``: ``gis.intake.poll`` (new STAC / watch-folder scenes, detection and parcel alerts
  on each new usable pair);
- ``backup``: ``gis.db.backup`` archive + retention;
- ``retrain``: a candidate sentiment model trained with the staff corrections once enough
  new ones have accumulated, never promoted here (``nlp.registry``; a person promotes).
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import text

from gis.errors import IocError
from ioc.scheduler import JobSkipped, RunContext, ScheduleSettings

log = logging.getLogger("ioc.jobs")


class JobError(IocError):
    """A job that could not do its work (one sentence, recorded as the run's error)."""


@dataclass
class Services:
    """What the job bodies need, read once at the service's start."""

    database_url: str
    state_dir: Path
    schedule: ScheduleSettings
    crawl: Any = None  # crawler.settings.CrawlSettings
    backup: Any = None  # gis.db.backup.BackupSettings
    public_url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------ crawl

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """The crawl child is killed when the service dies (even by SIGKILL): no orphan crawls
    on after the service's lock is gone."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setsid()


def _outlet_entry(sites_file: Path, outlet: str) -> dict[str, Any]:
    data = yaml.safe_load(Path(sites_file).read_text(encoding="utf-8")) or {}
    for entry in data.get("sites") or []:
        if isinstance(entry, dict) and entry.get("name") == outlet:
            return entry
    raise JobError(f"Outlet '{outlet}' is no longer in {sites_file}.")


def enabled_outlets(crawl_settings: Any) -> list[str]:
    from crawler.sites import load_sites

    return [s.name for s in load_sites(crawl_settings.sites_file).select([])]


def crawl(ctx: RunContext) -> dict[str, Any]:
    svc: Services = ctx.services
    outlet = ctx.job.split(":", 1)[1]
    entry = _outlet_entry(svc.crawl.sites_file, outlet)
    work = Path(svc.state_dir) / "service" / "crawl"
    work.mkdir(parents=True, exist_ok=True)
    stats_out = work / f"{outlet}-stats.json"
    stats_out.unlink(missing_ok=True)
    conf = {
        "sites_yaml": yaml.safe_dump({"version": 1, "sites": [entry]}, allow_unicode=True),
        "state_dir": str(svc.state_dir),
        "database_url": svc.database_url,
        "job": f"service-{outlet}",
        "stats_out": str(stats_out),
        "log_level": "WARNING",
    }
    conf_path = work / f"{outlet}.json"
    conf_path.write_text(json.dumps(conf), encoding="utf-8")
    log_path = work / f"{outlet}.log"
    timeout = svc.schedule.crawl_timeout_minutes * 60
    with open(log_path, "ab") as log_file:
        log_file.write(f"\n== run {ctx.run_id} {dt.datetime.now(dt.UTC).isoformat()}\n".encode())
        log_file.flush()
        proc = subprocess.Popen(
            [sys.executable, "-m", "crawler.run", str(conf_path)],
            stdout=log_file,
            stderr=log_file,
            preexec_fn=_die_with_parent,
        )
        ctx.children.append(proc)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            raise JobError(
                f"the crawl of {outlet} did not finish within "
                f"{svc.schedule.crawl_timeout_minutes} min and was stopped "
                f"(IOC_SCHEDULE_CRAWL_TIMEOUT_MINUTES); log: {log_path}"
            ) from None
        finally:
            with contextlib.suppress(ValueError):
                ctx.children.remove(proc)
    stats = json.loads(stats_out.read_text(encoding="utf-8")) if stats_out.exists() else {}
    counts = {
        "outlet": outlet,
        "pages": stats.get("downloader/response_count", 0),
        "items": stats.get("item_scraped_count", 0),
        "stored": stats.get("ioc/stored", 0),
        "scored": stats.get("ioc/scored", 0),
        "not_scored": stats.get("ioc/not_scored", 0),
        "spooled": stats.get("ioc/spooled", 0),
        "dropped": stats.get("item_dropped_count", 0),
        "finish_reason": stats.get("finish_reason"),
    }
    ctx.counts.update(counts)
    if rc != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:] or [
            ""
        ]
        raise JobError(
            f"the crawl of {outlet} exited with code {rc}: {tail[0][:300]} (log: {log_path})"
        )
    if counts["finish_reason"] not in (None, "finished"):
        raise JobError(
            f"the crawl of {outlet} ended early ({counts['finish_reason']}); log: {log_path}"
        )
    if svc.crawl.scoring:
        ctx.counts.update(score_unscored(ctx))
    return ctx.counts


UNSCORED_SQL = """
SELECT a.id, a.url, a.canonical_url, a.title, a.lead, a.text, a.author, a.published_at,
       a.language, a.content_hash, a.simhash, a.duplicate_of, a.relevant, a.matched_terms,
       a.extra, a.source_id
FROM articles a
WHERE a.duplicate_of IS NULL
  AND a.fetched_at > now() - make_interval(days => :days)
  AND NOT EXISTS (SELECT 1 FROM article_scores s WHERE s.article_id = a.id)
ORDER BY a.fetched_at DESC
LIMIT :limit
"""


def score_unscored(ctx: RunContext, days: int = 7, limit: int = 500) -> dict[str, Any]:
    """Score and place the articles stored without a score (scorer off or failing during the
    crawl); through the same scorer and store as the crawl."""
    from crawler.store import ArticleStore

    with ctx.engine.connect() as conn:
        rows = [
            dict(r)
            for r in conn.execute(text(UNSCORED_SQL), {"days": days, "limit": limit}).mappings()
        ]
    if not rows:
        return {"rescored": 0}
    from nlp.scoring import load_scorer

    svc: Services = ctx.services
    from nlp.settings import NLPSettings

    scorer = load_scorer(
        Path(svc.crawl.scorer) if svc.crawl.scorer else None,
        Path(svc.crawl.gazetteer),
        use_ner=svc.crawl.scorer_ner,
        state_dir=Path(svc.state_dir),  # the encoder's vector cache: re-scoring costs a lookup
        use_encoder=NLPSettings().use_encoder,
    )
    results = scorer.score_records(
        [
            {
                "id": r["canonical_url"],
                "title": r["title"],
                "lead": r["lead"],
                "text": r["text"],
                "published": r["published_at"].isoformat() if r["published_at"] else None,
            }
            for r in rows
        ]
    )
    store = ArticleStore(ctx.engine)
    done = 0
    try:
        for row, scored in zip(rows, results, strict=True):
            if scored.get("error") or scored.get("not_scored"):
                continue
            record = {
                k: row[k]
                for k in (
                    "url",
                    "canonical_url",
                    "title",
                    "lead",
                    "text",
                    "author",
                    "language",
                    "content_hash",
                    "simhash",
                    "duplicate_of",
                    "relevant",
                    "matched_terms",
                    "extra",
                    "source_id",
                )
            }
            record["published"] = row["published_at"]
            record["extra"] = {k: v for k, v in (row["extra"] or {}).items() if k != "not_scored"}
            record["sentiment"] = scored.get("sentiment")
            record["topic"] = scored.get("topic")
            record["topic_scores"] = scored.get("topic_scores")
            if scored.get("places") is not None:
                record["places"] = scored["places"]
            record["model_version"] = scored.get("model_version") or scorer.model_version
            store.upsert_article(record)
            done += 1
    finally:
        store.close()
    return {"rescored": done}


# ------------------------------------------------------------------------------ digest


def digest_day(ctx: RunContext) -> dt.date:
    svc: Services = ctx.services
    from zoneinfo import ZoneInfo

    # the job's clock (real time in service; tests inject one): a turn run late, within its
    # 12 h grace, still builds the digest of the same day
    local = ctx.now().astimezone(ZoneInfo(svc.schedule.timezone)).date()
    return local - dt.timedelta(days=1) if svc.schedule.digest_day == "previous" else local


def build_and_store_digest(
    engine: Any, day: dt.date, run_id: int | None = None, feedback_url: str = "/digest/feedback"
) -> dict[str, Any]:
    """Build the digest of ``day`` and store its HTML, PDF and JSON (replacing a stored one)."""
    from nlp.digest import build_digest, render_html, render_pdf
    from nlp.errors import NLPError

    with engine.connect() as conn:
        data = build_digest(conn, day)
    data["feedback_url"] = feedback_url
    html = render_html(data, feedback_url=feedback_url)
    pdf, pdf_error = None, None
    try:
        pdf = render_pdf(data)
    except NLPError as exc:
        pdf_error = str(exc)
        log.warning("digest %s: no PDF: %s", day, exc)
    payload = json.dumps(data, ensure_ascii=False, default=str)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO stored_digests (day, html, pdf, data, pdf_error, run_id) "
                "VALUES (:d, :h, :p, CAST(:j AS jsonb), :pe, :r) "
                "ON CONFLICT (day) DO UPDATE SET html = EXCLUDED.html, pdf = EXCLUDED.pdf, "
                "data = EXCLUDED.data, pdf_error = EXCLUDED.pdf_error, run_id = EXCLUDED.run_id, "
                "built_at = now(), delivery = NULL"
            ),
            {"d": day, "h": html, "p": pdf, "j": payload, "pe": pdf_error, "r": run_id},
        )
    return {
        "day": day.isoformat(),
        "articles": data["totals"]["articles"],
        "negative": data["totals"].get("negative", 0),
        "alerts": len(data.get("alerts") or []),
        "html_bytes": len(html.encode()),
        "pdf_bytes": len(pdf) if pdf else 0,
        **({"pdf_error": pdf_error} if pdf_error else {}),
        "_data": data,
        "_html": html,
        "_pdf": pdf,
    }


def _store_delivery(engine: Any, day: dt.date, summary: dict[str, Any]) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE stored_digests SET delivery = CAST(:j AS jsonb) WHERE day = :d"),
            {"j": json.dumps(summary, default=str, ensure_ascii=False), "d": day},
        )


def digest(ctx: RunContext) -> dict[str, Any]:
    """Build and store the digest, then deliver it (``ioc.delivery``: e-mail, webhook)."""
    from ioc.delivery import DeliveryError, DeliverySettings, deliver_digest

    svc: Services = ctx.services
    day = digest_day(ctx)
    built = build_and_store_digest(ctx.engine, day, ctx.run_id, f"{svc.public_url}/digest/feedback")
    ctx.counts.update({k: v for k, v in built.items() if not k.startswith("_")})
    settings = DeliverySettings()
    if not settings.smtp_host and settings.delivery_webhook_url is None:
        ctx.counts["delivery"] = "not configured (IOC_SMTP_HOST / IOC_DELIVERY_WEBHOOK_URL unset)"
        return ctx.counts
    try:
        report = deliver_digest(built["_data"], built["_html"], built["_pdf"], settings)
    except DeliveryError as exc:
        summary = exc.report.to_dict() if getattr(exc, "report", None) else {"errors": [str(exc)]}
        _store_delivery(ctx.engine, day, summary)
        ctx.counts["delivery"] = {"sent": len(summary.get("sent") or []), "ok": False}
        raise JobError(f"the digest of {day} is stored, but its delivery failed: {exc}") from exc
    summary = report.to_dict()
    _store_delivery(ctx.engine, day, summary)
    ctx.counts["delivery"] = {
        "sent": len(report.sent),
        "webhook": report.webhook,
        "skipped": report.skipped,
        "ok": report.ok,
    }
    return ctx.counts


# ------------------------------------------------------------------------------ imagery


def imagery(ctx: RunContext) -> dict[str, Any]:
    """New scenes from the STAC catalogue and the watch folder; detection + parcel alerts on
    each new usable pair (``gis.intake.poll``); then the summary of new high alerts is
    delivered. A source that could not be polled makes the run failed (with its reason); what
    the other sources did is kept."""
    from gis.intake import poll

    svc: Services = ctx.services
    started = dt.datetime.now(dt.UTC)
    report = poll(ctx.engine, state_dir=svc.state_dir)
    ctx.counts.update(report.as_dict())
    ctx.counts["alerts_delivery"] = deliver_new_alerts(ctx.engine, started)
    if report.errors:
        raise JobError("; ".join(report.errors))
    return ctx.counts


def deliver_new_alerts(engine: Any, since: dt.datetime) -> Any:
    """The summary of the high-severity parcel alerts created since ``since`` (e-mail,
    webhook), when delivery is configured; returns what was done."""
    from ioc.delivery import DeliveryError, DeliverySettings, deliver_alert_summary, new_alerts

    settings = DeliverySettings()
    if not settings.smtp_host and settings.delivery_webhook_url is None:
        return "not configured"
    with engine.connect() as conn:
        alerts = new_alerts(conn, since, settings.delivery_alert_severities)
    if not alerts:
        return {"alerts": 0}
    try:
        report = deliver_alert_summary(alerts, settings)
    except DeliveryError as exc:
        raise JobError(
            f"{len(alerts)} new alert(s) found, but their summary was not delivered: {exc}"
        ) from exc
    return {"alerts": len(alerts), "sent": len(report.sent), "webhook": report.webhook}


# ------------------------------------------------------------------------------ backup


def backup(ctx: RunContext) -> dict[str, Any]:
    from gis.db.backup import create_backup, prune_backups

    svc: Services = ctx.services
    settings = svc.backup
    folder = settings.folder(svc.state_dir)
    stamp = ctx.now().astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = folder / f"ioc-{stamp}.iocbak"
    info = create_backup(
        svc.database_url,
        out,
        state_dir=svc.state_dir,
        extra_dirs=settings.include_dirs(svc.state_dir),
    )
    ctx.counts.update({"file": str(info.path), "bytes": info.size, "tables": len(info.tables)})
    removed = prune_backups(
        folder, settings.keep_daily, settings.keep_weekly, tz=svc.schedule.timezone
    )
    ctx.counts["pruned"] = [p.name for p in removed]
    return ctx.counts


# ------------------------------------------------------------------------------ retrain


def retrain(ctx: RunContext) -> dict[str, Any]:
    """Propose a candidate model when enough new staff corrections have accumulated.

    The candidate is trained and scored on the frozen reference sets by
    ``nlp.registry.retrain_genre`` (the recipe of ``ioc nlp retrain``: corrections of articles
    train the article head, those of posts the post head)
    with promotion switched off (an infinitely negative tolerance: never promoted here, so the
    registry's history calls it refused whatever its score; ``not_worse_than_current`` in the
    run's counts says how it compares); a person reviews the proposal and promotes with
    ``ioc nlp retrain`` (the guard applies). Like ``ioc nlp retrain``, the first proposal on an
    empty registry also creates the registry's reference baseline (the recipe without
    corrections).
    """
    svc: Services = ctx.services
    need = svc.schedule.retrain_min_corrections
    with ctx.engine.connect() as conn:
        pending = conn.execute(
            text(
                # articles and citizens' posts alike: both genres' heads learn from them
                "SELECT count(DISTINCT coalesce('a' || article_id, 'p' || post_id)) "
                "FROM label_feedback WHERE field = 'sentiment' AND used_in_model_version IS NULL"
            )
        ).scalar_one()
        last = conn.execute(
            text(
                "SELECT counts FROM job_runs WHERE job = 'retrain' AND status = 'succeeded' "
                "AND counts ? 'candidate' ORDER BY started_at DESC LIMIT 1"
            )
        ).scalar()
    ctx.counts["corrections_pending"] = int(pending)
    already = int((last or {}).get("corrections_pending", 0))
    if pending < need:
        raise JobSkipped(
            f"{pending} unused correction(s); a proposal needs {need} "
            "(IOC_SCHEDULE_RETRAIN_MIN_CORRECTIONS)"
        )
    if last and pending - already < need:
        raise JobSkipped(
            f"only {pending - already} correction(s) since the last proposal "
            f"({last.get('candidate')}); a new one needs {need}"
        )
    from nlp.feedback import load_corrections
    from nlp.registry import ModelRegistry, retrain_genre
    from nlp.settings import NLPSettings

    nlp_settings = NLPSettings()
    registry = ModelRegistry(nlp_settings.registry_dir or (Path(svc.state_dir) / "nlp-models"))
    with ctx.engine.connect() as conn:
        corrections = load_corrections(conn)
    # The recipe of `ioc nlp retrain` (its default): article and post heads, each with its
    # genre's corrections; vectors come from the state dir's encoder cache.
    result = retrain_genre(
        registry,
        nlp_settings.data_dir,
        corrections,
        state_dir=Path(svc.state_dir),
        tolerance=float("-inf"),
        echo=lambda message: None,
        use_encoder=nlp_settings.use_encoder,
    )
    ctx.counts.update(
        {
            "candidate": result.version,
            "current": result.current_version,
            "candidate_macro_f1": result.candidate_scores.get("macro_f1"),
            "current_macro_f1": (result.current_scores or {}).get("macro_f1"),
            "corrections_used": result.n_corrections,
            "corrections_by_genre": getattr(result, "corrections_by_genre", None),
            "promoted": False,
            "candidate_post_macro_f1": result.candidate_scores.get("post_macro_f1"),
            "current_post_macro_f1": (result.current_scores or {}).get("post_macro_f1"),
            # per genre, as the promotion guard of `ioc nlp retrain` compares them
            "not_worse_than_current": bool(
                result.current_scores
                and all(
                    result.candidate_scores.get(key, 0) >= result.current_scores.get(key, 0)
                    for key in ("article_macro_f1", "post_macro_f1")
                    if key in result.current_scores
                )
            ),
            "next_step": "a person reviews the proposal; `ioc nlp retrain` trains with the corrections "
            "and promotes only if not worse on the frozen reference set",
        }
    )
    return ctx.counts


BODIES = {
    "crawl": crawl,
    "digest": digest,
    "imagery": imagery,
    "backup": backup,
    "retrain": retrain,
}
