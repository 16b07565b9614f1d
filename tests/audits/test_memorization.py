"""The memorization probe: the overlap arithmetic on hand-made strings, and the audit over scripted models, one
of which recites its training responses."""

import json

import pytest
from scripted import ScriptedGenerator

from audits.config import AuditConfig, MemorizationAuditConfig
from audits.memorization.audit import (
    MemorizationAuditRecord,
    _ModelResults,
    paired_deltas,
    summarise,
)
from audits.memorization.metrics import MEMORIZATION_METRICS
from harness.core.stats import independent_difference_interval
from audits.memorization.overlap import (
    longest_common_substring,
    ngram_overlap,
    overlap,
    words,
)
from audits.run import run_audits
from harness.app.catalogue import metric_catalogue
from harness.core.config import ModelRef
from harness.core.errors import ConfigError, InputError
from harness.core.samples import AuditSample
from harness.core.store import RunStore, read_jsonl
from harness.data.build import build_pairs
from harness.data.config import DataConfig
from harness.train.config import TrainConfig
from harness.train.record import parse_split, split_file
from harness.train.train import train_checkpoint


def test_tokens_are_lower_cased_words():
    assert words("The cat -- sat, on THE mat!") == ["the", "cat", "sat", "on", "the", "mat"]


def test_longest_common_substring_counts_consecutive_tokens_only():
    ref = words("the cat sat on the mat near the door")
    assert longest_common_substring(words("a cat sat on the rug"), ref) == 4  # cat sat on the
    assert longest_common_substring(words("door the near mat"), ref) == 1  # shared words, never two in a row
    assert longest_common_substring(words("nothing shared here"), ref) == 0
    assert longest_common_substring([], ref) == 0 and longest_common_substring(ref, []) == 0
    assert longest_common_substring(ref, ref) == 9


def test_ngram_overlap_is_the_share_of_the_outputs_ngrams_found_in_the_reference():
    ref = words("a b c d e f")
    # output 3-grams: (a b c) (b c d) (c d x) (d x y): two of four occur in the reference
    assert ngram_overlap(words("a b c d x y"), ref, 3) == 0.5
    assert ngram_overlap(words("f e d c b a"), ref, 3) == 0.0  # the same words reversed copy no 3-gram
    assert ngram_overlap(words("a b"), ref, 3) == 0.0  # shorter than n: nothing copied
    assert ngram_overlap(ref, ref, 13) == 0.0 and ngram_overlap(ref, ref, 6) == 1.0


def test_the_lcs_ratio_is_normalised_by_the_response_length_cut_to_the_budget():
    response = " ".join(f"w{i}" for i in range(100))
    first_half = " ".join(f"w{i}" for i in range(50))
    half = overlap(first_half, response, n=13, budget=200)
    assert (half.lcs_tokens, half.lcs_ratio, half.ngram_overlap) == (50, 0.5, 1.0)
    # a 64-token continuation cannot hold 100 words: reciting the first 50 is most of what it could recite
    capped = overlap(first_half, response, n=13, budget=64)
    assert capped.lcs_ratio == pytest.approx(50 / 64)
    assert overlap("", response, 13, 64).lcs_ratio == 0.0 and overlap("anything", "", 13, 64).lcs_ratio == 0.0


def test_the_gap_interval_is_a_two_sample_bootstrap():
    train = [0.9, 0.8, 1.0, 0.7, 0.95, 0.85, 0.75, 0.9, 1.0, 0.8, 0.7, 0.9]
    held = [0.1, 0.0, 0.2, 0.1, 0.05, 0.15, 0.1, 0.0, 0.2, 0.1]
    low, high, method = independent_difference_interval(train, held, iterations=1000, confidence=0.95, seed=0)
    gap = sum(train) / len(train) - sum(held) / len(held)
    assert method == "bootstrap-bca" and 0.6 < low < gap < high < 0.85
    # below 10 prompts in either set, or when neither set varies, there is no interval (the percentile
    # bootstrap this replaced gave [0.4, 0.4] for the second and an interval from 2 prompts a set)
    none = (None, None, None)
    assert independent_difference_interval(train[:9], held, iterations=500, confidence=0.95, seed=0) == none
    assert independent_difference_interval([0.5] * 10, [0.1] * 10, iterations=500, confidence=0.95, seed=0) == none
    # one varying set is enough for an interval
    assert independent_difference_interval([0.5] * 10, held, iterations=500, confidence=0.95, seed=0)[2] == \
        "bootstrap-bca"


