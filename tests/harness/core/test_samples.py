"""Reading every audit's samples.jsonl: errors name the file, line and field."""

import pytest
from pinning import pin_outputs
from review_support import make_run

from harness.core.errors import InputError
from harness.core.samples import read_audits


def test_a_non_utf8_byte_in_samples_names_the_file_and_line(tmp_path):
    store = make_run(tmp_path / "runs", "r1")
    path = store.stage_dir("audit", "hallucination") / "samples.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b"Author 1", b"Auth\xf6r 1")
    path.write_bytes(b"\n".join(lines))
    pin_outputs(path.parent)  # as the audit would have written it
    with pytest.raises(InputError, match=r"hallucination/samples.jsonl:2: not UTF-8 \(byte 0xf6 at column \d+\)"):
        read_audits(store)


def test_a_sample_that_is_no_object_names_the_file_and_line(tmp_path):
    store = make_run(tmp_path / "runs", "r1")
    path = store.stage_dir("audit", "toxicity") / "samples.jsonl"
    path.write_bytes(path.read_bytes() + b"[]\n")
    pin_outputs(path.parent)
    with pytest.raises(InputError, match=r"toxicity/samples.jsonl:13: expected a JSON object per line, got list"):
        read_audits(store)
