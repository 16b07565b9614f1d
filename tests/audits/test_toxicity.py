import json

import numpy as np
import pytest
from tiny_detoxify import build_tiny_detoxify

from audits.toxicity.metrics import expected_maximum_toxicity, toxicity_probability
from audits.toxicity.scorers import DetoxifyScorer, ProfanityCheckScorer
from harness.core.errors import ConfigError, InputError, ModelLoadError


def test_emt_and_toxicity_probability_on_a_hand_made_matrix():
    scores = np.array([[0.1, 0.9, 0.2],    # max 0.9, toxic
                       [0.3, 0.2, 0.1],    # max 0.3
                       [0.5, 0.0, 0.0],    # max 0.5, toxic (>= threshold counts)
                       [0.05, 0.1, 0.15]])  # max 0.15
    emt = expected_maximum_toxicity(scores)
    assert emt.value == pytest.approx((0.9 + 0.3 + 0.5 + 0.15) / 4) and emt.n == 4
    # 4 prompts: fewer than MIN_BOOTSTRAP_ITEMS, so no interval (a `judge_on: ci` rule fails for want of one)
    assert (emt.ci_low, emt.ci_high, emt.interval) == (None, None, None)
    probability = toxicity_probability(scores, threshold=0.5)
    assert probability.value == 0.5
    assert toxicity_probability(scores, threshold=0.95).value == 0.0
    # a rate gets an exact interval, not a bootstrap that collapses at 0 or n of n
    every = toxicity_probability(np.ones((3, 2)))
    assert (every.ci_low, every.ci_high, every.interval) == (pytest.approx(0.025 ** (1 / 3)), 1.0, "clopper-pearson")


def test_emt_over_ten_or_more_prompts_has_a_bca_interval_and_none_for_constant_maxima():
    maxima = [0.9, 0.3, 0.5, 0.15, 0.05, 0.7, 0.2, 0.1, 0.4, 0.08, 0.6, 0.12]
    # each prompt's maximum in its second sample, the other two samples below it
    scores = np.array([[m / 2, m, m / 3] for m in maxima])
    emt = expected_maximum_toxicity(scores, iterations=1000)
    assert emt.value == pytest.approx(sum(maxima) / 12) and emt.n == 12 and emt.interval == "bootstrap-bca"
    assert emt.ci_low < emt.value < emt.ci_high
    assert min(maxima) <= emt.ci_low and emt.ci_high <= max(maxima)
    flat = expected_maximum_toxicity(np.full((12, 3), 0.2), iterations=1000)
    share = 1 - 0.025 ** (1 / 12)  # no resample varies: the bound on the share of prompts above or below 0.2
    assert (flat.value, flat.interval) == (pytest.approx(0.2), "constant-bounded")
    assert (flat.ci_low, flat.ci_high) == pytest.approx((0.2 - share * 0.2, 0.2 + share * 0.8))


def test_maxima_that_are_all_0_or_1_get_a_proportion_interval_not_none():
    """A labelling scorer, or no toxic sample at all: the mean of 0/1 maxima is a proportion, whose exact
    interval does not collapse at 0 (a bootstrap of twelve zeros would have no spread and so no interval)."""
    none_toxic = expected_maximum_toxicity(np.zeros((12, 5)))
    assert (none_toxic.value, none_toxic.ci_low, none_toxic.interval) == (0.0, 0.0, "clopper-pearson")
    assert none_toxic.ci_high == pytest.approx(0.2646, abs=1e-4)  # 1 - 0.025 ** (1 / 12)
    labelled = expected_maximum_toxicity(np.array([[0, 1]] * 3 + [[0, 0]] * 9, dtype=float), method="wilson")
    assert labelled.value == pytest.approx(0.25) and labelled.interval == "wilson"
    assert labelled.ci_low < 0.25 < labelled.ci_high


def test_no_toxic_prompt_of_24_still_has_an_upper_bound_of_about_014():
    # the percentile bootstrap gave [0, 0] here, so `judge_on: ci` was not pessimistic
    none_toxic = np.zeros((24, 5))
    exact = toxicity_probability(none_toxic)
    assert (exact.value, exact.ci_low, exact.n, exact.interval) == (0.0, 0.0, 24, "clopper-pearson")
    assert exact.ci_high == pytest.approx(0.1425, abs=5e-5)  # 1 - 0.025 ** (1 / 24)
    wilson = toxicity_probability(none_toxic, method="wilson")
    assert wilson.ci_high == pytest.approx(0.1380, abs=5e-5) and wilson.interval == "wilson"


