"""Citizens' posts and comments: import of social-listening exports into PostGIS.

``ioc posts import FILE`` reads JSON lines (or a JSON array) or CSV as exported by common
social-listening tools, maps their field names onto ``text, url, author, published, source``
(:data:`FIELD_ALIASES`, documented in docs/posts.md), checks every record, scores the valid
ones with the sentiment model as genre ``post``, finds the places they mention and stores
them in ``posts`` / ``post_scores`` / ``post_places`` (migration 0008).

Bad records are reported one per line with their line number (``FILE:LINE: reason``) and
skipped; the rest of the batch goes on. Everything is written in one transaction (savepoints
per batch, and per post when the database refuses one), so an import that fails half-way
leaves nothing behind, and a re-import of the same file updates the posts it stored the first
time instead of duplicating them.

>>> rec = map_record({"message": "Đường ở xã Thanh Hà ngập sâu", "permalink": "https://fb.test/1",
...                   "created_time": "2026-03-10T09:15:00+0000", "platform": "Facebook"})
>>> rec.text, rec.source, rec.published.isoformat()
('Đường ở xã Thanh Hà ngập sâu', 'facebook', '2026-03-10T09:15:00+00:00')
>>> map_record({"text": 42})
Traceback (most recent call last):
...
crawler.posts.RecordError: text is a number, not a string
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import html as html_lib
import html.entities
import inspect
import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import lxml.html
from sqlalchemy import Connection, Engine, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError

from crawler.errors import CrawlerError
from crawler.extraction import canonicalize_url, parse_date
from crawler.store import content_hash, is_outage
from crawler.textnorm import normalize, vietnamese_ratio
from gis.db.models import AdminUnit, Post, PostPlace, PostScore

log = logging.getLogger(__name__)

__all__ = [
    "FIELD_ALIASES",
    "ImportReport",
    "PostFileError",
    "PostRecord",
    "RecordError",
    "import_posts",
    "map_record",
    "read_records",
]

TIMEZONE = ZoneInfo("Asia/Ho_Chi_Minh")
MAX_POST_CHARS = 100_000  # Facebook allows 63,206; anything much longer is not a post
MIN_DUPLICATE_WORDS = 8  # identical short comments ("hay quá") by two people are two posts
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
MAX_EXTRA_BYTES = 16_384

#: field of a post -> names used by export tools (first present wins; compared lower-case,
#: with spaces and hyphens read as underscores)
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "text": (
        "text",
        "message",
        "content",
        "body",
        "full_text",
        "post_text",
        "post_message",
        "comment",
        "comment_text",
        "caption",
        "snippet",
    ),
    "url": ("url", "link", "permalink", "permalink_url", "post_url", "post_link", "href"),
    "author": (
        "author",
        "user",
        "username",
        "user_name",
        "author_name",
        "screen_name",
        "from_name",
        "from",
        "account",
        "owner",
    ),
    "published": (
        "published",
        "published_at",
        "created_time",
        "created_at",
        "date",
        "timestamp",
        "time",
        "datetime",
        "post_date",
        "pub_date",
    ),
    "source": ("source", "platform", "network", "site", "channel", "source_name"),
    "external_id": ("id", "post_id", "message_id", "comment_id", "status_id"),
}
_ALIAS_TO_FIELD = {alias: name for name, aliases in FIELD_ALIASES.items() for alias in aliases}

_HTML_TAG_RE = re.compile(
    r"</?(?:p|br|div|span|a|img|b|i|u|em|strong|ul|ol|li|h[1-6]|table|tr|td|th|script|style|"
    r"iframe|html|body|head|font|blockquote|section|article|figure|hr|meta|link)(?:\s[^<>]*)?/?>",
    re.IGNORECASE,
)
_HTML_ENTITY_RE = re.compile(r"&(#\d{2,7}|#x[0-9a-fA-F]{2,6}|[a-zA-Z]{2,8});")
_EPOCH_RE = re.compile(r"^\d{9,13}(\.\d+)?$")
_WORD_RE = re.compile(r"\w+", re.UNICODE)
_DATE_FORMATS = (
    "%Y-%m-%d %H:%M:%S.%f",
    "%b %d, %Y %I:%M %p",
    "%b %d, %Y %H:%M",
    "%d %b %Y %H:%M",
    "%B %d, %Y at %I:%M %p",
    "%a %b %d %H:%M:%S %z %Y",
)


class PostFileError(CrawlerError, ValueError):
    """The posts file cannot be read at all (missing, unreadable, unknown format)."""


class RecordError(ValueError):
    """One record of a posts file is unusable; the message says why (one sentence)."""


@dataclass
class PostRecord:
    """A checked post ready to be scored and stored."""

    text: str
    source: str | None = None
    url: str | None = None
    canonical_url: str | None = None
    author: str | None = None
    published: dt.datetime | None = None
    external_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    where: str = ""

    @property
    def content_hash(self) -> str:
        return content_hash(self.text)

    @property
    def post_key(self) -> str:
        """The post's identity: its URL, else the platform's id, else who/when/what."""
        if self.canonical_url:
            basis = f"url\x00{self.canonical_url}"
        elif self.external_id:
            basis = f"id\x00{self.source or ''}\x00{self.external_id}"
        else:
            when = self.published.isoformat() if self.published else ""
            basis = f"text\x00{self.source or ''}\x00{self.author or ''}\x00{when}\x00{self.content_hash}"
        return hashlib.sha256(basis.encode("utf-8")).hexdigest()

    @property
    def language(self) -> str | None:
        return "vi" if vietnamese_ratio(self.text) >= 0.2 else None


@dataclass
class ImportReport:
    """What an import did; ``errors`` are (where, reason) of the skipped records."""

    file: str
    records: int = 0
    new: int = 0
    updated: int = 0
    duplicates: int = 0
    scored: int = 0
    not_scored: int = 0
    placed: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    model_version: str | None = None

    @property
    def stored(self) -> int:
        return self.new + self.updated

    @property
    def failed(self) -> int:
        return len(self.errors)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "records": self.records,
            "stored": self.stored,
            "new": self.new,
            "updated": self.updated,
            "duplicates": self.duplicates,
            "failed": self.failed,
            "scored": self.scored,
            "not_scored": self.not_scored,
            "placed": self.placed,
            "model_version": self.model_version,
        }


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def detect_format(path: Path, head: bytes) -> str:
    """'jsonl' or 'csv' from the file name, else from its first bytes."""
    suffixes = [s.lower() for s in path.suffixes[-2:]]
    if any(s in (".jsonl", ".ndjson", ".json") for s in suffixes):
        return "jsonl"
    if any(s in (".csv", ".tsv") for s in suffixes):
        return "csv"
    if head.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0", b"%PDF")):
        raise PostFileError(
            f"{path} is a binary file (a spreadsheet or a document?): export the posts as CSV "
            "(UTF-8) or JSON lines."
        )
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped[:1] in (b"{", b"["):
        return "jsonl"
    first_line = stripped.split(b"\n", 1)[0]
    if any(d in first_line for d in (b",", b";", b"\t")):
        return "csv"
    raise PostFileError(f"cannot tell the format of {path}: give --format jsonl or --format csv.")


def _decode(data: bytes, path: Path) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise PostFileError(f"{path} is not valid UTF-16 text ({exc.reason}).") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PostFileError(
            f"{path} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}): "
            "export it as UTF-8."
        ) from None


def _norm_key(key: Any) -> str:
    return re.sub(r"[\s\-.]+", "_", str(key).strip().lower())


def _read_jsonl(data: bytes, path: Path) -> Iterator[tuple[str, Any]]:
    """A JSON array is parsed (and refused) now; JSON lines are read line by line."""
    if data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"[":
        try:
            items = json.loads(_decode(data, path))
        except ValueError as exc:
            raise PostFileError(f"{path} starts with '[' but is not a JSON array: {exc}.") from None
        return ((f"record {n}", item) for n, item in enumerate(items, start=1))
    return _json_lines(data)


def _json_lines(data: bytes) -> Iterator[tuple[str, Any]]:
    for n, raw in enumerate(data.split(b"\n"), start=1):
        if n == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield f"line {n}", RecordError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x})")
            continue
        try:
            yield f"line {n}", json.loads(line)
        except ValueError as exc:
            yield f"line {n}", RecordError(f"not valid JSON ({exc.msg} at column {exc.colno})")


def _read_csv(data: bytes, path: Path) -> Iterator[tuple[str, Any]]:
    """Checks the encoding and the header now; the rows come from the returned iterator."""
    content = _decode(data, path)
    try:
        dialect: Any = csv.Sniffer().sniff(content[:64_000].split("\n", 1)[0], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        header = next(csv.reader(io.StringIO(content, newline=""), dialect), None)
    except csv.Error as exc:
        raise PostFileError(f"{path}: the CSV header cannot be read ({exc}).") from None
    if header is None:
        return iter(())
    keys = [_norm_key(h) for h in header]
    if not any(_ALIAS_TO_FIELD.get(k) == "text" for k in keys):
        raise PostFileError(
            f"{path} has no text column (columns: {', '.join(h.strip() for h in header) or 'none'}; "
            f"expected one of {', '.join(FIELD_ALIASES['text'][:4])}...)."
        )
    return _csv_rows(content, dialect, keys)


def _csv_rows(content: str, dialect: Any, keys: list[str]) -> Iterator[tuple[str, Any]]:
    old_limit = csv.field_size_limit()
    csv.field_size_limit(64 * 1024 * 1024)  # a too-long text is a record error, not a crash
    try:
        reader = csv.reader(io.StringIO(content, newline=""), dialect)
        next(reader)  # the header, checked already
        start = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                yield f"line {start}", RecordError(f"unreadable CSV row ({exc})")
                start = reader.line_num + 1
                continue
            where = f"line {start}"
            start = reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(keys):
                yield where, RecordError(f"{len(row)} fields but the header has {len(keys)}")
                continue
            yield where, {k: (v if v != "" else None) for k, v in zip(keys, row, strict=False)}
    finally:
        csv.field_size_limit(old_limit)


def read_records(path: Path, fmt: str | None = None) -> Iterator[tuple[str, Any]]:
    """(where, raw record or RecordError) for every record of the file, in order.

    Raises
    ------
    PostFileError
        The file is missing, unreadable, of an unknown format, or a CSV without a text column.
    """
    path = Path(path)
    if path.is_dir():
        raise PostFileError(f"{path} is a folder, not a posts file.")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PostFileError(f"{path} does not exist.") from None
    except OSError as exc:
        raise PostFileError(f"cannot read {path}: {exc.strerror}.") from None
    if fmt is None:
        fmt = detect_format(path, data[:4096])
    if fmt == "jsonl":
        return _read_jsonl(data, path)
    if fmt == "csv":
        return _read_csv(data, path)
    raise PostFileError(f"unknown format '{fmt}': use jsonl or csv.")


# --------------------------------------------------------------------------------------------
# Mapping and checking one record
# --------------------------------------------------------------------------------------------


def _strip_html(value: str) -> str:
    value = re.sub(r"(?i)<br\s*/?>|</(p|div|li|h[1-6]|blockquote)>", "\n", value)
    try:
        root = lxml.html.fragment_fromstring(value, create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        return html_lib.unescape(re.sub(r"<[^>]+>", " ", value))
    for bad in root.xpath(".//script|.//style"):
        bad.drop_tree()
    return root.text_content()


def _html_left(value: str) -> str | None:
    m = _HTML_TAG_RE.search(value)
    if m:
        return m.group(0)[:40]
    for m in _HTML_ENTITY_RE.finditer(value):
        name = m.group(1)
        if name.startswith("#") or name.lower() in html_lib.entities.name2codepoint:
            return m.group(0)
    return None


def parse_published(value: Any) -> dt.datetime | None:
    """An aware datetime from an export's date (ISO 8601, epoch seconds/ms, dd/mm/yyyy
    [HH:MM], a few English forms); naive values are Vietnam time. None when absent.

    >>> parse_published("10/03/2026 09:15").isoformat()
    '2026-03-10T09:15:00+07:00'
    >>> parse_published(1773108900).isoformat()
    '2026-03-10T02:15:00+00:00'
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RecordError(f"published is {_type_name(value)}, not a date")
    shown = str(value).strip()[:40]
    parsed = None
    if isinstance(value, int | float) or _EPOCH_RE.match(shown):
        number = float(value)
        if number > 1e11:  # milliseconds
            number /= 1000
        try:
            parsed = dt.datetime.fromtimestamp(number, tz=dt.UTC)
        except (OverflowError, OSError, ValueError):
            parsed = None
    else:
        parsed = parse_date(value, _DATE_FORMATS, TIMEZONE)
    if parsed is None:
        raise RecordError(
            f"published '{shown}' is not a date (use ISO 8601 such as 2026-03-10T09:15:00+07:00, "
            "dd/mm/yyyy HH:MM or epoch seconds)"
        )
    if parsed < EARLIEST or parsed > dt.datetime.now(dt.UTC) + dt.timedelta(days=2):
        raise RecordError(f"published '{shown}' is not a plausible date for a post")
    return parsed


