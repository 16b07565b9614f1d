"""Text generation for every role: the NIFT teacher, the model under audit, the pairwise judge.

A :class:`Generator` is a loaded model plus its default sampling; each :class:`GenerationRequest` may carry its
own :class:`Sampling` (the hallucination audit asks the same model for greedy answers, then for sampled ones),
so nobody mutates a generator's config. Three backends behind one interface, :class:`Generator.generate`:

* :class:`TransformersGenerator`: a local model; prompts are chat-templated, sorted by length, batched with
  left padding and generated with the KV cache (static, written in place, on the CPU); each row stops at its own
  token budget.
* :class:`OpenAIGenerator`: any OpenAI-compatible ``/chat/completions`` endpoint (vLLM or llama.cpp servers,
  hosted APIs), with bounded concurrency, retries with exponential backoff, and per-row failure.
* :class:`VLLMGenerator`: vLLM's offline engine, when ``vllm`` is installed.

Any of them can sit behind the persistent generation cache of :mod:`harness.core.generation_cache`, which also
counts what a generator did and cost.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from harness.core.config import Section
from harness.core.errors import ConfigError
from harness.core.log import get_logger
from harness.core.records import InputRef


class GeneratorConfig(Section):
    """A model that writes text, and how: the teacher of the NIFT builder, the judge, or a model under audit."""

    backend: Literal["transformers", "openai", "vllm"] = Field(
        "transformers", description="transformers: local batched generation; openai: any OpenAI-compatible "
                                    "HTTP endpoint (vLLM/llama.cpp server, hosted API); vllm: vLLM's offline engine.")
    model: str = Field("smollm2-135m-instruct", description="Model: embedded name, local folder, .gguf "
                                                            "file or hub id; for openai, the served model name.")
    base_url: str | None = Field(None, description="openai backend: endpoint base URL, e.g. http://localhost:8000/v1.")
    api_key_env: str = Field("OPENAI_API_KEY", description="openai backend: environment variable holding the key.")
    system_prompt: str | None = Field(None, description="System message for the teacher; default: the model's own.")
    max_new_tokens: int = Field(96, ge=1, description="Upper bound on a continuation's tokens.")
    length_factor: float = Field(1.0, gt=0, description="A continuation may be at most this many times as long "
                                                       "(in tokens) as the original second part.")
    temperature: float = Field(0.7, ge=0, description="0 = greedy.")
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus sampling mass.")
    repetition_penalty: float = Field(1.1, ge=1, description="transformers/vllm: >1 discourages loops, which small teachers fall into.")
    batch_size: int = Field(16, ge=1, description="transformers/vllm: prompts per generate call (length-sorted).")
    concurrency: int = Field(8, ge=1, description="openai backend: requests in flight.")
    max_retries: int = Field(4, ge=0, description="openai backend: retries per request on connection errors "
                                                    "and 408/409/425/429/500/502/503/504.")
    backoff_s: float = Field(0.5, ge=0, description="openai backend: first retry delay; doubles each retry.")
    timeout_s: float = Field(120.0, gt=0, description="openai backend: per-request timeout.")
    on_failure: Literal["record", "stop"] = Field(
        "record", description="After retries: record the row as failed and go on, or stop the run (completed "
                              "shards are kept for resume).")
    threads: int | None = Field(None, ge=1, description="CPU threads; default: chosen by measurement.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="transformers backend: where the model runs; auto: the CUDA GPU when torch sees one, "
                            "else the CPU; cuda on a machine without one is refused.")
    allow_pickle: bool = Field(False, description="Allow pickle (*.bin) weights for a local teacher folder.")
    trust_remote_code: bool = Field(False, description="Run model code shipped with a hub/local model.")
    price_per_1k_prompt_tokens: float = Field(0.0005, ge=0, description="For the cost estimate in the data card "
                                                                        "(teacher) and the bench record (judge), USD.")
    price_per_1k_completion_tokens: float = Field(0.0015, ge=0, description="For the cost estimate in the data card "
                                                                            "(teacher) and the bench record (judge), USD.")
    # exclude: it decides whether an answer is reused, never what the answer is, so it stays out of every
    # dumped config and with it out of the fingerprints (switching it must not refuse a finished data folder).
    cache: bool = Field(True, exclude=True,
                        description="Answer a request this generator has answered before (same identity, same "
                                    "request) from the runs home's _cache/generations.sqlite. Honoured by the "
                                    "bench's judges, the hallucination grader and the data stage's judge; the "
                                    "teacher resumes from its shards instead. Not part of any fingerprint or "
                                    "record.")


class Sampling(BaseModel):
    """Sampling for one request, overriding the generator's defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(ge=0, description="0 = greedy.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    repetition_penalty: float = Field(1.0, ge=1, description="transformers/vllm: >1 discourages loops.")