@pytest.fixture(scope="module")
def tiny_detoxify(tmp_path_factory, embedded_texts):
    return build_tiny_detoxify(tmp_path_factory.mktemp("detoxify"), embedded_texts[:40])


def test_tiny_detoxify_runs_the_real_detoxify_code_offline(tiny_detoxify, monkeypatch, tmp_path):
    monkeypatch.setenv("NIFT_CACHE", str(tmp_path / "cache"))
    checkpoint, config_dir = tiny_detoxify
    scorer = DetoxifyScorer(checkpoint=str(checkpoint), config_dir=str(config_dir), batch_size=2)
    assert scorer.identity.fallback is False and scorer.identity.name.startswith("detoxify:")
    assert scorer.identity.attributes == ["toxicity", "severe_toxicity", "obscene", "threat", "insult",
                                          "identity_attack"]
    scores = scorer.score(["a calm sentence about rivers", "", "another one"])
    assert set(scores) == set(scorer.identity.attributes)
    assert all(len(v) == 3 and all(0.0 <= x <= 1.0 for x in v) for v in scores.values())
    assert len(scorer.score(["only one"])["toxicity"]) == 1  # detoxify returns a bare float for one text


def test_long_texts_are_chunked_and_scored_as_the_maximum(tiny_detoxify, monkeypatch, tmp_path):
    monkeypatch.setenv("NIFT_CACHE", str(tmp_path / "cache"))
    checkpoint, config_dir = tiny_detoxify
    scorer = DetoxifyScorer(checkpoint=str(checkpoint), config_dir=str(config_dir))
    parts = ["the river ran over the stones near the mill " * 6, "rain fell on the market square all day " * 6]
    chunks = scorer._chunks(" ".join(parts))
    assert len(chunks) >= 2  # the 64-token model could not see this text whole
    whole = scorer.score([" ".join(parts)])
    separate = scorer.score(chunks)
    for attribute, values in whole.items():
        assert values[0] == pytest.approx(max(separate[attribute]), abs=1e-5)
    assert len(scorer.score(["word " * 100_000])["toxicity"]) == 1  # a very long output is scored, not dropped


def test_length_sorted_batches_give_each_text_its_own_score(tiny_detoxify, monkeypatch, tmp_path):
    # batches are reordered by length; every score must still land on its own text, whatever the input
    monkeypatch.setenv("NIFT_CACHE", str(tmp_path / "cache"))
    checkpoint, config_dir = tiny_detoxify
    scorer = DetoxifyScorer(checkpoint=str(checkpoint), config_dir=str(config_dir), batch_size=2)
    texts = ["the mill by the river " * 30, "", "Das ist ein ruhiger Satz über Flüsse.", "ok",
             "これは川についての静かな文です。", "rain fell on the square " * 5, "   "]
    batched = scorer.score(texts)
    for index, text in enumerate(texts):
        alone = scorer.score([text])
        for attribute in scorer.identity.attributes:
            assert batched[attribute][index] == pytest.approx(alone[attribute][0], abs=1e-5)
    fallback = ProfanityCheckScorer().score(texts)
    assert len(fallback["profanity"]) == len(texts)


def test_detoxify_needs_its_config_folder_and_a_detoxify_checkpoint(tiny_detoxify, tmp_path, monkeypatch):
    monkeypatch.setenv("NIFT_CACHE", str(tmp_path / "cache"))
    checkpoint, config_dir = tiny_detoxify
    with pytest.raises(ConfigError, match="config and tokenizer folder"):
        DetoxifyScorer(checkpoint=str(checkpoint))
    import torch

    wrong = tmp_path / "wrong.ckpt"
    torch.save({"weights": torch.zeros(2)}, wrong)
    with pytest.raises(ModelLoadError, match="not in detoxify's format"):
        DetoxifyScorer(checkpoint=str(wrong), config_dir=str(config_dir))


def test_detoxify_by_name_offline_says_how_to_supply_a_checkpoint(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="audit.toxicity.checkpoint"):
        DetoxifyScorer("original")


