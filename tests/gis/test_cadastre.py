"""Cadastre import against a real PostGIS (each test in a rolled-back transaction)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely
from sqlalchemy import text

from gis.cadastre import import_cadastre
from gis.errors import CRSError, GeometryError, InputFileError
from vntext import repair_legacy

pytestmark = pytest.mark.postgis

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "land" / "sample_cadastre.gpkg"
E0, N0 = 602_000.0, 2_282_000.0  # EPSG:5897, in former Duy Tiên (old commune 13345)


def _write(
    path: Path,
    geoms,
    records: dict[str, list],
    crs: str | None = "EPSG:5897",
    driver: str | None = None,
    encoding: str | None = None,
) -> Path:
    fields = list(records)
    data = [np.array(records[f], dtype=object) for f in fields]
    kw = {"encoding": encoding} if encoding else {}
    pyogrio.raw.write(
        path,
        shapely.to_wkb(np.array(geoms, dtype=object)),
        data,
        fields,
        crs=crs,
        geometry_type="Polygon",
        driver=driver,
        **kw,
    )
    return path


def _parcels(n: int = 3, dx: float = 0.0):
    return [shapely.box(E0 + dx + i * 30, N0, E0 + dx + i * 30 + 25, N0 + 40) for i in range(n)]


def _rows(conn, source: str):
    return (
        conn.execute(
            text(
                "SELECT commune_code, old_commune_code, sheet_number, parcel_number, land_use_code, "
                "land_use_code_raw, land_use_code_version, area_m2, legal_area_m2, owner_name, "
                "ST_XMin(geom) AS x, ST_YMin(geom) AS y FROM parcels WHERE source_file = :s "
                "ORDER BY parcel_number"
            ),
            {"s": source},
        )
        .mappings()
        .all()
    )


def test_sample_cadastre_imports_with_repair_and_code_mapping(connection):
    report = import_cadastre(connection, SAMPLE)
    assert report.features == 134 and report.inserted == 134
    assert report.source_crs == "EPSG:5897"
    assert len(report.repaired) == 1  # the bow-tie parcel
    assert report.mapped_codes == {"BHK": "HNK"}
    assert report.field_mapping["sheet_number"] == "SoHieuToBanDo"
    rows = _rows(connection, SAMPLE.name)
    bhk = [r for r in rows if r["land_use_code_raw"] == "BHK"]
    assert bhk and all(
        r["land_use_code"] == "HNK" and r["land_use_code_version"] == "2014" for r in bhk
    )
    assert all(r["area_m2"] > 0 for r in rows)
    # importing again updates, never duplicates
    again = import_cadastre(connection, SAMPLE)
    assert (again.inserted, again.updated) == (0, 134)


def test_old_commune_code_maps_to_the_current_commune(connection, tmp_path):
    connection.execute(
        text(
            "INSERT INTO admin_unit_crosswalk (old_code, new_code, relation, effective) "
            "VALUES ('99901', '99990', 'full', '2025-07-01') ON CONFLICT DO NOTHING"
        )
    )
    path = _write(
        tmp_path / "cw.geojson",
        _parcels(1),
        {"MaXa": ["99901"], "SoTo": ["3"], "SoThua": ["1"], "LoaiDat": ["LUC"]},
        driver="GeoJSON",
    )
    import_cadastre(connection, path)
    (row,) = _rows(connection, path.name)
    assert (row["commune_code"], row["old_commune_code"]) == ("99990", "99901")


def test_swapped_axes_are_detected_and_fixed(connection, tmp_path):
    swapped = [shapely.transform(g, lambda xy: xy[:, ::-1].copy()) for g in _parcels(2)]
    path = _write(
        tmp_path / "swapped.gpkg",
        swapped,
        {
            "MaXa": ["13345"] * 2,
            "SoHieuToBanDo": ["5"] * 2,
            "SoThuTuThua": ["1", "2"],
            "LoaiDat": ["ONT", "CLN"],
        },
    )
    report = import_cadastre(connection, path)
    assert report.swapped_xy
    rows = _rows(connection, "swapped.gpkg")
    assert rows[0]["x"] == pytest.approx(E0) and rows[0]["y"] == pytest.approx(N0)


def test_vn2000_geographic_input_uses_the_pinned_transformation(connection, tmp_path):
    from gis.crs import transform_geometries

    geo = transform_geometries(np.array(_parcels(1), dtype=object), 5897, 4756)
    path = _write(
        tmp_path / "geo.gpkg",
        list(geo),
        {"MaXa": ["13345"], "SoTo": ["1"], "SoThua": ["9"], "LoaiDat": ["LUC"]},
        crs="EPSG:4756",
    )
    import_cadastre(connection, path)
    (row,) = _rows(connection, "geo.gpkg")
    assert row["x"] == pytest.approx(E0, abs=0.01) and row["y"] == pytest.approx(N0, abs=0.01)
    assert row["area_m2"] == pytest.approx(1000.0, abs=0.5)


def test_tcvn3_shapefile_text_is_converted(connection, tmp_path):
    from vntext import TCVN3_DECODE

    rev = {c: b for b, c in TCVN3_DECODE.items()}

    def tcvn3(s: str) -> str:  # as a DBF typed with a TCVN3 font reads in Latin-1
        return bytes(rev.get(c, ord(c)) for c in s).decode("latin-1")

    owner = tcvn3("Nguyễn Văn Hùng")
    addr = tcvn3("Thôn Yên Lạc, xã Chuyên Ngoại")
    path = _write(
        tmp_path / "legacy.shp",
        _parcels(1),
        {
            "MAXA": ["13345"],
            "SHBANDO": ["2"],
            "SHTHUA": ["7"],
            "KHLOAIDAT": ["NHK"],
            "TENCHU": [owner],
            "DIACHI": [addr],
        },
        encoding="latin1",
    )
    report = import_cadastre(connection, path)
    (row,) = _rows(connection, "legacy.shp")
    assert row["owner_name"] == "Nguyễn Văn Hùng"
    assert report.legacy_text.get("tcvn3", 0) >= 1
    assert row["land_use_code"] == "HNK"


def test_unrepairable_geometries_are_rejected_with_their_keys(connection, tmp_path):
    geoms = _parcels(2) + [
        shapely.Polygon([(E0, N0), (E0 + 10, N0), (E0 + 20, N0), (E0, N0)])
    ]  # zero-area sliver
    path = _write(
        tmp_path / "broken.gpkg",
        geoms,
        {
            "MaXa": ["13345"] * 3,
            "SoTo": ["4"] * 3,
            "SoThua": ["1", "2", "3"],
            "LoaiDat": ["LUC"] * 3,
        },
    )
    with pytest.raises(GeometryError, match=r"broken.gpkg: 1 parcels .*13345/4/3"):
        import_cadastre(connection, path)
    assert not _rows(connection, "broken.gpkg")  # nothing partial


def test_unknown_crs_and_missing_crs(connection, tmp_path):
    path = _write(
        tmp_path / "nocrs.shp",
        _parcels(1),
        {"MaXa": ["13345"], "SoTo": ["1"], "SoThua": ["1"], "LoaiDat": ["LUC"]},
        crs=None,
    )
    with pytest.raises(CRSError, match="nocrs.shp: has no coordinate reference system"):
        import_cadastre(connection, path)
    with pytest.raises(CRSError, match="not a known coordinate reference system"):
        import_cadastre(connection, path, crs="EPSG:999999")
    report = import_cadastre(connection, path, crs="EPSG:5897")
    assert report.inserted == 1


def test_wrong_crs_is_caught(connection, tmp_path):
    path = _write(
        tmp_path / "wrong.gpkg",
        _parcels(1),
        {"MaXa": ["13345"], "SoTo": ["1"], "SoThua": ["1"], "LoaiDat": ["LUC"]},
        crs="EPSG:32631",
    )  # UTM 31N: far from Viet Nam
    with pytest.raises(CRSError, match="do not fall in Viet Nam"):
        import_cadastre(connection, path)


def test_unknown_codes_and_missing_fields(connection, tmp_path):
    path = _write(
        tmp_path / "codes.gpkg",
        _parcels(1),
        {"MaXa": ["13345"], "SoTo": ["1"], "SoThua": ["1"], "LoaiDat": ["XYZ"]},
    )
    with pytest.raises(InputFileError, match=r"unknown land-use codes \(13345/1/1 \('XYZ'\)"):
        import_cadastre(connection, path)
    path2 = _write(tmp_path / "nokey.gpkg", _parcels(1), {"MaXa": ["13345"], "LoaiDat": ["LUC"]})
    with pytest.raises(InputFileError, match="no field for sheet_number, parcel_number"):
        import_cadastre(connection, path2)


def test_not_a_vector_file(connection, tmp_path):
    bad = tmp_path / "bad.gpkg"
    bad.write_bytes(b"not a geopackage")
    with pytest.raises(InputFileError, match="bad.gpkg: cannot be read"):
        import_cadastre(connection, bad)


def test_repair_legacy_examples():
    assert repair_legacy("Hµ Nam")[0] == "Hà Nam"
    assert repair_legacy("Haø Nam")[0] == "Hà Nam"
    assert repair_legacy("Hà Nam") == ("Hà Nam", None)


@pytest.fixture
def reference_units(engine, connection):
    """The shipped administrative units (loaded once into the session database, as
    tests/gis/test_admin_units.py does; the loader is idempotent)."""
    from gis.admin_units import load_reference_units

    load_reference_units(engine, REPO / "data" / "admin")
    return connection


def _declared_as(tmp_path: Path, crs: str) -> Path:
    """The sample cadastre (EPSG:5897 coordinates) with another CRS declared."""
    df_meta, _fids, geom, field_data = pyogrio.raw.read(SAMPLE)
    out = tmp_path / f"declared_{crs.replace(':', '_')}.gpkg"
    pyogrio.raw.write(
        out,
        geom,
        field_data,
        list(df_meta["fields"]),
        crs=crs,
        geometry_type=df_meta["geometry_type"],
        driver="GPKG",
    )
    return out


def test_a_wrong_declared_crs_fails_naming_the_right_one(reference_units, tmp_path):
    # issue 12: a file declared EPSG:3405 whose coordinates are EPSG:5897 was imported with
    # exit 0 and every parcel ~685 m off, overwriting the right ones
    conn = reference_units
    good = import_cadastre(conn, SAMPLE)
    assert good.placement_checked == 134 and good.inserted == 134
    before = _rows(conn, SAMPLE.name)
    wrong = _declared_as(tmp_path, "EPSG:3405")
    with pytest.raises(CRSError) as err:
        import_cadastre(conn, wrong)
    msg = str(err.value)
    assert "134 of the 134 parcels already stored would move by 68" in msg
    assert "--crs EPSG:5897" in msg and "--force" in msg and "Nothing was imported" in msg
    assert _rows(conn, SAMPLE.name) == before  # the right parcels are untouched
    assert not _rows(conn, wrong.name)
    # --crs with the right CRS imports; --force moves them
    fixed = import_cadastre(conn, wrong, crs="EPSG:5897")
    assert fixed.updated == 134 and fixed.placement_checked == 134
    assert import_cadastre(conn, wrong, force=True).updated == 134


def test_parcels_outside_their_communes_fail_naming_the_crs(reference_units, tmp_path):
    # a first import (nothing stored to compare with): EPSG:9209 (central meridian 105°30')
    # declared on EPSG:5897 coordinates puts every parcel ~49 km east of its commune
    conn = reference_units
    wrong = _declared_as(tmp_path, "EPSG:9209")
    with pytest.raises(CRSError) as err:
        import_cadastre(conn, wrong)
    msg = str(err.value)
    assert "134 of 134 parcels lie outside the administrative units they claim" in msg
    assert "--crs EPSG:5897" in msg and "Nothing was imported" in msg
    assert not _rows(conn, wrong.name)
    forced = import_cadastre(conn, wrong, force=True)
    assert forced.inserted == 134 and len(forced.placement_forced) == 134
    assert "imported because of --force" in forced.summary()
