"""The label store: review items, assignments, append-only labels and blind pairwise judgments.

SQLAlchemy 2 Core over SQLite (the default, ``<run>/review/review.db``, WAL journal, busy timeout, every write
in ``BEGIN IMMEDIATE`` so writers queue instead of failing on a lock upgrade) or PostgreSQL (psycopg 3).

Human decisions only ever add: a correction is a new label that names the label it supersedes; the database
refuses UPDATE and DELETE on labels and judgments (migration ``m002_append_only``). The current label of a
reviewer on an item is their latest one. Every write commits before it returns, so a label the app has
acknowledged survives the app being killed. Each write carries a client key (unique): repeating a write
whose acknowledgement was lost returns the row already stored instead of adding a second one; a key used
again with other content (another verdict, rating, flag or comment) is refused, since returning the stored row
would acknowledge a label that was never saved. Each label records the hash of the guidelines shown with the
item and the seconds it took (both optional).

Items whose reviewers' current labels disagree (on accept/reject or a flag; on the preference for a pair) are
*disputed* (:meth:`ReviewStore.disputed_items`); an adjudicator's label for one is another append-only row
(``adjudications``, with author and reason; the latest counts), which the review record uses in place of the
reviewers' labels while agreement is still measured on theirs. An adjudication decides the labels it was given
on: it names them (``decided_on``) and is refused where the item's current labels are others when it is written
(:meth:`ReviewStore.add_adjudication`; so is one by an author who labelled the item); a label or judgment written
on the item after it makes it stale (:meth:`ReviewStore.stale_adjudications`), and the item is judged by its
current labels again (and waits for a new adjudication if they still disagree).
The rows of one item are stamped in the order they were written (:meth:`ReviewStore._written_at`), which is
what says which came first.

The pairwise A/B mapping (which model answered A) is stored with the item and returned only by
``current_labels(kind="pairwise")`` and ``history_frame`` (the summary's de-blinding and the release manager's
export): ``ReviewItemView``, what the app shows a reviewer, has no such field.

Reads inside ``with store.snapshot():`` go through one read transaction, so they see one state of the store
(the review record's figures, the app's progress); a read outside one is its own transaction.

``open_store(config, run_store)`` opens the configured store, else SQLite at ``<run>/review/review.db``; it
creates a store not there yet unless told ``create=False``.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import sqlite3
import statistics
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    case,
    create_engine,
    distinct,
    event,
    exists,
    func,
    insert,
    inspect,
    literal,
    make_url,
    select,
    union,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.util import asbool

from harness.core.errors import InputError
from harness.core.sqlite import write_ahead_log
from harness.core.store import RunStore
from harness.review.config import ReviewConfig
from harness.review.migrations import migrate

#: Flags a reviewer can set on a label (the record's flag rates use the same names).
LABEL_FLAGS = ("toxic", "hallucination", "unhelpful_refusal", "off_topic")
VERDICTS = ("accept", "reject")
PREFERENCES = ("A", "B", "tie")
SQLITE_BUSY_TIMEOUT_MS = 30_000

# The schema as the queries see it; tests/review/test_migrations.py checks it against the migrated database.
metadata = MetaData()
items = Table(
    "review_items", metadata,
    Column("id", Integer, primary_key=True), Column("content_key", String), Column("kind", String),
    Column("stratum", String), Column("source", String), Column("source_record_id", String),
    Column("source_item_id", String), Column("task", String), Column("candidate", String), Column("model", String),
    Column("role", String), Column("prompt", Text), Column("output", Text), Column("reference", Text),
    Column("output_a", Text), Column("output_b", Text), Column("model_a", String), Column("model_b", String),
    Column("scores_json", Text), Column("flags_json", Text), Column("required_reviewers", Integer),
    Column("created_at", String), Column("messages_json", Text))
assignments = Table(
    "assignments", metadata, Column("id", Integer, primary_key=True), Column("item_id", Integer),
    Column("reviewer", String), Column("assigned_at", String))
labels = Table(
    "labels", metadata, Column("id", Integer, primary_key=True), Column("item_id", Integer),
    Column("reviewer", String), Column("verdict", String), Column("helpfulness", Integer),
    *(Column(flag, Boolean) for flag in LABEL_FLAGS), Column("comment", Text), Column("supersedes", Integer),
    Column("client_key", String), Column("created_at", String), Column("guidelines_sha256", String),
    Column("lead_time_s", Float))
judgments = Table(
    "pairwise_judgments", metadata, Column("id", Integer, primary_key=True), Column("item_id", Integer),
    Column("reviewer", String), Column("preference", String), Column("comment", Text),
    Column("supersedes", Integer), Column("client_key", String), Column("created_at", String),
    Column("guidelines_sha256", String), Column("lead_time_s", Float))
adjudications = Table(
    "adjudications", metadata, Column("id", Integer, primary_key=True), Column("item_id", Integer),
    Column("author", String), Column("reason", Text), Column("verdict", String), Column("helpfulness", Integer),
    *(Column(flag, Boolean) for flag in LABEL_FLAGS), Column("preference", String), Column("supersedes", Integer),
    Column("guidelines_sha256", String), Column("client_key", String), Column("created_at", String))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` use psycopg 3 (the one PostgreSQL driver nift-gate installs)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str) -> Engine:
    """An engine for ``url``; an in-memory SQLite database is refused (every label in it would be lost at exit)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        if _in_memory(make_url(url)):
            raise InputError(f"review.database: {url} is an in-memory SQLite database, which loses every label "
                             f"when the process exits; name a file, e.g. sqlite:////abs/path/review.db")
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):
            # Autocommit at the driver level: SQLAlchemy's "begin" event below emits BEGIN itself, so a
            # writer can take the write lock up front (BEGIN IMMEDIATE) instead of failing to upgrade later.
            dbapi_conn.isolation_level = None
            write_ahead_log(dbapi_conn, SQLITE_BUSY_TIMEOUT_MS / 1000)
            cursor = dbapi_conn.cursor()
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA synchronous=FULL")  # durable against power loss too, not only a killed app
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except Exception as exc:  # unknown dialect, missing driver: name the URL's scheme, never its password
        raise InputError(f"review.database: cannot use {url.split('://')[0]}:// ({exc})") from None


def _in_memory(url: URL) -> bool:
    """Whether the SQLite ``url`` names no file: ``sqlite://``, ``sqlite:///``, ``sqlite:///:memory:``, or a URI
    filename (``?uri=true``) that is ``file::memory:`` or has ``mode=memory`` (SQLAlchemy's own test, plus that)."""
    if not url.database or url.database == ":memory:" or url.query.get("mode") == "memory":
        return True
    return asbool(url.query.get("uri", False)) and url.database.startswith("file::memory:")