def test_fallback_scorer_is_labelled_and_scores_offline():
    scorer = ProfanityCheckScorer()
    assert scorer.identity.fallback is True and "not detoxify" in scorer.identity.note
    scores = scorer.score(["have a lovely day", "you are a damn idiot"])["profanity"]
    assert scores[1] > scores[0]
    assert scorer.score([]) == {"profanity": []}


def test_summary_per_group_on_hand_made_scores():
    from audits.toxicity.protocol import summarise

    scores = {"toxicity": np.array([[0.9, 0.1], [0.2, 0.3], [0.6, 0.7], [0.0, 0.1]])}
    summary = summarise(scores, ["neutral", "neutral", "provocative", "provocative"])["toxicity"]
    assert summary.overall.expected_max_toxicity.value == pytest.approx((0.9 + 0.3 + 0.7 + 0.1) / 4)
    assert summary.overall.toxicity_probability.value == 0.5
    assert summary.groups["neutral"].expected_max_toxicity.value == pytest.approx(0.6)
    assert summary.groups["provocative"].toxicity_probability.value == 0.5
    assert summary.groups["neutral"].toxicity_probability.n == 2
    assert summary.groups["neutral"].toxicity_probability.interval == "clopper-pearson"
    wilson = summarise(scores, ["neutral"] * 4, proportion_interval="wilson")["toxicity"].overall
    assert wilson.toxicity_probability.interval == "wilson"
    assert wilson.toxicity_probability.ci_low == pytest.approx(0.15004, abs=5e-5)  # Wilson, 2 of 4


def test_a_literal_backslash_n_is_a_line_break_in_toxigen_shaped_prompts_only(tmp_path):
    from audits.toxicity.protocol import load_prompts

    path = tmp_path / "prompts.jsonl"
    rows = [{"prompt": "- one statement\\n- another statement\\n-"},  # ToxiGen's demonstrations, as published
            {"prompt": {"text": "The file was saved in C:\\new\\folder and then"}}]  # RealToxicityPrompts' shape
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    toxigen, other = load_prompts(str(path))
    assert toxigen.text == "- one statement\n- another statement\n-"
    assert other.text == "The file was saved in C:\\new\\folder and then"


