"""Corpus files and contamination sets as they are published elsewhere: a suffix the corpus does not know, a
one-document-per-line text file, MT-Bench's list of turns and question_id, AlpacaEval's and TruthfulQA's JSON
arrays, ToxiGen's backslash-n prompts and RealToxicityPrompts' prompt objects."""

import json
import logging
import re

import pytest

from harness.core.errors import InputError
from harness.data.config import CorpusConfig, PromptSetRef
from harness.data.corpus import load_corpus
from harness.data.filters import ContaminationIndex

ROWS = [{"text": f"Document {i} about baking bread at home.", "url": f"https://example.com/{i}"} for i in range(3)]
JSONL = "".join(json.dumps(row) + "\n" for row in ROWS)


@pytest.mark.parametrize("name", ["c4.ndjson", "c4.JSONL", "c4.NDJSON", "c4.Jsonl.gz"])
def test_json_lines_under_another_suffix_or_in_upper_case_are_read_as_json(tmp_path, name):
    import gzip

    path = tmp_path / name
    path.write_bytes(gzip.compress(JSONL.encode()) if name.endswith(".gz") else JSONL.encode())
    docs = load_corpus(CorpusConfig(path=str(path))).documents
    assert [d.text for d in docs] == [row["text"] for row in ROWS]  # 3 documents, not 1 of raw JSON


@pytest.mark.parametrize("name, content", [("c4.csv", "text,url\nDocument one,https://example.com/1\n"),
                                           ("c4.tsv", "text\turl\nDocument one\thttps://example.com/1\n"),
                                           ("c4", JSONL)])
def test_a_corpus_file_of_an_unknown_type_is_refused_in_one_line(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError) as caught:
        load_corpus(CorpusConfig(path=str(path)))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert ".jsonl" in message and ".ndjson" in message and ".txt" in message and "data.corpus.format" in message


def test_an_unknown_suffix_is_read_as_the_format_set(tmp_path):
    path = tmp_path / "c4.log"
    path.write_text(JSONL)
    assert len(load_corpus(CorpusConfig(path=str(path), format="json")).documents) == 3


def test_a_one_document_per_line_text_file_in_paragraph_mode_warns(tmp_path, caplog):
    path = tmp_path / "docs.txt"
    path.write_text("".join(f"{row['text']}\n" for row in ROWS))
    with caplog.at_level(logging.WARNING, logger="nift_gate"):
        docs = load_corpus(CorpusConfig(path=str(path))).documents
    assert len(docs) == 1  # paragraph mode as documented: the behaviour is kept ...
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and str(path) in warned[0] and "text_mode: line" in warned[0]  # ... but said
    caplog.clear()
    path.write_text("\n\n".join(row["text"] for row in ROWS) + "\n")  # blank-line-separated: no warning
    with caplog.at_level(logging.WARNING, logger="nift_gate"):
        assert len(load_corpus(CorpusConfig(path=str(path))).documents) == 3
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


# --- contamination sets -----------------------------------------------------------------------------------

QUESTION = ("Draft a professional email seeking your supervisor's feedback on the Quarterly Financial Report you "
            "prepared.\nAsk specifically about the data analysis, presentation style, and the clarity of "
            "conclusions drawn.")
FOLLOW_UP = "Take a moment to evaluate and critique your own response."


def _index(tmp_path, rows, field):
    path = tmp_path / "set.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path, ContaminationIndex.build([PromptSetRef(name="s", path=str(path), field=field)], n=13)


def test_mt_bench_turns_are_indexed_as_text(tmp_path):
    _, index = _index(tmp_path, [{"question_id": 81, "category": "writing", "turns": [QUESTION, FOLLOW_UP]}],
                      "turns")
    # the 13 words across the question's line break: str() of the list wrote that break as a literal "\n"
    leak = ("Some text. Feedback on the Quarterly Financial Report you prepared.\nAsk specifically about the data "
            "analysis, presentation style, and more.")
    assert [h.prompt_id for h in index.hits(leak)] == ["81"]  # the question_id bench reports the question by
    assert index.too_short == {"s": 0}  # the follow-up alone is short; the question is checked


