"""CPU thread count chosen by measurement, not assumed.

On the shared 2-core VMs this project was built on, torch with 2 threads made decode-sized matrix products
~13x slower than with 1 ((8x576)@(576x1536): 16 ms vs 1.2 ms; an lm-eval run took 108 s with 2 threads and
9.8 s with 1), while large products gain from 2. So each stage times a
product of the shape its work is made of, at each candidate thread count, and keeps the fastest. The
choice and the timings go into the stage record.
"""

from __future__ import annotations

import os
import time

from pydantic import BaseModel, Field

#: (m, k, n) of a representative product: a decode step at batch 8 for a 576-wide model, and a
#: training micro-batch of ~1k tokens through the same layer. A caller that knows its own product (the local
#: generator: its batch size times the model's MLP) passes ``shape`` instead.
WORKLOAD_SHAPES = {"generate": (8, 576, 1536), "train": (1024, 576, 1536)}


def decode_shape(batch_size: int, model_config) -> tuple[int, int, int]:
    """The MLP product of one decode step: ``batch_size`` rows through the model's up projection (the largest
    product per layer); falls back to the 576-wide default for a config without those fields."""
    hidden = getattr(model_config, "hidden_size", None) or WORKLOAD_SHAPES["generate"][1]
    inner = getattr(model_config, "intermediate_size", None) or 4 * hidden
    return (batch_size, hidden, inner)


class ThreadChoice(BaseModel):
    threads: int = Field(description="torch intra-op threads used by the stage.")
    how: str = Field(description="'requested', 'env' (OMP_NUM_THREADS) or 'measured'.")
    workload: str = Field(description="The product shape the choice was measured on.")
    ms_per_matmul: dict[str, float] = Field(default_factory=dict, description="Median ms per product, by threads.")


def _time_matmul(shape: tuple[int, int, int], threads: int, repeats: int) -> float:
    import torch

    torch.set_num_threads(threads)
    m, k, n = shape
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(3):
        a @ b
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return samples[len(samples) // 2]


def choose_threads(workload: str = "generate", requested: int | None = None, repeats: int = 15,
                   shape: tuple[int, int, int] | None = None) -> ThreadChoice:
    """Set torch's thread count for ``workload`` (timed on ``shape``, default ``WORKLOAD_SHAPES[workload]``) and
    return what was chosen and why."""
    import torch

    if requested:
        torch.set_num_threads(requested)
        return ThreadChoice(threads=requested, how="requested", workload=workload)
    if os.environ.get("OMP_NUM_THREADS"):
        threads = int(os.environ["OMP_NUM_THREADS"])
        torch.set_num_threads(threads)
        return ThreadChoice(threads=threads, how="env", workload=workload)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    candidates = sorted({1, cpus})
    product = shape or WORKLOAD_SHAPES[workload]
    timings = {str(t): round(_time_matmul(product, t, repeats), 3) for t in candidates}
    best = int(min(timings, key=timings.get))
    torch.set_num_threads(best)
    return ThreadChoice(threads=best, how="measured", workload=f"{workload} {product[0]}x{product[1]}x{product[2]}",
                        ms_per_matmul=timings)
