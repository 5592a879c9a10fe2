"""Administrative units: the shipped reference data and `ioc admin import` on any file/CRS."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely
import sqlalchemy as sa

from gis.admin_units import (
    import_admin_units,
    load_reference_units,
    read_admin_units,
    strip_diacritics,
)
from gis.crs import transform_geometries
from gis.errors import CRSError, GeometryError, InputFileError

pytestmark = pytest.mark.postgis
REPO = Path(__file__).resolve().parents[2]


def write_units(
    path: Path, geoms, codes, names, crs: str | None = "EPSG:5897", driver=None
) -> Path:
    fields = {"ma": np.array(codes, dtype=object), "ten": np.array(names, dtype=object)}
    pyogrio.raw.write(
        path,
        geometry=np.array(shapely.to_wkb(np.array(geoms, dtype=object)), dtype=object),
        field_data=list(fields.values()),
        fields=list(fields),
        geometry_type="Unknown",
        crs=crs,
        driver=driver,
    )
    return path


def square(x: float, y: float, size: float = 1000.0) -> shapely.Polygon:
    return shapely.box(x, y, x + size, y + size)


def test_strip_diacritics() -> None:
    assert strip_diacritics("Xã Đồng Hóa") == "Xa Dong Hoa"


def test_reference_units_loaded_with_validity_and_crosswalk(engine) -> None:
    reports = load_reference_units(engine, REPO / "data" / "admin")
    assert sum(r.features for r in reports) > 200
    load_reference_units(engine, REPO / "data" / "admin")  # idempotent
    with engine.connect() as conn:
        counts = dict(
            conn.execute(
                sa.text(
                    "SELECT level || ':' || (valid_to IS NULL), count(*) FROM admin_units "
                    "WHERE province_code IN ('35', '37') OR code IN ('35', '37') OR parent_code IN "
                    "('347','349','350','351','352','353') GROUP BY 1"
                )
            ).all()
        )
        assert counts["district:false"] == 6
        assert counts["commune:false"] == 109
        # a code reused after the reform coexists with its predecessor
        rows = conn.execute(
            sa.text(
                "SELECT name, valid_from, valid_to FROM admin_units WHERE code = '13285' ORDER BY valid_from"
            )
        ).all()
        assert [r.name for r in rows] == ["Quang Trung", "Phủ Lý"]
        assert rows[0].valid_to.isoformat() == "2025-06-30" and rows[1].valid_to is None
        new = conn.execute(
            sa.text("SELECT new_code, relation FROM admin_unit_crosswalk WHERE old_code = '13294'")
        ).one()
        assert new == ("13285", "full")
        area = conn.execute(
            sa.text(
                "SELECT sum(ST_Area(ST_Transform(geom, 3405))) / 1e6 FROM admin_units "
                "WHERE level = 'district' AND valid_to = '2025-06-30' AND parent_code IS NULL OR "
                "(level = 'district' AND code BETWEEN '347' AND '353')"
            )
        ).scalar()
        assert 850 < area < 875


def test_import_vn2000_file_repairs_and_reports(engine, tmp_path: Path) -> None:
    bowtie = shapely.Polygon(
        [(590000, 2270000), (591000, 2271000), (591000, 2270000), (590000, 2271000)]
    )
    path = write_units(
        tmp_path / "units.gpkg",
        [square(587000, 2268000), bowtie],
        ["99001", "99002"],
        ["Xã Thử Nghiệm", "Phường Kiểm Tra"],
        driver="GPKG",
    )
    report = import_admin_units(engine, path, valid_from=None)
    assert report.features == 2 and report.repaired == ["99002"]
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT level, unit_type, name, name_ascii, ST_IsValid(geom), ST_X(ST_Centroid(geom)), area_km2 "
                "FROM admin_units WHERE code = '99001'"
            )
        ).one()
    assert row.level == "commune" and row.unit_type == "Xã" and row.name == "Thử Nghiệm"
    assert row.name_ascii == "Thu Nghiem" and row[4]
    assert 105.7 < row[5] < 106.0
    assert row.area_km2 == pytest.approx(1.0, rel=0.01)


def test_bad_files_import_nothing(engine, tmp_path: Path) -> None:
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*) FROM admin_units")).scalar()

    no_crs = write_units(
        tmp_path / "nocrs.shp",
        [square(587000, 2268000)],
        ["99101"],
        ["Xã A"],
        crs=None,
        driver="ESRI Shapefile",
    )
    with pytest.raises(CRSError, match="no coordinate reference system"):
        import_admin_units(engine, no_crs)

    swapped_geoms = [shapely.box(2268000, 587000, 2269000, 588000)]
    swapped = write_units(
        tmp_path / "swapped.geojson",
        transform_geometries(np.array(swapped_geoms), 3405, 3405),
        ["99102"],
        ["Xã B"],
        crs="EPSG:4326",
    )
    with pytest.raises(CRSError, match="x and y swapped"):
        import_admin_units(engine, swapped)

    empty = tmp_path / "empty.geojson"
    empty.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    with pytest.raises(InputFileError, match="no features"):
        import_admin_units(engine, empty)

    corrupt = tmp_path / "corrupt.gpkg"
    corrupt.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    with pytest.raises(InputFileError, match="cannot be read"):
        import_admin_units(engine, corrupt)

    line = shapely.LineString([(587000, 2268000), (588000, 2269000)])
    mixed = write_units(
        tmp_path / "mixed.geojson",
        [square(587000, 2268000), line],
        ["99103", "99104"],
        ["Xã C", "Xã D"],
    )
    with pytest.raises(GeometryError, match="99104"):
        import_admin_units(engine, mixed)

    with pytest.raises(CRSError, match="not a known"):
        read_admin_units(mixed, crs="EPSG:999999")

    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM admin_units")).scalar() == before


def test_cli_admin_import_errors_are_one_line(run_ioc, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.shp"
    garbage.write_bytes(b"not a shapefile")
    result = run_ioc("admin", "import", str(garbage))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "garbage.shp" in result.stderr
    ok = run_ioc(
        "admin",
        "import",
        str(REPO / "data/admin/hanam_districts_pre2025.geojson"),
        "--valid-from",
        "1997-01-01",
        "--valid-to",
        "2025-06-30",
    )
    assert ok.returncode == 0, ok.stderr
    assert "6 units" in ok.stdout


def test_a_wrong_declared_crs_fails_naming_the_right_one(engine, tmp_path: Path) -> None:
    # issue 12 (as for cadastres): the shipped 2025 communes in EPSG:5897 coordinates declared
    # EPSG:3405 would move every stored commune ~685 m; nothing is written
    load_reference_units(engine, REPO / "data" / "admin")
    src = REPO / "data" / "admin" / "hanam_area_new_communes_2025.geojson"
    meta, _fids, geoms, fields = pyogrio.raw.read(src)
    moved = transform_geometries(shapely.from_wkb(geoms), 4326, 5897)
    wrong = tmp_path / "communes_3405.gpkg"
    pyogrio.raw.write(
        wrong,
        shapely.to_wkb(moved),
        fields,
        list(meta["fields"]),
        crs="EPSG:3405",
        geometry_type="MultiPolygon",
        driver="GPKG",
    )
    with engine.connect() as conn:
        before = conn.execute(
            sa.text(
                "SELECT code, ST_AsBinary(geom), source FROM admin_units ORDER BY code, valid_from"
            )
        ).all()
    with pytest.raises(CRSError) as err:
        import_admin_units(engine, wrong)
    msg = str(err.value)
    assert "units already stored would move by 68" in msg and "--crs EPSG:5897" in msg
    assert "--force" in msg and "Nothing was imported" in msg
    with engine.connect() as conn:
        after = conn.execute(
            sa.text(
                "SELECT code, ST_AsBinary(geom), source FROM admin_units ORDER BY code, valid_from"
            )
        ).all()
    assert after == before
