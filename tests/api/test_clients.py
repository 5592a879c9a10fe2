"""Real clients against a real `serve` process: GDAL's OAPIF driver, OWSLib, QGIS 3.22 headless,
schemathesis on the OpenAPI document."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import count, server_log

pytestmark = [pytest.mark.postgis, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "data" / "qgis" / "ioc-monitor.qgs"


def test_server_answers_geojson_and_ogc_errors(server):
    r = httpx.get(f"{server}/collections/parcels/items?limit=5")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    bad = httpx.get(f"{server}/collections/parcels/items?bbox=1,2")
    assert bad.status_code == 400 and "bbox" in bad.json()["description"]


@pytest.mark.skipif(shutil.which("ogr2ogr") is None, reason="gdal-bin is not installed")
def test_gdal_harvests_a_whole_collection(server, api_engine, tmp_path):
    out = tmp_path / "parcels.geojson"
    proc = subprocess.run(
        [
            "ogr2ogr",
            "-f",
            "GeoJSON",
            str(out),
            f"OAPIF:{server}",
            "parcels",
            "-oo",
            "PAGE_SIZE=1000",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    features = json.loads(out.read_text())["features"]
    assert len(features) == count(api_engine, "SELECT count(*) FROM parcels")
    keys = {
        (
            f["properties"]["commune_code"],
            f["properties"]["sheet_number"],
            f["properties"]["parcel_number"],
        )
        for f in features
    }
    assert len(keys) == len(features)  # every parcel exactly once across the pages
    # an attribute filter: GDAL sends it to the server (CQL2 / query parameter), same answer as SQL
    seen = len(server_log())
    info = subprocess.run(
        [
            "ogrinfo",
            "-ro",
            "-so",
            "-oo",
            "PAGE_SIZE=1000",
            f"OAPIF:{server}",
            "parcels",
            "-where",
            "land_use_code = 'LUC'",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert info.returncode == 0, info.stderr
    expected = count(api_engine, "SELECT count(*) FROM parcels WHERE land_use_code = 'LUC'")
    assert f"Feature Count: {expected}" in info.stdout
    requests = server_log()[seen:]
    assert "land_use_code=LUC" in requests or "filter=" in requests, requests[-2000:]


def test_owslib_reads_collections_and_items(server, api_engine):
    from owslib.ogcapi.features import Features

    api = Features(server)
    ids = {c["id"] for c in api.collections()["collections"]}
    assert {"parcels", "parcel-alerts", "commune-sentiment"} <= ids
    items = api.collection_items("parcel-alerts", limit=100)
    assert items["numberMatched"] == count(api_engine, "SELECT count(*) FROM parcel_alerts")
    one = api.collection_item("parcels", "1")
    assert one["id"] == 1
    queryables = api.collection_queryables("parcels")
    assert "land_use_code" in queryables["properties"]


QGIS_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from qgis.core import QgsApplication, QgsProject, QgsVectorLayer
    qgs = QgsApplication([], False)
    qgs.initQgis()
    project_file, url = sys.argv[1], sys.argv[2]
    out = {}
    project = QgsProject.instance()
    out["read"] = project.read(project_file)
    for layer in project.mapLayers().values():
        if layer.providerType() == "OAPIF":
            source = layer.source().replace("http://127.0.0.1:5000", url)
            layer.setDataSource(source, layer.name(), "OAPIF")
            out[layer.name()] = {"valid": layer.isValid(), "count": layer.featureCount(),
                                 "renderer": layer.renderer().type() if layer.renderer() else None}
    lyr = QgsVectorLayer(f"url='{url}' typename='parcels' pageSize='1000'", "luc", "OAPIF")
    lyr.setSubsetString("land_use_code = 'LUC'")
    out["filtered"] = sum(1 for _ in lyr.getFeatures())
    out["filtered_codes"] = sorted({f["land_use_code"] for f in lyr.getFeatures()})
    # QGIS 3.22 sends a filter on the time field to the server as datetime=
    lyr = QgsVectorLayer(f"url='{url}' typename='parcels' pageSize='1000'", "recent", "OAPIF")
    q = chr(34)
    lyr.setSubsetString(f"{q}imported_at{q} >= '2025-01-01T10:00:00Z' AND {q}imported_at{q} <= '2025-01-01T12:00:00Z'")
    out["recent"] = sum(1 for _ in lyr.getFeatures())
    print("RESULT " + json.dumps(out))
    sys.stdout.flush()
    os._exit(0)
    """
)


@pytest.mark.qgis
@pytest.mark.skipif(
    not Path("/usr/lib/python3/dist-packages/qgis").exists(), reason="python3-qgis not installed"
)
def test_qgis_opens_the_shipped_project_and_filters_on_the_server(server, api_engine, tmp_path):
    assert PROJECT.exists()
    script = tmp_path / "qgis_check.py"
    script.write_text(QGIS_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update({"QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)})
    seen = len(server_log())
    proc = subprocess.run(
        ["/usr/bin/python3", str(script), str(PROJECT), server],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(lines[0][7:])
    assert result["read"] is True
    parcels = next(v for k, v in result.items() if k.startswith("Thửa đất / Parcels"))
    assert parcels["valid"] and parcels["count"] == count(
        api_engine, "SELECT count(*) FROM parcels"
    )
    assert parcels["renderer"] == "categorizedSymbol"
    alerts = next(v for k, v in result.items() if k.startswith("Cảnh báo"))
    assert alerts["valid"] and alerts["renderer"] == "categorizedSymbol"
    assert result["filtered"] == count(
        api_engine, "SELECT count(*) FROM parcels WHERE land_use_code = 'LUC'"
    )
    assert result["filtered_codes"] == ["LUC"]  # (QGIS 3.22 applies attribute filters itself)
    assert result["recent"] == count(
        api_engine,
        "SELECT count(*) FROM parcels WHERE imported_at "
        "BETWEEN '2025-01-01T10:00:00Z' AND '2025-01-01T12:00:00Z'",
    )
    # the time filter went to the server, and the project's layers load by area (bbox)
    requests = server_log()[seen:]
    assert "datetime=2025-01-01T10:00:00Z%2F2025-01-01T12:00:00Z" in requests, requests[-3000:]


def test_schemathesis_against_the_openapi_document(server):
    """Property-based requests from the OpenAPI document: never a 5xx, always a documented shape."""
    schemathesis = pytest.importorskip("schemathesis")
    proc = subprocess.run(
        [
            str(REPO / ".venv/bin/schemathesis"),
            "run",
            f"{server}/openapi?f=json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "15",
            "--workers",
            "2",
            "--include-path-regex",
            "^/collections/(parcels|articles|parcel-alerts)/items",
            "--include-method",
            "GET",
            "--request-timeout",
            "30",
            "--suppress-health-check",
            "all",
            "--url",
            server,
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert schemathesis is not None
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