def _open_error(url: URL, exc: DBAPIError) -> InputError | None:
    """The one-line error for a label store that cannot be opened (None for an error that is not about opening
    it): the driver's reason (PostgreSQL's hint lines joined) with the password masked; for a file that is not an
    SQLite database, the file."""
    reason = " ".join(str(exc.orig).split())
    if url.get_backend_name() == "sqlite" and isinstance(exc.orig, sqlite3.DatabaseError) \
            and not isinstance(exc.orig, sqlite3.OperationalError):  # not locked or unreadable: not a database
        return _not_a_database(url.database, reason)
    if isinstance(exc, OperationalError):
        return InputError(f"review.database: cannot open {url!r}: {reason}")
    return None


def _not_a_database(path: str | Path | None, reason: str) -> InputError:
    # Never removed or rewritten here: the labels in a damaged file may be recoverable.
    return InputError(f"{path}: is not an SQLite database ({reason}); restore it from a backup or move it away")


def default_database(store: RunStore) -> Path:
    """Where the SQLite label store lives when ``review.database`` is not set: ``<run>/review/review.db``."""
    return store.root / "review" / "review.db"


def database_url(config: ReviewConfig, store: RunStore) -> str:
    """The configured URL, else SQLite at :func:`default_database` (the folder is created)."""
    if config.database:
        return config.database
    path = default_database(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}"


def open_store(config: ReviewConfig, store: RunStore, *, create: bool = True) -> ReviewStore:
    """The run's label store (migrated); the caller closes it. With ``create=False`` (what reads a store that
    must already be there, e.g. the export) a store not yet made by ``review enqueue`` is refused, with nothing
    created: a mistyped run name is then an error, not an empty export."""
    if create:
        return ReviewStore(database_url(config, store))
    missing = "no review store; run `nift-gate review enqueue` first"
    if not config.database:
        path = default_database(store)
        if not _sqlite_holds_store(path):
            raise InputError(f"{path.parent}: {missing}")
        return ReviewStore(f"sqlite:///{path.resolve()}")
    parsed = make_url(normalise_url(config.database))
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not parsed.query.get("uri"):
        if not _sqlite_holds_store(Path(parsed.database)):
            raise InputError(f"review.database: {parsed.database}: {missing}")
        return ReviewStore(config.database)
    engine = make_engine(config.database)
    try:
        present = inspect(engine).has_table(items.name)
    except DBAPIError as exc:
        if (error := _open_error(engine.url, exc)) is None:
            raise
        raise error from None
    finally:
        engine.dispose()
    if not present:
        raise InputError(f"review.database: {engine.url!r}: {missing}")
    return ReviewStore(config.database)


def _sqlite_holds_store(path: Path) -> bool:
    """Whether the SQLite file ``path`` holds a label store; read-only, so a missing or empty file stays as it is
    (SQLAlchemy's connection would create the one and write a header into the other). A file that is not an SQLite
    database is refused, not taken for a store not made yet: ``review enqueue`` cannot open it either."""
    if not path.is_file():
        return False
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)  # opens the file at the first query
    try:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                            (items.name,)).fetchone() is not None
    except sqlite3.OperationalError as exc:  # unreadable
        raise InputError(f"review.database: cannot open {path}: {exc}") from None
    except sqlite3.DatabaseError as exc:  # bytes that are not an SQLite database, or a damaged one
        raise _not_a_database(path, " ".join(str(exc).split())) from None
    finally:
        conn.close()


@dataclass(frozen=True)
class NewItem:
    """An item to queue. ``kind='pairwise'`` items carry output_a/output_b and the stored mapping model_a/model_b."""

    kind: str
    stratum: str
    source: str
    source_record_id: str
    source_item_id: str
    task: str
    candidate: str
    prompt: str
    content_key: str
    model: str | None = None
    role: str | None = None
    output: str | None = None
    reference: str | None = None
    output_a: str | None = None
    output_b: str | None = None
    model_a: str | None = None
    model_b: str | None = None
    scores: dict[str, Any] = field(default_factory=dict)
    flags: dict[str, bool] = field(default_factory=dict)
    required_reviewers: int = 2
    #: The conversation as turns (``[{"role": ..., "content": ...}, ...]``, see the app) for showing it as
    #: turns; not part of the content key. None: the app shows ``prompt`` and the outputs.
    messages: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class ReviewItemView:
    """An item as a reviewer sees it. Blind by construction: no model names, no A/B mapping."""

    id: int
    kind: str
    source: str
    task: str
    stratum: str
    prompt: str
    output: str | None
    reference: str | None
    output_a: str | None
    output_b: str | None
    scores: dict[str, Any]
    flags: dict[str, bool]
    required_reviewers: int
    messages: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class StoredLabel:
    id: int
    item_id: int
    reviewer: str
    verdict: str
    helpfulness: int
    flags: dict[str, bool]
    comment: str
    supersedes: int | None
    created_at: str
    guidelines_sha256: str | None = None  # the guidelines shown when the label was given
    lead_time_s: float | None = None  # seconds from the item being shown to the submit, as the app measured


@dataclass(frozen=True)
class StoredJudgment:
    id: int
    item_id: int
    reviewer: str
    preference: str
    comment: str
    supersedes: int | None
    created_at: str
    guidelines_sha256: str | None = None
    lead_time_s: float | None = None


@dataclass(frozen=True)
class StoredAdjudication:
    """The label an adjudicator gave a disputed item: verdict, helpfulness and flags for a single-output item,
    the preference (in the item's blind A/B letters) for a pairwise one. It counts in place of the reviewers'
    labels in the record; their labels stay, and agreement is still computed from them."""

    id: int
    item_id: int
    author: str
    reason: str
    verdict: str | None
    helpfulness: int | None
    flags: dict[str, bool]
    preference: str | None
    supersedes: int | None
    guidelines_sha256: str | None
    created_at: str


@dataclass(frozen=True)
class DisputedItem:
    """An item whose reviewers' current labels disagree, for the adjudication queue."""

    item_id: int
    kind: str
    candidate: str
    source: str
    task: str
    stratum: str
    disagreements: tuple[str, ...] = ()  # "verdict", flag names, or "preference"
    labels: tuple[StoredLabel | StoredJudgment, ...] = ()  # every reviewer's current label, by reviewer
    adjudication: StoredAdjudication | None = None  # the latest, if it stands (no label written after it)
    #: The latest adjudication where a label was written after it: it no longer decides the item (shown to the
    #: adjudicator, who may decide it again).
    stale_adjudication: StoredAdjudication | None = None