def _results(name, role, values):
    results = _ModelResults(name, role)
    for suite, per_prompt in values.items():
        results.values[f"memorization.{suite}.lcs_ratio"] = per_prompt
        results.values[f"memorization.{suite}.memorized_rate"] = {k: float(v >= 0.5) for k, v in per_prompt.items()}
    return results


def test_paired_deltas_and_the_gap_by_hand():
    config = AuditConfig(bootstrap_iterations=500)
    cand = _results("cand", "candidate", {"train": {"t1": 0.9, "t2": 0.8}, "held_out": {"h1": 0.1, "h2": 0.2}})
    base = _results("base", "baseline", {"train": {"t1": 0.1, "t2": 0.0}, "held_out": {"h1": 0.1, "h2": 0.0}})
    summary = summarise(cand, config)
    assert summary["memorization.train.lcs_ratio"].value == pytest.approx(0.85)
    assert summary["memorization.gap.lcs_ratio"].value == pytest.approx(0.85 - 0.15)
    assert summary["memorization.gap.lcs_ratio"].n == 4
    assert summary["memorization.train.memorized_rate"].interval == "clopper-pearson"
    deltas = {d.metric: d for d in paired_deltas({"cand": cand, "base": base}, "cand", config)}
    assert deltas["memorization.train.lcs_ratio"].difference == pytest.approx(0.8)  # (0.8 + 0.8) / 2
    assert deltas["memorization.held_out.lcs_ratio"].difference == pytest.approx(0.1)  # (0.0 + 0.2) / 2
    # the candidate's extra reproduction on training prompts beyond what it differs by on held-out ones
    gap = deltas["memorization.gap.lcs_ratio"]
    assert gap.difference == pytest.approx(0.8 - 0.1) and gap.n == 4
    assert deltas["memorization.train.memorized_rate"].interval == "newcombe"
    assert deltas["memorization.train.lcs_ratio"].test == "sign"
    # 2 prompts a set: fewer than MIN_BOOTSTRAP_ITEMS, so neither the shares nor the gap has an interval (the
    # gap's percentile bootstrap this replaced gave one from 2 prompts a set)
    train = summary["memorization.train.lcs_ratio"]
    assert (train.ci_low, train.ci_high, train.interval) == (None, None, None)
    assert (gap.ci_low, gap.ci_high, gap.interval) == (None, None, None)
    assert summary["memorization.gap.lcs_ratio"].interval is None
    paired = deltas["memorization.train.lcs_ratio"]
    assert (paired.ci_low, paired.ci_high, paired.interval) == (None, None, None)


