"""Corpus files as they are published: compressed C4 shards, WikiText raw, and the errors of empty files."""

import bz2
import gzip
import json
import lzma
import re

import pytest
from shared import shared_data

import harness.core.models
from harness.core.errors import InputError
from harness.data.config import CorpusConfig
from harness.data.corpus import load_corpus, unread_files

C4_ROWS = [{"text": f"Document {i} about baking bread at home.", "timestamp": "2019-04-25T12:57:54Z",
            "url": f"https://example.com/{i}"} for i in range(3)]
C4_JSONL = "".join(json.dumps(row) + "\n" for row in C4_ROWS).encode()


def one_line_error(config: CorpusConfig) -> str:
    with pytest.raises(InputError) as caught:
        load_corpus(config)
    assert "\n" not in str(caught.value)
    return str(caught.value)


@pytest.mark.parametrize("suffix, compress", [(".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress)])
def test_a_compressed_jsonl_file_is_read_as_json(tmp_path, suffix, compress):
    path = tmp_path / f"c4.jsonl{suffix}"
    path.write_bytes(compress(C4_JSONL))
    docs = load_corpus(CorpusConfig(path=str(path), id_field="url")).documents
    assert [(d.doc_id, d.text) for d in docs] == [(row["url"], row["text"]) for row in C4_ROWS]


def test_a_folder_of_c4_json_gz_shards_is_read_with_ids_without_suffixes(tmp_path):
    for shard in range(2):
        (tmp_path / f"c4-train.0000{shard}-of-01024.json.gz").write_bytes(gzip.compress(C4_JSONL))
    (tmp_path / "notes.csv").write_text("a,b\n")
    docs = load_corpus(CorpusConfig(path=str(tmp_path))).documents
    assert [d.doc_id for d in docs][2:4] == ["c4-train.00000-of-01024:3", "c4-train.00001-of-01024:1"]
    assert docs[0].text == C4_ROWS[0]["text"]
    assert unread_files(tmp_path) == ["notes.csv"]


def test_the_shared_c4_sample_gzipped_reads_as_the_plain_file(tmp_path):
    plain = shared_data("corpus", "c4_en_train_first1000.jsonl")
    path = tmp_path / "c4-train.00000-of-01024.json.gz"
    path.write_bytes(gzip.compress(plain.read_bytes()))
    docs = load_corpus(CorpusConfig(path=str(path), id_field="url")).documents
    assert len(docs) == 1000
    assert docs == load_corpus(CorpusConfig(path=str(plain), id_field="url")).documents


BAD_COMPRESSED = [
    ("bad.json.gz", gzip.compress(b'{"text": "a"}\n{"text": "b"}\n{"text": "broken\n', mtime=0),
     r"bad.json.gz:3: not valid JSON"),
    ("nofield.jsonl.gz", gzip.compress(b'{"text": "a"}\n{"body": "b"}\n', mtime=0),
     r"nofield.jsonl.gz:2: field 'text'"),
    ("cut.jsonl.gz", gzip.compress(C4_JSONL * 50, mtime=0)[:200],
     r"cut.jsonl.gz: not a valid .gz file \(Compressed file ended"),
    ("plain.jsonl.gz", C4_JSONL, r"plain.jsonl.gz: not a valid .gz file \(Not a gzipped file"),
    ("empty.jsonl.gz", gzip.compress(b"", mtime=0), r"empty.jsonl.gz: no rows \(the file is empty\)$"),
    ("c4.jsonl.zst", b"\x28\xb5\x2f\xfd", r"c4.jsonl.zst: .zst files are not read; decompress it"),
]


@pytest.mark.parametrize("name, content, message", BAD_COMPRESSED, ids=[case[0] for case in BAD_COMPRESSED])
def test_bad_compressed_files_are_named_in_one_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    assert re.search(message, one_line_error(CorpusConfig(path=str(path))))


def wikitext_paragraph(k: int) -> str:
    return " " + " ".join(f"word{k}_{i} ." for i in range(50)) + " \n"


def test_wikitext_layout_splits_at_space_lines_and_headings_which_are_dropped(tmp_path):
    # WikiText-2 raw: paragraphs between lines holding one space, headings " = T = " / " = = S = = ", CRLF.
    layout = (" \n = Robert Boulter = \n \n" + wikitext_paragraph(1) + " \n = = Career = = \n \n"
              + wikitext_paragraph(2) + " \n" + wikitext_paragraph(3) + " = = = 2006 = = = \n" + wikitext_paragraph(4)
              + " = Qualified for the next round \n")
    path = tmp_path / "wiki.train.raw"
    path.write_bytes(layout.replace("\n", "\r\n").encode())
    docs = load_corpus(CorpusConfig(path=str(path))).documents
    assert [d.doc_id for d in docs] == ["wiki.train:1", "wiki.train:2", "wiki.train:3", "wiki.train:4"]
    assert [d.text.split()[0] for d in docs] == ["word1_0", "word2_0", "word3_0", "word4_0"]
    assert [len(d.text.split()) for d in docs] == [100, 100, 100, 106]  # an unbalanced '=' line is text
    assert not any("Boulter" in d.text or "Career" in d.text or "2006" in d.text for d in docs)


def test_the_shared_wikitext_test_split_is_hundreds_of_documents_without_headings():
    path = shared_data("corpus", "wikitext2_raw_wiki.test.raw")
    headings = {line.strip() for line in path.read_text().splitlines() if line.startswith(" = ")
                and line.rstrip().endswith(" =")}
    docs = load_corpus(CorpusConfig(path=str(path))).documents
    assert len(docs) > 500
    assert sum(40 <= len(d.text.split()) <= 4000 for d in docs) > 500
    assert "= Robert Boulter =" in headings and "= = Career = =" in headings
    assert not any(heading in d.text for d in docs for heading in headings)


EMPTY = [
    ("empty.jsonl", b"", r"empty.jsonl: no rows \(the file is empty\)$"),
    ("blank.jsonl", b"  \n\n\t \n", r"blank.jsonl: no rows \(the file is only whitespace\)$"),
    ("empty.json", b"", r"empty.json: no rows \(the file is empty\)$"),
    ("empty.txt", b"", r"empty.txt: no text \(the file is empty\)$"),
    ("blank.txt", b"  \n \n\t\n", r"blank.txt: no text \(blank lines and WikiText headings only\)$"),
]


@pytest.mark.parametrize("name, content, message", EMPTY, ids=[case[0] for case in EMPTY])
def test_an_empty_or_blank_file_is_named_with_no_rows_or_no_text(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    assert re.search(message, one_line_error(CorpusConfig(path=str(path))))


def test_datasets_log_line_naming_the_private_copy_is_silenced(tmp_path, caplog):
    # datasets' handler writes to the stderr of its import time, so its records are checked, not stderr.
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"text": "fine"}\n{"text": "broken\n')
    assert "bad.jsonl:2: not valid JSON" in one_line_error(CorpusConfig(path=str(path)))
    assert [record.getMessage() for record in caplog.records if record.name.startswith("datasets")] == []


def test_an_id_field_that_is_not_there_is_refused_listing_the_fields(tmp_path):
    path = tmp_path / "c4.jsonl"
    path.write_bytes(C4_JSONL)
    assert one_line_error(CorpusConfig(path=str(path), id_field="ID")) == (
        f"{path}: no field 'ID' for corpus.id_field (fields: text, timestamp, url)")
    text = tmp_path / "c.txt"
    text.write_text("one doc\n")
    assert "a plain-text file has no fields" in one_line_error(CorpusConfig(path=str(text), id_field="url"))


def test_a_hub_dataset_without_the_id_field_is_refused(monkeypatch):
    import datasets

    monkeypatch.setattr(harness.core.models, "hub_unreachable_reason", lambda: None)
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: iter(C4_ROWS))
    message = one_line_error(CorpusConfig(hub_dataset="allenai/c4", hub_config="en", id_field="ID"))
    assert message == "hub dataset 'allenai/c4' row 1: no field 'ID' for corpus.id_field (fields: text, timestamp, url)"