class ChoiceConstraint(BaseModel):
    """An answer constrained to a closed set: the assistant's turn starts with ``prefix``, and the answer is
    whichever of ``options`` the model finds most likely to follow it (the sum of its tokens' log-probabilities).
    A local judge too small to write a rating in a fixed form is read this way: it never writes the form, it
    only ranks its continuations."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix: str = Field(description="Text the assistant's turn starts with, e.g. 'Rating: [['.")
    options: tuple[str, ...] = Field(min_length=2, description="The continuations ranked, e.g. '1]]' .. '10]]'.")


class GenerationRequest(BaseModel):
    """One prompt to answer; everything that decides the answer except the generator and the seed."""

    key: str = Field(description="Row key (the source document id).")
    prompt: str = Field(description="The user turn.")
    max_new_tokens: int = Field(description="This row's token budget.")
    history: list[dict[str, str]] = Field(default_factory=list, description="Earlier turns of the conversation, "
                                                                             "before `prompt` (multi-turn prompts).")
    sampling: Sampling | None = Field(None, description="This request's sampling; None: the generator's defaults.")
    choices: ChoiceConstraint | None = Field(None, description="Rank these continuations instead of generating "
                                                               "(local transformers models only); None: generate.")


class Generation(BaseModel):
    """One answer, with the token counts the cost estimate is made of."""

    key: str
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = Field("", description="'stop' (end of turn), 'length' (budget reached) or 'error'.")
    error: str | None = Field(None, description="Why the row failed, after retries.")
    cached: bool = Field(False, description="Served from the generation cache, not generated now.")
    choice_probabilities: dict[str, float] | None = Field(
        None, description="For a request with ``choices``: each option's probability, normalised over the options "
                          "(the text is the prefix and the most likely option); None for a generated answer.")


class Generator(Protocol):
    config: GeneratorConfig
    identity: dict[str, Any]

    def count_tokens(self, text: str) -> int: ...

    def generate(self, requests: list[GenerationRequest], seed: int,
                 on_progress: Callable[[int], None] | None = None) -> list[Generation]: ...


def token_budget(teacher: Generator, reference: str) -> int:
    """A continuation may not outgrow the original second part (times ``length_factor``)."""
    cfg = teacher.config
    return max(1, min(cfg.max_new_tokens, math.ceil(cfg.length_factor * teacher.count_tokens(reference))))


def sampling_of(config: GeneratorConfig, request: GenerationRequest) -> Sampling:
    """The request's own sampling, else the generator's defaults."""
    return request.sampling or Sampling(temperature=config.temperature, top_p=config.top_p,
                                        repetition_penalty=config.repetition_penalty)


def generator_input(config: GeneratorConfig, kind: str = "model") -> InputRef:
    """The stage input naming a generator: a local model by the content hash of its weights (so a teacher or
    judge whose weights change invalidates the stage), an endpoint by its URL and model name (all that can be
    known of it from here)."""
    if config.backend == "openai":
        return InputRef(kind=kind, id=f"{config.base_url}#{config.model}", sha256="endpoint")
    from harness.core.models import resolve_model

    return InputRef(kind=kind, id=config.model,
                    sha256=resolve_model(config.model, allow_pickle=config.allow_pickle).sha256)


def estimated_cost_usd(config: GeneratorConfig, prompt_tokens: int, completion_tokens: int) -> float:
    """Tokens times the configured prices (``price_per_1k_*``), in USD."""
    return round(prompt_tokens / 1000 * config.price_per_1k_prompt_tokens
                 + completion_tokens / 1000 * config.price_per_1k_completion_tokens, 6)


def chat_template_sha256(tokenizer: Any) -> str | None:
    """Hash of the chat template a local generator renders prompts with: it decides the text the model sees,
    and it is not in the weight files' hash."""
    from harness.core.records import sha256_bytes

    template = getattr(tokenizer, "chat_template", None)
    return sha256_bytes(str(template).encode()) if template else None


