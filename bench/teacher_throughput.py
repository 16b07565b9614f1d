"""Teacher throughput: nift-gate's local generator vs a naive per-document pipeline loop, and how close either
gets to what this CPU's matrix products allow.

Same embedded documents (cut as the builder cuts them), same model, same max_new_tokens, greedy decoding and
the same thread count, measured in one run in ABBA order (naive, nift-gate, nift-gate, naive) so a drift in the
machine's load falls on both. Also prints the compute ceiling: the measured GFLOP/s of a torch matmul of the
decode-step shape (batch x hidden x intermediate) and of the prefill shape, times the model's FLOPs per token
(2 x parameters + attention over the context), as tokens/s, and the share of it each method reached. The
target is >= 10x, with identical greedy outputs.

    .venv/bin/python bench/teacher_throughput.py [--docs 64] [--max-new-tokens 64] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import pipeline

from harness.core.generation import (
    GenerationRequest,
    GeneratorConfig,
    TransformersGenerator,
    chat_messages,
)
from harness.data.config import CorpusConfig, CutConfig
from harness.data.corpus import load_corpus
from harness.data.cut import cut_document


def matmul_gflops(m: int, k: int, n: int, device: str, seconds: float = 1.0) -> float:
    """Best-of-five GFLOP/s of (m x k) @ (k x n) float32 on ``device`` at torch's current thread count."""
    a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)
    flops = 2 * m * k * n
    reps = max(3, int(seconds * 20e9 / flops / 5))
    best = float("inf")
    for _ in range(6):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - start) / reps)
    return flops / best / 1e9