def _pick(raw: dict[str, Any], name: str) -> tuple[str | None, Any]:
    for alias in FIELD_ALIASES[name]:
        if alias in raw and raw[alias] is not None:
            return alias, raw[alias]
    return None, None


def _person(value: Any) -> str | None:
    if isinstance(value, dict):  # {"name": ..., "id": ...} as in Graph API exports
        for key in ("name", "username", "screen_name", "display_name"):
            if isinstance(value.get(key), str) and value[key].strip():
                return value[key].strip()
        return None
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value).strip() or None
    return None


def map_record(
    raw: Any, default_source: str | None = None, strip_html: bool = False, where: str = ""
) -> PostRecord:
    """Check one raw record and map its fields; raises :class:`RecordError` naming the problem."""
    if not isinstance(raw, dict):
        raise RecordError(f"not a JSON object but {_type_name(raw)}")
    raw = {_norm_key(k): v for k, v in raw.items()}
    alias, value = _pick(raw, "text")
    if alias is None:
        raise RecordError(
            f"no text (expected a field named {', '.join(FIELD_ALIASES['text'][:4])} or "
            f"{FIELD_ALIASES['text'][4]}...)"
        )
    if not isinstance(value, str):
        raise RecordError(f"{alias} is {_type_name(value)}, not a string")
    if len(value) > MAX_POST_CHARS:
        raise RecordError(
            f"{alias} is too long ({len(value):,} characters; a post is at most {MAX_POST_CHARS:,})"
        )
    markup = _html_left(value)
    if markup:
        if not strip_html:
            raise RecordError(
                f"{alias} contains HTML ({markup!r}): export plain text or pass --strip-html"
            )
        value = _strip_html(value)
    body = normalize(value) or ""
    if not body.strip():
        raise RecordError(f"{alias} is empty")

    url = canonical = None
    alias, value = _pick(raw, "url")
    if alias is not None:
        if not isinstance(value, str):
            raise RecordError(f"{alias} is {_type_name(value)}, not a URL")
        url = value.strip()
        if not re.match(r"(?i)^https?://[^\s/]+", url):
            raise RecordError(f"{alias} '{url[:60]}' is not an http(s) URL")
        canonical = canonicalize_url(url)

    _, published = _pick(raw, "published")
    published_at = parse_published(published)
    _, author = _pick(raw, "author")
    _, source = _pick(raw, "source")
    source_name = _person(source) or default_source
    _, external = _pick(raw, "external_id")
    external_id = _person(external)

    extra = {k: v for k, v in raw.items() if k not in _ALIAS_TO_FIELD and v is not None}
    if len(json.dumps(extra, ensure_ascii=False, default=str)) > MAX_EXTRA_BYTES:
        extra = {"dropped": "other fields of the record were larger than 16 kB"}
    return PostRecord(
        text=body,
        source=(source_name or "").strip().lower()[:64] or None,
        url=url,
        canonical_url=canonical,
        author=_person(author),
        published=published_at,
        external_id=external_id,
        extra=extra,
        where=where,
    )