def refuse_choices(config: GeneratorConfig, requests: list[GenerationRequest]) -> None:
    """Ranking options needs the model's log-probabilities, which only a local transformers model gives here."""
    if any(r.choices for r in requests):
        raise ConfigError(f"{config.backend} backend ({config.model}): ranking fixed options (a constrained rating) "
                          "needs backend=transformers; ask this judge to write its answer instead")


def chat_messages(config: GeneratorConfig, prompt: str, history: list[dict[str, str]] = ()) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": config.system_prompt}] if config.system_prompt else []
    return messages + list(history) + [{"role": "user", "content": prompt}]


def select_device(requested: str) -> str:
    """``cuda`` when asked for or (``auto``) when torch sees a GPU, else ``cpu``; asking for a GPU that is not
    there is a configuration error, not a silent fall back to a 50x slower run."""
    import torch

    available = torch.cuda.is_available()
    if requested == "cuda" and not available:
        raise ConfigError("device=cuda, but torch sees no CUDA GPU on this machine; set device: auto or cpu")
    return "cuda" if requested == "cuda" or (requested == "auto" and available) else "cpu"


class TransformersGenerator:
    """A local model: prompts chat-templated, sorted by length and batched (left padding, positions from the
    attention mask, so a row's greedy answer does not depend on the rows it is batched with), generated with
    the KV cache on the selected device."""

    def __init__(self, config: GeneratorConfig):
        from harness.core.models import load_model
        from harness.core.threads import choose_threads, decode_shape

        self.config = config
        loaded = load_model(config.model, allow_pickle=config.allow_pickle,
                            trust_remote_code=config.trust_remote_code)
        self.device = select_device(config.device)
        self.model, self.tokenizer = loaded.model.to(self.device), loaded.tokenizer
        # Timed on this generator's own decode step (its batch through the model's MLP), not a generic shape:
        # which thread count wins flips with the product's size on a small shared CPU.
        self.threads = choose_threads("generate", config.threads,
                                      shape=decode_shape(config.batch_size, self.model.config))
        self.tokenizer.padding_side = "left"  # decoder-only batches must end at the same position
        # On the CPU the KV cache is allocated once per batch at its final length and written in place: the
        # default cache concatenates every layer's keys and values at each step, copying the whole cache, and
        # that copying was 15% of generation here (64 documents x 64 new tokens, batch 32: 165 against 140
        # tokens/s, every greedy answer identical). Not on a GPU, where a static cache makes generate() compile
        # the model (transformers' auto-compile), which has not been measured.
        self.cache_implementation = "static" if self.device == "cpu" else None
        if not self.tokenizer.chat_template:
            raise ConfigError(f"{config.model!r} has no chat template; use an instruction-tuned model")
        self.identity = {"backend": "transformers", "model": config.model, "sha256": loaded.resolved.sha256,
                         "chat_template_sha256": chat_template_sha256(self.tokenizer),
                         # the thread count, not its timings: those differ on every run, and the identity goes
                         # into every pair row (two builds of the same data would never be byte-identical)
                         "device": self.device, "threads": self.threads.threads}

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, requests: list[GenerationRequest], seed: int,
                 on_progress: Callable[[int], None] | None = None) -> list[Generation]:
        import torch

        cfg = self.config
        torch.manual_seed(seed)
        encoded = [self.tokenizer.apply_chat_template(chat_messages(cfg, r.prompt, r.history), add_generation_prompt=True,
                                                      tokenize=True, return_dict=True)["input_ids"]
                   for r in requests]
        # A ranked request's group is its constraint; a generated one's its sampling: one generate() call per
        # batch needs one sampling setting. Each group is sorted by length so a batch holds prompts of similar
        # length (less padding).
        groups = [r.choices or ("generate", sampling_of(cfg, r)) for r in requests]
        results: dict[int, Generation] = {}
        eos_ids = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        for group in dict.fromkeys(groups):
            order = sorted((i for i in range(len(requests)) if groups[i] == group), key=lambda i: len(encoded[i]))
            for begin in range(0, len(order), cfg.batch_size):
                batch = order[begin:begin + cfg.batch_size]
                if isinstance(group, ChoiceConstraint):
                    results.update(self._rank_batch(requests, encoded, batch, group))
                else:
                    results.update(self._generate_batch(requests, encoded, batch, group[1], eos_ids))
                if on_progress:
                    on_progress(len(batch))
        return [results[i] for i in range(len(requests))]

    def _rank_batch(self, requests: list[GenerationRequest], encoded: list[list[int]], batch: list[int],
                    constraint: ChoiceConstraint) -> dict[int, Generation]:
        """Each row's options scored by log-likelihood after the prefix: one forward pass over the prompts (left
        padded, positions from the mask), then each option's remaining tokens on the shared KV cache, which is
        cropped back after each option."""
        import torch

        tokenize = functools.partial(self.tokenizer, add_special_tokens=False)
        prefix = tokenize(constraint.prefix)["input_ids"]
        options = [tokenize(option)["input_ids"] for option in constraint.options]
        inputs = self.tokenizer.pad({"input_ids": [encoded[i] + prefix for i in batch]},
                                    return_tensors="pt").to(self.model.device)
        mask = inputs["attention_mask"]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        scores = torch.zeros(len(batch), len(options), dtype=torch.float64, device=self.model.device)
        with torch.inference_mode():
            out = self.model(input_ids=inputs["input_ids"], attention_mask=mask, position_ids=positions,
                             use_cache=True)
            first = torch.log_softmax(out.logits[:, -1, :].double(), dim=-1)
            # transformers 5 renamed past_key_values to cache (the old name is deprecated, not yet gone)
            name = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
            cache = getattr(out, name)
            for k, ids in enumerate(options):
                scores[:, k] = first[:, ids[0]]
                if len(ids) == 1:
                    continue
                rest = torch.tensor([ids[:-1]] * len(batch), device=self.model.device)
                step = self.model(input_ids=rest, use_cache=True, **{name: cache},
                                  attention_mask=torch.cat([mask, torch.ones_like(rest)], dim=1),
                                  position_ids=positions[:, -1:] + 1 + torch.arange(len(ids) - 1,
                                                                                    device=self.model.device))
                logp = torch.log_softmax(step.logits.double(), dim=-1)
                for t in range(1, len(ids)):
                    scores[:, k] += logp[:, t - 1, ids[t]]
                cache.crop(-(len(ids) - 1))  # a negative count removes that many tokens, in every 5.x
        scores = scores.cpu()
        probabilities = torch.softmax(scores, dim=-1)
        results = {}
        for row, index in enumerate(batch):
            best = int(torch.argmax(scores[row]))
            results[index] = Generation(
                key=requests[index].key, text=constraint.prefix + constraint.options[best],
                prompt_tokens=len(encoded[index]) + len(prefix), completion_tokens=len(options[best]),
                finish_reason="choice", choice_probabilities={
                    option: round(float(p), 6) for option, p in zip(constraint.options, probabilities[row])})
        return results

    def _generate_batch(self, requests: list[GenerationRequest], encoded: list[list[int]], batch: list[int],
                        sampling: Sampling, eos_ids: set[int]) -> dict[int, Generation]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        class PerRowBudget(StoppingCriteria):
            """Each row stops at its own budget; generate() then pads it while the others go on."""

            def __init__(self, start: int, budgets: torch.Tensor):
                self.start, self.budgets = start, budgets

            def __call__(self, input_ids, scores, **kwargs):
                return torch.full_like(self.budgets, input_ids.shape[1] - self.start) >= self.budgets

        inputs = self.tokenizer.pad({"input_ids": [encoded[i] for i in batch]}, return_tensors="pt").to(self.model.device)
        budgets = torch.tensor([requests[i].max_new_tokens for i in batch], device=self.model.device)
        width = inputs["input_ids"].shape[1]
        mode = {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p} \
            if sampling.temperature > 0 else {"do_sample": False}
        with torch.inference_mode():
            output = self._generate_with_cache(
                **inputs, max_new_tokens=int(budgets.max()), use_cache=True,
                repetition_penalty=sampling.repetition_penalty, pad_token_id=self.tokenizer.pad_token_id,
                stopping_criteria=StoppingCriteriaList([PerRowBudget(width, budgets)]), **mode)
        results = {}
        for row, index in enumerate(batch):
            new = output[row, width:].tolist()[: requests[index].max_new_tokens]
            stop = next((n for n, tok in enumerate(new) if tok in eos_ids), None)
            tokens = new if stop is None else new[:stop]
            results[index] = Generation(
                key=requests[index].key,
                text=self.tokenizer.decode(tokens, skip_special_tokens=True).strip(),
                prompt_tokens=len(encoded[index]), completion_tokens=len(tokens),
                finish_reason="length" if stop is None else "stop")
        return results

    def _generate_with_cache(self, **kwargs: Any) -> Any:
        """``model.generate`` with this generator's KV cache. A model whose static cache fails (custom modelling
        code, a cache layout transformers cannot size) generates with the default cache instead, from this batch
        on: the answers are the same either way, only slower. Running out of memory is not retried."""
        import torch

        if self.cache_implementation is None:
            return self.model.generate(**kwargs)
        try:
            return self.model.generate(**kwargs, cache_implementation=self.cache_implementation)
        except (MemoryError, torch.OutOfMemoryError):
            raise
        except Exception as exc:  # noqa: BLE001  (retried once with the default cache; its own error propagates)
            get_logger("generation").warning(
                f"{self.config.model}: generating with a {self.cache_implementation} KV cache failed "
                f"({type(exc).__name__}: {str(exc)[:200]}); using the default cache from now on")
            self.cache_implementation = None
            return self.model.generate(**kwargs)


