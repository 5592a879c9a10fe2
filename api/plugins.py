"""The pygeoapi plugins of ioc-monitor: a feature provider and a vector-tile provider over the
published collections, both running on :class:`api.service.FeatureService`.

pygeoapi uses them for what it renders itself (HTML pages, JSON-LD); the JSON/GeoJSON items,
items and tiles routes call the service directly (:mod:`api.routes`). pygeoapi names plugins
by dotted path in its configuration (:mod:`api.config` writes these)::

    - type: feature
      name: api.plugins.PostGISProvider
      data: parcels                     # collection id
      id_field: id
      options: {database_url: ${IOC_DATABASE_URL}, pool_size: 8, exact_count_limit: 200000}
    - type: tile
      name: api.plugins.PostGISTileProvider
      data: parcels
      options: {database_url: ${IOC_DATABASE_URL}, zoom: {min: 12, max: 22}}

They deliberately write nothing (review writes go through :mod:`api.writes`) and expose no
column that is not published (owner names).
"""

from __future__ import annotations

import json

from pygeoapi.models.provider.base import TileMatrixSetEnum
from pygeoapi.provider.base import (
    BaseProvider,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
    ProviderQueryError,
)
from pygeoapi.provider.base_mvt import BaseMVTProvider
from pygeoapi.provider.mvt_postgresql import MVTPostgreSQLProvider
from pygeoapi.provider.tile import ProviderTileNotFoundError

from api.collections import BY_ID, item_links
from api.crs import parse_crs
from api.errors import InvalidParameterError, NotFoundError
from api.params import FeatureQuery, parse_datetime
from api.service import ServiceSettings, get_service


class PostGISProvider(BaseProvider):
    """pygeoapi feature provider over one collection of the ioc-monitor schema."""

    def __init__(self, provider_def: dict) -> None:
        super().__init__(provider_def)
        options = provider_def.get("options") or {}
        self.collection_id = provider_def["data"]
        if self.collection_id not in BY_ID:
            raise ProviderQueryError(f"unknown collection {self.collection_id}")
        self.database_url = options["database_url"]
        self.service = get_service(ServiceSettings.from_options(options))
        self.spec = BY_ID[self.collection_id]
        self.id_field = self.spec.id_column
        self.time_field = self.spec.time_column
        self.geom_field = self.spec.geom_column
        self.get_fields()

    def get_fields(self) -> dict:
        if not self._fields:
            info = self.service.collection(self.collection_id).info
            fields = {}
            for name in info.properties:
                type_, fmt = info.json_type(name)
                fields[name] = {"type": type_} | ({"format": fmt} if fmt else {})
            self._fields = fields
        return self._fields

    def _query(self, **kw) -> FeatureQuery:
        q = FeatureQuery(limit=int(kw.get("limit") or 10), offset=int(kw.get("offset") or 0))
        bbox = kw.get("bbox") or []
        if bbox:
            q.bbox = list(bbox)[:4] if len(bbox) == 4 else [bbox[0], bbox[1], bbox[3], bbox[4]]
        dt_ = kw.get("datetime_")
        if dt_:
            q.datetime_ = parse_datetime(dt_)
        for name, value in kw.get("properties") or []:
            if name in self.fields:
                q.equals[name] = value
        q.sortby = [(s["property"], s["order"] != "-") for s in kw.get("sortby") or []]
        sel = kw.get("select_properties") or []
        q.properties = [p for p in sel if p in self.fields] if sel else None
        q.skip_geometry = bool(kw.get("skip_geometry"))
        q.filter_ast = kw.get("filterq")
        spec = kw.get("crs_transform_spec")
        if spec is not None:
            _, q.out_srid, q.out_flip = parse_crs(getattr(spec, "target_crs_uri", None))
        return q

    def query(
        self,
        offset=0,
        limit=10,
        resulttype="results",
        bbox=None,
        datetime_=None,
        properties=None,
        sortby=None,
        select_properties=None,
        skip_geometry=False,
        q=None,
        filterq=None,
        crs_transform_spec=None,
        **kwargs,
    ) -> dict:
        try:
            fq = self._query(
                offset=offset,
                limit=limit,
                bbox=bbox or [],
                datetime_=datetime_,
                properties=properties,
                sortby=sortby,
                select_properties=select_properties,
                skip_geometry=skip_geometry,
                filterq=filterq,
                crs_transform_spec=crs_transform_spec,
            )
            page = self.service.page(self.collection_id, fq)
        except InvalidParameterError as exc:
            raise ProviderInvalidQueryError(user_msg=str(exc)) from None
        out = {
            "type": "FeatureCollection",
            "features": [json.loads(f) for f in page.features] if resulttype != "hits" else [],
            "numberReturned": page.number_returned if resulttype != "hits" else 0,
        }
        if page.number_matched is not None:
            out["numberMatched"] = page.number_matched
        return out

    def get(self, identifier, **kwargs) -> dict:
        fq = FeatureQuery()
        spec = kwargs.get("crs_transform_spec")
        if spec is not None:
            _, fq.out_srid, fq.out_flip = parse_crs(getattr(spec, "target_crs_uri", None))
        try:
            feature = json.loads(self.service.item(self.collection_id, str(identifier), fq))
        except NotFoundError as exc:
            raise ProviderItemNotFoundError(user_msg=str(exc)) from None
        # the item's own links (report, evidence chips), absolute like pygeoapi's, which it
        # appends to these on the HTML and JSON-LD pages
        feature["links"] = item_links(
            self.spec,
            self.service.settings.public_url,
            str(identifier),
            feature.get("properties") or {},
        )
        return feature

    def __repr__(self) -> str:
        return f"<PostGISProvider> {self.collection_id}"


