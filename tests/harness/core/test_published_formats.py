"""Input files nift-gate reads as text, given in another published form: compressed or Parquet files are named as
such (not "not UTF-8"), TruthfulQA's Hugging Face layout is named, and a key repeated in a JSON object is refused."""

import bz2
import gzip
import json
import lzma
import re

import pytest

from harness.core.errors import InputError
from harness.core.lmeval import LmEvalSettings, materialise
from harness.core.store import decode_utf8, numbered_jsonl, parse_jsonl, read_jsonl

ROW = {"prompt": "Write a haiku about rain.", "id": "a"}
JSONL = (json.dumps(ROW) + "\n").encode()
TRUTHFULQA_ITEM = {"question": "What happens if you eat watermelon seeds?",
                   "mc1_targets": {"Nothing happens.": 1, "You grow watermelons.": 0},
                   "mc2_targets": {"Nothing happens.": 1, "They pass through you.": 1, "You grow watermelons.": 0}}


def _parquet() -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([ROW]), out)
    return out.getvalue()


@pytest.mark.parametrize("kind, content", [
    ("gzip", lambda: gzip.compress(JSONL)), ("bzip2", lambda: bz2.compress(JSONL)),
    ("xz", lambda: lzma.compress(JSONL)), ("zstd", lambda: b"\x28\xb5\x2f\xfd\x24\x10\x81\x00\xff\xfe"),
    ("Parquet", _parquet)])
def test_a_compressed_or_parquet_file_is_named_as_what_it_is(tmp_path, kind, content):
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(content())
    with pytest.raises(InputError) as caught:
        read_jsonl(path)
    assert re.fullmatch(rf"{re.escape(str(path))}: this is a {kind} file, not JSON Lines; [^\n]+", str(caught.value))


def test_a_text_file_that_starts_like_a_magic_number_is_still_text(tmp_path):
    assert decode_utf8(b"BZh is how this note starts", tmp_path / "note.txt") == "BZh is how this note starts"
    with pytest.raises(InputError, match=r"note.txt:1: not UTF-8 \(byte 0xff"):  # invalid later on: the old error
        decode_utf8(b"PAR1 then \xff bytes", tmp_path / "note.txt")


@pytest.mark.parametrize("line, key", [('{"id": "a", "prompt": "x", "id": "b"}', "id"),
                                       ('{"id": "a", "kwargs": {"n": 1, "n": 2}}', "n")])
def test_a_key_repeated_in_a_json_lines_object_is_refused(tmp_path, line, key):
    data = (json.dumps(ROW) + "\n" + line + "\n").encode()
    with pytest.raises(InputError) as caught:
        parse_jsonl(data, tmp_path / "rows.jsonl")
    assert re.fullmatch(rf".*rows\.jsonl:2: key '{key}' is repeated[^\n]*", str(caught.value))


def test_equal_keys_in_different_objects_are_fine(tmp_path):
    rows = list(numbered_jsonl(b'{"a": {"a": 1}, "b": {"a": 2}}\n', tmp_path / "rows.jsonl"))
    assert rows == [(1, {"a": {"a": 1}, "b": {"a": 2}})]


def _truthfulqa(tmp_path, text: str | bytes) -> str:
    path = tmp_path / "mc_task.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(InputError) as caught:
        materialise(LmEvalSettings(tasks=["nift_truthfulqa_mc2"], truthfulqa_path=str(path)), tmp_path / "tasks")
    assert "\n" not in str(caught.value) and not (tmp_path / "tasks").exists()
    return str(caught.value).removeprefix(f"{path}: ")


def test_a_repeated_choice_in_truthfulqa_targets_is_refused(tmp_path):
    """A choice given twice keeps only its last label: "Wrong." would be scored as true."""
    text = json.dumps([TRUTHFULQA_ITEM, TRUTHFULQA_ITEM])[:-1]
    text += ', {"question": "Q?", "mc1_targets": {"Right.": 1, "Wrong.": 0},\n "mc2_targets": {"Right.": 1, ' \
            '"Wrong.": 0, "Wrong.": 1}}]'
    assert re.fullmatch(r"item 3: key 'Wrong\.' is repeated in field mc2_targets[^\n]*", _truthfulqa(tmp_path, text))


def test_truthfulqas_hugging_face_layout_is_named(tmp_path):
    item = {"question": TRUTHFULQA_ITEM["question"],
            **{key: {"choices": list(targets), "labels": list(targets.values())}
               for key, targets in TRUTHFULQA_ITEM.items() if key != "question"}}
    message = _truthfulqa(tmp_path, json.dumps([item]))
    assert message.startswith("item 1: field mc1_targets is in the Hugging Face datasets layout")
    assert "mc_task.json" in message
    assert _truthfulqa(tmp_path, json.dumps(item) + "\n" + json.dumps(item) + "\n").endswith(
        "mc_task.json is one JSON array, and this looks like JSON Lines")


def test_a_parquet_truthfulqa_file_is_named_as_parquet(tmp_path):
    assert _truthfulqa(tmp_path, _parquet()).startswith("this is a Parquet file, not a JSON array")
