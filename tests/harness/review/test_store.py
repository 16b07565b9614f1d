"""The label store: duplicates, assignment, queue, append-only corrections, idempotent writes, blindness."""

from __future__ import annotations

import dataclasses

import pytest

from harness.core.errors import InputError
from harness.review.store import NewItem, ReviewStore, reviewers_needed


def _item(key: str, kind: str = "single") -> NewItem:
    extra = ({"output_a": "first", "output_b": "second", "model_a": "cand", "model_b": "base"}
             if kind == "pairwise" else {"output": f"output {key}", "model": "cand"})
    return NewItem(kind=kind, stratum="random", source="bench/qa", source_record_id="rec", source_item_id=key,
                   task="qa", candidate="cand", prompt=f"prompt {key}", content_key=key, **extra)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_database")
    store = ReviewStore(url)
    yield store
    store.close()


def test_duplicate_content_keys_are_skipped(store):
    assert store.add_items([_item("a"), _item("b"), _item("a")]) == [1, 2]
    assert store.add_items([_item("b"), _item("c")]) == [3]
    assert store.counts()["items"] == 3


def test_assignment_fills_each_item_to_its_quorum_least_loaded_first(store):
    store.add_items([_item(k) for k in "abcd"])
    assert store.assign(["ann", "bob", "cy"], 2) == 8
    assert store.progress(required_reviewers=2).per_reviewer == {"ann": (0, 3), "bob": (0, 3), "cy": (0, 2)}
    assert store.assign(["ann", "bob", "cy"], 2) == 0  # already full
    store.add_items([_item("e")])
    assert store.assign(["ann", "bob", "cy"], 2) == 2
    assert store.progress(required_reviewers=2).per_reviewer == {"ann": (0, 4), "bob": (0, 3), "cy": (0, 3)}


def test_a_removed_reviewers_open_items_go_to_a_current_reviewer(store):
    """bob leaves review.reviewers with items 1 and 2 open and item 3 labelled; cy joins. The refill gives cy
    bob's open items, not item 3 (bob's label counts toward its reviewers); bob's rows stay. Before, bob's open
    assignments held their places for ever and those items never reached their quorum."""
    store.add_items([_item(k) for k in "abc"])
    assert store.assign(["ann", "bob"], 2) == 6
    store.add_label(3, "bob", "accept", 4)
    assert store.assign(["ann", "cy"], 2) == 2
    assert [q.item_id for q in store.queue("cy")] == [1, 2]
    assert store.counts()["assignments"] == 8  # added, none removed
    assert store.progress(required_reviewers=2).per_reviewer == {"ann": (0, 3), "bob": (1, 3), "cy": (0, 2)}
    assert store.assign(["ann", "cy"], 2) == 0  # every item has two: ann and cy, or ann and bob's label
    # Anyone's label counts, assigned or not (a pair's judgment too): d and p need one assignee more each.
    store.add_items([_item("d"), _item("p", "pairwise")])
    store.add_label(4, "dee", "accept", 4)
    store.add_judgment(5, "dee", "A")
    assert store.assign(["ann", "cy"], 2) == 2  # least-loaded first: d to cy, then p to ann (a tie, by name)
    assert ([q.item_id for q in store.queue("cy")], [q.item_id for q in store.queue("ann")]) == ([1, 2, 4],
                                                                                               [1, 2, 3, 5])


def test_an_item_queued_for_more_reviewers_than_configured_gets_them_all(store):
    # its quorum is the larger number (reviewers_needed); assigning only the configured two left it short for ever
    store.add_items([dataclasses.replace(_item("a"), required_reviewers=3), _item("b")])
    assert store.assign(["ann", "bob", "cy"], 2) == 5
    assert sorted(q.item_id for r in ("ann", "bob", "cy") for q in store.queue(r)) == [1, 1, 1, 2, 2]


def test_queue_holds_assigned_unlabelled_items_oldest_first(store):
    store.add_items([_item(k) for k in "abc"] + [_item("p", "pairwise")])
    store.assign(["ann", "bob"], 2)
    assert [q.item_id for q in store.queue("ann")] == [1, 2, 3, 4]
    store.add_label(2, "ann", "accept", 5)
    store.add_judgment(4, "ann", "tie")
    assert [q.item_id for q in store.queue("ann")] == [1, 3]
    assert [q.item_id for q in store.queue("bob", limit=2, offset=1)] == [2, 3]
    assert store.progress(required_reviewers=2).per_reviewer == {"ann": (2, 4), "bob": (0, 4)}


