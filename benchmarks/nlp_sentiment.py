"""Sentiment model selection, measured with a fixed protocol (issue 11): nested CV per genre,
the tuned (non-nested) figure and the gap, memorisation checks and cross-genre figures.

    nice -n 10 .venv/bin/python benchmarks/nlp_sentiment.py [--data-dir ../shared/data]
        [--state-dir .state] [--sections articles posts vsfc visfd cross detect topics]
        [--outer 10] [--inner 3] [--post-outer 5] [--json-out FILE]
        [--post-candidates vlsp vlsp+vsfc ...] [--post-nested CAND ...] [--post-tfidf CAND ...]
        [--criterion auto|pooled|per-set] [--post-sample N]

Sections run in the order given (the JSON is written after each). The full post candidates
with nested CV took ~20 minutes each (VLSP + UIT-VSFC: 1,162 s at half a core, 2026-11-30);
encode the sets first (scripts/nlp_encode_corpora.py).

Protocol (every choice inside the folds):
- articles (news-dev, 600): for each feature family (encoder only; LSA+lexicon + encoder; news
  TF-IDF + encoder; news TF-IDF only) nested CV — outer 10 folds, in each the grid point
  (C, encoder weight) and the neutral bias are chosen by 3-fold CV of the outer training part,
  refitted there and scored on the outer test part — and the tuned figure (grid point and
  bias picked on the same 10 folds that score them) with the gap. Memorisation checks: trained
  on one source (magizbox, 537 items) and scored on the other two (63 items); leave-one-topic-out
  (12 folds, each topic predicted by a head that saw none of it); the article head applied to
  the comment sets (cross-genre).
- posts: every post-head candidate of ``nlp.training.POST_CANDIDATES`` (training-data mixes:
  VLSP 2016 only; + UIT-VSFC train; + UIT-ViSFD train; + stripped-diacritics copies) gets the
  same measurement: nested CV over the 5,100 VLSP 2016 items (outer 5, inner 3; only VLSP
  items are held out, the other sets train in every fold, a held-out item's stripped copy is
  left out), the tuned figure of the same outer folds and the gap; then the head chosen by
  3-fold CV on the whole mix (grid point and neutral bias; on a mix by the mean of the sets'
  macro-F1) is refitted on it and scored once on the official UIT-VSFC and UIT-ViSFD test
  splits, on UIT-VSFC test typed without diacritics and on news-dev (cross-genre).
- vsfc / visfd: in-domain references: heads chosen by CV on one set's official training split
  only, scored once on its official test split.
- cross: the post head on news-dev; detect: genre detection on every set; topics: nested CV of
  the topic grid on news-dev (macro-F1 over the 12 topics).
Encoder vectors and word segmentations are cached under <state-dir>/nlp-cache (vectors keyed
by a hash of the text; nothing goes into the repository). Data are read by path, never stored.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402

from nlp.encoder import load_encoder  # noqa: E402
from nlp.heads import Data, Head  # noqa: E402
from nlp.scoring import detect_genre  # noqa: E402
from nlp.selection import choose, grid_oof, nested_cv, report, resolve_criterion  # noqa: E402
from nlp.sentiment import LABELS, TOPICS  # noqa: E402
from nlp.training import (  # noqa: E402
    ARTICLE_FAMILIES,
    POST_CANDIDATES,
    POST_GRID,
    POST_SETS,
    TOPIC_GRID,
    labelled_data,
    news_base_model,
    parse_spec,
    tfidf_only,
)

warnings.filterwarnings("ignore")
RESULTS: dict[str, object] = {}


def say(msg: str) -> None:
    print(msg, flush=True)


def _fit_predict(cfg_grid, train: Data, test: Data, base, folds: int = 3) -> np.ndarray:
    """Choose on ``train`` by CV (bias included), refit on all of it, predict ``test``."""
    cfg = cfg_grid[0] if len(cfg_grid) == 1 else choose(cfg_grid, train, folds, 0, base)[0]
    h = Head(cfg).fit(train, base, calibrate=False)
    return np.array(LABELS)[
        h.decision_matrix(h.features(test.texts, test.segs, test.emb)).argmax(1)
    ], cfg


def articles(ctx) -> None:
    news = ctx.news()
    base = ctx.base()
    out = {}
    groups = np.array(ctx.news_rows.groups)
    main = "github:magizbox/scraper/vn_news/data"
    tr, te = np.flatnonzero(groups == main), np.flatnonzero(groups != main)
    topics = ctx.news_rows.topics
    for fam, grid in ARTICLE_FAMILIES.items():
        t0 = time.perf_counter()
        nested = nested_cv(grid, news, ctx.args.outer, ctx.args.inner, 0, base)
        tuned = nested["tuned"]
        gap = nested["gap"]
        pred_lso, cfg_lso = _fit_predict(grid, news.subset(tr), news.subset(te), base)
        lso = report(news.labels[te], pred_lso)
        lto_pred = np.empty(len(news.texts), dtype=object)
        for t in TOPICS:
            held = np.flatnonzero(topics == t)
            rest = np.flatnonzero(topics != t)
            if len(held):
                lto_pred[held], _ = _fit_predict(grid, news.subset(rest), news.subset(held), base)
        known = lto_pred != None  # noqa: E711 - items whose topic is one of the 12
        lto = report(news.labels[known], lto_pred[known])
        row = {
            "nested": nested["scores"],
            "nested_chosen": nested["chosen"],
            "tuned": tuned["macro_f1"],
            "tuned_chosen": tuned["chosen"],
            "gap": round(gap, 4),
            "leave_source_out": lso,
            "leave_topic_out": lto,
        }
        if ctx.args.cross:
            h_cfg = choose(grid, news, 3, 0, base)[0] if len(grid) > 1 else grid[0]
            h = Head(h_cfg).fit(news, base, calibrate=False)
            for name in (ctx.args.vlsp, "vsfc-test"):
                d = ctx.post(name)
                pred = np.array(LABELS)[
                    h.decision_matrix(h.features(d.texts, d.segs, d.emb)).argmax(1)
                ]
                row[f"on_{name}"] = report(d.labels, pred)
        out[fam] = row
        say(
            f"[articles: {fam}] nested {ctx.args.outer}x{ctx.args.inner} CV macro-F1 {nested['scores']['macro_f1']:.3f} "
            f"(neg. recall {nested['scores']['negative_recall']:.3f}); tuned {tuned['macro_f1']:.3f} "
            f"({tuned['chosen']}), gap {gap:+.3f}; leave-source-out {lso['macro_f1']:.3f} (n={lso['n']}, "
            f"neg. recall {lso['negative_recall']:.3f}); leave-topic-out {lto['macro_f1']:.3f} "
            + " ".join(f"{k} {v['macro_f1']:.3f}" for k, v in row.items() if k.startswith("on_"))
            + f" ({time.perf_counter() - t0:.0f} s)"
        )
        say(f"    chosen in the outer folds: {sorted(set(nested['chosen']))}")
    RESULTS["articles"] = out


def _predict(h: Head, d: Data, with_encoder: bool) -> np.ndarray:
    emb = d.emb if with_encoder else None
    return np.array(LABELS)[h.decision_matrix(h.features(d.texts, d.segs, emb)).argmax(1)]


def _limited(spec: str, n: int | None) -> str:
    """``spec`` cut to a fixed subsample of ``n`` items (smoke runs: --post-sample)."""
    if not n:
        return spec
    name, limit, stripped = parse_spec(spec)
    return f"{name}:{min(n, limit or n)}" + ("/stripped" if stripped else "")


def posts(ctx) -> None:
    """Post-head candidates (training-data mixes of POST_CANDIDATES), each measured the same way:
    nested CV over VLSP 2016 (outer folds hold out VLSP items only; the other sets train in every
    fold), the tuned figure of the same folds and the gap; then the head chosen by 3-fold CV on
    the whole mix, refitted on it and scored ONCE on each official test split (UIT-VSFC,
    UIT-ViSFD), on UIT-VSFC test typed without diacritics, and on news-dev (cross-genre)."""
    a = ctx.args
    names = a.post_candidates or list(POST_CANDIDATES)
    shipped = tuple(POST_SETS.values())
    out = {}
    tests = [
        ("vsfc_test", _limited("vsfc-test", a.post_sample)),
        ("visfd_test", _limited("visfd-test", a.post_sample)),
        ("vsfc_test_unaccented", _limited("vsfc-test/stripped", a.post_sample)),
    ]
    if a.cross:
        tests.append(("news-dev", "news-dev"))
    for cand in names:
        if cand not in POST_CANDIDATES:
            sys.exit(
                f"--post-candidates: unknown candidate {cand!r} (one of {', '.join(POST_CANDIDATES)})"
            )
        specs = [_limited(x, a.post_sample) for x in POST_CANDIDATES[cand]]
        data = Data.concat([ctx.post(x) for x in specs])
        first = parse_spec(specs[0])[0]
        feats = [("tfidf+encoder", [g for g in POST_GRID if g.encoder_weight > 0])]
        tfidf_for = a.post_tfidf if a.post_tfidf is not None else ["vlsp"]
        if cand in tfidf_for or (a.post_tfidf is None and POST_CANDIDATES[cand] == shipped):
            feats.append(("tfidf", tfidf_only(POST_GRID)))
        out[cand] = {}
        for name, grid in feats:
            d = data if name != "tfidf" else data.without_encoder()
            t0 = time.perf_counter()
            cfg, f_cv, _ = choose(grid, d, a.inner, 0, None, criterion=a.criterion)
            h = Head(cfg).fit(d, None, calibrate=False)
            row = {
                "train": specs,
                "n_train": len(d.texts),
                "chosen_on_all": cfg.label(),
                "cv_on_all": round(f_cv, 4),
            }
            for key, spec in tests:
                td = ctx.news() if spec == "news-dev" else ctx.post(spec)
                row[key] = report(td.labels, _predict(h, td, name != "tfidf"))
            msg = "not measured (--post-nested)"
            if a.post_nested is None or cand in a.post_nested:
                nested = nested_cv(
                    grid,
                    d,
                    a.post_outer,
                    a.inner,
                    0,
                    None,
                    outer_group=first,
                    criterion=a.criterion,
                )
                row.update(
                    {
                        f"{first}_nested": nested["scores"],
                        "nested_chosen": nested["chosen"],
                        "tuned": nested["tuned"]["macro_f1"],
                        "tuned_chosen": nested["tuned"]["chosen"],
                        "gap": nested["gap"],
                    }
                )
                sc = nested["scores"]
                msg = (
                    f"macro-F1 {sc['macro_f1']:.3f} (neg. recall {sc['negative_recall']:.3f}, "
                    f"F1 neg/neu/pos {sc['f1_neg_neu_pos']}); tuned {row['tuned']:.3f} "
                    f"({row['tuned_chosen']}), gap {row['gap']:+.3f}; outer folds chose "
                    f"{sorted(set(nested['chosen']))}"
                )
            row["criterion"] = resolve_criterion(a.criterion, d)
            out[cand][name] = row
            say(
                f"[posts: {cand} {name}] n={len(d.texts)}; chosen on all ({row['criterion']}, "
                f"3-fold CV {f_cv:.3f}): {cfg.label()} -> "
                + "; ".join(
                    f"{k} {row[k]['macro_f1']:.3f} (F1 neg/neu/pos {row[k]['f1_neg_neu_pos']})"
                    for k, _ in tests
                )
                + f"; {first} nested {a.post_outer}x{a.inner} {msg} ({time.perf_counter() - t0:.0f} s)"
            )
    RESULTS["posts"] = out


def official(ctx, train_spec: str, test_name: str, key: str) -> None:
    """In-domain reference: a head trained on one set's official training split only."""
    a = ctx.args
    train = ctx.post(_limited(train_spec, a.post_sample))
    test = ctx.post(_limited(test_name, a.post_sample))
    out = {}
    for name, grid in (
        ("tfidf+encoder", [g for g in POST_GRID if g.encoder_weight > 0]),
        ("tfidf", tfidf_only(POST_GRID)),
    ):
        tr = train if name != "tfidf" else train.without_encoder()
        t0 = time.perf_counter()
        cfg, f_cv, _ = choose(grid, tr, 3, 0, None)
        h = Head(cfg).fit(tr, None, calibrate=False)
        row = {"chosen": cfg.label(), "cv_on_train": round(f_cv, 4)}
        row["test"] = report(test.labels, _predict(h, test, name != "tfidf"))
        out[name] = row
        say(
            f"[{key}: {name}] trained on {train_spec} only ({cfg.label()}, 3-fold CV {f_cv:.3f}): test macro-F1 "
            f"{row['test']['macro_f1']:.3f} (F1 neg/neu/pos {row['test']['f1_neg_neu_pos']})"
            f" ({time.perf_counter() - t0:.0f} s)"
        )
    RESULTS[key] = out


