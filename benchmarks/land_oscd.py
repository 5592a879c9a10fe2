"""OSCD leave-one-city-out accuracy of the change detectors (pixel level, change class).

For each of the 8 cities, the model trained WITHOUT that city predicts it through the product's
own path (``gis.change.detect.detect_changes`` with its defaults: threshold 0.5, minimum mapping
unit 300 m², the ``--mask-out`` raster), and the mask is compared with the label. Masked pixels
(nodata/cloud, 255) count as "no change". Prints per-city and pooled precision, recall, F1.

    # CNN: one ONNX model per held-out city (scripts/train_change_model.py --holdout CITY)
    .venv/bin/python benchmarks/land_oscd.py --method cnn --models-dir .state/oscd_loco
    # gradient boosting: trained per fold here (a few minutes)
    .venv/bin/python benchmarks/land_oscd.py --method gbm
    # unsupervised change vector analysis (threshold 4 × scene median magnitude, or Otsu)
    .venv/bin/python benchmarks/land_oscd.py --method cva [--cva-rule otsu]
    # one model for every city (e.g. the shipped one: NOT held out, it was trained on them)
    .venv/bin/python benchmarks/land_oscd.py --method cnn --model gis/models/change_cnn_v3.onnx
    # confidence calibration: isotonic fit of the polygons' true change share on their raw
    # score, leave-one-city-out Brier score printed, map fitted on all cities written
    .venv/bin/python benchmarks/land_oscd.py --method cva \
        --calibration-out gis/models/cva-noise4-v3.calibration.json
    # what a detector flags on the 10 unlabelled OSCD test cities (share of valid pixels)
    .venv/bin/python benchmarks/land_oscd.py --method cva --unlabelled

OSCD labels are CC BY-NC-SA and are only read from ../shared/data/oscd.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import rasterio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gis.change.detect import DetectionConfig, detect_changes  # noqa: E402
from gis.change.oscd import CITIES, load_label  # noqa: E402


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--oscd", type=Path, default=ROOT.parent / "shared" / "data" / "oscd")
    ap.add_argument("--method", choices=["cnn", "gbm", "cva"], default="cnn")
    ap.add_argument(
        "--models-dir",
        type=Path,
        default=ROOT / ".state" / "oscd_loco",
        help="cnn: <city>.onnx per held-out city; gbm: <city>.joblib (else trained)",
    )
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--mmu", type=float, default=300.0, help="minimum mapping unit, m²")
    ap.add_argument("--tta", action="store_true", help="cnn: average the four flips")
    ap.add_argument(
        "--cva-rule",
        choices=["noise", "otsu"],
        default="noise",
        help="cva: threshold at 4 × the scene's median magnitude, or Otsu",
    )
    ap.add_argument(
        "--model",
        type=Path,
        help="one model file for every city instead of --models-dir's fold models "
        "(not held out if the model was trained on these cities)",
    )
    ap.add_argument(
        "--calibration-out",
        type=Path,
        help="fit the confidence calibration on the cities' polygons and write it",
    )
    ap.add_argument(
        "--calibration-for",
        metavar="VERSION",
        help="with --models-dir: the model version the calibration is for (e.g. change_cnn_v3, "
        "the shipped model of the fold models' recipe); the fold models' scores are out of "
        "fold, so the map is too",
    )
    ap.add_argument(
        "--unlabelled",
        nargs="?",
        const=ROOT.parent / "shared" / "data" / "oscd-unlabelled",
        type=Path,
        metavar="DIR",
        help="instead: the share of valid pixels flagged on each unlabelled city",
    )
    ap.add_argument("--cities", nargs="*", default=None)
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = ap.parse_args(argv)
    if (
        args.calibration_out
        and args.method == "cnn"
        and not args.model
        and not args.calibration_for
    ):
        ap.error(
            "--calibration-out with fold models needs --calibration-for VERSION: the fold "
            "models are named after their held-out city, not after the model the map is for"
        )
    if args.unlabelled:
        return flagged_share(args)
    args.cities = args.cities or list(CITIES)

    rows = []
    tot = [0, 0, 0]
    samples = None
    polygons: list[dict] = []
    version = None
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for city in args.cities:
            model = args.model
            if args.method == "cnn" and model is None:
                model = args.models_dir / f"{city}.onnx"
                if not model.exists():
                    print(
                        f"{city}: no fold model {model}; train it with scripts/"
                        f"train_change_model.py --holdout {city}",
                        file=sys.stderr,
                    )
                    return 1
            elif args.method == "gbm" and model is None:
                model = args.models_dir / f"{city}.joblib"
                if not model.exists():
                    import joblib

                    from gis.change.gbm import train_gbm, training_sample

                    if samples is None:  # every city's pixel sample, read once
                        samples = {c: training_sample(args.oscd, [c]) for c in CITIES}
                    model.parent.mkdir(parents=True, exist_ok=True)
                    joblib.dump(train_gbm(args.oscd, holdout=[city], samples=samples), model)
            cfg = DetectionConfig(
                method=args.method,
                model_path=model,
                threshold=args.threshold,
                min_mapping_unit_m2=args.mmu,
                tta=args.tta,
                cva_rule=args.cva_rule,
                calibration="none" if args.calibration_out else "auto",
            )
            mask_path = Path(tmp) / f"{city}.tif"
            t = time.perf_counter()
            res = detect_changes(
                args.oscd / city / "imgs_1", args.oscd / city / "imgs_2", cfg, mask_out=mask_path
            )
            if version is None:
                version = res.model_version
            with rasterio.open(mask_path) as ds:
                pred = ds.read(1) == 1
            label = load_label(args.oscd, city)
            polygons.extend(polygon_truth(res, label, city))
            tp = int((pred & label).sum())
            fp = int((pred & ~label).sum())
            fn = int((~pred & label).sum())
            tot = [tot[0] + tp, tot[1] + fp, tot[2] + fn]
            p, r, f = prf(tp, fp, fn)
            rows.append(
                {
                    "city": city,
                    "precision": round(p, 4),
                    "recall": round(r, 4),
                    "f1": round(f, 4),
                    "tp": tp,
                    "fp": fp,
                    "fn": fn,
                    "seconds": round(time.perf_counter() - t, 2),
                }
            )
            print(
                f"{city:12s} P {p:.3f}  R {r:.3f}  F1 {f:.3f}  "
                f"(tp {tp}, fp {fp}, fn {fn}, {rows[-1]['seconds']} s)",
                flush=True,
            )
    p, r, f = prf(*tot)
    mean_f1 = sum(row["f1"] for row in rows) / len(rows)
    method = args.method + (" +tta" if args.tta else "")
    if args.method == "cva":
        method += f" ({args.cva_rule} rule)"
    print(
        f"{'POOLED':12s} P {p:.3f}  R {r:.3f}  F1 {f:.3f}   (mean per-city F1 {mean_f1:.3f}; "
        f"method {method}, threshold {args.threshold}, mmu {args.mmu} m², "
        f"{time.perf_counter() - t0:.0f} s)"
    )
    if args.calibration_out:
        fit_calibration(polygons, args, version, argv)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "method": args.method,
                    "tta": args.tta,
                    "cva_rule": args.cva_rule,
                    "threshold": args.threshold,
                    "mmu_m2": args.mmu,
                    "cities": rows,
                    "pooled": {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4)},
                    "mean_city_f1": round(mean_f1, 4),
                },
                indent=1,
            )
        )
    return 0


def polygon_truth(res, label, city: str) -> list[dict]:
    """Per change polygon: raw score, pixels and pixels labelled change (on the label grid)."""
    import numpy as np
    from rasterio.features import rasterize

    if not res.features:
        return []
    ids = rasterize(
        [(f["geometry"], i) for i, f in enumerate(res.features, start=1)],
        out_shape=label.shape,
        transform=res.grid.transform,
        fill=0,
        dtype="int32",
    )
    n = np.bincount(ids.ravel(), minlength=len(res.features) + 1)
    pos = np.bincount(
        ids.ravel(), weights=label.ravel().astype(float), minlength=len(res.features) + 1
    )
    return [
        {"city": city, "raw": f["confidence"], "n": int(n[i]), "pos": float(pos[i])}
        for i, f in enumerate(res.features, start=1)
        if n[i] > 0
    ]


def fit_calibration(polygons: list[dict], args, version: str, argv) -> None:
    """Leave-one-city-out isotonic calibration (Brier score of the held-out cities' polygons
    against their raw score), then the map fitted on every city, written next to the model."""
    import numpy as np

    from gis.change.calibration import (
        Calibration,
        brier,
        fit_isotonic,
        provenance,
        save_calibration,
    )

    version = args.calibration_for or version
    raw = np.array([p["raw"] for p in polygons])
    n = np.array([p["n"] for p in polygons], float)
    share = np.array([p["pos"] / p["n"] for p in polygons])
    city = np.array([p["city"] for p in polygons])
    oof = np.full(raw.shape, np.nan)
    for c in np.unique(city):
        train = city != c
        x, y = fit_isotonic(raw[train], share[train], n[train])
        oof[~train] = Calibration(x, y, version).apply(raw[~train])
    b_raw, b_oof = brier(raw, share, n), brier(oof, share, n)
    rho = _spearman(oof, share)
    print(
        f"calibration: {len(raw)} polygons; pixel-weighted Brier score raw {b_raw:.4f}, "
        f"calibrated out of fold (leave-one-city-out) {b_oof:.4f}; Spearman rho of the "
        f"calibrated confidence with the true change share {rho:.3f}"
    )
    x, y = fit_isotonic(raw, share, n)
    cmd = "benchmarks/land_oscd.py " + " ".join(argv if argv is not None else sys.argv[1:])
    cal = Calibration(
        x,
        y,
        version,
        provenance(
            args.method,
            "OSCD (8 labelled cities, labels CC BY-NC-SA 4.0)",
            sorted(set(city)),
            out_of_fold=args.method == "cva" or args.model is None,
            command=cmd,
            polygons=len(raw),
            brier_raw=round(b_raw, 4),
            brier_calibrated_loco=round(b_oof, 4),
            threshold=args.threshold,
            mmu_m2=args.mmu,
        ),
    )
    print(f"calibration written to {save_calibration(cal, args.calibration_out)}")


def _spearman(a, b) -> float:
    import numpy as np
    from scipy.stats import spearmanr

    ok = np.isfinite(a) & np.isfinite(b)
    return float(spearmanr(a[ok], b[ok]).statistic) if ok.sum() > 2 else float("nan")


def flagged_share(args) -> int:
    """What a detector flags on each unlabelled city: share of valid pixels, polygons, time."""
    root = args.unlabelled
    cities = args.cities or sorted(p.name for p in root.iterdir() if (p / "imgs_1").is_dir())
    cfg = DetectionConfig(
        method=args.method,
        model_path=args.model,
        threshold=args.threshold,
        min_mapping_unit_m2=args.mmu,
        tta=args.tta,
        cva_rule=args.cva_rule,
    )
    rows = []
    for city in cities:
        t = time.perf_counter()
        res = detect_changes(root / city / "imgs_1", root / city / "imgs_2", cfg)
        share = res.stats["change_fraction"]
        rows.append(
            {
                "city": city,
                "flagged_share": share,
                "polygons": res.stats["polygons"],
                "seconds": round(time.perf_counter() - t, 1),
            }
        )
        print(
            f"{city:12s} flagged {share * 100:6.2f} % of valid pixels, "
            f"{res.stats['polygons']} polygons ({rows[-1]['seconds']} s)",
            flush=True,
        )
    import numpy as np

    shares = [r["flagged_share"] for r in rows]
    print(
        f"{'MEDIAN':12s} {np.median(shares) * 100:6.2f} %  (max {max(shares) * 100:.2f} %; "
        f"method {args.method}{' +tta' if args.tta else ''})"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"method": args.method, "tta": args.tta, "cities": rows}, indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
