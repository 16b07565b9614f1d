"""Teachers write the assistant turn: the continuation of a document's first part.

Three backends behind one interface, :class:`Teacher.generate`:

* :class:`TransformersTeacher`: a local model; prompts are chat-templated, sorted by length, batched with
  left padding and generated with the KV cache; each row stops at its own token budget.
* :class:`OpenAITeacher`: any OpenAI-compatible ``/chat/completions`` endpoint (vLLM or llama.cpp servers,
  hosted APIs), with bounded concurrency, retries with exponential backoff, and per-row failure.
* :class:`VLLMTeacher`: vLLM's offline engine, when ``vllm`` is installed.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from pydantic import BaseModel, Field

from ..errors import ConfigError
from .config import TeacherConfig


class GenerationRequest(BaseModel):
    key: str = Field(description="Row key (the source document id).")
    prompt: str = Field(description="The user turn.")
    max_new_tokens: int = Field(description="This row's token budget.")
    history: list[dict[str, str]] = Field(default_factory=list, description="Earlier turns of the conversation, "
                                                                             "before `prompt` (multi-turn prompts).")


class Generation(BaseModel):
    key: str
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = Field("", description="'stop' (end of turn), 'length' (budget reached) or 'error'.")
    error: str | None = Field(None, description="Why the row failed, after retries.")


class Teacher(Protocol):
    config: TeacherConfig
    identity: dict[str, Any]

    def count_tokens(self, text: str) -> int: ...

    def generate(self, requests: list[GenerationRequest], seed: int,
                 on_progress: Callable[[int], None] | None = None) -> list[Generation]: ...


def token_budget(teacher: Teacher, reference: str) -> int:
    """A continuation may not outgrow the original second part (times ``length_factor``)."""
    cfg = teacher.config
    return max(1, min(cfg.max_new_tokens, math.ceil(cfg.length_factor * teacher.count_tokens(reference))))


def chat_messages(config: TeacherConfig, prompt: str, history: list[dict[str, str]] = ()) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": config.system_prompt}] if config.system_prompt else []
    return messages + list(history) + [{"role": "user", "content": prompt}]


class TransformersTeacher:
    def __init__(self, config: TeacherConfig):
        from ..models import load_model
        from ..threads import choose_threads

        self.config = config
        self.threads = choose_threads("generate", config.threads)
        loaded = load_model(config.model, allow_pickle=config.allow_pickle,
                            trust_remote_code=config.trust_remote_code)
        self.model, self.tokenizer = loaded.model, loaded.tokenizer
        self.tokenizer.padding_side = "left"  # decoder-only batches must end at the same position
        if not self.tokenizer.chat_template:
            raise ConfigError(f"teacher {config.model!r} has no chat template; use an instruction-tuned teacher")
        self.identity = {"backend": "transformers", "model": config.model, "sha256": loaded.resolved.sha256,
                         "threads": self.threads.model_dump()}

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, requests: list[GenerationRequest], seed: int,
                 on_progress: Callable[[int], None] | None = None) -> list[Generation]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        class PerRowBudget(StoppingCriteria):
            """Each row stops at its own budget; generate() then pads it while the others go on."""

            def __init__(self, start: int, budgets: torch.Tensor):
                self.start, self.budgets = start, budgets

            def __call__(self, input_ids, scores, **kwargs):
                return torch.full_like(self.budgets, input_ids.shape[1] - self.start) >= self.budgets

        cfg = self.config
        torch.manual_seed(seed)
        encoded = [self.tokenizer.apply_chat_template(chat_messages(cfg, r.prompt, r.history), add_generation_prompt=True,
                                                      tokenize=True, return_dict=True)["input_ids"]
                   for r in requests]
        order = sorted(range(len(requests)), key=lambda i: len(encoded[i]))  # less padding per batch
        results: dict[int, Generation] = {}
        eos_ids = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        for begin in range(0, len(order), cfg.batch_size):
            batch = order[begin:begin + cfg.batch_size]
            inputs = self.tokenizer.pad({"input_ids": [encoded[i] for i in batch]}, return_tensors="pt")
            budgets = torch.tensor([requests[i].max_new_tokens for i in batch])
            width = inputs["input_ids"].shape[1]
            sampling = {"do_sample": True, "temperature": cfg.temperature, "top_p": cfg.top_p} \
                if cfg.temperature > 0 else {"do_sample": False}
            with torch.inference_mode():
                output = self.model.generate(
                    **inputs, max_new_tokens=int(budgets.max()), use_cache=True,
                    repetition_penalty=cfg.repetition_penalty, pad_token_id=self.tokenizer.pad_token_id,
                    stopping_criteria=StoppingCriteriaList([PerRowBudget(width, budgets)]), **sampling)
            for row, index in enumerate(batch):
                new = output[row, width:].tolist()[: requests[index].max_new_tokens]
                stop = next((n for n, tok in enumerate(new) if tok in eos_ids), None)
                tokens = new if stop is None else new[:stop]
                results[index] = Generation(
                    key=requests[index].key,
                    text=self.tokenizer.decode(tokens, skip_special_tokens=True).strip(),
                    prompt_tokens=len(encoded[index]), completion_tokens=len(tokens),
                    finish_reason="length" if stop is None else "stop")
            if on_progress:
                on_progress(len(batch))
        return [results[i] for i in range(len(requests))]


class OpenAITeacher:
    """Chat completions over HTTP. Failed rows come back with ``error`` set; the builder applies the policy."""

    RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}

    def __init__(self, config: TeacherConfig):
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
        body = {"model": cfg.model, "messages": chat_messages(cfg, request.prompt, request.history),
                "max_tokens": request.max_new_tokens, "temperature": cfg.temperature, "top_p": cfg.top_p,
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
        def run(request: GenerationRequest) -> Generation:
            result = self._one(request, seed)
            if on_progress:
                on_progress(1)
            return result

        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            return list(pool.map(run, requests))


class VLLMTeacher:
    def __init__(self, config: TeacherConfig):
        try:
            from vllm import LLM
        except ImportError:
            raise ConfigError("teacher.backend=vllm needs vLLM (pip install vllm, on a GPU machine); "
                              "or use backend=transformers, or backend=openai against a vLLM server") from None
        from ..models import resolve_model

        self.config = config
        resolved = resolve_model(config.model, allow_pickle=config.allow_pickle)
        self.llm = LLM(model=resolved.path, trust_remote_code=config.trust_remote_code)
        self.tokenizer = self.llm.get_tokenizer()
        self.identity = {"backend": "vllm", "model": config.model, "sha256": resolved.sha256}

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, requests: list[GenerationRequest], seed: int,
                 on_progress: Callable[[int], None] | None = None) -> list[Generation]:
        from vllm import SamplingParams

        cfg = self.config
        params = [SamplingParams(max_tokens=r.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                                 repetition_penalty=cfg.repetition_penalty, seed=seed) for r in requests]
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


BACKENDS: dict[str, Callable[[TeacherConfig], Teacher]] = {
    "transformers": TransformersTeacher, "openai": OpenAITeacher, "vllm": VLLMTeacher}


def make_teacher(config: TeacherConfig) -> Teacher:
    return BACKENDS[config.backend](config)