def test_shares_over_ten_or_more_prompts_have_bca_intervals():
    config = AuditConfig(bootstrap_iterations=1000)
    recited = [1.0, 0.9, 0.95, 0.8, 1.0, 0.85, 0.7, 1.0, 0.9, 0.75, 0.95, 0.6]
    unrelated = [0.1, 0.0, 0.05, 0.2, 0.1, 0.0, 0.15, 0.05, 0.1, 0.0, 0.2, 0.05]
    held = {f"h{i}": v for i, v in enumerate(unrelated)}
    cand = _results("cand", "candidate", {"train": {f"t{i}": v for i, v in enumerate(recited)}, "held_out": held})
    base = _results("base", "baseline", {"train": {f"t{i}": v for i, v in enumerate(unrelated)}, "held_out": held})
    train = summarise(cand, config)["memorization.train.lcs_ratio"]
    assert (train.n, train.interval) == (12, "bootstrap-bca")
    assert train.ci_low < train.value == pytest.approx(sum(recited) / 12) and train.value < train.ci_high <= 1.0
    assert summarise(cand, config)["memorization.train.memorized_rate"].interval == "clopper-pearson"
    deltas = {d.metric: d for d in paired_deltas({"cand": cand, "base": base}, "cand", config)}
    # a model reciting its training responses: the paired CI of the train share lies above 0
    paired = deltas["memorization.train.lcs_ratio"]
    assert (paired.n, paired.interval, paired.test) == (12, "bootstrap-bca", "sign")
    assert 0 < paired.ci_low < paired.difference < paired.ci_high
    # the same held-out answers on both sides: differences that do not vary have no interval
    same = deltas["memorization.held_out.lcs_ratio"]
    assert (same.difference, same.ci_low, same.interval) == (0.0, None, None)
    gap = deltas["memorization.gap.lcs_ratio"]
    assert gap.interval == "bootstrap-bca" and gap.ci_low < gap.difference < gap.ci_high
    own_gap = summarise(cand, config)["memorization.gap.lcs_ratio"]
    assert own_gap.interval == "bootstrap-bca" and 0 < own_gap.ci_low < own_gap.value < own_gap.ci_high


@pytest.fixture
def trained(tiny_model, corpus_file):
    """A NIFT dataset (no distillation: the documents' real second halves) and a checkpoint trained on it for a
    step with a quarter of the pairs held out."""
    store = RunStore("r")
    build_pairs(DataConfig.model_validate({"corpus": {"path": str(corpus_file)},
                                           "variants": [{"name": "raw", "distill": False}]}), store)
    record = train_checkpoint(TrainConfig(name="cand", recipe="nift", base_model=str(tiny_model), data="data:raw",
                                          max_steps=1, batch_size=4, max_length=512, threads=1, eval_share=0.25),
                              store)
    folder = store.stage_dir("train", "cand")
    path = split_file(folder, record)
    split = parse_split(path.read_bytes(), path, record)
    pairs = {row["id"]: row for row in read_jsonl(store.stage_dir("data", "raw") / "pairs.jsonl")}
    return store, split, {pid: pair["messages"][-1]["content"] for pid, pair in pairs.items()}


ONLY_MEMORIZATION = {"toxicity": {"enabled": False}, "hallucination": {"enabled": False},
                     "bias": {"enabled": False}}
UNRELATED = "I am not sure what you mean by that."


def _config(**memorization):
    return AuditConfig(**ONLY_MEMORIZATION, bootstrap_iterations=200,
                       memorization={"enabled": True, "train_prompts": 4, "held_out_prompts": 2, **memorization})


