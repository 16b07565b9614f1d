"""The local transformers generator on a tiny random model: batch composition never changes a greedy answer,
and the model runs where the device setting says."""

import pytest
import torch

from harness.core.errors import ConfigError
from harness.core.generation import (
    GenerationRequest,
    GeneratorConfig,
    TransformersGenerator,
    select_device,
)


def _requests(texts: list[str]) -> list[GenerationRequest]:
    # Prompts of very different lengths (so batches are left-padded by different amounts) and different budgets
    # (so rows stop at different steps while the rest of their batch goes on).
    return [GenerationRequest(key=f"k{i}", prompt=" ".join(text.split()[: 3 + 9 * i]), max_new_tokens=6 + 3 * (i % 3))
            for i, text in enumerate(texts)]


def test_greedy_answers_do_not_depend_on_the_batch_size(tiny_model, embedded_texts):
    requests = _requests(embedded_texts[:7])
    config = GeneratorConfig(model=str(tiny_model), temperature=0.0, repetition_penalty=1.0, threads=1, batch_size=1)
    generator = TransformersGenerator(config)
    # The tiny model's small initial weights make it repeat one token whatever it reads; larger ones make each
    # answer depend on its prompt, which a padding or mask error would then change.
    torch.manual_seed(1)
    with torch.no_grad():
        for weight in generator.model.parameters():
            if weight.dim() == 2:
                weight.normal_(0.0, 0.5)
    # A random model writes special tokens that decode to nothing: compare the token ids themselves.
    generator.tokenizer.decode = lambda tokens, **_: " ".join(map(str, tokens))
    answers = {}
    for batch_size in (1, 3, 7):
        generator.config = config.model_copy(update={"batch_size": batch_size})
        answers[batch_size] = [(g.key, g.text, g.completion_tokens, g.finish_reason)
                               for g in generator.generate(requests, seed=0)]
    assert answers[3] == answers[1] and answers[7] == answers[1]
    # the CPU's static KV cache (written in place) gives the answers of the default, growing one
    asked, generate = [], generator.model.generate

    def spy(*args, **kwargs):
        asked.append(kwargs.get("cache_implementation"))
        return generate(*args, **kwargs)

    generator.model.generate = spy
    generator.generate(requests[:1], seed=0)
    assert asked == ["static"]
    generator.cache_implementation = None
    assert [(g.key, g.text, g.completion_tokens, g.finish_reason) for g in generator.generate(requests, seed=0)] \
        == answers[7]
    # the test means something only if the model wrote text and rows ended at their own budgets
    assert len({text for _, text, _, _ in answers[1]}) == len(requests), answers[1]
    assert {tokens for _, _, tokens, _ in answers[1]} != {max(r.max_new_tokens for r in requests)}


def test_on_a_cpu_machine_auto_and_cpu_run_on_the_cpu_and_cuda_is_refused(tiny_model, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device("auto") == "cpu" and select_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="device=cuda"):
        select_device("cuda")
    generator = TransformersGenerator(GeneratorConfig(model=str(tiny_model), threads=1))
    assert generator.device == "cpu" and generator.model.device.type == "cpu"
    assert generator.identity["device"] == "cpu"
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        TransformersGenerator(GeneratorConfig(model=str(tiny_model), threads=1, device="cuda"))


def test_auto_picks_a_gpu_when_torch_sees_one_unless_the_config_says_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device("auto") == "cuda" and select_device("cuda") == "cuda"
    assert select_device("cpu") == "cpu"


def test_the_thread_count_is_measured_on_the_generators_own_decode_product(tiny_model, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        generator = TransformersGenerator(GeneratorConfig(model=str(tiny_model), batch_size=5))
    finally:
        torch.set_num_threads(before)
    # batch 5 through the tiny model's MLP (hidden 32 -> intermediate 64), not the 576-wide default
    assert generator.threads.how == "measured" and generator.threads.workload == "generate 5x32x64"
    assert str(generator.threads.threads) in generator.threads.ms_per_matmul


def test_a_model_whose_static_cache_fails_generates_with_the_default_cache_and_says_so(tiny_model, caplog):
    requests = _requests(["one two three four five six seven eight nine ten eleven twelve"] * 2)
    generator = TransformersGenerator(GeneratorConfig(model=str(tiny_model), temperature=0.0, threads=1))
    expected = generator.generate(requests, seed=0)
    asked, generate = [], generator.model.generate

    def static_cache_unsupported(*args, **kwargs):
        asked.append(kwargs.get("cache_implementation"))
        if kwargs.get("cache_implementation") == "static":
            raise ValueError("this model's layers cannot be sized for a StaticCache")
        return generate(*args, **kwargs)

    generator.model.generate = static_cache_unsupported
    with caplog.at_level("WARNING", logger="nift_gate.generation"):
        assert generator.generate(requests, seed=0) == expected
        assert generator.generate(requests, seed=0) == expected
    assert asked == ["static", None, None]  # tried once, then the default cache for every later batch
    assert "static KV cache failed (ValueError: this model's layers cannot be sized" in caplog.text


def test_running_out_of_memory_with_the_static_cache_is_not_retried(tiny_model):
    generator = TransformersGenerator(GeneratorConfig(model=str(tiny_model), threads=1))
    asked = []

    def out_of_memory(*args, **kwargs):
        asked.append(kwargs.get("cache_implementation"))
        raise torch.OutOfMemoryError("CUDA out of memory")

    generator.model.generate = out_of_memory
    with pytest.raises(torch.OutOfMemoryError):
        generator.generate(_requests(["a b c d e f"]), seed=0)
    assert asked == ["static"] and generator.cache_implementation == "static"
