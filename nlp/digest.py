"""The daily digest for media staff: what online news said about the province.

``build_digest(connection, date)`` gathers everything with SQL text over the tables of
``gis/db/models.py`` (articles, article_scores, article_places, admin_units,
admin_unit_crosswalk, label_feedback, parcel_alerts, news_sources; citizens' posts from posts,
post_scores and post_places in a section of their own, without author names);
``render_html`` renders a self-contained page (inline CSS, inline SVG map and charts: works
offline, readable on a phone); ``render_pdf`` prints that page with headless Chromium on A4
(the template's ``@page`` rule, which Chromium's print-to-PDF honours).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import text

from nlp.errors import NLPError
from nlp.sentiment import LABELS, TOPIC_NAMES_VI

TIMEZONE = "Asia/Ho_Chi_Minh"
LABEL_VI = {"negative": "Tiêu cực", "neutral": "Trung tính", "positive": "Tích cực"}
TEMPLATES = Path(__file__).resolve().parent / "templates"

# Latest score per article, with a staff correction (latest) overriding the model's label.
_SCORED_SQL = f"""
WITH s AS (
  SELECT DISTINCT ON (article_id) article_id, label, probabilities, topic, reasons, model_version
  FROM article_scores ORDER BY article_id, scored_at DESC, id DESC
), f AS (
  SELECT DISTINCT ON (article_id) article_id, new_label, reviewer
  FROM label_feedback WHERE field = 'sentiment' ORDER BY article_id, created_at DESC, id DESC
)
SELECT a.id, a.title, a.url, a.lead,
       (COALESCE(a.published_at, a.fetched_at) AT TIME ZONE '{TIMEZONE}')::date AS day,
       COALESCE(ns.title, ns.name, split_part(split_part(a.url, '://', 2), '/', 1)) AS source,
       COALESCE(f.new_label, s.label) AS label, s.label AS model_label, f.reviewer,
       s.probabilities, s.topic, s.reasons, s.model_version
FROM articles a
JOIN s ON s.article_id = a.id
LEFT JOIN f ON f.article_id = a.id
LEFT JOIN news_sources ns ON ns.id = a.source_id
WHERE a.duplicate_of IS NULL
  AND (COALESCE(a.published_at, a.fetched_at) AT TIME ZONE '{TIMEZONE}')::date BETWEEN :start AND :day
"""

# Article -> current commune code (old communes through the crosswalk).
_PLACES_SQL = """
SELECT p.article_id, u.code, u.name, u.level, u.valid_to IS NOT NULL AS is_old,
       COALESCE(c.new_code, u.code) AS current_code
FROM article_places p
JOIN admin_units u ON u.id = p.admin_unit_id
LEFT JOIN admin_unit_crosswalk c ON c.old_code = u.code AND u.valid_to IS NOT NULL
WHERE p.article_id = ANY(:ids)
"""

# Posts (citizens' posts and comments, migration 0008): latest score, no author (private).
_POSTS_SQL = f"""
WITH s AS (
  SELECT DISTINCT ON (post_id) post_id, label, probabilities, confidence, topic, reasons, model_version
  FROM post_scores ORDER BY post_id, scored_at DESC, id DESC
), f AS (  -- a staff correction (migration 0012) overrides the model's label, as for articles
  SELECT DISTINCT ON (post_id) post_id, new_label
  FROM label_feedback WHERE field = 'sentiment' AND post_id IS NOT NULL
  ORDER BY post_id, created_at DESC, id DESC
)
SELECT p.id, p.text, p.url, COALESCE(p.source, '—') AS source,
       (COALESCE(p.published_at, p.imported_at) AT TIME ZONE '{TIMEZONE}')::date AS day,
       COALESCE(f.new_label, s.label) AS label, s.probabilities, s.confidence, s.topic,
       s.reasons, s.model_version
FROM posts p
LEFT JOIN s ON s.post_id = p.id
LEFT JOIN f ON f.post_id = p.id
WHERE p.duplicate_of IS NULL
  AND (COALESCE(p.published_at, p.imported_at) AT TIME ZONE '{TIMEZONE}')::date BETWEEN :start AND :day
