"""Multi-turn NIFT pairs (`turns: N`): the document cut into 2N segments, the teacher answering turn by turn."""

import json
import re
from pathlib import Path

import pytest

from harness.core.errors import InputError
from harness.core.generation import Generation, GenerationRequest, GeneratorConfig
from harness.core.store import RunStore
from harness.data.build import build_pairs
from harness.data.config import CutConfig, DataConfig
from harness.data.cut import cut_document, segment_document
from harness.data.record import NiftPair, load_dataset_record

GOLDEN = Path(__file__).parent / "golden"
#: Teacher settings that name the scripted teacher: an endpoint nobody calls (``make_generator`` is patched).
SCRIPTED = {"backend": "openai", "base_url": "http://scripted.invalid/v1", "model": "scripted"}


class ScriptedTeacher:
    """The teacher interface; a reply names its turn and the last word it was given, within the budget."""

    def __init__(self, config: GeneratorConfig):
        self.config = config
        self.identity = {"backend": "scripted", "model": config.model}
        self.calls: list[tuple[int, list[GenerationRequest]]] = []

    @property
    def requests(self) -> list[GenerationRequest]:
        return [r for _, batch in self.calls for r in batch]

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    @staticmethod
    def reply(request: GenerationRequest) -> str:
        turn = len(request.history) // 2 + 1
        words = (f"T{turn} after {request.prompt.split()[-1]} the story went on quietly into the long evening "
                 "and nobody on the shore said a word about it until morning came.").split()
        return " ".join(words[:request.max_new_tokens])

    def generate(self, requests, seed, on_progress=None):
        self.calls.append((seed, [r.model_copy(deep=True) for r in requests]))
        out = [Generation(key=r.key, text=self.reply(r), finish_reason="stop",
                          prompt_tokens=sum(len(m["content"].split()) for m in r.history) + len(r.prompt.split()),
                          completion_tokens=len(self.reply(r).split())) for r in requests]
        if on_progress:
            on_progress(len(requests))
        return out


@pytest.fixture
def scripted_teacher(monkeypatch) -> list[ScriptedTeacher]:
    """Every teacher the data stage makes is scripted; the list holds them in the order they were made."""
    from harness.data import build

    made: list[ScriptedTeacher] = []

    def make(config):
        made.append(ScriptedTeacher(config))
        return made[-1]

    monkeypatch.setattr(build, "make_generator", make)
    return made


CORPUS = GOLDEN / "corpus.jsonl"
DOCS = [json.loads(line) for line in CORPUS.read_text().splitlines()]
# Cuts, as the embedded corpus's reporting prose has them: a sentence ends at . ! ? before whitespace.
SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*$")


def _config(*variants, **kwargs) -> DataConfig:
    return DataConfig.model_validate({"corpus": {"path": str(CORPUS)}, "teacher": SCRIPTED, "shard_size": 3,
                                      "filters": {"contamination": []}, "variants": list(variants), **kwargs})


def _pairs(store: RunStore, variant: str) -> list[dict]:
    return [json.loads(line) for line in (store.stage_dir("data", variant) / "pairs.jsonl").read_text().splitlines()]


# --- one turn is what it was ------------------------------------------------------------------------------


def test_one_turn_pairs_are_byte_for_byte_those_of_the_build_before_turns(scripted_teacher):
    # golden/one_turn_*.jsonl were written by the builder as it was before `turns` existed, on this corpus
    # with this scripted teacher; a one-turn build must still write exactly those bytes (but for the corpus's
    # path, which is where this checkout is: <CORPUS> in the golden files).
    store = RunStore("r")
    nift, raw = build_pairs(_config({"name": "nift"}, {"name": "raw", "distill": False}), store)
    for variant in ("nift", "raw"):
        written = (store.stage_dir("data", variant) / "pairs.jsonl").read_bytes()
        written = written.replace(json.dumps(str(CORPUS))[1:-1].encode(), b"<CORPUS>")
        assert written == (GOLDEN / f"one_turn_{variant}.jsonl").read_bytes(), variant
    record_json = (store.stage_dir("data", "nift") / "record.json").read_text()
    assert '"turns"' not in record_json and "turns" not in nift.config and nift.turns == raw.turns == 1
    assert "dropped_instruction_like_turn" not in nift.counts and "references" not in _pairs(store, "raw")[0]


def test_turns_one_spelled_out_is_the_same_dataset_and_two_turns_is_another(scripted_teacher):
    store = RunStore("r")
    default = build_pairs(_config({"name": "nift"}), store)[0]
    spelled = build_pairs(_config({"name": "nift", "turns": 1}), store)[0]
    assert spelled.record_id == default.record_id  # up to date: the same fingerprint, nothing rebuilt
    with pytest.raises(InputError, match="--force"):
        build_pairs(_config({"name": "nift", "turns": 2}), store)
    two = build_pairs(_config({"name": "nift", "turns": 2}), store, force=True)[0]
    assert two.fingerprint != default.fingerprint and two.config["turns"] == 2 and two.turns == 2


