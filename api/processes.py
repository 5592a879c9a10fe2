"""OGC API Processes (ids are a contract): land-change-detection, sentiment-scoring,
daily-digest. Each processor is metadata + a thin ``execute`` that parses inputs, calls the
domain entry point and maps domain errors to ``ProcessorExecuteError``. Jobs are persisted by
pygeoapi's PostgreSQL manager in ``pygeoapi.jobs`` (migration 0005).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from pygeoapi.process.base import BaseProcessor, ProcessorExecuteError
from sqlalchemy import Engine, text

from gis.errors import IocError

_ENGINES: dict[str, Engine] = {}


def _engine(url: str) -> Engine:
    engine = _ENGINES.get(url)
    if engine is None:
        from gis.db.session import make_engine

        engine = make_engine(url, pool_size=2)
        _ENGINES[url] = engine
    return engine


def _meta(id_: str, title_vi: str, title_en: str, description: str, inputs: dict, outputs: dict,
          example: dict, async_: bool) -> dict:
    return {
        "version": "1.0.0",
        "id": id_,
        "title": {"vi": title_vi, "en": title_en},
        "description": {"en": description, "vi": description},
        "jobControlOptions": ["async-execute", "sync-execute"] if async_ else ["sync-execute", "async-execute"],
        "keywords": [id_],
        "links": [],
        "inputs": inputs,
        "outputs": outputs,
        "example": {"inputs": example},
    }


def _input(title: str, schema: dict, required: bool = True) -> dict:
    return {"title": title, "description": title, "schema": schema,
            "minOccurs": 1 if required else 0, "maxOccurs": 1}


LAND_CHANGE_METADATA = _meta(
    "land-change-detection", "Phát hiện biến động đất đai", "Land-change detection",
    "Detect land-cover change between two images (paths on the server, under the configured "
    "data folders), store the run and its change polygons (collection land-changes).",
    {
        "before": _input("Image before: multi-band GeoTIFF or folder of per-band GeoTIFFs", {"type": "string"}),
        "after": _input("Image after", {"type": "string"}),
        "method": _input("Detector: cnn, gbm or cva", {"type": "string", "enum": ["cnn", "gbm", "cva"]}, False),
        "threshold": _input("Change probability threshold", {"type": "number", "minimum": 0, "maximum": 1}, False),
        "store": _input("Store the run and its changes", {"type": "boolean", "default": True}, False),
    },
    {"result": {"title": "Run summary", "schema": {"type": "object", "contentMediaType": "application/json"}}},
    {"before": "data/imagery/before.tif", "after": "data/imagery/after.tif", "method": "cva"},
    async_=True,
)

SENTIMENT_METADATA = _meta(
    "sentiment-scoring", "Chấm điểm cảm xúc", "Sentiment scoring",
    "Score Vietnamese texts: label negative/neutral/positive with probabilities, topic and places.",
    {
        "records": _input("Records {id, text}", {"type": "array", "items": {"type": "object"}}, False),
        "article_ids": _input("Or: ids of stored articles", {"type": "array", "items": {"type": "integer"}}, False),
    },
    {"scores": {"title": "Scored records", "schema": {"type": "object", "contentMediaType": "application/json"}}},
    {"records": [{"id": "1", "text": "Cháy lớn tại khu công nghiệp, nhiều người bị thương."}]},
    async_=False,
)

DIGEST_METADATA = _meta(
    "daily-digest", "Bản tin tổng hợp hằng ngày", "Daily digest",
    "Build the daily digest of online news about the province for a date (json or html).",
    {
        "date": _input("Date (YYYY-MM-DD)", {"type": "string", "format": "date"}),
        "format": _input("json or html", {"type": "string", "enum": ["json", "html"], "default": "json"}, False),
    },
    {"digest": {"title": "The digest", "schema": {"type": "object", "contentMediaType": "application/json"}}},
    {"date": "2025-07-01"},
    async_=False,
)


class _DatabaseProcessor(BaseProcessor):
    def __init__(self, processor_def: dict, metadata: dict) -> None:
        super().__init__(processor_def, metadata)
        self.database_url = processor_def.get("database_url")
        self.allowed_roots = [Path(p).resolve() for p in processor_def.get("allowed_roots", [])]

    @property
    def engine(self) -> Engine:
        if not self.database_url:
            raise ProcessorExecuteError("The process has no database configured.")
        return _engine(self.database_url)


class LandChangeDetectionProcessor(_DatabaseProcessor):
    """Asynchronous change detection: calls ``gis.change.detect.detect_changes`` and
    ``gis.change.store.store_run`` (run, changes and parcel alerts, one transaction)."""

    def __init__(self, processor_def: dict) -> None:
        super().__init__(processor_def, LAND_CHANGE_METADATA)

    def _path(self, data: dict, name: str) -> Path:
        value = data.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ProcessorExecuteError(f"Input '{name}' (a path on the server) is required.")
        path = Path(value).expanduser().resolve()
        if self.allowed_roots and not any(path.is_relative_to(r) for r in self.allowed_roots):
            raise ProcessorExecuteError(f"Input '{name}' must be under the configured data folders.")
        if not path.exists():
            raise ProcessorExecuteError(f"Input '{name}': {value} does not exist.")
        return path

    def execute(self, data: dict, outputs: dict | None = None):
        before, after = self._path(data, "before"), self._path(data, "after")
        try:
            from gis.change.detect import DetectionConfig, detect_changes
        except ImportError as exc:
            raise ProcessorExecuteError(f"Change detection is not available: {exc}") from exc
        config = DetectionConfig()
        if data.get("method") is not None:
            if data["method"] not in ("cnn", "gbm", "cva"):
                raise ProcessorExecuteError("Input 'method' must be cnn, gbm or cva.")
            config.method = data["method"]
        if data.get("threshold") is not None:
            try:
                config.threshold = float(data["threshold"])
            except (TypeError, ValueError):
                raise ProcessorExecuteError("Input 'threshold' must be a number.") from None
        try:
            result = detect_changes(before, after, config)
        except (IocError, ValueError, OSError) as exc:
            raise ProcessorExecuteError(str(exc)) from exc
        stored: dict[str, Any] = {}
        if data.get("store", True):
            # the land engineer's entry point: run, scenes, changes and parcel alerts, one transaction
            from gis.alerts import load_rules
            from gis.change.store import store_run

            try:
                stored = store_run(self.engine, result, load_rules())
            except (IocError, ValueError) as exc:
                raise ProcessorExecuteError(str(exc)) from exc
        summary = {
            "run_id": stored.get("run_id"),
            "alerts": stored.get("alerts"),
            "alerts_by_severity": stored.get("alerts_by_severity"),
            "method": result.method,
            "model_version": result.model_version,
            "stats": result.stats,
            "timings": result.timings,
            "changes": len(result.features),
        }
        return "application/json", {"id": "result", "value": summary}


_SCORER: list = []


def _scorer():
    """The sentiment scorer, loaded once per process (model + gazetteer)."""
    if not _SCORER:
        try:
            from nlp.scoring import load_scorer
        except ImportError as exc:
            raise ProcessorExecuteError(f"Sentiment scoring is not available: {exc}") from exc
        try:
            _SCORER.append(load_scorer())
        except (IocError, ValueError, OSError) as exc:
            raise ProcessorExecuteError(f"The sentiment model cannot be loaded: {exc}") from exc
    return _SCORER[0]


class SentimentScoringProcessor(_DatabaseProcessor):
    """Calls ``nlp.scoring.load_scorer().score_records(records)``."""

    def __init__(self, processor_def: dict) -> None:
        super().__init__(processor_def, SENTIMENT_METADATA)

    def execute(self, data: dict, outputs: dict | None = None):
        records = data.get("records")
        ids = data.get("article_ids")
        if records is None and ids is None:
            raise ProcessorExecuteError("Give 'records' ([{id, text}]) or 'article_ids'.")
        if records is not None:
            if not isinstance(records, list) or not all(
                isinstance(r, dict) and isinstance(r.get("text"), str) for r in records
            ):
                raise ProcessorExecuteError("'records' must be a list of objects with a 'text' string.")
        else:
            if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
                raise ProcessorExecuteError("'article_ids' must be a list of integers.")
            with self.engine.connect() as conn:
                rows = conn.execute(
                    text("SELECT id, title, coalesce(lead, '') AS lead, text FROM articles WHERE id = ANY(:ids)"),
                    {"ids": ids},
                ).mappings().all()
            records = [{"id": r["id"], "title": r["title"], "lead": r["lead"],
                        "text": "\n".join(x for x in (r["title"], r["lead"], r["text"]) if x)} for r in rows]
        if len(records) > 5000:
            raise ProcessorExecuteError("At most 5000 records per execution.")
        try:
            scored = _scorer().score_records(records)
        except (IocError, ValueError, OSError) as exc:
            raise ProcessorExecuteError(str(exc)) from exc
        return "application/json", {"id": "scores", "value": list(scored)}


class DailyDigestProcessor(_DatabaseProcessor):
    """Calls ``nlp.digest.build_digest(connection, date)`` (and ``render_html`` for html)."""

    def __init__(self, processor_def: dict) -> None:
        super().__init__(processor_def, DIGEST_METADATA)

    def execute(self, data: dict, outputs: dict | None = None):
        try:
            day = dt.date.fromisoformat(str(data.get("date")))
        except ValueError:
            raise ProcessorExecuteError("Input 'date' must be YYYY-MM-DD.") from None
        fmt = data.get("format", "json")
        if fmt not in ("json", "html"):
            raise ProcessorExecuteError("Input 'format' must be json or html.")
        from api.digest import render_digest
        from api.errors import ApiError

        try:
            content, media_type = render_digest(self.engine, day, fmt)
        except ApiError as exc:
            raise ProcessorExecuteError(str(exc)) from exc
        if fmt == "html":
            return "text/html", content.decode("utf-8")
        return "application/json", {"id": "digest", "value": json.loads(content)}
