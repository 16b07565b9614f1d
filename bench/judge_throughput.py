"""Judge throughput: the OpenAI-compatible judge at concurrency 1 and 8, then served from the generation cache.

A local OpenAI-compatible server (127.0.0.1, a free port, in a process of its own: tests/support/fake_openai.py)
answers every request after a fixed delay, as a model behind an endpoint would. The same pairwise judgements (questions
with two answers, in both orders, rendered with the pairwise judge's template) go to nift-gate's judge at
concurrency 1 and at concurrency 8, in ABBA order, with the cache off; then twice through the cache on a fresh
runs home: the first run fills it, the second is served from it. Targets, measured in one run: concurrency 8
>= 6x the judgements/s of concurrency 1, and the cached run >= 50x faster than the uncached one at concurrency 8.

    .venv/bin/python bench/judge_throughput.py [--judgements 64] [--delay-ms 50] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from harness.bench.pairwise import JUDGE_TEMPLATE, parse_verdict
from harness.core.generation import GenerationRequest, GeneratorConfig
from harness.core.generation_cache import cached_generator


def judgements(n: int) -> list[GenerationRequest]:
    """n judge requests: n/2 questions, each with its two answers in both orders."""
    requests = []
    for i in range(n):
        question, first, second = f"Question {i // 2}: how do tides work?", "The moon pulls the sea.", "Wind."
        a, b = (first, second) if i % 2 == 0 else (second, first)
        requests.append(GenerationRequest(key=f"q{i // 2}|{i % 2}", max_new_tokens=16,
                                          prompt=JUDGE_TEMPLATE.format(question=question, answer_a=a, answer_b=b)))
    return requests


ROOT = Path(__file__).resolve().parents[1]


def timed_run(base_url: str, requests: list[GenerationRequest], concurrency: int, home: Path,
              cache: bool) -> tuple[float, object]:
    judge = cached_generator(GeneratorConfig(backend="openai", base_url=base_url, model="judge",
                                             temperature=0.0, concurrency=concurrency, cache=cache), home)
    start = time.perf_counter()
    generations = judge.generate(requests, seed=0)
    seconds = time.perf_counter() - start
    if any(g.error for g in generations) or any(parse_verdict(g.text) != "A" for g in generations):
        raise SystemExit("a judgement failed or was not parseable: the figures would not be comparable")
    return seconds, judge.usage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judgements", type=int, default=64)
    parser.add_argument("--delay-ms", type=float, default=50.0, help="The server's fixed delay per reply.")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    requests = judgements(args.judgements)
    home = Path(tempfile.mkdtemp(prefix="judge-throughput-"))
    seconds: dict[int, list[float]] = {1: [], args.concurrency: []}
    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "support" / "fake_openai.py"), "--delay-ms",
                               str(args.delay_ms), "--reply", "A"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        base_url = server.stdout.readline().strip()
        for concurrency in (1, args.concurrency, args.concurrency, 1):  # ABBA: drift hits both sides alike
            seconds[concurrency].append(timed_run(base_url, requests, concurrency, home, cache=False)[0])
        filling, _ = timed_run(base_url, requests, args.concurrency, home, cache=True)
        cached, usage = timed_run(base_url, requests, args.concurrency, home, cache=True)
        peak = httpx.get(f"{base_url}/stats").json()["peak_in_flight"]
    finally:
        server.stdin.close()
        server.wait(timeout=10)
    serial, parallel = statistics.mean(seconds[1]), statistics.mean(seconds[args.concurrency])
    rate = {c: len(requests) / statistics.mean(s) for c, s in seconds.items()}
    print(f"\njudge throughput, {len(requests)} judgements, server delay {args.delay_ms:.0f} ms per reply "
          f"(127.0.0.1), OpenAI-compatible backend; peak requests in flight seen by the server: {peak}\n")
    print("| judge | runs (s) | mean s | judgements/s |\n|---|---|---:|---:|")
    for concurrency, runs in seconds.items():
        print(f"| concurrency {concurrency}, no cache | {', '.join(f'{s:.3f}' for s in runs)} | "
              f"{statistics.mean(runs):.3f} | {rate[concurrency]:.1f} |")
    print(f"| concurrency {args.concurrency}, cache filled by this run | {filling:.3f} | {filling:.3f} | "
          f"{len(requests) / filling:.1f} |")
    print(f"| the same judgements again, from the cache ({usage.cache_hits} hits, {usage.calls} calls) | "
          f"{cached:.4f} | {cached:.4f} | {len(requests) / cached:.0f} |")
    print(f"\nconcurrency {args.concurrency} / 1: {serial / parallel:.2f}x  (target >= 6x)")
    print(f"cached / uncached at concurrency {args.concurrency}: {parallel / cached:.0f}x faster  (target >= 50x)")


if __name__ == "__main__":
    main()
