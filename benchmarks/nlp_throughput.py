"""Scoring throughput: ~4,000-character articles per second on one core, tokenisation included.

    .venv/bin/python benchmarks/nlp_throughput.py [--data-dir ../shared/data] [--articles 120]

Articles are built at run time by joining unlabelled news texts of ../shared/data (never
stored), or from a synthetic Vietnamese paragraph when the data is absent. The process is
pinned to one CPU and BLAS threads are limited to one. Prints model load time and articles per CPU-second (process time, so other load on a
shared machine does not distort it) and per wall-clock second
for the full scorer (normalisation, sentence split, underthesea word segmentation, sentiment,
topic, places with and without NER checks).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nlp.scoring import load_scorer  # noqa: E402

SYNTHETIC = (
    "Chiều 12/3, tại huyện Thanh Liêm, tỉnh Hà Nam đã xảy ra vụ tai nạn giao thông nghiêm trọng "
    "khiến hai người bị thương. Lực lượng chức năng đã có mặt và phong tỏa hiện trường. UBND xã "
    "Thanh Hà cho biết sẽ kiểm tra lại hệ thống biển báo trên tuyến đường. Người dân đề nghị cơ "
    "quan chức năng sớm khắc phục tình trạng xuống cấp của mặt đường. "
)


def articles(data_dir: Path, n: int, size: int = 4000) -> list[dict]:
    path = data_dir / "sentiment" / "news-dev" / "unlabelled.jsonl"
    texts: list[str] = []
    if path.exists():
        with open(path, encoding="utf-8") as fh:
            texts = [json.loads(line)["text"] for line in fh]
    out = []
    k = 0
    for i in range(n):
        body = ""
        while len(body) < size:
            body += (texts[k % len(texts)] if texts else SYNTHETIC) + " "
            k += 1
        body = body[:size]
        out.append({"id": i, "title": body[:90], "text": body})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=(REPO / ".." / "shared" / "data").resolve())
    ap.add_argument("--articles", type=int, default=120)
    ap.add_argument("--batch", type=int, default=40)
    ap.add_argument("--model", type=Path, default=None)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    docs = articles(args.data_dir, args.articles)
    mean_len = sum(len(d["text"]) for d in docs) / len(docs)
    for use_ner in (True, False):
        t0 = time.perf_counter()
        scorer = load_scorer(args.model, use_ner=use_ner)
        load_s = time.perf_counter() - t0
        scorer.score_records(docs[:2])  # warm-up (lazy underthesea model loading)
        t0, c0 = time.perf_counter(), time.process_time()
        n_ok = 0
        for i in range(0, len(docs), args.batch):
            out = scorer.score_records(docs[i : i + args.batch])
            n_ok += sum("sentiment" in r for r in out)
        dt_, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(
            f"model {scorer.model_version}; NER checks {'on ' if use_ner else 'off'}: "
            f"load {load_s:.2f} s; {len(docs)} articles of {mean_len:,.0f} chars: "
            f"{len(docs) / cpu:.1f} articles per CPU-second on one core "
            f"({cpu:.2f} CPU s; wall {dt_:.2f} s = {len(docs) / dt_:.1f}/s, wall time includes other "
            f"processes' load on a shared machine; {n_ok} scored)"
        )


if __name__ == "__main__":
    main()
