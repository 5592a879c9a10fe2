"""Sentiment model selection, measured with a fixed protocol (issue 11): nested CV per genre,
the tuned (non-nested) figure and the gap, memorisation checks and cross-genre figures.

    nice -n 10 .venv/bin/python benchmarks/nlp_sentiment.py [--data-dir ../shared/data]
        [--state-dir .state] [--sections articles posts vsfc visfd cross detect topics]
        [--outer 10] [--inner 3] [--post-outer 5] [--json-out FILE]

Protocol (every choice inside the folds):
- articles (news-dev, 600): for each feature family (encoder only; LSA+lexicon + encoder; news
  TF-IDF + encoder; news TF-IDF only) nested CV — outer 10 folds, in each the grid point
  (C, encoder weight) and the neutral bias are chosen by 3-fold CV of the outer training part,
  refitted there and scored on the outer test part — and the tuned figure (grid point and
  bias picked on the same 10 folds that score them) with the gap. Memorisation checks: trained
  on one source (magizbox, 537 items) and scored on the other two (63 items); leave-one-topic-out
  (12 folds, each topic predicted by a head that saw none of it); the article head applied to
  the comment sets (cross-genre).
- posts (VLSP 2016 train, 5,100): nested CV (outer 5, inner 3) for the encoder and the
  TF-IDF-only heads, tuned figure and gap, and the same outer folds scored on the test part
  with its diacritics removed (unaccented text).
- vsfc / visfd: heads chosen by CV on the official training split, scored once on the
  official test split (and on the test split without diacritics); plus the shipped post head.
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
from nlp.selection import choose, grid_oof, nested_cv, report, tuned_cv  # noqa: E402
from nlp.sentiment import LABELS, TOPICS  # noqa: E402
from nlp.training import (  # noqa: E402
    ARTICLE_FAMILIES,
    POST_GRID,
    POST_SETS,
    TOPIC_GRID,
    labelled_data,
    news_base_model,
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
        tuned = tuned_cv(grid, news, ctx.args.outer, 0, base)
        gap = tuned["macro_f1"] - nested["scores"]["macro_f1"]
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


def posts(ctx) -> None:
    vlsp = ctx.post(ctx.args.vlsp)
    stripped = ctx.post(ctx.args.vlsp, stripped=True) if ctx.args.unaccented else None
    out = {}
    for name, grid in (
        ("tfidf+encoder", [g for g in POST_GRID if g.encoder_weight > 0]),
        ("tfidf", tfidf_only(POST_GRID)),
    ):
        data = vlsp if name != "tfidf" else Data(vlsp.texts, vlsp.segs, vlsp.labels, None)
        t0 = time.perf_counter()
        nested = nested_cv(grid, data, ctx.args.post_outer, ctx.args.inner, 0, None)
        tuned = tuned_cv(grid, data, ctx.args.post_outer, 0, None)
        gap = tuned["macro_f1"] - nested["scores"]["macro_f1"]
        row = {
            "nested": nested["scores"],
            "nested_chosen": nested["chosen"],
            "tuned": tuned["macro_f1"],
            "tuned_chosen": tuned["chosen"],
            "gap": round(gap, 4),
        }
        msg = ""
        if stripped is not None:
            # the same outer folds; train on accented text (+ its stripped copies), score stripped test folds
            from sklearn.model_selection import StratifiedKFold

            preds = {
                False: np.empty(len(vlsp.texts), dtype=object),
                True: np.empty(len(vlsp.texts), dtype=object),
            }
            sdata = (
                stripped
                if name != "tfidf"
                else Data(stripped.texts, stripped.segs, stripped.labels, None)
            )
            skf = StratifiedKFold(ctx.args.post_outer, shuffle=True, random_state=0)
            cfg = tuned["config"]
            for trn, tst in skf.split(np.zeros(len(vlsp.labels)), vlsp.labels):
                for aug in (False, True):
                    train = (
                        data.subset(trn)
                        if not aug
                        else Data.concat([data.subset(trn), sdata.subset(trn)])
                    )
                    h = Head(cfg).fit(train, None, calibrate=False)
                    t = sdata.subset(tst)
                    preds[aug][tst] = np.array(LABELS)[
                        h.decision_matrix(h.features(t.texts, t.segs, t.emb)).argmax(1)
                    ]
            row["unaccented_test"] = report(vlsp.labels, preds[False])
            row["unaccented_test_trained_with_stripped_copies"] = report(vlsp.labels, preds[True])
            msg = (
                f"; unaccented test folds {row['unaccented_test']['macro_f1']:.3f}, trained with stripped copies "
                f"{row['unaccented_test_trained_with_stripped_copies']['macro_f1']:.3f} ({cfg.label()})"
            )
        out[name] = row
        if ctx.args.cross:
            h = Head(tuned["config"]).fit(data, None, calibrate=False)
            nd = ctx.news()
            pred = np.array(LABELS)[
                h.decision_matrix(
                    h.features(nd.texts, nd.segs, nd.emb if name != "tfidf" else None)
                ).argmax(1)
            ]
            row["on_news-dev"] = report(nd.labels, pred)
            msg += f"; this head on news-dev {row['on_news-dev']['macro_f1']:.3f}"
        say(
            f"[posts: {ctx.args.vlsp} {name}] nested {ctx.args.post_outer}x{ctx.args.inner} CV macro-F1 "
            f"{nested['scores']['macro_f1']:.3f}; tuned {tuned['macro_f1']:.3f} ({tuned['chosen']}), gap {gap:+.3f}"
            f"{msg} ({time.perf_counter() - t0:.0f} s)"
        )
        say(f"    chosen in the outer folds: {sorted(set(nested['chosen']))}")
    RESULTS["posts_vlsp2016"] = out


def official(ctx, train_spec: str, test_name: str, key: str) -> None:
    train, test = ctx.post(train_spec), ctx.post(test_name)
    stest = ctx.post(test_name, stripped=True) if ctx.args.unaccented else None
    out = {}
    for name, grid in (
        ("tfidf+encoder", [g for g in POST_GRID if g.encoder_weight > 0]),
        ("tfidf", tfidf_only(POST_GRID)),
    ):
        tr = train if name != "tfidf" else Data(train.texts, train.segs, train.labels, None)
        t0 = time.perf_counter()
        cfg, f_cv, _ = choose(grid, tr, 3, 0, None)
        h = Head(cfg).fit(tr, None, calibrate=False)
        row = {"chosen": cfg.label(), "cv_on_train": round(f_cv, 4)}
        for tag, d in (("test", test), ("test_unaccented", stest)):
            if d is None:
                continue
            pred = np.array(LABELS)[
                h.decision_matrix(
                    h.features(d.texts, d.segs, d.emb if name != "tfidf" else None)
                ).argmax(1)
            ]
            row[tag] = report(d.labels, pred)
        out[name] = row
        say(
            f"[{key}: {name}] trained on {train_spec} ({cfg.label()}, 3-fold CV {f_cv:.3f}): test macro-F1 "
            f"{row['test']['macro_f1']:.3f} (F1 neg/neu/pos {row['test']['f1_neg_neu_pos']})"
            + (
                f"; unaccented test {row['test_unaccented']['macro_f1']:.3f}"
                if "test_unaccented" in row
                else ""
            )
            + f" ({time.perf_counter() - t0:.0f} s)"
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
        default=POST_SETS["vlsp"],
        help="the VLSP 2016 set for the nested CV (NAME or NAME:N)",
    )
    ap.add_argument(
        "--vsfc-train",
        default=POST_SETS["vsfc"],
        help="training spec for the VSFC figure (NAME or NAME:N)",
    )
    ap.add_argument(
        "--visfd-train", default="visfd-train:2000", help="training spec for the ViSFD figure"
    )
    ap.add_argument(
        "--no-unaccented",
        dest="unaccented",
        action="store_false",
        help="skip the unaccented-text figures",
    )
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args()
    args.cross = "cross" in args.sections
    if not (args.data_dir / "sentiment").exists():
        sys.exit(
            f"no sentiment data under {args.data_dir}: give --data-dir (the shared data folder)"
        )
    ctx = Ctx(args)
    t0 = time.perf_counter()
    if "articles" in args.sections:
        articles(ctx)
    if "posts" in args.sections:
        posts(ctx)
    if "vsfc" in args.sections:
        official(ctx, args.vsfc_train, "vsfc-test", "uit_vsfc")
    if "visfd" in args.sections:
        official(ctx, args.visfd_train, "visfd-test", "uit_visfd")
    if "detect" in args.sections:
        detect(ctx)
    if "topics" in args.sections:
        topics(ctx)
    RESULTS["seconds"] = round(time.perf_counter() - t0)
    text = json.dumps(RESULTS, ensure_ascii=False, default=str)
    if args.json_out:
        args.json_out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