def test_a_correction_supersedes_and_the_old_label_stays(store):
    store.add_items([_item("a")])
    first = store.add_label(1, "ann", "accept", 4, {"toxic": False}, "looks fine")
    second = store.add_label(1, "ann", "reject", 1, {"toxic": True}, "missed a slur")
    assert second.supersedes == first.id
    assert store.my_label(1, "ann") == second
    history = store.history_frame()
    assert list(history["verdict"]) == ["accept", "reject"]
    assert list(history["superseded"]) == [True, False]
    current = store.current_labels()
    assert [(c["id"], c["verdict"], c["toxic"]) for c in current] == [(second.id, "reject", True)]


def test_repeating_a_write_with_the_same_client_key_stores_it_once(store):
    store.add_items([_item("a"), _item("p", "pairwise")])
    one = store.add_label(1, "ann", "accept", 3, client_key="k-1")
    again = store.add_label(1, "ann", "accept", 3, client_key="k-1")
    assert one == again
    j1 = store.add_judgment(2, "ann", "B", client_key="k-2")
    assert store.add_judgment(2, "ann", "B", client_key="k-2") == j1
    assert store.counts()["labels"] == 1 and store.counts()["pairwise_judgments"] == 1


@pytest.mark.parametrize("change, differs", [
    ({"verdict": "reject"}, "verdict"),
    ({"helpfulness": 1}, "helpfulness"),
    ({"flags": {"toxic": True}}, "toxic"),
    ({"comment": "on second thought"}, "comment"),
    ({"reviewer": "bob"}, "reviewer"),
])
def test_a_label_reusing_a_client_key_with_other_content_is_refused(store, change, differs):
    """Returning the stored row would acknowledge a decision that was never saved."""
    store.add_items([_item("a"), _item("p", "pairwise")])
    first = store.add_label(1, "ann", "accept", 5, {}, "fine", client_key="k1")
    label = {"item_id": 1, "reviewer": "ann", "verdict": "accept", "helpfulness": 5, "flags": {}, "comment": "fine"}
    with pytest.raises(InputError, match=rf"client_key: 'k1' already stored labels row {first.id} \(item 1, by "
                                         rf"ann\), which differs in {differs}; nothing was saved"):
        store.add_label(**{**label, **change}, client_key="k1")
    assert store.counts()["labels"] == 1 and store.my_label(1, "ann") == first
    # An exact retry (the acknowledgement lost) still returns the stored row, whatever its lead time this time.
    assert store.add_label(**label, client_key="k1", lead_time_s=9.0) == first


def test_a_judgment_or_adjudication_reusing_a_client_key_with_other_content_is_refused(store):
    store.add_items([_item("a"), _item("p", "pairwise")])
    first = store.add_judgment(2, "ann", "A", client_key="j1")
    with pytest.raises(InputError, match="already stored pairwise_judgments row .* differs in preference"):
        store.add_judgment(2, "ann", "B", client_key="j1")
    assert store.add_judgment(2, "ann", "A", client_key="j1") == first
    store.add_judgment(2, "bob", "B")
    adjudication = store.add_adjudication(2, "rm", reason="A answers it", preference="A", client_key="a1")
    with pytest.raises(InputError, match="already stored adjudications row .* differs in reason, preference"):
        store.add_adjudication(2, "rm", reason="B answers it", preference="B", client_key="a1")
    assert store.add_adjudication(2, "rm", reason="A answers it", preference="A", client_key="a1") == adjudication
    assert store.counts()["pairwise_judgments"] == 2 and store.counts()["adjudications"] == 1


def test_others_labels_stay_hidden_until_the_reviewer_has_submitted(store):
    store.add_items([_item("a")])
    store.add_label(1, "bob", "reject", 2, {"off_topic": True}, "bob's view")
    assert store.others_labels(1, "ann") is None
    store.add_label(1, "ann", "accept", 4)
    others = store.others_labels(1, "ann")
    assert [(o.reviewer, o.verdict, o.comment, o.flags["off_topic"]) for o in others] == [
        ("bob", "reject", "bob's view", True)]