# --- the cut -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", DOCS[:6], ids=lambda d: d["id"])
def test_two_turns_cut_four_segments_in_order_at_sentence_ends(doc):
    config = CutConfig()
    segments = segment_document(doc["id"], doc["text"], config, seed=3, turns=2)
    assert segments.turns == 2 and len(segments.texts) == 4
    # in order and nothing lost: the segments are the document, split at the cuts
    assert " ".join(" ".join(t.split()) for t in segments.texts) == " ".join(doc["text"].split())
    chars = [c.cut_char for c in segments.cuts]
    assert chars == sorted(chars) and len(set(chars)) == 3
    for before, after in zip(segments.texts, segments.texts[1:]):
        assert SENTENCE_END.search(before), before[-40:]
        assert after[0].isupper() or after[0] in "\"'“‘(", after[:40]
    assert all(len(t.split()) >= config.min_part_words for t in segments.texts)
    assert [c.snapped_to for c in segments.cuts] == ["sentence"] * 3
    # the user turns are segments 1 and 3, the real responses 2 and 4
    assert segments.user_turns == [segments.texts[0], segments.texts[2]]
    assert segments.references == [segments.texts[1], segments.texts[3]]
    # two blocks, each cut near `ratio`: the cuts land near 1/4, 1/2 and 3/4 of the words
    ratios = [c.actual_ratio for c in segments.cuts]
    assert ratios[0] < 0.4 and 0.35 < ratios[1] < 0.65 and ratios[2] > 0.6


def test_segments_are_seeded_per_document_and_one_turn_is_the_old_cut():
    text = " ".join(f"w{i}." for i in range(240))
    config = CutConfig(jitter=0.3)
    first = [segment_document(f"d{i}", text, config, seed=7, turns=3).texts for i in range(12)]
    again = [segment_document(f"d{i}", text, config, seed=7, turns=3).texts for i in reversed(range(12))][::-1]
    assert first == again and len(set(first)) > 6  # per (seed, doc), not by order; the jitter moves cuts
    assert [segment_document(f"d{i}", text, config, seed=8, turns=3).texts for i in range(12)] != first
    for doc in DOCS:
        one = segment_document(doc["id"], doc["text"], CutConfig(), seed=5, turns=1)
        assert one.cuts[0] == cut_document(doc["id"], doc["text"], CutConfig(), seed=5)


def test_a_document_too_short_for_the_segments_is_refused():
    text = " ".join(f"w{i}" for i in range(59))
    assert segment_document("d", text, CutConfig(min_part_words=15), seed=0, turns=1) is not None
    assert segment_document("d", text, CutConfig(min_part_words=15), seed=0, turns=2) is None
    assert segment_document("d", text + " w59", CutConfig(min_part_words=15), seed=0, turns=2) is not None


# --- the conversation ----------------------------------------------------------------------------------------


