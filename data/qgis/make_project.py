"""Build ioc-monitor.qgs: the OAPIF layers of the OGC API, styled for land officers.

Run with Debian's QGIS Python (system python3), against a running `ioc serve`:

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 data/qgis/make_project.py [--url http://127.0.0.1:5000]

Layers: communes (admin-units), parcels (by land-use code), land changes (by class after),
parcel alerts (by severity), daily commune sentiment; parcels also as vector tiles for fast
browsing of very large layers (off by default). Under the alerts and changes, the group
"Ảnh vệ tinh / Imagery": XYZ raster tiles of the latest detection run's before and after
scenes, true colour and NIR false colour (``/imagery/runs/latest/{before|after}/tiles/...``;
``--run ID`` pins one run); only the after true-colour layer is switched on.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsCategorizedSymbolRenderer,
    QgsCoordinateReferenceSystem,
    QgsFillSymbol,
    QgsProject,
    QgsRasterLayer,
    QgsRendererCategory,
    QgsVectorLayer,
    QgsVectorTileLayer,
)

HERE = Path(__file__).resolve().parent
PROJECT_URL = "http://127.0.0.1:5000"

# land-use codes (Land Law 2024) by group, with the conventional map colours
LAND_USE_COLOURS = {
    "LUC": "#ffff64",
    "LUK": "#ffff96",
    "HNK": "#fff0b4",
    "CLN": "#ffd2a0",
    "RDD": "#6eaa4b",
    "RPH": "#8cc864",
    "RSX": "#b4dc8c",
    "NTS": "#aaffff",
    "CNT": "#f5d2be",
    "LMU": "#ffffff",
    "NKH": "#f5f0c8",
    "ONT": "#ffd0ff",
    "ODT": "#ffa0ff",
    "TSC": "#ff7070",
    "CQP": "#ff6450",
    "CAN": "#ff5050",
    "DGD": "#ffa0aa",
    "DYT": "#ffa0aa",
    "DVH": "#ffa0aa",
    "DTT": "#ffa0aa",
    "DKH": "#ffa0aa",
    "SKK": "#fa96a0",
    "SKN": "#fa96a0",
    "TMD": "#fa96a0",
    "SKC": "#fa96a0",
    "SKS": "#cd9b91",
    "SKX": "#cd9b91",
    "DGT": "#ffaa32",
    "DTL": "#aaffff",
    "DNL": "#ffaa9f",
    "DBV": "#ffaa9f",
    "DCH": "#ffaa9f",
    "DRA": "#cd9b91",
    "NTD": "#d2d2d2",
    "TON": "#ffaaa0",
    "TIN": "#ffaaa0",
    "SON": "#a0ffff",
    "MNC": "#b4ffff",
    "PNK": "#ffaaa0",
    "BCS": "#ffffe1",
    "DCS": "#ffffe1",
    "NCS": "#ffffe1",
}
SEVERITY_COLOURS = {"high": "#d7191c", "medium": "#fdae61", "low": "#ffffbf"}
CHANGE_COLOURS = {
    "built_up": "#e31a1c",
    "bare": "#b15928",
    "vegetation": "#33a02c",
    "water": "#1f78b4",
}


def oapif(url: str, typename: str, title: str) -> QgsVectorLayer:
    uri = f"url='{url}' typename='{typename}' pageSize='1000' restrictToRequestBBOX='1'"
    layer = QgsVectorLayer(uri, title, "OAPIF")
    if not layer.isValid():
        raise SystemExit(f"cannot open {typename} from {url}: is `ioc serve` running?")
    return layer


def imagery(url: str, run: str, moment: str, style: str, title: str) -> QgsRasterLayer:
    """An XYZ raster tile layer of a run's before/after scene (api/imagery_routes.py)."""
    tiles = f"{url}/imagery/runs/{run}/{moment}/tiles/{{z}}/{{x}}/{{y}}.png?style%3D{style}"
    layer = QgsRasterLayer(f"type=xyz&url={tiles}&zmin=8&zmax=17", title, "wms")
    if not layer.isValid():
        raise SystemExit(f"cannot open the {moment} imagery of run {run} from {url}")
    return layer


