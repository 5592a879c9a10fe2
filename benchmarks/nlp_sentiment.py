"""Sentiment figures: news-dev cross-validation, UIT-VSFC test, UIT-ViSFD test.

    .venv/bin/python benchmarks/nlp_sentiment.py [--data-dir ../shared/data] [--ablation]
                                                  [--skip-news] [--skip-reviews]

- news-dev: 10-fold stratified CV (seed 0) of the shipped recipe (nlp.sentiment.ModelConfig
  defaults): every item is predicted by a model that never saw it; LSA comes from the
  unlabelled news only. Macro-F1 and negative recall, all items and unambiguous ones.
  --ablation also runs each modelling step on/off (the model card's table).
- UIT-VSFC: trained on the official train split (neutral bias tuned on val), scored on test.
- UIT-ViSFD: document label from the star rating (1–2 negative, 3 neutral, 4–5 positive),
  trained on Train (bias tuned on Dev), scored on Test.
Data are read by path and never stored.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from sklearn.metrics import f1_score, recall_score  # noqa: E402

from nlp.reviews import ReviewClassifier, featurize_texts  # noqa: E402
from nlp.sentiment import LABELS, Corpus, ModelConfig, NewsModel, cross_validate, fit_unsupervised  # noqa: E402
from nlp.training import news_corpora  # noqa: E402

warnings.filterwarnings("ignore", category=UserWarning)


def news(data_dir: Path, ablation: bool) -> None:
    t0 = time.perf_counter()
    lab, unl, raw = news_corpora(data_dir)
    print(f"news-dev: {len(lab.texts)} labelled, {len(unl.texts)} unlabelled ({time.perf_counter() - t0:.0f} s to segment)")
    base_cfg = ModelConfig()
    runs = [("shipped recipe", base_cfg)]
    if ablation:
        runs += [
            ("same without the news lexicon", ModelConfig(lexicon=False)),
            ("baseline: word+char TF-IDF, LR, no head/LSA/lexicon",
             ModelConfig(headline_features=False, lsa_components=0, lexicon=False)),
            ("+ headline features, no LSA/lexicon", ModelConfig(lsa_components=0, lexicon=False)),
            ("- char n-grams, no lexicon", ModelConfig(char_ngrams=False, lexicon=False)),
            ("+ self-training (10 % of unlabelled, weight 0.3), no lexicon",
             ModelConfig(self_training_fraction=0.1, lexicon=False)),
            ("LSA 300 dims x 40k terms, no lexicon", ModelConfig(lsa_components=300, lsa_max_features=40000, lexicon=False)),
        ]
    amb = np.array([bool(x.get("ambiguous")) for x in raw])
    for name, cfg in runs:
        t0 = time.perf_counter()
        base = NewsModel(config=cfg)
        fit_unsupervised(base, unl, Corpus([], []))
        res = cross_validate(lab, unl, cfg, base=base, return_predictions=True)
        pred = res.pop("predictions")
        clear = ~amb
        y = lab.labels
        f_clear = f1_score(y[clear], pred[clear], average="macro")
        r_clear = recall_score(y[clear], pred[clear], labels=["negative"], average=None)[0]
        print(
            f"[{name}] news-dev 10-fold CV: macro-F1 {res['sentiment']['macro_f1']:.3f}, negative recall "
            f"{res['sentiment']['negative_recall']:.3f}, accuracy {res['sentiment']['accuracy']:.3f}; "
            f"unambiguous items: macro-F1 {f_clear:.3f}, negative recall {r_clear:.3f}; "
            f"topic (12 classes): macro-F1 {res['topic']['macro_f1']:.3f}, accuracy {res['topic']['accuracy']:.3f} "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )


def _report(name: str, y: np.ndarray, pred: np.ndarray) -> None:
    f = f1_score(y, pred, average="macro", labels=list(LABELS))
    per = f1_score(y, pred, average=None, labels=list(LABELS))
    acc = float(np.mean(y == pred))
    print(f"{name}: macro-F1 {f:.3f} (F1 neg/neu/pos {per[0]:.3f}/{per[1]:.3f}/{per[2]:.3f}), accuracy {acc:.3f}, n={len(y)}", flush=True)


def vsfc(data_dir: Path) -> None:
    base = data_dir / "sentiment" / "uit-vsfc"
    lab = {"0": "negative", "1": "neutral", "2": "positive"}

    def split(name: str):
        sents = (base / name / "sents.txt").read_text(encoding="utf-8").split("\n")[:-1]
        ys = (base / name / "sentiments.txt").read_text(encoding="utf-8").split("\n")[:-1]
        segs, norms = featurize_texts(sents)
        return segs, norms, np.array([lab[y.strip()] for y in ys])

    tr, va, te = split("train"), split("val"), split("test")
    m = ReviewClassifier().fit(tr[0], tr[1], tr[2], val=va)
    _report(f"UIT-VSFC test (trained on train, neutral bias {m.neutral_bias:+.1f} tuned on val)", te[2], m.predict(te[0], te[1]))


def visfd(data_dir: Path) -> None:
    base = data_dir / "sentiment" / "uit-visfd"

    def split(name: str):
        with open(base / f"{name}.csv", encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        stars = [int(r["n_star"]) for r in rows]
        y = np.array(["negative" if s <= 2 else "neutral" if s == 3 else "positive" for s in stars])
        segs, norms = featurize_texts([r["comment"] for r in rows])
        return segs, norms, y

    tr, va, te = split("Train"), split("Dev"), split("Test")
    m = ReviewClassifier().fit(tr[0], tr[1], tr[2], val=va)
    _report(f"UIT-ViSFD test, star-derived labels (trained on Train, neutral bias {m.neutral_bias:+.1f} tuned on Dev)", te[2], m.predict(te[0], te[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=(REPO / ".." / "shared" / "data").resolve())
    ap.add_argument("--ablation", action="store_true")
    ap.add_argument("--skip-news", action="store_true")
    ap.add_argument("--skip-reviews", action="store_true")
    args = ap.parse_args()
    if not (args.data_dir / "sentiment").exists():
        sys.exit(f"no sentiment data under {args.data_dir}: give --data-dir (the shared data folder)")
    if not args.skip_news:
        news(args.data_dir, args.ablation)
    if not args.skip_reviews:
        vsfc(args.data_dir)
        visfd(args.data_dir)
    print(json.dumps({"config": ModelConfig().as_dict()}))


if __name__ == "__main__":
    main()
