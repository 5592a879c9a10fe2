"""OGC API Processes (ids are a contract): land-change-detection, sentiment-scoring,
daily-digest. Each processor is metadata + a thin ``execute`` that checks its inputs, calls the
domain entry point and maps domain errors to ``ProcessorExecuteError``. Jobs are persisted by
pygeoapi's PostgreSQL manager in ``pygeoapi.jobs`` (migration 0005).

Inputs are checked at the edge, before a job exists (:func:`check_execution`, called by the
execution route): the execute request must be a JSON object with ``inputs`` (and optionally
``outputs``, ``response``, ``subscriber``), and the inputs must validate against the JSON
schemas each process declares in its description (``/processes/{id}``): types, ranges
(``threshold`` in [0, 1]), required inputs, dates as ISO strings, no unknown input. Anything
else is a 400 naming the input. The token must carry the process's role
(:data:`PROCESS_ROLES`: officer runs land processes, media the NLP ones, admin all): 403
otherwise. Error texts never show a server path: the land process reports the path the client
gave.

The land-change process honours the land settings the CLI honours (``IOC_LAND_RULES_FILE``,
``IOC_LAND_DETECTOR``, ``IOC_LAND_MODEL_DIR``, ``IOC_LAND_TTA``, ``IOC_LAND_DASK_SCHEDULER``):
they are read at app start and passed in the processor definition
(:func:`process_resources`), never read here.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from pygeoapi.process.base import (
    BaseProcessor,
    JobNotFoundError,
    ProcessorExecuteError,
    UnknownProcessError,
)
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from api.errors import InvalidParameterError, NotFoundError, public_message
from gis.change.models import METHODS as DETECTORS
from gis.errors import IocError

if TYPE_CHECKING:
    from api.auth import Principal
    from api.settings import ApiSettings
    from gis.settings import LandSettings

LOGGER = logging.getLogger(__name__)

#: the role a token needs to run each process (admin may run all)
PROCESS_ROLES: dict[str, str] = {
    "land-change-detection": "officer",
    "sentiment-scoring": "media",
    "daily-digest": "media",
}
EXECUTE_MEMBERS = ("inputs", "outputs", "response", "subscriber")
MAX_RECORDS = 5000
MAX_TEXT = 200_000
#: scenes of a time series in one execution (three years of monthly scenes)
MAX_SERIES = 36
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
#: the days a digest can be asked for (news of the past, not of year 1 or 9999)
DIGEST_DAYS = (dt.date(1970, 1, 1), dt.date(2999, 12, 31))

_ENGINES: dict[str, Engine] = {}


def _engine(url: str) -> Engine:
    engine = _ENGINES.get(url)
    if engine is None:
        from gis.db.session import make_engine

        engine = make_engine(url, pool_size=2)
        _ENGINES[url] = engine
    return engine


def _meta(
    id_: str,
    title_vi: str,
    title_en: str,
    description: str,
    inputs: dict,
    outputs: dict,
    example: dict,
    async_: bool,
) -> dict:
    return {
        "version": "1.0.0",
        "id": id_,
        "title": {"vi": title_vi, "en": title_en},
        "description": {"en": description, "vi": description},
        "jobControlOptions": ["async-execute", "sync-execute"]
        if async_
        else ["sync-execute", "async-execute"],
        "keywords": [id_, f"role:{PROCESS_ROLES[id_]}"],
        "links": [],
        "inputs": inputs,
        "outputs": outputs,
        "example": {"inputs": example},
    }


def _input(title: str, schema: dict, required: bool = True) -> dict:
    return {
        "title": title,
        "description": title,
        "schema": schema,
        "minOccurs": 1 if required else 0,
        "maxOccurs": 1,
    }


LAND_CHANGE_METADATA = _meta(
    "land-change-detection",
    "Phát hiện biến động đất đai",
    "Land-change detection",
    "Detect land-cover change between two images (before, after), or over a time series of "
    "scenes (scenes, optionally dates and min_persist: the latest scene compared with the "
    "best-matching earlier one, conversions confirmed by persistence, as `ioc land detect "
    "S1 S2 S3 ...`); paths on the server, under the configured data folders. Stores the run "
    "and its change polygons (collection land-changes). Needs a token with the officer (or "
    "admin) role.",
    {
        "before": _input(
            "Image before: multi-band GeoTIFF or folder of per-band GeoTIFFs (with after; or "
            "give scenes)",
            {"type": "string", "minLength": 1, "maxLength": 1024},
            False,
        ),
        "after": _input(
            "Image after (with before)",
            {"type": "string", "minLength": 1, "maxLength": 1024},
            False,
        ),
        "scenes": _input(
            "Time series: the scenes (GeoTIFFs or band folders) of one product, in any order "
            "(instead of before/after)",
            {
                "type": "array",
                "minItems": 2,
                "maxItems": MAX_SERIES,
                "items": {"type": "string", "minLength": 1, "maxLength": 1024},
            },
            False,
        ),
        "dates": _input(
            "Time series: the scenes' acquisition dates (YYYY-MM-DD), one per scene in their "
            "order; by default from the scenes' tags or names",
            {
                "type": "array",
                "minItems": 2,
                "maxItems": MAX_SERIES,
                "items": {"type": "string", "format": "date", "pattern": DATE_PATTERN},
            },
            False,
        ),
        "min_persist": _input(
            "Time series: a conversion is confirmed when it holds on at least this many "
            "scenes from its change date on",
            {"type": "integer", "minimum": 1, "maximum": MAX_SERIES, "default": 2},
            False,
        ),
        "method": _input(
            "Detector: cnn, gbm or cva (default: the server's IOC_LAND_DETECTOR)",
            {"type": "string", "enum": list(DETECTORS)},
            False,
        ),
        "threshold": _input(
            "Change probability threshold",
            {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
            False,
        ),
        "store": _input(
            "Store the run and its changes", {"type": "boolean", "default": True}, False
        ),
        "force": _input(
            "Store a new run even if the same run (same scene contents, method, model "
            "and parameters) is stored already; otherwise that run is updated",
            {"type": "boolean", "default": False},
            False,
        ),
    },
    {
        "result": {
            "title": "Run summary",
            "schema": {"type": "object", "contentMediaType": "application/json"},
        }
    },
    {"before": "data/imagery/before.tif", "after": "data/imagery/after.tif", "method": "cva"},
    async_=True,
)

SENTIMENT_METADATA = _meta(
    "sentiment-scoring",
    "Chấm điểm cảm xúc",
    "Sentiment scoring",
    "Score Vietnamese texts: label negative/neutral/positive with probabilities, topic and "
    "places. Give either records or article_ids. Needs a token with the media (or admin) role.",
    {
        "records": _input(
            "Records {id, text}",
            {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_RECORDS,
                "items": {
                    "type": "object",
                    "required": ["text"],
                    "properties": {
                        "id": {"type": ["string", "integer"]},
                        "text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
                    },
                },
            },
            False,
        ),
        "article_ids": _input(
            "Or: ids of stored articles",
            {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_RECORDS,
                "items": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
            },
            False,
        ),
    },
    {
        "scores": {
            "title": "Scored records",
            "schema": {"type": "object", "contentMediaType": "application/json"},
        }
    },
    {"records": [{"id": "1", "text": "Cháy lớn tại khu công nghiệp, nhiều người bị thương."}]},
    async_=False,
)

DIGEST_METADATA = _meta(
    "daily-digest",
    "Bản tin tổng hợp hằng ngày",
    "Daily digest",
    "Build the daily digest of online news about the province for a date (json or html). "
    "Needs a token with the media (or admin) role.",
    {
        "date": _input(
            "Date (YYYY-MM-DD)", {"type": "string", "format": "date", "pattern": DATE_PATTERN}
        ),
        "format": _input(
            "json or html", {"type": "string", "enum": ["json", "html"], "default": "json"}, False
        ),
    },
    {
        "digest": {
            "title": "The digest",
            "schema": {"type": "object", "contentMediaType": "application/json"},
        }
    },
    {"date": "2025-07-01"},
    async_=False,
)

METADATA: dict[str, dict] = {
    m["id"]: m for m in (LAND_CHANGE_METADATA, SENTIMENT_METADATA, DIGEST_METADATA)
}


# ------------------------------------------------------------------------ checking the request
def required_role(process_id: str) -> str:
    """The role a token needs to execute ``process_id`` (NotFoundError for an unknown one)."""
    try:
        return PROCESS_ROLES[process_id]
    except KeyError:
        raise NotFoundError(f"No process '{process_id[:80]}'; see /processes.") from None


def inputs_schema(metadata: dict) -> dict:
    """The JSON schema of a process's ``inputs`` object, from its declared inputs."""
    inputs = metadata["inputs"]
    return {
        "type": "object",
        "properties": {name: spec["schema"] for name, spec in inputs.items()},
        "required": [name for name, spec in inputs.items() if spec.get("minOccurs", 1) >= 1],
        "additionalProperties": False,
    }


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_execute_request(body: bytes) -> dict:
    """The execute request as a dict; InvalidParameterError naming what is wrong.

    >>> parse_execute_request(b'{"inputs": {"date": "2025-07-01"}}')
    {'inputs': {'date': '2025-07-01'}}
    >>> parse_execute_request(b'[1]')
    Traceback (most recent call last):
    ...
    api.errors.InvalidParameterError: The execute request must be a JSON object {"inputs": {...}}, got an array.
    """
    if not body or not body.strip():
        raise InvalidParameterError('The execute request has no body; send {"inputs": {...}}.')
    try:
        doc = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise InvalidParameterError("The execute request is not UTF-8 text.") from None
    except RecursionError:
        raise InvalidParameterError("The execute request is nested too deeply.") from None
    except ValueError as exc:
        raise InvalidParameterError(
            f"The execute request is not valid JSON: {str(exc)[:80]}."
        ) from None
    if not isinstance(doc, dict):
        raise InvalidParameterError(
            f'The execute request must be a JSON object {{"inputs": {{...}}}}, got {_json_type(doc)}.'
        )
    unknown = sorted(k for k in doc if k not in EXECUTE_MEMBERS)
    if unknown:
        raise InvalidParameterError(
            f"Unknown member(s) {', '.join(repr(k[:40]) for k in unknown[:5])} in the execute "
            f"request; allowed: {', '.join(EXECUTE_MEMBERS)}."
        )
    if "inputs" not in doc:
        raise InvalidParameterError("The execute request has no 'inputs' object.")
    if not isinstance(doc["inputs"], dict):
        raise InvalidParameterError(
            f"'inputs' must be a JSON object, got {_json_type(doc['inputs'])}."
        )
    if "outputs" in doc and not isinstance(doc["outputs"], dict):
        raise InvalidParameterError(
            f"'outputs' must be a JSON object, got {_json_type(doc['outputs'])}."
        )
    if "response" in doc and doc["response"] not in ("raw", "document"):
        raise InvalidParameterError(
            f"'response' must be raw or document, got {_short(doc['response'])}."
        )
    if "subscriber" in doc:
        sub = doc["subscriber"]
        if not isinstance(sub, dict) or not isinstance(sub.get("successUri"), str):
            raise InvalidParameterError(
                "'subscriber' must be an object with a 'successUri' string."
            )
        bad = [k for k in sub if k not in ("successUri", "inProgressUri", "failedUri")]
        if bad or not all(isinstance(v, str) for v in sub.values()):
            raise InvalidParameterError(
                "'subscriber' may only hold the strings successUri, inProgressUri and failedUri."
            )
    return doc


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _short(value: Any) -> str:
    text_ = json.dumps(value, ensure_ascii=False, default=str)
    return text_ if len(text_) <= 40 else text_[:37] + "..."


