"""Training the shipped model (``ioc nlp train``) from the shared data folder, read by path."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import sklearn

from nlp.scoring import save_model
from nlp.sentiment import (
    Corpus,
    ModelConfig,
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
