"""Toxicity scoring throughput: batched vs one text at a time, on the same 2,000 texts, in one run.

Scorers: the embedded default's alt-profanity-check fallback, and the real detoxify code path with a tiny
detoxify-format checkpoint built offline (tests/support/tiny_detoxify.py; its scores are meaningless, its
cost structure is detoxify's). Target: batched >= 5x the per-text loop.

    .venv/bin/python bench/toxicity_throughput.py [--texts 2000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT / "tests" / "support"))

from tiny_detoxify import build_tiny_detoxify

from audits.toxicity.scorers import DetoxifyScorer, ProfanityCheckScorer
from harness.core.threads import choose_threads
from harness.data.corpus import embedded_corpus_dir


def texts(n: int) -> list[str]:
    sentences = []
    for file in sorted(embedded_corpus_dir().glob("*.jsonl")):
        for line in file.read_text().splitlines():
            sentences += [s.strip() + "." for s in json.loads(line)["text"].split(".") if len(s.split()) > 3]
    return [sentences[i % len(sentences)] for i in range(n)]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=2000)
    args = parser.parse_args()
    data = texts(args.texts)
    threads = choose_threads("generate")
    checkpoint, config_dir = build_tiny_detoxify(Path(tempfile.mkdtemp()), data[:200])
    rows = []
    for scorer in (ProfanityCheckScorer(), DetoxifyScorer(checkpoint=str(checkpoint), config_dir=str(config_dir),
                                                          batch_size=64)):
        batched = timed(lambda scorer=scorer: scorer.score(data))
        loop = timed(lambda scorer=scorer: [scorer.score([t]) for t in data])
        rows.append((scorer.identity.name, batched, loop))
    print(f"\ntoxicity scoring, {len(data)} texts (sentences of the embedded corpus), threads={threads.threads}\n")
    print("| scorer | batched s | per-text loop s | texts/s batched | ratio |\n|---|---:|---:|---:|---:|")
    for name, batched, loop in rows:
        print(f"| {name} | {batched:.2f} | {loop:.2f} | {len(data) / batched:.0f} | {loop / batched:.1f}x |")
    print("\n(target: ratio >= 5x)")


if __name__ == "__main__":
    main()
