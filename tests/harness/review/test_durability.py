"""Labels survive a killed writer; 8 concurrent writers x 500 labels lose and duplicate nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from harness.review.store import NewItem, ReviewStore, labels

WRITER = Path(__file__).with_name("label_writer.py")
ROOT = Path(__file__).resolve().parents[3]


def _seed(url: str, n: int) -> ReviewStore:
    store = ReviewStore(url)
    store.add_items([NewItem(kind="single", stratum="random", source="bench/qa", source_record_id="r",
                             source_item_id=str(i), task="qa", candidate="cand", prompt=f"p{i}", output=f"o{i}",
                             content_key=f"k{i}") for i in range(n)])
    return store


def _start(url: str, writer: int, count: int, items: int, repeat_every: int = 0) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, str(WRITER), url, str(writer), str(count), str(items),
                                str(repeat_every)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env=env, cwd=ROOT)
    assert process.stdout.readline().strip() == "ready"
    return process


def test_acknowledged_labels_survive_sigkill(tmp_path):
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    _seed(url, 20).close()
    process = _start(url, 0, 100_000, 20)
    process.stdin.write("go\n")
    process.stdin.flush()
    acked = {}
    for line in process.stdout:
        _, key, label_id, _ = line.split()
        acked[key] = int(label_id)
        if len(acked) == 60:
            break
    process.send_signal(signal.SIGKILL)  # mid-stream: a write may be in flight right now
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    reopened = ReviewStore(url)
    with reopened.engine.connect() as conn:
        stored = dict(conn.execute(select(labels.c.client_key, labels.c.id)).all())
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    assert {k: stored.get(k) for k in acked} == acked  # every acknowledged label is there, unchanged
    assert len(stored) >= len(acked)
    # Writing continues where it stopped.
    assert reopened.add_label(1, "after", "accept", 3).id == max(stored.values()) + 1


def _hammer(url: str, writers: int = 8, per_writer: int = 500) -> list[str]:
    processes = [_start(url, w, per_writer, 200, repeat_every=50) for w in range(writers)]
    for process in processes:  # all ready: start them together
        process.stdin.write("go\n")
        process.stdin.flush()
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    assert [p.returncode for p in processes] == [0] * writers
    return [line for out in outputs for line in out.splitlines()]


@pytest.fixture(params=["sqlite", "postgresql"])
def hammer_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'c.db'}"
    return request.getfixturevalue("pg_database")


def test_eight_concurrent_writers_lose_and_duplicate_nothing(hammer_url):
    store = _seed(hammer_url, 200)
    acks = _hammer(hammer_url)
    assert len(acks) == 4000
    with store.engine.connect() as conn:
        rows = conn.execute(select(labels.c.client_key, labels.c.id, labels.c.reviewer, labels.c.comment)).all()
        distinct = conn.execute(select(func.count(func.distinct(labels.c.client_key)))).scalar()
    assert len(rows) == 4000 and distinct == 4000
    expected = {f"w{w}-{i}" for w in range(8) for i in range(500)}
    assert {r.client_key for r in rows} == expected
    assert {int(line.split()[2]) for line in acks} == {r.id for r in rows}
    # Each row is the one its writer sent.
    assert all(r.comment == f"writer {r.client_key[1:].split('-')[0]} label {r.client_key.split('-')[1]}"
               and r.reviewer == r.client_key.split("-")[0] for r in rows)
    store.close()