def detect(ctx) -> None:
    out = {}
    for name, expect in (
        ("news-dev", "article"),
        ("vlsp2016", "post"),
        ("vsfc-test", "post"),
        ("visfd-test", "post"),
    ):
        rows = ctx.rows(name)
        got = [detect_genre({}, t) for t in rows.texts]
        out[name] = round(float(np.mean([g == expect for g in got])), 4)
    RESULTS["genre_detection_accuracy"] = out
    say(f"[genre detection, no genre field] share detected right: {out}")


def topics(ctx) -> None:
    news = ctx.news()
    mask = np.isin(ctx.news_rows.topics, TOPICS)
    d = news.subset(np.flatnonzero(mask))
    d.labels = ctx.news_rows.topics[mask]
    out = {}
    for name, grid in (
        ("tfidf+encoder", [g for g in TOPIC_GRID if g.encoder_weight > 0]),
        ("tfidf", tfidf_only(TOPIC_GRID)),
    ):
        dd = d if name != "tfidf" else Data(d.texts, d.segs, d.labels, None)
        from sklearn.model_selection import StratifiedKFold

        pred = np.empty(len(dd.texts), dtype=object)
        chosen = []
        for tr, te in StratifiedKFold(ctx.args.outer, shuffle=True, random_state=0).split(
            np.zeros(len(dd.labels)), dd.labels
        ):
            a = dd.subset(tr)
            oof = grid_oof(grid, a, ctx.args.inner, 0, ctx.base(), TOPICS)
            scores = [
                (f1_score(a.labels, np.array(TOPICS)[o.argmax(1)], average="macro"), g)
                for g, o in oof.items()
            ]
            cfg = max(scores, key=lambda x: x[0])[1]
            chosen.append(cfg.label())
            h = Head(cfg, TOPICS).fit(a, ctx.base(), calibrate=False)
            b = dd.subset(te)
            pred[te] = np.array(TOPICS)[
                h.decision_matrix(h.features(b.texts, b.segs, b.emb)).argmax(1)
            ]
        f = f1_score(dd.labels, pred, average="macro")
        out[name] = {
            "nested_macro_f1": round(float(f), 4),
            "accuracy": round(float(np.mean(pred == dd.labels)), 4),
            "chosen": sorted(set(chosen)),
        }
        say(
            f"[topics: {name}] nested {ctx.args.outer}x{ctx.args.inner} CV macro-F1 {f:.3f}, accuracy "
            f"{np.mean(pred == dd.labels):.3f}; chosen {sorted(set(chosen))}"
        )
    RESULTS["topics"] = out


