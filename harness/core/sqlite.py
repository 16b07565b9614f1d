"""SQLite set-up shared by the files several processes open at once: the generation cache and the review store."""

from __future__ import annotations

import sqlite3
import time


def write_ahead_log(db: sqlite3.Connection, timeout_s: float) -> None:
    """Put the file in WAL mode (it stays so), so readers never block the writer, nor it them.

    Switching takes an exclusive lock, and SQLite answers a switch that meets another connection's lock with
    "database is locked" at once, without waiting for its busy timeout. Two processes opening a new file together
    (the ranks of one launch, a server's first sessions) failed so in 3 of 40 trials here. So the switch is
    skipped where the file is in WAL mode already, and retried for up to ``timeout_s``; past that, a switch that
    still fails, or that SQLite declines by answering the old mode, raises ``sqlite3.OperationalError``. An
    in-memory or temporary database (no file) never takes WAL, and is refused at once."""
    deadline = time.monotonic() + timeout_s
    while (mode := db.execute("PRAGMA journal_mode").fetchone()[0].lower()) != "wal":
        if not next(row[2] for row in db.execute("PRAGMA database_list") if row[1] == "main"):
            raise sqlite3.OperationalError(f"an in-memory or temporary database cannot use WAL (journal mode "
                                           f"{mode!r})")
        try:
            if db.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() == "wal":
                return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        else:  # SQLite answered the old mode: it declined the switch without an error
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError(f"journal mode stays {mode!r}, not 'wal', after {timeout_s:g} s")
        time.sleep(0.02)
