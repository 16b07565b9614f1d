"""The persistent generation cache in front of a real OpenAI-compatible server on 127.0.0.1."""

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI

from harness.core.errors import InputError
from harness.core.generation import (
    Generation,
    GenerationRequest,
    GeneratorConfig,
    Sampling,
)
from harness.core.generation_cache import (
    CACHE_FILE,
    CachedGenerator,
    GenerationCache,
    cached_generator,
)
from harness.core.records import config_hash

ROOT = Path(__file__).resolve().parents[3]


def _config(server: FakeOpenAI, **settings) -> GeneratorConfig:
    return GeneratorConfig(**{"backend": "openai", "base_url": server.base_url, "model": "judge", "backoff_s": 0.01,
                              "max_retries": 0, **settings})


def _judge(server: FakeOpenAI, home: Path, **settings) -> CachedGenerator:
    return cached_generator(_config(server, **settings), home)


def _ask(prompt: str, key: str = "q1", **fields) -> list[GenerationRequest]:
    return [GenerationRequest(key=key, prompt=prompt, max_new_tokens=8, **fields)]


def test_the_same_request_twice_is_answered_once_and_the_second_time_from_the_file(tmp_path):
    with FakeOpenAI(reply=lambda prompt: "A", first_status=None) as server:
        [first] = _judge(server, tmp_path).generate(_ask("Which is better?"), seed=0)
        again = _judge(server, tmp_path)  # a new process would open the same file
        [second] = again.generate(_ask("Which is better?", key="another row"), seed=0)
    assert len(server.answered) == 1
    assert (first.text, first.cached) == ("A", False)
    assert (second.key, second.text, second.cached, second.prompt_tokens) == ("another row", "A", True, 3)
    assert (tmp_path / CACHE_FILE).is_file()
    assert again.usage.model_dump(include={"requests", "cache_hits", "calls", "prompt_tokens"}) == \
        {"requests": 1, "cache_hits": 1, "calls": 0, "prompt_tokens": 0}


@pytest.mark.parametrize("change", [
    {"seed": 1}, {"prompt": "Which is worse?"}, {"model": "another-judge"}, {"system_prompt": "Be strict."},
    {"max_new_tokens": 9}, {"sampling": Sampling(temperature=0.5)}, {"history": [{"role": "user", "content": "hi"}]},
    {"base_url": "other"}])
def test_a_different_seed_prompt_model_or_setting_is_a_miss(tmp_path, change):
    with FakeOpenAI(reply=lambda prompt: "A", first_status=None) as server:
        _judge(server, tmp_path).generate(_ask("Which is better?"), seed=0)
        settings = {k: v for k, v in change.items() if k in ("model", "system_prompt")}
        if "base_url" in change:  # the same model name behind another endpoint
            settings["base_url"] = server.base_url.replace("127.0.0.1", "localhost")
        fields = {k: v for k, v in change.items() if k in ("history", "sampling")}
        request = GenerationRequest(key="q1", prompt=change.get("prompt", "Which is better?"),
                                    max_new_tokens=change.get("max_new_tokens", 8), **fields)
        [generation] = _judge(server, tmp_path, **settings).generate([request], seed=change.get("seed", 0))
    assert len(server.answered) == 2 and generation.cached is False


def test_a_failed_request_is_not_cached_and_is_asked_again_next_time(tmp_path):
    with FakeOpenAI(reply=lambda prompt: "B", first_status=429) as server:
        [failed] = _judge(server, tmp_path).generate(_ask("Which is better?"), seed=0)  # no retries: the 429 stays
        judge = _judge(server, tmp_path)
        [answered] = judge.generate(_ask("Which is better?"), seed=0)
    assert failed.error and "HTTP 429" in failed.error
    assert (answered.text, answered.cached) == ("B", False) and server.attempts["Which is better?"] == 2
    assert GenerationCache.at_home(tmp_path).count() == 1
    assert judge.usage.failed == 0 and judge.usage.calls == 1


def test_repeats_in_one_batch_are_asked_once_and_every_row_keeps_its_key(tmp_path):
    requests = [GenerationRequest(key=k, prompt=p, max_new_tokens=8) for k, p in (("a", "X?"), ("b", "Y?"), ("c", "X?"))]
    with FakeOpenAI(reply=lambda prompt: prompt.lower(), first_status=None) as server:
        judge = _judge(server, tmp_path)
        generations = judge.generate(requests, seed=0)
    assert [(g.key, g.text) for g in generations] == [("a", "x?"), ("b", "y?"), ("c", "x?")]
    assert len(server.answered) == 2 and (judge.usage.calls, judge.usage.cache_hits) == (2, 1)