def categorized(
    layer: QgsVectorLayer,
    field: str,
    colours: dict[str, str],
    outline: str = "#606060",
    width: str = "0.1",
) -> None:
    cats = []
    for value, colour in colours.items():
        symbol = QgsFillSymbol.createSimple(
            {"color": colour, "outline_color": outline, "outline_width": width}
        )
        cats.append(QgsRendererCategory(value, symbol, value))
    layer.setRenderer(QgsCategorizedSymbolRenderer(field, cats))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default=PROJECT_URL, help="URL of the running API")
    ap.add_argument("--out", type=Path, default=HERE / "ioc-monitor.qgs")
    ap.add_argument(
        "--run",
        default="latest",
        help="detection run whose imagery is shown (default: the latest stored)",
    )
    args = ap.parse_args()

    qgs = QgsApplication([], False)
    qgs.initQgis()
    project = QgsProject.instance()
    project.setTitle("ioc-monitor — giám sát đất đai / land monitoring")
    project.setCrs(QgsCoordinateReferenceSystem("EPSG:5897"))

    communes = oapif(args.url, "admin-units", "Đơn vị hành chính / Administrative units")
    communes.setRenderer(
        QgsCategorizedSymbolRenderer(
            "level",
            [
                QgsRendererCategory(
                    "commune",
                    QgsFillSymbol.createSimple(
                        {"color": "0,0,0,0", "outline_color": "#444444", "outline_width": "0.4"}
                    ),
                    "xã / commune",
                ),
                QgsRendererCategory(
                    "province",
                    QgsFillSymbol.createSimple(
                        {"color": "0,0,0,0", "outline_color": "#000000", "outline_width": "1.0"}
                    ),
                    "tỉnh / province",
                ),
            ],
        )
    )
    parcels = oapif(args.url, "parcels", "Thửa đất / Parcels")
    categorized(parcels, "land_use_code", LAND_USE_COLOURS)
    changes = oapif(args.url, "land-changes", "Biến động / Land changes")
    categorized(changes, "to_class", CHANGE_COLOURS, outline="#000000", width="0.3")
    alerts = oapif(args.url, "parcel-alerts", "Cảnh báo / Parcel alerts")
    categorized(alerts, "severity", SEVERITY_COLOURS, outline="#000000", width="0.6")
    sentiment = oapif(args.url, "commune-sentiment", "Cảm xúc tin tức theo xã / Commune sentiment")
    sentiment.setSubsetString("")

    tiles = QgsVectorTileLayer(
        f"type=xyz&url={args.url}/collections/parcels/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}?f%3Dmvt"
        "&zmin=12&zmax=22",
        "Thửa đất (tiles) / Parcels as vector tiles",
    )

    for layer in (tiles, sentiment, parcels, changes, alerts, communes):
        project.addMapLayer(layer)
    root = project.layerTreeRoot()
    for layer in (tiles, sentiment):
        node = root.findLayer(layer.id())
        if node is not None:
            node.setItemVisibilityChecked(False)
    # the run's imagery, under the alerts and the changes, above the parcels
    changes_node = root.findLayer(changes.id())
    group = root.insertGroup(root.children().index(changes_node) + 1, "Ảnh vệ tinh / Imagery")
    for moment, moment_title in (("after", "sau / after"), ("before", "trước / before")):
        for style, style_title in (
            ("truecolor", "màu tự nhiên / true colour"),
            ("falsecolor", "màu giả NIR / NIR false colour"),
        ):
            layer = imagery(
                args.url, args.run, moment, style, f"Ảnh {moment_title} — {style_title}"
            )
            project.addMapLayer(layer, False)
            node = group.addLayer(layer)
            node.setItemVisibilityChecked(moment == "after" and style == "truecolor")
    project.write(str(args.out))
    text = args.out.read_text(encoding="utf-8")
    if args.url != PROJECT_URL:
        args.out.write_text(text.replace(args.url, PROJECT_URL), encoding="utf-8")
    print(f"wrote {args.out}")
    sys.stdout.flush()
    os._exit(0)  # exitQgis() segfaults in QGIS 3.22 headless


if __name__ == "__main__":
    main()