"""

_POST_PLACES_SQL = """
SELECT p.post_id, u.code, u.name, u.level, COALESCE(c.new_code, u.code) AS current_code
FROM post_places p
JOIN admin_units u ON u.id = p.admin_unit_id
LEFT JOIN admin_unit_crosswalk c ON c.old_code = u.code AND u.valid_to IS NOT NULL
WHERE p.post_id = ANY(:ids)
"""

_UNIT_NAMES_SQL = """
SELECT DISTINCT ON (code) code, name FROM admin_units WHERE code = ANY(:codes)
ORDER BY code, (valid_to IS NULL) DESC, valid_from DESC
"""

# Function words and punctuation: a reason chip made only of these tells a reader nothing
# (". sau", "sau khi", "của"), whatever n-gram the model found useful.
STOPWORDS = frozenset(
    (
        "và",
        "của",
        "là",
        "có",
        "được",
        "cho",
        "các",
        "những",
        "một",
        "với",
        "trong",
        "tại",
        "khi",
        "đã",
        "sau",
        "trước",
        "này",
        "đó",
        "thì",
        "mà",
        "cũng",
        "về",
        "từ",
        "theo",
        "đến",
        "ra",
        "vào",
        "lên",
        "xuống",
        "nên",
        "nhưng",
        "hay",
        "hoặc",
        "để",
        "do",
        "bị",
        "rất",
        "lại",
        "còn",
        "đang",
        "sẽ",
        "vẫn",
        "như",
        "nơi",
        "người",
        "việc",
        "ngày",
        "năm",
        "tháng",
        "giờ",
        "ở",
        "trên",
        "dưới",
        "qua",
        "cùng",
        "nhiều",
        "ít",
        "hơn",
        "nhất",
        "đều",
        "chỉ",
        "mới",
        "vừa",
        "rồi",
        "nữa",
        "thế",
        "vậy",
        "gì",
        "nào",
        "ai",
        "đây",
        "kia",
        "ấy",
        "họ",
        "chúng",
        "tôi",
        "ta",
        "bạn",
        "anh",
        "chị",
        "em",
        "ông",
        "bà",
        "không",
        "chưa",
        "phải",
        "vì",
        "nếu",
        "tuy",
        "dù",
        "bởi",
        "nhằm",
        "đối",
    )
)
_PUNCT_TOKEN_RE = re.compile(r"^[\W_]+$")


def clean_tag(phrase: Any) -> str | None:
    """A reason phrase fit for a chip, or None.

    Punctuation tokens at either end are dropped; a phrase left with only punctuation,
    numbers or function words is not a tag.

    >>> clean_tag(". sau"), clean_tag("sau khi"), clean_tag("cháy lớn ."), clean_tag("ô_nhiễm")
    (None, None, 'cháy lớn', 'ô nhiễm')
    """
    if not isinstance(phrase, str):
        return None
    tokens = phrase.replace("_", " ").split()
    while tokens and _PUNCT_TOKEN_RE.match(tokens[0]):
        tokens.pop(0)
    while tokens and _PUNCT_TOKEN_RE.match(tokens[-1]):
        tokens.pop()
    if not tokens or all(
        t.lower() in STOPWORDS or not any(ch.isalpha() for ch in t) for t in tokens
    ):
        return None
    return " ".join(tokens)


def _tags(reasons: Any, k: int = 6) -> list[str]:
    out: list[str] = []
    for r in reasons or []:
        if isinstance(r, dict) and r.get("kind") == "phrase":
            tag = clean_tag(r.get("text"))
            if tag and tag not in out:
                out.append(tag)
    return out[:k]


_COMMUNES_SQL = """
WITH cur AS (
  SELECT DISTINCT ON (code) code, name, unit_type, province_code, geom
  FROM admin_units
  WHERE level = 'commune' AND valid_to IS NULL AND geom IS NOT NULL
    AND province_code IN (SELECT DISTINCT province_code FROM admin_units
                          WHERE level = 'commune' AND valid_to IS NULL AND code = ANY(:codes))
  ORDER BY code, valid_from DESC
), g AS (
  SELECT code, name, unit_type,
         ST_SimplifyPreserveTopology(ST_Transform(geom, 3857), 60) AS geom
  FROM cur
)
SELECT code, name, unit_type, ST_AsSVG(geom, 0, 0) AS path,
       ST_X(ST_PointOnSurface(geom)) AS lx, -ST_Y(ST_PointOnSurface(geom)) AS ly,
       (SELECT ST_XMin(e) FROM (SELECT ST_Extent(geom) AS e FROM g) x) AS xmin,
       (SELECT ST_YMin(e) FROM (SELECT ST_Extent(geom) AS e FROM g) x) AS ymin,
       (SELECT ST_XMax(e) FROM (SELECT ST_Extent(geom) AS e FROM g) x) AS xmax,
       (SELECT ST_YMax(e) FROM (SELECT ST_Extent(geom) AS e FROM g) x) AS ymax
