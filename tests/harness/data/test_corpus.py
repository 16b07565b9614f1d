import gzip
import json

import pandas as pd
import pytest

from harness.core.errors import InputError
from harness.data.config import CorpusConfig
from harness.data.corpus import load_corpus, normalise


def test_normalise_collapses_spaces_and_keeps_paragraphs():
    assert normalise("  One\t two\r\nthree.\n\n\n  Four   five ") == "One two three.\n\nFour five"


def test_jsonl_with_ids(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"body": "alpha  beta", "key": "k1"}) + "\n" + json.dumps({"body": "gamma", "key": "k2"}) + "\n")
    docs = load_corpus(CorpusConfig(path=str(path), text_field="body", id_field="key")).documents
    assert [(d.doc_id, d.text) for d in docs] == [("k1", "alpha beta"), ("k2", "gamma")]


def test_nested_text_and_id_fields_by_dotted_path(tmp_path):
    rows = [{"meta": {"id": "a1"}, "turns": ["first  turn", "reply"]},
            {"meta": {"id": "a2"}, "turns": ["second turn"]}]
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows))
    parquet = tmp_path / "c.parquet"
    pd.DataFrame(rows).to_parquet(parquet)
    for path in (jsonl, parquet):
        docs = load_corpus(CorpusConfig(path=str(path), text_field="turns.0", id_field="meta.id")).documents
        assert [(d.doc_id, d.text) for d in docs] == [("a1", "first turn"), ("a2", "second turn")]
    with pytest.raises(InputError, match=r"c.jsonl:2: field 'turns.1' is missing or null"):
        load_corpus(CorpusConfig(path=str(jsonl), text_field="turns.1"))
    with pytest.raises(InputError, match=r"c.jsonl:1: field 'meta.title' is missing or null"):
        load_corpus(CorpusConfig(path=str(jsonl), text_field="meta.title"))


def test_plain_text_by_paragraph_and_by_line(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("first line\nstill first\n\nsecond doc\n")
    docs = load_corpus(CorpusConfig(path=str(path))).documents
    assert [d.text for d in docs] == ["first line still first", "second doc"]
    assert len(load_corpus(CorpusConfig(path=str(path), text_mode="line")).documents) == 3


def test_parquet(tmp_path):
    path = tmp_path / "c.parquet"
    pd.DataFrame({"text": ["one doc", "two doc"]}).to_parquet(path)
    assert [d.text for d in load_corpus(CorpusConfig(path=str(path))).documents] == ["one doc", "two doc"]


@pytest.mark.parametrize("name, content, message", [
    ("empty.jsonl", b"", r"empty.jsonl"),
    ("bad.jsonl", b'{"text": "fine"}\n{"text": "fine too"}\n{"text": "broken\n', r"bad.jsonl:3: not valid JSON"),
    ("latin.jsonl", b'{"text": "ok"}\n{"text": "caf\xe9 au lait"}\n', r"latin.jsonl:2: not UTF-8 \(byte 0xe9"),
    ("latin.txt", b"fine\n\ncaf\xe9\n", r"latin.txt:3: not UTF-8"),
    ("c.jsonl", b'{"content": "a"}\n{"content": "b"}\n', r"no field 'text' \(fields: content\)"),
    ("mixed.jsonl", b'{"text": "a"}\n{"other": "b"}\n', r"mixed.jsonl:2: field 'text' is missing"),
    # datasets skips blank lines: the error names the file's line, not the row's position
    ("gaps.jsonl", b'{"text": "a"}\n\n  \n{"text": 3}\n', r"gaps.jsonl:4: field 'text' is a number, not text"),
    ("array.json", b'[\n  {"text": "a"},\n  {\n    "other": "b"\n  }\n]\n',
     r"array.json:3 \(item 2\): field 'text' is missing or null"),
    ("repeat.json", b'[{"text": "a"},\n {"text": "b", "text": "c"}]',
     r"repeat.json:2 \(item 2\): key 'text' is repeated"),
    ("items.json", b'[{"text": "a"},\n "just a string"]',
     r"items.json:2 \(item 2\): expected a JSON object per array item, got str"),
    ("items.json.gz", gzip.compress(b'[{"text": "a"},\n 7]', mtime=0),
     r"items.json.gz:2 \(item 2\): expected a JSON object"),
])
def test_bad_corpus_files_are_named_with_file_and_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_corpus(CorpusConfig(path=str(path)))


def test_a_10_mb_document_loads_and_is_kept_whole(tmp_path):
    path = tmp_path / "big.jsonl"
    big = "word " * 2_000_000  # 10 MB on one line
    path.write_text(json.dumps({"text": "a normal document"}) + "\n" + json.dumps({"text": big}) + "\n")
    docs = load_corpus(CorpusConfig(path=str(path))).documents
    assert len(docs) == 2 and len(docs[1].text.split()) == 2_000_000


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_corpus(CorpusConfig(path=str(tmp_path / "nope.jsonl")))


def test_hub_dataset_offline_fails_with_a_way_forward():
    with pytest.raises(InputError, match="HF_HUB_OFFLINE=1 is set.*corpus.path"):
        load_corpus(CorpusConfig(hub_dataset="Skylion007/openwebtext"))


def test_a_streamed_hub_dataset_reads_nested_fields_by_dotted_path(monkeypatch):
    # the hub is not reachable here: a stand-in stream of rows takes the place of datasets' streaming reader
    import datasets

    import harness.core.models as models

    rows = [{"meta": {"id": "h1"}, "doc": {"body": "streamed  text"}}, {"meta": {}, "doc": {"body": "more"}}]
    monkeypatch.setattr(models, "hub_unreachable_reason", lambda: None)
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: iter(rows))
    config = CorpusConfig(hub_dataset="org/web", text_field="doc.body", id_field="meta.id")
    with pytest.raises(InputError, match=r"hub dataset 'org/web' row 2: no field 'meta.id' for corpus.id_field"):
        load_corpus(config)
    rows[1]["meta"]["id"] = "h2"
    assert [(d.doc_id, d.text) for d in load_corpus(config).documents] == [("h1", "streamed text"), ("h2", "more")]


