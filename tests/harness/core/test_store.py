import json
import os

import pytest

from harness.core.errors import InputError
from harness.core.records import InputRef, Record, stage_fingerprint
from harness.core.store import (
    MISSING,
    RunStore,
    atomic_dir,
    atomic_write_text,
    completed_record,
    numbered_jsonl,
    numbered_rows,
    read_jsonl,
    read_record,
    row_field,
    runs_home,
    write_record,
)


class ToyRecord(Record):
    kind: str = "toy"
    value: int


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a" / "out.txt"
    atomic_write_text(path, "first")
    atomic_write_text(path, "second")
    assert path.read_text() == "second"
    assert os.listdir(path.parent) == ["out.txt"]


def test_atomic_dir_keeps_old_folder_when_the_body_fails(tmp_path):
    target = tmp_path / "stage"
    with atomic_dir(target) as tmp:
        (tmp / "x").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "x").write_text("half")
        raise RuntimeError("crash mid-write")
    assert (target / "x").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["stage"]


def test_read_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2\n')
    with pytest.raises(InputError, match=r"rows.jsonl:3: not valid JSON"):
        read_jsonl(path)


def test_completed_record_matches_only_the_same_fingerprint(tmp_path):
    inputs = [InputRef(kind="corpus", id="c", sha256="abc")]
    fingerprint = stage_fingerprint(inputs, {"k": 1})
    record = ToyRecord(record_id="r1", run_id="run", inputs=inputs, config={"k": 1}, fingerprint=fingerprint, value=3)
    write_record(tmp_path, record)
    assert completed_record(tmp_path, ToyRecord, fingerprint).value == 3
    assert completed_record(tmp_path, ToyRecord, stage_fingerprint(inputs, {"k": 2})) is None
    loaded = json.loads((tmp_path / "record.json").read_text())
    for field in ("schema_version", "record_id", "run_id", "inputs", "config", "fingerprint", "versions",
                  "code_revision", "created_at"):
        assert loaded[field] not in (None, "", {}), field
    assert "torch" in loaded["versions"] and "transformers" in loaded["versions"]


def test_runs_home_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("NIFT_HOME", str(tmp_path / "env"))
    assert runs_home() == tmp_path / "env"
    assert runs_home(tmp_path / "flag") == tmp_path / "flag"
    monkeypatch.delenv("NIFT_HOME")
    assert str(runs_home()) == "nift-runs"
    assert RunStore("r1", tmp_path).stage_dir("data", "v") == tmp_path / "r1" / "data" / "v"
    with pytest.raises(InputError):
        RunStore("../escape", tmp_path)


@pytest.mark.parametrize("content, message", [
    (b'{"a": 1}\n{"a": "caf\xe9"}\n', r"rows.jsonl:2: not UTF-8 \(byte 0xe9 at column 11\)"),
    (b'{"a": 1}\n[]\n', r"rows.jsonl:2: expected a JSON object per line, got list"),
    (b'{"a": 1}\n"text"\n', r"rows.jsonl:2: expected a JSON object per line, got str"),
])
def test_read_jsonl_names_the_line_of_a_non_utf8_byte_or_a_row_that_is_no_object(tmp_path, content, message):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_jsonl(path)


@pytest.mark.parametrize("content, document", [
    (b'[\n  {"a": 1},\n  {"a": 2}\n]\n', "JSON array"), (b'{\n  "a": 1\n}\n', "JSON object")])
def test_pretty_printed_json_where_json_lines_is_read_is_named_as_such(tmp_path, content, document):
    # json.loads of the first line alone says only "Expecting value": the user would look for a bad character
    path = tmp_path / "rows.jsonl"
    path.write_bytes(content)
    with pytest.raises(InputError, match=rf"rows.jsonl:1: this file is one {document} written across lines, not "
                                         r"JSON Lines \(one JSON object per line\)"):
        read_jsonl(path)
    path.write_bytes(b'\n' + content[:-3])  # and broken JSON stays a plain JSON error, at its first row's line
    with pytest.raises(InputError, match=r"rows.jsonl:2: not valid JSON \("):
        read_jsonl(path)


def test_a_leading_byte_order_mark_is_not_content(tmp_path):
    """Notepad and Excel start UTF-8 files with one; json.loads refuses it on the first row."""
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n{"a": "\xef\xbb\xbf"}\n')
    assert read_jsonl(path) == [{"a": 1}, {"a": "\ufeff"}]  # only the file's first character is dropped
    assert numbered_rows(b'\xef\xbb\xbf[{"a": 1}]', path)[0] == [(1, {"a": 1})]


def test_read_jsonl_keeps_rows_whose_strings_hold_a_line_separator(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"a": "one\u2028two"}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_jsonl(path) == [{"a": "one\u2028two"}]


def test_read_record_names_the_line_of_a_non_utf8_byte(tmp_path):
    record = ToyRecord(record_id="r1", run_id="run", fingerprint="f", value=3)
    write_record(tmp_path, record)
    path = tmp_path / "record.json"
    data = path.read_bytes().replace(b'"run"', b'"r\xfcn"')
    path.write_bytes(data)
    line = data[:data.index(b"\xfc")].count(b"\n") + 1
    with pytest.raises(InputError, match=rf"record.json:{line}: not UTF-8 \(byte 0xfc"):
        read_record(tmp_path, ToyRecord)
    assert completed_record(tmp_path, ToyRecord, "f") is None  # a damaged record is not a finished stage


HOSTILE_ROWS = [
    # Python refuses to convert an int of more than 4,300 digits: a ValueError, not a JSONDecodeError
    (b'{"id": ' + b"7" * 5000 + b'}', "a number of more than 4300 digits"),
    (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "not valid JSON here (nested too deeply to read)"),
    # half a surrogate pair decodes to a str no UTF-8 writer takes: the stage would fail after its work
    (b'{"turns": ["hello \\ud83d"]}', "a string holds half of a UTF-16 surrogate pair"),
    (b'{"t": "\\udc00 alone"}', "a string holds half of a UTF-16 surrogate pair"),
]


@pytest.mark.parametrize(("row", "problem"), HOSTILE_ROWS)
@pytest.mark.parametrize("layout", ["jsonl", "array"])
def test_a_row_json_parses_but_python_cannot_hold_is_one_line_naming_it(row, problem, layout):
    data = b'{"ok": 1}\n' + row + b"\n" if layout == "jsonl" else b'[{"ok": 1},\n' + row + b"]"
    with pytest.raises(InputError) as raised:
        list(numbered_jsonl(data, "f.jsonl")) if layout == "jsonl" else numbered_rows(data, "f.json")
    where = "f.jsonl:2" if layout == "jsonl" else "f.json:2 (item 2)"
    assert str(raised.value).startswith(f"{where}: {problem}")


def test_an_escaped_surrogate_pair_and_an_escaped_backslash_are_text():
    data = b'{"emoji": "\\ud83d\\ude00", "path": "C:\\\\ud83d"}\n'  # json.dumps writes emoji as such pairs
    assert list(numbered_jsonl(data, "f.jsonl")) == [(1, {"emoji": "\U0001f600", "path": "C:\\ud83d"})]


def test_a_list_index_in_a_dotted_field_name_is_ascii_digits():
    assert row_field({"turns": ["a", "b"]}, "turns.1") == "b"
    assert row_field({"turns": ["a", "b"]}, "turns.\u00b2") is MISSING  # "²".isdigit(), and int("²") fails
