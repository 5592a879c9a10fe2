"""The published collections (ids are a contract) and what the API knows about their tables.

This is the ONE place a collection is added: append a :class:`CollectionSpec` to
:data:`COLLECTIONS` (relation, titles, columns, tiles, and for a writable collection the
properties a reviewer may change, the permission the write needs and the function that
applies it). Configuration, routes, OpenAPI, tiles and writes read the spec; nothing else in
the package branches on a collection's name.

A :class:`TableInfo` is what the database says about the relation at start-up: column types,
the SRID of the geometry column, extents, an estimated row count.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text

from api.auth import ALERT_REVIEW_ROLE, LABEL_CORRECTION_ROLE
from api.crs import pinned_srid

# (connection, item id, the request's properties, the token's api.auth.Principal) -> None;
# raises ApiError (403 when the principal lacks the role)
Updater = Callable[[Connection, int, dict[str, Any], Any], Any]


@dataclass(frozen=True)
class CollectionSpec:
    id: str
    relation: str
    title_vi: str
    title_en: str
    description_vi: str
    description_en: str
    keywords: tuple[str, ...]
    id_column: str = "id"
    geom_column: str | None = "geom"
    time_column: str | None = None
    exclude: tuple[str, ...] = ()
    tiles: bool = False
    tile_properties: tuple[str, ...] = ()
    tile_min_zoom: int = 0
    count_table: str | None = None  # a view's base table, whose row estimate stands for it
    writable: tuple[str, ...] = ()  # properties a reviewer may change (Part 4 PATCH/PUT)
    write_role: str | None = None  # the role a write needs (api.auth roles)
    update: Updater | None = None  # applies a write, in the caller's transaction
    # links every item carries besides self/collection: (rel, media type, title, path with {id})
    item_links: tuple[tuple[str, str, str, str], ...] = ()
    # properties holding a server-relative path (from the database): served absolute, the
    # public URL prefixed, in every output (JSON, HTML, items pages)
    href_properties: tuple[str, ...] = ()
    # links an item carries when a property is set: (property, rel, media type, title, query);
    # href = the property's absolute URL + query
    property_links: tuple[tuple[str, str, str, str, str], ...] = ()


def _review_alert(conn: Connection, item_id: int, props: dict[str, Any], principal: Any) -> None:
    from api.review import review_alert

    review_alert(
        conn,
        item_id,
        props.get("review_status"),
        props.get("reviewer") or principal.name,
        props.get("review_note"),
        principal=principal,
    )


def _correct_label(
    conn: Connection, item_id: int, props: dict[str, Any], principal: Any, genre: str = "article"
) -> None:
    from api.review import correct_article_label

    correct_article_label(
        conn,
        item_id,
        props.get("sentiment"),
        props.get("reviewer") or principal.name,
        props.get("note"),
        principal=principal,
        genre=genre,
    )


_correct_post_label = functools.partial(_correct_label, genre="post")


COLLECTIONS: tuple[CollectionSpec, ...] = (
    CollectionSpec(
        id="admin-units",
        relation="admin_units",
        title_vi="Đơn vị hành chính",
        title_en="Administrative units",
        description_vi="Tỉnh, huyện (trước 1/7/2025) và xã/phường với thời gian hiệu lực; "
        "giữ cả đơn vị cũ sau sắp xếp năm 2025.",
        description_en="Provinces, districts (before 1 July 2025) and communes/wards with "
        "their validity period; historical units are kept after the 2025 reform.",
        keywords=("đơn vị hành chính", "administrative units", "commune", "xã", "boundaries"),
        time_column="valid_from",
        tiles=True,
        tile_properties=("code", "level", "name", "valid_to"),
        tile_min_zoom=0,
    ),
    CollectionSpec(
        id="parcels",
        relation="parcels",
        title_vi="Thửa đất địa chính",
        title_en="Cadastral parcels",
        description_vi="Thửa đất theo xã, tờ bản đồ và số thửa, với mã loại đất (Luật Đất đai "
        "2024) và mã gốc.",
        description_en="Cadastral parcels keyed by commune, map sheet and parcel number, with "
        "the land-use code (Land Law 2024) and the raw code as recorded.",
        keywords=("thửa đất", "địa chính", "cadastre", "parcels", "land use", "VN-2000"),
        time_column="imported_at",
        exclude=("owner_name", "land_use_code_current_version"),
        tiles=True,
        tile_properties=(
            "commune_code",
            "sheet_number",
            "parcel_number",
            "land_use_code",
            "area_m2",
        ),
        tile_min_zoom=12,
    ),
    CollectionSpec(
        id="land-changes",
        relation="land_changes",
        title_vi="Biến động lớp phủ mặt đất",
        title_en="Land-cover changes",
        description_vi="Vùng biến động phát hiện từ ảnh vệ tinh giữa hai thời điểm, với lớp "
        "phủ trước và sau.",
        description_en="Change polygons detected from satellite imagery between two dates, "
        "with the cover class before and after.",
        keywords=("biến động", "land change", "change detection", "Sentinel-2", "remote sensing"),
        time_column="date_after",
        tiles=True,
        tile_properties=("run_id", "from_class", "to_class", "area_m2", "confidence", "date_after"),
        tile_min_zoom=8,
    ),
    CollectionSpec(
        id="parcel-alerts",
        relation="api_parcel_alerts",
        title_vi="Cảnh báo vi phạm trên thửa đất",
        title_en="Parcel alerts",
        description_vi="Thửa đất nông nghiệp có dấu hiệu chuyển sang xây dựng hoặc đất trống, "
        "mất đất lúa; cán bộ địa chính xác nhận hoặc bác bỏ.",
        description_en="Parcels whose legal agricultural use now looks built-up or bare, and "
        "rice land lost; land officers confirm or dismiss each alert.",
        keywords=("cảnh báo", "vi phạm đất đai", "alerts", "encroachment", "rice land"),
        time_column="created_at",
        tiles=True,
        tile_properties=("severity", "review_status", "rule", "legal_code", "changed_fraction"),
        tile_min_zoom=6,
        count_table="parcel_alerts",
        writable=("review_status", "reviewer", "review_note"),
        write_role=ALERT_REVIEW_ROLE,
        update=_review_alert,
        # the alert's before/after chips (api.imagery_routes), stored with the alert
        href_properties=("evidence_before", "evidence_after"),
        property_links=tuple(
            (f"evidence_{moment}", "preview", "image/png", f"Ảnh {name} ({style_name}, PNG)", query)
            for moment, name in (("before", "trước"), ("after", "sau"))
            for style_name, query in (
                ("màu tự nhiên", ""),
                ("màu giả hồng ngoại NIR", "?style=falsecolor"),
            )
        ),
        item_links=(  # the alert's A4 report (api.report_routes)
            (
                "describedby",
                "text/html",
                "Báo cáo cảnh báo (A4, HTML)",
                "/collections/parcel-alerts/items/{id}/report?f=html",
            ),
            (
                "describedby",
                "application/pdf",
                "Báo cáo cảnh báo (A4, PDF)",
                "/collections/parcel-alerts/items/{id}/report?f=pdf",
            ),
        ),
    ),
    CollectionSpec(
        id="articles",
        relation="api_articles",
        title_vi="Tin bài trên mạng",
        title_en="Online news articles",
        description_vi="Tin bài về tỉnh với nhãn cảm xúc (đã hiệu chỉnh nếu có), chủ đề và địa "
        "danh được nhắc tới.",
        description_en="News articles about the province with their sentiment label "
        "(staff-corrected where corrected), topic and the places they mention.",
        keywords=("tin tức", "báo chí", "news", "sentiment", "cảm xúc"),
        time_column="published_at",
        count_table="articles",
        writable=("sentiment", "reviewer", "note"),
        write_role=LABEL_CORRECTION_ROLE,
        update=_correct_label,
    ),
    CollectionSpec(
        id="posts",
        relation="api_posts",
        title_vi="Ý kiến người dân trên mạng xã hội",
        title_en="Citizens' posts and comments",
        description_vi="Bài đăng, bình luận của người dân (mạng xã hội, diễn đàn) với nhãn cảm "
        "xúc (đã hiệu chỉnh nếu có), độ tin cậy và địa danh được nhắc tới; không công bố tên "
        "người đăng.",
        description_en="Citizens' posts and comments (social media, forums) with their sentiment "
        "label (staff-corrected where corrected), its confidence and the places they mention; "
        "authors are not published.",
        keywords=("mạng xã hội", "bình luận", "posts", "comments", "sentiment", "cảm xúc"),
        time_column="published_at",
        count_table="posts",
        writable=("sentiment", "reviewer", "note"),
        write_role=LABEL_CORRECTION_ROLE,
        update=_correct_post_label,
    ),
    CollectionSpec(
        id="commune-sentiment",
        relation="api_commune_sentiment",
        title_vi="Cảm xúc tin tức theo xã theo ngày",
        title_en="Daily news sentiment per commune",
        description_vi="Số tin bài (genre=article) và bài đăng của người dân (genre=post) tiêu "
        "cực, trung tính, tích cực nhắc tới mỗi xã mỗi ngày (giờ Việt Nam) và chỉ số cảm xúc.",
        description_en="Negative, neutral and positive articles (genre=article) and citizens' "
        "posts (genre=post) mentioning each commune per day (Vietnam time), with a sentiment "
        "index; one item per commune, day and genre.",
        keywords=("cảm xúc", "sentiment", "commune", "xã", "daily"),
        time_column="day",
    ),
)

BY_ID = {c.id: c for c in COLLECTIONS}


def item_links(
    spec: CollectionSpec, base_url: str, item_id: str, properties: dict[str, Any]
) -> list[dict[str, str]]:
    """An item's links besides self/collection, absolute (``base_url`` is the public URL):
    the spec's ``item_links`` and, for each set property, its ``property_links`` (the
    property already absolute, as the API serves it, or a server-relative path)."""
    from urllib.parse import quote

    base = base_url.rstrip("/")
    links = [
        {
            "rel": rel,
            "type": media_type,
            "title": title,
            "href": base + path.format(id=quote(item_id)),
        }
        for rel, media_type, title, path in spec.item_links
    ]
    for prop, rel, media_type, title, query in spec.property_links:
        value = properties.get(prop)
        if not isinstance(value, str) or not value:
            continue
        href = value if value.startswith(("http://", "https://")) else base + value
        links.append({"rel": rel, "type": media_type, "title": title, "href": href + query})
    return links


# PostgreSQL type -> (JSON schema type, format)
_JSON_TYPES = {
    "integer": ("integer", None),
    "bigint": ("integer", None),
    "smallint": ("integer", None),
    "double precision": ("number", None),
    "real": ("number", None),
    "numeric": ("number", None),
    "boolean": ("boolean", None),
    "date": ("string", "date"),
    "timestamp with time zone": ("string", "date-time"),
    "timestamp without time zone": ("string", "date-time"),
    "jsonb": ("object", None),
    "json": ("object", None),
}


@dataclass
class TableInfo:
    """What the database says about a collection's relation."""

    spec: CollectionSpec
    columns: dict[str, str]  # name -> PostgreSQL type, published properties only (no geometry)
    srid: int | None
    id_type: str
    bbox_wgs84: list[float] | None = None
    time_extent: tuple[dt.datetime | None, dt.datetime | None] | None = None
    estimated_rows: float = -1.0
    relkind: str = "r"
    base_table: str | None = None  # the table whose reltuples stand for the relation
    extra: dict = field(default_factory=dict)

    @property
    def properties(self) -> list[str]:
        return list(self.columns)

    @property
    def sortables(self) -> list[str]:
        """Properties ``sortby`` accepts: the id and every non-object property."""
        names = [n for n in self.columns if self.columns[n] not in ("json", "jsonb")]
        return [self.spec.id_column, *names]

    def json_type(self, column: str) -> tuple[str, str | None]:
        pg = self.columns.get(column) or ("text" if column == self.spec.id_column else "")
        if pg.startswith(("character", "text")):
            return "string", None
        return _JSON_TYPES.get(pg, ("string", None))