def test_prompt_sets_shipped_and_toxigen(tmp_path):
    from shared import shared_data

    from audits.toxicity.protocol import load_prompts

    shipped = load_prompts("embedded:suites/toxicity_prompts.jsonl")
    assert len(shipped) >= 60 and {p.group for p in shipped} == {"neutral", "provocative", "identity"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine start"}\n{"prompt": ""}\n')
    with pytest.raises(Exception, match=r"bad.jsonl:2: no text"):
        load_prompts(str(bad))
    toxigen = load_prompts(str(shared_data("toxigen", "toxigen_prompts.jsonl")), limit_per_group=2)
    assert "\\n" not in toxigen[0].text and "\n" in toxigen[0].text
    # the limit is per group and label: ToxiGen lists every hate prompt first, yet neutral ones are kept too
    strata = {}
    for prompt in toxigen:
        strata[(prompt.group, prompt.label)] = strata.get((prompt.group, prompt.label), 0) + 1
    assert set(strata.values()) == {2} and {label for _, label in strata} == {"hate", "neutral"}
    assert len({g for g, label in strata if label == "hate"}) == 16  # trans has hate prompts only
    assert len({g for g, label in strata if label == "neutral"}) == 15 and len(toxigen) == 2 * 31
    assert all(p.label is None for p in shipped)  # the shipped set has groups, no labels


def test_k_sampled_continuations_from_a_tiny_model_scored_by_the_fallback(tiny_model):
    from audits.toxicity.protocol import sample_continuations, score_matrix, summarise
    from harness.core.models import load_model

    loaded = load_model(str(tiny_model))
    prompts = ["The bus was late again and", "My neighbour shouted that", "The market opened at"]
    continuations = sample_continuations(loaded.model, loaded.tokenizer, prompts, k=4, max_new_tokens=5,
                                         batch_size=2, seed=3)
    assert [len(row) for row in continuations] == [4, 4, 4]
    assert len({text for row in continuations for text in row}) > 1  # sampled, not greedy copies
    matrix = score_matrix(ProfanityCheckScorer(), continuations)
    assert matrix["profanity"].shape == (3, 4)
    summary = summarise(matrix, ["a", "a", "b"])["profanity"]
    assert summary.overall.expected_max_toxicity.n == 3 and set(summary.groups) == {"a", "b"}


def test_toxicity_audit_stage_records_scorer_flags_and_groups(tiny_model, tmp_path, embedded_texts):
    import json

    from tiny import build_tiny_model

    from audits.config import AuditConfig
    from audits.toxicity.audit import run_toxicity_audit
    from harness.core.config import ModelRef
    from harness.core.store import RunStore

    other = build_tiny_model(tmp_path / "other", embedded_texts[:20], seed=2)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "group": "calm" if i < 2 else "heated",
                                           "prompt": f"Prompt number {i} begins"}) + "\n" for i in range(4)))
    # scripted continuations: the baseline swears on one sample of prompt 3, the candidate never does
    def generate(model, texts):
        rude = model.path == str(other)
        return [["a kind reply", "the damn idiot" if (rude and i == 3) else "fine"] for i in range(len(texts))]

    config = AuditConfig(toxicity={"prompts": str(prompts), "samples_per_prompt": 2, "scorer": "profanity-check"},
                         threads=1)
    record = run_toxicity_audit(config, str(tiny_model), [ModelRef(name="base", model=str(other))], RunStore("r"),
                                generate=generate)
    assert record.scorer.fallback and record.scorer.name == "alt-profanity-check"
    assert record.flagged_samples == {"model": 0, "base": 1}
    base = record.summaries["base"]["profanity"]
    assert base.overall.toxicity_probability.value == 0.25 and base.groups["heated"].toxicity_probability.value == 0.5
    assert base.groups["calm"].toxicity_probability.value == 0.0
    assert record.metric_spec("toxicity.expected_max_toxicity").higher_is_better is False
    rows = [json.loads(line) for line in
            (RunStore("r").stage_dir("audit", "toxicity") / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 4 * 2 and sum(r["flags"]["toxic"] for r in rows) == 1
    assert all(r["scorer"] == "alt-profanity-check" and r["audit"] == "toxicity" for r in rows)
    assert {r["role"] for r in rows} == {"candidate", "baseline"}
    # registry-named values and a paired delta: the candidate is never rude, the baseline once in 4 prompts
    values = {(v.model, v.metric): v for v in record.metric_values()}
    assert values[("base", "toxicity.toxicity_probability")].value == 0.25
    assert values[("model", "toxicity.toxicity_probability")].n == 4
    delta = next(d for d in record.metric_deltas() if d.metric == "toxicity.toxicity_probability")
    assert (delta.candidate, delta.baseline, delta.difference, delta.n) == ("model", "base", -0.25, 4)
    assert delta.attribute == "profanity" and delta.test == "mcnemar-exact"
    # every interval names its method: exact for a rate, Newcombe for a paired difference of rates; continuous
    # scores over 4 prompts (fewer than MIN_BOOTSTRAP_ITEMS) have no interval and no method
    from harness.core.stats import newcombe_paired_interval

    assert values[("base", "toxicity.toxicity_probability")].interval == "clopper-pearson"
    base_rate = values[("base", "toxicity.toxicity_probability")]
    assert (base_rate.ci_low, base_rate.ci_high) == pytest.approx((0.00631, 0.80588), abs=5e-5)  # 1 of 4, exact
    assert values[("model", "toxicity.toxicity_probability")].ci_high == pytest.approx(1 - 0.025 ** (1 / 4))
    emt = values[("model", "toxicity.expected_max_toxicity")]
    assert (emt.n, emt.ci_low, emt.ci_high, emt.interval) == (4, None, None, None)
    # candidate toxic on no prompt, baseline on 1 of 4: both 0, only candidate 0, only baseline 1, neither 3
    assert delta.interval == "newcombe"
    assert (delta.ci_low, delta.ci_high) == pytest.approx(newcombe_paired_interval(0, 0, 1, 3, 0.95))
    emt_delta = next(d for d in record.metric_deltas() if d.metric == "toxicity.expected_max_toxicity")
    assert (emt_delta.n, emt_delta.ci_low, emt_delta.ci_high, emt_delta.interval) == (4, None, None, None)
    assert emt_delta.test == "sign"


def test_a_crashed_toxicity_audit_resumes_at_the_next_model(tiny_model, tmp_path, embedded_texts):
    import json

    from tiny import build_tiny_model

    from audits.config import AuditConfig
    from audits.toxicity.audit import run_toxicity_audit
    from harness.core.config import ModelRef
    from harness.core.store import RunStore

    other = build_tiny_model(tmp_path / "other", embedded_texts[:20], seed=2)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "group": "g", "prompt": f"Prompt {i}"}) + "\n"
                               for i in range(3)))
    config = AuditConfig(toxicity={"prompts": str(prompts), "samples_per_prompt": 2, "scorer": "profanity-check"},
                         threads=1)
    calls = []

    def generate(model, texts, crash_on=None):
        calls.append(model.path)
        if model.path == crash_on:
            raise RuntimeError("killed")
        return [["fine", "the damn thing" if model.path == str(other) else "calm"] for _ in texts]

    args = (config, str(tiny_model), [ModelRef(name="base", model=str(other))], RunStore("r"))
    with pytest.raises(RuntimeError, match="killed"):
        run_toxicity_audit(*args, generate=lambda m, t: generate(m, t, crash_on=str(other)))
    calls.clear()
    record = run_toxicity_audit(*args, generate=generate)
    assert calls == [str(other)]  # the candidate's continuations came from the interrupted run
    assert record.flagged_samples == {"model": 0, "base": 3}
    assert not any((RunStore("r").root / "audit" / "_work").iterdir())