def test_cache_off_asks_every_time_and_still_counts_tokens_and_cost(tmp_path):
    with FakeOpenAI(reply=lambda prompt: "A tie", first_status=None) as server:
        for _ in range(2):
            judge = _judge(server, tmp_path, cache=False, price_per_1k_prompt_tokens=1.0,
                           price_per_1k_completion_tokens=2.0)
            judge.generate(_ask("Which one is better?"), seed=0)
    assert len(server.answered) == 2 and not (tmp_path / CACHE_FILE).exists()
    # the fake counts words: 4 prompt tokens at $1/1k, 2 completion tokens at $2/1k
    assert judge.usage.model_dump() == {"requests": 1, "cache_hits": 0, "calls": 1, "failed": 0, "prompt_tokens": 4,
                                        "completion_tokens": 2, "price_per_1k_prompt_tokens": 1.0,
                                        "price_per_1k_completion_tokens": 2.0, "estimated_cost_usd": 0.008}


def test_the_key_ignores_the_thread_count_but_not_the_chat_template(tmp_path):
    class Local:
        def __init__(self, identity):
            self.config, self.identity, self.calls = GeneratorConfig(), identity, 0

        def generate(self, requests, seed, on_progress=None):
            self.calls += len(requests)
            return [Generation(key=r.key, text="A", finish_reason="stop") for r in requests]

    cache = GenerationCache.at_home(tmp_path)
    base = {"backend": "transformers", "model": "m", "sha256": "abc", "chat_template_sha256": "t1"}
    CachedGenerator(Local({**base, "threads": {"threads": 1}}), cache).generate(_ask("Q?"), seed=0)
    same = Local({**base, "threads": {"threads": 2}})
    other_template = Local({**base, "chat_template_sha256": "t2"})
    CachedGenerator(same, cache).generate(_ask("Q?"), seed=0)
    CachedGenerator(other_template, cache).generate(_ask("Q?"), seed=0)
    assert (same.calls, other_template.calls) == (0, 1)


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    # each process stores 300 generations, 100 of them the other's too, one transaction per row, both
    # starting together once both have opened the cache
    script = textwrap.dedent("""
        import sys, time
        from pathlib import Path
        from harness.core.generation import Generation
        from harness.core.generation_cache import GenerationCache
        cache, first, folder = GenerationCache(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
        (folder / f"ready-{first}").touch()
        while not (folder / "go").exists():
            time.sleep(0.01)
        for i in range(first, first + 300):
            cache.put({"backend": "scripted"}, [(f"h{i}", {"i": i}, Generation(key="", text=f"t{i}"))])
    """)
    path = tmp_path / "generations.sqlite"
    writers = [subprocess.Popen([sys.executable, "-c", script, str(path), str(first), str(tmp_path)], cwd=ROOT,
                                stderr=subprocess.PIPE, text=True) for first in (0, 200)]
    # Both open the new file at once: its switch to WAL is the moment two processes collide (it failed with
    # "database is locked" until the cache retried it).
    while not all((tmp_path / f"ready-{first}").exists() for first in (0, 200)):
        if any(w.poll() is not None for w in writers):
            for w in writers:
                w.kill()  # a live writer's stderr would block the read below until it ended: never
            raise AssertionError([w.communicate()[1] for w in writers])
        time.sleep(0.01)
    (tmp_path / "go").touch()
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
    cache = GenerationCache(path)
    assert cache.count() == 500
    stored = cache.get(config_hash({"backend": "scripted"}), [f"h{i}" for i in range(500)])
    assert sorted(int(g.text[1:]) for g in stored.values()) == list(range(500))


def test_a_file_that_is_not_a_cache_is_a_clear_error(tmp_path):
    path = tmp_path / CACHE_FILE
    path.parent.mkdir()
    path.write_text(json.dumps({"not": "sqlite"}) * 200)
    with pytest.raises(InputError, match=r"generations.sqlite: not a generation cache"):
        GenerationCache(path)


def test_the_cache_switch_is_in_no_dumped_config_so_no_fingerprint_moves():
    from harness.core.generation import GeneratorConfig

    on, off = GeneratorConfig(), GeneratorConfig(cache=False)
    assert off.cache is False and "cache" not in on.model_dump()
    assert on.model_dump() == off.model_dump()