# --------------------------------------------------------------------------------------------
# Scoring and storing
# --------------------------------------------------------------------------------------------


def _score(scorer: Any, records: list[PostRecord]) -> list[dict[str, Any]]:
    """The scorer's output for each record, as genre 'post' (the parameter when the scorer
    has one, and a ``genre`` field on each record either way)."""
    inputs = [
        {
            "id": i,
            "text": r.text,
            "genre": "post",
            "published": r.published.isoformat() if r.published else None,
        }
        for i, r in enumerate(records)
    ]
    try:
        takes_genre = "genre" in inspect.signature(scorer.score_records).parameters
    except (TypeError, ValueError):
        takes_genre = False
    out = (
        scorer.score_records(inputs, genre="post") if takes_genre else scorer.score_records(inputs)
    )
    if len(out) != len(records):
        raise RuntimeError(f"the scorer returned {len(out)} results for {len(records)} posts")
    return out


def _places_only(finder: Any, records: list[PostRecord]) -> list[dict[str, Any]]:
    out = []
    for r in records:
        try:
            places = finder.find(r.text, r.published.date() if r.published else None)
        except Exception as exc:  # noqa: BLE001 - places are an aid; keep the post
            log.warning("place finding failed on %s: %s", r.where, exc)
            places = []
        out.append({"places": places})
    return out