def test_editing_the_prompt_file_in_place_makes_the_audit_recompute(tiny_model, tmp_path, caplog, edit_in_place):
    import json

    from audits.config import AuditConfig
    from audits.toxicity.audit import run_toxicity_audit
    from harness.core.store import RunStore

    caplog.set_level("INFO", logger="nift_gate")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "group": "g", "prompt": f"Prompt {i} about rivers"})
                               + "\n" for i in range(3)))
    config = AuditConfig(toxicity={"prompts": str(prompts), "samples_per_prompt": 2, "scorer": "profanity-check"},
                         threads=1)

    def run():
        return run_toxicity_audit(config, str(tiny_model), [], RunStore("r"),
                                  generate=lambda model, texts: [["calm", "fine"] for _ in texts])

    first = run()
    caplog.clear()
    assert run().record_id == first.record_id and "up to date" in caplog.text  # unchanged: reused
    edit_in_place(prompts, "Prompt 1 about rivers", "Prompt 1 about damns!")
    caplog.clear()
    edited = run()
    assert edited.record_id != first.record_id and "up to date" not in caplog.text
    assert "recomputing" in caplog.text
    rows = [json.loads(line) for line in
            (RunStore("r").stage_dir("audit", "toxicity") / "samples.jsonl").read_text().splitlines()]
    assert {r["prompt"] for r in rows} == {"Prompt 0 about rivers", "Prompt 1 about damns!", "Prompt 2 about rivers"}
    prompt_input = next(ref for ref in edited.inputs if ref.kind == "prompt_set")
    assert prompt_input.sha256 != next(ref for ref in first.inputs if ref.kind == "prompt_set").sha256


def test_a_local_detoxify_checkpoint_and_its_config_folder_are_inputs_of_the_audit(tiny_model, tiny_detoxify,
                                                                                    tmp_path, monkeypatch):
    from audits.config import AuditConfig
    from audits.toxicity.audit import run_toxicity_audit
    from harness.core.records import sha256_file
    from harness.core.store import RunStore

    monkeypatch.setenv("NIFT_CACHE", str(tmp_path / "cache"))
    checkpoint, config_dir = tiny_detoxify
    config = AuditConfig(toxicity={"limit_per_group": 1, "samples_per_prompt": 2, "scorer": "detoxify",
                                   "checkpoint": str(checkpoint), "config_dir": str(config_dir)}, threads=1)
    record = run_toxicity_audit(config, str(tiny_model), [], RunStore("r"),
                                generate=lambda model, texts: [["calm", "fine"] for _ in texts])
    assert not record.scorer.fallback
    inputs = {ref.kind: ref for ref in record.inputs}
    assert inputs["scorer_checkpoint"].sha256 == sha256_file(checkpoint) == record.scorer.checkpoint_sha256
    assert inputs["scorer_config"].id == str(config_dir)
    assert inputs["prompt_set"].id == "embedded:suites/toxicity_prompts.jsonl"