FROM g ORDER BY code
"""

_ALERTS_SQL = """
SELECT pa.id, pa.commune_code, COALESCE(u.name, pa.commune_code) AS commune, pa.rule, pa.severity,
       pa.changed_area_m2, pa.changed_fraction, pa.legal_code, pa.observed_to, pa.review_status,
       (pa.created_at AT TIME ZONE :tz)::date AS day
FROM parcel_alerts pa
LEFT JOIN LATERAL (
  SELECT name FROM admin_units WHERE code = pa.commune_code ORDER BY valid_to IS NULL DESC LIMIT 1
) u ON true
WHERE (pa.created_at AT TIME ZONE :tz)::date BETWEEN :start AND :day
  AND pa.commune_code = ANY(:codes)
ORDER BY CASE pa.severity WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END, pa.changed_area_m2 DESC
LIMIT 50
"""


def _tone(p: dict[str, Any] | None) -> float:
    """Sentiment balance in [-1, 1]: P(positive) - P(negative)."""
    if not p:
        return 0.0
    return float(p.get("positive", 0.0)) - float(p.get("negative", 0.0))


def build_digest(connection: Any, date: dt.date, days: int = 7) -> dict[str, Any]:
    """Gather the digest of ``date`` (local day, Asia/Ho_Chi_Minh) and the ``days`` before it.

    Parameters
    ----------
    connection : sqlalchemy.engine.Connection
    date : datetime.date
    days : int
        Length of the history shown (volume and sentiment per day), the day included.

    Returns
    -------
    dict
        JSON-serialisable: ``date``, ``totals``, ``series``, ``by_topic``, ``by_source``,
        ``communes`` (with SVG paths), ``map``, ``negative_articles``, ``alerts``,
        ``feedback``.
    """
    start = date - dt.timedelta(days=days - 1)
    rows = connection.execute(text(_SCORED_SQL), {"start": start, "day": date}).mappings().all()
    arts = [dict(r) for r in rows]
    today = [a for a in arts if a["day"] == date]
    ids = [a["id"] for a in arts]
    places: dict[int, list[dict[str, Any]]] = {}
    if ids:
        for r in connection.execute(text(_PLACES_SQL), {"ids": ids}).mappings():
            places.setdefault(r["article_id"], []).append(dict(r))

    def count(items: list[dict[str, Any]]) -> dict[str, int]:
        c = {lab: 0 for lab in LABELS}
        for a in items:
            if a["label"] in c:
                c[a["label"]] += 1
        return c

    series = []
    for i in range(days):
        d = start + dt.timedelta(days=i)
        items = [a for a in arts if a["day"] == d]
        series.append({"date": d.isoformat(), "total": len(items), **count(items)})

    def grouped(key: str) -> list[dict[str, Any]]:
        groups: dict[str, list[dict[str, Any]]] = {}
        for a in today:
            groups.setdefault(a[key] or "—", []).append(a)
        out = []
        for k, items in groups.items():
            c = count(items)
            out.append(
                {
                    "key": k,
                    "name": TOPIC_NAMES_VI.get(k, k) if key == "topic" else k,
                    "total": len(items),
                    **c,
                    "negative_share": round(c["negative"] / len(items), 3) if items else 0.0,
                }
            )
        return sorted(out, key=lambda g: (-g["total"], -g["negative"]))

    # communes in the news today (current codes), with sentiment balance
    commune_stats: dict[str, dict[str, Any]] = {}
    for a in today:
        seen = set()
        for p in places.get(a["id"], []):
            if p["level"] != "commune" or p["current_code"] in seen:
                continue
            seen.add(p["current_code"])
            st = commune_stats.setdefault(
                p["current_code"],
                {"code": p["current_code"], "articles": 0, "negative": 0, "tone_sum": 0.0},
            )
            st["articles"] += 1
            st["negative"] += a["label"] == "negative"
            st["tone_sum"] += _tone(a["probabilities"])
    window_codes = sorted(
        {p["current_code"] for ps in places.values() for p in ps if p["level"] == "commune"}
    )
    communes: list[dict[str, Any]] = []
    map_box = None
    if window_codes:
        for r in connection.execute(text(_COMMUNES_SQL), {"codes": window_codes}).mappings():
            st = commune_stats.get(r["code"])
            communes.append(
                {
                    "code": r["code"],
                    "name": r["name"],
                    "path": r["path"],
                    "label_x": r["lx"],
                    "label_y": r["ly"],
                    "articles": st["articles"] if st else 0,
                    "negative": st["negative"] if st else 0,
                    "tone": round(st["tone_sum"] / st["articles"], 3) if st else None,
                }
            )
            map_box = (r["xmin"], -r["ymax"], r["xmax"] - r["xmin"], r["ymax"] - r["ymin"])
    names = {c["code"]: c["name"] for c in communes}
    for st in commune_stats.values():
        st["name"] = names.get(st["code"], st["code"])
        st["tone"] = round(st.pop("tone_sum") / st["articles"], 3)

    negative = sorted(
        (a for a in today if a["label"] == "negative"),
        key=lambda a: -float((a["probabilities"] or {}).get("negative", 0.0)),
    )[:10]
    neg_out = []
    for a in negative:
        reasons = a["reasons"] or []
        neg_out.append(
            {
                "id": a["id"],
                "title": a["title"],
                "url": a["url"],
                "source": a["source"],
                "topic": a["topic"],
                "topic_name": TOPIC_NAMES_VI.get(a["topic"] or "", a["topic"] or ""),
                "p_negative": round(float((a["probabilities"] or {}).get("negative", 0.0)), 3),
                "corrected_by": a["reviewer"],
                "model_label": a["model_label"],
                "sentences": [
                    r["text"]
                    for r in reasons
                    if isinstance(r, dict) and r.get("kind") == "sentence"
                ][:2],
                "phrases": _tags(reasons),
                "places": sorted({p["name"] for p in places.get(a["id"], [])}),
            }
        )

    alerts: list[dict[str, Any]] = []
    today_codes = sorted(commune_stats)
    if today_codes:
        old_codes = [
            r[0]
            for r in connection.execute(
                text("SELECT old_code FROM admin_unit_crosswalk WHERE new_code = ANY(:c)"),
                {"c": today_codes},
            )
        ]
        for r in connection.execute(
            text(_ALERTS_SQL),
            {"tz": TIMEZONE, "start": start, "day": date, "codes": today_codes + old_codes},
        ).mappings():
            alerts.append(
                {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in dict(r).items()}
            )

    fb = connection.execute(
        text(
            "SELECT count(*) FROM label_feedback WHERE (created_at AT TIME ZONE :tz)::date BETWEEN :start AND :day"
        ),
        {"tz": TIMEZONE, "start": start, "day": date},
    ).scalar_one()
    posts = _posts_digest(connection, start, date, days)
    versions = sorted({a["model_version"] for a in today if a["model_version"]})
    return {
        "date": date.isoformat(),
        "days": days,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "totals": {"articles": len(today), **count(today)},
        "series": series,
        "by_topic": grouped("topic"),
        "by_source": grouped("source"),
        "communes": communes,
        "commune_stats": sorted(
            commune_stats.values(), key=lambda s: (-s["negative"], -s["articles"])
        ),
        "map": {
            "viewbox": map_box,
            "font": round(max(map_box[2], map_box[3]) / 38, 1),
            "stroke": round(max(map_box[2], map_box[3]) / 900, 1),
            "pad": round(max(map_box[2], map_box[3]) / 40, 1),
        }
        if map_box
        else None,
        "negative_articles": neg_out,
        "alerts": alerts,
        "feedback": {"corrections_in_window": int(fb)},
        "model_versions": versions,
        "posts": posts,
    }


def _posts_digest(connection: Any, start: dt.date, date: dt.date, days: int) -> dict[str, Any]:
    """Citizens' posts of the day, apart from the articles: counts by sentiment, per day,
    by platform, top communes and the most negative posts (no author names)."""
    rows = [
        dict(r)
        for r in connection.execute(text(_POSTS_SQL), {"start": start, "day": date}).mappings()
    ]
    today = [p for p in rows if p["day"] == date]

    def count(items: list[dict[str, Any]]) -> dict[str, int]:
        c = {lab: 0 for lab in LABELS}
        c["unscored"] = 0
        for p in items:
            c[p["label"] if p["label"] in c else "unscored"] += 1
        return c

    series = []
    for i in range(days):
        d = start + dt.timedelta(days=i)
        items = [p for p in rows if p["day"] == d]
        series.append({"date": d.isoformat(), "total": len(items), **count(items)})
    by_source: dict[str, list[dict[str, Any]]] = {}
    for p in today:
        by_source.setdefault(p["source"], []).append(p)
    sources = sorted(
        ({"name": k, "total": len(v), **count(v)} for k, v in by_source.items()),
        key=lambda g: (-g["total"], -g["negative"], g["name"]),
    )
    places: dict[int, list[dict[str, Any]]] = {}
    if today:
        ids = [p["id"] for p in today]
        for r in connection.execute(text(_POST_PLACES_SQL), {"ids": ids}).mappings():
            places.setdefault(r["post_id"], []).append(dict(r))
    stats: dict[str, dict[str, Any]] = {}
    for p in today:
        seen = set()
        for pl in places.get(p["id"], []):
            if pl["level"] != "commune" or pl["current_code"] in seen:
                continue
            seen.add(pl["current_code"])
            st = stats.setdefault(
                pl["current_code"],
                {
                    "code": pl["current_code"],
                    "posts": 0,
                    "negative": 0,
                    "positive": 0,
                    "tone_sum": 0.0,
                    "scored": 0,
                },
            )
            st["posts"] += 1
            st["negative"] += p["label"] == "negative"
            st["positive"] += p["label"] == "positive"
            if p["probabilities"]:
                st["scored"] += 1
                st["tone_sum"] += _tone(p["probabilities"])
    if stats:
        names = dict(connection.execute(text(_UNIT_NAMES_SQL), {"codes": list(stats)}).all())
        for st in stats.values():
            st["name"] = names.get(st["code"], st["code"])
            st["tone"] = round(st.pop("tone_sum") / st["scored"], 3) if st["scored"] else None
            del st["scored"]
    negative = sorted(
        (p for p in today if p["label"] == "negative"),
        key=lambda p: -float((p["probabilities"] or {}).get("negative", 0.0)),
    )[:5]
    return {
        "totals": {"posts": len(today), **count(today)},
        "series": series,
        "series_max": max([s["total"] for s in series] + [1]),
        "by_source": sources,
        "communes": sorted(stats.values(), key=lambda s: (-s["posts"], -s["negative"], s["name"]))[
            :10
        ],
        "negative_posts": [
            {
                "id": p["id"],
                "url": p["url"],
                "source": p["source"],
                "text": p["text"] if len(p["text"]) <= 280 else p["text"][:277].rstrip() + "…",
                "p_negative": round(float((p["probabilities"] or {}).get("negative", 0.0)), 3),
                "confidence": p["confidence"],
                "phrases": _tags(p["reasons"], 4),
                "places": sorted({pl["name"] for pl in places.get(p["id"], [])}),
            }
            for p in negative
        ],
        "model_versions": sorted({p["model_version"] for p in today if p["model_version"]}),
    }


def _tone_colour(tone: float | None) -> str:
    """Red (negative) → grey (neutral) → green (positive); light grey when no news."""
    if tone is None:
        return "#eceff1"
    t = max(-1.0, min(1.0, tone))
    if t < 0:
        a = -t
        r, g, b = 236 + (198 - 236) * a, 239 + (40 - 239) * a, 241 + (40 - 241) * a
    else:
        r, g, b = 236 + (46 - 236) * t, 239 + (160 - 239) * t, 241 + (67 - 241) * t
    return f"#{int(r):02x}{int(g):02x}{int(b):02x}"


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"])
    )
    env.filters["tone_colour"] = _tone_colour
    env.globals["LABEL_VI"] = LABEL_VI
    return env


def render_html(digest: dict[str, Any], feedback_url: str | None = None) -> str:
    """The digest as one self-contained HTML page (Vietnamese, phone-friendly, offline).

    ``feedback_url`` is where the correction forms POST (default ``/digest/feedback``).
    """
    d = dict(digest)
    if feedback_url:
        d["feedback_url"] = feedback_url
    d.setdefault("feedback_url", "/digest/feedback")
    series = d.get("series", [])
    d["series_max"] = max([s["total"] for s in series] + [1])
    return _env().get_template("digest.html").render(**d)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def render_pdf(
    digest: dict[str, Any], chromium: str | None = None, timeout: float = 120.0
) -> bytes:
    """Print the HTML digest to PDF with headless Chromium (offline: no network is used).

    Raises
    ------
    NLPError
        Chromium is missing or fails.
    """
    exe = chromium or find_chromium()
    if not exe:
        raise NLPError("PDF needs Chromium (Debian package 'chromium'); it is not installed")
    html = render_html(digest)
    with tempfile.TemporaryDirectory(prefix="ioc-digest-") as tmp:
        src = Path(tmp) / "digest.html"
        out = Path(tmp) / "digest.pdf"
        src.write_text(html, encoding="utf-8")
        cmd = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-extensions",
            "--no-first-run",
            "--no-pdf-header-footer",
            f"--user-data-dir={Path(tmp) / 'profile'}",
            f"--print-to-pdf={out}",
            src.as_uri(),
        ]
        env = dict(os.environ, HOME=tmp)
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NLPError(f"Chromium could not print the digest: {exc}") from exc
        if not out.exists() or out.stat().st_size == 0:
            raise NLPError(
                f"Chromium printed no PDF (exit {proc.returncode}): {proc.stderr.decode(errors='replace')[-300:]}"
            )
        return out.read_bytes()
