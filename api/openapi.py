"""The OpenAPI document: pygeoapi's, completed with what this server actually serves.

pygeoapi describes its own handlers; :func:`patch_openapi` adds the CQL2 filter, CRS, sort and
cursor parameters, one equality parameter per queryable (GDAL sends attribute filters as those),
``/sortables``, the review writes (PATCH, with bearer security), drops what is not served
(POST/PUT/DELETE on items), merges the paths route groups declare, and inlines references to
schemas.opengis.net so the document is complete offline (QGIS, schemathesis).
"""

from __future__ import annotations

from typing import Any

from api.collections import TableInfo
from api.processes import declare_security

EXTERNAL_PARAMETERS = {
    "datetime": {
        "name": "datetime",
        "in": "query",
        "required": False,
        "style": "form",
        "explode": False,
        "schema": {"type": "string"},
        "description": "RFC 3339 instant or interval ('../2025-01-01', '2025-01-01/..').",
    },
    "featureId": {
        "name": "featureId",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    },
    "sortby": {
        "name": "sortby",
        "in": "query",
        "required": False,
        "style": "form",
        "explode": False,
        "schema": {"type": "array", "items": {"type": "string", "pattern": "[+|-]?[A-Za-z_].*"}},
    },
    "tileMatrixSetId": {
        "name": "tileMatrixSetId",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": ["WebMercatorQuad"]},
    },
    "tileMatrix": {
        "name": "tileMatrix",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    },
    "tileRow": {
        "name": "tileRow",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    },
    "tileCol": {
        "name": "tileCol",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    },
}


def inline_external_refs(doc: Any) -> Any:
    """Replace references to schemas.opengis.net & co by local definitions, so the document is
    complete offline (clients, schemathesis) -- the operations centre may have no internet."""
    if isinstance(doc, list):
        return [inline_external_refs(v) for v in doc]
    if not isinstance(doc, dict):
        return doc
    ref = doc.get("$ref")
    if isinstance(ref, str) and not ref.startswith("#"):
        fragment = (
            ref.rsplit("#", 1)[-1] if "#" in ref else ref.rsplit("/", 1)[-1].removesuffix(".yaml")
        )
        name = fragment.rsplit("/", 1)[-1]
        if "/parameters/" in fragment or ref.endswith("parameters/sortby.yaml"):
            return dict(
                EXTERNAL_PARAMETERS.get(name)
                or {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
            )
        if "/responses/" in fragment or "/responses/" in ref:
            return {
                "description": name,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        return {"type": "object"}
    return {k: inline_external_refs(v) for k, v in doc.items()}


def patch_openapi(
    openapi: dict, infos: dict[str, TableInfo], extra_paths: dict | None = None
) -> dict:
    """Declare what we serve beyond pygeoapi's document: filter/CRS/sort parameters, equality
    query parameters of the queryables (so GDAL sends them), sortables, review writes, and the
    paths of the route groups (``extra_paths``: the digest, service routes...).

    Parameters
    ----------
    openapi
        pygeoapi's document (``pygeoapi.openapi.get_oas``).
    infos
        The published collections' :class:`TableInfo` by id.
    extra_paths
        OpenAPI path items declared by route groups (:class:`api.routes.RouteGroup`).
    """
    params = openapi.setdefault("components", {}).setdefault("parameters", {})
    extra = {
        "filter": {
            "name": "filter",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "CQL2 text or JSON filter (OGC API Features Part 3).",
        },
        "filter-lang": {
            "name": "filter-lang",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "enum": ["cql2-text", "cql2-json"]},
        },
        "filter-crs": {
            "name": "filter-crs",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "format": "uri"},
        },
        "crs": {
            "name": "crs",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "format": "uri"},
        },
        "bbox-crs": {
            "name": "bbox-crs",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "format": "uri"},
        },
        "sortby": {
            "name": "sortby",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": False,
            "schema": {
                "type": "array",
                "items": {"type": "string", "pattern": "[+|-]?[A-Za-z_].*"},
            },
        },
        "cursor": {
            "name": "cursor",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "Opaque keyset cursor issued in rel=next links.",
        },
    }
    params.update({k: v for k, v in extra.items() if k not in params or k in ("filter", "cursor")})
    security = {"bearer": {"type": "http", "scheme": "bearer"}}
    openapi["components"].setdefault("securitySchemes", {}).update(security)
    paths = openapi.setdefault("paths", {})
    for collection_id, info in infos.items():
        path = paths.get(f"/collections/{collection_id}/items", {})
        get = path.get("get")
        if get is not None:
            names = {
                (p.get("$ref", "").rsplit("/", 1)[-1].removesuffix(".yaml") or p.get("name"))
                for p in get.get("parameters", [])
            }
            for name in (
                "filter",
                "filter-lang",
                "filter-crs",
                "crs",
                "bbox-crs",
                "sortby",
                "cursor",
            ):
                if name not in names:
                    get["parameters"].append({"$ref": f"#/components/parameters/{name}"})
            declared = {p.get("name") for p in get["parameters"] if "name" in p}
            for prop in info.properties:
                if prop in declared:
                    continue
                type_, fmt = info.json_type(prop)
                if type_ == "object":
                    continue
                schema = {"type": type_} | ({"format": fmt} if fmt else {})
                get["parameters"].append(
                    {
                        "name": prop,
                        "in": "query",
                        "required": False,
                        "style": "form",
                        "explode": False,
                        "schema": schema,
                    }
                )
            get.get("responses", {}).setdefault(
                "400", {"$ref": "#/components/responses/InvalidParameter"}
            )
            path.pop("post", None)
            path.pop("options", None)
        item_path = paths.get(f"/collections/{collection_id}/items/{{featureId}}")
        if item_path is not None:
            for method in ("put", "delete", "options"):
                item_path.pop(method, None)
            spec = info.spec
            if spec.writable:
                item_path["patch"] = {
                    "summary": f"Review an item of {collection_id}",
                    "tags": [collection_id],
                    "operationId": f"patch{collection_id.replace('-', '')}Item",
                    "security": [{"bearer": []}],
                    "parameters": [dict(EXTERNAL_PARAMETERS["featureId"])],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {k: {"type": "string"} for k in spec.writable},
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {"description": "The updated feature"},
                        "400": {"$ref": "#/components/responses/InvalidParameter"},
                        "401": {"description": "No or invalid token"},
                        "403": {"description": "The token may not do this"},
                        "404": {"$ref": "#/components/responses/NotFound"},
                    },
                }
        paths[f"/collections/{collection_id}/sortables"] = {
            "get": {
                "summary": f"The properties items of {collection_id} can be sorted by (sortby)",
                "tags": [collection_id],
                "operationId": f"get{collection_id.replace('-', '')}Sortables",
                "parameters": [
                    {
                        "name": "f",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["json"]},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "JSON Schema of the sortable properties",
                        "content": {"application/schema+json": {"schema": {"type": "object"}}},
                    },
                    "404": {"$ref": "#/components/responses/NotFound"},
                },
            }
        }
    paths.update(extra_paths or {})
    declare_security(paths)  # process execution: token, role, 400/401/403 (api.processes)
    openapi = inline_external_refs(openapi)
    responses = openapi["components"].setdefault("responses", {})
    responses.setdefault(
        "InvalidParameter",
        {
            "description": "A query parameter has an invalid value.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
    )
    responses.setdefault(
        "NotFound",
        {
            "description": "Not found.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
    )
    return openapi