def flops_per_token(model, context: float, logits: bool = True) -> float:
    """2 x the weights a token is multiplied by (one multiply-add each) plus attention: q.k and a.v over
    ``context`` positions in every layer. The input embedding is a lookup, not a product. The output projection
    counts for a generated token; a prompt token is scored by none (``logits=False``): generate() asks the
    prefill for the last position's logits only (``logits_to_keep=1``)."""
    config = model.config
    embedding, projection = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    tied = embedding.data_ptr() == projection.data_ptr()
    body = sum(p.numel() for p in model.parameters()) - embedding.numel() - (0 if tied else projection.numel())
    weights = body + (projection.numel() if logits else 0)
    heads_width = config.num_attention_heads * getattr(config, "head_dim", config.hidden_size // config.num_attention_heads)
    return 2 * weights + 4 * config.num_hidden_layers * context * heads_width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    args = parser.parse_args()

    documents = load_corpus(CorpusConfig())[: args.docs]
    prompts = [cut_document(d.doc_id, d.text, CutConfig(), seed=0).prompt for d in documents]
    config = GeneratorConfig(model=args.model, max_new_tokens=args.max_new_tokens, temperature=0.0,
                             repetition_penalty=1.0, batch_size=args.batch_size)
    teacher = TransformersGenerator(config)  # picks the device, and the thread count by measurement
    threads = teacher.threads
    requests = [GenerationRequest(key=str(i), prompt=p, max_new_tokens=args.max_new_tokens)
                for i, p in enumerate(prompts)]
    naive_pipe = pipeline("text-generation", model=teacher.model, tokenizer=teacher.tokenizer,
                          device=teacher.model.device)

    def naive() -> tuple[list[str], int]:
        texts, tokens = [], 0
        for prompt in prompts:
            out = naive_pipe(chat_messages(config, prompt), max_new_tokens=args.max_new_tokens, do_sample=False,
                             return_full_text=False)
            texts.append(out[0]["generated_text"].strip())
            tokens += len(teacher.tokenizer(out[0]["generated_text"], add_special_tokens=False)["input_ids"])
        return texts, tokens

    def nift() -> tuple[list[str], int]:
        generations = teacher.generate(requests, seed=0)
        return [g.text for g in generations], sum(g.completion_tokens for g in generations)

    seconds = {"naive": 0.0, "nift": 0.0}
    tokens = {"naive": 0, "nift": 0}
    texts: dict[str, list[list[str]]] = {"naive": [], "nift": []}
    for name in ("naive", "nift", "nift", "naive"):  # ABBA
        run = naive if name == "naive" else nift
        start = time.perf_counter()
        out, count = run()
        seconds[name] += time.perf_counter() - start
        tokens[name] += count
        texts[name].append(out)
    rate = {name: tokens[name] / seconds[name] for name in seconds}
    differing = sum(a != b for a, b in zip(texts["naive"][0], texts["nift"][0]))
    unstable = texts["naive"][0] != texts["naive"][1] or texts["nift"][0] != texts["nift"][1]

    # The ceiling, at the thread count both methods ran with.
    cfg = teacher.model.config
    prompt_tokens = [len(teacher.tokenizer.apply_chat_template(chat_messages(config, p), add_generation_prompt=True,
                                                                tokenize=True, return_dict=True)["input_ids"])
                     for p in prompts]
    mean_prompt = sum(prompt_tokens) / len(prompt_tokens)
    generated_per_doc = tokens["nift"] / 2 / len(prompts)
    device = teacher.device
    decode_gflops = matmul_gflops(min(args.batch_size, len(prompts)), cfg.hidden_size, cfg.intermediate_size, device)
    prefill_gflops = matmul_gflops(min(2048, int(mean_prompt) * min(args.batch_size, len(prompts))),
                                   cfg.hidden_size, cfg.intermediate_size, device)
    decode_flops = flops_per_token(teacher.model, mean_prompt + generated_per_doc / 2)
    prefill_flops = flops_per_token(teacher.model, mean_prompt / 2, logits=False)
    decode_ceiling = decode_gflops * 1e9 / decode_flops
    # Generated tokens/s if every prompt token and every generated token ran at its matmul's measured speed.
    workload_ceiling = generated_per_doc / (mean_prompt * prefill_flops / (prefill_gflops * 1e9)
                                            + generated_per_doc * decode_flops / (decode_gflops * 1e9))

    print(f"\nteacher throughput, {len(prompts)} documents (mean prompt {mean_prompt:.0f} tokens), max_new_tokens="
          f"{args.max_new_tokens}, greedy, ABBA, device={device}, threads={threads.threads} ({threads.how} on "
          f"{threads.workload}: {threads.ms_per_matmul} ms/matmul), model={args.model}\n")
    print("| method | generated tokens (2 runs) | seconds (2 runs) | tokens/s | share of workload ceiling |")
    print("|---|---:|---:|---:|---:|")
    print(f"| naive pipeline('text-generation') loop, batch 1 | {tokens['naive']} | {seconds['naive']:.1f} | "
          f"{rate['naive']:.1f} | {rate['naive'] / workload_ceiling:.0%} |")
    cache = teacher.cache_implementation or "dynamic"
    print(f"| nift-gate generator, batch {args.batch_size}, length-sorted, {cache} KV cache | {tokens['nift']} | "
          f"{seconds['nift']:.1f} | {rate['nift']:.1f} | {rate['nift'] / workload_ceiling:.0%} |")
    print(f"\nratio (nift-gate / naive tokens/s): {rate['nift'] / rate['naive']:.2f}x  (target >= 10x)")
    print(f"greedy outputs: {len(prompts) - differing}/{len(prompts)} identical to the naive loop"
          f"{'; NOT stable between the two runs of a method' if unstable else ''}")
    print(f"\ncompute ceiling: matmul {decode_gflops:.1f} GFLOP/s at the decode shape ({min(args.batch_size, len(prompts))}"
          f"x{cfg.hidden_size}x{cfg.intermediate_size}), {prefill_gflops:.1f} GFLOP/s at the prefill shape; "
          f"{decode_flops / 1e6:.0f} MFLOP per generated token (2 x parameters + attention), "
          f"{prefill_flops / 1e6:.0f} per prompt token (no output projection)")
    print(f"  decode-only ceiling: {decode_ceiling:.0f} tokens/s; this workload's ceiling (prefill of "
          f"{mean_prompt:.0f} prompt tokens per {generated_per_doc:.0f} generated included): {workload_ceiling:.0f} "
          f"generated tokens/s")


if __name__ == "__main__":
    main()
