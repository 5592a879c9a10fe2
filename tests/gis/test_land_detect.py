"""Change detection end to end on tiny real rasters: mask contract, tiling, Dask, detectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from gis.change.detect import DetectionConfig, change_kind, detect_changes
from gis.change.features import DIFF_SCALE_RANGE
from gis.change.models import (
    DEFAULT_MODELS,
    MODEL_DIR,
    CvaDetector,
    load_detector,
    otsu_threshold,
)
from gis.errors import ConfigurationError, InputFileError
from gis.land_cover import COVER_CODES, classify
from tests.gis._land_rasters import (
    BARE,
    BUILT,
    VEG,
    WATER,
    scene,
    write_band_folder,
    write_multiband,
)

CHANGED = (slice(20, 34), slice(30, 44))  # 14 x 14 px = 19,600 m²


@pytest.fixture
def pair(tmp_path):
    before = write_band_folder(tmp_path / "before", scene(64, seed=1))
    after = write_multiband(tmp_path / "after.tif", scene(64, seed=2, changed=CHANGED))
    return before, after


def test_cva_finds_the_built_square_and_writes_the_mask_contract(pair, tmp_path):
    before, after = pair
    # a nodata corner in AFTER
    with rasterio.open(after, "r+") as ds:
        data = ds.read()
        data[:, :4, -4:] = 0
        ds.write(data)
    mask_path = tmp_path / "out" / "mask.tif"
    mask_path.parent.mkdir()
    res = detect_changes(before, after, DetectionConfig(method="cva"), mask_out=mask_path)
    with (
        rasterio.open(mask_path) as m,
        rasterio.open(
            before / next(p.name for p in before.iterdir() if p.name.endswith("_B02.tif"))
        ) as b,
    ):
        mask = m.read(1)
        assert m.dtypes[0] == "uint8" and m.count == 1 and m.nodata == 255
        assert m.crs == b.crs and m.transform == b.transform and m.shape == b.shape
    assert set(np.unique(mask)) <= {0, 1, 255}
    assert (mask[:4, -4:] == 255).all()
    assert mask[CHANGED].mean() > 0.9
    outside = mask.copy()
    outside[CHANGED] = 0
    assert (outside == 1).sum() < 20
    big = max(res.features, key=lambda f: f["area_m2"])
    assert big["area_m2"] == pytest.approx(19_600, rel=0.1)
    assert (big["from_class"], big["to_class"], big["kind"]) == (
        "vegetation",
        "built_up",
        "conversion",
    )
    assert not list(tmp_path.glob("out/.*tmp"))  # temp file renamed


def test_a_change_is_cut_by_its_after_date_class(tmp_path):
    # one connected change: a house block (built-up) beside a cleared block (bare); they must
    # be two polygons, each with its own from -> to, not one polygon of the majority class
    before = write_multiband(tmp_path / "b.tif", scene(64, seed=1))
    # (rows 0-7, columns 0-15 are two vegetation blocks of the test landscape)
    img = scene(64, seed=2, changed=(slice(1, 8), slice(1, 8)), to=BUILT)
    img[:, 1:8, 8:15] = BARE[:, None, None]
    after = write_multiband(tmp_path / "a.tif", img)
    res = detect_changes(before, after, DetectionConfig(method="cva", tile=32))
    kinds = {(f["from_class"], f["to_class"]) for f in res.features if f["area_m2"] >= 3000}
    assert ("vegetation", "built_up") in kinds and ("vegetation", "bare") in kinds


def test_tiles_merge_across_edges(pair):
    before, after = pair
    whole = detect_changes(before, after, DetectionConfig(method="cva", tile=1024))
    tiled = detect_changes(before, after, DetectionConfig(method="cva", tile=16))
    assert tiled.stats["tiles"] == 16
    assert len(tiled.features) == len(whole.features)
    assert sum(f["area_m2"] for f in tiled.features) == pytest.approx(
        sum(f["area_m2"] for f in whole.features), rel=0.02
    )


def test_minimum_mapping_unit_drops_small_patches(tmp_path):
    # a 2 x 2 px (400 m²) house in a vegetation block (rows/cols 8-15), nothing else changes
    before = write_multiband(tmp_path / "b.tif", scene(48, seed=1))
    after = write_multiband(
        tmp_path / "a.tif", scene(48, seed=2, changed=(slice(10, 12), slice(10, 12)))
    )
    kept = detect_changes(before, after, DetectionConfig(method="cva", min_mapping_unit_m2=0))
    dropped = detect_changes(before, after, DetectionConfig(method="cva", min_mapping_unit_m2=500))
    assert [f["n_pixels"] for f in kept.features] == [4]
    assert kept.features[0]["area_m2"] == pytest.approx(400)
    assert dropped.features == []


def test_dask_local_cluster_gives_the_same_result(pair):
    from dask.distributed import Client, LocalCluster

    before, after = pair
    local = detect_changes(before, after, DetectionConfig(method="cva", tile=32))
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        remote = detect_changes(
            before, after, DetectionConfig(method="cva", tile=32), client=client
        )
    assert remote.stats["change_pixels"] == local.stats["change_pixels"]
    assert len(remote.features) == len(local.features)


@pytest.mark.skipif(not (MODEL_DIR / DEFAULT_MODELS["cnn"]).exists(), reason="no shipped CNN")
def test_shipped_cnn_runs_with_onnxruntime(pair):
    det = load_detector("cnn")
    rng = np.random.default_rng(0)
    b = rng.standard_normal((10, 37, 45)).astype(np.float32)
    a = b + rng.normal(0, 0.3, b.shape).astype(np.float32)
    det.fit(b, a, np.ones(b.shape[1:], bool))
    p = det.probability(b, a)
    assert p.shape == (37, 45) and ((p >= 0) & (p <= 1)).all()
    res = detect_changes(*pair, DetectionConfig(method="cnn"))
    assert res.model_version == Path(DEFAULT_MODELS["cnn"]).stem


@pytest.mark.skipif(not (MODEL_DIR / DEFAULT_MODELS["cnn"]).exists(), reason="no shipped CNN")
def test_cnn_test_time_augmentation_is_flip_equivariant():
    # The mean over the four flips must map back to the right pixels: flipping the input
    # flips the output exactly (a single view of a CNN does not have this property).
    tta = load_detector("cnn", tta=True)
    rng = np.random.default_rng(1)
    b = rng.standard_normal((10, 24, 40)).astype(np.float32)
    a = b + rng.standard_normal((10, 24, 40)).astype(np.float32)
    scale = tta.fit(b, a, np.ones(b.shape[1:], bool))
    p = tta.probability(b, a)
    for axis in (1, 2):
        flipped = tta.probability(np.flip(b, axis).copy(), np.flip(a, axis).copy())
        np.testing.assert_allclose(np.flip(flipped, axis - 1), p, atol=1e-5)
    single = load_detector("cnn")
    single.diff_scale = scale
    assert not np.allclose(single.probability(b, a), p, atol=1e-5)


@pytest.mark.skipif(not (MODEL_DIR / DEFAULT_MODELS["cnn"]).exists(), reason="no shipped CNN")
def test_shipped_cnn_reads_change_relative_to_the_scene_noise():
    # The shipped CNN sees only the differences, scaled by the pair's no-change level: a pair
    # whose every difference is 1.5 times larger (a hazier or more seasonal scene) gives the
    # same map, and the scale travels with the detector to Dask workers. An unusually clean
    # pair is not blown up beyond what the model saw in training.
    import pickle

    rng = np.random.default_rng(2)
    b = rng.standard_normal((10, 40, 48)).astype(np.float32)
    delta = rng.normal(0, 0.3, b.shape).astype(np.float32)
    delta[:, 10:20, 10:20] += 3.0  # a changed block
    valid = np.ones(b.shape[1:], bool)
    det = load_detector("cnn")
    assert det.needs_scene_fit and det.diff_only
    with pytest.raises(ConfigurationError, match="call fit"):
        det.probability(b, b + delta)
    det.fit(b, b + delta, valid)
    p1 = det.probability(b, b + delta)
    det.fit(b, b + 1.5 * delta, valid)
    np.testing.assert_allclose(det.probability(b, b + 1.5 * delta), p1, atol=1e-4)
    remote = pickle.loads(pickle.dumps(det))
    assert remote.diff_scale == det.diff_scale
    np.testing.assert_allclose(remote.probability(b, b + 1.5 * delta), p1, atol=1e-4)
    assert p1[10:20, 10:20].mean() > p1[25:, 25:].mean()
    assert det.fit(b, b + 0.05 * delta, valid) == DIFF_SCALE_RANGE[1]


@pytest.mark.skipif(not (MODEL_DIR / "change_gbm_v1.joblib").exists(), reason="no shipped GBM")
def test_shipped_gbm_runs(pair):
    res = detect_changes(*pair, DetectionConfig(method="gbm"))
    assert res.method == "gbm" and res.stats["valid_pixels"] > 0


def test_unknown_method_and_missing_model(tmp_path):
    with pytest.raises(ConfigurationError, match="Unknown change detection method"):
        load_detector("magic")
    with pytest.raises(ConfigurationError, match="not found"):
        load_detector("cnn", model_path=tmp_path / "none.onnx")


def test_missing_band_in_after_is_one_clear_error(tmp_path):
    before = write_multiband(tmp_path / "b.tif", scene(16))
    after = write_band_folder(tmp_path / "after", scene(16), skip=("B04",))
    with pytest.raises(InputFileError, match=r"after: missing band\(s\) B04"):
        detect_changes(before, after, DetectionConfig(method="cva"))


def test_land_cover_rules():
    bands = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
    bare = np.array([1100, 1400, 1700, 1900, 2100, 2250, 2350, 2450, 3000, 2500], np.float32)
    px = np.stack([VEG, BUILT, WATER, bare], axis=1)[:, None, :]
    codes = classify(px, bands, np.ones((1, 4), bool))
    assert codes.tolist() == [[COVER_CODES[c] for c in ("vegetation", "built_up", "water", "bare")]]


def test_change_kind_seasonal_vs_conversion():
    assert change_kind("water", "vegetation") == "seasonal"  # flooded paddy → green rice
    assert change_kind("vegetation", "bare") == "seasonal"  # harvest
    assert change_kind("vegetation", "built_up") == "conversion"
    assert change_kind("built_up", "built_up") == "other"


def _noisy_pair(noise: float, changed_share: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    before = rng.normal(0, 1, (4, 200, 200)).astype(np.float32)
    after = before + rng.normal(0, noise, before.shape).astype(np.float32)
    truth = np.zeros((200, 200), bool)
    truth.flat[: int(truth.size * changed_share)] = True
    after[:, truth] += 3.0  # a land-cover change: a large step in every band
    return before, after, truth


@pytest.mark.parametrize("noise", [0.1, 0.3])
def test_cva_noise_rule_follows_the_scene_noise_level(noise):
    # rare change (1 %), as in real scenes: the threshold sits above the no-change noise
    # whatever its level, so neither the noise nor the change is misread
    before, after, truth = _noisy_pair(noise, 0.01)
    valid = np.ones(truth.shape, bool)
    det = CvaDetector(rule="noise")
    det.fit(before, after, valid)
    found = det.probability(before, after) > 0.5
    assert found[truth].mean() > 0.95
    assert found[~truth].mean() < 0.005


def test_cva_rules_on_a_pair_without_change():
    # Otsu always splits the histogram in two, so a pair with no change still gets "change";
    # the noise rule flags almost nothing (noise 0.6: magnitudes above CVA's floor)
    before, after, _ = _noisy_pair(0.6, 0.0)
    valid = np.ones(before.shape[1:], bool)
    flagged = {}
    for rule in ("noise", "otsu"):
        det = CvaDetector(rule=rule)
        det.fit(before, after, valid)
        flagged[rule] = float((det.probability(before, after) > 0.5).mean())
    assert flagged["noise"] < 0.001
    assert flagged["otsu"] > 0.05
    with pytest.raises(ConfigurationError, match="Unknown CVA threshold rule"):
        CvaDetector(rule="magic")


def test_otsu_separates_two_modes():
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.normal(1, 0.2, 5000), rng.normal(5, 0.5, 500)])
    assert 1.5 < otsu_threshold(v) < 4.5


@pytest.mark.parametrize("offset", [0, 300])
def test_cva_finds_no_change_between_an_image_and_itself(tmp_path, offset):
    # issue 12: `ioc land detect A A --method cva` flagged 100 % change (a threshold of 0 on a
    # magnitude of 0); a constant offset in every band is removed by the per-image
    # normalisation and is no change either
    data = scene(64, seed=1)
    before = write_multiband(tmp_path / "a.tif", data)
    after = before if not offset else write_multiband(tmp_path / "b.tif", data + offset)
    res = detect_changes(before, after, DetectionConfig(method="cva"))
    assert res.stats["change_pixels"] == 0 and res.features == []
    # the clean (nearly noise-free) pair still shows a real change
    changed = write_multiband(tmp_path / "c.tif", scene(64, seed=1, changed=CHANGED))
    res = detect_changes(before, changed, DetectionConfig(method="cva"))
    assert 150 < res.stats["change_pixels"] < 260


def test_cva_threshold_has_a_floor():
    img = np.random.default_rng(0).normal(0, 1, (4, 50, 50)).astype(np.float32)
    det = CvaDetector()
    assert det.fit(img, img, np.ones((50, 50), bool)) == CvaDetector.MIN_THRESHOLD
    assert not (det.probability(img, img) >= 0.5).any()
    tiny = img + np.float32(1e-3) * np.random.default_rng(1).normal(size=img.shape).astype(
        np.float32
    )
    det.fit(img, tiny, np.ones((50, 50), bool))
    assert not (det.probability(img, tiny) >= 0.5).any()
