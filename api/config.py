"""The pygeoapi configuration, generated from settings and the database.

Nothing here is hand-edited: titles, keywords and providers come from :mod:`api.collections`,
extents from the data, limits and languages from :class:`api.settings.ApiSettings`. Secrets
never reach a file: :func:`write_config` writes ``${IOC_DATABASE_URL}`` (pygeoapi substitutes
environment variables when it loads YAML) while the running app keeps the real URL in memory.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pygeoapi
import yaml
from sqlalchemy import Engine

from api.collections import COLLECTIONS, TableInfo, inspect_collection
from api.crs import CRS84, advertised, storage_uri
from api.errors import ConfigError
from api.processes import process_resources
from api.settings import ApiSettings
from gis.settings import LandSettings

DATABASE_URL_REF = "${IOC_DATABASE_URL}"
# Vietnam, for empty collections (the extent is required by pygeoapi)
FALLBACK_BBOX = [102.14, 8.18, 109.47, 23.39]
TEMPLATES = Path(__file__).resolve().parent / "templates"
PYGEOAPI_STATIC = Path(pygeoapi.__file__).resolve().parent / "static"
FEATURE_PROVIDER = "api.plugins.PostGISProvider"
TILE_PROVIDER = "api.plugins.PostGISTileProvider"


def collect_table_infos(engine: Engine) -> dict[str, TableInfo]:
    """Inspect every published relation (columns, SRID, extents, row estimate)."""
    infos: dict[str, TableInfo] = {}
    with engine.connect() as conn:
        for spec in COLLECTIONS:
            try:
                infos[spec.id] = inspect_collection(conn, spec, extents=True)
            except LookupError as exc:
                raise ConfigError(
                    f"Cannot publish collection {spec.id}: {exc}; run `ioc db up` to migrate the database."
                ) from exc
    return infos


def _as_datetime(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    return None


def _collection(info: TableInfo, settings: ApiSettings, database_url: str) -> dict:
    spec = info.spec
    bbox = info.bbox_wgs84 or FALLBACK_BBOX
    extents: dict[str, Any] = {"spatial": {"bbox": bbox, "crs": CRS84}}
    if info.time_extent:
        extents["temporal"] = {
            "begin": _as_datetime(info.time_extent[0]),
            "end": _as_datetime(info.time_extent[1]),
        }
    # the plugins share the app's feature service: same settings, same pool
    service_options = {
        "database_url": database_url,
        "exact_count_limit": settings.exact_count_limit,
        "pool_size": settings.pool_size,
        "statement_timeout_ms": settings.statement_timeout_ms,
        "connect_timeout_s": settings.connect_timeout_s,
        "public_url": settings.public_url(),
    }
    feature: dict[str, Any] = {
        "type": "feature",
        "name": FEATURE_PROVIDER,
        "data": spec.id,
        "id_field": spec.id_column,
        "options": dict(service_options),
    }
    if spec.time_column:
        feature["time_field"] = spec.time_column
    if spec.geom_column:
        storage = info.srid or 4326
        feature["crs"] = advertised(storage)
        feature["storage_crs"] = storage_uri(storage)
        feature["geom_field"] = spec.geom_column
    resource: dict[str, Any] = {
        "type": "collection",
        "title": {"vi": spec.title_vi, "en": spec.title_en},
        "description": {"vi": spec.description_vi, "en": spec.description_en},
        "keywords": list(spec.keywords),
        "links": [],
        "extents": extents,
        "limits": {
            "default_items": settings.default_items,
            "max_items": settings.max_items,
            "on_exceed": "throttle",
        },
        "providers": [feature],
    }
    if spec.tiles and spec.geom_column:
        resource["providers"].append(
            {
                "type": "tile",
                "name": TILE_PROVIDER,
                "data": spec.id,
                "options": {
                    **service_options,
                    "collection": spec.id,
                    "zoom": {"min": spec.tile_min_zoom, "max": 22},
                    "schemes": ["WebMercatorQuad"],
                },
                "format": {"name": "mvt", "mimetype": "application/vnd.mapbox-vector-tile"},
            }
        )
    return resource


def build_config(
    infos: dict[str, TableInfo],
    settings: ApiSettings,
    database_url: str = DATABASE_URL_REF,
    land: LandSettings | None = None,
    coverages: dict[str, dict] | None = None,
) -> dict:
    """The pygeoapi configuration as a dict.

    Parameters
    ----------
    infos
        From :func:`collect_table_infos`.
    settings
        API settings (URL, limits, languages).
    database_url
        The libpq URI for the running app, or the ``${IOC_DATABASE_URL}`` reference when the
        configuration is written to a file.
    land
        The land settings the land-change process honours (as ``ioc land detect`` does);
        ``LandSettings()`` when omitted.
    coverages
        Coverage collections of stored imagery (:func:`api.imagery_routes.scene_coverages`,
        read from the database when the app starts).
    """
    resources: dict[str, Any] = {}
    for spec in COLLECTIONS:
        if spec.id not in infos:
            raise ConfigError(f"No table information for collection {spec.id}.")
        resources[spec.id] = _collection(infos[spec.id], settings, database_url)
    resources.update(coverages or {})
    resources.update(process_resources(settings, land or LandSettings(), database_url))
    return {
        "server": {
            "bind": {"host": settings.host, "port": settings.port},
            "url": settings.public_url(),
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "gzip": False,
            "languages": list(settings.languages),
            "cors": settings.cors,
            "pretty_print": settings.pretty_print,
            "limits": {
                "default_items": settings.default_items,
                "max_items": settings.max_items,
                "on_exceed": "throttle",
            },
            "map": {
                "url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
                "attribution": "&copy; OpenStreetMap contributors",
            },
            # our templates first (page titles, tables, the offline base layer), pygeoapi's for
            # every page we do not override
            "templates": {"path": str(TEMPLATES), "static": str(PYGEOAPI_STATIC)},
            "manager": {
                "name": "api.jobs.JobManager",
                "connection": database_url,
                "output_dir": "database",  # required by the schema; results go to pygeoapi.jobs
                "options": {"search_path": ["pygeoapi"]},
            },
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {
                "title": {
                    "vi": "Trung tâm điều hành thông minh — giám sát đất đai và thông tin trên mạng",
                    "en": "Intelligent Operations Centre — land and online-news monitoring",
                },
                "description": {
                    "vi": "Dữ liệu địa chính, biến động sử dụng đất, cảnh báo vi phạm và cảm xúc "
                    "tin tức theo chuẩn OGC API.",
                    "en": "Cadastre, land-use change, parcel alerts and news sentiment as OGC API.",
                },
                "keywords": {
                    "vi": ["địa chính", "biến động đất đai", "tin tức", "IOC"],
                    "en": ["cadastre", "land change", "news sentiment", "IOC"],
                },
                "keywords_type": "theme",
                "terms_of_service": "https://creativecommons.org/licenses/by/4.0/",
                "url": "https://github.com/ioc-monitor",
            },
            "license": {"name": "CC-BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
            "provider": {"name": "ioc-monitor", "url": "https://github.com/ioc-monitor"},
            "contact": {
                "name": "IOC operations",
                "position": "Operator",
                "address": "-",
                "city": "-",
                "stateorprovince": "-",
                "postalcode": "-",
                "country": "Vietnam",
                "phone": "-",
                "fax": "-",
                "email": "-",
                "url": "-",
                "hours": "Mo-Fr 08:00-17:00",
                "instructions": "During hours of service.",
                "role": "pointOfContact",
            },
        },
        "resources": resources,
    }


def write_config(config: dict, path: Path) -> Path:
    """Write the YAML to a temp name then rename; refuses to write a literal database URL."""
    manager_conn = str(config["server"]["manager"]["connection"])
    if "://" in manager_conn and "@" in manager_conn:
        raise ConfigError(
            "Refusing to write a database URL with credentials; use ${IOC_DATABASE_URL}."
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_config(path: Path) -> dict:
    """Load a written configuration, substituting ``${VAR}`` from the environment."""
    from pygeoapi.util import yaml_load

    with open(path, encoding="utf-8") as fh:
        return yaml_load(fh)


def validate(config: dict) -> None:
    """Validate against pygeoapi's JSON schema; raise ConfigError with the first problem."""
    import json

    from pygeoapi.config import validate_config

    try:
        validate_config(json.loads(json.dumps(config, default=str)))
    except Exception as exc:  # noqa: BLE001 - jsonschema errors
        msg = str(exc).strip().splitlines()[0][:300]
        raise ConfigError(f"The generated pygeoapi configuration is invalid: {msg}") from exc