def inspect_collection(
    connection: Connection, spec: CollectionSpec, extents: bool = True
) -> TableInfo:
    """Read column types, SRID, extents and the row estimate of one collection's relation."""
    rows = connection.execute(
        text(
            "SELECT a.attname, format_type(a.atttypid, NULL) AS type, "
            "postgis_typmod_srid(a.atttypmod) AS typmod_srid "
            "FROM pg_attribute a WHERE a.attrelid = to_regclass(:rel) AND a.attnum > 0 "
            "AND NOT a.attisdropped ORDER BY a.attnum"
        ),
        {"rel": spec.relation},
    ).all()
    if not rows:
        raise LookupError(f"relation {spec.relation} of collection {spec.id} does not exist")
    columns: dict[str, str] = {}
    geometry_columns: list[str] = []
    srid = None
    id_type = "text"
    for name, pg_type, typmod_srid in rows:
        if name == spec.geom_column:
            srid = typmod_srid if typmod_srid and typmod_srid > 0 else None
            continue
        if name == spec.id_column:
            id_type = pg_type
            continue
        if pg_type in ("geometry", "geography"):
            geometry_columns.append(name)
            continue
        if name in spec.exclude:
            continue
        columns[name] = pg_type
    if spec.geom_column and srid is None:
        srid = connection.execute(
            text(
                "SELECT srid FROM geometry_columns WHERE f_table_name = :t AND f_geometry_column = :g"
            ),
            {"t": spec.relation, "g": spec.geom_column},
        ).scalar()
        srid = int(srid) if srid and srid > 0 else 4326
    base = spec.count_table or spec.relation
    relkind, reltuples = connection.execute(
        text("SELECT c.relkind, c.reltuples FROM pg_class c WHERE c.oid = to_regclass(:t)"),
        {"t": spec.relation},
    ).one()
    if relkind == "v":
        reltuples = connection.execute(
            text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"), {"t": base}
        ).scalar()
    info = TableInfo(
        spec=spec,
        columns=columns,
        srid=srid,
        id_type=id_type,
        relkind=relkind,
        estimated_rows=float(reltuples if reltuples is not None else -1),
        base_table=base,
    )
    info.extra["geometry_columns"] = tuple(geometry_columns)
    if extents:
        _read_extents(connection, info)
    return info


