"""The schema comes only from the named migrations, and the migrated columns are exactly these."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from harness.review.migrations import MIGRATIONS, applied_migrations, migrate
from harness.review.store import ReviewStore, metadata

EXPECTED_COLUMNS = {
    "_migrations": ["name", "applied_at"],
    "review_items": ["id", "content_key", "kind", "stratum", "source", "source_record_id", "source_item_id", "task",
                     "candidate", "model", "role", "prompt", "output", "reference", "output_a", "output_b",
                     "model_a", "model_b", "scores_json", "flags_json", "required_reviewers", "created_at",
                     "messages_json"],
    "assignments": ["id", "item_id", "reviewer", "assigned_at"],
    "labels": ["id", "item_id", "reviewer", "verdict", "helpfulness", "toxic", "hallucination", "unhelpful_refusal",
               "off_topic", "comment", "supersedes", "client_key", "created_at", "guidelines_sha256", "lead_time_s"],
    "pairwise_judgments": ["id", "item_id", "reviewer", "preference", "comment", "supersedes", "client_key",
                           "created_at", "guidelines_sha256", "lead_time_s"],
    "adjudications": ["id", "item_id", "author", "reason", "verdict", "helpfulness", "toxic", "hallucination",
                      "unhelpful_refusal", "off_topic", "preference", "supersedes", "guidelines_sha256", "client_key",
                      "created_at"],
}
EXPECTED_MIGRATIONS = ["m001_items_assignments_labels", "m002_append_only", "m003_items_candidate_index",
                       "m004_label_guidelines_and_lead_time", "m005_item_messages", "m006_adjudications"]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    return request.getfixturevalue("pg_database")


def test_migrated_columns_are_exactly_these(url):
    store = ReviewStore(url)
    inspector = inspect(store.engine)
    assert sorted(inspector.get_table_names()) == sorted(EXPECTED_COLUMNS)
    for table, columns in EXPECTED_COLUMNS.items():
        assert [c["name"] for c in inspector.get_columns(table)] == columns, table
    # The tables the queries use describe the migrated schema, column for column.
    for table in metadata.sorted_tables:
        assert [c.name for c in table.columns] == EXPECTED_COLUMNS[table.name]
    assert {tuple(ix["column_names"]) for ix in inspector.get_indexes("labels")} >= {("item_id", "reviewer")}
    assert applied_migrations(store.engine) == EXPECTED_MIGRATIONS == [m.__name__ for m in MIGRATIONS]


def test_migrate_twice_applies_nothing_and_keeps_data(tmp_path):
    from harness.review.store import NewItem

    store = ReviewStore(f"sqlite:///{tmp_path / 'm.db'}")
    store.add_items([NewItem(kind="single", stratum="s", source="s", source_record_id="r", source_item_id="1",
                             task="t", candidate="c", prompt="p", output="o", content_key="k1")])
    store.add_label(1, "ann", "reject", 2)
    assert migrate(store._writer) == []
    reopened = ReviewStore(f"sqlite:///{tmp_path / 'm.db'}")
    assert reopened.counts() == {"items": 1, "assignments": 0, "labels": 1, "pairwise_judgments": 0,
                                 "adjudications": 0}


def test_partial_database_gets_only_the_missing_migrations(tmp_path):
    from sqlalchemy import create_engine

    url = f"sqlite:///{tmp_path / 'm.db'}"
    engine = create_engine(url)
    # A database made by an older nift-gate that knew only the first migration.
    import harness.review.migrations as m

    first_only = m.MIGRATIONS[:1]
    saved, m.MIGRATIONS[:] = list(m.MIGRATIONS), first_only
    try:
        assert migrate(engine) == ["m001_items_assignments_labels"]
    finally:
        m.MIGRATIONS[:] = saved
    upgraded = ReviewStore(url)  # opening an older database applies the migrations it lacks
    try:
        assert applied_migrations(engine) == EXPECTED_MIGRATIONS
        from harness.review.store import NewItem

        upgraded.add_items([NewItem(kind="single", stratum="s", source="s", source_record_id="r", source_item_id="1",
                                    task="t", candidate="c", prompt="p", output="o", content_key="k1")])
        upgraded.add_label(1, "ann", "accept", 4)
        with pytest.raises(Exception, match="append-only"):  # m002's rule holds on the upgraded database
            with upgraded.engine.begin() as conn:
                conn.execute(text("DELETE FROM labels"))
    finally:
        upgraded.close()


@pytest.mark.parametrize("statement", ["UPDATE labels SET verdict = 'reject'", "DELETE FROM labels",
                                       "UPDATE pairwise_judgments SET preference = 'B'"])
def test_labels_and_judgments_are_append_only_in_the_database(url, statement):
    from harness.review.store import NewItem

    store = ReviewStore(url)
    store.add_items([NewItem(kind="single", stratum="s", source="s", source_record_id="r", source_item_id="1",
                             task="t", candidate="c", prompt="p", output="o", content_key="k1"),
                     NewItem(kind="pairwise", stratum="s", source="s", source_record_id="r", source_item_id="2",
                             task="t", candidate="c", prompt="p", output_a="a", output_b="b", model_a="c",
                             model_b="b", content_key="k2")])
    store.add_label(1, "ann", "accept", 4)
    store.add_judgment(2, "ann", "A")
    with pytest.raises(Exception, match="append-only"):
        with store.engine.begin() as conn:
            conn.execute(text(statement))
    assert store.my_label(1, "ann").verdict == "accept"
    assert store.my_label(2, "ann").preference == "A"


def _two_disagreeing_labels(store: ReviewStore) -> None:
    from harness.review.store import NewItem

    store.add_items([NewItem(kind="single", stratum="s", source="s", source_record_id="r", source_item_id="1",
                             task="t", candidate="c", prompt="p", output="o", content_key="k1")])
    store.add_label(1, "ann", "accept", 4)
    store.add_label(1, "bob", "reject", 2)


@pytest.mark.parametrize("statement", ["UPDATE adjudications SET verdict = 'accept'", "DELETE FROM adjudications"])
def test_adjudications_are_append_only_in_the_database(url, statement):
    store = ReviewStore(url)
    _two_disagreeing_labels(store)
    store.add_adjudication(1, "rm", reason="the answer invents a date", verdict="reject", helpfulness=2)
    with pytest.raises(Exception, match="append-only"):
        with store.engine.begin() as conn:
            conn.execute(text(statement))
    assert store.adjudication(1).verdict == "reject"


@pytest.mark.parametrize("values, constraint", [
    ("'rm', '   ', 'reject', 2, NULL", "ck_adjudications_reason"),
    ("'rm', 'why', 'reject', 2, 'A'", "ck_adjudications_one_kind"),
    ("'rm', 'why', NULL, NULL, NULL", "ck_adjudications_one_kind"),
])
def test_the_database_refuses_an_adjudication_without_reason_or_of_two_kinds(url, values, constraint):
    """The rules hold for any writer, not only for ReviewStore.add_adjudication."""
    store = ReviewStore(url)
    _two_disagreeing_labels(store)
    with pytest.raises(Exception, match=constraint):
        with store.engine.begin() as conn:
            conn.execute(text(f"INSERT INTO adjudications (item_id, author, reason, verdict, helpfulness, preference, "
                              f"client_key, created_at) VALUES (1, {values}, 'k', 'now')"))


def test_labels_from_before_m004_read_back_without_hash_lead_time_or_messages(tmp_path):
    """A store made by nift-gate before m004: its rows get NULL in the new columns and read back as None."""
    from sqlalchemy import create_engine

    import harness.review.migrations as m

    url = f"sqlite:///{tmp_path / 'm.db'}"
    engine = create_engine(url)
    saved, m.MIGRATIONS[:] = list(m.MIGRATIONS), m.MIGRATIONS[:3]
    try:
        migrate(engine)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO review_items (content_key, kind, stratum, source, source_record_id, "
                              "source_item_id, task, candidate, prompt, output, scores_json, flags_json, "
                              "required_reviewers, created_at) VALUES ('k', 'single', 's', 's', 'r', '1', 't', 'c', "
                              "'p', 'o', '{}', '{}', 2, 'then')"))
            conn.execute(text("INSERT INTO labels (item_id, reviewer, verdict, helpfulness, toxic, hallucination, "
                              "unhelpful_refusal, off_topic, comment, client_key, created_at) VALUES "
                              "(1, 'ann', 'accept', 4, 0, 0, 0, 0, '', 'c1', 'then')"))
    finally:
        m.MIGRATIONS[:] = saved
    store = ReviewStore(url)
    assert applied_migrations(store.engine) == EXPECTED_MIGRATIONS
    old = store.my_label(1, "ann")
    assert (old.verdict, old.guidelines_sha256, old.lead_time_s) == ("accept", None, None)
    assert store.item(1).messages is None
    new = store.add_label(1, "ann", "reject", 2, guidelines_sha256="ab" * 32, lead_time_s=12.5)
    assert (new.supersedes, new.guidelines_sha256, new.lead_time_s) == (old.id, "ab" * 32, 12.5)
