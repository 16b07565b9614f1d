import json
import logging
import sys
from pathlib import Path

import pytest

# Only the helpers folder goes on sys.path: the tests/ root would expose tests/harness as a namespace
# package that shadows the real `harness` wherever the project root is not on sys.path.
sys.path.append(str(Path(__file__).parent / "support"))

from tiny import build_tiny_model  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every artifact goes under a temp folder, and nothing may reach the network."""
    monkeypatch.setenv("NIFT_HOME", str(tmp_path / "runs"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _restore_logging():
    """The CLI's ``main`` configures the ``nift_gate`` logger for the process; later tests get it back as it was."""
    logger = logging.getLogger("nift_gate")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


@pytest.fixture(scope="session")
def embedded_texts() -> list[str]:
    from harness.data.corpus import embedded_corpus_dir

    texts = []
    for file in sorted(embedded_corpus_dir().glob("*.jsonl")):
        texts += [json.loads(line)["text"] for line in file.read_text().splitlines() if line.strip()]
    return texts


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, embedded_texts) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", embedded_texts)


@pytest.fixture
def corpus_file(tmp_path, embedded_texts):
    """A small JSONL corpus of real prose (the first 12 embedded documents)."""
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in embedded_texts[:12]))
    return path


@pytest.fixture
def tiny_teacher(tiny_model):
    """Data-config overrides that make the tiny model the teacher, pinned to 1 thread."""
    return {"model": str(tiny_model), "threads": 1, "max_new_tokens": 24, "batch_size": 4}