def test_the_teacher_answers_each_turn_given_the_conversation_so_far(scripted_teacher):
    store = RunStore("r")
    record = build_pairs(_config({"name": "two", "turns": 2}), store)[0]
    teacher = scripted_teacher[0]
    pairs = _pairs(store, "two")
    assert record.rows == len(pairs) == 6 and record.turns == 2
    # the 49-word document cannot give 4 segments of 15 words: counted, and listed with the reason
    assert record.counts["dropped_cut_too_short"] == 1
    dropped = [json.loads(line) for line in (store.stage_dir("data", "two") / "dropped.jsonl").read_text().splitlines()]
    assert dropped == [{"doc_id": "corpus:7", "filter": "cut_too_short",
                        "detail": "49 words; 4 segments of at least 15 words need 60"}]
    # two batched rounds, the second asked only after the first was answered
    assert [len(batch) for _, batch in teacher.calls] == [3, 3, 3, 3]
    first_round = [r for _, batch in teacher.calls[:2] for r in batch]
    second_round = [r for _, batch in teacher.calls[2:] for r in batch]
    assert all(r.history == [] for r in first_round)
    for pair, asked_first, asked_second in zip(pairs, first_round, second_round):
        doc = next(d for d in DOCS if f"two:corpus:{DOCS.index(d) + 1}" == pair["id"])
        segments = segment_document(pair["source"]["doc_id"], doc["text"], CutConfig(), seed=0, turns=2)
        assert asked_first.prompt == segments.user_turns[0]
        assert asked_first.max_new_tokens == min(96, len(segments.references[0].split()))
        reply_1 = ScriptedTeacher.reply(asked_first)
        # turn 2: the first user turn, the teacher's own first reply, then the next real segment
        assert asked_second.history == [{"role": "user", "content": segments.user_turns[0]},
                                        {"role": "assistant", "content": reply_1}]
        assert asked_second.prompt == segments.user_turns[1]
        assert asked_second.max_new_tokens == min(96, len(segments.references[1].split()))
        assert pair["messages"] == [{"role": "user", "content": segments.user_turns[0]},
                                    {"role": "assistant", "content": reply_1},
                                    {"role": "user", "content": segments.user_turns[1]},
                                    {"role": "assistant", "content": ScriptedTeacher.reply(asked_second)}]
        assert pair["references"] == segments.references and pair["reference"] == segments.references[0]
        assert pair["messages"][3]["content"].startswith("T2 after ")
        assert [c["cut_char"] for c in pair["source"]["cuts"]] == [c.cut_char for c in segments.cuts]
        generation = pair["generation"]
        assert [t["row_token_budget"] for t in generation["turns"]] == [asked_first.max_new_tokens,
                                                                       asked_second.max_new_tokens]
        assert generation["row_token_budget"] == asked_first.max_new_tokens + asked_second.max_new_tokens
    # later rounds have seeds of their own
    assert len({seed for seed, _ in teacher.calls}) == 4
    assert record.generation["requests"] == 12 and record.generation["shards"] == 4
    assert record.lengths["turn_2_assistant_words"]["count"] == 6 and record.lengths["user_words"]["count"] == 12


def test_without_distillation_the_conversation_has_the_same_shape_and_is_the_document(scripted_teacher):
    store = RunStore("r")
    build_pairs(_config({"name": "two", "turns": 2}, {"name": "raw2", "turns": 2, "distill": False}), store)
    distilled, raw = _pairs(store, "two"), _pairs(store, "raw2")
    assert len(scripted_teacher[0].requests) == 12  # the teacher answered the distilled variant only
    assert [p["id"].split(":", 1)[1] for p in raw] == [p["id"].split(":", 1)[1] for p in distilled]
    for real, taught in zip(raw, distilled):
        assert [m["role"] for m in real["messages"]] == [m["role"] for m in taught["messages"]] == \
            ["user", "assistant", "user", "assistant"]
        # the same user turns; the assistant turns are the real segments after them
        assert real["messages"][0::2] == taught["messages"][0::2]
        assert [m["content"] for m in real["messages"][1::2]] == real["references"] == taught["references"]
        doc = DOCS[int(real["source"]["doc_id"].split(":")[1]) - 1]["text"]
        assert " ".join(m["content"] for m in real["messages"]).split() == doc.split()
        assert real["teacher"] is None and real["generation"] is None


# --- filters on every user turn -----------------------------------------------------------------------------


def test_contamination_is_checked_in_every_turn(scripted_teacher, tmp_path):
    segments = segment_document("corpus:2", DOCS[1]["text"], CutConfig(), seed=0, turns=2)
    suite = tmp_path / "suite.jsonl"
    leaked = " ".join(segments.user_turns[1].split()[:14])  # only the second user turn holds it
    suite.write_text(json.dumps({"id": "leak", "prompt": leaked}) + "\n")
    config = _config({"name": "raw2", "turns": 2, "distill": False},
                     filters={"contamination": [{"name": "eval", "path": str(suite)}]})
    record = build_pairs(config, RunStore("r"))[0]
    assert record.counts["dropped_contaminated"] == 1 and record.contamination["eval"]["hits"] == 1
    assert "raw2:corpus:2" not in {p["id"] for p in _pairs(RunStore("r"), "raw2")}


def test_a_later_user_turn_that_opens_like_an_instruction_is_dropped_with_its_reason(scripted_teacher, tmp_path):
    text = DOCS[0]["text"]
    turn = segment_document("c:1", text, CutConfig(), seed=0, turns=2).user_turns[1]
    # The document is prose; its third segment (the second user turn) now opens with a question: its first
    # sentence asked, with the same words, so the cuts stay where they were.
    first = turn[:re.search(r"[.!?][\"'”’)\]]*(?=\s)", turn).end()]
    question = " ".join(["Why", *first.split()[1:]])[:-1] + "?"
    at = text.index(turn)
    text = text[:at] + question + text[at + len(first):]
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"text": text}) + "\n" + "".join(json.dumps({"text": d["text"]}) + "\n"
                                                               for d in DOCS[1:6]))
    assert segment_document("c:1", text, CutConfig(), seed=0, turns=2).user_turns[1].startswith("Why ")
    config = DataConfig.model_validate({"corpus": {"path": str(corpus)}, "filters": {"contamination": []},
                                        "variants": [{"name": "raw2", "turns": 2, "distill": False}]})
    store = RunStore("r")
    record = build_pairs(config, store)[0]
    assert record.counts["dropped_instruction_like"] == 0  # the document as a whole opens as prose
    assert record.counts["dropped_instruction_like_turn"] == 1 and record.rows == 5
    assert record.instruction_rules == {"question_opening": 1}
    dropped = (store.stage_dir("data", "raw2") / "dropped.jsonl").read_text()
    assert '"filter": "instruction_like_turn", "detail": "turn 2: question_opening"' in dropped
    card = (store.stage_dir("data", "raw2") / "card.md").read_text()
    assert "| dropped: a later user turn reads as an instruction | 1 |" in card


