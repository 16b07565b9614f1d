"""A label-writing process for the durability and concurrency tests (and bench/review_store.py).

    python label_writer.py URL WRITER COUNT ITEMS [REPEAT_EVERY]

Writes COUNT labels as reviewer w<WRITER> on items 1..ITEMS, each with client key w<WRITER>-<i>; prints
"ack <client key> <label id> <seconds>" after each write has returned (committed), flushing every line.
Every REPEAT_EVERY-th write is sent twice with the same client key, as a client would after a lost reply.
"""

import sys
import time

from harness.review.store import ReviewStore


def main() -> None:
    url, writer, count, n_items = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    repeat_every = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    store = ReviewStore(url, apply_migrations=False)
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    for i in range(count):
        key = f"w{writer}-{i}"
        started = time.perf_counter()
        label = store.add_label(1 + (writer * 7919 + i) % n_items, f"w{writer}", ("accept", "reject")[i % 2],
                                1 + i % 5, {"toxic": i % 3 == 0}, f"writer {writer} label {i}", client_key=key)
        elapsed = time.perf_counter() - started
        if repeat_every and i % repeat_every == 0:
            assert store.add_label(label.item_id, f"w{writer}", label.verdict, label.helpfulness,
                                   label.flags, label.comment, client_key=key).id == label.id
        print(f"ack {key} {label.id} {elapsed:.6f}", flush=True)
    store.close()


if __name__ == "__main__":
    main()
