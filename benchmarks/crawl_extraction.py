"""Extraction quality: body F1 on the article-extraction benchmark pages, fields on vi_news.

Usage::

    .venv/bin/python benchmarks/crawl_extraction.py [--data-dir ../shared/data] [--baseline]
        [--leave-site-out] [--learn]

``--leave-site-out``: the boilerplate-line filter (crawler.extraction.LineFilter) is learned
once per site of aeb-dev from the pages of the OTHER sites only (its threshold chosen by a
grouped 5-fold CV inside those sites), then that site's pages are scored: a figure for sites
the rules never saw. Printed next to the generic path without the filter (nothing learned:
the same figure with or without leaving sites out) and the shipped filter (learned on every
site: in-sample, optimistic).
``--learn``: learn the filter on every aeb-dev page and write crawler/boilerplate_lines.json.

Scoring (from the benchmark's README): word tokens (regex \\w+, Unicode), 4-token shingles;
per page TP/FP/FN over shingle multisets normalised by their sum; precision = mean per-page
precision over pages with TP+FP > 0, recall = mean per-page recall over pages with TP+FN > 0,
F1 = harmonic mean of the two means.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crawler.extraction import (  # noqa: E402
    BOILERPLATE_MODEL,
    LINE_FEATURES,
    LineFilter,
    extract_article,
    extract_file,
    line_features,
)
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
        for mode in ("favor_precision", "favor_recall"):
            got = {k: trafilatura.extract(p, **{mode: True}) or "" for k, p in pages.items()}
            rows.append((f"trafilatura {mode}", score(got, truth)))
        ld = {k: b for k, b in ((k, _jsonld_body(p)) for k, p in pages.items()) if b}
        if ld:
            rows.append(
                (f"JSON-LD articleBody ({len(ld)} pages)", score(ld, {k: truth[k] for k in ld}))
            )
            rows.append(
                (
                    f"ioc crawler, same {len(ld)} pages",
                    score({k: ours[k] for k in ld if k in ours}, {k: truth[k] for k in ld}),
                )
            )
    print(
        f"aeb-dev: {len(pages)} pages, {failures} failures, {elapsed / len(pages) * 1000:.0f} ms/page"
    )
    for name, s in rows:
        print(f"  {name:28s} P {s['precision']:.4f}  R {s['recall']:.4f}  F1 {s['f1']:.4f}")


# --------------------------------------------------------------------------------------------
# The boilerplate-line filter: learning it, and scoring it on sites it never saw
# --------------------------------------------------------------------------------------------

THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)


def _norm_words(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def line_labels(lines: list[str], truth: str) -> list[bool]:
    """A line is article text when most of its 4-shingles are in the truth (lines of under 4
    words: when its words appear in the truth as they are)."""
    want, flat = shingles(truth), _norm_words(truth)
    out = []
    for line in lines:
        got = shingles(line)
        n = sum(got.values())
        if n:
            out.append(sum((got & want).values()) / n > 0.5)
        else:
            words = _norm_words(line)
            out.append(bool(words) and words in flat)
    return out


def load_aeb(root: Path) -> dict[str, dict]:
    """Each page extracted once by the generic path WITHOUT the line filter."""
    truth_raw = json.loads((root / "ground-truth.json").read_text(encoding="utf-8"))
    pages = {}
    for key, item in truth_raw.items():
        page = gzip.decompress((root / "html" / f"{key}.html.gz").read_bytes())
        try:
            art = extract_article(page, url=item.get("url"), line_filter=False)
            text, title = art.text, art.title
        except Exception:  # noqa: BLE001 - scores as an empty prediction
            text, title = "", None
        lines = text.split("\n") if text else []
        pages[key] = {
            "site": urlsplit(item.get("url") or "").hostname or key,
            "truth": item["articleBody"],
            "text": text,
            "title": title,
            "lines": lines,
            "x": line_features(lines, title),
            "y": line_labels(lines, item["articleBody"]),
        }
    return pages


def fit_filter(pages: list[dict], threshold: float, C: float = 1.0) -> LineFilter:  # noqa: N803
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.array([row for p in pages for row in p["x"]], dtype=float)
    y = np.array([label for p in pages for label in p["y"]], dtype=bool)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    clf = LogisticRegression(C=C, solver="liblinear", max_iter=1000).fit((x - mean) / scale, y)
    return LineFilter(
        [round(float(v), 6) for v in mean],
        [round(float(v), 6) for v in scale],
        [round(float(v), 6) for v in clf.coef_[0]],
        round(float(clf.intercept_[0]), 6),
        threshold,
    )


def _filtered(flt: LineFilter | None, pages: list[dict]) -> dict[str, str]:
    out = {}
    for p in pages:
        out[p["key"]] = (
            flt.apply(p["text"], p["title"], p["x"])[0] if flt and p["text"] else p["text"]
        )
    return out


def choose_threshold(pages: list[dict], folds: int = 5) -> float:
    """The threshold with the best body F1 over a grouped (by site) k-fold CV of ``pages``."""
    sites = sorted({p["site"] for p in pages})
    best = (-1.0, THRESHOLDS[0])
    for threshold in THRESHOLDS:
        f1s = []
        for k in range(folds):
            held = set(sites[k::folds])
            train = [p for p in pages if p["site"] not in held]
            test = [p for p in pages if p["site"] in held]
            flt = fit_filter(train, threshold)
            f1s.append(score(_filtered(flt, test), {p["key"]: p["truth"] for p in test})["f1"])
        mean = sum(f1s) / len(f1s)
        if mean > best[0] + 1e-9:
            best = (mean, threshold)
    return best[1]


def run_leave_site_out(root: Path) -> None:
    start = time.perf_counter()
    pages = load_aeb(root)
    for key, p in pages.items():
        p["key"] = key
    every = list(pages.values())
    truth = {k: p["truth"] for k, p in pages.items()}
    sites = sorted({p["site"] for p in every})
    held_out: dict[str, str] = {}
    chosen: Counter = Counter()
    for site in sites:
        train = [p for p in every if p["site"] != site]
        test = [p for p in every if p["site"] == site]
        threshold = choose_threshold(train)
        chosen[threshold] += 1
        held_out.update(_filtered(fit_filter(train, threshold), test))
    try:
        shipped = LineFilter.load() if BOILERPLATE_MODEL.exists() else None
    except ValueError as exc:  # learned with other features: run --learn
        print(f"shipped filter not scored: {exc}")
        shipped = None
    rows = [
        ("generic, no line filter", score({k: p["text"] for k, p in pages.items()}, truth)),
        ("line filter, leave-site-out", score(held_out, truth)),
    ]
    if shipped:
        rows.append(("shipped filter (in-sample)", score(_filtered(shipped, every), truth)))
    print(
        f"aeb-dev leave-site-out: {len(pages)} pages of {len(sites)} sites, "
        f"{time.perf_counter() - start:.0f} s; thresholds chosen inside the folds: "
        + ", ".join(f"{t} x{n}" for t, n in sorted(chosen.items()))
    )
    for name, s in rows:
        print(f"  {name:30s} P {s['precision']:.4f}  R {s['recall']:.4f}  F1 {s['f1']:.4f}")


def run_learn(root: Path) -> None:
    pages = load_aeb(root)
    for key, p in pages.items():
        p["key"] = key
    every = list(pages.values())
    threshold = choose_threshold(every)
    flt = fit_filter(every, threshold)
    flt.meta = {
        "trained_on": "aeb-dev (91 pages of the Zyte article-extraction benchmark, MIT)",
        "pages": len(every),
        "sites": len({p["site"] for p in every}),
        "lines": sum(len(p["lines"]) for p in every),
        "command": ".venv/bin/python benchmarks/crawl_extraction.py --learn",
        "learned": dt.date.today().isoformat(),
    }
    BOILERPLATE_MODEL.write_text(json.dumps(flt.to_json(), indent=1) + "\n", encoding="utf-8")
    weights = sorted(zip(LINE_FEATURES, flt.coef, strict=True), key=lambda t: -abs(t[1]))
    print(
        f"wrote {BOILERPLATE_MODEL} (threshold {threshold}); strongest features: "
        + ", ".join(f"{n} {w:+.2f}" for n, w in weights[:6])
    )


def _jsonld_body(page: bytes) -> str | None:
    """The page's JSON-LD articleBody, if any (what the generic path could take instead)."""
    import lxml.html

    from crawler.extraction import _jsonld_articles, _ld_get
    from crawler.textnorm import decode_html

    try:
        tree = lxml.html.document_fromstring(decode_html(page, None)[0])
    except Exception:  # noqa: BLE001 - no body then
        return None
    body = _ld_get(_jsonld_articles(tree), "articleBody")
    return body if isinstance(body, str) and body.strip() else None


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
        (
            "fundus published",
            art.published and art.published.isoformat() == want_date,
            art.published.isoformat() if art.published else None,
        ),
        ("fundus author", art.author == ", ".join(gt["authors"]), art.author),
        ("fundus lead", art.lead == " ".join(gt["body"]["summary"]), art.lead),
        (
            "fundus body",
            score({"x": art.text}, {"x": "\n".join(paragraphs)})["f1"] > 0.95,
            f"F1 {score({'x': art.text}, {'x': chr(10).join(paragraphs)})['f1']:.3f}",
        ),
    ]
    hd = root / "htmldate_vnexpress"
    art = extract_file(hd / "VnExpress.net-Kinh-doanh.html", sites=sites)
    checks += [
        (
            "htmldate published day",
            bool(art.published) and art.published.date().isoformat() == "2023-11-02",
            art.published.isoformat() if art.published else None,
        ),
        (
            "htmldate offset +07:00",
            bool(art.published) and art.published.isoformat().endswith("+07:00"),
            None,
        ),
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
    parser.add_argument(
        "--leave-site-out",
        action="store_true",
        help="score the boilerplate-line filter on sites it was not learned from",
    )
    parser.add_argument(
        "--learn",
        action="store_true",
        help="learn the boilerplate-line filter on aeb-dev and write it",
    )
    args = parser.parse_args()
    extraction = args.data_dir / "extraction"
    if not extraction.is_dir():
        sys.exit(f"{extraction} does not exist: pass --data-dir pointing at the shared data.")
    if args.learn:
        run_learn(extraction / "aeb-dev")
        return
    if args.leave_site_out:
        run_leave_site_out(extraction / "aeb-dev")
    run_aeb(extraction / "aeb-dev", args.baseline)
    run_vi_news(extraction / "vi_news")


if __name__ == "__main__":
    main()