_TYPE_WORDS = {
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "a boolean (true or false)",
    "array": "an array",
    "object": "an object",
    "null": "null",
}


def _where(path: list) -> str:
    if not path:
        return "The inputs"
    out = f"{path[0]}"
    for part in path[1:]:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return f"Input '{out[:80]}'"


def _describe(error, process_id: str, metadata: dict) -> str:
    """One sentence for a jsonschema ValidationError, naming the input."""
    path = list(error.absolute_path)
    where = _where(path)
    kind = error.validator
    value = error.validator_value
    if kind == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        names = ", ".join(repr(k[:40]) for k in extra[:5])
        if not path:
            return (
                f"Unknown input(s) {names} for process {process_id}; its inputs are: "
                f"{', '.join(metadata['inputs'])}."
            )
        return f"{where} has unknown member(s) {names}."
    if kind == "required":
        missing = [r for r in value if r not in error.instance]
        if not path:
            return f"Input '{missing[0]}' is required by process {process_id}."
        return f"{where} needs '{missing[0]}'."
    if kind == "type":
        types = value if isinstance(value, list) else [value]
        wanted = " or ".join(_TYPE_WORDS.get(t, t) for t in types)
        return f"{where} must be {wanted}, got {_json_type(error.instance)} ({_short(error.instance)})."
    if kind == "enum":
        return f"{where} must be one of {', '.join(map(str, value))}, got {_short(error.instance)}."
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {
            "minimum": "at least",
            "maximum": "at most",
            "exclusiveMinimum": "more than",
            "exclusiveMaximum": "less than",
        }[kind]
        return f"{where} must be {op} {value}, got {_short(error.instance)}."
    if kind in ("format", "pattern") and value in ("date", DATE_PATTERN):
        return f"{where} must be a date as an ISO string YYYY-MM-DD, got {_short(error.instance)}."
    if kind == "minLength":
        return f"{where} must not be empty."
    if kind == "maxLength":
        return f"{where} is longer than {value} characters."
    if kind == "minItems":
        return f"{where} must have at least {value} item(s)."
    if kind == "maxItems":
        return f"{where} has more than {value} items."
    return f"{where} is not valid: {error.message[:120]}."