class OpenAIGenerator:
    """Chat completions over HTTP. Failed rows come back with ``error`` set; the builder applies the policy."""

    RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})

    def __init__(self, config: GeneratorConfig):
        import httpx

        if not config.base_url:
            raise ConfigError("teacher.backend=openai needs teacher.base_url, e.g. http://localhost:8000/v1")
        self.config = config
        headers = {}
        if key := os.environ.get(config.api_key_env):
            headers["Authorization"] = f"Bearer {key}"
        self.client = httpx.Client(base_url=config.base_url.rstrip("/"), headers=headers, timeout=config.timeout_s)
        self.identity = {"backend": "openai", "model": config.model, "base_url": config.base_url,
                         "sha256": f"endpoint:{config.base_url}#{config.model}"}

    def count_tokens(self, text: str) -> int:
        # No tokenizer for a remote model: ~4/3 tokens per English word, a documented estimate.
        return math.ceil(len(text.split()) * 4 / 3)

    def _one(self, request: GenerationRequest, seed: int) -> Generation:
        import httpx

        cfg = self.config
        sampling = sampling_of(cfg, request)
        body = {"model": cfg.model, "messages": chat_messages(cfg, request.prompt, request.history),
                "max_tokens": request.max_new_tokens, "temperature": sampling.temperature, "top_p": sampling.top_p,
                "seed": seed}
        jitter = random.Random(f"{seed}:{request.key}")
        last_error = ""
        for attempt in range(cfg.max_retries + 1):
            if attempt:
                time.sleep(cfg.backoff_s * 2 ** (attempt - 1) * (1 + jitter.random() / 2))
            try:
                response = self.client.post("/chat/completions", json=body)
            except httpx.HTTPError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code in self.RETRY_STATUS:
                last_error = f"HTTP {response.status_code}: {response.text[:200]}"
                continue
            if response.status_code != 200:
                return Generation(key=request.key, finish_reason="error",
                                  error=f"HTTP {response.status_code}: {response.text[:200]}")
            try:
                payload = response.json()
                choice = payload["choices"][0]
                usage = payload.get("usage") or {}
                return Generation(key=request.key, text=(choice["message"]["content"] or "").strip(),
                                  prompt_tokens=usage.get("prompt_tokens", 0),
                                  completion_tokens=usage.get("completion_tokens", 0),
                                  finish_reason=choice.get("finish_reason") or "stop")
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                last_error = f"malformed response ({type(exc).__name__}: {exc})"
        return Generation(key=request.key, finish_reason="error",
                          error=f"failed after {cfg.max_retries + 1} attempts: {last_error}")

    def generate(self, requests: list[GenerationRequest], seed: int,
                 on_progress: Callable[[int], None] | None = None) -> list[Generation]:
        refuse_choices(self.config, requests)

        def run(request: GenerationRequest) -> Generation:
            result = self._one(request, seed)
            if on_progress:
                on_progress(1)
            return result

        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            return list(pool.map(run, requests))