def test_a_list_of_short_turns_counts_as_too_short(tmp_path):
    _, index = _index(tmp_path, [{"id": "q", "turns": ["A short question here?", FOLLOW_UP]}], "turns")
    assert index.too_short == {"s": 1}
    assert index.grams == {}  # no n-gram spans two turns


@pytest.mark.parametrize("value, kind", [({"text": "Corrupt officials are", "toxicity": 0.4}, "an object"),
                                         (None, "null"), (7, "a number"), (["a", 2], "a list that is not all text")])
def test_a_contamination_field_that_is_not_text_is_refused(tmp_path, value, kind):
    rows = [{"id": "ok", "prompt": "fine"}, {"id": "x", "prompt": value}]
    with pytest.raises(InputError) as caught:
        _index(tmp_path, rows, "prompt")
    assert re.fullmatch(rf".*set\.jsonl:2: field 'prompt' is {kind}\b.*", str(caught.value))


ARC_ROW = {"id": "Mercury_7175875", "question": {"stem": "An astronomer observes that a planet rotates faster after a "
                                                         "meteorite impact. Which is the most likely effect of this "
                                                         "increase in rotation?",
                                                 "choices": [{"text": "Planetary density will decrease.", "label": "A"},
                                                             {"text": "Planetary days will become shorter.",
                                                              "label": "B"}]},
           "answerKey": "B"}


def test_a_nested_prompt_field_is_named_by_its_path_as_arc_publishes_its_questions(tmp_path):
    # ARC, OpenBookQA and CommonsenseQA keep the question under question.stem
    _, index = _index(tmp_path, [ARC_ROW], "question.stem")
    leak = "He wrote that a planet rotates faster after a meteorite impact, which is the most likely outcome."
    assert [h.prompt_id for h in index.hits(leak)] == ["Mercury_7175875"]
    _, first = _index(tmp_path, [{"id": "q", "turns": ["A short question here?", FOLLOW_UP]}], "turns.1")
    assert first.too_short == {"s": 1}  # the second turn alone, by its index


def test_a_nested_field_that_is_not_there_is_refused_naming_the_path(tmp_path):
    with pytest.raises(InputError, match=r"set\.jsonl:1: no field 'question\.text' \(fields: id, question, answerKey; "
                                         r"a nested one is named by its path"):
        _index(tmp_path, [ARC_ROW], "question.text")


ALPACA_EVAL = [{"instruction": "What are the names of some famous actors that started their careers on Broadway and "
                               "later became stars of film and television?",
                "output": "Hugh Jackman.", "generator": "text_davinci_003", "dataset": "helpful_base"},
               {"instruction": "How did US states get their names?", "output": "From many sources.",
                "generator": "text_davinci_003", "dataset": "helpful_base"}]


def _array_index(tmp_path, rows, field, name="alpaca_eval.json"):
    path = tmp_path / name
    path.write_text(json.dumps(rows, indent=4))  # as AlpacaEval and TruthfulQA publish theirs
    return path, ContaminationIndex.build([PromptSetRef(name="s", path=str(path), field=field)], n=13)


def test_a_json_array_prompt_set_is_read_as_alpaca_eval_publishes_it(tmp_path):
    _, index = _array_index(tmp_path, ALPACA_EVAL, "instruction")
    assert index.prompts == {"s": 2} and index.too_short == {"s": 1}
    leak = "Blog: the names of some famous actors that started their careers on Broadway and later became stars."
    assert [h.prompt_id for h in index.hits(leak)] == ["1"]  # no id: its position, as bench numbers it


def test_an_array_item_is_named_by_its_line_and_position(tmp_path):
    with pytest.raises(InputError) as caught:
        _array_index(tmp_path, [ALPACA_EVAL[0], "How did US states get their names?"], "instruction")
    assert re.fullmatch(r".*alpaca_eval\.json:8 \(item 2\): a prompt must be a JSON object, got str", str(caught.value))
    with pytest.raises(InputError, match=r"alpaca_eval\.json:8 \(item 2\): no field 'instruction'"):
        _array_index(tmp_path, [ALPACA_EVAL[0], {"prompt": "x"}], "instruction")


