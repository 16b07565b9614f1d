"""The generation cache keys a model run here by the versions of the libraries that run it."""

import pytest

from harness.core import records
from harness.core.generation import Generation, GenerationRequest, GeneratorConfig
from harness.core.generation_cache import GENERATION_LIBRARIES, CachedGenerator, GenerationCache


class Local:
    """A generator with a given identity that counts the requests it is asked."""

    def __init__(self, identity):
        self.config, self.identity, self.calls = GeneratorConfig(), identity, 0

    def generate(self, requests, seed, on_progress=None):
        self.calls += len(requests)
        return [Generation(key=r.key, text="A", finish_reason="stop") for r in requests]


def _calls(identity, cache) -> int:
    generator = Local(identity)
    CachedGenerator(generator, cache).generate([GenerationRequest(key="q", prompt="Q?", max_new_tokens=8)], seed=0)
    return generator.calls


def _upgrade(monkeypatch, library):
    real = records._installed_version
    monkeypatch.setattr(records, "_installed_version", lambda name: "99.0.0" if name == library else real(name))


LOCAL = {"backend": "transformers", "model": "m", "sha256": "abc", "chat_template_sha256": "t"}
ENDPOINT = {"backend": "openai", "model": "judge", "base_url": "http://127.0.0.1:1/v1",
            "sha256": "endpoint:http://127.0.0.1:1/v1#judge"}


def test_an_upgrade_of_transformers_asks_a_local_model_again(tmp_path, monkeypatch):
    cache = GenerationCache.at_home(tmp_path)
    assert _calls(LOCAL, cache) == 1
    assert _calls(LOCAL, cache) == 0  # same code: answered from the cache
    _upgrade(monkeypatch, "transformers")
    assert _calls(LOCAL, cache) == 1  # the old version's answer is not the new one's
    assert _calls(LOCAL, cache) == 0


@pytest.mark.parametrize("identity, library", [(ENDPOINT, "transformers"), (LOCAL, "scipy")],
                         ids=["an endpoint, whose server decides", "a library that generates nothing"])
def test_other_upgrades_keep_the_cached_answers(tmp_path, monkeypatch, identity, library):
    cache = GenerationCache.at_home(tmp_path)
    assert _calls(identity, cache) == 1
    _upgrade(monkeypatch, library)
    assert _calls(identity, cache) == 0


def test_the_generation_libraries_are_result_libraries():
    # so that a version which changes a cached answer also changes every stage fingerprint made with it
    assert set(GENERATION_LIBRARIES) <= set(records.RESULT_LIBRARIES)