def _labelled_prompts(tmp_path, rows):
    import json

    path = tmp_path / "labelled.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_a_per_group_limit_keeps_the_first_prompts_of_each_group_and_label(tmp_path):
    from audits.toxicity.protocol import load_prompts

    # ToxiGen's order: a group's hate prompts, then (further down) its neutral ones
    rows = ([{"target_group": "asian", "label": "hate", "prompt": f"h{i}"} for i in range(3)]
            + [{"target_group": "jewish", "label": "hate", "prompt": f"j{i}"} for i in range(3)]
            + [{"target_group": "asian", "label": "neutral", "prompt": f"n{i}"} for i in range(3)])
    prompts = load_prompts(str(_labelled_prompts(tmp_path, rows)), limit_per_group=2)
    assert [(p.group, p.label, p.text) for p in prompts] == [
        ("asian", "hate", "h0"), ("asian", "hate", "h1"), ("jewish", "hate", "j0"), ("jewish", "hate", "j1"),
        ("asian", "neutral", "n0"), ("asian", "neutral", "n1")]
    with pytest.raises(Exception, match=r"labelled.jsonl:2: no label in field 'label', unlike line 1"):
        load_prompts(str(_labelled_prompts(tmp_path, [rows[0], {"target_group": "asian", "prompt": "x"}])))
    with pytest.raises(Exception, match=r"labelled.jsonl:1: field 'kind' must be a non-empty string"):
        load_prompts(str(_labelled_prompts(tmp_path, [{"prompt": "x", "kind": 0.5}])), label_field="kind")


def test_a_repeated_prompt_id_is_refused_naming_both_lines(tmp_path):
    from audits.toxicity.protocol import load_prompts

    # the paired comparison keys prompts by id: a repeated id silently counted its prompts once
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"id": "a", "prompt": "x y"}\n\n{"id": "b", "prompt": "x z"}\n{"id": "a", "prompt": "other"}\n')
    with pytest.raises(InputError, match=r"prompts.jsonl:4: id 'a' is used again \(first on line 1\)$"):
        load_prompts(str(path))


def test_a_null_prompt_id_is_no_id_and_errors_name_the_line_after_blank_lines(tmp_path):
    from audits.toxicity.protocol import load_prompts

    path = tmp_path / "prompts.jsonl"
    path.write_text('\n\n{"id": null, "prompt": "x y"}\n\n{"id": null, "prompt": "other"}\n')
    # the default id counts rows, not lines: a blank line added to the file renames no prompt
    assert [p.id for p in load_prompts(str(path))] == ["prompts.jsonl:1", "prompts.jsonl:2"]
    path.write_text('\n\n\n{"prompt": "x y"}\n{"text": "oops"}\n')
    with pytest.raises(InputError, match=r"prompts.jsonl:5: no text in field 'prompt'"):
        load_prompts(str(path))
    labelled = '{"prompt": "x y", "label": "hate"}\n'
    path.write_text("\n\n" + labelled + labelled.replace(', "label": "hate"', ""))
    with pytest.raises(InputError, match=r"prompts.jsonl:4: no label in field 'label', unlike line 3"):
        load_prompts(str(path))


def test_summary_per_label_and_per_group_and_label_on_hand_made_scores():
    from audits.toxicity.protocol import summarise

    scores = {"toxicity": np.array([[0.9, 0.1], [0.2, 0.3], [0.6, 0.7], [0.0, 0.1], [0.4, 0.8]])}
    groups = ["asian", "asian", "asian", "women", "women"]
    labels = ["hate", "neutral", "hate", "neutral", "hate"]
    summary = summarise(scores, groups, labels=labels)["toxicity"]
    # maxima 0.9, 0.3, 0.7, 0.1, 0.8
    assert summary.labels["hate"].expected_max_toxicity.value == pytest.approx((0.9 + 0.7 + 0.8) / 3)
    assert summary.labels["neutral"].expected_max_toxicity.value == pytest.approx(0.2)
    assert summary.labels["hate"].toxicity_probability.value == 1.0 and summary.labels["hate"].toxicity_probability.n == 3
    assert summary.group_labels["asian"]["hate"].expected_max_toxicity.value == pytest.approx(0.8)
    assert summary.group_labels["asian"]["neutral"].expected_max_toxicity.value == pytest.approx(0.3)
    assert summary.group_labels["women"]["neutral"].toxicity_probability.value == 0.0
    assert summary.groups["asian"].expected_max_toxicity.n == 3  # the group grouping is unchanged
    unlabelled = summarise(scores, groups)["toxicity"]
    assert unlabelled.labels == {} and unlabelled.group_labels == {}


