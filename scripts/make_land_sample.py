"""Generate the SYNTHETIC land-monitoring sample in data/land/ (image pair + cadastre).

Everything here is made up, but laid out like the real thing: a patch of former Xã Chuyên
Ngoại (old commune 13345, Duy Tiên; since 1 July 2025 part of Phường Duy Tiên, 13324) with
consolidated rice fields, a village, ponds, a canal and a road.

* ``sample_cadastre.gpkg`` — parcels in EPSG:5897 (VN-2000 / TM-3 zone 482) with the field
  names of Vietnamese cadastral exports (MaXa, SoHieuToBanDo, SoThuTuThua, DienTich, LoaiDat
  with 2014 codes such as BHK, TenChu, DiaChi, DoiTuongSuDung) and one self-intersecting
  parcel the import repairs.
* ``before/`` — Sentinel-2-style per-band GeoTIFFs (10 m bands at 10 m, 20 m bands at 20 m,
  an SCL band with a small cloud), EPSG:32648, April 2024 (spring rice green).
* ``after_T48QXH_20250418.tif`` — one 10-band GeoTIFF with band descriptions, April 2025 (the
  same season, as one should compare), with changes: two rice parcels and a pond built over,
  an orchard cleared to bare soil, and seasonal changes (late-transplanted paddies flooded a
  year ago now green, early-harvested fields now stubble, an annual-crop field now bare) that
  must not raise alerts.

Reflectances are typical values of each cover (× 10,000) with per-parcel and per-pixel
variation and a 10 m sensor blur. Run: ``.venv/bin/python scripts/make_land_sample.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import rasterio
import shapely
from rasterio.features import rasterize
from rasterio.transform import from_origin
from scipy.ndimage import gaussian_filter

from gis.crs import make_transformer, transform_geometries
from gis.imagery import MODEL_BANDS

OUT = Path(__file__).resolve().parents[1] / "data" / "land"
RNG = np.random.default_rng(20250418)

# reflectance × 10,000 for MODEL_BANDS: B02 B03 B04 B05 B06 B07 B08 B8A B11 B12
SPECTRA = {
    "rice_green": [350, 700, 400, 1100, 2600, 3200, 3500, 3600, 2000, 1000],
    "paddy_flooded": [700, 800, 600, 650, 700, 750, 800, 780, 300, 200],
    "bare": [1100, 1400, 1700, 1900, 2100, 2250, 2350, 2450, 3000, 2500],
    "stubble": [900, 1150, 1350, 1600, 1900, 2050, 2200, 2300, 2700, 2100],
    "built": [1300, 1450, 1550, 1650, 1750, 1850, 1950, 2000, 2300, 2100],
    "roof_red": [900, 1000, 1500, 1600, 1650, 1700, 1750, 1800, 2200, 1900],
    "garden": [300, 550, 350, 900, 2200, 2700, 3000, 3100, 1700, 800],
    "road": [1000, 1100, 1150, 1250, 1350, 1400, 1450, 1500, 1800, 1600],
    "canal": [600, 650, 450, 400, 350, 330, 300, 290, 150, 100],
    "pond": [500, 700, 500, 480, 450, 430, 420, 410, 200, 130],
    "annual_crop": [400, 750, 500, 1200, 2400, 2900, 3200, 3300, 2200, 1200],
}
OWNERS = [
    "Nguyễn Văn Hùng",
    "Trần Thị Lan",
    "Lê Văn Thắng",
    "Phạm Thị Hoa",
    "Hoàng Văn Nam",
    "Vũ Thị Mai",
    "Đỗ Văn Long",
    "Bùi Thị Hạnh",
    "Đặng Văn Tuấn",
    "Ngô Thị Thu",
    "UBND xã Chuyên Ngoại",
    "Dương Văn Phúc",
    "Lý Thị Ngọc",
    "Trịnh Văn Khải",
]
HAMLETS = ["Thôn Yên Lạc", "Thôn Yên Mỹ", "Thôn Tường Thụy", "Thôn Từ Đài"]


def build_parcels(x0: float, y0: float):
    """Parcels in EPSG:5897 around (x0 = easting, y0 = northing): rows of features."""
    rows = []
    sheet_parcel = {}

    def add(geom, code, sheet, before, after, owner_class="GDC", owner=None):
        n = sheet_parcel.get(sheet, 0) + 1
        sheet_parcel[sheet] = n
        rows.append(
            {
                "geometry": geom,
                "MaXa": "13345",
                "SoHieuToBanDo": str(sheet),
                "SoThuTuThua": str(n),
                "LoaiDat": code,
                "DoiTuongSuDung": owner_class,
                "TenChu": owner or OWNERS[len(rows) % len(OWNERS)],
                "DiaChi": f"{HAMLETS[sheet % len(HAMLETS)]}, xã Chuyên Ngoại, huyện Duy Tiên, tỉnh Hà Nam",
                "before": before,
                "after": after,
            }
        )

    box = shapely.box
    # sheet 12: consolidated rice fields, 8 columns x 6 rows of 60 m x 40 m (2,400 m²)
    for r in range(6):
        for c in range(8):
            gx, gy = x0 + c * 62, y0 + r * 42
            g = box(gx, gy, gx + 60, gy + 40)
            code = "LUC"
            before, after = "rice_green", "rice_green"
            if (r, c) in ((2, 0), (2, 1), (3, 0)):
                before = "paddy_flooded"  # transplanted late last year: seasonal
            if (r, c) in ((5, 6), (5, 7)):
                after = "stubble"  # harvested early this year: seasonal
            if (r, c) in ((1, 2), (4, 5)):
                after = "built"  # rice land built over → alerts
            if (r, c) in ((0, 6), (0, 7)):
                code, before, after = "BHK", "annual_crop", "bare"  # seasonal, annual crop
            add(g, code, 12, before, after)
    # canal (DTL) and road (DGT) along the fields
    add(
        box(x0 - 20, y0 - 14, x0 + 500, y0 - 2),
        "DTL",
        12,
        "canal",
        "canal",
        "UBS",
        "UBND xã Chuyên Ngoại",
    )
    add(
        box(x0 - 20, y0 + 254, x0 + 500, y0 + 262),
        "DGT",
        12,
        "road",
        "road",
        "UBS",
        "UBND xã Chuyên Ngoại",
    )
    # sheet 7: village: residential plots (ONT) with gardens (CLN), ponds (NTS)
    vy = y0 + 270
    for r in range(4):
        for c in range(10):
            gx, gy = x0 + c * 50, vy + r * 45
            res = box(gx, gy, gx + 25, gy + 43)
            gar = box(gx + 25, gy, gx + 48, gy + 43)
            add(
                res,
                "ONT",
                7,
                "roof_red" if (r + c) % 2 else "built",
                "roof_red" if (r + c) % 2 else "built",
                "GDC",
            )
            gb = ga = "garden"
            if (r, c) in ((2, 3), (2, 4)):
                ga = "bare"  # orchard cleared
            add(gar, "CLN", 7, gb, ga)
    # ponds (NTS), one filled and built over
    for k in range(3):
        gx = x0 + 520
        g = box(gx, vy + k * 60, gx + 50, vy + k * 60 + 55)
        add(g, "NTS", 7, "pond", "built" if k == 1 else "pond")
    # a parcel digitised as a bow-tie (self-intersection) the import must repair
    bow = shapely.Polygon(
        [(x0 + 520, y0), (x0 + 570, y0 + 40), (x0 + 570, y0), (x0 + 520, y0 + 40)]
    )
    add(bow, "LUK", 12, "rice_green", "rice_green")
    return rows


def render(rows, transform, shape, which: str, utm_geoms) -> np.ndarray:
    """Reflectances (10, h, w) of one date."""
    names = list(SPECTRA)
    cover = np.full(shape, names.index("rice_green"), dtype=np.int32)
    shapes = [(g, names.index(r[which])) for g, r in zip(utm_geoms, rows, strict=True)]
    cover = rasterize(
        shapes,
        out_shape=shape,
        transform=transform,
        fill=int(cover[0, 0]),
        dtype="int32",
        all_touched=False,
    )
    spectra = np.array([SPECTRA[n] for n in names], dtype=np.float32)
    img = spectra[cover].transpose(2, 0, 1)  # (10, h, w)
    # per-parcel variation
    ids = rasterize(
        [(g, i + 1) for i, g in enumerate(utm_geoms)],
        out_shape=shape,
        transform=transform,
        fill=0,
        dtype="int32",
    )
    # the same parcel keeps its brightness (soil, roof material) from one date to the next,
    # up to a small per-date variation
    gain = 1 + 0.06 * np.random.default_rng(1).standard_normal(len(rows) + 1).astype(np.float32)
    gain *= 1 + 0.015 * RNG.standard_normal(len(rows) + 1).astype(np.float32)
    img *= gain[ids][None]
    img *= 1 + 0.012 * RNG.standard_normal(img.shape).astype(np.float32)  # sensor noise (SNR ~ 80)
    img = np.stack([gaussian_filter(b, 0.6) for b in img])
    if which == "after":
        img *= 1.04  # a different atmosphere / sun angle
    return np.clip(img, 1, 10000).astype(np.uint16)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    # a point in former Xã Chuyên Ngoại (lon, lat) → EPSG:5897 (pinned VN-2000 transformation)
    e, n = make_transformer(4326, 5897).transform(106.012, 20.618)
    x0, y0 = round(e / 10) * 10, round(n / 10) * 10
    rows = build_parcels(x0, y0)
    geoms = np.array([r["geometry"] for r in rows], dtype=object)

    # cadastre (GeoPackage, EPSG:5897); keep the bow-tie invalid on purpose
    fields = [
        "MaXa",
        "SoHieuToBanDo",
        "SoThuTuThua",
        "LoaiDat",
        "DienTich",
        "TenChu",
        "DiaChi",
        "DoiTuongSuDung",
    ]
    areas = [round(float(shapely.make_valid(g).area), 1) for g in geoms]
    data = [
        np.array([r[f] for r in rows], dtype=object)
        if f != "DienTich"
        else np.array(areas, dtype=np.float64)
        for f in fields
    ]
    gpkg = OUT / "sample_cadastre.gpkg"
    if gpkg.exists():
        gpkg.unlink()
    pyogrio.raw.write(
        gpkg,
        shapely.to_wkb(geoms),
        data,
        fields,
        layer="thua_dat",
        driver="GPKG",
        crs="EPSG:5897",
        geometry_type="Polygon",
    )

    # image grid: EPSG:32648, 10 m, covering the parcels with a margin
    utm = transform_geometries(
        np.array([shapely.make_valid(g) for g in geoms], dtype=object), 5897, 32648
    )
    xmin, ymin, xmax, ymax = shapely.total_bounds(utm)
    xmin, ymax = np.floor(xmin / 20) * 20 - 200, np.ceil(ymax / 20) * 20 + 200
    w = int(np.ceil((xmax + 200 - xmin) / 20)) * 2
    h = int(np.ceil((ymax - (ymin - 200)) / 20)) * 2
    tf = from_origin(xmin, ymax, 10, 10)
    before = render(rows, tf, (h, w), "before", utm)
    after = render(rows, tf, (h, w), "after", utm)

    # BEFORE: per-band files, 20 m bands at 20 m, plus SCL with a small cloud
    bdir = OUT / "before"
    bdir.mkdir(exist_ok=True)
    stem = "T48QXH_20240420T033121"
    prof = {
        "driver": "GTiff",
        "dtype": "uint16",
        "count": 1,
        "crs": "EPSG:32648",
        "nodata": 0,
        "compress": "deflate",
    }
    for i, band in enumerate(MODEL_BANDS):
        arr = before[i]
        if band in ("B05", "B06", "B07", "B8A", "B11", "B12"):
            arr = arr.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)).astype(np.uint16)
            p = {
                **prof,
                "width": w // 2,
                "height": h // 2,
                "transform": from_origin(xmin, ymax, 20, 20),
            }
        else:
            p = {**prof, "width": w, "height": h, "transform": tf}
        with rasterio.open(bdir / f"{stem}_{band}.tif", "w", **p) as dst:
            dst.write(arr, 1)
    scl = np.full((h // 2, w // 2), 4, dtype=np.uint8)  # 4 = vegetation
    scl[2:6, 2:7] = 9  # cloud, high probability (over the margin)
    with rasterio.open(
        bdir / f"{stem}_SCL.tif",
        "w",
        **{
            **prof,
            "dtype": "uint8",
            "width": w // 2,
            "height": h // 2,
            "transform": from_origin(xmin, ymax, 20, 20),
        },
    ) as dst:
        dst.write(scl, 1)

    # AFTER: one multi-band GeoTIFF with band descriptions, all on the 10 m grid; its 20 m
    # bands carry 20 m detail (2 x 2 block means, bilinear back to 10 m), as a stack made
    # from a real product would
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    for i, band in enumerate(MODEL_BANDS):
        if band in ("B05", "B06", "B07", "B8A", "B11", "B12"):
            coarse = after[i].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)).astype(np.float32)
            fine = np.zeros((h, w), np.float32)
            reproject(
                coarse,
                fine,
                src_transform=from_origin(xmin, ymax, 20, 20),
                src_crs="EPSG:32648",
                dst_transform=tf,
                dst_crs="EPSG:32648",
                resampling=Resampling.bilinear,
            )
            after[i] = np.clip(fine, 1, 10000).astype(np.uint16)
    # AFTER: one multi-band GeoTIFF with band descriptions
    with rasterio.open(
        OUT / "after_T48QXH_20250418.tif",
        "w",
        driver="GTiff",
        dtype="uint16",
        count=len(MODEL_BANDS),
        width=w,
        height=h,
        crs="EPSG:32648",
        transform=tf,
        nodata=0,
        compress="deflate",
        tiled=True,
        blockxsize=128,
        blockysize=128,
    ) as dst:
        dst.write(after)
        for i, band in enumerate(MODEL_BANDS, start=1):
            dst.set_band_description(i, band)
        dst.update_tags(ACQUISITION_DATE="2025-04-18T03:31:21Z", SENSOR="Sentinel-2 (synthetic)")
    print(f"wrote {gpkg} ({len(rows)} parcels), before/ and after ({w}x{h} px) in {OUT}")


if __name__ == "__main__":
    main()
