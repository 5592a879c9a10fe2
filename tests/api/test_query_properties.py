"""Property-based tests (hypothesis) of the query parameters, against the served app (a real
uvicorn process on the test PostGIS): any combination of limit, offset, bbox, bbox-crs, crs,
datetime, filter, sortby, properties, skipGeometry, f, cursor and unknown parameters answers 200
(when valid) or 400/404 with an OGC exception body naming the problem -- never a 5xx, never SQL,
a traceback or a server path.

Validity is decided by the generator, not by the server: requests built only from valid values
must be 200 with what they asked for (sorted, limited, in the CRS asked for, with the properties
asked for); requests with exactly one bad value must be 400 and say which parameter is wrong.
The number of bad inputs tried per surface is printed at the end of the module.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import math
import string
import urllib.parse

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = [pytest.mark.postgis, pytest.mark.slow]

TRIED: collections.Counter = collections.Counter()  # (surface, answer) -> requests
HYPOTHESIS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
COLLECTIONS = ("parcels", "parcel-alerts", "land-changes", "admin-units", "articles")
CRS = [
    "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
    "http://www.opengis.net/def/crs/EPSG/0/4326",
    "http://www.opengis.net/def/crs/EPSG/0/3405",
    "http://www.opengis.net/def/crs/EPSG/0/5897",
    "http://www.opengis.net/def/crs/EPSG/0/9209",
    "http://www.opengis.net/def/crs/EPSG/0/3857",
    "EPSG:5897",
    "CRS84",
]
LEAKS = (
    "select ",
    "traceback",
    "psycopg",
    "sqlalchemy",
    ' from "',
    'file "',
    "/work/",
    "/root/",
    "site-packages",
)


@pytest.fixture(scope="module", autouse=True)
def report(request):
    yield
    surfaces = sorted({s for s, _ in TRIED})
    lines = []
    for surface in surfaces:
        answers = {a: n for (s, a), n in TRIED.items() if s == surface}
        bad = sum(n for a, n in answers.items() if a.startswith("4"))
        lines.append(
            f"  {surface}: {sum(answers.values())} requests, {bad} bad inputs answered "
            + ", ".join(f"{a}: {n}" for a, n in sorted(answers.items()))
        )
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\nquery parameters tried against the server (never a 5xx):\n" + "\n".join(lines))


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def schema(http) -> dict[str, dict]:
    """Queryables and sortables of each collection, as the server publishes them."""
    out = {}
    for cid in COLLECTIONS:
        q = http.get(f"/collections/{cid}/queryables?f=json").json()["properties"]
        s = http.get(f"/collections/{cid}/sortables").json()["properties"]
        out[cid] = {"queryables": {k: v for k, v in q.items() if k != "geometry"}, "sortables": s}
    return out


def check(r: httpx.Response, surface: str, allowed: tuple[int, ...]) -> dict | None:
    """The answer is one of ``allowed``; an error is an OGC exception without leaks."""
    TRIED[(surface, str(r.status_code))] += 1
    assert r.status_code in allowed, (r.request.url, r.status_code, r.text[:400])
    if r.status_code >= 400:
        body = r.json()
        assert {"code", "description"} <= set(body), body
        text = body["description"].lower()
        assert text and not any(leak in text for leak in LEAKS), body
        return body
    return None


# -- strategies ---------------------------------------------------------------------------------
junk = st.text(string.printable + "đĐưƯ€😀\u0000", max_size=30)
dates = st.dates(dt.date(2024, 1, 1), dt.date(2026, 12, 31))


@st.composite
def bbox84(draw) -> list[float]:
    lon0 = draw(st.floats(105.80, 105.95))
    lat0 = draw(st.floats(20.45, 20.58))
    return [
        round(lon0, 5),
        round(lat0, 5),
        round(lon0 + draw(st.floats(0.0005, 0.1)), 5),
        round(lat0 + draw(st.floats(0.0005, 0.1)), 5),
    ]


@st.composite
def datetime_value(draw) -> str:
    a, b = sorted([draw(dates), draw(dates)])
    kind = draw(st.sampled_from(["date", "instant", "interval", "open-start", "open-end"]))
    if kind == "date":
        return a.isoformat()
    if kind == "instant":
        return f"{a.isoformat()}T{draw(st.integers(0, 23)):02d}:00:00Z"
    if kind == "interval":
        return f"{a.isoformat()}/{b.isoformat()}"
    return f"../{b.isoformat()}" if kind == "open-start" else f"{a.isoformat()}/.."


def literal(draw, schema: dict):
    kind = schema.get("type")
    if kind in ("number", "integer"):
        return str(draw(st.integers(-5, 5000)))
    if kind == "boolean":
        return draw(st.sampled_from(["TRUE", "FALSE"]))
    if schema.get("format") == "date-time":
        return f"TIMESTAMP('{draw(dates).isoformat()}T00:00:00Z')"
    if schema.get("format") == "date":
        return f"DATE('{draw(dates).isoformat()}')"
    text = draw(st.text(string.ascii_letters + string.digits + "đươ ", max_size=8))
    return "'" + text.replace("'", "''") + "'"


@st.composite
def cql_filter(draw, queryables: dict) -> str:
    terms = []
    for _ in range(draw(st.integers(1, 5))):
        name = draw(st.sampled_from(sorted(queryables)))
        schema = queryables[name]
        if schema.get("type") == "object":
            terms.append(f"{name} IS NOT NULL")
            continue
        if schema.get("type") in ("number", "integer") or schema.get("format") in (
            "date",
            "date-time",
        ):
            op = draw(st.sampled_from(["=", "<>", "<", "<=", ">", ">="]))
        elif schema.get("type") == "boolean":
            op = "="
        else:
            op = draw(st.sampled_from(["=", "<>", "LIKE"]))
        terms.append(f"{name} {op} {literal(draw, schema)}")
    if draw(st.booleans()):
        x0, y0, x1, y1 = draw(bbox84())
        terms.append(
            f"S_INTERSECTS(geometry, POLYGON(({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0})))"
        )
    return f" {draw(st.sampled_from(['AND', 'OR']))} ".join(terms)


@st.composite
def valid_query(draw, schema: dict) -> tuple[str, dict]:
    cid = draw(st.sampled_from(COLLECTIONS))
    info = schema[cid]
    params: dict[str, str] = {}
    if draw(st.booleans()):
        params["limit"] = str(draw(st.integers(1, 1500)))
    if draw(st.booleans()):
        params["offset"] = str(draw(st.integers(0, 3000)))
    if cid != "articles" and draw(st.booleans()):
        box = draw(bbox84())
        if draw(st.booleans()):
            params["bbox-crs"] = "http://www.opengis.net/def/crs/EPSG/0/4326"
            box = [box[1], box[0], box[3], box[2]]  # latitude first
        params["bbox"] = ",".join(map(str, box))
    if draw(st.booleans()):
        params["crs"] = draw(st.sampled_from(CRS))
    if draw(st.booleans()):
        params["datetime"] = draw(datetime_value())
    if draw(st.booleans()):
        names = draw(
            st.lists(
                st.sampled_from(sorted(info["sortables"])), min_size=1, max_size=3, unique=True
            )
        )
        params["sortby"] = ",".join(draw(st.sampled_from(["", "+", "-"])) + n for n in names)
    if draw(st.booleans()):
        names = draw(
            st.lists(
                st.sampled_from(sorted(info["queryables"])), min_size=1, max_size=4, unique=True
            )
        )
        params["properties"] = ",".join(names)
    if draw(st.booleans()):
        params["filter"] = draw(cql_filter(info["queryables"]))
    if draw(st.booleans()):
        params["skipGeometry"] = draw(st.sampled_from(["true", "false"]))
    if draw(st.booleans()):
        params["f"] = draw(st.sampled_from(["json", "geojson"]))
    return cid, params


# one bad value per parameter; each must be refused with a 400 that names the parameter
BAD = {
    "limit": (
        st.sampled_from(["0", "-1", "ten", "1.5", "", "1e3", "99999999999999999999"]),
        ("limit",),
    ),
    "offset": (st.sampled_from(["-1", "x", "2.5", "", "1e2"]), ("offset",)),
    "bbox": (
        st.one_of(
            st.sampled_from(
                [
                    "1,2,3",
                    "1,2,3,4,5",
                    "a,b,c,d",
                    "nan,1,2,3",
                    "inf,1,2,3",
                    "106,21,105,20",
                    "105,21,106,20",
                    "105,20,200,21",
                    "105,-95,106,21",
                    ",,,",
                    "",
                ]
            ),
            st.lists(st.floats(allow_nan=True), min_size=1, max_size=7)
            .map(lambda v: ",".join(map(str, v)))
            .filter(lambda s: len(s.split(",")) not in (4, 6) or "nan" in s or "inf" in s),
        ),
        ("bbox",),
    ),
    "bbox-crs": (
        st.sampled_from(
            ["EPSG:9999", "urn:foo", "EPSG:4756x", "", "http://www.opengis.net/def/crs/EPSG/0/2000"]
        ),
        ("bbox-crs",),
    ),
    "crs": (
        st.one_of(
            st.sampled_from(["EPSG:9999", "EPSG:", "WGS84", "", "http://example.com/crs"]),
            st.integers(1, 99999)
            .filter(lambda n: n not in (4326, 3405, 5897, 9209, 3857))
            .map(lambda n: f"EPSG:{n}"),
        ),
        ("crs",),
    ),
    "datetime": (
        st.one_of(
            st.sampled_from(
                [
                    "yesterday",
                    "2025-02-30",
                    "2025-13-01",
                    "..",
                    "../..",
                    "2025-02-01/2025-01-01",
                    "2025-01-01/2025-02-01/2025-03-01",
                    "20250101T",
                    "",
                ]
            ),
            junk.filter(lambda s: not s.strip(" ").replace(".", "").isdigit()),
        ),
        ("datetime",),
    ),
    "filter": (
        st.sampled_from(
            [
                "land_use_code ==== 'LUC'",
                "nope > 3",
                "owner_name = 'x'",
                "area_m2 > 'abc'",
                "(((",
                "S_INTERSECTS(geometry, POLYGON((0 0, 1 1, 1 0, 0 1, 0 0)))",
                "S_INTERSECTS(geometry, POLYGON((0 0, 1 0, 1 1)))",
                "'; DROP TABLE parcels; --",
                " OR ".join(f"id = {i}" for i in range(400)),
                "foo(bar)",
            ]
        ),
        ("filter", "property", "wrong type", "geometry", "cql2", "too complex", "function"),
    ),
    "sortby": (
        st.sampled_from(["nope", "-nope", "owner_name", "id;DROP", ",", "+-id"]),
        ("sortby",),
    ),
    "properties": (st.sampled_from(["nope", "owner_name", "area_m2,nope"]), ("properties",)),
    "f": (st.sampled_from(["xml", "csv", "pdf", "mvt", "JSONX"]), ("f ",)),
    "skipGeometry": (st.sampled_from(["yes", "1", "maybe", ""]), ("skipgeometry",)),
    "cursor": (
        st.sampled_from(["garbage", "eyJ4IjoxfQ", "W10", "WyJhIl0", "Wy0xLDEsMF0", "%%%"]),
        ("cursor",),
    ),
}


@st.composite
def one_bad_query(draw, schema: dict, name: str) -> tuple[str, dict]:
    cid, params = draw(valid_query(schema))
    if name == "bbox-crs" and "bbox" not in params:
        params["bbox"] = "105.85,20.51,105.86,20.52"
    if name == "properties" and cid != "parcels":
        cid = "parcels"
        params.pop("sortby", None)
        params.pop("properties", None)
    params[name] = draw(BAD[name][0])
    return cid, params


# -- properties --------------------------------------------------------------------------------
def _first_position(geometry):
    coords = geometry["coordinates"]
    while isinstance(coords[0], list):
        coords = coords[0]
    return coords


@HYPOTHESIS
@given(data=st.data())
def test_valid_query_parameters_answer_200_with_what_was_asked(http, schema, data):
    cid, params = data.draw(valid_query(schema))
    r = http.get(f"/collections/{cid}/items", params=params)
    check(r, "items: valid combinations", (200,))
    doc = r.json()
    assert doc["type"] == "FeatureCollection"
    limit = min(int(params.get("limit", 100)), 1000)  # the server fixture: default 100, max 1000
    assert doc["numberReturned"] == len(doc["features"]) <= limit
    crs = params.get("crs", "http://www.opengis.net/def/crs/OGC/1.3/CRS84")
    crs = {
        "EPSG:5897": "http://www.opengis.net/def/crs/EPSG/0/5897",
        "CRS84": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
    }.get(crs, crs)
    assert r.headers["content-crs"] == f"<{crs}>"
    for f in doc["features"]:
        if "properties" in params:
            assert set(f["properties"]) <= set(params["properties"].split(","))
        if params.get("skipGeometry") == "true":
            assert f["geometry"] is None
        elif f["geometry"] is not None:
            x, y = _first_position(f["geometry"])
            assert math.isfinite(x) and math.isfinite(y)
            if crs.endswith(("CRS84", "/4326")):
                assert max(abs(x), abs(y)) < 180
            else:
                assert max(abs(x), abs(y)) > 1000  # metres
    if "sortby" in params and "properties" not in params and doc["features"]:
        key = params["sortby"].split(",")[0]
        name, desc = key.lstrip("+-"), key.startswith("-")
        values = [f["id"] if name == "id" else f["properties"].get(name) for f in doc["features"]]
        values = [v for v in values if v is not None]
        assert values == sorted(values, reverse=desc), (params, values[:10])


@pytest.mark.parametrize("name", sorted(BAD))
@settings(HYPOTHESIS, max_examples=30)
@given(data=st.data())
def test_one_bad_parameter_is_a_400_naming_it(http, schema, name, data):
    cid, params = data.draw(one_bad_query(schema, name))
    r = http.get(f"/collections/{cid}/items", params=params)
    body = check(r, f"items: bad {name}", (400,))
    words = BAD[name][1]
    assert any(w in body["description"].lower() for w in words), (name, params[name], body)


@HYPOTHESIS
@given(data=st.data())
def test_arbitrary_parameters_never_get_a_server_error(http, schema, data):
    cid = data.draw(st.sampled_from(COLLECTIONS + ("nope", "parcels%00", "..")))
    names = (
        list(BAD)
        + list(schema["parcels"]["queryables"])
        + ["lang", "filter-lang", "filter-crs", "q", "bbox[]"]
    )
    params = data.draw(
        st.lists(st.tuples(st.one_of(st.sampled_from(names), junk), junk), max_size=6)
    )
    query = urllib.parse.urlencode(params)
    r = http.get(f"/collections/{urllib.parse.quote(cid)}/items?{query}")
    check(r, "items: arbitrary", (200, 400, 404))


@HYPOTHESIS
@given(
    cid=st.sampled_from(COLLECTIONS),
    item=st.one_of(  # ('/', '.', '..' would make it another path)
        st.integers(-(2**70), 2**70).map(str),
        junk.filter(lambda s: s.strip(".") and "/" not in s),
        st.sampled_from(["1", "0", "-1", "1.0", "1e3", "%00", "01", "+1"]),
    ),
    crs=st.one_of(st.none(), st.sampled_from(CRS), junk),
    extra=st.one_of(st.none(), st.sampled_from(["foo", "limit"])),
)
def test_single_items_answer_200_or_404_or_400(http, cid, item, crs, extra):
    params = {}
    if crs is not None:
        params["crs"] = crs
    if extra:
        params[extra] = "1"
    r = http.get(f"/collections/{cid}/items/{urllib.parse.quote(item, safe='')}", params=params)
    check(r, "item", (200, 400, 404))
    if r.status_code == 200:
        assert r.json()["type"] == "Feature"
        assert int(item) == r.json()["id"]  # only an integer id finds an item


@HYPOTHESIS
@given(
    cid=st.sampled_from(COLLECTIONS),
    tms=st.sampled_from(["WebMercatorQuad", "WorldCRS84Quad", "x"]),
    z=st.one_of(st.integers(-3, 30).map(str), junk),
    y=st.integers(-5, 2**31).map(str),
    x=st.integers(-5, 2**31).map(str),
    f=st.one_of(st.none(), st.sampled_from(["mvt", "pbf", "json", "png"])),
)
def test_tiles_never_get_a_server_error(http, cid, tms, z, y, x, f):
    url = f"/collections/{cid}/tiles/{tms}/{urllib.parse.quote(z, safe='')}/{y}/{x}"
    r = http.get(url, params={"f": f} if f else None)
    check(r, "tiles", (200, 204, 400, 404))


@HYPOTHESIS
@given(
    cid=st.sampled_from(COLLECTIONS + ("nope",)),
    what=st.sampled_from(["sortables", "queryables", "schema"]),
    params=st.lists(
        st.tuples(
            st.sampled_from(["f", "lang", "foo"]),
            st.one_of(st.sampled_from(["json", "html", "xml", "vi", "en"]), junk),
        ),
        max_size=3,
    ),
)
def test_schema_documents_never_get_a_server_error(http, cid, what, params):
    r = http.get(f"/collections/{cid}/{what}?{urllib.parse.urlencode(params)}")
    check(r, "sortables/queryables/schema", (200, 400, 404))
    if r.status_code == 200 and what == "sortables":
        assert json.loads(r.text)["type"] == "object"
