"""Teacher throughput: nift-gate's batched builder vs a naive per-document pipeline loop.

Same 64 embedded documents (cut as the builder cuts them), same model, same max_new_tokens, same
greedy decoding and thread count, measured in one run. Prints a table; the target is >= 4x.

    .venv/bin/python bench/teacher_throughput.py [--docs 64] [--max-new-tokens 64] [--batch-size 16]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    args = parser.parse_args()

    documents = load_corpus(CorpusConfig())[: args.docs]
    prompts = [cut_document(d.doc_id, d.text, CutConfig(), seed=0).prompt for d in documents]
    config = GeneratorConfig(model=args.model, max_new_tokens=args.max_new_tokens, temperature=0.0,
                           repetition_penalty=1.0, batch_size=args.batch_size)
    teacher = TransformersGenerator(config)  # picks the thread count by measurement
    threads = teacher.threads
    requests = [GenerationRequest(key=str(i), prompt=p, max_new_tokens=args.max_new_tokens) for i, p in enumerate(prompts)]

    start = time.perf_counter()
    batched = teacher.generate(requests, seed=0)
    batched_s = time.perf_counter() - start
    batched_tokens = sum(g.completion_tokens for g in batched)

    generator = pipeline("text-generation", model=teacher.model, tokenizer=teacher.tokenizer)
    generator.tokenizer.padding_side = "left"
    torch.set_num_threads(threads.threads)
    naive_tokens = 0
    start = time.perf_counter()
    for prompt in prompts:
        out = generator(chat_messages(config, prompt), max_new_tokens=args.max_new_tokens, do_sample=False,
                        return_full_text=False)
        naive_tokens += len(teacher.tokenizer(out[0]["generated_text"], add_special_tokens=False)["input_ids"])
    naive_s = time.perf_counter() - start

    batched_rate, naive_rate = batched_tokens / batched_s, naive_tokens / naive_s
    print(f"\nteacher throughput, {len(prompts)} documents, max_new_tokens={args.max_new_tokens}, greedy, "
          f"threads={threads.threads} ({threads.how}: {threads.ms_per_matmul} ms/matmul), model={args.model}\n")
    print("| method | generated tokens | seconds | tokens/s |")
    print("|---|---:|---:|---:|")
    print(f"| naive pipeline('text-generation') loop, batch 1 | {naive_tokens} | {naive_s:.1f} | {naive_rate:.1f} |")
    print(f"| nift-gate batched builder, batch {args.batch_size}, length-sorted | {batched_tokens} | {batched_s:.1f} | "
          f"{batched_rate:.1f} |")
    print(f"\nratio (batched / naive tokens/s): {batched_rate / naive_rate:.2f}x  (target >= 4x)")


if __name__ == "__main__":
    main()
