"""Train the gradient-boosting change fallback on OSCD and save it with joblib.

.venv/bin/python scripts/train_change_gbm.py --out gis/models/change_gbm_v1.joblib
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import joblib

from gis.change.gbm import train_gbm

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--oscd", type=Path, default=ROOT.parent / "shared" / "data" / "oscd")
    p.add_argument("--holdout", action="append", default=[])
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    model = train_gbm(args.oscd, args.holdout)
    tmp = args.out.with_name(args.out.name + ".tmp")
    joblib.dump(model, tmp, compress=3)
    os.replace(tmp, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