class Ctx:
    def __init__(self, args) -> None:
        self.args = args
        self.cache = args.state_dir / "nlp-cache"
        self.encoder, why = load_encoder(args.state_dir, cache_entries=2_000_000)
        if self.encoder is None:
            sys.exit(
                f"the encoder cannot run here ({why}): the benchmark compares heads with and without it"
            )
        self._data: dict[tuple[str, bool], tuple[Data, object]] = {}
        self._base = None
        self.news_rows = None

    def _get(self, spec: str, stripped: bool = False):
        key = (spec, stripped)
        if key not in self._data:
            t0 = time.perf_counter()
            self._data[key] = labelled_data(
                self.args.data_dir, spec, self.encoder, self.cache, stripped
            )
            say(
                f"  ({spec}{' without diacritics' if stripped else ''}: {len(self._data[key][0].texts)} texts, "
                f"{time.perf_counter() - t0:.0f} s to read, segment and encode; encoder misses so far {self.encoder.misses})"
            )
        return self._data[key]

    def news(self) -> Data:
        d, rows = self._get("news-dev")
        self.news_rows = rows
        return d

    def rows(self, spec: str):
        from nlp import corpora

        return corpora.load(self.args.data_dir, spec)

    def post(self, spec: str, stripped: bool = False) -> Data:
        return self._get(spec, stripped)[0]

    def base(self):
        if self._base is None:
            self._base = news_base_model(self.args.data_dir, self.cache, echo=say)
        return self._base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=(REPO / ".." / "shared" / "data").resolve())
    ap.add_argument("--state-dir", type=Path, default=REPO / ".state")
    ap.add_argument(
        "--sections",
        nargs="*",
        default=["articles", "posts", "vsfc", "visfd", "cross", "detect", "topics"],
    )
    ap.add_argument("--outer", type=int, default=10)
    ap.add_argument("--inner", type=int, default=3)
    ap.add_argument("--post-outer", type=int, default=5)
    ap.add_argument(
        "--vlsp",
        default="vlsp2016",
        help="the VLSP 2016 set the article head is scored on (cross-genre; NAME or NAME:N)",
    )
    ap.add_argument(
        "--post-candidates",
        nargs="*",
        default=None,
        help=f"post-head candidates to measure (default all: {', '.join(POST_CANDIDATES)})",
    )
    ap.add_argument(
        "--post-nested",
        nargs="*",
        default=None,
        help="candidates that get the nested VLSP CV (default all; the others: held-out tests only)",
    )
    ap.add_argument(
        "--post-tfidf",
        nargs="*",
        default=None,
        help="candidates also measured with the TF-IDF-only head (default: vlsp and the shipped mix)",
    )
    ap.add_argument(
        "--criterion",
        default="auto",
        choices=["auto", "pooled", "per-set"],
        help="how the grid point and neutral bias are chosen on a mix of sets (auto: per-set mean)",
    )
    ap.add_argument(
        "--post-sample",
        type=int,
        default=None,
        help="cut every post set to a fixed subsample of N items (quick smoke runs only)",
    )
    ap.add_argument(
        "--vsfc-train", default="vsfc-train", help="training spec of the in-domain VSFC figure"
    )
    ap.add_argument(
        "--visfd-train",
        default="visfd-train:3000",
        help="training spec of the in-domain ViSFD figure",
    )
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args()
    args.cross = "cross" in args.sections
    unknown = set(args.sections) - {
        "articles",
        "posts",
        "vsfc",
        "visfd",
        "cross",
        "detect",
        "topics",
    }
    if unknown:
        sys.exit(f"--sections: unknown section(s) {', '.join(sorted(unknown))}")
    if not (args.data_dir / "sentiment").exists():
        sys.exit(
            f"no sentiment data under {args.data_dir}: give --data-dir (the shared data folder)"
        )
    ctx = Ctx(args)
    t0 = time.perf_counter()
    run = {
        "articles": lambda: articles(ctx),
        "posts": lambda: posts(ctx),
        "vsfc": lambda: official(ctx, args.vsfc_train, "vsfc-test", "uit_vsfc"),
        "visfd": lambda: official(ctx, args.visfd_train, "visfd-test", "uit_visfd"),
        "detect": lambda: detect(ctx),
        "topics": lambda: topics(ctx),
    }
    for section in args.sections:  # in the order given ("cross" adds to articles and posts)
        if section in run:
            run[section]()
            if args.json_out:  # written after every section: a long run keeps what it measured
                RESULTS["seconds"] = round(time.perf_counter() - t0)
                args.json_out.write_text(
                    json.dumps(RESULTS, ensure_ascii=False, default=str), encoding="utf-8"
                )
    RESULTS["seconds"] = round(time.perf_counter() - t0)
    text = json.dumps(RESULTS, ensure_ascii=False, default=str)
    if args.json_out:
        args.json_out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
