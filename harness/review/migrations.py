"""Schema of the label store, changed only through named, ordered migrations kept here.

In the style of simonw/llm's ``llm/migrations.py``: each migration is a function registered in order; a
``_migrations`` table lists the names already applied, and ``migrate`` applies the rest, each in its own
transaction together with its row in ``_migrations``. Never edit a migration that has shipped: add a new one.
Migrations run under a lock (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL), so several
processes opening a fresh database at once apply each migration exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
    text,
)

MIGRATIONS: list[Callable[[Connection], None]] = []

#: Arbitrary constant: the PostgreSQL advisory lock key that serialises migrations.
_PG_LOCK_KEY = 0x6E696674  # "nift"


def migration(fn: Callable[[Connection], None]) -> Callable[[Connection], None]:
    MIGRATIONS.append(fn)
    return fn


_meta = MetaData()
_applied = Table("_migrations", _meta, Column("name", String(200), primary_key=True),
                 Column("applied_at", String(40), nullable=False))


@migration
def m001_items_assignments_labels(conn: Connection) -> None:
    meta = MetaData()
    Table("review_items", meta,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("content_key", String(64), nullable=False, unique=True),
          Column("kind", String(16), nullable=False),
          Column("stratum", String(64), nullable=False),
          Column("source", String(120), nullable=False),
          Column("source_record_id", String(200), nullable=False),
          Column("source_item_id", String(200), nullable=False),
          Column("task", String(120), nullable=False),
          Column("candidate", String(200), nullable=False),
          Column("model", String(200)),
          Column("role", String(32)),
          Column("prompt", Text, nullable=False),
          Column("output", Text),
          Column("reference", Text),
          Column("output_a", Text),
          Column("output_b", Text),
          Column("model_a", String(200)),
          Column("model_b", String(200)),
          Column("scores_json", Text, nullable=False),
          Column("flags_json", Text, nullable=False),
          Column("required_reviewers", Integer, nullable=False),
          Column("created_at", String(40), nullable=False),
          CheckConstraint("kind IN ('single', 'pairwise')", name="ck_items_kind"))
    Table("assignments", meta,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("item_id", Integer, ForeignKey("review_items.id"), nullable=False),
          Column("reviewer", String(200), nullable=False),
          Column("assigned_at", String(40), nullable=False),
          UniqueConstraint("item_id", "reviewer", name="uq_assignment"),
          Index("ix_assignments_reviewer_item", "reviewer", "item_id"))
    Table("labels", meta,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("item_id", Integer, ForeignKey("review_items.id"), nullable=False),
          Column("reviewer", String(200), nullable=False),
          Column("verdict", String(16), nullable=False),
          Column("helpfulness", Integer, nullable=False),
          Column("toxic", Boolean, nullable=False),
          Column("hallucination", Boolean, nullable=False),
          Column("unhelpful_refusal", Boolean, nullable=False),
          Column("off_topic", Boolean, nullable=False),
          Column("comment", Text, nullable=False),
          Column("supersedes", Integer, ForeignKey("labels.id")),
          Column("client_key", String(64), nullable=False, unique=True),
          Column("created_at", String(40), nullable=False),
          CheckConstraint("verdict IN ('accept', 'reject')", name="ck_labels_verdict"),
          CheckConstraint("helpfulness BETWEEN 1 AND 5", name="ck_labels_helpfulness"),
          Index("ix_labels_item_reviewer", "item_id", "reviewer"))
    Table("pairwise_judgments", meta,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("item_id", Integer, ForeignKey("review_items.id"), nullable=False),
          Column("reviewer", String(200), nullable=False),
          Column("preference", String(8), nullable=False),
          Column("comment", Text, nullable=False),
          Column("supersedes", Integer, ForeignKey("pairwise_judgments.id")),
          Column("client_key", String(64), nullable=False, unique=True),
          Column("created_at", String(40), nullable=False),
          CheckConstraint("preference IN ('A', 'B', 'tie')", name="ck_judgments_preference"),
          Index("ix_judgments_item_reviewer", "item_id", "reviewer"))
    meta.create_all(conn)


@migration
def m002_append_only(conn: Connection) -> None:
    """Labels and judgments are append-only: the database itself refuses UPDATE and DELETE on them."""
    for table in ("labels", "pairwise_judgments"):
        if conn.dialect.name == "sqlite":
            for action in ("UPDATE", "DELETE"):
                conn.exec_driver_sql(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} are append-only: add a superseding row instead'); END")
        else:
            conn.exec_driver_sql(
                f"CREATE FUNCTION {table}_append_only() RETURNS trigger AS $$ BEGIN "
                f"RAISE EXCEPTION '{table} are append-only: add a superseding row instead'; END $$ LANGUAGE plpgsql")
            conn.exec_driver_sql(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                                 f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()")


@migration
def m003_items_candidate_index(conn: Connection) -> None:
    """The summary and the progress panel select a candidate's items by kind."""
    conn.exec_driver_sql("CREATE INDEX ix_items_candidate_kind ON review_items (candidate, kind)")


