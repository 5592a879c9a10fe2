"""The watch folder on a real PostGIS: deliveries still being written are left alone, settled
ones are recorded and moved to processed/ (and detected), bad ones go to rejected/ with a
``.reason.txt`` naming what is wrong."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio.shutil
from sqlalchemy import text

from gis.cadastre import import_cadastre
from gis.intake import IntakeSettings, poll
from gis.settings import LandSettings
from tests.gis._land_rasters import scene, write_band_folder, write_multiband

pytestmark = pytest.mark.postgis

REPO = Path(__file__).resolve().parents[3]
LAND = REPO / "data" / "land"
AFTER = LAND / "after_T48QXH_20250418.tif"


def _settings(watch: Path, **kw) -> IntakeSettings:
    base = {"watch_dir": watch, "watch_settle_s": 3600, "detect": False}
    base.update(kw)
    return IntakeSettings(_env_file=None, **base)


def _watch_rows(conn) -> dict[str, dict]:
    rows = conn.execute(text("SELECT * FROM imagery_intake WHERE source = 'watch'")).mappings()
    return {r["item_id"].split("@")[0]: dict(r) for r in rows}


def test_settled_deliveries_are_processed_and_the_pair_detected(connection, tmp_path):
    watch = tmp_path / "watch"
    watch.mkdir()
    shutil.copytree(LAND / "before", watch / "T48QXH_20240420T033121")
    shutil.copy(AFTER, watch / AFTER.name)
    import_cadastre(connection, LAND / "sample_cadastre.gpkg")
    settings = _settings(watch, detect=True)
    land = LandSettings(_env_file=None, detector="cva")

    # first sight of fresh files: left alone, nothing moved or recorded
    w, det = poll(connection, settings, land=land)
    assert (w.discovered, w.waiting, w.processed) == (2, 2, 0) and det.detections == 0
    assert (watch / AFTER.name).exists() and not _watch_rows(connection)

    # unchanged since the last poll: taken
    w, det = poll(connection, settings, land=land)
    assert (w.processed, w.rejected, w.waiting) == (2, 0, 0), w.details
    assert sorted(p.name for p in (watch / "processed").iterdir()) == sorted(
        ["T48QXH_20240420T033121", AFTER.name]
    )
    assert not (watch / AFTER.name).exists()
    rows = _watch_rows(connection)
    assert rows[AFTER.name]["status"] == "processed"
    assert rows[AFTER.name]["local_path"] == str(watch / "processed" / AFTER.name)
    assert rows["T48QXH_20240420T033121"]["acquired_at"].year == 2024
    assert rows["T48QXH_20240420T033121"]["usable_share"] < 1.0  # its SCL has a cloud
    # same season a year apart: detected, with the planted parcel alerts
    assert det.detections == 1 and det.alerts >= 1, det.details
    run_id = det.details[0]["run_id"]
    rules = {
        tuple(r)
        for r in connection.execute(
            text(
                "SELECT p.land_use_code_raw, a.rule FROM parcel_alerts a JOIN parcels p "
                "ON p.id = a.parcel_id WHERE a.run_id = :r"
            ),
            {"r": run_id},
        )
    }
    assert ("LUC", "rice_land_lost") in rules

    # the next poll finds nothing new and detects nothing twice
    w, det = poll(connection, settings, land=land)
    assert (w.discovered, w.processed, det.detections) == (0, 0, 0)


def test_a_file_still_being_written_is_left_alone(connection, tmp_path):
    watch = tmp_path / "watch"
    watch.mkdir()
    data = AFTER.read_bytes()
    growing = watch / "S2_20250418_growing.tif"
    growing.write_bytes(data[: len(data) // 3])
    partial = watch / "S2_20250418_copy.tif.partial"
    partial.write_bytes(data)
    settings = _settings(watch)

    (w,) = poll(connection, settings)
    assert (w.waiting, w.processed, w.rejected) == (2, 0, 0)
    with open(growing, "ab") as f:  # the copy goes on between the polls
        f.write(data[len(data) // 3 : 2 * len(data) // 3])
    (w,) = poll(connection, settings)
    assert (w.waiting, w.processed, w.rejected) == (2, 0, 0)
    assert growing.exists() and partial.exists() and not _watch_rows(connection)
    with open(growing, "ab") as f:
        f.write(data[2 * len(data) // 3 :])
    partial.rename(watch / "S2_20250418_copy.tif")  # the .partial convention: renamed when done

    (w,) = poll(connection, settings)  # both seen complete once: still waiting
    assert (w.waiting, w.processed) == (2, 0)
    (w,) = poll(connection, settings)
    assert (w.waiting, w.processed, w.rejected) == (0, 2, 0), w.details
    assert {p.name for p in (watch / "processed").iterdir()} == {
        "S2_20250418_growing.tif",
        "S2_20250418_copy.tif",
    }
    assert not (watch / ".ioc-intake-watch.json").exists()  # nothing waits: no state left


def test_bad_deliveries_are_rejected_with_the_reason(connection, tmp_path):
    watch = tmp_path / "watch"
    watch.mkdir()
    (watch / "notes.txt").write_text("scenes of April")
    data = AFTER.read_bytes()
    (watch / "S2_20250418_truncated.tif").write_bytes(data[: int(len(data) * 0.6)])
    # a COG cut short: its header (at the start) opens, its last tiles are gone
    rasterio.shutil.copy(AFTER, tmp_path / "cog.tif", driver="COG", BLOCKSIZE=32)
    cog = (tmp_path / "cog.tif").read_bytes()
    (watch / "S2_20250418_cut_cog.tif").write_bytes(cog[: int(len(cog) * 0.6)])
    write_multiband(watch / "no_date.tif", scene(32))
    clouded = np.full((16, 16), 9, dtype=np.uint8)
    write_band_folder(watch / "T48QXH_20250110T033121", scene(32), scl=clouded)
    (watch / "empty_folder").mkdir()
    (watch / "empty_folder" / "readme.md").write_text("nothing")
    settings = _settings(watch, watch_settle_s=0)  # taken at first sight

    (w,) = poll(connection, settings)

    assert (w.rejected, w.processed) == (6, 0), w.details
    rejected = watch / "rejected"
    expected = {
        "notes.txt": "not a GeoTIFF",
        "S2_20250418_truncated.tif": "not a readable raster",
        "S2_20250418_cut_cog.tif": "cannot be read to the end (truncated or corrupt",
        "no_date.tif": "acquisition date unknown",
        "T48QXH_20250110T033121": "only 0% of the scene is usable",
        "empty_folder": "no band files found",
    }
    rows = _watch_rows(connection)
    for name, words in expected.items():
        assert (rejected / name).exists(), name
        reason = (rejected / f"{name}.reason.txt").read_text(encoding="utf-8")
        assert words in reason, (name, reason)
        assert rows[name]["status"] == "rejected" and words in rows[name]["reason"]
    assert not (watch / "processed").exists()
    assert sorted(p.name for p in watch.iterdir() if not p.name.startswith(".")) == ["rejected"]


def test_missing_watch_folder_is_one_clear_error(connection, tmp_path):
    (w,) = poll(connection, _settings(tmp_path / "nowhere"))
    assert w.error == f"watch folder {tmp_path / 'nowhere'} does not exist"


def test_database_down_puts_the_delivery_back(tmp_path):
    """A delivery taken while the database cannot record it goes back into the watch folder
    (taken at the next poll), never left in processed/ unrecorded."""
    import socket

    from sqlalchemy.exc import OperationalError

    from gis.db.session import make_engine

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = make_engine(
        f"postgresql://ioc:x@127.0.0.1:{port}/ioc", connect_args={"connect_timeout": 2}
    )
    watch = tmp_path / "watch"
    watch.mkdir()
    shutil.copy(AFTER, watch / AFTER.name)
    try:
        with pytest.raises(OperationalError):
            poll(engine, _settings(watch, watch_settle_s=0))
    finally:
        engine.dispose()
    assert (watch / AFTER.name).exists()
    assert not (watch / "processed" / AFTER.name).exists()
