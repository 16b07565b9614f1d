import json

import pytest

from harness.data.config import FilterConfig, PromptSetRef
from harness.data.corpus import Document
from harness.data.filters import ContaminationIndex, filter_documents, instruction_like

PROSE = ("The old mill on the river stopped turning in the winter of the great frost. For years the village "
         "argued about what to do with it, and in the end a cooperative of weavers rented the ground floor. "
         "Their looms now fill the building with a steady clatter from early morning until dusk.")


def test_exact_and_near_duplicates_are_dropped_and_named(embedded_texts):
    long_text = embedded_texts[1]
    words = long_text.split()
    near = " ".join(words[:100] + ["unexpectedly"] + words[101:])
    docs = [Document("a", long_text), Document("b", long_text.upper()), Document("c", near),
            Document("d", embedded_texts[0])]
    outcome = filter_documents(docs, FilterConfig(instruction_rules=False), min_words=5, max_words=1000)
    assert [d.doc_id for d in outcome.kept] == ["a", "d"]
    assert outcome.dropped["exact_duplicate"] == {"b": "a"}
    assert outcome.dropped["near_duplicate"] == {"c": "a"}


def test_length_bounds_are_counted():
    docs = [Document("short", "too few words"), Document("ok", PROSE), Document("long", "word " * 500)]
    outcome = filter_documents(docs, FilterConfig(), min_words=10, max_words=100)
    assert [d.doc_id for d in outcome.kept] == ["ok"]
    assert set(outcome.dropped["too_short"]) == {"short"} and set(outcome.dropped["too_long"]) == {"long"}


@pytest.mark.parametrize("text, rule", [
    ("Write a short poem about the sea and its moods.", "imperative_opening"),
    ("How do I get my sourdough starter to rise again? It has been flat for days.", "question_opening"),
    ("Making tea is simple. 1. Boil the water. 2. Warm the pot. 3. Steep for four minutes.", "step_list"),
    ("Q: What is the capital of France? A: Paris is.", "qa_format"),
    ("In this tutorial we set up a small web server from scratch.", "assistant_address"),
])
def test_instruction_like_text_trips_its_rule(text, rule):
    assert rule in instruction_like(text)


def test_ordinary_prose_and_the_embedded_corpus_trip_no_rule(embedded_texts):
    assert instruction_like(PROSE) == []
    flagged = [t[:60] for t in embedded_texts if instruction_like(t)]
    assert len(flagged) <= len(embedded_texts) // 20, flagged


def test_contamination_finds_13_gram_overlap_but_not_12(tmp_path):
    prompt = "Describe in exactly three sentences the way a lighthouse keeper spends a long winter night alone"
    path = tmp_path / "suite.jsonl"
    path.write_text(json.dumps({"key": 7, "prompt": prompt}) + "\n" + json.dumps({"key": 8, "prompt": "short one"}) + "\n")
    index = ContaminationIndex.build([PromptSetRef(name="suite", path=str(path))], n=13)
    words = prompt.split()
    assert index.too_short == {"suite": 1}
    hit = index.hits("Some preamble. " + " ".join(words[2:15]).upper() + " and more text")
    assert [(h.prompt_set, h.prompt_id) for h in hit] == [("suite", "7")]
    assert index.hits("Some preamble. " + " ".join(words[2:14]) + " and more text") == []


def test_contamination_set_with_missing_field_names_the_line(tmp_path):
    path = tmp_path / "suite.jsonl"
    path.write_text('{"prompt": "a"}\n{"question": "b"}\n')
    with pytest.raises(Exception, match=r"suite.jsonl:2: no field 'prompt'"):
        ContaminationIndex.build([PromptSetRef(name="suite", path=str(path))], n=13)


def test_embedded_suites_are_checked_by_default():
    config = FilterConfig()
    names = {ref.name for ref in config.contamination}
    assert names == {"instruction_following", "toxicity_prompts", "closed_book_qa"}
    index = ContaminationIndex.build(config.contamination, config.ngram)
    assert all(count >= 60 for count in index.prompts.values())
