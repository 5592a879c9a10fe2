"""Train the CNN change detector (FC-EF-class U-Net) on OSCD and export it to ONNX.

Runs in the separate training environment (CPU torch; the product needs onnxruntime only):

    ~/.pyenv/versions/3.11.7/bin/python -m venv .venv-train
    .venv-train/bin/pip install torch==2.13.0 numpy rasterio onnx onnxruntime  # onnxruntime: --teacher
    # the shipped model (v3: the difference only, scaled by the pair's no-change level):
    .venv-train/bin/python scripts/train_change_model.py --steps 2400 --batch 16 --patch 64 \
        --pos-share 0.3 --pos-weight 1.5 --dice-weight 0.5 --jitter 0.2 \
        --diff-norm scene-median --diff-only --threads 2 --out gis/models/change_cnn_v3.onnx

    # leave-one-city-out fold (model for benchmarks/land_oscd.py), same recipe, 1200 steps:
    .venv-train/bin/python scripts/train_change_model.py --steps 1200 --batch 16 --patch 64 \
        --pos-share 0.3 --pos-weight 1.5 --dice-weight 0.5 --jitter 0.2 \
        --diff-norm scene-median --diff-only --eval-every 1200 --holdout paris \
        --out .state/oscd_loco_s0/paris.onnx

    # self-training fold (issue 14): the fold's own model (above) as the teacher; the ten
    # unlabelled OSCD test cities and the held-out city's images (never its labels) are
    # pseudo-labelled where teacher and CVA agree, uncertain pixels left out of the loss:
    .venv-train/bin/python scripts/train_change_model.py --steps 1200 --batch 16 --patch 64 \
        --pos-share 0.3 --pos-weight 1.5 --dice-weight 0.5 --jitter 0.2 \
        --diff-norm scene-median --diff-only --eval-every 1200 --holdout paris \
        --unlabelled ../shared/data/oscd-unlabelled --transductive \
        --teacher .state/oscd_loco_s0/paris.onnx --pseudo-hi 0.6 --pseudo-lo 0.2 \
        --pseudo-weight 0.5 --out .state/oscd_loco_st/paris.onnx

    # earlier recipes (measured, see gis/models/MODEL_CARD.md): v2 = the same without
    # --diff-norm/--diff-only; "v2 long" = v2 with --steps 5000 --pos-weight 2 --jitter 0.1
    # --ema 0.995

The images are read with the product's own reader (gis.imagery: same bands, same resampling onto
the 10 m grid of the earlier image, same per-image normalisation), so training and inference see
the same inputs. OSCD labels are CC BY-NC-SA: they are read here, never copied.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gis.change.features import (  # noqa: E402
    change_magnitude,
    model_input,
    noise_level,
    scale_for_noise,
)
from gis.change.oscd import CITIES, load_city, load_pair  # noqa: E402
from gis.imagery import MODEL_BANDS  # noqa: E402


def build_model(in_channels: int, width: int = 16, arch: str = "ef"):
    import torch
    from torch import nn

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(True),
        )

    class UNet(nn.Module):
        """U-Net on the input before, after, after − before (normalised), in two variants:

        * early fusion (FC-EF, ``siamese=False``): the whole input goes through the encoder;
        * FC-Siam-diff (Daudt et al. 2018, ``siamese=True``): one encoder shared by both dates
          (the first two thirds of the channels), skips carry |features(after) − features(before)|.
          Same input tensor, so the product runs either unchanged.
        """

        def __init__(self, siamese: bool) -> None:
            super().__init__()
            w = width
            self.siamese = siamese
            self.nb = in_channels // 3
            self.enc1 = block(self.nb if siamese else in_channels, w)
            self.enc2 = block(w, 2 * w)
            self.enc3 = block(2 * w, 4 * w)
            self.bott = nn.Sequential(block(4 * w, 4 * w), nn.Dropout2d(0.2))
            self.pool = nn.MaxPool2d(2)
            self.up3 = nn.ConvTranspose2d(4 * w, 4 * w, 2, stride=2)
            self.dec3 = block(8 * w, 2 * w)
            self.up2 = nn.ConvTranspose2d(2 * w, 2 * w, 2, stride=2)
            self.dec2 = block(4 * w, w)
            self.up1 = nn.ConvTranspose2d(w, w, 2, stride=2)
            self.dec1 = block(2 * w, w)
            self.head = nn.Conv2d(w, 1, 1)

        def encode(self, x):
            e1 = self.enc1(x)
            e2 = self.enc2(self.pool(e1))
            e3 = self.enc3(self.pool(e2))
            return e1, e2, e3, self.bott(self.pool(e3))

        def forward(self, x):
            if self.siamese:
                before = self.encode(x[:, : self.nb])
                after = self.encode(x[:, self.nb : 2 * self.nb])
                e1, e2, e3, b = (torch.abs(a - q) for a, q in zip(after, before, strict=True))
            else:
                e1, e2, e3, b = self.encode(x)
            d3 = self.dec3(torch.cat([self.up3(b), e3], 1))
            d2 = self.dec2(torch.cat([self.up2(d3), e2], 1))
            d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
            return self.head(d1)

    return UNet(siamese=arch == "siamdiff")


def sample_batch(
    cities,
    rng,
    batch: int,
    patch: int,
    pos_share: float,
    jitter: float = 0.1,
    diff_only: bool = False,
):
    """Random patches (a share centred on change pixels), flips, rotations, date swap and a
    small per-band gain/offset jitter on the normalised values. Returns x, y and the loss
    mask m (1 where the label counts; pseudo-labelled cities leave uncertain pixels out)."""
    xs, ys, ms = [], [], []
    weights = np.array([c["label"].size * c.get("weight", 1.0) for c in cities], dtype=float)
    weights /= weights.sum()
    for _ in range(batch):
        c = cities[rng.choice(len(cities), p=weights)]
        b, a, y = c["before"], c["after"], c["label"]
        h, w = y.shape
        if rng.random() < pos_share and len(c["pos"]) > 0:
            r, q = c["pos"][rng.integers(len(c["pos"]))]
            r0 = int(np.clip(r - rng.integers(patch), 0, h - patch))
            c0 = int(np.clip(q - rng.integers(patch), 0, w - patch))
        else:
            r0, c0 = int(rng.integers(h - patch + 1)), int(rng.integers(w - patch + 1))
        pb = b[:, r0 : r0 + patch, c0 : c0 + patch]
        pa = a[:, r0 : r0 + patch, c0 : c0 + patch]
        py = y[r0 : r0 + patch, c0 : c0 + patch]
        mask = c.get("mask")
        pm = mask[r0 : r0 + patch, c0 : c0 + patch] if mask is not None else np.ones_like(py)
        if rng.random() < 0.5:
            pb, pa = pa, pb
        nb = pb.shape[0]
        gain = 1 + jitter * rng.standard_normal((2, nb, 1, 1)).astype(np.float32)
        off = jitter * rng.standard_normal((2, nb, 1, 1)).astype(np.float32)
        pb = pb * gain[0] + off[0]
        pa = pa * gain[1] + off[1]
        x = model_input(pb, pa, c["diff_scale"], diff_only=diff_only)
        k = int(rng.integers(4))
        x, py, pm = np.rot90(x, k, axes=(1, 2)), np.rot90(py, k), np.rot90(pm, k)
        if rng.random() < 0.5:
            x, py, pm = x[:, :, ::-1], py[:, ::-1], pm[:, ::-1]
        xs.append(np.ascontiguousarray(x))
        ys.append(np.ascontiguousarray(py))
        ms.append(np.ascontiguousarray(pm))
    return np.stack(xs), np.stack(ys)[:, None], np.stack(ms)[:, None]


def pseudo_label(teacher: Path, before, after, valid, hi: float, lo: float):
    """Pseudo-labels of an unlabelled pair, from two views that must agree.

    Change where the teacher CNN's probability is at least ``hi`` *and* change vector
    analysis (the product's noise rule) flags the pixel; no change where the teacher is below
    ``lo`` and CVA does not flag it; every other pixel is left out of the loss (mask 0). The
    teacher must not have seen the city being held out (its own fold model), so the held-out
    figure stays clean. Returns label, mask (float32) and the shares, for the log.
    """
    from gis.change.models import CnnDetector, CvaDetector

    cnn = CnnDetector(teacher, threads=1)
    cnn.fit(before, after, valid)
    cva = CvaDetector()
    cva.fit(before, after, valid)
    p = cnn.probability(before, after)
    flagged = cva.probability(before, after) >= 0.5
    pos = (p >= hi) & flagged & valid
    neg = (p < lo) & ~flagged & valid
    label = pos.astype(np.float32)
    mask = (pos | neg).astype(np.float32)
    return label, mask, float(pos.mean()), float(mask.mean())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--oscd", type=Path, default=ROOT.parent / "shared" / "data" / "oscd")
    p.add_argument("--holdout", action="append", default=[], help="city left out (repeatable)")
    p.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    p.add_argument("--steps", type=int, default=2500)
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--width", type=int, default=16)
    p.add_argument(
        "--arch",
        choices=["ef", "siamdiff"],
        default="ef",
        help="early-fusion U-Net or FC-Siam-diff",
    )
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pos-share", type=float, default=0.5, help="share of change-centred patches")
    p.add_argument("--pos-weight", type=float, default=3.0, help="BCE weight of change pixels")
    p.add_argument("--dice-weight", type=float, default=1.0)
    p.add_argument(
        "--ema",
        type=float,
        default=0.0,
        help="keep an exponential moving average of the weights (e.g. 0.995) and "
        "export it: steadier than the last step's weights",
    )
    p.add_argument(
        "--eval-every",
        type=int,
        default=0,
        help="print the held-out cities' F1 (threshold 0.5) every N steps: a learning "
        "curve for diagnosis, not a model selection",
    )
    p.add_argument("--jitter", type=float, default=0.1, help="per-band gain/offset jitter (σ)")
    p.add_argument(
        "--diff-only",
        action="store_true",
        help="input only the (scaled) difference channels, not the two images",
    )
    p.add_argument(
        "--diff-norm",
        choices=["none", "scene-median"],
        default="none",
        help="scale the difference channels by the scene's median change magnitude "
        "(gis.change.features.scene_diff_scale)",
    )
    p.add_argument(
        "--unlabelled",
        type=Path,
        help="self-training: also train on every city of this folder (e.g. "
        "../shared/data/oscd-unlabelled) with pseudo-labels from --teacher",
    )
    p.add_argument(
        "--transductive",
        action="store_true",
        help="self-training: the held-out cities' own images (never their labels) are "
        "pseudo-labelled too, as the product would do with the scenes it is to judge",
    )
    p.add_argument("--teacher", type=Path, help="ONNX model giving the pseudo-labels")
    p.add_argument("--pseudo-hi", type=float, default=0.6, help="teacher p for change")
    p.add_argument("--pseudo-lo", type=float, default=0.2, help="teacher p for no change")
    p.add_argument(
        "--pseudo-weight",
        type=float,
        default=1.0,
        help="sampling weight of a pseudo-labelled city relative to a labelled one of its size",
    )
    args = p.parse_args(argv)
    if (args.unlabelled or args.transductive) and not args.teacher:
        p.error("self-training (--unlabelled/--transductive) needs --teacher")
    if args.diff_only and args.arch == "siamdiff":
        p.error("--diff-only gives no images for the Siam-diff encoder: use --arch ef")

    def diff_scale(before, after, valid) -> float:
        if args.diff_norm == "none":
            return 1.0
        return scale_for_noise(noise_level(change_magnitude(before, after)[valid]))

    import torch
    from torch import nn

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    cities = []
    for name in CITIES:
        if name in args.holdout:
            continue
        before, after, valid, label = load_city(args.oscd, name)
        label = label & valid
        cities.append(
            {
                "name": name,
                "before": before,
                "after": after,
                "label": label.astype(np.float32),
                "pos": np.argwhere(label),
                "diff_scale": diff_scale(before, after, valid),
            }
        )
    pseudo_sources = []
    if args.unlabelled:
        pseudo_sources += sorted(d for d in args.unlabelled.iterdir() if (d / "imgs_1").is_dir())
    if args.transductive:
        pseudo_sources += [args.oscd / name for name in args.holdout]
    for folder in pseudo_sources:
        before, after, valid = load_pair(folder)
        label, mask, pos_share, kept = pseudo_label(
            args.teacher, before, after, valid, args.pseudo_hi, args.pseudo_lo
        )
        print(
            f"pseudo-labels {folder.name}: change {pos_share:.4f}, kept {kept:.3f} of pixels",
            flush=True,
        )
        cities.append(
            {
                "name": f"pseudo:{folder.name}",
                "before": before,
                "after": after,
                "label": label,
                "mask": mask,
                "weight": args.pseudo_weight,
                "pos": np.argwhere(label > 0),
                "diff_scale": diff_scale(before, after, valid),
            }
        )
    train_names = [c["name"] for c in cities]
    held = [load_city(args.oscd, name) for name in args.holdout] if args.eval_every else []
    labelled = [c for c in cities if "mask" not in c]
    pos = sum(c["label"].sum() for c in labelled) / sum(c["label"].size for c in labelled)
    print(
        f"training on {train_names}; change share {pos:.3f}; difference scale "
        + ", ".join(f"{c['name']} {c['diff_scale']:.2f}" for c in cities),
        flush=True,
    )

    in_ch = (1 if args.diff_only else 3) * len(MODEL_BANDS)
    model = build_model(in_ch, args.width, args.arch)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.1
    )
    ema = (
        torch.optim.swa_utils.AveragedModel(
            model,
            multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(args.ema),
            use_buffers=True,
        )
        if args.ema
        else None
    )
    bce = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(args.pos_weight), reduction="none")
    t0 = time.time()
    running = 0.0
    for step in range(1, args.steps + 1):
        model.train()
        x, y, m = sample_batch(
            cities,
            rng,
            args.batch,
            args.patch,
            pos_share=args.pos_share,
            jitter=args.jitter,
            diff_only=args.diff_only,
        )
        x, y, m = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(m)
        logit = model(x)
        prob = torch.sigmoid(logit) * m  # masked pixels (pseudo-label unsure) count nowhere
        inter = (prob * y).sum()
        dice = 1 - (2 * inter + 1) / (prob.sum() + (y * m).sum() + 1)
        loss = (bce(logit, y) * m).sum() / m.sum().clamp(min=1) + args.dice_weight * dice
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if ema is not None:
            ema.update_parameters(model)
        lv = loss.item()
        running = 0.98 * running + 0.02 * lv if step > 1 else lv
        if step % 100 == 0 or step == args.steps:
            el = time.time() - t0
            print(
                f"step {step}/{args.steps} loss {running:.4f} {el:.0f}s ({el / step:.2f}s/step)",
                flush=True,
            )
        if held and (step % args.eval_every == 0 or step == args.steps):
            net = ema.module if ema is not None else model
            net.eval()
            tp = fp = fn = 0
            with torch.no_grad():
                for before, after, valid, label in held:
                    x = model_input(
                        before, after, diff_scale(before, after, valid), diff_only=args.diff_only
                    )
                    h, w = label.shape
                    x = np.pad(x, ((0, 0), (0, (-h) % 8), (0, (-w) % 8)), mode="reflect")
                    pred = (net(torch.from_numpy(x[None]))[0, 0, :h, :w] > 0).numpy() & valid
                    tp += int((pred & label).sum())
                    fp += int((pred & ~label).sum())
                    fn += int((~pred & label).sum())
            print(
                f"  eval step {step}: held-out F1 {2 * tp / max(2 * tp + fp + fn, 1):.3f} "
                f"(tp {tp} fp {fp} fn {fn})",
                flush=True,
            )

    if ema is not None:
        model = ema.module
    model.eval()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp.onnx")
    dummy = torch.zeros(1, in_ch, 64, 64)
    torch.onnx.export(
        model,
        dummy,
        str(tmp),
        input_names=["x"],
        output_names=["logit"],
        dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "logit": {0: "n", 2: "h", 3: "w"}},
        opset_version=17,
        dynamo=False,
    )
    import onnx

    m = onnx.load(str(tmp))
    meta = {
        "bands": json.dumps(list(MODEL_BANDS)),
        "input": "gis.change.features.model_input(before_norm, after_norm, diff_scale, diff_only)",
        "diff_norm": args.diff_norm,
        "diff_only": "true" if args.diff_only else "false",
        "normalisation": "per image and band: (x - mean) / std over valid pixels, clip +-6",
        "trained_on": json.dumps(train_names),
        "teacher": args.teacher.name if args.teacher else "",
        "pseudo": json.dumps([args.pseudo_lo, args.pseudo_hi, args.pseudo_weight])
        if args.teacher
        else "",
        "held_out": json.dumps(args.holdout),
        "steps": str(args.steps),
        "batch": str(args.batch),
        "patch": str(args.patch),
        "width": str(args.width),
        "arch": args.arch,
        "seed": str(args.seed),
        "pos_share": str(args.pos_share),
        "pos_weight": str(args.pos_weight),
        "dice_weight": str(args.dice_weight),
        "jitter": str(args.jitter),
        "ema": str(args.ema),
        "data": "OSCD (Daudt et al. 2018); labels CC BY-NC-SA; images Copernicus Sentinel-2",
        "multiple_of": "8",
    }
    for k, v in meta.items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    onnx.save(m, str(tmp))
    tmp.replace(args.out)
    print(f"wrote {args.out} in {time.time() - t0:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
