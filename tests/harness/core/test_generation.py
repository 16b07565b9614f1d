"""The OpenAI-compatible backend against a real HTTP server on 127.0.0.1: retries, failures, bounded concurrency."""

from fake_openai import FakeOpenAI

from harness.core.generation import GenerationRequest, GeneratorConfig, OpenAIGenerator


def _generator(server: FakeOpenAI, **settings) -> OpenAIGenerator:
    return OpenAIGenerator(GeneratorConfig(backend="openai", base_url=server.base_url, model="judge",
                                           backoff_s=0.01, **settings))


def _requests(n: int) -> list[GenerationRequest]:
    return [GenerationRequest(key=f"k{i}", prompt=f"Question {i}?", max_new_tokens=8) for i in range(n)]


def test_a_rate_limit_is_retried_and_then_answered():
    with FakeOpenAI(reply=lambda prompt: "A", first_status=429) as server:
        generations = _generator(server, max_retries=1).generate(_requests(3), seed=0)
    assert [(g.key, g.text, g.error) for g in generations] == [("k0", "A", None), ("k1", "A", None), ("k2", "A", None)]
    assert sorted(server.attempts.values()) == [2, 2, 2]  # a 429, then the answer
    assert generations[0].prompt_tokens == 2 and generations[0].completion_tokens == 1  # the endpoint's usage


def test_a_rate_limit_beyond_the_retries_is_a_failed_row():
    with FakeOpenAI(first_status=429) as server:
        [generation] = _generator(server, max_retries=0).generate(_requests(1), seed=0)
    assert generation.finish_reason == "error" and "HTTP 429" in generation.error and generation.text == ""
    assert server.attempts["Question 0?"] == 1


def test_requests_in_flight_never_exceed_the_configured_concurrency():
    # each answer takes 0.2 s, so 12 requests overlap as much as the client lets them
    with FakeOpenAI(first_status=None, delay_s=0.2) as server:
        generations = _generator(server, concurrency=3).generate(_requests(12), seed=0)
    assert len(server.answered) == 12 and all(g.error is None for g in generations)
    assert server.peak_in_flight == 3


def test_the_seed_sampling_and_system_prompt_are_sent():
    with FakeOpenAI(first_status=None) as server:
        _generator(server, system_prompt="Be brief.", temperature=0.0).generate(_requests(1), seed=7)
    [body] = server.answered
    assert body["seed"] == 7 and body["temperature"] == 0.0 and body["max_tokens"] == 8
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Question 0?"}]


def test_a_generator_input_names_local_weights_by_content_and_an_endpoint_by_url(tiny_model):
    from harness.core.generation import GeneratorConfig, generator_input
    from harness.core.models import resolve_model

    local = generator_input(GeneratorConfig(model=str(tiny_model)), kind="judge_model")
    assert (local.kind, local.id, local.sha256) == ("judge_model", str(tiny_model), resolve_model(str(tiny_model)).sha256)
    remote = generator_input(GeneratorConfig(backend="openai", base_url="http://127.0.0.1:9/v1", model="m"))
    assert (remote.kind, remote.id, remote.sha256) == ("model", "http://127.0.0.1:9/v1#m", "endpoint")