class _Writer:
    def __init__(self, conn: Connection, report: ImportReport, import_file: str) -> None:
        self.conn = conn
        self.report = report
        self.import_file = import_file
        self._units: dict[tuple[str, str], int | None] = {}

    def _unit_id(self, code: str, valid: str | None) -> int | None:
        """As crawler.store: a code reused across the 2025 reform picks the unit whose
        validity matches the place's "valid" (old|new)."""
        key = (str(code), valid or "new")
        if key not in self._units:
            wants_current = (valid or "new") != "old"
            self._units[key] = self.conn.execute(
                select(AdminUnit.id)
                .where(AdminUnit.code == str(code))
                .order_by(
                    (AdminUnit.valid_to.is_(None) == wants_current).desc(),
                    AdminUnit.valid_from.desc(),
                )
                .limit(1)
            ).scalar()
        return self._units[key]

    def write(self, rec: PostRecord, result: dict[str, Any]) -> None:
        key, digest = rec.post_key, rec.content_hash
        duplicate_of: Any = None
        if len(_WORD_RE.findall(rec.text)) >= MIN_DUPLICATE_WORDS:
            # the first post with the same words under another key (looked up in the INSERT:
            # one round trip per post); a post already stored is never re-pointed at a later copy
            other = Post.__table__.alias("other")
            same = Post.__table__.alias("same")
            own_id = select(same.c.id).where(same.c.post_key == key).scalar_subquery()
            duplicate_of = (
                select(other.c.id)
                .where(
                    other.c.content_hash == digest,
                    other.c.post_key != key,
                    other.c.id < func.coalesce(own_id, 9223372036854775807),
                )
                .order_by(other.c.id)
                .limit(1)
                .scalar_subquery()
            )
        extra = dict(rec.extra)
        if result.get("not_scored") or result.get("error"):
            extra["not_scored"] = str(result.get("not_scored") or result.get("error"))
        extra["import"] = {"file": self.import_file, "where": rec.where}
        values = {
            "post_key": key,
            "source": rec.source,
            "external_id": rec.external_id,
            "url": rec.url,
            "canonical_url": rec.canonical_url,
            "author": rec.author,
            "published_at": rec.published,
            "text": rec.text,
            "language": rec.language,
            "content_hash": digest,
            "duplicate_of": duplicate_of,
            "extra": extra,
        }
        stmt = pg_insert(Post).values(**values)
        update = {k: stmt.excluded[k] for k in values if k not in ("post_key", "duplicate_of")}
        update["duplicate_of"] = func.coalesce(Post.duplicate_of, stmt.excluded.duplicate_of)
        stmt = stmt.on_conflict_do_update(index_elements=["post_key"], set_=update).returning(
            Post.id, literal_column("(xmax = 0)"), Post.duplicate_of
        )
        post_id, inserted, duplicate_of = self.conn.execute(stmt).one()
        sentiment = result.get("sentiment")
        if isinstance(sentiment, dict) and sentiment.get("label"):
            topic = result.get("topic")
            confidence = result.get("confidence")
            if isinstance(confidence, dict):
                confidence = confidence.get("value")
            score = pg_insert(PostScore).values(
                post_id=post_id,
                model_version=str(result.get("model_version") or "unknown")[:64],
                genre=str(result.get("genre") or "post")[:16],
                label=sentiment["label"],
                probabilities=sentiment.get("scores") or {},
                confidence=float(confidence) if isinstance(confidence, int | float) else None,
                topic=topic.get("label") if isinstance(topic, dict) else topic,
                topic_scores=topic.get("scores")
                if isinstance(topic, dict)
                else result.get("topic_scores"),
                reasons=sentiment.get("reasons") or result.get("reasons") or [],
            )
            score = score.on_conflict_do_update(
                constraint="uq_post_scores_post_model",
                set_={
                    c: score.excluded[c]
                    for c in (
                        "genre",
                        "label",
                        "probabilities",
                        "confidence",
                        "topic",
                        "topic_scores",
                        "reasons",
                    )
                }
                | {"scored_at": func.now()},
            )
            self.conn.execute(score)
            self.report.scored += 1
        elif "sentiment" not in result and ("not_scored" in result or "error" in result):
            self.report.not_scored += 1
        places = result.get("places")
        if isinstance(places, list):
            if not inserted:
                self.conn.execute(PostPlace.__table__.delete().where(PostPlace.post_id == post_id))
            rows: dict[int, dict[str, Any]] = {}
            for place in places:
                if not isinstance(place, dict) or not place.get("code"):
                    continue
                unit_id = self._unit_id(place["code"], place.get("valid"))
                if unit_id is None or unit_id in rows:
                    continue
                rows[unit_id] = {
                    "post_id": post_id,
                    "admin_unit_id": unit_id,
                    "mention": place.get("mention"),
                    "confidence": place.get("confidence"),
                }
            if rows:
                self.conn.execute(pg_insert(PostPlace).values(list(rows.values())))
                self.report.placed += 1
        if inserted:
            self.report.new += 1
        else:
            self.report.updated += 1
        if duplicate_of is not None:
            self.report.duplicates += 1


