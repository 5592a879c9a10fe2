"""Issue 14: the coverage collections stay a bounded list. Each stored scene could be its own
``imagery-scene-{id}`` collection, and a year of intake would list hundreds under
/collections; published are the scenes of the latest ``IOC_API_COVERAGE_RUNS`` runs and those
of runs with alerts still to review, and every stored scene keeps its map tiles.

A database of its own: four runs of the shipped sample (the after scene taken on four dates;
each run records its own two scenes)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from sqlalchemy import text

from tests.api.conftest import migrated_database

pytestmark = pytest.mark.postgis

REPO = Path(__file__).resolve().parents[2]
LAND = REPO / "data" / "land"


def _after_on(day: int, folder: Path) -> Path:
    """The sample after scene as taken on 2025-04-<day> (other bytes: another scene)."""
    out = folder / f"after_T48QXH_202504{day:02d}.tif"
    shutil.copy(LAND / "after_T48QXH_20250418.tif", out)
    with rasterio.open(out, "r+") as ds:
        b = ds.read(1)
        ds.write(np.where(b > 0, b + day, 0).astype(b.dtype), 1)
        ds.update_tags(ACQUISITION_DATE=f"2025-04-{day:02d}T03:31:21Z")
    return out


@pytest.fixture(scope="module")
def runs(database_url, tmp_path_factory):
    from gis.alerts import load_rules
    from gis.cadastre import import_cadastre
    from gis.change.detect import DetectionConfig, detect_changes
    from gis.change.store import store_run
    from gis.db.session import make_engine

    folder = tmp_path_factory.mktemp("scenes")
    state = tmp_path_factory.mktemp("state")
    with migrated_database(database_url, "ioc_imagery_coverages_test") as url:
        engine = make_engine(url)
        import_cadastre(engine, LAND / "sample_cadastre.gpkg")
        out = []
        for day in (10, 14, 18, 22):
            result = detect_changes(
                LAND / "before", _after_on(day, folder), DetectionConfig(method="cva")
            )
            stored = store_run(engine, result, load_rules(), state_dir=state)
            assert stored["alerts"] > 0
            out.append(stored["run_id"])
        with engine.begin() as conn:
            scenes = {
                r.id: (r.before_scene_id, r.after_scene_id)
                for r in conn.execute(
                    text("SELECT id, before_scene_id, after_scene_id FROM detection_runs")
                )
            }
            # the officers reviewed every alert of the first and third runs
            conn.execute(
                text(
                    "UPDATE parcel_alerts SET review_status = 'dismissed', reviewer = 'test' "
                    "WHERE run_id IN (:a, :b)"
                ),
                {"a": out[0], "b": out[2]},
            )
        yield url, engine, out, scenes
        engine.dispose()


def _published(coverages: dict) -> set[int]:
    return {int(k.removeprefix("imagery-scene-")) for k in coverages}


def test_published_scenes_are_the_latest_runs_and_the_open_alerts(runs):
    from api.imagery_routes import scene_coverages

    _, engine, ids, scenes = runs
    r1, r2, r3, r4 = ids
    assert len({s for r in ids for s in scenes[r]}) == 8  # each run records its two scenes

    def of(*run_ids) -> set[int]:
        return {s for r in run_ids for s in scenes[r]}

    # all runs: every scene
    assert _published(scene_coverages(engine, 10)) == of(r1, r2, r3, r4)
    # the latest run, and run 2 whose alerts are still to review; not runs 1 and 3
    assert _published(scene_coverages(engine, 1)) == of(r4, r2)
    assert _published(scene_coverages(engine, 2)) == of(r4, r3, r2)
    # none of the latest: only what officers still have to look at (runs 2 and 4)
    assert _published(scene_coverages(engine, 0)) == of(r2, r4)


def test_the_api_lists_the_bounded_set_and_keeps_every_scene_reachable(runs, monkeypatch):
    from starlette.testclient import TestClient

    from api.app import create_app
    from api.settings import ApiSettings

    url, engine, ids, scenes = runs
    r1, r2, r3, r4 = ids
    monkeypatch.setenv("IOC_API_COVERAGE_RUNS", "1")
    settings = ApiSettings(base_url="http://testserver")
    assert settings.coverage_runs == 1
    app = create_app(settings, url, engine=engine)
    with TestClient(app, raise_server_exceptions=False) as c:
        listed = {
            col["id"]
            for col in c.get("/collections?f=json").json()["collections"]
            if col["id"].startswith("imagery-scene-")
        }
        want = {*scenes[r4], *scenes[r2]}
        assert listed == {f"imagery-scene-{s}" for s in want}
        hidden = scenes[r1][1]  # the first run's after scene: reviewed, not among the latest
        r = c.get(f"/collections/imagery-scene-{hidden}/coverage?f=json")
        assert r.status_code == 404
        assert (
            f"Scene {hidden} is stored but not published" in r.json()["description"]
            and f"/imagery/{hidden}/tiles/" in r.json()["description"]
        )
        assert (
            c.get(f"/collections/imagery-scene-{scenes[r4][1]}/coverage?f=json").status_code == 200
        )
        # its map tiles are still served, as the chips of its alerts
        with engine.connect() as conn:
            lon, lat = conn.execute(
                text(
                    "SELECT ST_X(ST_Centroid(footprint)), ST_Y(ST_Centroid(footprint)) "
                    "FROM imagery_scenes WHERE id = :s"
                ),
                {"s": hidden},
            ).one()
            alert = conn.execute(
                text("SELECT min(id) FROM parcel_alerts WHERE run_id = :r"), {"r": r1}
            ).scalar()
        n = 2**16
        x = int((lon + 180) / 360 * n)
        y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
        r = c.get(f"/imagery/{hidden}/tiles/16/{x}/{y}.png")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert c.get(f"/imagery/runs/{r1}/after/tiles/16/{x}/{y}.png").status_code == 200
        r = c.get(f"/collections/parcel-alerts/items/{alert}/evidence/after.png")
        assert r.status_code == 200
        # an id that is no stored scene keeps the plain answer
        r = c.get("/collections/imagery-scene-987654/coverage")
        assert r.status_code == 404 and "named imagery-scene-" in r.json()["description"]