class VLLMGenerator:
    def __init__(self, config: GeneratorConfig):
        try:
            from vllm import LLM
        except ImportError:
            raise ConfigError("teacher.backend=vllm needs vLLM (pip install vllm, on a GPU machine); "
                              "or use backend=transformers, or backend=openai against a vLLM server") from None
        from harness.core.models import resolve_model

        self.config = config
        resolved = resolve_model(config.model, allow_pickle=config.allow_pickle)
        self.llm = LLM(model=resolved.path, trust_remote_code=config.trust_remote_code)
        self.tokenizer = self.llm.get_tokenizer()
        self.identity = {"backend": "vllm", "model": config.model, "sha256": resolved.sha256,
                         "chat_template_sha256": chat_template_sha256(self.tokenizer)}

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, requests: list[GenerationRequest], seed: int,
                 on_progress: Callable[[int], None] | None = None) -> list[Generation]:
        from vllm import SamplingParams

        cfg = self.config
        refuse_choices(cfg, requests)
        params = [SamplingParams(max_tokens=r.max_new_tokens, seed=seed, **sampling_of(cfg, r).model_dump())
                  for r in requests]
        outputs = self.llm.chat([chat_messages(cfg, r.prompt, r.history) for r in requests], params, use_tqdm=False)
        results = []
        for request, output in zip(requests, outputs):
            completion = output.outputs[0]
            results.append(Generation(key=request.key, text=completion.text.strip(),
                                      prompt_tokens=len(output.prompt_token_ids),
                                      completion_tokens=len(completion.token_ids),
                                      finish_reason=completion.finish_reason or "stop"))
        if on_progress:
            on_progress(len(requests))
        return results


BACKENDS: dict[str, Callable[[GeneratorConfig], Generator]] = {
    "transformers": TransformersGenerator, "openai": OpenAIGenerator, "vllm": VLLMGenerator}


def make_generator(config: GeneratorConfig) -> Generator:
    return BACKENDS[config.backend](config)