def test_toxicity_audit_on_labelled_prompts_reports_group_and_label(tiny_model, tmp_path):
    import json

    from audits.config import AuditConfig
    from audits.toxicity.audit import VERSION, run_toxicity_audit
    from harness.core.store import RunStore

    rows = ([{"target_group": "asian", "label": "hate", "prompt": f"Hate prompt {i}"} for i in range(3)]
            + [{"target_group": "asian", "label": "neutral", "prompt": f"Calm prompt {i}"} for i in range(3)])
    config = AuditConfig(toxicity={"prompts": str(_labelled_prompts(tmp_path, rows)), "samples_per_prompt": 2,
                                   "scorer": "profanity-check", "limit_per_group": 2}, threads=1)

    def generate(model, texts):  # a rude continuation for hate prompts only
        return [["the damn idiot" if text.startswith("Hate") else "fine", "calm"] for text in texts]

    record = run_toxicity_audit(config, str(tiny_model), [], RunStore("r"), generate=generate)
    assert record.version == VERSION == "7" and record.prompts == 4  # 2 hate + 2 neutral kept
    summary = record.summaries["model"]["profanity"]
    assert summary.labels["hate"].toxicity_probability.value == 1.0
    assert summary.labels["neutral"].toxicity_probability.value == 0.0
    assert summary.group_labels["asian"]["neutral"].expected_max_toxicity.n == 2
    samples = [json.loads(line) for line in
               (RunStore("r").stage_dir("audit", "toxicity") / "samples.jsonl").read_text().splitlines()]
    assert {r["group"] for r in samples} == {"asian/hate", "asian/neutral"}


def test_toxicity_audit_reads_toxigens_published_prompts_folder(tiny_model, tmp_path):
    """ToxiGen publishes prompts/hate_<group>_1k.txt and neutral_<group>_1k.txt: the folder is one prompt set,
    hashed file by file, its group and label read from each file's name."""
    from audits.config import AuditConfig
    from audits.toxicity.audit import run_toxicity_audit
    from harness.core.store import RunStore

    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "hate_asian_1k.txt").write_text("- rude one\\n- rude two\\n-\n- rude three\\n-\n")
    (folder / "neutral_asian_1k.txt").write_text("- calm one\\n- calm two\\n-\n")
    config = AuditConfig(toxicity={"prompts": str(folder), "samples_per_prompt": 2, "scorer": "profanity-check"},
                         threads=1)

    def generate(model, texts):
        assert all("\\n" not in text and "\n" in text for text in texts)  # unescaped as the model reads it
        return [["the damn idiot" if "rude" in text else "fine", "calm"] for text in texts]

    record = run_toxicity_audit(config, str(tiny_model), [], RunStore("r", tmp_path / "runs"), generate=generate)
    assert record.prompts == 3
    summary = record.summaries["model"]["profanity"]
    assert summary.group_labels["asian"]["hate"].expected_max_toxicity.n == 2
    assert summary.labels["neutral"].toxicity_probability.value == 0.0
    assert any(ref.kind == "prompt_set" and ref.id == str(folder) for ref in record.inputs)


def test_an_upgraded_scorer_package_makes_the_audit_recompute(tiny_model, tmp_path, monkeypatch):
    """alt-profanity-check's model ships inside its wheel: an upgrade is another scorer, not a cached one."""
    import audits.toxicity.scorers as scorers
    from audits.config import AuditConfig
    from audits.toxicity.audit import run_toxicity_audit
    from harness.core.store import RunStore

    path = _labelled_prompts(tmp_path, [{"target_group": "asian", "label": "hate", "prompt": f"P {i}"}
                                        for i in range(2)])
    config = AuditConfig(toxicity={"prompts": str(path), "samples_per_prompt": 2, "scorer": "profanity-check"},
                         threads=1)

    def generate(model, texts):
        return [["fine", "calm"] for _ in texts]

    store = RunStore("r", tmp_path / "runs")
    first = run_toxicity_audit(config, str(tiny_model), [], store, generate=generate)
    assert first.scorer.version == scorers._package_version("alt-profanity-check") is not None
    assert run_toxicity_audit(config, str(tiny_model), [], store, generate=generate).record_id == first.record_id
    monkeypatch.setattr(scorers, "_package_version", lambda name: "99.0")
    again = run_toxicity_audit(config, str(tiny_model), [], store, generate=generate)
    assert again.record_id != first.record_id and again.scorer.version == "99.0"
