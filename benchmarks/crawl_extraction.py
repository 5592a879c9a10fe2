"""Extraction quality: body F1 on the article-extraction benchmark pages, fields on vi_news.

Usage::

    .venv/bin/python benchmarks/crawl_extraction.py [--data-dir ../shared/data] [--baseline]

Scoring (from the benchmark's README): word tokens (regex \\w+, Unicode), 4-token shingles;
per page TP/FP/FN over shingle multisets normalised by their sum; precision = mean per-page
precision over pages with TP+FP > 0, recall = mean per-page recall over pages with TP+FN > 0,
F1 = harmonic mean of the two means.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crawler.extraction import extract_article, extract_file  # noqa: E402
from crawler.sites import load_sites  # noqa: E402

_WORD = re.compile(r"\w+")


def shingles(text: str, n: int = 4) -> Counter:
    tokens = _WORD.findall(text or "")
    return Counter(tuple(tokens[i : i + n]) for i in range(max(0, len(tokens) - n + 1)))


def score(predictions: dict[str, str], truth: dict[str, str]) -> dict[str, float]:
    precisions, recalls = [], []
    for key, expected in truth.items():
        got, want = shingles(predictions.get(key, "")), shingles(expected)
        tp = sum((got & want).values())
        fp = sum((got - want).values())
        fn = sum((want - got).values())
        total = tp + fp + fn
        if total == 0:
            continue
        tp, fp, fn = tp / total, fp / total, fn / total
        if tp + fp > 0:
            precisions.append(tp / (tp + fp))
        if tp + fn > 0:
            recalls.append(tp / (tp + fn))
    p = sum(precisions) / len(precisions)
    r = sum(recalls) / len(recalls)
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r), "pages": len(truth)}


def run_aeb(root: Path, baseline: bool) -> None:
    truth_raw = json.loads((root / "ground-truth.json").read_text(encoding="utf-8"))
    truth = {k: v["articleBody"] for k, v in truth_raw.items()}
    pages = {k: gzip.decompress((root / "html" / f"{k}.html.gz").read_bytes()) for k in truth}
    ours, ours_full, failures = {}, {}, 0
    start = time.perf_counter()
    for key, page in pages.items():
        try:
            art = extract_article(page, url=truth_raw[key].get("url"))
        except Exception as exc:  # noqa: BLE001 - a failure scores as an empty prediction
            failures += 1
            print(f"  {key[:12]}: {exc}", file=sys.stderr)
            continue
        ours[key] = art.text
        ours_full[key] = art.full_text
    elapsed = time.perf_counter() - start
    rows = [
        ("ioc crawler (text)", score(ours, truth)),
        ("ioc crawler (lead + text)", score(ours_full, truth)),
    ]
    if baseline:
        import trafilatura

        base = {k: trafilatura.extract(p) or "" for k, p in pages.items()}
        rows.append(("trafilatura default", score(base, truth)))
    print(f"aeb-dev: {len(pages)} pages, {failures} failures, {elapsed / len(pages) * 1000:.0f} ms/page")
    for name, s in rows:
        print(f"  {name:28s} P {s['precision']:.4f}  R {s['recall']:.4f}  F1 {s['f1']:.4f}")


def run_vi_news(root: Path) -> None:
    sites = load_sites()
    checks = []
    fundus = root / "fundus_vnexpress"
    gt = json.loads((fundus / "VnExpress.json").read_text(encoding="utf-8"))["V1"]
    art = extract_file(fundus / "VnExpress_2025_10_22.html.gz", sites=sites)
    paragraphs = [p for s in gt["body"]["sections"] for p in s["paragraphs"]]
    want_date = gt["publishing_date"].replace(" ", "T")
    checks += [
        ("fundus title", art.title == gt["title"], art.title),
        ("fundus published", art.published and art.published.isoformat() == want_date,
         art.published.isoformat() if art.published else None),
        ("fundus author", art.author == ", ".join(gt["authors"]), art.author),
        ("fundus lead", art.lead == " ".join(gt["body"]["summary"]), art.lead),
        ("fundus body", score({"x": art.text}, {"x": "\n".join(paragraphs)})["f1"] > 0.95,
         f"F1 {score({'x': art.text}, {'x': chr(10).join(paragraphs)})['f1']:.3f}"),
    ]
    hd = root / "htmldate_vnexpress"
    art = extract_file(hd / "VnExpress.net-Kinh-doanh.html", sites=sites)
    checks += [
        ("htmldate published day", bool(art.published) and art.published.date().isoformat()
         == "2023-11-02", art.published.isoformat() if art.published else None),
        ("htmldate offset +07:00", bool(art.published)
         and art.published.isoformat().endswith("+07:00"), None),
        ("htmldate author", art.author == "Anh Minh", art.author),
        ("htmldate lead present", bool(art.lead) and art.lead.startswith("Bộ trưởng"), art.lead),
    ]
    ok = sum(1 for _, good, _ in checks if good)
    print(f"vi_news: {ok}/{len(checks)} field checks right")
    for name, good, value in checks:
        print(f"  {'OK ' if good else 'BAD'} {name}: {value if value is not None else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--baseline", action="store_true", help="also score trafilatura default")
    args = parser.parse_args()
    extraction = args.data_dir / "extraction"
    if not extraction.is_dir():
        sys.exit(f"{extraction} does not exist: pass --data-dir pointing at the shared data.")
    run_aeb(extraction / "aeb-dev", args.baseline)
    run_vi_news(extraction / "vi_news")


if __name__ == "__main__":
    main()