def test_equal_file_names_in_two_folders_get_distinct_ids(tmp_path):
    for folder in ("news", "blogs"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "part.jsonl").write_text(json.dumps({"text": f"{folder} one"}) + "\n"
                                                      + json.dumps({"text": f"{folder} two"}) + "\n")
    (tmp_path / "part.txt").write_text("top one\n\ntop two\n")
    (tmp_path / "part.md").write_text("mark one\n")
    docs = load_corpus(CorpusConfig(path=str(tmp_path))).documents
    assert [d.doc_id for d in docs] == ["blogs/part:1", "blogs/part:2", "news/part:1", "news/part:2",
                                        "part.md:1", "part.txt:1", "part.txt:2"]


def test_a_flat_corpus_keeps_its_file_stem_ids():
    # The embedded corpus (and any flat folder or single file): ids as before, so cuts and the demo stay put.
    assert [d.doc_id for d in load_corpus(CorpusConfig()).documents][:2] == ["part-a:1", "part-a:2"]


def test_a_repeated_document_id_is_refused_naming_both_rows(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": "one", "key": "k1"}) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "two", "key": "k2"}) + "\n"
                                      + json.dumps({"text": "three", "key": "k1"}) + "\n")
    with pytest.raises(InputError, match=r"b.jsonl:2: document id 'k1' \(corpus.id_field 'key'\) repeats the one "
                                         r"at .*a.jsonl:1; ids must be unique"):
        load_corpus(CorpusConfig(path=str(tmp_path), id_field="key"))


def test_a_plain_text_corpus_starting_with_a_byte_order_mark_does_not_pass_it_on(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes("\ufeffFirst document.\n\nSecond one.\n".encode())
    assert [d.text for d in load_corpus(CorpusConfig(path=str(path))).documents] == ["First document.", "Second one."]


@pytest.mark.parametrize("value, shown", [(None, "null"), (1.5, "float"), ({"a": 1}, "dict"), (True, "bool")])
def test_a_corpus_id_that_is_not_a_string_or_whole_number_is_refused(tmp_path, value, shown):
    """str() would make null "None" (or the row number, silently), 1.5 "1.5" and an object its repr."""
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"text": "one", "url": "u1"}) + "\n" + json.dumps({"text": "two", "url": value}) + "\n")
    with pytest.raises(InputError, match=rf"c.jsonl:2: field 'url' \(corpus.id_field\) must be a string or a whole "
                                         rf"number, got {shown}"):
        load_corpus(CorpusConfig(path=str(path), id_field="url"))


def test_a_parquet_row_is_named_by_its_row(tmp_path):
    path = tmp_path / "c.parquet"
    pd.DataFrame({"text": ["fine", None]}).to_parquet(path)
    with pytest.raises(InputError, match=r"c.parquet row 2: field 'text' is missing or null"):
        load_corpus(CorpusConfig(path=str(path)))


def test_a_repeated_id_in_a_json_array_names_both_items_lines(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('[\n{"text": "a", "key": "k"},\n\n{"text": "b", "key": "k"}\n]')
    with pytest.raises(InputError, match=r"c.json:4 \(item 2\): document id 'k' .* repeats the one at "
                                         r".*c.json:2 \(item 1\)"):
        load_corpus(CorpusConfig(path=str(path), id_field="key"))


def test_rows_with_no_text_are_counted_and_blank_lines_of_plain_text_are_not(tmp_path):
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text('{"text": "one"}\n{"text": ""}\n{"text": "  \\n\\t "}\n{"text": "two"}\n')
    corpus = load_corpus(CorpusConfig(path=str(jsonl)))
    assert [d.doc_id for d in corpus.documents] == ["c:1", "c:4"]
    assert corpus.empty_rows == 2
    text = tmp_path / "t.txt"
    text.write_text("one\n\n   \ntwo\n")
    for mode in ("line", "paragraph"):
        corpus = load_corpus(CorpusConfig(path=str(text), text_mode=mode))
        assert ([d.text for d in corpus.documents], corpus.empty_rows) == (["one", "two"], 0)


def test_a_corpus_of_only_empty_rows_says_so(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": ""}\n{"text": " "}\n')
    with pytest.raises(InputError, match=r"no documents with text \(2 rows hold only whitespace or nothing in "
                                         r"field 'text'\)"):
        load_corpus(CorpusConfig(path=str(path)))


def test_an_id_field_of_two_types_names_the_line_where_the_type_changes(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "a", "url": "u1"}\n{"text": "b", "url": null}\n\n{"text": "c", "url": 3}\n')
    with pytest.raises(InputError, match=r"c.jsonl:4: field 'url' is a number here but a string on line 1"):
        load_corpus(CorpusConfig(path=str(path), id_field="url"))
