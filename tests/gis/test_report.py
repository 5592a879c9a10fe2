"""The land reports (``ioc land report``, gis.report) on a real PostGIS: what an officer reads in
the alert report and the commune summary, in Vietnamese, the A4 PDF Chromium prints, the image
chips when stored and the box saying there are none, and one-line errors for unknown ids."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import unicodedata
import zlib
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from gis import report
from gis.audit import Actor
from gis.cli_land import land
from gis.errors import RecordNotFoundError
from gis.review import review_alert

pytestmark = pytest.mark.postgis


# A database of this module's own (own_database_url, tests/conftest.py):
# the locator map lists every stored commune near the parcel, so units other modules committed
# (the shipped reference units) would show on it.
@pytest.fixture(scope="module")
def database_url(own_database_url):
    return own_database_url


@pytest.fixture(scope="module")
def engine(own_engine):
    return own_engine


OWNER = "Nguyễn Thị Hường"
NOTE = "Đã xây nhà hai tầng trên đất lúa, lập biên bản"


def _seed(conn) -> dict:
    """A commune, a rice parcel and its neighbour, a run with two scenes, a change polygon that
    covers most of the rice parcel, the alert it raised, reviewed once."""
    srid = conn.execute(text("SELECT Find_SRID('public', 'parcels', 'geom')")).scalar_one()
    conn.execute(
        text(
            "INSERT INTO admin_units (code, level, unit_type, name, name_ascii, valid_from, geom) VALUES "
            "('99123', 'commune', 'xã', 'Liêm Thuận', 'Liem Thuan', '2025-07-01', "
            "ST_Multi(ST_MakeEnvelope(105.90, 20.50, 105.93, 20.53, 4326)))"
        )
    )
    parcels = {}
    for number, code, lon in (("38", "LUC", 105.915), ("39", "HNK", 105.9155)):
        parcels[number] = conn.execute(
            text(
                "INSERT INTO parcels (commune_code, old_commune_code, sheet_number, parcel_number, area_m2, "
                "legal_area_m2, land_use_code, land_use_code_raw, land_use_code_version, owner_name, address, geom) "
                "VALUES ('99123', '99001', '12', :n, 500, 498.5, :c, :c, '2024', :owner, 'Thôn Đông, xã Liêm Thuận', "
                "ST_Multi(ST_Transform(ST_SetSRID(ST_MakeEnvelope(:lon, 20.515, :lon + 0.0002, 20.5152), 4326), :srid))) "
                "RETURNING id"
            ),
            {"n": number, "c": code, "owner": OWNER, "lon": lon, "srid": srid},
        ).scalar_one()
    scenes = [
        conn.execute(
            text(
                "INSERT INTO imagery_scenes (path, sensor, acquired_at, cloud_fraction) VALUES "
                "(:p, 'Sentinel-2', :t, 0.012) RETURNING id"
            ),
            {"p": p, "t": t},
        ).scalar_one()
        for p, t in (
            ("/data/S2B_T48QXH_20240420.tif", "2024-04-20T03:31:21Z"),
            ("/data/S2A_T48QXH_20250418.tif", "2025-04-18T03:31:21Z"),
        )
    ]
    run = conn.execute(
        text(
            "INSERT INTO detection_runs (status, method, model_version, before_scene_id, after_scene_id) "
            "VALUES ('succeeded', 'cnn', 'change_cnn_v3', :b, :a) RETURNING id"
        ),
        {"b": scenes[0], "a": scenes[1]},
    ).scalar_one()
    change = conn.execute(
        text(
            "INSERT INTO land_changes (run_id, area_m2, from_class, to_class, kind, confidence, date_before, "
            "date_after, commune_code, geom) SELECT :r, 420, 'vegetation', 'built_up', 'conversion', 0.91, "
            "'2024-04-20', '2025-04-18', '99123', ST_Multi(ST_Buffer(geom, -2)) FROM parcels WHERE id = :p "
            "RETURNING id"
        ),
        {"r": run, "p": parcels["38"]},
    ).scalar_one()
    alert = conn.execute(
        text(
            "INSERT INTO parcel_alerts (run_id, parcel_id, change_id, commune_code, changed_area_m2, changed_fraction, "
            "legal_code, observed_from, observed_to, rule, rules, severity) VALUES (:r, :p, :c, '99123', 420, 0.84, "
            "'LUC', 'vegetation', 'built_up', 'rice_land_lost', ARRAY['rice_land_lost', 'agricultural_to_built_up'], "
            "'high') RETURNING id"
        ),
        {"r": run, "p": parcels["38"], "c": change},
    ).scalar_one()
    review_alert(
        conn, alert, "confirmed", "Trần Thị B", NOTE, actor=Actor("tran-b", "officer", "api")
    )
    return {"alert": alert, "run": run, "scenes": scenes, "parcels": parcels}


@pytest.fixture
def seeded(connection):
    return _seed(connection)


def _png(path, colour: tuple[int, int, int]) -> bytes:
    """A small real PNG (8 × 8, one colour)."""
    raw = b"".join(b"\x00" + bytes(colour) * 8 for _ in range(8))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    path.write_bytes(data)
    return data


def test_alert_report_reads_in_vietnamese(connection, seeded):
    data = report.alert_report(connection, seeded["alert"])
    html = report.render_html(data)
    for expected in (
        "BÁO CÁO CẢNH BÁO BIẾN ĐỘNG SỬ DỤNG ĐẤT",
        "99001/12/38",  # parcel key: (old) commune / sheet / parcel
        OWNER,
        "Thôn Đông, xã Liêm Thuận",
        "LUC</b> — Đất chuyên trồng lúa",  # legal code and its name (gis/reference/land_use_codes.csv)
        "Thảm thực vật → Công trình xây dựng",
        "420,0 m²",
        "84,0 %",  # changed area and share, written the Vietnamese way
        "500,0 m²",
        "498,5 m²",
        "20/04/2024",
        "18/04/2025",
        "S2A_T48QXH_20250418.tif",  # scene dates and ids
        "Mất đất trồng lúa",
        "Đất nông nghiệp chuyển sang xây dựng",
        "≥ 100 m²",  # rules fired
        "Xã Liêm Thuận (99123)",
        "Mức độ: Cao",
        "Đã xác nhận vi phạm",
        "Trần Thị B",
        NOTE,
        "tran-b",  # review and its audit history
        "Không có ảnh vệ tinh lưu cho cảnh báo này",  # no chips stored for this alert
    ):
        assert expected in html, expected
    # the locator map draws the commune outline and marks the parcel; the sketch its neighbour
    locator = data["maps"]["locator"]
    assert [u["name"] for u in locator["units"] if u["own"]] == ["Liêm Thuận"]
    assert locator["units"][0]["path"].startswith("M ") and locator["has_outline"]
    assert {p["parcel_number"] for p in data["maps"]["sketch"]["parcels"]} == {"38", "39"}
    assert [c["to_class"] for c in data["maps"]["sketch"]["changes"]] == ["built_up"]
    # the marker lies inside the frame of the map
    frame, marker = locator["frame"], locator["parcel"]
    assert 0 < marker["x"] < frame["w"] and -frame["h"] < marker["y"] < 0
    # the owner can be left out (the API does so without an officer token)
    hidden = report.render_html(report.alert_report(connection, seeded["alert"], show_owner=False))
    assert OWNER not in hidden and report.OWNER_HIDDEN in hidden


def test_alert_report_shows_the_stored_chips(connection, seeded, tmp_path):
    if connection.execute(text("SELECT to_regclass('alert_evidence')")).scalar() is None:
        pytest.skip("no alert_evidence table (migration 0011) in this schema")
    pngs = {}
    for moment, scene, colour in (
        ("before", seeded["scenes"][0], (30, 120, 40)),
        ("after", seeded["scenes"][1], (200, 200, 190)),
    ):
        pngs[moment] = _png(tmp_path / f"{moment}.png", colour)
        connection.execute(
            text(
                "INSERT INTO alert_evidence (alert_id, moment, style, scene_id, path, width, height, crs, bounds) "
                "VALUES (:a, :m, 'truecolor', :s, :p, 8, 8, 'EPSG:32648', '[0, 0, 80, 80]')"
            ),
            {"a": seeded["alert"], "m": moment, "s": scene, "p": str(tmp_path / f"{moment}.png")},
        )
    data = report.alert_report(connection, seeded["alert"])
    assert data["evidence"]["available"]
    assert [c["moment"] for c in data["evidence"]["chips"]] == ["before", "after"]
    html = report.render_html(data)
    import base64

    for moment in ("before", "after"):
        assert base64.b64encode(pngs[moment]).decode() in html
    assert "Trước — màu tự nhiên" in html and "Sau — màu tự nhiên" in html
    assert "Không có ảnh vệ tinh lưu" not in html
    # a chip file gone from disk: the report still renders and names the missing file
    (tmp_path / "after.png").unlink()
    html = report.render_html(report.alert_report(connection, seeded["alert"]))
    assert "Trước — màu tự nhiên" in html and "Sau — màu tự nhiên" not in html


def test_commune_summary(connection, seeded):
    data = report.commune_report(connection, "99123")
    assert (
        data["totals"]["alerts"] == 1
        and data["totals"]["high"] == 1
        and data["totals"]["reviewed"] == 1
    )
    confirmed = next(s for s in data["by_status"] if s["status"] == "confirmed")
    assert confirmed["high"] == 1 and confirmed["total"] == 1
    html = report.render_html(data)
    for expected in (
        "TỔNG HỢP CẢNH BÁO BIẾN ĐỘNG SỬ DỤNG ĐẤT",
        "Xã Liêm Thuận (99123)",
        "Công trình xây dựng",
        "LUC — Đất chuyên trồng lúa",
        "420,0",
        "12/38",
        OWNER,
        "Đã xác nhận vi phạm",
    ):
        assert expected in html, expected
    assert data["map"]["has_outline"] and len(data["map"]["markers"]) == 1
    # the pre-2025 commune code finds the same alerts
    assert report.commune_report(connection, "99001")["totals"]["alerts"] == 1


def test_reports_without_outlines_or_alerts(connection, seeded):
    # an alert in a commune whose outline is not stored: a locator around the parcel, said so
    connection.execute(text("UPDATE admin_units SET geom = NULL WHERE code = '99123'"))
    data = report.alert_report(connection, seeded["alert"])
    assert not data["maps"]["locator"]["has_outline"] and data["maps"]["locator"]["units"] == []
    assert "chưa có ranh giới xã, phường trong cơ sở dữ liệu" in report.render_html(data)
    # a commune with an outline and no alert: the summary says there is none
    connection.execute(
        text(
            "INSERT INTO admin_units (code, level, unit_type, name, name_ascii, valid_from, geom) VALUES "
            "('99124', 'commune', 'phường', 'Lê Hồng Phong', 'Le Hong Phong', '2025-07-01', "
            "ST_Multi(ST_MakeEnvelope(105.93, 20.50, 105.96, 20.53, 4326)))"
        )
    )
    empty = report.commune_report(connection, "99124")
    assert (
        empty["totals"]["alerts"] == 0
        and empty["map"]["has_outline"]
        and empty["map"]["zoom"] is None
    )
    html = report.render_html(empty)
    assert (
        "Phường Lê Hồng Phong (99124)" in html and "Không có cảnh báo nào ở xã, phường này" in html
    )


def test_unknown_alert_or_commune(connection):
    with pytest.raises(RecordNotFoundError, match="No parcel alert 987654321"):
        report.alert_report(connection, 987654321)
    with pytest.raises(RecordNotFoundError, match="No commune 00000"):
        report.commune_report(connection, "00000")


def test_cli_report_errors_are_one_line_exit_2(connection, seeded, tmp_path):
    runner = CliRunner()
    obj = SimpleNamespace(engine=lambda: connection)
    r = runner.invoke(land, ["report", "987654321"], obj=obj)
    assert r.exit_code == 2 and r.output.strip() == "Error: No parcel alert 987654321."
    r = runner.invoke(land, ["report", "--commune", "00000"], obj=obj)
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "00000" in r.output
    r = runner.invoke(land, ["report"], obj=obj)
    assert r.exit_code == 2 and "ALERT_ID or --commune" in r.output
    out = tmp_path / "commune.html"
    r = runner.invoke(
        land, ["report", "--commune", "99123", "--format", "html", "--out", str(out)], obj=obj
    )
    assert r.exit_code == 0, r.output
    assert "Xã Liêm Thuận (99123)" in out.read_text(encoding="utf-8")


@pytest.mark.chromium
@pytest.mark.slow
@pytest.mark.skipif(
    not report.find_chromium() or not shutil.which("pdftotext"),
    reason="needs Chromium and poppler-utils",
)
def test_alert_pdf_is_a4_with_vietnamese_text(connection, seeded, tmp_path):
    runner = CliRunner()
    out = tmp_path / "alert.pdf"
    r = runner.invoke(
        land,
        ["report", str(seeded["alert"]), "--out", str(out)],
        obj=SimpleNamespace(engine=lambda: connection),
    )
    assert r.exit_code == 0, r.output
    pdf = out.read_bytes()
    assert pdf.startswith(b"%PDF")
    boxes = {
        tuple(round(float(v)) for v in m.split())
        for m in re.findall(rb"/MediaBox\s*\[\s*([\d.\s]+?)\s*\]", pdf)
    }
    assert boxes == {(0, 0, 595, 842)}  # every page A4 portrait
    words = subprocess.run(
        ["pdftotext", "-layout", str(out), "-"], capture_output=True, check=True
    ).stdout
    words = unicodedata.normalize("NFC", words.decode("utf-8"))
    assert "99001/12/38" in words
    assert "Đất chuyên trồng lúa" in words and "Thảm thực vật" in words and OWNER in words