def import_posts(
    engine: Engine,
    path: Path,
    fmt: str | None = None,
    default_source: str | None = None,
    scorer: Any = None,
    place_finder: Any = None,
    strip_html: bool = False,
    batch_size: int = 128,
    on_error: Callable[[str, str], None] | None = None,
    on_batch: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Import one posts file in one transaction; returns what was done.

    Parameters
    ----------
    scorer : an ``nlp.scoring.Scorer`` (sentiment, topic and places) or None (not scored).
    place_finder : an ``nlp.places.PlaceFinder`` used when there is no scorer.
    on_error : called with (where, reason) for each record skipped.
    on_batch : called with the report so far after each batch (progress).

    Raises
    ------
    PostFileError
        The file cannot be read (nothing is written).
    Exception
        A database or scorer failure: the transaction is rolled back, nothing is written.
    """
    path = Path(path)
    report = ImportReport(file=str(path))
    records = read_records(path, fmt)  # file-level errors before any connection

    def failed(where: str, reason: str) -> None:
        report.errors.append((where, reason))
        if on_error:
            on_error(where, reason)

    def flush(writer: _Writer, batch: list[PostRecord]) -> None:
        if scorer is not None:
            results = _score(scorer, batch)
            report.model_version = report.model_version or getattr(scorer, "model_version", None)
        else:
            results = [{} for _ in batch]
        finder = place_finder or getattr(scorer, "places", None)
        unplaced = [i for i, r in enumerate(results) if not isinstance(r.get("places"), list)]
        if finder is not None and unplaced:  # posts the scorer declined still get places
            found = _places_only(finder, [batch[i] for i in unplaced])
            for i, extra in zip(unplaced, found, strict=True):
                results[i] = {**results[i], **extra}
        # the batch in one savepoint; when the database refuses a post, the batch is rolled
        # back to it and written again one savepoint per post, to name the post and skip it
        counters = ("new", "updated", "duplicates", "scored", "not_scored", "placed")
        before = {c: getattr(report, c) for c in counters}
        try:
            with writer.conn.begin_nested():
                for rec, result in zip(batch, results, strict=True):
                    writer.write(rec, result)
        except DBAPIError as exc:
            if is_outage(exc):
                raise
            for c, value in before.items():
                setattr(report, c, value)
            for rec, result in zip(batch, results, strict=True):
                try:
                    with writer.conn.begin_nested():
                        writer.write(rec, result)
                except DBAPIError as exc:
                    if is_outage(exc):
                        raise
                    failed(rec.where, f"rejected by the database: {str(exc.orig).splitlines()[0]}")
        if on_batch:
            on_batch(report)

    with engine.begin() as conn:
        writer = _Writer(conn, report, path.name)
        batch: list[PostRecord] = []
        for where, raw in records:
            report.records += 1
            if isinstance(raw, RecordError):
                failed(where, str(raw))
                continue
            try:
                batch.append(map_record(raw, default_source, strip_html, where))
            except RecordError as exc:
                failed(where, str(exc))
                continue
            if len(batch) >= batch_size:
                flush(writer, batch)
                batch = []
        if batch:
            flush(writer, batch)
    return report


def demo_stage(ctx: Any) -> None:
    """``ioc demo`` stage: import the invented sample posts of ``data/posts`` (scored when a
    sentiment model loads, placed either way)."""
    from nlp.places import PlaceFinder, load_gazetteer
    from nlp.settings import NLPSettings

    settings = NLPSettings()
    scorer = finder = None
    try:
        from nlp.cli import resolve_model_path
        from nlp.scoring import load_scorer

        scorer = load_scorer(
            resolve_model_path(None, settings, Path(ctx.state_dir)),
            settings.gazetteer_path,
            use_ner=False,
            state_dir=Path(ctx.state_dir),
            use_encoder=settings.use_encoder,
        )
    except Exception as exc:  # noqa: BLE001 - no model: the posts are stored unscored, said so
        ctx.echo(f"  scoring skipped: {exc}")
        finder = PlaceFinder(load_gazetteer(settings.gazetteer_path), use_ner=False)
    folder = Path(ctx.data_dir) / "posts"
    for path in sorted(folder.glob("sample_posts.*")):
        report = import_posts(
            ctx.engine,
            path,
            scorer=scorer,
            place_finder=finder,
            on_error=lambda where, reason, p=path: ctx.echo(f"  {p.name}:{where}: {reason}"),
        )
        ctx.echo(
            f"  {path.name}: {report.stored} posts stored ({report.new} new), "
            f"{report.scored} scored, {report.placed} placed"
        )
