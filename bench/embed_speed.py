"""Benchmark the local all-MiniLM-L6-v2 embedder: passages/second by batch size, and RSS.

Run: `uv run python bench/embed_speed.py [--passages N] [--words W] [--rounds R]`. Shared or
noisy machines vary a lot between rounds, so the best and the median round are both shown.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time
from pathlib import Path

from torale.ai.embeddings import LocalMiniLM

_VOCAB = (
    "price drop release date announced council budget transit update new product launch "
    "stock market rate inflation weather storm warning election result court ruling company "
    "earnings report quarter revenue growth team season game score ticket sale concert tour "
    "version security patch vulnerability outage service status restored delayed cancelled "
    "flight airline airport hotel booking available sold out limited edition pre-order"
).split()


def _rss_mb() -> float:
    """Current resident set size in MiB (from /proc, falling back to the peak from getrusage)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _passages(n: int, words: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(_VOCAB) for _ in range(words)).capitalize() + "." for _ in range(n)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--passages", type=int, default=256, help="passages per batch size")
    parser.add_argument("--words", type=int, default=80, help="words per passage")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per batch size")
    args = parser.parse_args()

    print(f"RSS before load: {_rss_mb():.0f} MiB")
    started = time.perf_counter()
    model = LocalMiniLM()
    model.load()
    print(f"load: {time.perf_counter() - started:.2f}s, RSS after load: {_rss_mb():.0f} MiB")

    texts = _passages(args.passages, args.words)
    tokens = sum(len(e.ids) for e in model._get_model().tokenizer.encode_batch(texts))
    print(f"{len(texts)} passages of {args.words} words (~{tokens / len(texts):.0f} tokens each)")
    model.embed_sync(texts[:8])  # warm-up

    for batch_size in args.batch_sizes:
        rates = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            for i in range(0, len(texts), batch_size):
                model.embed_sync(texts[i : i + batch_size])
            rates.append(len(texts) / (time.perf_counter() - started))
        print(
            f"batch {batch_size:>3}: {max(rates):8.1f} passages/s best of {args.rounds}"
            f" (median {statistics.median(rates):.1f})"
        )
    print(f"RSS at end: {_rss_mb():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
