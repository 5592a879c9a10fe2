"""Scoring throughput with the sentence encoder: articles and posts per second, peak memory.

    nice -n 10 .venv/bin/python benchmarks/nlp_throughput.py [--data-dir ../shared/data]
        [--articles 60] [--posts 400] [--model FILE] [--one-core] [--no-ner]

Articles (~4,000 characters, a title and a body) are built at run time by joining unlabelled
news texts of ../shared/data (never stored; a synthetic paragraph when the data is absent);
posts are the comments of VLSP 2016 (or short synthetic comments). The scorer runs end to end
(normalisation, sentence split, underthesea segmentation, encoder on the bounded input,
TF-IDF heads, topic, places) with an empty encoder cache (a fresh temporary state dir), then
once more on the same inputs (every vector cached). Prints, per genre and input bound, items
per wall-clock second and per CPU-second (process time: other jobs on a shared machine do not
inflate it), the load average, and the process's peak resident memory. ``--one-core`` pins
the process to one CPU with one thread; the default uses both cores (OpenMP in the encoder).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SYNTHETIC = (
    "Chiều 12/3, tại huyện Thanh Liêm, tỉnh Hà Nam đã xảy ra vụ tai nạn giao thông nghiêm trọng "
    "khiến hai người bị thương. Lực lượng chức năng đã có mặt và phong tỏa hiện trường. UBND xã "
    "Thanh Hà cho biết sẽ kiểm tra lại hệ thống biển báo trên tuyến đường. Người dân đề nghị cơ "
    "quan chức năng sớm khắc phục tình trạng xuống cấp của mặt đường. "
)
SYNTHETIC_POSTS = [
    "đường này xuống cấp quá, mong xã sửa sớm",
    "cảm ơn các anh công an đã hỗ trợ bà con",
    "mưa to ngập hết rồi mọi người ơi",
    "chỗ này ai quản lý vậy ạ",
    "dịch vụ công online nhanh gọn, hài lòng",
]


def articles(data_dir: Path, n: int, size: int = 4000) -> list[dict]:
    path = data_dir / "sentiment" / "news-dev" / "unlabelled.jsonl"
    texts: list[str] = []
    if path.exists():
        with open(path, encoding="utf-8") as fh:
            texts = [json.loads(line)["text"] for line, _ in zip(fh, range(5000), strict=False)]
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


def posts(data_dir: Path, n: int) -> list[dict]:
    path = data_dir / "sentiment" / "vlsp2016-sa" / "train.tsv"
    texts: list[str] = []
    if path.exists():
        lines = path.read_text(encoding="utf-8").splitlines()[1:]
        texts = [x.partition("\t")[2] for x in lines[:: max(1, len(lines) // n)]][:n]
    while len(texts) < n:
        texts.append(SYNTHETIC_POSTS[len(texts) % len(SYNTHETIC_POSTS)] + f" {len(texts)}")
    return [{"id": i, "text": t} for i, t in enumerate(texts)]


def run(scorer, docs: list[dict], genre: str, batch: int) -> tuple[float, float, int]:
    t0, c0 = time.perf_counter(), time.process_time()
    ok = 0
    for i in range(0, len(docs), batch):
        ok += sum("sentiment" in r for r in scorer.score_records(docs[i : i + batch], genre=genre))
    return time.perf_counter() - t0, time.process_time() - c0, ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=(REPO / ".." / "shared" / "data").resolve())
    ap.add_argument("--articles", type=int, default=60)
    ap.add_argument("--posts", type=int, default=400)
    ap.add_argument("--batch", type=int, default=40)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--one-core", action="store_true")
    ap.add_argument("--no-ner", action="store_true")
    ap.add_argument(
        "--body-chars",
        type=int,
        nargs="*",
        default=[0, 1000],
        help="article encoder input: title + lead and this many body characters (alternatives compared)",
    )
    args = ap.parse_args()
    if args.one_core:
        os.environ["OMP_NUM_THREADS"] = "1"
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from nlp.encoder import load_encoder
    from nlp.scoring import load_scorer

    docs, comments = articles(args.data_dir, args.articles), posts(args.data_dir, args.posts)
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start "
        f"({'one core, one thread' if args.one_core else 'all cores'})",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as state:
        t0 = time.perf_counter()
        scorer = load_scorer(args.model, use_ner=not args.no_ner, state_dir=Path(state))
        print(
            f"model {scorer.model_version}, features {scorer.features} {scorer.encoder_reason if scorer.features == 'tfidf' else ''}; "
            f"load {time.perf_counter() - t0:.2f} s",
            flush=True,
        )
        scorer.score_records(docs[:1], genre="article")  # warm-up: underthesea's lazy model loading
        scorer.score_records(comments[:1], genre="post")
        labels: dict[int, list[str]] = {}
        for body_chars in args.body_chars:
            if body_chars and scorer.encoder is not None:
                # the same encoder reading up to 2,000 characters (title + lead + body start)
                enc, _ = load_encoder(Path(state), max_chars=2000)
                scorer.encoder, scorer.model.encoder_name = enc, enc.name
            scorer.encoder_body_chars = body_chars
            for name, items, genre in (("articles", docs, "article"), ("posts", comments, "post")):
                if genre == "post" and body_chars:
                    continue  # the bound only changes articles
                for rnd in ("fresh", "cached"):
                    wall, cpu, ok = run(scorer, items, genre, args.batch)
                    if genre == "article" and rnd == "cached":
                        labels[body_chars] = [
                            r["sentiment"]["label"]
                            for r in scorer.score_records(items, genre=genre)
                        ]
                    mean = sum(len(d.get("title", "")) + len(d["text"]) for d in items) / len(items)
                    print(
                        f"{name} (mean {mean:,.0f} chars, encoder input: title + lead + {body_chars} body chars, {rnd} cache): "
                        f"{len(items) / wall:.1f}/s wall, {len(items) / cpu:.1f} per CPU-second "
                        f"({ok}/{len(items)} scored, load average {os.getloadavg()[0]:.1f})",
                        flush=True,
                    )
        if len(labels) > 1:
            keys = sorted(labels)
            agree = sum(
                a == b for a, b in zip(labels[keys[0]], labels[keys[1]], strict=True)
            ) / len(docs)
            print(
                f"article labels identical with {keys[0]} and {keys[1]} body chars in the encoder input: {agree:.0%}"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory {peak:,.0f} MB")


if __name__ == "__main__":
    main()