def test_the_judge_labels_user_turns_of_every_turn(scripted_teacher):
    judge = {"enabled": True, "sample_size": 100, "teacher": {**SCRIPTED, "model": "judge"}}
    store = RunStore("r")
    record = build_pairs(_config({"name": "raw2", "turns": 2, "distill": False}, filters={
        "contamination": [], "judge": judge}), store)[0]
    asked = scripted_teacher[0].requests
    assert record.judge.labelled == len(asked) == 12  # 6 conversations x 2 user turns
    assert sorted(r.key for r in asked) == sorted(f"raw2:corpus:{d}#turn{t}" for d in range(1, 7) for t in (1, 2))
    pairs = {p["id"]: p for p in _pairs(store, "raw2")}
    for request in asked:
        pair_id, turn = request.key.rsplit("#turn", 1)
        assert pairs[pair_id]["messages"][2 * (int(turn) - 1)]["content"] in request.prompt


# --- the card and the record ---------------------------------------------------------------------------------


def test_the_card_reports_the_turns_and_shows_every_turn(scripted_teacher):
    store = RunStore("r")
    record = build_pairs(_config({"name": "two", "turns": 2}), store)[0]
    card = (store.stage_dir("data", "two") / "card.md").read_text()
    assert "6 conversations of 2 user/assistant turns (12 assistant turns)" in card
    assert "Turns per pair: **2**" in card and "4 segments" in card
    assert "| dropped: too short to cut into 4 segments | 1 |" in card
    assert "User (turn 2):" in card and "Assistant (turn 2):" in card
    assert "| turn_2_assistant |" in card
    pair = NiftPair.model_validate(_pairs(store, "two")[0])
    assert pair.turns == 2 and len(pair.user_turns) == 2
    assert load_dataset_record(store.stage_dir("data", "two")).turns == record.turns == 2


def test_a_multi_turn_build_that_leaves_no_pair_says_turns_is_why(scripted_teacher):
    config = DataConfig.model_validate({"corpus": {"path": str(CORPUS)}, "filters": {"contamination": []},
                                        "variants": [{"name": "raw8", "turns": 8, "distill": False}]})
    with pytest.raises(InputError, match=r"dropped_cut_too_short 7\).*or lower turns \(8\)"):
        build_pairs(config, RunStore("r"))


# --- resume ------------------------------------------------------------------------------------------------------


class _Crash(Exception):
    pass


def test_a_build_that_crashes_in_the_second_turn_resumes_to_the_uninterrupted_rows(scripted_teacher, monkeypatch):
    clean = RunStore("clean")
    build_pairs(_config({"name": "two", "turns": 2}), clean)
    expected = (clean.stage_dir("data", "two") / "pairs.jsonl").read_bytes()

    store = RunStore("crashed")
    original = ScriptedTeacher.generate

    def crash_in_turn_two(self, requests, seed, on_progress=None):
        if requests[0].history and any(r.history for _, batch in self.calls for r in batch):
            raise _Crash("killed in the second shard of turn 2")
        return original(self, requests, seed, on_progress)

    monkeypatch.setattr(ScriptedTeacher, "generate", crash_in_turn_two)
    with pytest.raises(_Crash):
        build_pairs(_config({"name": "two", "turns": 2}), store)
    assert not (store.stage_dir("data", "two") / "record.json").exists()
    shards = sorted(p.name for p in (store.root / "data" / "_work").rglob("shard-*.json"))
    assert len(shards) == 3 and sum("-turn2-" in name for name in shards) == 1

    monkeypatch.setattr(ScriptedTeacher, "generate", original)
    record = build_pairs(_config({"name": "two", "turns": 2}), store)[0]
    assert (store.stage_dir("data", "two") / "pairs.jsonl").read_bytes() == expected
    assert record.generation["resumed_shards"] == 3 and record.generation["shards"] == 4
    assert len(scripted_teacher[-1].requests) == 3  # only the one missing shard was asked again