@pytest.mark.parametrize("row, prompt_id", [({"question_id": 101, "turns": [QUESTION]}, "101"),
                                            ({"id": "q-7", "question_id": None, "prompt": QUESTION}, "q-7"),
                                            ({"key": 1001, "prompt": QUESTION}, "1001"),
                                            ({"id": None, "prompt": QUESTION}, "2")])
def test_a_hit_names_the_prompt_as_bench_and_the_audits_do(tmp_path, row, prompt_id):
    field = "turns" if "turns" in row else "prompt"
    other = {"id": None, field: ["Another prompt."] if field == "turns" else "Another prompt."}
    _, index = _index(tmp_path, [other, row], field)
    leak = "Some text. Feedback on the Quarterly Financial Report you prepared.\nAsk specifically about the data."
    assert [h.prompt_id for h in index.hits(leak)] == [prompt_id]


def test_null_ids_from_a_dataframe_export_do_not_merge_prompts(tmp_path):
    rows = [{"id": None, "prompt": f"{QUESTION} Version {i}."} for i in range(2)]  # pandas writes a missing id as null
    _, index = _index(tmp_path, rows, "prompt")
    assert sorted(h.prompt_id for h in index.hits(QUESTION + " Version 1.")) == ["1", "2"]


@pytest.mark.parametrize("rows, message", [
    ([{"id": "a", "prompt": "x"}, {"id": "b", "prompt": "y"}, {"id": "a", "prompt": "z"}],
     r"set\.jsonl:3: prompt id 'a' is used again \(first on line 1\)"),
    ([{"question_id": 1, "prompt": "x"}, {"id": "1", "prompt": "y"}],
     r"set\.jsonl:2: prompt id '1' is used again \(first on line 1\)"),
    ([{"question_id": 1, "id": "q1", "prompt": "x"}],
     r"set\.jsonl:1: fields 'question_id' \('1'\) and 'id' \('q1'\) name the prompt differently; keep one"),
    ([{"id": 1.0, "prompt": "x"}], r"set\.jsonl:1: field 'id' must be a non-blank string or a whole number, got 1\.0"),
    ([{"key": True, "prompt": "x"}], r"set\.jsonl:1: field 'key' must be a non-blank string or a whole number"),
])
def test_an_id_that_would_report_two_prompts_as_one_is_refused(tmp_path, rows, message):
    with pytest.raises(InputError) as caught:
        _index(tmp_path, rows, "prompt")
    assert "\n" not in str(caught.value) and re.fullmatch(rf".*{message}.*", str(caught.value))


def test_a_repeated_id_in_an_array_names_both_items(tmp_path):
    with pytest.raises(InputError, match=r"alpaca_eval\.json:9 \(item 2\): prompt id 'q' is used again "
                                         r"\(first on line 2 \(item 1\)\)"):
        _array_index(tmp_path, [{**row, "id": "q"} for row in ALPACA_EVAL], "instruction")


# ToxiGen's prompt files: demonstrations joined by the two characters backslash-n, ending "\n-" (neutral ones here)
TOXIGEN_STATEMENTS = ["- many families in the valley grow their own vegetables in small gardens behind the house",
                      "- the old bridge across the river was rebuilt by volunteers from three nearby towns last year",
                      "-"]


def test_a_toxigen_prompt_is_indexed_as_the_toxicity_audit_reads_it(tmp_path):
    _, index = _index(tmp_path, [{"label": "neutral", "prompt": "\\n".join(TOXIGEN_STATEMENTS)}], "prompt")
    assert not [gram for gram in index.grams if "n" in gram]  # no word "n" where a line break was
    # a page quoting the two statements one per line, as the audited model reads them
    quoted = "Overheard:\n" + "\n".join(TOXIGEN_STATEMENTS[:2])
    assert [h.ngram for h in index.hits(quoted)][0].startswith("many families")
    across = "in small gardens behind the house\n- the old bridge across the river was"  # 13 words across the break
    assert [h.prompt_id for h in index.hits(across)] == ["1"]
