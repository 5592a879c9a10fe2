"""Readers of the labelled sentiment sets in the shared data folder (read by path, never copied).

Every reader returns :class:`Labelled` rows: normalised text (:func:`nlp.text.normalize_text`),
label (negative/neutral/positive), a group (source or split) and an id. Used by training
(:mod:`nlp.training`) and the benchmark; nothing here is shipped in a model.

| name | file | genre |
|---|---|---|
| ``news-dev`` | sentiment/news-dev/news_sentiment_dev.jsonl (600) | article |
| ``vlsp2016`` | sentiment/vlsp2016-sa/train.tsv (5,100) | post |
| ``vsfc-train|val|test`` | sentiment/uit-vsfc/<split>/sents.txt + sentiments.txt | post |
| ``visfd-train|dev|test`` | sentiment/uit-visfd/<Split>.csv, label from stars (1–2/3/4–5) | post |
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nlp.errors import DataNotFoundError
from nlp.text import normalize_text

_VLSP = {
    "neg": "negative",
    "neu": "neutral",
    "pos": "positive",
    "NEG": "negative",
    "NEU": "neutral",
    "POS": "positive",
}
_VSFC = {"0": "negative", "1": "neutral", "2": "positive"}


@dataclass
class Labelled:
    """Parallel lists of one labelled set."""

    name: str
    texts: list[str]
    labels: np.ndarray
    groups: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    topics: np.ndarray | None = None
    ambiguous: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx) -> Labelled:
        idx = np.asarray(idx)
        return Labelled(
            self.name,
            [self.texts[i] for i in idx],
            self.labels[idx],
            [self.groups[i] for i in idx] if self.groups else [],
            [self.ids[i] for i in idx] if self.ids else [],
            self.topics[idx] if self.topics is not None else None,
            self.ambiguous[idx] if self.ambiguous is not None else None,
        )


def _need(path: Path) -> Path:
    if not path.exists():
        raise DataNotFoundError(f"{path} does not exist (is --data-dir the shared data folder?)")
    return path


def news_dev(data_dir: Path) -> Labelled:
    path = _need(Path(data_dir) / "sentiment" / "news-dev" / "news_sentiment_dev.jsonl")
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    return Labelled(
        "news-dev",
        [normalize_text(r["text"]) for r in rows],
        np.array([r["label"] for r in rows]),
        [str(r.get("source", "")).split("@")[0].rsplit("/", 1)[0] for r in rows],
        [str(r["id"]) for r in rows],
        np.array([r.get("topic") or "" for r in rows]),
        np.array([bool(r.get("ambiguous")) for r in rows]),
    )


def news_unlabelled(data_dir: Path) -> list[str]:
    path = _need(Path(data_dir) / "sentiment" / "news-dev" / "unlabelled.jsonl")
    with open(path, encoding="utf-8") as fh:
        return [normalize_text(json.loads(x)["text"]) for x in fh if x.strip()]


def vlsp2016(data_dir: Path) -> Labelled:
    path = _need(Path(data_dir) / "sentiment" / "vlsp2016-sa" / "train.tsv")
    texts, labels = [], []
    with open(path, encoding="utf-8", newline="") as fh:
        for n, line in enumerate(fh):
            if n == 0 and line.startswith("label\t"):
                continue
            lab, _, text = line.rstrip("\n").partition("\t")
            if lab.strip() in _VLSP and text.strip():
                texts.append(normalize_text(text))
                labels.append(_VLSP[lab.strip()])
    return Labelled(
        "vlsp2016",
        texts,
        np.array(labels),
        ["vlsp2016"] * len(texts),
        [f"vlsp-{i}" for i in range(len(texts))],
    )


def vsfc(data_dir: Path, split: str) -> Labelled:
    base = Path(data_dir) / "sentiment" / "uit-vsfc" / split
    sents = _need(base / "sents.txt").read_text(encoding="utf-8").split("\n")
    ys = _need(base / "sentiments.txt").read_text(encoding="utf-8").split("\n")
    pairs = [(s, y.strip()) for s, y in zip(sents, ys, strict=False) if y.strip() in _VSFC]
    return Labelled(
        f"vsfc-{split}",
        [normalize_text(s) for s, _ in pairs],
        np.array([_VSFC[y] for _, y in pairs]),
        [f"vsfc-{split}"] * len(pairs),
        [f"vsfc-{split}-{i}" for i in range(len(pairs))],
    )


def visfd(data_dir: Path, split: str) -> Labelled:
    name = {"train": "Train", "dev": "Dev", "test": "Test"}[split]
    path = _need(Path(data_dir) / "sentiment" / "uit-visfd" / f"{name}.csv")
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    texts, labels = [], []
    for r in rows:
        s = int(r["n_star"])
        texts.append(normalize_text(r["comment"]))
        labels.append("negative" if s <= 2 else "neutral" if s == 3 else "positive")
    return Labelled(
        f"visfd-{split}",
        texts,
        np.array(labels),
        [f"visfd-{split}"] * len(texts),
        [f"visfd-{split}-{i}" for i in range(len(texts))],
    )


def load(data_dir: Path, name: str) -> Labelled:
    """One set by name: news-dev, vlsp2016, vsfc-<train|val|test>, visfd-<train|dev|test>."""
    if name == "news-dev":
        return news_dev(data_dir)
    if name == "vlsp2016":
        return vlsp2016(data_dir)
    kind, _, split = name.partition("-")
    if kind == "vsfc" and split in ("train", "val", "test"):
        return vsfc(data_dir, split)
    if kind == "visfd" and split in ("train", "dev", "test"):
        return visfd(data_dir, split)
    raise ValueError(f"unknown data set {name!r}")


def sample_indices(n: int, k: int, seed: int = 0) -> np.ndarray:
    """A fixed subsample of ``k`` of ``n`` items (sorted indices; all of them when k >= n)."""
    if k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


POST_TRAIN_SETS = ("vlsp2016", "vsfc-train", "vsfc-val", "visfd-train", "visfd-dev")
POST_TEST_SETS = ("vsfc-test", "visfd-test")