def check_inputs(metadata: dict, inputs: Any) -> dict:
    """``inputs`` validated against the process's declared schemas (with defaults applied);
    InvalidParameterError naming the first wrong input.

    >>> check_inputs(DIGEST_METADATA, {"date": "2025-07-01"})
    {'date': '2025-07-01', 'format': 'json'}
    >>> check_inputs(LAND_CHANGE_METADATA, {"before": "a", "after": "b", "threshold": 2})
    Traceback (most recent call last):
    ...
    api.errors.InvalidParameterError: Input 'threshold' must be at most 1, got 2.
    """
    from jsonschema import Draft202012Validator, FormatChecker
    from jsonschema.exceptions import best_match

    if not isinstance(inputs, dict):
        raise InvalidParameterError(f"'inputs' must be a JSON object, got {_json_type(inputs)}.")
    validator = Draft202012Validator(inputs_schema(metadata), format_checker=FormatChecker())
    errors = sorted(validator.iter_errors(inputs), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise InvalidParameterError(_describe(best_match(errors), metadata["id"], metadata))
    out = dict(inputs)
    for name, spec in metadata["inputs"].items():
        if name not in out and "default" in spec["schema"]:
            out[name] = spec["schema"]["default"]
    return out


def check_execution(manager: Any, process_id: str, principal: Principal, body: bytes) -> dict:
    """Everything the execution route checks before a job exists: the process (404), the
    token's role (403), the request and its inputs (400). Returns the parsed request."""
    try:
        processor = manager.get_processor(process_id)
    except UnknownProcessError:
        raise NotFoundError(f"No process '{process_id[:80]}'; see /processes.") from None
    principal.require(required_role(process_id), f"Running the process {process_id}")
    request = parse_execute_request(body)
    processor.check_inputs(request["inputs"])
    return request


def check_job_deletion(manager: Any, job_id: str, principal: Principal) -> None:
    """Dismissing a job needs the role of its process (404 for an unknown job)."""
    try:
        job = manager.get_job(job_id)
    except JobNotFoundError:
        raise NotFoundError(f"No job '{job_id[:80]}'.") from None
    process_id = job.get("process_id", "")
    role = PROCESS_ROLES.get(process_id, "admin")
    principal.require(role, f"Dismissing a job of {process_id or 'an unknown process'}")


def declare_security(paths: dict) -> None:
    """Mark each process's execution path in the OpenAPI document: bearer token, the role it
    needs, and the 400/401/403 answers (pygeoapi's document declares none of them)."""
    for process_id, role in PROCESS_ROLES.items():
        post = paths.get(f"/processes/{process_id}/execution", {}).get("post")
        if post is None:
            continue
        post["security"] = [{"bearer": []}]
        post["description"] = (post.get("description") or post.get("summary") or "") + (
            f" Needs a token with the '{role}' (or 'admin') role."
        )
        responses = post.setdefault("responses", {})
        responses.setdefault(
            "400", {"description": "Invalid execute request or inputs (the input is named)"}
        )
        responses.setdefault("401", {"description": "No or invalid token"})
        responses.setdefault("403", {"description": f"The token lacks the '{role}' role"})


def process_resources(
    settings: ApiSettings, land: LandSettings, database_url: str
) -> dict[str, dict]:
    """The ``resources`` entries of the three processes for the pygeoapi configuration, with
    what each needs passed in: the database, the folders the land process may read, the
    land settings (the ones ``ioc land detect`` honours) and, for sentiment scoring, the
    model (``IOC_NLP_MODEL_PATH``, else the registry's promoted one, else the shipped one),
    the encoder switch (``IOC_NLP_ENCODER``) and the state dir holding the encoder's vector
    cache (``IOC_STATE_DIR``)."""
    from api.errors import ConfigError

    if land.detector not in DETECTORS:
        raise ConfigError(
            f"IOC_LAND_DETECTOR must be one of {', '.join(DETECTORS)}, got {land.detector!r}."
        )
    land_def = {
        "detector": land.detector,
        "model_dir": str(land.model_dir) if land.model_dir else None,
        "rules_file": str(land.rules_file) if land.rules_file else None,
        "tta": bool(land.tta),
        "dask_scheduler": land.dask_scheduler,
    }
    classes = {
        "land-change-detection": "api.processes.LandChangeDetectionProcessor",
        "sentiment-scoring": "api.processes.SentimentScoringProcessor",
        "daily-digest": "api.processes.DailyDigestProcessor",
    }
    out = {}
    for process_id, dotted in classes.items():
        processor = {
            "name": dotted,
            "database_url": database_url,
            "allowed_roots": [str(p) for p in settings.process_data_roots],
        }
        if process_id == "land-change-detection":
            processor["land"] = land_def
        if process_id == "sentiment-scoring":
            processor["nlp"] = _nlp_def()
        out[process_id] = {"type": "process", "processor": processor}
    return out


def _public_errors(what: str):
    """Decorate ``execute``: any error that is not already a ProcessorExecuteError becomes one
    with a sentence fit for the client (no SQL, no server path; details in the server log), so
    a failed job never stores a raw exception text."""

    def wrap(fn):
        @functools.wraps(fn)
        def execute(self, data, outputs=None):
            try:
                return fn(self, data, outputs)
            except ProcessorExecuteError:
                raise
            except (DBAPIError, psycopg.Error) as exc:
                LOGGER.exception("%s failed", what)
                raise ProcessorExecuteError(
                    f"{what} failed: the database is not reachable or refused the request; "
                    "see the server log."
                ) from exc
            except Exception as exc:
                LOGGER.exception("%s failed", what)
                raise ProcessorExecuteError(
                    f"{what} failed: {public_message(f'{type(exc).__name__}: {exc}')}"
                ) from exc

        return execute

    return wrap


# ---------------------------------------------------------------------------------- processors
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

    def check_inputs(self, inputs: Any) -> dict:
        """The inputs validated against this process's declared schemas (400 at the edge)."""
        return check_inputs(self.metadata, inputs)

    def _checked(self, data: Any) -> dict:
        try:
            return self.check_inputs(data)
        except InvalidParameterError as exc:
            raise ProcessorExecuteError(str(exc)) from exc


class LandChangeDetectionProcessor(_DatabaseProcessor):
    """Asynchronous change detection: calls ``gis.change.detect.detect_changes`` and
    ``gis.change.store.store_run`` (run, changes and parcel alerts, one transaction) with the
    land settings the CLI honours (detector, model folder, rules file, TTA, Dask scheduler)."""

    def __init__(self, processor_def: dict) -> None:
        super().__init__(processor_def, LAND_CHANGE_METADATA)
        land = processor_def.get("land") or {}
        self.detector = land.get("detector") or "cnn"
        self.model_dir = Path(land["model_dir"]) if land.get("model_dir") else None
        self.rules_file = Path(land["rules_file"]) if land.get("rules_file") else None
        self.tta = bool(land.get("tta", False))
        self.dask_scheduler = land.get("dask_scheduler") or None

    def _path(self, value: str, name: str) -> Path:
        raw = value.strip()
        try:
            path = Path(raw)
            path = (path if path.is_absolute() else Path.cwd() / path).resolve()
        except (OSError, RuntimeError, ValueError):
            raise InvalidParameterError(f"Input '{name}' is not a usable path.") from None
        if self.allowed_roots and not any(path.is_relative_to(r) for r in self.allowed_roots):
            raise InvalidParameterError(f"Input '{name}' must be under the server's data folders.")
        if not path.exists():
            raise InvalidParameterError(f"Input '{name}': {raw[:200]!r} does not exist.")
        return path

    def check_inputs(self, inputs: Any) -> dict:
        data = check_inputs(self.metadata, inputs)
        pair = [k for k in ("before", "after") if k in data]
        if "scenes" in data:
            if pair:
                raise InvalidParameterError(
                    "Give either 'before' and 'after' (a pair) or 'scenes' (a time series), "
                    "not both."
                )
            return self._check_series(data)
        extra = [k for k in ("dates", "min_persist") if k in inputs]
        if extra:
            raise InvalidParameterError(
                f"Input '{extra[0]}' applies to a time series: give 'scenes' with it."
            )
        if len(pair) < 2:
            missing = "before" if "before" not in data else "after"
            raise InvalidParameterError(
                f"Input '{missing}' is required by process land-change-detection "
                "(or give 'scenes', a time series)."
            )
        data["before_path"] = self._path(data["before"], "before")
        data["after_path"] = self._path(data["after"], "after")
        data["paths"] = {
            str(data["before_path"]): data["before"].strip(),
            str(data["after_path"]): data["after"].strip(),
        }
        return data

    def _check_series(self, data: dict) -> dict:
        """A time series, checked before any job with the code ``ioc land detect`` runs
        (:mod:`gis.change.series`): dates, one product (sensor, processing level, bands,
        pixel size), overlap, one scene per date, at least two usable dates. Each problem is
        a 400 naming the scene as the client gave it."""
        from gis.change.series import check_usable, open_series, parse_dates

        scenes = data["scenes"]
        resolved = [self._path(v, f"scenes[{i}]") for i, v in enumerate(scenes)]
        data["scene_paths"] = resolved
        data["paths"] = {str(p): v.strip() for p, v in zip(resolved, scenes, strict=True)}
        dates = data.get("dates")
        if dates is not None and len(dates) != len(scenes):
            raise InvalidParameterError(
                f"Input 'dates' has {len(dates)} dates for {len(scenes)} scenes; give one per "
                "scene, in their order."
            )
        try:
            data["series_dates"] = parse_dates(dates, len(scenes)) if dates is not None else None
            items = open_series(resolved, data["series_dates"])
            check_usable(items)
        except (IocError, ValueError, OSError) as exc:
            message = self._public(str(exc), data).replace("--dates", "the input 'dates'")
            raise InvalidParameterError("Input 'scenes': " + message) from exc
        return data

    def _client_paths(self, text_: str, data: dict) -> str:
        """``text_`` with the server's paths replaced by the paths the client gave."""
        # longest first: a band folder's path is a prefix of its files' paths
        for resolved, given in sorted(data.get("paths", {}).items(), key=lambda kv: -len(kv[0])):
            text_ = text_.replace(resolved, given)
        for root in self.allowed_roots:
            text_ = text_.replace(str(root) + "/", "")
        return text_

    def _client_values(self, value: Any, data: dict) -> Any:
        """``value`` (JSON-like) with the server's paths in its strings replaced."""
        if isinstance(value, str):
            return self._client_paths(value, data)
        if isinstance(value, dict):
            return {k: self._client_values(v, data) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._client_values(v, data) for v in value]
        return value

    def _public(self, message: str, data: dict) -> str:
        """An error ``message`` fit for the client: its paths, no server path."""
        return public_message(self._client_paths(message, data))

    @_public_errors("Land-change detection")
    def execute(self, data: dict, outputs: dict | None = None):
        data = self._checked(data)
        from gis.alerts import load_rules
        from gis.change.detect import DetectionConfig, detect_changes

        config = DetectionConfig(
            method=data.get("method") or self.detector,
            model_dir=self.model_dir,
            threshold=float(data["threshold"]),
            tta=self.tta,
            dask_scheduler=self.dask_scheduler,
        )
        rules = None
        if data["store"]:
            try:
                rules = load_rules(self.rules_file)
            except IocError as exc:  # the operator's rules file: details in the log only
                LOGGER.error("alert rules: %s", exc)
                raise ProcessorExecuteError(
                    "The server's alert rules (IOC_LAND_RULES_FILE) cannot be read; see the server log."
                ) from exc
        try:
            if "scenes" in data:  # the CLI's time-series path (gis.change.series)
                from gis.change.series import detect_series

                result = detect_series(
                    data["scene_paths"],
                    config,
                    data["series_dates"],
                    min_persist=int(data["min_persist"]),
                )
            else:
                result = detect_changes(data["before_path"], data["after_path"], config)
        except (IocError, ValueError, OSError) as exc:
            raise ProcessorExecuteError(self._public(str(exc), data)) from exc
        except Exception as exc:
            LOGGER.exception("land-change detection failed")
            raise ProcessorExecuteError(
                "Change detection failed: " + self._public(f"{type(exc).__name__}: {exc}", data)
            ) from exc
        stored: dict[str, Any] = {}
        if data["store"]:
            from gis.change.store import store_run

            try:
                stored = store_run(self.engine, result, rules, force=data["force"])
            except (IocError, ValueError) as exc:
                raise ProcessorExecuteError(self._public(str(exc), data)) from exc
        summary = {
            "run_id": stored.get("run_id"),
            "updated": stored.get("updated"),
            "alerts": stored.get("alerts"),
            "alerts_by_severity": stored.get("alerts_by_severity"),
            "method": result.method,
            "model_version": result.model_version,
            "stats": result.stats,
            "timings": result.timings,
            "changes": len(result.features),
        }
        # a series' summary names its scenes: as the client gave them, never a server path
        summary = self._client_values(summary, data)
        return "application/json", {"id": "result", "value": summary}


_SCORER: list = []


def _nlp_def() -> dict[str, Any]:
    """What the sentiment processor's scorer needs, read from the settings at app start."""
    from gis.settings import StateSettings
    from nlp.settings import NLPSettings  # pydantic only: scikit-learn loads with the scorer

    nlp_settings = NLPSettings()
    state_dir = Path(StateSettings().state_dir)
    return {
        "model_path": str(nlp_settings.model_path) if nlp_settings.model_path else None,
        "registry_dir": str(nlp_settings.registry_dir or state_dir / "nlp-models"),
        "gazetteer_path": str(nlp_settings.gazetteer_path),
        "state_dir": str(state_dir),
        "use_encoder": nlp_settings.use_encoder,
    }


def _scorer(nlp_def: dict[str, Any] | None = None):
    """The sentiment scorer, loaded once per process (model + gazetteer + encoder with its
    vector cache under the state dir, so re-scoring a stored article costs no encoding)."""
    if not _SCORER:
        from nlp.scoring import load_scorer

        conf = nlp_def or {}
        try:
            model = Path(conf["model_path"]) if conf.get("model_path") else None
            if model is None and conf.get("registry_dir"):  # the promoted model, as the CLI
                from nlp.registry import ModelRegistry

                current = ModelRegistry(Path(conf["registry_dir"])).current_model_path()
                model = current if current and current.exists() else None
            _SCORER.append(
                load_scorer(
                    model,
                    Path(conf["gazetteer_path"]) if conf.get("gazetteer_path") else None,
                    state_dir=Path(conf["state_dir"]) if conf.get("state_dir") else None,
                    use_encoder=conf.get("use_encoder"),
                )
            )
        except Exception as exc:
            LOGGER.exception("the sentiment model cannot be loaded")
            raise ProcessorExecuteError(
                f"The sentiment model cannot be loaded: {public_message(str(exc))}"
            ) from exc
    return _SCORER[0]


class SentimentScoringProcessor(_DatabaseProcessor):
    """Calls ``nlp.scoring.load_scorer().score_records(records)``."""

    def __init__(self, processor_def: dict) -> None:
        super().__init__(processor_def, SENTIMENT_METADATA)
        self.nlp_def = processor_def.get("nlp") or {}

    def check_inputs(self, inputs: Any) -> dict:
        data = check_inputs(self.metadata, inputs)
        given = [k for k in ("records", "article_ids") if k in data]
        if len(given) != 1:
            raise InvalidParameterError(
                "Give either 'records' ([{id, text}]) or 'article_ids', not both."
                if given
                else "Input 'records' ([{id, text}]) or 'article_ids' is required by process sentiment-scoring."
            )
        if "article_ids" in data:
            data["article_ids"] = [int(i) for i in data["article_ids"]]
        return data

    @_public_errors("Sentiment scoring")
    def execute(self, data: dict, outputs: dict | None = None):
        data = self._checked(data)
        records = data.get("records")
        if records is None:
            with self.engine.connect() as conn:
                rows = (
                    conn.execute(
                        text(
                            "SELECT id, title, coalesce(lead, '') AS lead, text FROM articles WHERE id = ANY(:ids)"
                        ),
                        {"ids": data["article_ids"]},
                    )
                    .mappings()
                    .all()
                )
            records = [
                {
                    "id": r["id"],
                    "title": r["title"],
                    "lead": r["lead"],
                    "text": "\n".join(x for x in (r["title"], r["lead"], r["text"]) if x),
                }
                for r in rows
            ]
        try:
            scored = _scorer(self.nlp_def).score_records(records)
        except (IocError, ValueError, OSError) as exc:
            raise ProcessorExecuteError(public_message(str(exc))) from exc
        return "application/json", {"id": "scores", "value": list(scored)}


class DailyDigestProcessor(_DatabaseProcessor):
    """Calls ``nlp.digest.build_digest(connection, date)`` (and ``render_html`` for html)."""

    def __init__(self, processor_def: dict) -> None:
        super().__init__(processor_def, DIGEST_METADATA)

    def check_inputs(self, inputs: Any) -> dict:
        data = check_inputs(self.metadata, inputs)
        try:
            data["day"] = dt.date.fromisoformat(data["date"])
        except ValueError:
            raise InvalidParameterError(
                f"Input 'date' must be a date as an ISO string YYYY-MM-DD, got {_short(data['date'])}."
            ) from None
        if not DIGEST_DAYS[0] <= data["day"] <= DIGEST_DAYS[1]:
            raise InvalidParameterError(
                f"Input 'date' must be between {DIGEST_DAYS[0]} and {DIGEST_DAYS[1]}, got {data['date']}."
            )
        return data

    @_public_errors("The daily digest")
    def execute(self, data: dict, outputs: dict | None = None):
        data = self._checked(data)
        fmt = data["format"]
        from api.digest import render_digest
        from api.errors import ApiError

        try:
            content, media_type = render_digest(self.engine, data["day"], fmt)
        except ApiError as exc:
            raise ProcessorExecuteError(public_message(str(exc))) from exc
        if fmt == "html":
            return "text/html", content.decode("utf-8")
        return "application/json", {"id": "digest", "value": json.loads(content)}