@migration
def m004_label_guidelines_and_lead_time(conn: Connection) -> None:
    """Each label and judgment records the hash of the guidelines shown beside the item (``review.guidelines``)
    and the seconds from the item being shown to the submit (the app's measure; Label Studio's lead time)."""
    for table in ("labels", "pairwise_judgments"):
        conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN guidelines_sha256 VARCHAR(64)")
        conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN lead_time_s FLOAT")


@migration
def m005_item_messages(conn: Connection) -> None:
    """An item's conversation as structured turns (JSON list), so the app shows turns, not a chat template."""
    conn.exec_driver_sql("ALTER TABLE review_items ADD COLUMN messages_json TEXT")


@migration
def m006_adjudications(conn: Connection) -> None:
    """Adjudicated labels of disputed items: append-only rows with author and reason, the latest one counting."""
    meta = MetaData()
    Table("review_items", meta, Column("id", Integer, primary_key=True))
    Table("adjudications", meta,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("item_id", Integer, ForeignKey("review_items.id"), nullable=False),
          Column("author", String(200), nullable=False),
          Column("reason", Text, nullable=False),
          Column("verdict", String(16)),
          Column("helpfulness", Integer),
          Column("toxic", Boolean),
          Column("hallucination", Boolean),
          Column("unhelpful_refusal", Boolean),
          Column("off_topic", Boolean),
          Column("preference", String(8)),
          Column("supersedes", Integer, ForeignKey("adjudications.id")),
          Column("guidelines_sha256", String(64)),
          Column("client_key", String(64), nullable=False, unique=True),
          Column("created_at", String(40), nullable=False),
          CheckConstraint("verdict IS NULL OR verdict IN ('accept', 'reject')", name="ck_adjudications_verdict"),
          CheckConstraint("helpfulness IS NULL OR helpfulness BETWEEN 1 AND 5", name="ck_adjudications_helpfulness"),
          CheckConstraint("preference IS NULL OR preference IN ('A', 'B', 'tie')", name="ck_adjudications_preference"),
          CheckConstraint("(verdict IS NULL) <> (preference IS NULL)", name="ck_adjudications_one_kind"),
          CheckConstraint("length(trim(reason)) > 0", name="ck_adjudications_reason"),
          Index("ix_adjudications_item", "item_id"))
    meta.tables["adjudications"].create(conn)
    _append_only(conn, "adjudications")


def _append_only(conn: Connection, table: str) -> None:
    """The database refuses UPDATE and DELETE on ``table`` (as m002 made it refuse them on labels)."""
    if conn.dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            conn.exec_driver_sql(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} are append-only: add a superseding row instead'); END")
    else:
        conn.exec_driver_sql(
            f"CREATE FUNCTION {table}_append_only() RETURNS trigger AS $$ BEGIN "
            f"RAISE EXCEPTION '{table} are append-only: add a superseding row instead'; END $$ LANGUAGE plpgsql")
        conn.exec_driver_sql(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                             f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()")


def applied_migrations(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        if not engine.dialect.has_table(conn, "_migrations"):
            return []
        return list(conn.execute(select(_applied.c.name).order_by(_applied.c.applied_at, _applied.c.name)).scalars())


def migrate(engine: Engine) -> list[str]:
    """Apply every migration not yet applied, in order; returns the names applied now."""
    done: list[str] = []
    for fn in MIGRATIONS:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            _meta.create_all(conn, checkfirst=True)
            if conn.execute(select(_applied.c.name).where(_applied.c.name == fn.__name__)).first():
                continue
            fn(conn)
            conn.execute(_applied.insert().values(name=fn.__name__,
                                                  applied_at=datetime.now(timezone.utc).isoformat()))
            done.append(fn.__name__)
    return done
