"""Training the shipped model (``ioc nlp train``) from the shared data folder, read by path."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sklearn

from nlp.heads import TFIDF_ONLY, WITH_ENCODER, Data, GenreModel, Head, HeadConfig
from nlp.scoring import save_model
from nlp.selection import choose, grid_oof, macro_f1
from nlp.sentiment import (
    LABELS,
    TOPICS,
    Corpus,
    ModelConfig,
    NewsModel,
    cross_validate,
    frozen_reference_ids,
    ids_digest,
    load_news_dev,
    prepare,
    train_model,
)


def news_corpora(data_dir: Path) -> tuple[Corpus, Corpus, list[dict[str, Any]]]:
    """(labelled news-dev corpus, unlabelled corpus, raw labelled items)."""
    labelled, unlabelled = load_news_dev(data_dir)
    lab = prepare(
        [x["text"] for x in labelled],
        labels=np.array([x["label"] for x in labelled]),
        topics=np.array([x.get("topic") or "" for x in labelled]),
        ids=[str(x["id"]) for x in labelled],
    )
    seen = set(lab.texts)
    keep = [u["text"] for u in unlabelled]
    unl = prepare(keep)
    # an unlabelled text identical to a labelled one would leak it into the LSA space
    mask = [t not in seen for t in unl.texts]
    unl = Corpus([t for t, m in zip(unl.texts, mask, strict=True) if m], [s for s, m in zip(unl.segs, mask, strict=True) if m])
    return lab, unl, labelled


def train_release(
    data_dir: Path,
    output_dir: Path,
    version: str | None = None,
    config: ModelConfig | None = None,
    cv: bool = False,
    echo: Callable[[str], None] = print,
) -> tuple[Path, dict[str, Any]]:
    """Train on all of news-dev (+ unlabelled news) and write ``sentiment-<version>.joblib``."""
    cfg = config or ModelConfig()
    t0 = time.perf_counter()
    echo(f"reading and segmenting news-dev from {data_dir} ...")
    lab, unl, raw = news_corpora(data_dir)
    echo(f"{len(lab.texts)} labelled, {len(unl.texts)} unlabelled texts ({time.perf_counter() - t0:.0f} s)")
    report: dict[str, Any] = {"config": cfg.as_dict()}
    if cv:
        echo("10-fold cross-validation ...")
        report["news_dev_cv"] = cross_validate(lab, unl, cfg)
        echo(f"CV: {report['news_dev_cv']}")
    version = version or dt.date.today().strftime("%Y.%m.%d")
    ref = frozen_reference_ids(raw)
    meta = {
        "trained_on": "news-dev (all labelled items) + news-dev unlabelled",
        "n_labelled": len(lab.texts),
        "n_unlabelled": len(unl.texts),
        "sklearn_version": sklearn.__version__,
        "frozen_reference_sha256": ids_digest(ref),
        "frozen_reference_n": len(ref),
    }
    model = train_model(lab, unl, cfg, version=version, meta=meta)
    path = save_model(model, Path(output_dir) / f"sentiment-{version}.joblib")
    report.update(meta)
    report["temperature"] = round(model.temperature, 3)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    report["size_bytes"] = path.stat().st_size
    echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return path, report


# ------------------------------------------------------------------------------ genre model (format 2)

# The model-selection grids of the genre heads (nlp.selection chooses inside CV folds; the
# benchmark measures the whole procedure with nested CV: see nlp/models/MODEL_CARD.md).
ARTICLE_GRID: tuple[HeadConfig, ...] = ()
POST_GRID: tuple[HeadConfig, ...] = ()
TOPIC_GRID: tuple[HeadConfig, ...] = ()


def tfidf_only(grid: Sequence[HeadConfig]) -> list[HeadConfig]:
    """The TF-IDF-only points of a grid (the fallback heads choose among these)."""
    return [g for g in grid if g.encoder_weight <= 0 and g.text != "none"]


def fit_genre_heads(
    grid: Sequence[HeadConfig],
    data: Data,
    news_base: NewsModel | None,
    folds: int = 5,
    classes: tuple[str, ...] = LABELS,
    echo: Callable[[str], None] = print,
    name: str = "",
) -> dict[str, Head]:
    """The encoder head and the TF-IDF fallback head of one genre (or of topics): each chosen
    by ``folds``-fold CV over its part of the grid (points with the encoder / TF-IDF-only
    points; bias included for sentiment), refitted on all of ``data`` and calibrated."""
    out: dict[str, Head] = {}
    plans = [(TFIDF_ONLY, tfidf_only(grid))]
    if data.emb is not None and any(g.encoder_weight > 0 for g in grid):
        plans.insert(0, (WITH_ENCODER, [g for g in grid if g.encoder_weight > 0]))
    for feats, g in plans:
        if len(g) == 1:
            cfg, f = g[0], float("nan")
        elif classes == LABELS:
            cfg, f, _ = choose(g, data if feats == WITH_ENCODER else _no_emb(data), folds, 0, news_base)
        else:
            oof = grid_oof(g, data, folds, 0, news_base, classes)
            scored = [(macro_f1(data.labels, np.array(classes)[d.argmax(1)], classes), c) for c, d in oof.items()]
            f, cfg = max(scored, key=lambda fc: fc[0])
        head = Head(cfg, classes).fit(data if feats == WITH_ENCODER else _no_emb(data), news_base, folds=folds)
        head.meta = {"cv_macro_f1": round(f, 4), "n_train": len(data.texts)}
        echo(f"{name} [{feats}]: {cfg.label()} (CV macro-F1 {f:.3f}, temperature {head.temperature:.2f})")
        out[feats] = head
    return out


def _no_emb(data: Data) -> Data:
    return Data(data.texts, data.segs, data.labels, None, data.weights)


def build_genre_model(
    article: Data,
    post: Data,
    topics: Data,
    news_base: NewsModel,
    version: str,
    encoder_name: str | None,
    encoder_max_chars: int,
    grids: dict[str, Sequence[HeadConfig]] | None = None,
    folds: int = 5,
    meta: dict[str, Any] | None = None,
    echo: Callable[[str], None] = print,
) -> GenreModel:
    """Fit both genres' heads and the topic heads (encoder + TF-IDF fallback each)."""
    grids = grids or {"article": ARTICLE_GRID, "post": POST_GRID, "topic": TOPIC_GRID}
    heads = {
        "article": fit_genre_heads(grids["article"], article, news_base, folds, echo=echo, name="article"),
        "post": fit_genre_heads(grids["post"], post, news_base, folds, echo=echo, name="post"),
    }
    topic = fit_genre_heads(grids["topic"], topics, news_base, folds, TOPICS, echo=echo, name="topic")
    return GenreModel(
        version=version, heads=heads, topic=topic, encoder_name=encoder_name,
        meta={**(meta or {}), "encoder_max_chars": encoder_max_chars},
    )
