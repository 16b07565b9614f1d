"""The hallucination audit's fingerprint holds what scored SelfCheck: the sentence splitter and its libraries."""

import json
import sys

import pytest
from scripted import ScriptedGenerator

from audits.config import AuditConfig
from audits.hallucination import audit
from audits.hallucination.audit import run_hallucination_audit
from harness.core.store import RunStore

QUESTIONS = [{"id": f"f{i}", "kind": "factual", "question": f"Capital number {i}?", "answers": ["Tokyo"]}
             for i in range(4)]


def _answer(key, prompt):
    if "#" not in key:
        return "Tokyo. It is large. Many people live there."
    return ["Tokyo. It is small.", "Kyoto. It is old. Few live there.", "Tokyo is big."][int(key.split("#")[1]) % 3]


@pytest.fixture
def install_pipeline(tmp_path, monkeypatch):
    """``install_pipeline()``: what ``pip install en_core_web_sm`` adds, as a stand-in that splits sentences at
    line breaks only, on sys.path for this test alone."""
    site = tmp_path / "site"

    def install():
        (site / "en_core_web_sm").mkdir(parents=True)
        (site / "en_core_web_sm" / "__init__.py").write_text(
            "def load(**overrides):\n    import spacy\n    nlp = spacy.blank('en')\n"
            "    nlp.add_pipe('sentencizer', config={'punct_chars': ['\\n']})\n    return nlp\n")
        (site / "en_core_web_sm-3.8.0.dist-info").mkdir()
        (site / "en_core_web_sm-3.8.0.dist-info" / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: en_core_web_sm\nVersion: 3.8.0\n")
        monkeypatch.syspath_prepend(str(site))

    yield install
    sys.modules.pop("en_core_web_sm", None)  # imported by spacy.load: later tests must not find it


def test_installing_the_spacy_pipeline_or_upgrading_selfcheckgpt_scores_again(tiny_model, tmp_path, monkeypatch,
                                                                               install_pipeline):
    questions = tmp_path / "cb.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    config = AuditConfig(hallucination={"closed_book": {"questions": str(questions)}, "halueval": {"path": None},
                                        "selfcheck": {"samples": 3}, "truthfulqa": {"enabled": False}}, threads=1)

    def run():
        return run_hallucination_audit(config, str(tiny_model), [], RunStore("r"),
                                       generators={"model": ScriptedGenerator(_answer)})

    first = run()
    assert "en_core_web_sm not installed" in first.selfcheck["sentences"]
    assert "selfcheckgpt " in first.selfcheck["libraries"] and "spacy " in first.selfcheck["libraries"]
    assert run().record_id == first.record_id  # nothing changed: reused
    install_pipeline()
    installed = run()
    assert installed.record_id != first.record_id and installed.fingerprint != first.fingerprint
    assert installed.selfcheck["sentences"] == "spacy:en_core_web_sm"
    assert "en_core_web_sm 3.8.0" in installed.selfcheck["libraries"]
    score = "hallucination.selfcheck.max_neg_logprob"  # other sentences, other scores
    assert installed.summaries["model"][score].value != first.summaries["model"][score].value
    real = audit._installed_version
    monkeypatch.setattr(audit, "_installed_version", lambda name: "9.9" if name == "selfcheckgpt" else real(name))
    assert run().fingerprint != installed.fingerprint