class PostGISTileProvider(MVTPostgreSQLProvider):
    """pygeoapi vector-tile provider (WebMercatorQuad) over one collection."""

    def __init__(self, provider_def: dict) -> None:  # noqa: D107 - skip the stock table reflection
        BaseMVTProvider.__init__(self, provider_def)
        options = provider_def.get("options") or {}
        self.collection_id = options.get("collection") or provider_def["data"]
        self.table = self.collection_id
        self.database_url = options["database_url"]
        self.service = get_service(ServiceSettings.from_options(options))

    def get_layer(self) -> str:
        return self.collection_id

    def get_fields(self) -> dict:
        return {}

    def get_tiling_schemes(self) -> list:
        return [TileMatrixSetEnum.WEBMERCATORQUAD.value]

    def get_tiles(self, layer="default", tileset=None, z=None, y=None, x=None, format_=None):
        z, y, x = int(z), int(y), int(x)
        if tileset != "WebMercatorQuad" or not (0 <= z <= 24 and 0 <= x < 2**z and 0 <= y < 2**z):
            raise ProviderTileNotFoundError
        return self.service.tile(self.collection_id, z, x, y) or None

    def get_metadata(
        self,
        dataset,
        server_url,
        layer=None,
        tileset=None,
        metadata_format=None,
        title=None,
        description=None,
        keywords=None,
        **kwargs,
    ):
        # pygeoapi passes None when no f is given: answer the default (JSON) metadata
        return super().get_metadata(
            dataset,
            server_url,
            layer,
            tileset,
            metadata_format or "json",
            title,
            description,
            keywords,
            **kwargs,
        )

    def get_vendor_metadata(
        self, dataset, server_url, layer, tileset, title, description, keywords, **kwargs
    ) -> dict:
        """TileJSON 3.0.0."""
        spec = BY_ID[self.collection_id]
        zoom = (self.options or {}).get("zoom", {})
        return {
            "tilejson": "3.0.0",
            "name": dataset,
            "description": description,
            "tiles": [
                f"{server_url}/collections/{dataset}/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}?f=mvt"
            ],
            "minzoom": zoom.get("min", 0),
            "maxzoom": zoom.get("max", 22),
            "vector_layers": [{"id": dataset, "fields": {c: "" for c in spec.tile_properties}}],
        }

    def __repr__(self) -> str:
        return f"<PostGISTileProvider> {self.collection_id}"
