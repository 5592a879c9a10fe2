"""Storage of crawled articles in PostGIS: idempotent upserts, dead letters, a local spool.

Everything here takes a SQLAlchemy Engine and uses the ORM tables of :mod:`gis.db.models`.
One transaction per item. When the database is unreachable the item goes to a
:class:`Spool` (a JSON-lines file under the job directory) and is written later.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, OperationalError

from gis.db.models import AdminUnit, Article, ArticlePlace, ArticleScore, CrawlFailure, NewsSource

log = logging.getLogger(__name__)

__all__ = [
    "ArticleStore",
    "Spool",
    "content_hash",
    "hamming",
    "is_outage",
    "simhash",
]

_TOKEN_RE = re.compile(r"\w+", re.UNICODE)


# --------------------------------------------------------------------------------------------
# Fingerprints
# --------------------------------------------------------------------------------------------


def content_hash(text: str) -> str:
    """SHA-256 of the text's lower-cased word tokens (spacing and punctuation ignored)."""
    tokens = _TOKEN_RE.findall(text.lower())
    return hashlib.sha256(" ".join(tokens).encode("utf-8")).hexdigest()


def simhash(text: str, width: int = 3) -> int:
    """64-bit SimHash of word ``width``-shingles, as a signed int (fits a BIGINT column).

    Near-duplicate texts (syndicated copies with small edits) differ in a few bits.
    """
    tokens = _TOKEN_RE.findall(text.lower())
    if not tokens:
        return 0
    grams = (
        [" ".join(tokens[i : i + width]) for i in range(len(tokens) - width + 1)]
        if len(tokens) >= width
        else [" ".join(tokens)]
    )
    weights = [0] * 64
    for gram in grams:
        h = int.from_bytes(hashlib.blake2b(gram.encode("utf-8"), digest_size=8).digest(), "big")
        for bit in range(64):
            weights[bit] += 1 if h >> bit & 1 else -1
    value = sum(1 << bit for bit in range(64) if weights[bit] > 0)
    return value - (1 << 64) if value >= 1 << 63 else value