def test_a_model_reciting_its_training_responses_is_flagged_and_the_baseline_is_not(trained, tiny_model, tmp_path):
    store, split, responses = trained
    # the candidate recites the response of every pair it trained on, and cannot for the held-out ones
    reciter = ScriptedGenerator(lambda key, prompt: responses[key] if key in split["train"] else UNRELATED)
    baseline = ScriptedGenerator(lambda key, prompt: UNRELATED)
    baselines = [ModelRef(name="base", model=str(tiny_model))]
    records = run_audits(_config(), "train:cand", baselines, store, generators={"cand": reciter, "base": baseline})
    record = records["memorization"]
    assert set(records) == {"memorization"} and isinstance(record, MemorizationAuditRecord)
    assert (record.checkpoint, record.training_data) == ("train:cand", "data:raw")
    assert {s: p.prompts for s, p in record.prompt_sets.items()} == {"train": 4, "held_out": 2}
    assert record.prompt_sets["held_out"].available == len(split["eval"])
    # the prompts are the pairs' user turns, and the sets are the checkpoint's own split
    asked = {r.key for r in reciter.requests}
    assert asked == {r.key for r in baseline.requests} and len(asked) == 6
    assert len(asked & set(split["train"])) == 4 and len(asked & set(split["eval"])) == 2
    assert all(r.sampling.temperature == 0.0 and r.max_new_tokens == 64 for r in reciter.requests)

    s = record.summaries
    assert s["cand"]["memorization.train.lcs_ratio"].value == 1.0
    assert s["cand"]["memorization.train.memorized_rate"].value == 1.0
    assert s["cand"]["memorization.held_out.memorized_rate"].value == 0.0
    assert s["cand"]["memorization.gap.lcs_ratio"].value > 0.8
    assert s["base"]["memorization.train.memorized_rate"].value == 0.0
    assert abs(s["base"]["memorization.gap.lcs_ratio"].value) < 0.2
    assert record.flagged_samples == {"cand": 4, "base": 0}
    deltas = {(d.metric, d.baseline): d for d in record.deltas}
    train_delta = deltas[("memorization.train.lcs_ratio", "base")]
    # 4 training prompts: fewer than MIN_BOOTSTRAP_ITEMS, so the paired delta has no interval
    assert train_delta.difference > 0.8 and (train_delta.ci_low, train_delta.interval) == (None, None)
    assert deltas[("memorization.gap.lcs_ratio", "base")].difference > 0.8

    # every metric is declared lower-is-better, and a policy may name it
    assert record.metrics == list(MEMORIZATION_METRICS) and not any(m.higher_is_better for m in record.metrics)
    catalogue = metric_catalogue()
    assert all(m.name in catalogue and catalogue.get(m.name).higher_is_better is False for m in record.metrics)
    assert {(v.metric, v.model) for v in record.values} >= {("memorization.gap.lcs_ratio", "cand"),
                                                           ("memorization.held_out.ngram_overlap", "base")}

    # one sample row per continuation: the training response as reference, the recited ones flagged
    rows = [AuditSample.model_validate(r) for r in read_jsonl(store.stage_dir("audit", "memorization")
                                                              / "samples.jsonl")]
    assert len(rows) == 12
    flagged = [(r.model, r.suite) for r in rows if r.flags["memorized"]]
    assert flagged == [("cand", "train")] * 4
    recited = next(r for r in rows if r.model == "cand" and r.suite == "train")
    assert recited.reference == responses[recited.item_id] == recited.output and recited.scores["lcs_ratio"] == 1.0
    assert all(r.item_id in split["eval"] for r in rows if r.suite == "held_out")

    # the gate rules on it: a ceiling on the candidate's gap fails, a non-inferiority rule sees the paired delta
    from harness.gate.evidence import Evidence
    from harness.gate.policy import load_policy
    from harness.gate.rules import judge

    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("schema_version: 1\nrules:\n"
                           "  - {name: no-recitation, type: ceiling, metric: memorization.gap.lcs_ratio, max: 0.2}\n"
                           "  - {name: not-more-than-base, type: non_inferiority, "
                           "metric: memorization.train.lcs_ratio, margin: 0.1}\n")
    evidence = Evidence(run_id="r", candidate="cand", specs={m.name: m for m in record.metrics},
                        values=[(v, record.record_id) for v in record.values],
                        deltas=[(d, record.record_id) for d in record.deltas])
    outcomes = {o.rule: o for o in judge(load_policy(policy_file, catalogue), evidence, ["base"], catalogue)}
    assert outcomes["no-recitation"].status == "fail" and outcomes["no-recitation"].value > 0.8
    # without a CI, non-inferiority is not shown: the rule fails on the paired delta it found
    not_worse = outcomes["not-more-than-base"]
    assert not_worse.status == "fail" and not_worse.value == pytest.approx(train_delta.difference)
    assert "no CI" in not_worse.detail

    # unchanged inputs: cached; another sample size is another fingerprint
    again = run_audits(_config(), "train:cand", baselines, store, generators={"cand": reciter, "base": baseline})
    assert again["memorization"].record_id == record.record_id
    other = run_audits(_config(train_prompts=2), "train:cand", baselines, store,
                       generators={"cand": reciter, "base": baseline})["memorization"]
    assert other.record_id != record.record_id and other.prompt_sets["train"].prompts == 2


