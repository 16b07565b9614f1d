"""Review store and app speed: a queue of 50,000 items.

    .venv/bin/python bench/review_store.py [--items 50000] [--writers 8] [--labels 500] [--renders 5]

1. Time to render the first queue page: a reviewer signs in through the real form of dashboard/app.py under
   ``streamlit.testing`` AppTest; the timed run is the one that renders the queue (progress over 100,000
   assignments, the first page of 50 items, the first item with its form). The first render in the process
   (cold: imports, cache, engine) and the median of the next renders (warm) are reported separately.
2. Label-write latency: 8 writer processes started together, 500 labels each, every write committed
   (``ReviewStore.add_label``) and timed by the writer. p50 / p99 / max over all 4,000 writes.

SQLite always (the default store, WAL, synchronous=FULL); PostgreSQL too where tools/pg_cluster.py can start a
throwaway cluster. Targets (issue 6): first page < 1 s, write p99 < 50 ms. Prints a Markdown table.
Run it alone: other CPU work on this 2-core machine changes every number.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

TOKENS = {"ann": "ann-token", "bob": "bob-token", "cy": "cy-token"}


def seed(url: str, n_items: int) -> float:
    from harness.review.store import NewItem, ReviewStore

    started = time.perf_counter()
    store = ReviewStore(url)
    text = "The quick brown fox jumps over the lazy dog. " * 12
    store.add_items([NewItem(kind="single" if i % 10 else "pairwise", stratum="random", source="bench/qa",
                             source_record_id="bench", source_item_id=str(i), task="qa", candidate="cand",
                             model="cand", prompt=f"Question {i}: {text[:200]}", content_key=f"item-{i}",
                             **({"output": f"Answer {i}. {text}"} if i % 10 else
                                {"output_a": f"A {i}. {text}", "output_b": f"B {i}. {text}", "model_a": "cand",
                                 "model_b": "base"}),
                             scores={"acc": float(i % 2)}, flags={"toxic": i % 97 == 0}) for i in range(n_items)])
    store.assign(list(TOKENS), 2)
    store.close()
    return time.perf_counter() - started


def render_times(url: str, renders: int) -> list[float]:
    import yaml
    from streamlit.testing.v1 import AppTest

    config = Path(tempfile.mkdtemp(prefix="nift-review-bench-")) / "pipeline.yaml"
    config.write_text(yaml.safe_dump({"run": "bench", "review": {
        "database": url, "reviewers": [{"name": n, "token": t} for n, t in TOKENS.items()]}}))
    os.environ["NIFT_REVIEW_CONFIG"] = str(config)
    times = []
    for _ in range(renders):
        at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120).run()
        at.text_input(key="sign_in_name").input("ann")
        at.text_input(key="sign_in_token").input(TOKENS["ann"])
        started = time.perf_counter()
        at.button(key="sign_in_submit").click().run()
        times.append(time.perf_counter() - started)
        assert not at.exception and len(at.code) >= 2, "the queue page did not render an item"
        assert at.selectbox(key="queue_choice").value == 1
    return times


def writer(url: str, index: int, count: int, n_items: int) -> None:
    """One writer process: wait for 'go' on stdin, write, print each write's latency in seconds."""
    from harness.review.store import ReviewStore

    store = ReviewStore(url, apply_migrations=False)
    singles = [i for i in range(1, n_items + 1) if (i - 1) % 10]
    print("ready", flush=True)
    sys.stdin.readline()
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        store.add_label(singles[(index * 7919 + i * 13) % len(singles)], f"writer{index}", ("accept", "reject")[i % 2],
                        1 + i % 5, {"toxic": i % 3 == 0}, f"label {i}", client_key=f"bench-{index}-{i}")
        latencies.append(time.perf_counter() - started)
    print(" ".join(f"{x:.6f}" for x in latencies), flush=True)


def write_latencies(url: str, writers: int, count: int, n_items: int) -> tuple[list[float], float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [subprocess.Popen([sys.executable, __file__, "--writer", url, str(w), str(count), str(n_items)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
                 for w in range(writers)]
    for p in processes:
        assert p.stdout.readline().strip() == "ready"
    started = time.perf_counter()
    for p in processes:
        p.stdin.write("go\n")
        p.stdin.flush()
    outputs = [p.communicate()[0] for p in processes]
    wall = time.perf_counter() - started
    assert all(p.returncode == 0 for p in processes)
    return [float(x) for out in outputs for x in out.split()], wall


def measure(name: str, url: str, args) -> dict:
    seeded = seed(url, args.items)
    renders = render_times(url, args.renders)
    latencies, wall = write_latencies(url, args.writers, args.labels, args.items)
    from harness.review.store import ReviewStore

    store = ReviewStore(url)
    counts = store.counts()
    store.close()
    assert counts["labels"] == args.writers * args.labels, counts
    ordered = sorted(latencies)
    return {"store": name, "seed_s": seeded, "cold": renders[0],
            "warm": statistics.median(renders[1:]) if len(renders) > 1 else float("nan"),
            "p50": ordered[len(ordered) // 2] * 1000, "p99": ordered[int(len(ordered) * 0.99) - 1] * 1000,
            "max": ordered[-1] * 1000, "writes_per_s": len(latencies) / wall, "items": counts["items"],
            "labels": counts["labels"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--labels", type=int, default=500, help="Labels per writer.")
    parser.add_argument("--renders", type=int, default=5, help="Queue-page renders (first = cold).")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--writer", nargs=4, metavar=("URL", "INDEX", "COUNT", "ITEMS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer:
        url, index, count, n_items = args.writer
        writer(url, int(index), int(count), int(n_items))
        return

    rows = []
    folder = Path(tempfile.mkdtemp(prefix="nift-review-bench-"))
    rows.append(measure("SQLite (WAL, synchronous=FULL)", f"sqlite:///{folder / 'review.db'}", args))
    note = ""
    if not args.no_postgres:
        from pg_cluster import PostgresUnavailable, pg_cluster

        try:
            with pg_cluster() as url:
                rows.append(measure("PostgreSQL 15 (local, fsync on)", url, args))
        except PostgresUnavailable as exc:
            note = f"PostgreSQL skipped: {exc}"
    print(f"\nReview store, {args.items:,} queued items, {args.writers} writers x {args.labels} labels, "
          f"{os.cpu_count()} CPUs\n")
    print("| store | seed 50k items + assign (s) | first queue page, cold (s) | first queue page, warm median (s) "
          "| write p50 (ms) | write p99 (ms) | write max (ms) | writes/s (all writers) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['store']} | {r['seed_s']:.1f} | {r['cold']:.3f} | {r['warm']:.3f} | {r['p50']:.2f} | "
              f"{r['p99']:.2f} | {r['max']:.2f} | {r['writes_per_s']:.0f} |")
    print("\nTargets: first page < 1 s; write p99 < 50 ms. " + note)


if __name__ == "__main__":
    main()
