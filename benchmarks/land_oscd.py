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
    ap.add_argument("--models-dir", type=Path, default=ROOT / ".state" / "oscd_loco",
                    help="cnn: <city>.onnx per held-out city; gbm: <city>.joblib (else trained)")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--mmu", type=float, default=300.0, help="minimum mapping unit, m²")
    ap.add_argument("--tta", action="store_true", help="cnn: average the four flips")
    ap.add_argument("--cva-rule", choices=["noise", "otsu"], default="noise",
                    help="cva: threshold at 4 × the scene's median magnitude, or Otsu")
    ap.add_argument("--cities", nargs="*", default=list(CITIES))
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = ap.parse_args(argv)

    rows = []
    tot = [0, 0, 0]
    samples = None
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for city in args.cities:
            model = None
            if args.method == "cnn":
                model = args.models_dir / f"{city}.onnx"
                if not model.exists():
                    print(f"{city}: no fold model {model}; train it with scripts/"
                          f"train_change_model.py --holdout {city}", file=sys.stderr)
                    return 1
            elif args.method == "gbm":
                model = args.models_dir / f"{city}.joblib"
                if not model.exists():
                    import joblib

                    from gis.change.gbm import train_gbm, training_sample

                    if samples is None:  # every city's pixel sample, read once
                        samples = {c: training_sample(args.oscd, [c]) for c in CITIES}
                    model.parent.mkdir(parents=True, exist_ok=True)
                    joblib.dump(train_gbm(args.oscd, holdout=[city], samples=samples), model)
            cfg = DetectionConfig(method=args.method, model_path=model,
                                  threshold=args.threshold, min_mapping_unit_m2=args.mmu,
                                  tta=args.tta, cva_rule=args.cva_rule)
            mask_path = Path(tmp) / f"{city}.tif"
            t = time.perf_counter()
            detect_changes(args.oscd / city / "imgs_1", args.oscd / city / "imgs_2", cfg,
                           mask_out=mask_path)
            with rasterio.open(mask_path) as ds:
                pred = ds.read(1) == 1
            label = load_label(args.oscd, city)
            tp = int((pred & label).sum())
            fp = int((pred & ~label).sum())
            fn = int((~pred & label).sum())
            tot = [tot[0] + tp, tot[1] + fp, tot[2] + fn]
            p, r, f = prf(tp, fp, fn)
            rows.append({"city": city, "precision": round(p, 4), "recall": round(r, 4),
                         "f1": round(f, 4), "tp": tp, "fp": fp, "fn": fn,
                         "seconds": round(time.perf_counter() - t, 2)})
            print(f"{city:12s} P {p:.3f}  R {r:.3f}  F1 {f:.3f}  "
                  f"(tp {tp}, fp {fp}, fn {fn}, {rows[-1]['seconds']} s)", flush=True)
    p, r, f = prf(*tot)
    mean_f1 = sum(row["f1"] for row in rows) / len(rows)
    method = args.method + (" +tta" if args.tta else "")
    if args.method == "cva":
        method += f" ({args.cva_rule} rule)"
    print(f"{'POOLED':12s} P {p:.3f}  R {r:.3f}  F1 {f:.3f}   (mean per-city F1 {mean_f1:.3f}; "
          f"method {method}, threshold {args.threshold}, mmu {args.mmu} m², "
          f"{time.perf_counter() - t0:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({
            "method": args.method, "tta": args.tta, "cva_rule": args.cva_rule,
            "threshold": args.threshold, "mmu_m2": args.mmu,
            "cities": rows, "pooled": {"precision": round(p, 4), "recall": round(r, 4),
                                       "f1": round(f, 4)},
            "mean_city_f1": round(mean_f1, 4)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