def _read_extents(connection: Connection, info: TableInfo) -> None:
    spec = info.spec
    if spec.geom_column:
        # ST_EstimatedExtent is instant on analysed tables; fall back to ST_Extent on small ones
        box = None
        if info.relkind == "r":
            try:
                with connection.begin_nested():
                    box = connection.execute(
                        text("SELECT ST_EstimatedExtent('public', :t, :g)::geometry"),
                        {"t": spec.relation, "g": spec.geom_column},
                    ).scalar()
            except Exception:  # noqa: BLE001 - not analysed yet
                box = None
        if box is None and (info.estimated_rows < 2_000_000):
            box = connection.execute(
                text(f'SELECT ST_Extent("{spec.geom_column}")::geometry FROM "{spec.relation}"')
            ).scalar()
        if box is not None:
            row = connection.execute(
                text(
                    "SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM "
                    "(SELECT ST_Transform(ST_SetSRID(CAST(:box AS geometry), :src), 4326)::box2d AS b) s"
                ),
                {"box": box, "src": pinned_srid(info.srid or 4326)},
            ).one()
            info.bbox_wgs84 = [round(float(v), 7) for v in row]
    if spec.time_column:
        lo, hi = connection.execute(
            text(
                f'SELECT min("{spec.time_column}"), max("{spec.time_column}") FROM "{spec.relation}"'
            )
        ).one()
        if lo is not None:
            info.time_extent = (lo, hi)