def test_reviewer_view_of_a_pairwise_item_has_no_mapping(store):
    store.add_items([_item("p", "pairwise")])
    view = store.item(1)
    assert (view.output_a, view.output_b) == ("first", "second")
    assert not any("model" in name for name in view.__dataclass_fields__)
    assert "cand" not in repr(view) and "base" not in repr(view)


@pytest.mark.parametrize(("call", "message"), [
    (lambda s: s.add_label(1, "ann", "maybe", 3), "verdict: 'maybe'"),
    (lambda s: s.add_label(1, "ann", "accept", 6), "helpfulness: 6"),
    (lambda s: s.add_label(1, "ann", "accept", 3, {"rude": True}), "flags: unknown \\['rude'\\]"),
    (lambda s: s.add_label(99, "ann", "accept", 3), "item_id: no review item 99"),
    (lambda s: s.add_label(2, "ann", "accept", 3), "item_id: item 2 is not a single item"),
    (lambda s: s.add_judgment(1, "ann", "A"), "item_id: item 1 is not a pairwise item"),
    (lambda s: s.add_judgment(2, "ann", "C"), "preference: 'C'"),
    (lambda s: s.add_label(1, "", "accept", 3), "reviewer: empty"),
])
def test_bad_labels_are_refused_naming_the_field(store, call, message):
    store.add_items([_item("a"), _item("p", "pairwise")])
    with pytest.raises(InputError, match=message):
        call(store)
    assert store.counts()["labels"] == 0 and store.counts()["pairwise_judgments"] == 0


def test_quorum_counts_distinct_reviewers(store):
    store.add_items([_item("a"), _item("b")])
    store.add_label(1, "ann", "accept", 3)
    store.add_label(1, "ann", "reject", 3)  # a correction is not a second reviewer
    store.add_label(2, "ann", "accept", 3)
    store.add_label(2, "bob", "accept", 3)
    progress = store.progress("cand", required_reviewers=2)
    assert (progress.items_total, progress.items_with_quorum) == (2, 1)


def test_an_items_quorum_is_at_the_larger_of_the_configured_and_its_queued_number(store):
    """The review record's rule (``reviewers_needed``), so the Queue page's whole-store bar and the record's agree.
    Items queued needing 1, 2 and 3; ann and bob label all three, ann alone a fourth queued needing 1. The store
    used to count at the queued number alone: 3 of 4 whatever the config said."""
    store.add_items([NewItem(**{**_item(key).__dict__, "required_reviewers": n})
                     for key, n in (("one", 1), ("two", 2), ("three", 3), ("solo", 1))])
    for item_id in (1, 2, 3):
        store.add_label(item_id, "ann", "accept", 3)
        store.add_label(item_id, "bob", "accept", 3)
    store.add_label(4, "ann", "accept", 3)
    quorum = {n: store.progress("cand", required_reviewers=n).items_with_quorum for n in (1, 2, 3)}
    assert quorum == {1: 3, 2: 2, 3: 0}  # at 2 "solo" has one reviewer of 2; at 3 no item has three
    store.add_label(3, "cy", "accept", 3)
    assert store.progress(required_reviewers=2).items_with_quorum == 3  # "three" has its three
    assert [reviewers_needed(queued, 2) for queued in (None, 1, 2, 3)] == [2, 2, 2, 3]
    with pytest.raises(InputError, match="required_reviewers: 0 is not an integer of at least 1"):
        store.progress(required_reviewers=0)


# ---- a store that cannot be opened: one line, exit 2, nothing written ----------------------------------------------