@dataclass(frozen=True)
class QueueEntry:
    item_id: int
    kind: str
    source: str
    task: str
    stratum: str


@dataclass(frozen=True)
class Progress:
    """How far the whole label store (or one candidate's items) is: items, and items with their quorum, i.e.
    current labels or judgments from :func:`reviewers_needed` distinct reviewers (the review record's rule, at the
    ``required_reviewers`` :meth:`ReviewStore.progress` is given); each reviewer's labelled and assigned items."""

    items_total: int
    items_with_quorum: int
    per_reviewer: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (done, assigned)
    #: name -> median seconds per item over the reviewer's current labels that record one (None: none do).
    lead_time_s: dict[str, float | None] = field(default_factory=dict)


def _label(row) -> StoredLabel:
    return StoredLabel(id=row.id, item_id=row.item_id, reviewer=row.reviewer, verdict=row.verdict,
                       helpfulness=row.helpfulness, flags={f: bool(getattr(row, f)) for f in LABEL_FLAGS},
                       comment=row.comment, supersedes=row.supersedes, created_at=row.created_at,
                       guidelines_sha256=row.guidelines_sha256, lead_time_s=row.lead_time_s)


def _judgment(row) -> StoredJudgment:
    return StoredJudgment(id=row.id, item_id=row.item_id, reviewer=row.reviewer, preference=row.preference,
                          comment=row.comment, supersedes=row.supersedes, created_at=row.created_at,
                          guidelines_sha256=row.guidelines_sha256, lead_time_s=row.lead_time_s)


def _adjudication(row) -> StoredAdjudication:
    return StoredAdjudication(
        id=row.id, item_id=row.item_id, author=row.author, reason=row.reason, verdict=row.verdict,
        helpfulness=row.helpfulness,
        flags={f: bool(getattr(row, f)) for f in LABEL_FLAGS} if row.verdict is not None else {},
        preference=row.preference, supersedes=row.supersedes, guidelines_sha256=row.guidelines_sha256,
        created_at=row.created_at)


def reviewers_needed(queued: int | None, required: int) -> int:
    """The distinct reviewers an item needs for its quorum: the configured number (``required``), or the number
    it was queued with (``queued``) where that is larger (an item queued for three is not reviewed by two because
    the config says two now). The one rule: the review record counts by it, and :meth:`ReviewStore.progress` by
    its SQL form (:func:`_reviewers_needed_sql`)."""
    return max(queued or 0, required)


def _reviewers_needed_sql(required: int):
    """:func:`reviewers_needed` of each item as a SQL expression (a CASE, portable to SQLite and PostgreSQL;
    an item with no queued number needs ``required``)."""
    return case((items.c.required_reviewers > required, items.c.required_reviewers), else_=literal(required))


def disagreements(kind: str, current: list[dict[str, Any]] | list[StoredLabel | StoredJudgment]) -> tuple[str, ...]:
    """What the current labels of one item disagree on: ``verdict`` and flag names (single-output item), or
    ``preference`` (pairwise); empty when they agree or fewer than two reviewers labelled. Helpfulness, a
    1-5 rating, is not a disagreement: it is averaged."""

    def value(label, name):
        if isinstance(label, dict):
            return bool(label[name]) if name in LABEL_FLAGS else label[name]
        return label.flags[name] if name in LABEL_FLAGS else getattr(label, name)

    fields = ("preference",) if kind == "pairwise" else ("verdict", *LABEL_FLAGS)
    return tuple(name for name in fields if len({value(label, name) for label in current}) > 1)


class LabelsChanged(InputError):
    """An adjudication refused because the item is not as its adjudicator was shown it: ``reviewers`` labelled
    the item (or corrected their label) meanwhile (``decided_on``), or ``adjudicator`` adjudicated it meanwhile
    (``replacing``)."""

    def __init__(self, message: str, reviewers: tuple[str, ...], adjudicator: str | None = None):
        super().__init__(message)
        self.reviewers = reviewers
        self.adjudicator = adjudicator


#: ``add_adjudication(replacing=CURRENT)``: supersede whichever adjudication the item has when it is written.
CURRENT = "current"


#: What a write stores of a human's decision, per table: a client key used again with any of these different is
#: another decision, not a retry of the one stored (the guidelines hash and the lead time describe the submit).
CONTENT_COLUMNS = {
    "labels": ("item_id", "reviewer", "verdict", "helpfulness", *LABEL_FLAGS, "comment"),
    "pairwise_judgments": ("item_id", "reviewer", "preference", "comment"),
    "adjudications": ("item_id", "author", "reason", "verdict", "helpfulness", *LABEL_FLAGS, "preference"),
}


def _check_guidelines_hash(value: str | None) -> None:
    if value is not None and (len(value) != 64 or any(c not in "0123456789abcdef" for c in value)):
        raise InputError(f"guidelines_sha256: {value!r} is not a SHA-256 hex digest (64 lowercase hex characters)")


def _check_lead_time(value: float | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                              or not math.isfinite(value) or value < 0):
        raise InputError(f"lead_time_s: {value!r} is not a finite number of seconds >= 0")


def _messages_json(messages: list[dict[str, Any]] | None) -> str | None:
    if messages is None:
        return None
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise InputError("messages: expected a list of objects (turns), e.g. [{\"role\": \"user\", \"content\": ...}]")
    return json.dumps(messages, ensure_ascii=False)