def shingle_set(text: str, width: int = 3) -> set[str]:
    """Word ``width``-shingles of the lower-cased text."""
    tokens = _TOKEN_RE.findall(text.lower())
    if len(tokens) < width:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i : i + width]) for i in range(len(tokens) - width + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def hamming(a: int, b: int) -> int:
    """Bits that differ between two 64-bit SimHashes."""
    return ((a ^ b) & ((1 << 64) - 1)).bit_count()


# --------------------------------------------------------------------------------------------
# Outages
# --------------------------------------------------------------------------------------------


def is_outage(exc: BaseException) -> bool:
    """True for errors meaning "the database is not there" (not "this item is bad")."""
    if isinstance(exc, OperationalError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, ConnectionError | TimeoutError)


class Spool:
    """Items waiting for the database: a JSON-lines file, appended and fsynced per item."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        if not self.path.exists():
            return 0
        with self.path.open("rb") as fh:
            return sum(1 for line in fh if line.strip())

    def append(self, kind: str, payload: dict[str, Any]) -> None:
        line = json.dumps({"kind": kind, "payload": payload}, ensure_ascii=False, default=str)
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def entries(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError:
                        log.warning("spool %s: skipping an unreadable line", self.path)

    def drain(self, store: ArticleStore) -> int:
        """Write spooled items; keep those that still cannot be written. Returns written."""
        if not self.path.exists():
            return 0
        with self._lock:
            pending = list(self.entries())
            left: list[dict[str, Any]] = []
            written = 0
            for i, entry in enumerate(pending):
                try:
                    if entry["kind"] == "article":
                        store.upsert_article(entry["payload"])
                    else:
                        store.record_failure(**entry["payload"])
                    written += 1
                except Exception as exc:  # noqa: BLE001 - keep it for later either way
                    if is_outage(exc):
                        left.extend(pending[i:])
                        break
                    log.error("spooled item could not be stored: %s", exc)
                    store.safe_record_failure(
                        url=entry["payload"].get("url"),
                        source_name=entry["payload"].get("source_name"),
                        stage="store",
                        reason=f"spooled item rejected: {exc}",
                    )
            tmp = self.path.with_suffix(".tmp")
            with tmp.open("w", encoding="utf-8") as fh:
                for entry in left:
                    fh.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
            tmp.replace(self.path)
            if not left:
                self.path.unlink(missing_ok=True)
            return written


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------


def _iso(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


class ArticleStore:
    """Reads and writes of the crawler against the schema of :mod:`gis.db.models`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._source_ids: dict[str, int] = {}
        self._unit_ids: dict[tuple[str, str], int | None] = {}
        self._local = threading.local()
        # first copy's canonical URL -> copies stored before it (linked when it arrives)
        self._waiting: dict[str, list[str]] = {}

    # -- connections --------------------------------------------------------------------------
    def _conn(self) -> Connection:
        """A connection kept per thread (no pool checkout and pre-ping per statement)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            conn = self.engine.connect()
            self._local.conn = conn
        return conn

    def _drop_conn(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception:  # noqa: BLE001 - it is broken anyway
                pass

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction on this thread's connection; the connection is dropped on
        a database error so the next call reconnects."""
        conn = self._conn()
        try:
            with conn.begin():
                yield conn
        except DBAPIError:
            self._drop_conn()
            raise

    @contextmanager
    def read(self) -> Iterator[Connection]:
        conn = self._conn()
        try:
            yield conn
        except DBAPIError:
            self._drop_conn()
            raise
        finally:
            if conn.in_transaction() and not conn.closed:
                conn.rollback()

    def close(self) -> None:
        self._drop_conn()

    # -- sources ------------------------------------------------------------------------------
    def ensure_source(self, site: Any) -> int:
        """Upsert the outlet (a :class:`crawler.sites.Site` or a name) and return its id."""
        name = site if isinstance(site, str) else site.name
        if name in self._source_ids:
            return self._source_ids[name]
        values: dict[str, Any] = {"name": name}
        if not isinstance(site, str):
            values.update(
                title=site.title,
                homepage=site.homepage,
                scope=site.scope,
                language=site.language,
                config=json.loads(site.model_dump_json()),
            )
        stmt = pg_insert(NewsSource).values(**values)
        update = {k: stmt.excluded[k] for k in values if k != "name"} or {
            "name": stmt.excluded.name
        }
        stmt = stmt.on_conflict_do_update(index_elements=["name"], set_=update).returning(
            NewsSource.id
        )
        with self.begin() as conn:
            source_id = int(conn.execute(stmt).scalar_one())
        self._source_ids[name] = source_id
        return source_id

    # -- lookups ------------------------------------------------------------------------------
    def known_urls(self, since: dt.datetime | None = None) -> set[str]:
        """URLs (as fetched and canonical) of stored articles and of permanent failures."""
        stmt = select(Article.url, Article.canonical_url)
        if since is not None:
            stmt = stmt.where(Article.fetched_at >= since)
        urls: set[str] = set()
        with self.read() as conn:
            for url, canonical in conn.execute(stmt):
                urls.add(url)
                urls.add(canonical)
        return urls

    def find_duplicate(
        self,
        canonical_url: str,
        digest: str,
        fingerprint: int | None,
        full_text: str | None = None,
        threshold: float = 0.8,
        max_distance: int = 16,
        max_candidates: int = 10,
        fetched_before: dt.datetime | None = None,
        window_days: int = 60,
    ) -> tuple[str, int, float] | None:
        """('exact'|'near', first article id, similarity) when another article has the same
        or nearly the same content.

        Exact: same content hash. Near: SimHash within ``max_distance`` bits as a cheap
        prefilter (done in SQL, nearest ``max_candidates`` first), then the Jaccard similarity
        of word 3-shingles of title + lead + text must reach ``threshold``. Among the
        candidates that pass, the earliest article wins (the first copy). With
        ``fetched_before``, only articles fetched before it (and within ``window_days``) are
        compared: the crawler compares its own run's articles in memory.
        """
        window = ""
        params: dict[str, Any] = {}
        if fetched_before is not None:
            window = " AND fetched_at < :before AND fetched_at > :after"
            params = {
                "before": fetched_before,
                "after": fetched_before - dt.timedelta(days=window_days),
            }
        with self.read() as conn:
            row = conn.execute(
                text(
                    "SELECT id FROM articles WHERE content_hash = :hash AND canonical_url <> :c"
                    + window
                    + " ORDER BY id LIMIT 1"
                ),
                {"hash": digest, "c": canonical_url, **params},
            ).first()
            if row:
                return "exact", int(row[0]), 1.0
            if fingerprint is None or not full_text:
                return None
            rows = conn.execute(
                text(
                    "SELECT id, title, lead, text FROM ("
                    " SELECT id, bit_count(((simhash # :h)::bit(64))) AS dist FROM articles"
                    " WHERE simhash IS NOT NULL AND canonical_url <> :c" + window + ") AS near"
                    " JOIN articles USING (id) WHERE dist <= :d ORDER BY dist, id LIMIT :k"
                ),
                {
                    "c": canonical_url,
                    "h": fingerprint,
                    "d": max_distance,
                    "k": max_candidates,
                    **params,
                },
            ).all()
        if not rows:
            return None
        mine = shingle_set(full_text)
        best: tuple[str, int, float] | None = None
        for row in rows:
            other = shingle_set("\n".join(x for x in (row.title, row.lead, row.text) if x))
            similarity = jaccard(mine, other)
            if similarity >= threshold and (best is None or row.id < best[1]):
                best = ("near", int(row.id), similarity)
        return best

    def _unit_id(self, conn: Any, code: str, valid: str | None = None) -> int | None:
        """The admin unit of a place. Codes can be reused across the 2025 reform (an old
        commune and a new one share 13285), so the place's "valid" (old|new) picks the unit
        whose validity matches; without it the current unit wins."""
        key = (str(code), valid or "new")
        if key not in self._unit_ids:
            wants_current = (valid or "new") != "old"
            self._unit_ids[key] = conn.execute(
                select(AdminUnit.id)
                .where(AdminUnit.code == str(code))
                .order_by(
                    (AdminUnit.valid_to.is_(None) == wants_current).desc(),
                    AdminUnit.valid_from.desc(),
                )
                .limit(1)
            ).scalar()
        return self._unit_ids[key]

    # -- writes -------------------------------------------------------------------------------
    def upsert_article(self, record: dict[str, Any]) -> int:
        """Insert or update one article (keyed by canonical URL) with its scores and places,
        in one transaction. Returns the article id."""
        source_id = record.get("source_id")
        if source_id is None and record.get("source_name"):
            source_id = self.ensure_source(record["source_name"])
        values = {
            "source_id": source_id,
            "url": record["url"],
            "canonical_url": record["canonical_url"],
            "title": record["title"],
            "lead": record.get("lead"),
            "text": record["text"],
            "author": record.get("author"),
            "published_at": _iso(record.get("published")),
            "language": record.get("language"),
            "content_hash": record["content_hash"],
            "simhash": record.get("simhash"),
            "duplicate_of": record.get("duplicate_of"),
            "relevant": bool(record.get("relevant")),
            "matched_terms": record.get("matched_terms") or [],
            "extra": record.get("extra") or {},
        }
        waiting_for = None
        with self.begin() as conn:
            if values["duplicate_of"] is None and record.get("duplicate_of_url"):
                # the first copy was crawled in this run: look its id up now, or link this
                # copy as soon as the first one is stored
                values["duplicate_of"] = conn.execute(
                    select(Article.id).where(Article.canonical_url == record["duplicate_of_url"])
                ).scalar()
                if values["duplicate_of"] is None:
                    waiting_for = record["duplicate_of_url"]
            stmt = pg_insert(Article).values(**values)
            update = {k: stmt.excluded[k] for k in values if k not in ("canonical_url",)}
            update["duplicate_of"] = func.coalesce(Article.duplicate_of, stmt.excluded.duplicate_of)
            update["fetched_at"] = func.now()
            stmt = stmt.on_conflict_do_update(index_elements=["canonical_url"], set_=update)
            stmt = stmt.returning(Article.id)
            article_id = int(conn.execute(stmt).scalar_one())
            copies = self._waiting.pop(values["canonical_url"], [])
            if copies:
                conn.execute(
                    Article.__table__.update()
                    .where(Article.canonical_url.in_(copies), Article.duplicate_of.is_(None))
                    .values(duplicate_of=article_id)
                )
            if article_id == values["duplicate_of"]:
                conn.execute(
                    Article.__table__.update()
                    .where(Article.id == article_id)
                    .values(duplicate_of=None)
                )
            sentiment = record.get("sentiment")
            if isinstance(sentiment, dict) and sentiment.get("label"):
                score = pg_insert(ArticleScore).values(
                    article_id=article_id,
                    model_version=str(record.get("model_version") or "unknown")[:64],
                    label=sentiment["label"],
                    probabilities=sentiment.get("scores") or {},
                    topic=(record.get("topic") or {}).get("label")
                    if isinstance(record.get("topic"), dict)
                    else record.get("topic"),
                    topic_scores=(record.get("topic") or {}).get("scores")
                    if isinstance(record.get("topic"), dict)
                    else record.get("topic_scores"),
                    reasons=sentiment.get("reasons") or [],
                )
                score = score.on_conflict_do_update(
                    constraint="uq_article_scores_article_model",
                    set_={
                        "label": score.excluded.label,
                        "probabilities": score.excluded.probabilities,
                        "topic": score.excluded.topic,
                        "topic_scores": score.excluded.topic_scores,
                        "reasons": score.excluded.reasons,
                        "scored_at": func.now(),
                    },
                )
                conn.execute(score)
            places = record.get("places")
            if isinstance(places, list):
                conn.execute(
                    ArticlePlace.__table__.delete().where(ArticlePlace.article_id == article_id)
                )
                rows = {}
                for place in places:
                    code = place.get("code") if isinstance(place, dict) else None
                    valid = place.get("valid") if isinstance(place, dict) else None
                    unit_id = self._unit_id(conn, code, valid) if code else None
                    if unit_id is None or unit_id in rows:
                        continue
                    rows[unit_id] = {
                        "article_id": article_id,
                        "admin_unit_id": unit_id,
                        "mention": place.get("mention"),
                        "confidence": place.get("confidence"),
                    }
                if rows:
                    conn.execute(pg_insert(ArticlePlace).values(list(rows.values())))
        if waiting_for:
            self._waiting.setdefault(waiting_for, []).append(values["canonical_url"])
        return article_id

    def record_failure(
        self,
        url: str | None,
        source_name: str | None,
        stage: str,
        reason: str,
        payload: dict[str, Any] | None = None,
    ) -> None:
        """Write a dead-letter row."""
        with self.begin() as conn:
            conn.execute(
                CrawlFailure.__table__.insert().values(
                    url=url,
                    source_name=source_name,
                    stage=stage[:32],
                    reason=reason[:4000],
                    payload=payload,
                )
            )

    def safe_record_failure(self, **kwargs: Any) -> bool:
        try:
            self.record_failure(**kwargs)
            return True
        except Exception as exc:  # noqa: BLE001 - a dead letter must not crash the crawl
            log.error("cannot record crawl failure %s: %s", kwargs.get("url"), exc)
            return False

    def count(self, table: str = "articles") -> int:
        with self.read() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