IN_MEMORY = ["sqlite://", "sqlite:///", "sqlite:///:memory:", "sqlite:///file::memory:?cache=shared&uri=true",
             "sqlite:///file:labels?mode=memory&uri=true"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("url", IN_MEMORY)
def test_an_in_memory_sqlite_store_is_refused_at_once(url):
    """Its labels would be gone when the process exits (before, the switch to WAL waited for ever)."""
    with pytest.raises(InputError) as raised:
        ReviewStore(url)
    assert str(raised.value) == (f"review.database: {url} is an in-memory SQLite database, which loses every label "
                                 f"when the process exits; name a file, e.g. sqlite:////abs/path/review.db")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", [["review", "summary"], ["review", "enqueue"], ["gate"]])
def test_every_command_refuses_an_in_memory_review_database_in_one_line(run_store, capsys, command):
    from harness.app.cli import main

    args = ["--home", str(run_store.home), "--run", "r1", "--set", "review.database=sqlite://"]
    assert main([*command, *args]) == 2
    assert capsys.readouterr().err == ("nift-gate: error: review.database: sqlite:// is an in-memory SQLite database, "
                                       "which loses every label when the process exits; name a file, e.g. "
                                       "sqlite:////abs/path/review.db\n")


class _DeclinesWal:
    """A connection to a file that answers the switch to WAL with its old mode and no error, as SQLite does where
    it cannot switch (e.g. a file system without shared memory)."""

    def __init__(self, path):
        import sqlite3

        self.db = sqlite3.connect(path)

    def execute(self, sql):
        return self.db.execute("PRAGMA journal_mode" if sql == "PRAGMA journal_mode=WAL" else sql)


@pytest.mark.timeout(60)
def test_the_switch_to_wal_gives_up_at_its_deadline_when_sqlite_declines_it(tmp_path):
    """harness.core.sqlite.write_ahead_log as the store and the generation cache use it."""
    import sqlite3
    import time

    from harness.core.sqlite import write_ahead_log

    declining = _DeclinesWal(tmp_path / "s.db")
    began = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match=r"^journal mode stays 'delete', not 'wal', after 0.3 s$"):
        write_ahead_log(declining, 0.3)
    assert 0.3 <= time.monotonic() - began < 10
    with pytest.raises(sqlite3.OperationalError, match="an in-memory or temporary database cannot use WAL"):
        write_ahead_log(sqlite3.connect(":memory:"), 30)  # at once: it never can


NOT_A_DATABASE = [b"garbage", b"SQLite format 3\x00" + b"\xff" * 4080]


@pytest.mark.parametrize("content", NOT_A_DATABASE, ids=["garbage", "damaged-header"])
@pytest.mark.parametrize("command", [["review", "enqueue"], ["review", "summary"], ["gate"],
                                     ["review", "export", "--out", "labels.csv"]])
def test_a_store_file_that_is_not_a_database_is_named_and_left_as_it_is(run_store, tmp_path, monkeypatch, capsys,
                                                                      command, content):
    """Not "no review store; run `nift-gate review enqueue` first": enqueue cannot open it either."""
    from harness.app.cli import main

    db = run_store.root / "review" / "review.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(content)
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--home", str(run_store.home), "--run", "r1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nift-gate: error: {db}: is not an SQLite database (")
    assert err.endswith("); restore it from a backup or move it away\n") and err.count("\n") == 1
    assert db.read_bytes() == content and [p.name for p in db.parent.iterdir()] == ["review.db"]
    assert not (tmp_path / "labels.csv").exists()


def test_a_damaged_store_is_named_by_the_store_itself(tmp_path):
    """What the review app and `review enqueue` open: the store, not open_store's read-only check."""
    db = tmp_path / "s.db"
    ReviewStore(f"sqlite:///{db}").close()
    with db.open("r+b") as f:
        f.seek(2 * 4096)
        f.write(b"\xff" * 4096)  # page 3: the index of applied migrations, which opening the store reads
    with pytest.raises(InputError, match=rf"^{db}: is not an SQLite database \(database disk image is malformed\); "
                                         rf"restore it from a backup or move it away$"):
        ReviewStore(f"sqlite:///{db}")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", [["review", "summary"], ["review", "enqueue"],
                                     ["review", "export", "--out", "labels.csv"]])
def test_a_postgresql_server_that_cannot_be_reached_is_one_line_with_the_password_masked(run_store, tmp_path,
                                                                                          monkeypatch, capsys, command):
    from harness.app.cli import main

    monkeypatch.chdir(tmp_path)
    url = "postgresql://u:s3cr3t@127.0.0.1:1/db"
    assert main([*command, "--home", str(run_store.home), "--run", "r1", "--set", f"review.database={url}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nift-gate: error: review.database: cannot open postgresql+psycopg://u:***@127.0.0.1:1/db: ")
    assert err.count("\n") == 1 and "\t" not in err and "s3cr3t" not in err
    assert "Is the server running" in err  # psycopg's hint, joined to the line
