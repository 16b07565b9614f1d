"""A task lm-eval scores under several filters (gsm8k's strict-match and flexible-extract) logs one sample per filter
and document: nift-gate keeps one filter's results, so its items are the documents and its CIs count each once."""

import json
import statistics

import pytest
from scripted import ScriptedLM

from harness.bench.bench import paired_rows
from harness.bench.record import BenchRecord
from harness.core import lmeval
from harness.core.lmeval import TaskScores
from harness.core.stats import proportion_interval

DOCUMENTS = 20
# Two filters over the same generations: "strict" takes an answer's first yes/no, "flexible" its last.
TASK_YAML = """task: two_filter
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{q}}}}"
doc_to_target: "{{{{a}}}}"
generation_kwargs:
  until: ["\\n"]
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
filter_list:
  - name: strict
    filter:
      - function: regex
        regex_pattern: "(yes|no)"
      - function: take_first
  - name: flexible
    filter:
      - function: regex
        regex_pattern: "(yes|no)"
        group_select: -1
      - function: take_first
metadata:
  version: 1.0
"""


def _two_filter_scores(tmp_path, answer) -> tuple[TaskScores, list[dict]]:
    """lm-eval's own run of the two-filter task, each question's answer given by ``answer(number)``."""
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"q": f"question {i}", "a": "yes"}) + "\n" for i in range(DOCUMENTS)))
    (tmp_path / "two_filter.yaml").write_text(TASK_YAML.format(data=data))
    lm = ScriptedLM(generate=lambda context: answer(int(context.split()[-1])))
    settings = lmeval.LmEvalSettings(tasks=["two_filter"], apply_chat_template=False)
    scores, rows, _ = lmeval.run_lm_eval(lm, settings, lmeval.task_manager([str(tmp_path)], ["two_filter"]))
    return scores["two_filter"], rows["two_filter"]


def _bench_value(scores: TaskScores):
    """The value and CI the gate reads for the task's metric (BenchRecord.compute_values)."""
    record = BenchRecord(record_id="b", run_id="r", fingerprint="f", candidate="cand", models=[],
                         fingerprint_fields={}, scores={"cand": {"two_filter": scores}}, comparisons=[], files={})
    [value] = record.compute_values()
    return value


def test_filters_that_agree_count_each_document_once(tmp_path):
    # 15 of 20 right under both filters: counted twice, 30 of 40 gave Wilson [0.598, 0.858], and a floor of 0.55
    # judged on the CI passed on evidence the 20 documents do not hold
    scores, rows = _two_filter_scores(tmp_path, lambda i: "yes" if i % 4 else "no")
    assert (scores.n, scores.successes, scores.filter) == (DOCUMENTS, {"exact_match": 15}, "flexible")
    assert len(rows) == DOCUMENTS and sorted(r["doc_id"] for r in rows) == list(range(DOCUMENTS))
    value = _bench_value(scores)
    assert (value.value, value.n, value.interval) == (0.75, DOCUMENTS, "wilson")
    assert (value.ci_low, value.ci_high) == pytest.approx(proportion_interval(15, 20, 0.95))
    assert value.ci_low < 0.55 < value.ci_high


def test_filters_that_disagree_keep_the_last_filters_documents_and_a_proportions_interval(tmp_path):
    # every odd question answered "no yes": strict 10 of 20, flexible 20 of 20. Mixed, no successes were counted
    # and the CI was 1.0 +- z * 0 (flexible's stderr), [1.0, 1.0], over n=40
    scores, rows = _two_filter_scores(tmp_path, lambda i: "no yes" if i % 2 else "yes")
    assert (scores.n, scores.metrics, scores.successes) == (DOCUMENTS, {"exact_match": 1.0}, {"exact_match": 20})
    assert scores.filter == "flexible" and {r["response"][0] for r in rows} == {"yes"}
    value = _bench_value(scores)
    assert value.interval == "wilson" and value.ci_high == pytest.approx(1.0)
    assert (value.ci_low, value.ci_high) == pytest.approx(proportion_interval(20, 20, 0.95))
    assert value.ci_low < 0.84  # 20 of 20 is no certainty
    # the paired deltas pair these rows: one per document, scored as the kept aggregate
    paired = paired_rows(rows)
    assert len(paired) == DOCUMENTS and statistics.mean(s["exact_match"] for s in paired.values()) == 1.0


def test_a_zero_stderr_without_counted_successes_gives_no_interval():
    """A record whose 0/1 metric has lm-eval's stderr of 0 and no successes (one made before the filter was kept)
    has no CI, not the zero-width value +- z * 0 a rule on the CI would pass."""
    scores = TaskScores(version="1", n=40, metrics={"exact_match": 1.0}, stderr={"exact_match": 0.0},
                        higher_is_better={"exact_match": True})
    value = _bench_value(scores)
    assert (value.ci_low, value.ci_high, value.interval) == (None, None, None)
    wider = scores.model_copy(update={"metrics": {"exact_match": 0.9}, "stderr": {"exact_match": 0.05}})
    assert _bench_value(wider).interval == "normal (lm-eval stderr)"


def test_a_new_reading_of_lm_evals_results_is_another_cache_entry(tmp_path):
    """Entries cached before one filter was kept hold every filter's samples and counts: they are not reused."""
    fields = lmeval.fingerprint_fields(lmeval.LmEvalSettings(tasks=["two_filter"]), [])
    earlier = {name: value for name, value in fields.items() if name != "scores_version"}
    assert lmeval.cache_dir(tmp_path, "0" * 64, fields) != lmeval.cache_dir(tmp_path, "0" * 64, earlier)
