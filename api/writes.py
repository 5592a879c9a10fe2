"""Features Part 4 writes: reviewers change the review properties of an item (PATCH, or PUT
with a Feature); nothing can be created or deleted.

Which collections are writable, which properties and which role a write needs, and the
function that applies it, come from :mod:`api.collections` (``writable``, ``write_role``,
``update``). Every write needs a token (401 without one, 403 when its role may not); creating
(POST on items) and deleting answer 405 with an ``Allow`` header, and so does a write on a
collection that is not writable.
"""

from __future__ import annotations

import json

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from api.app_context import AppContext, RouteGroup
from api.errors import InvalidParameterError, MethodNotAllowedError
from api.params import FeatureQuery
from api.review import as_int_id

GEOJSON = "application/geo+json"


async def json_body(request: Request) -> object:
    """The request body parsed as JSON (400 when it is not)."""
    try:
        return json.loads(await request.body() or b"null")
    except ValueError:
        raise InvalidParameterError("The request body is not valid JSON.") from None


def write_routes(ctx: AppContext) -> RouteGroup:
    """POST on items (405), PUT/PATCH/DELETE on an item."""

    async def create_item(request: Request) -> Response:
        ctx.authenticate(request)
        ctx.collection(request.path_params["collection_id"])
        raise MethodNotAllowedError(
            "Creating features is not supported; only the review properties of an existing "
            "item can be changed (PATCH on /collections/{id}/items/{item}).",
            allow=("GET",),
        )

    async def write_item(request: Request) -> Response:
        principal = ctx.authenticate(request)
        collection_id = request.path_params["collection_id"]
        item_id = request.path_params["item_id"]
        info = ctx.collection(collection_id)
        spec = info.spec
        if request.method == "DELETE":
            raise MethodNotAllowedError(
                f"Items of {collection_id} cannot be deleted.",
                allow=("GET", "PUT", "PATCH") if spec.update else ("GET",),
            )
        if spec.update is None:
            raise MethodNotAllowedError(
                f"Items of {collection_id} cannot be changed.", allow=("GET",)
            )
        if spec.write_role:  # 403 before the body is looked at (the update checks it again)
            principal.require(spec.write_role, f"Changing items of {collection_id}")
        body = await json_body(request)
        if not isinstance(body, dict):
            raise InvalidParameterError(
                "The request body must be a JSON object or a GeoJSON Feature."
            )
        props = body.get("properties") if body.get("type") == "Feature" else body
        if not isinstance(props, dict):
            raise InvalidParameterError("The Feature has no properties object.")
        unknown = [k for k in props if k not in spec.writable and k not in ("id",)]
        if request.method == "PATCH" and unknown:
            raise InvalidParameterError(
                f"Only {', '.join(spec.writable)} can be changed; got {', '.join(unknown)[:100]}."
            )
        number = as_int_id(item_id, "item")

        def write() -> None:
            with ctx.engine.begin() as conn:
                spec.update(conn, number, props, principal)

        await run_in_threadpool(write)
        feature = await run_in_threadpool(ctx.service.item, collection_id, item_id, FeatureQuery())
        base = f"{ctx.base_url}/collections/{collection_id}"
        links = [
            {"rel": "self", "type": GEOJSON, "href": f"{base}/items/{number}"},
            {"rel": "collection", "type": "application/json", "href": base},
        ]
        return Response(feature[:-1] + ',"links":' + json.dumps(links) + "}", media_type=GEOJSON)

    cid = "{collection_id}"
    routes: list[BaseRoute] = [
        Route(f"/collections/{cid}/items", create_item, methods=["POST"]),
        Route(
            f"/collections/{cid}/items/{{item_id}}", write_item, methods=["PUT", "PATCH", "DELETE"]
        ),
    ]
    return RouteGroup(routes)
