"""A multiple-choice lm-eval task over a few rows, for bench tests that need lm-eval to run but not a real suite."""

import json
from pathlib import Path


def write_toy_mc_task(tmp_path: Path, rows: list[dict]) -> Path:
    """``<tmp_path>/tasks/toy_mc.yaml`` (task ``toy_mc``, metric acc, higher is better) over ``rows`` of
    ``{question, choices, answer}`` written to ``<tmp_path>/toy.jsonl``; returns the task folder."""
    folder, data = tmp_path / "tasks", tmp_path / "toy.jsonl"
    folder.mkdir()
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "toy_mc.yaml").write_text(f"""task: toy_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
""")
    return folder