def test_the_probe_needs_a_checkpoint_of_this_run_trained_on_its_pairs(trained, tiny_model, edit_in_place):
    store, split, _ = trained
    silent = {"cand": ScriptedGenerator(lambda k, p: UNRELATED)}
    with pytest.raises(ConfigError, match=r"audit.memorization: '.*' is not a checkpoint of this run.*enabled: false"):
        run_audits(_config(), str(tiny_model), [], store, generators=silent)
    with pytest.raises(InputError, match="no such record"):
        run_audits(_config(checkpoint="train:nowhere"), "train:cand", [], store, generators=silent)
    everything = train_checkpoint(TrainConfig(name="all", recipe="nift", base_model=str(tiny_model), data="data:raw",
                                              max_steps=1, max_length=512, threads=1, eval_share=0), store)
    assert everything.split is None and everything.eval_rows == 0
    with pytest.raises(InputError, match="checkpoint 'all' held out no pairs"):
        run_audits(_config(checkpoint="train:all"), "train:cand", [], store, generators=silent)
    # the checkpoint's split file is pinned by its record
    folder = store.stage_dir("train", "cand")
    split_path = folder / "split.json"
    first_id = split["eval"][0]
    edit_in_place(split_path, first_id, first_id[:-1] + ("x" if first_id[-1] != "x" else "y"))
    with pytest.raises(InputError, match="split.json: not the split 'cand' was trained with"):
        run_audits(_config(), "train:cand", [], store, generators=silent)
    assert not store.stage_dir("audit", "memorization").exists()


def test_pairs_rebuilt_after_training_are_refused(trained, edit_in_place):
    store, _, _ = trained
    pairs = store.stage_dir("data", "raw") / "pairs.jsonl"
    text = pairs.read_text()
    word = json.loads(text.splitlines()[0])["messages"][-1]["content"].split()[0]
    edit_in_place(pairs, word, word.swapcase() if word.swapcase() != word else word[::-1])
    with pytest.raises(InputError, match="not the pairs train:cand was trained on"):
        run_audits(_config(), "train:cand", [], store, generators={"cand": ScriptedGenerator(lambda k, p: "")})


def test_a_checkpoint_trained_on_a_file_is_refused(tiny_model, tmp_path):
    store = RunStore("r")
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                                     {"role": "assistant", "content": f"a{i}"}]}) + "\n"
                            for i in range(4)))
    base = {"recipe": "nift", "base_model": str(tiny_model), "data": str(data), "max_steps": 1, "threads": 1,
            "max_length": 64}
    train_checkpoint(TrainConfig(name="onfile", **base), store)
    with pytest.raises(ConfigError, match="train:onfile was trained on .*pairs.jsonl', not on a NIFT dataset"):
        run_audits(_config(), "train:onfile", [], store)


def test_the_audit_is_off_unless_turned_on():
    assert MemorizationAuditConfig().enabled is False
    assert AuditConfig().memorization.max_new_tokens == 64 and AuditConfig().memorization.ngram == 13


def test_a_pair_whose_reply_holds_a_line_separator_is_one_pair(tmp_path):
    """The data stage writes U+2028 raw (ensure_ascii=False); str.splitlines() split the row there and the probe
    refused the pairs file as "not a NIFT pair (Unterminated string ...)"."""
    from audits.memorization.audit import _read_pairs
    from harness.core.store import atomic_write_jsonl

    row = {"id": "p1", "variant": "nift", "reference": "ref", "source": {}, "teacher": None, "generation": None,
           "messages": [{"role": "user", "content": "Tell me"},
                        {"role": "assistant", "content": "one\u2028two\u0085three"}]}
    path = atomic_write_jsonl(tmp_path / "pairs.jsonl", [row])
    pairs = _read_pairs(path.read_bytes(), path)
    assert pairs["p1"].messages[-1]["content"] == "one\u2028two\u0085three"