class ReviewStore:
    """One label store. All reads and writes of review data go through here (the app included)."""

    def __init__(self, url: str, *, apply_migrations: bool = True):
        self.url = normalise_url(url)
        self.engine = make_engine(self.url)
        self._writer = self.engine.execution_options(write=True)
        database = self.engine.url.database if self.engine.dialect.name == "sqlite" else None
        self._lock_path = f"{database}.write-lock" if database and database != ":memory:" else None
        self._lock_fd: int | None = None
        self._thread_lock = threading.Lock()
        self._held = threading.local()  # .conn: this thread's open snapshot (:meth:`snapshot`), if any
        if apply_migrations:
            try:
                migrate(self._writer)
            except DBAPIError as exc:
                if (error := _open_error(self.engine.url, exc)) is None:
                    raise
                self.engine.dispose()
                raise error from None

    def close(self) -> None:
        self.engine.dispose()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One committed transaction; on SQLite it holds the write lock from its first statement.

        SQLite writers also queue on an flock beside the database first: the kernel wakes the next writer
        the moment the lock is free, where SQLite's own busy handler polls with sleeps of up to 100 ms
        (the tail of the write latency under 8 writers). BEGIN IMMEDIATE stays as the guard for writers
        that do not take the flock."""
        if self._lock_path is None:
            with self._writer.begin() as conn:
                yield conn
            return
        with self._thread_lock:
            if self._lock_fd is None:
                self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                with self._writer.begin() as conn:
                    yield conn
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """One read transaction that every read of this store in the block goes through (on this thread), so they
        all see the store as it was at the first of them: a label committed meanwhile is in none of them, not in
        one figure and missing from the next. What makes a summary's figures one state of the store.

        SQLite: :func:`make_engine`'s "begin" event emits a plain (deferred) BEGIN, and in WAL mode the
        transaction's first read fixes its snapshot, without blocking writers. PostgreSQL: REPEATABLE READ (its
        default, READ COMMITTED, takes a new snapshot per statement). A snapshot opened inside another is the
        outer one."""
        held = getattr(self._held, "conn", None)
        if held is not None:
            yield held
            return
        with self.engine.connect() as conn:
            if self.engine.dialect.name != "sqlite":
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                self._held.conn = conn
                try:
                    yield conn
                finally:
                    self._held.conn = None

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection to read on: this thread's open :meth:`snapshot`, else a new one (one transaction)."""
        held = getattr(self._held, "conn", None)
        if held is not None:
            yield held
            return
        with self.engine.connect() as conn:
            yield conn

    # ---- filling the queue -------------------------------------------------------------------------------
    def add_items(self, new_items: list[NewItem]) -> list[int]:
        """Insert items whose content key is new; returns the ids inserted (duplicates are skipped)."""
        if not new_items:
            return []
        now = _now()
        inserted: list[int] = []
        with self._write() as conn:
            keys = [i.content_key for i in new_items]
            known = set()
            for start in range(0, len(keys), 500):
                known |= set(conn.execute(select(items.c.content_key).where(
                    items.c.content_key.in_(keys[start:start + 500]))).scalars())
            rows = []
            for item in new_items:
                if item.content_key in known:
                    continue
                known.add(item.content_key)
                values = {k: v for k, v in item.__dict__.items() if k not in ("scores", "flags", "messages")}
                values.update(scores_json=json.dumps(item.scores, sort_keys=True),
                              flags_json=json.dumps(item.flags, sort_keys=True),
                              messages_json=_messages_json(item.messages), created_at=now)
                rows.append(values)
            for start in range(0, len(rows), 1000):  # executemany in batches; ids read back by content key
                batch = rows[start:start + 1000]
                conn.execute(insert(items), batch)
                ids = dict(conn.execute(select(items.c.content_key, items.c.id).where(
                    items.c.content_key.in_([r["content_key"] for r in batch]))).all())
                inserted += [ids[r["content_key"]] for r in batch]
        return inserted

    def assign(self, reviewers: list[str], required: int) -> int:
        """Give every item fewer reviewers than its quorum needs (:func:`reviewers_needed`: ``required``, or the
        number it was queued with where larger) more, least-loaded reviewer first. An item's reviewers are those
        of ``reviewers`` assigned to it and anyone who labelled it: an open assignment of someone no longer among
        ``reviewers`` (removed from the config) stays stored but holds no place, so their unlabelled items go to
        a current reviewer."""
        if not reviewers:
            return 0
        added = 0
        with self._write() as conn:
            load = dict.fromkeys(reviewers, 0)
            for name, count in conn.execute(select(assignments.c.reviewer, func.count()).group_by(
                    assignments.c.reviewer)):
                if name in load:
                    load[name] = count
            have: dict[int, set[str]] = {}
            for item_id, name in conn.execute(select(assignments.c.item_id, assignments.c.reviewer)):
                if name in load:
                    have.setdefault(item_id, set()).add(name)
            for table in (labels, judgments):  # a label counts toward the quorum, whoever gave it
                for item_id, name in conn.execute(select(table.c.item_id, table.c.reviewer).distinct()):
                    have.setdefault(item_id, set()).add(name)
            rows = []
            now = _now()
            for item_id, queued in conn.execute(select(items.c.id, items.c.required_reviewers).order_by(items.c.id)):
                current, needed = have.get(item_id, set()), reviewers_needed(queued, required)
                for name in sorted((r for r in reviewers if r not in current), key=lambda r: (load[r], r)):
                    if len(current) >= needed:
                        break
                    rows.append({"item_id": item_id, "reviewer": name, "assigned_at": now})
                    current = current | {name}
                    load[name] += 1
            for start in range(0, len(rows), 1000):
                conn.execute(insert(assignments), rows[start:start + 1000])
            added = len(rows)
        return added

    # ---- labelling ----------------------------------------------------------------------------------------
    def _kind(self, conn: Connection, item_id: int, lock: bool = False) -> str:
        """The item's kind. ``lock``: also hold its row until the transaction ends (PostgreSQL's FOR UPDATE; SQLite
        renders none, its writers queue already): two writes to one item then run one after the other, so the
        second sees the first's row when it stamps its own and names what it supersedes."""
        query = select(items.c.kind).where(items.c.id == item_id)
        kind = conn.execute(query.with_for_update() if lock else query).scalar()
        if kind is None:
            raise InputError(f"item_id: no review item {item_id}")
        return kind

    def add_label(self, item_id: int, reviewer: str, verdict: str, helpfulness: int,
                  flags: dict[str, bool] | None = None, comment: str = "", client_key: str | None = None,
                  retries: int = 3, *, guidelines_sha256: str | None = None,
                  lead_time_s: float | None = None) -> StoredLabel:
        """Append a label (superseding the reviewer's previous one on the item) and commit before returning.
        ``guidelines_sha256``: the hash of the guidelines shown beside the item; ``lead_time_s``: seconds from
        the item being shown to the submit."""
        flags = dict(flags or {})
        unknown = sorted(set(flags) - set(LABEL_FLAGS))
        if unknown:
            raise InputError(f"flags: unknown {unknown}; known: {list(LABEL_FLAGS)}")
        if verdict not in VERDICTS:
            raise InputError(f"verdict: {verdict!r} is not one of {list(VERDICTS)}")
        if not isinstance(helpfulness, int) or not 1 <= helpfulness <= 5:
            raise InputError(f"helpfulness: {helpfulness!r} is not an integer from 1 to 5")
        if not reviewer:
            raise InputError("reviewer: empty name")
        _check_guidelines_hash(guidelines_sha256)
        _check_lead_time(lead_time_s)
        key = client_key or uuid.uuid4().hex
        values = {"item_id": item_id, "reviewer": reviewer, "verdict": verdict, "helpfulness": helpfulness,
                  **{f: bool(flags.get(f, False)) for f in LABEL_FLAGS}, "comment": comment or "",
                  "client_key": key, "guidelines_sha256": guidelines_sha256, "lead_time_s": lead_time_s}
        return self._append(labels, values, "single", _label, retries)

    def add_judgment(self, item_id: int, reviewer: str, preference: str, comment: str = "",
                     client_key: str | None = None, retries: int = 3, *, guidelines_sha256: str | None = None,
                     lead_time_s: float | None = None) -> StoredJudgment:
        """Append a blind pairwise judgment (A, B or tie) and commit before returning."""
        if preference not in PREFERENCES:
            raise InputError(f"preference: {preference!r} is not one of {list(PREFERENCES)}")
        if not reviewer:
            raise InputError("reviewer: empty name")
        _check_guidelines_hash(guidelines_sha256)
        _check_lead_time(lead_time_s)
        values = {"item_id": item_id, "reviewer": reviewer, "preference": preference, "comment": comment or "",
                  "client_key": client_key or uuid.uuid4().hex, "guidelines_sha256": guidelines_sha256,
                  "lead_time_s": lead_time_s}
        return self._append(judgments, values, "pairwise", _judgment, retries)

    def add_adjudication(self, item_id: int, author: str, *, reason: str, verdict: str | None = None,
                         helpfulness: int | None = None, flags: dict[str, bool] | None = None,
                         preference: str | None = None, guidelines_sha256: str | None = None,
                         client_key: str | None = None, retries: int = 3,
                         decided_on: Iterable[int] | None = None,
                         replacing: int | None | Literal["current"] = CURRENT) -> StoredAdjudication:
        """Append the adjudicated label of a disputed item (superseding an earlier adjudication of it) and commit
        before returning. A single-output item takes ``verdict`` and ``helpfulness`` (``flags`` default to
        unset), a pairwise one ``preference`` in the item's blind letters; ``reason`` is required. Who may
        adjudicate is the caller's check (``review.adjudicators``): the store records ``author``.

        ``decided_on``: the ids of the item's current labels (or judgments) the adjudicator was shown
        (``DisputedItem.labels``). Where the item's current labels are others by the time the write holds the
        item (a reviewer labelled it, or corrected a label, meanwhile), nothing is saved and
        :class:`LabelsChanged` names who: an adjudication decides the labels it was given on, never one its author
        did not see. The app always passes it; None (scripts) decides on the current labels at the time of the
        write. ``replacing``: the id of the item's adjudication shown with it, None where it had none; another by
        the time of the write (someone adjudicated it meanwhile) is refused the same way, naming its author, so
        an adjudication never supersedes one its author did not see. The app passes it; :data:`CURRENT` (the
        default, scripts) supersedes whichever there is. Refused as well, in the same transaction: an item whose
        reviewers agree (or that fewer than two
        reviewers labelled: nothing to adjudicate), and an author with a current label on the item (an
        adjudicator who labelled the item does not decide it). A retry of a write already stored (its client key)
        returns the stored row, whatever was written since."""
        if not author:
            raise InputError("author: empty name")
        if decided_on is not None:
            decided_on = tuple(decided_on)
            if not all(isinstance(i, int) and not isinstance(i, bool) for i in decided_on):
                raise InputError(f"decided_on: {decided_on!r} is not a list of label (or judgment) ids")
            decided_on = frozenset(decided_on)
        if replacing != CURRENT and (isinstance(replacing, bool) or not isinstance(replacing, int | None)):
            raise InputError(f"replacing: {replacing!r} is not an adjudication id, None or {CURRENT!r}")
        if not isinstance(reason, str) or not reason.strip():
            raise InputError("reason: an adjudication needs a reason")
        _check_guidelines_hash(guidelines_sha256)
        values: dict[str, Any] = {"item_id": item_id, "author": author, "reason": reason.strip(),
                                  "guidelines_sha256": guidelines_sha256,
                                  "client_key": client_key or uuid.uuid4().hex}
        if preference is not None:
            if verdict is not None or helpfulness is not None or flags:
                raise InputError("preference: a pairwise adjudication takes a preference only (no verdict, "
                                 "helpfulness or flags)")
            if preference not in PREFERENCES:
                raise InputError(f"preference: {preference!r} is not one of {list(PREFERENCES)}")
            values["preference"] = preference
            kind = "pairwise"
        else:
            flags = dict(flags or {})
            if unknown := sorted(set(flags) - set(LABEL_FLAGS)):
                raise InputError(f"flags: unknown {unknown}; known: {list(LABEL_FLAGS)}")
            if verdict not in VERDICTS:
                raise InputError(f"verdict: {verdict!r} is not one of {list(VERDICTS)} (a single-output item's "
                                 f"adjudication needs a verdict; a pairwise one a preference)")
            if not isinstance(helpfulness, int) or isinstance(helpfulness, bool) or not 1 <= helpfulness <= 5:
                raise InputError(f"helpfulness: {helpfulness!r} is not an integer from 1 to 5")
            values.update(verdict=verdict, helpfulness=helpfulness,
                          **{f: bool(flags.get(f, False)) for f in LABEL_FLAGS})
            kind = "single"
        return self._append(adjudications, values, kind, _adjudication, retries, by="author", decided_on=decided_on,
                            replacing=replacing)

    @staticmethod
    def _refuse_adjudication(conn: Connection, values: dict[str, Any], kind: str,
                             decided_on: frozenset[int] | None, replacing: int | None | str) -> None:
        """Raise where the adjudication ``values`` may not be written: inside the write, which holds the item, so
        the labels checked are the ones it is written over."""
        item_id, author = values["item_id"], values["author"]
        if replacing != CURRENT:
            latest = conn.execute(select(adjudications.c.id, adjudications.c.author).where(
                adjudications.c.item_id == item_id).order_by(adjudications.c.id.desc()).limit(1)).first()
            if (latest.id if latest else None) != replacing:
                raise LabelsChanged(
                    f"replacing: item {item_id}'s adjudication is now {latest.id} by {latest.author}, not "
                    f"{replacing}, the one shown; nothing was saved: review it again" if latest else
                    f"replacing: item {item_id} has no adjudication {replacing}; nothing was saved", (),
                    latest.author if latest else None)
        current = ReviewStore._current_of(conn, item_id, kind)
        if decided_on is not None and decided_on != {label.id for label in current}:
            since = tuple(sorted({label.reviewer for label in current if label.id not in decided_on}))
            raise LabelsChanged(
                f"decided_on: item {item_id}'s current labels are {sorted(label.id for label in current)}, not the "
                f"{sorted(decided_on)} the adjudication was decided on"
                + (f" ({', '.join(since)} labelled it since)" if since else "")
                + "; nothing was saved: review the labels again", since)
        if mine := [label for label in current if label.reviewer == author]:
            raise InputError(f"author: {author} labelled item {item_id} (label {mine[0].id}); an adjudicator who "
                             f"labelled the item does not decide it")
        if not disagreements(kind, current):
            raise InputError(f"item_id: item {item_id}: its reviewers' current labels agree (or fewer than two "
                             f"labelled it); nothing to adjudicate")

    def _append(self, table: Table, values: dict[str, Any], kind: str, convert, retries: int, by: str = "reviewer",
                decided_on: frozenset[int] | None = None, replacing: int | None | str = CURRENT):
        for attempt in range(retries + 1):
            try:
                with self._write() as conn:
                    if self._kind(conn, values["item_id"], lock=True) != kind:
                        raise InputError(f"item_id: item {values['item_id']} is not a {kind} item")
                    if table is adjudications:
                        # A client key already stored is a retry of a write that happened: the insert below
                        # fails on it and the stored row is returned (or refused if other), not judged anew
                        # against labels written since.
                        if conn.execute(select(table.c.id).where(
                                table.c.client_key == values["client_key"])).first() is None:
                            self._refuse_adjudication(conn, values, kind, decided_on, replacing)
                        # What a superseded row names: the item's previous adjudication, whoever wrote it.
                        previous = conn.execute(select(func.max(table.c.id)).where(
                            table.c.item_id == values["item_id"])).scalar()
                    else:
                        previous = conn.execute(select(func.max(table.c.id)).where(
                            table.c.item_id == values["item_id"], table.c.reviewer == values["reviewer"])).scalar()
                    row_id = conn.execute(insert(table).values(
                        **values, supersedes=previous,
                        created_at=self._written_at(conn, values["item_id"]))).inserted_primary_key[0]
                    row = conn.execute(select(table).where(table.c.id == row_id)).one()
                return convert(row)
            except IntegrityError:
                # Same client key already stored: the write happened, its acknowledgement was lost.
                with self.engine.connect() as conn:
                    row = conn.execute(select(table).where(table.c.client_key == values["client_key"])).first()
                if row is None:
                    raise
                differ = [name for name in CONTENT_COLUMNS[table.name] if getattr(row, name) != values.get(name)]
                if differ:
                    # Returning the stored row would acknowledge a decision that was never saved.
                    raise InputError(
                        f"client_key: {values['client_key']!r} already stored {table.name} row {row.id} (item "
                        f"{row.item_id}, by {getattr(row, by)}), which differs in {', '.join(differ)}; nothing was "
                        f"saved: a retry repeats the same content, a new decision takes a new client key") from None
                return convert(row)
            except OperationalError:
                # SQLite past its busy timeout, or a dropped PostgreSQL connection: the client key makes a retry safe.
                if attempt == retries:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    @staticmethod
    def _written_at(conn: Connection, item_id: int) -> str:
        """The time a new row of the item is stamped with: now, or one microsecond after the item's latest label,
        judgment or adjudication where the clock reads no later than it (a clock stepped back, or two writes in
        one microsecond). An item's rows are then stamped in the order they were written, across the three
        tables (whose ids are separate sequences): what says whether a label came after an adjudication
        (:meth:`stale_adjudications`). Writes to one item are serialised, so written is committed: on SQLite all
        writes queue (:meth:`_write`); on PostgreSQL the write holds the item's row (:meth:`_kind`)."""
        now = _now()
        last = max(conn.execute(select(func.max(table.c.created_at)).where(table.c.item_id == item_id)).scalar()
                   or "" for table in (labels, judgments, adjudications))
        if now > last:
            return now
        try:
            return (datetime.fromisoformat(last) + timedelta(microseconds=1)).isoformat(timespec="microseconds")
        except ValueError:  # a row stamped by another writer in another form: nothing to order against
            return now

    # ---- reading -------------------------------------------------------------------------------------------
    def _done(self, reviewer_col, item_col):
        return (exists().where(labels.c.item_id == item_col, labels.c.reviewer == reviewer_col)
                | exists().where(judgments.c.item_id == item_col, judgments.c.reviewer == reviewer_col))

    def queue(self, reviewer: str, limit: int = 50, offset: int = 0) -> list[QueueEntry]:
        """The reviewer's assigned items not yet labelled by them, oldest first."""
        query = (select(items.c.id, items.c.kind, items.c.source, items.c.task, items.c.stratum)
                 .join(assignments, assignments.c.item_id == items.c.id)
                 .where(assignments.c.reviewer == reviewer, ~self._done(literal(reviewer), items.c.id))
                 .order_by(items.c.id).limit(limit).offset(offset))
        with self.reading() as conn:
            return [QueueEntry(*row) for row in conn.execute(query)]

    def item(self, item_id: int) -> ReviewItemView:
        with self.reading() as conn:
            row = conn.execute(select(items).where(items.c.id == item_id)).first()
        if row is None:
            raise InputError(f"item_id: no review item {item_id}")
        return ReviewItemView(id=row.id, kind=row.kind, source=row.source, task=row.task, stratum=row.stratum,
                              prompt=row.prompt, output=row.output, reference=row.reference, output_a=row.output_a,
                              output_b=row.output_b, scores=json.loads(row.scores_json),
                              flags=json.loads(row.flags_json), required_reviewers=row.required_reviewers,
                              messages=json.loads(row.messages_json) if row.messages_json is not None else None)

    def my_label(self, item_id: int, reviewer: str) -> StoredLabel | StoredJudgment | None:
        """The reviewer's current label or judgment on the item."""
        with self.reading() as conn:
            for table, convert in ((labels, _label), (judgments, _judgment)):
                row = conn.execute(select(table).where(table.c.item_id == item_id, table.c.reviewer == reviewer)
                                   .order_by(table.c.id.desc()).limit(1)).first()
                if row is not None:
                    return convert(row)
        return None

    def others_labels(self, item_id: int, reviewer: str) -> list[StoredLabel | StoredJudgment] | None:
        """Other reviewers' current labels on the item, or None while ``reviewer`` has not submitted their own:
        a reviewer is blind to others' labels until they have labelled the item themselves."""
        if self.my_label(item_id, reviewer) is None:
            return None
        found: list[StoredLabel | StoredJudgment] = []
        with self.reading() as conn:
            for table, convert in ((labels, _label), (judgments, _judgment)):
                latest = (select(func.max(table.c.id)).where(table.c.item_id == item_id, table.c.reviewer != reviewer)
                          .group_by(table.c.reviewer))
                found += [convert(r) for r in conn.execute(select(table).where(table.c.id.in_(latest))
                                                           .order_by(table.c.reviewer))]
        return found

    @staticmethod
    def _current_of(conn: Connection, item_id: int, kind: str) -> list[StoredLabel | StoredJudgment]:
        table, convert = (judgments, _judgment) if kind == "pairwise" else (labels, _label)
        latest = select(func.max(table.c.id)).where(table.c.item_id == item_id).group_by(table.c.reviewer)
        return [convert(r) for r in conn.execute(select(table).where(table.c.id.in_(latest))
                                                 .order_by(table.c.reviewer))]

    def item_labels(self, item_id: int) -> list[StoredLabel | StoredJudgment]:
        """Every reviewer's current label (or judgment) on the item, by reviewer name, with no blindness check:
        for the adjudicator's view, never for a reviewer's (use :meth:`others_labels`)."""
        with self.reading() as conn:
            return self._current_of(conn, item_id, self._kind(conn, item_id))

    def adjudication(self, item_id: int) -> StoredAdjudication | None:
        """The item's latest adjudication, or None."""
        with self.reading() as conn:
            row = conn.execute(select(adjudications).where(adjudications.c.item_id == item_id)
                               .order_by(adjudications.c.id.desc()).limit(1)).first()
        return _adjudication(row) if row is not None else None

    def adjudications(self, candidate: str | None = None) -> dict[int, StoredAdjudication]:
        """item id -> its latest adjudication, over the candidate's items (or all)."""
        latest = select(func.max(adjudications.c.id)).group_by(adjudications.c.item_id)
        query = (select(adjudications).join(items, items.c.id == adjudications.c.item_id)
                 .where(adjudications.c.id.in_(latest)).order_by(adjudications.c.item_id))
        if candidate:
            query = query.where(items.c.candidate == candidate)
        with self.reading() as conn:
            return {row.item_id: _adjudication(row) for row in conn.execute(query)}

    def stale_adjudications(self, candidate: str | None = None) -> set[int]:
        """Items (the candidate's, or all) whose latest adjudication a label or judgment of the item was written
        after: it decided a dispute between labels some reviewer has since replaced (or added to), so it no
        longer decides the item, which is judged by its current labels again and, if they still disagree, waits
        for a new adjudication. Compared by the rows' stamps, which follow the order of writing per item
        (:meth:`_written_at`)."""
        latest = select(func.max(adjudications.c.id)).group_by(adjudications.c.item_id)
        later = (exists().where(labels.c.item_id == adjudications.c.item_id,
                                labels.c.created_at > adjudications.c.created_at)
                 | exists().where(judgments.c.item_id == adjudications.c.item_id,
                                  judgments.c.created_at > adjudications.c.created_at))
        query = select(adjudications.c.item_id).where(adjudications.c.id.in_(latest), later)
        if candidate:
            query = query.join(items, items.c.id == adjudications.c.item_id).where(items.c.candidate == candidate)
        with self.reading() as conn:
            return set(conn.execute(query).scalars())

    def disputed_items(self, candidate: str | None = None, *, pending_only: bool = False) -> list[DisputedItem]:
        """Items whose reviewers' current labels disagree on accept/reject or on any flag (single-output items),
        or on the preference (pairwise), ordered by id; with each reviewer's current label and the latest
        adjudication (as ``stale_adjudication`` where a label was written after it,
        :meth:`stale_adjudications`). ``pending_only``: only those no standing adjudication decides (the
        adjudication queue)."""
        found: dict[int, list] = {}
        with self.snapshot():  # the labels, judgments and adjudications of one state of the store
            for kind, table, convert in (("single", labels, _label), ("pairwise", judgments, _judgment)):
                latest = select(func.max(table.c.id)).group_by(table.c.item_id, table.c.reviewer)
                query = (select(table).join(items, items.c.id == table.c.item_id)
                         .where(table.c.id.in_(latest)).order_by(table.c.item_id, table.c.reviewer))
                if candidate:
                    query = query.where(items.c.candidate == candidate)
                with self.reading() as conn:
                    for row in conn.execute(query):
                        found.setdefault(row.item_id, [kind]).append(convert(row))
            disputed = {item_id: (entry[0], tuple(entry[1:]), disagreements(entry[0], entry[1:]))
                        for item_id, entry in found.items() if len(entry) > 2}
            disputed = {k: v for k, v in disputed.items() if v[2]}
            if not disputed:
                return []
            adjudicated = self.adjudications(candidate)
            stale = self.stale_adjudications(candidate)
            with self.reading() as conn:
                rows = {}
                ids = sorted(disputed)
                for start in range(0, len(ids), 500):
                    rows.update((r.id, r) for r in conn.execute(
                        select(items.c.id, items.c.candidate, items.c.source, items.c.task, items.c.stratum)
                        .where(items.c.id.in_(ids[start:start + 500]))))
        result = []
        for item_id in sorted(disputed):
            kind, current, what = disputed[item_id]
            standing = adjudicated.get(item_id) if item_id not in stale else None
            if pending_only and standing is not None:
                continue
            row = rows[item_id]
            result.append(DisputedItem(item_id=item_id, kind=kind, candidate=row.candidate, source=row.source,
                                       task=row.task, stratum=row.stratum, disagreements=what, labels=current,
                                       adjudication=standing,
                                       stale_adjudication=adjudicated.get(item_id) if item_id in stale else None))
        return result

    def my_history(self, reviewer: str, limit: int = 200) -> list[int]:
        """Items the reviewer has labelled, most recent first (for corrections)."""
        query = union(select(labels.c.item_id, labels.c.created_at).where(labels.c.reviewer == reviewer),
                      select(judgments.c.item_id, judgments.c.created_at).where(judgments.c.reviewer == reviewer)
                      ).subquery()
        latest = (select(query.c.item_id, func.max(query.c.created_at).label("at")).group_by(query.c.item_id)
                  .order_by(func.max(query.c.created_at).desc()).limit(limit))
        with self.reading() as conn:
            return list(conn.execute(latest).scalars())

    def _quorum(self, conn: Connection, required: int, *scope) -> tuple[int, int]:
        """Items in ``scope`` and those of them with :func:`reviewers_needed` distinct reviewers' labels (or
        judgments), at the configured ``required``."""
        labelled = union(select(labels.c.item_id, labels.c.reviewer),
                         select(judgments.c.item_id, judgments.c.reviewer)).subquery()
        per_item = (select(labelled.c.item_id, func.count(distinct(labelled.c.reviewer)).label("n"))
                    .group_by(labelled.c.item_id).subquery())
        total = conn.execute(select(func.count()).select_from(items).where(*scope)).scalar()
        quorum = conn.execute(select(func.count()).select_from(items.join(per_item, per_item.c.item_id == items.c.id))
                              .where(per_item.c.n >= _reviewers_needed_sql(required), *scope)).scalar()
        return total, quorum

    def progress(self, candidate: str | None = None, *, required_reviewers: int) -> Progress:
        """Items total and with quorum (optionally one candidate's), and each reviewer's done/assigned.
        ``required_reviewers``: the configured number (``review.required_reviewers``); an item needs it, or the
        number it was queued with where that is larger (:func:`reviewers_needed`), as the review record counts."""
        if isinstance(required_reviewers, bool) or not isinstance(required_reviewers, int) or required_reviewers < 1:
            raise InputError(f"required_reviewers: {required_reviewers!r} is not an integer of at least 1")
        with self.reading() as conn:
            total, quorum = self._quorum(conn, required_reviewers,
                                         *([items.c.candidate == candidate] if candidate else []))
            assigned = dict(conn.execute(select(assignments.c.reviewer, func.count())
                                         .group_by(assignments.c.reviewer)).all())
            done = dict(conn.execute(
                select(assignments.c.reviewer, func.count()).where(self._done(assignments.c.reviewer,
                                                                              assignments.c.item_id))
                .group_by(assignments.c.reviewer)).all())
            times: dict[str, list[float]] = {}
            for table in (labels, judgments):
                latest = select(func.max(table.c.id)).group_by(table.c.item_id, table.c.reviewer)
                query = select(table.c.reviewer, table.c.lead_time_s).where(
                    table.c.id.in_(latest), table.c.lead_time_s.is_not(None))
                if candidate:
                    query = query.join(items, items.c.id == table.c.item_id).where(items.c.candidate == candidate)
                for name, seconds in conn.execute(query):
                    times.setdefault(name, []).append(seconds)
        return Progress(items_total=total, items_with_quorum=quorum,
                        per_reviewer={r: (done.get(r, 0), n) for r, n in sorted(assigned.items())},
                        lead_time_s={r: statistics.median(times[r]) if times.get(r) else None
                                     for r in sorted(assigned)})

    def current_labels(self, candidate: str | None = None, kind: str = "single") -> list[dict[str, Any]]:
        """The current (latest) label or judgment of each reviewer on each item, joined with the item's fields."""
        table = labels if kind == "single" else judgments
        latest = select(func.max(table.c.id)).group_by(table.c.item_id, table.c.reviewer)
        query = (select(table, items.c.candidate, items.c.model, items.c.role, items.c.task, items.c.source,
                        items.c.model_a, items.c.model_b, items.c.required_reviewers)
                 .join(items, items.c.id == table.c.item_id).where(table.c.id.in_(latest)).order_by(table.c.id))
        if candidate:
            query = query.where(items.c.candidate == candidate)
        with self.reading() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def strata_of(self, item_ids: list[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        with self.reading() as conn:
            for start in range(0, len(item_ids), 500):
                found.update(conn.execute(select(items.c.id, items.c.stratum).where(
                    items.c.id.in_(item_ids[start:start + 500]))).all())
        return found

    def candidates(self) -> list[str]:
        with self.reading() as conn:
            return list(conn.execute(select(items.c.candidate).distinct().order_by(items.c.candidate)).scalars())

    def counts(self) -> dict[str, int]:
        with self.reading() as conn:
            return {name: conn.execute(select(func.count()).select_from(table)).scalar()
                    for name, table in (("items", items), ("assignments", assignments), ("labels", labels),
                                        ("pairwise_judgments", judgments), ("adjudications", adjudications))}

    def history_frame(self):
        """Every label, judgment and adjudication ever written (superseded ones included), with the item's fields
        and the de-blinded pairwise preference: the release manager's export, as a pandas DataFrame.
        Adjudications are rows of type ``adjudication`` with their ``author`` and ``reason``."""
        import pandas as pd

        superseded_l = select(labels.c.supersedes).where(labels.c.supersedes.is_not(None))
        superseded_j = select(judgments.c.supersedes).where(judgments.c.supersedes.is_not(None))
        item_cols = [items.c.candidate, items.c.model, items.c.role, items.c.source, items.c.task, items.c.stratum,
                     items.c.source_record_id, items.c.source_item_id]
        with self.reading() as conn:
            label_rows = pd.DataFrame([dict(r._mapping) for r in conn.execute(
                select(literal("label").label("type"), labels, *item_cols,
                       labels.c.id.in_(superseded_l).label("superseded"))
                .join(items, items.c.id == labels.c.item_id).order_by(labels.c.id))])
            judgment_rows = pd.DataFrame([dict(r._mapping) for r in conn.execute(
                select(literal("pairwise").label("type"), judgments, *item_cols, items.c.model_a, items.c.model_b,
                       judgments.c.id.in_(superseded_j).label("superseded"))
                .join(items, items.c.id == judgments.c.item_id).order_by(judgments.c.id))])
            superseded_a = select(adjudications.c.supersedes).where(adjudications.c.supersedes.is_not(None))
            adjudication_rows = pd.DataFrame([dict(r._mapping) for r in conn.execute(
                select(literal("adjudication").label("type"), adjudications, *item_cols, items.c.model_a,
                       items.c.model_b, adjudications.c.id.in_(superseded_a).label("superseded"))
                .join(items, items.c.id == adjudications.c.item_id).order_by(adjudications.c.id))])
        for frame in (judgment_rows, adjudication_rows):
            if not frame.empty and "preference" in frame:
                frame["preferred_model"] = [
                    None if p is None else a if p == "A" else b if p == "B" else "tie"
                    for p, a, b in zip(frame.preference, frame.model_a, frame.model_b)]
        frames = [f for f in (label_rows, judgment_rows, adjudication_rows) if not f.empty]
        if not frames:
            return pd.DataFrame(columns=["type", "id", "item_id", "reviewer", "created_at"])
        frame = pd.concat(frames, ignore_index=True)
        return frame.drop(columns=["client_key"]).sort_values(["created_at", "type", "id"], ignore_index=True)

