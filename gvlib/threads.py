"""torch's CPU threads, set in one place for training, sampling and the benchmark.

Measured on this project's 2-core machines (AMD EPYC, torch 2.13):

- training the default family's largest member (0.85M parameters, 16 × 256-token batches) takes
  531 ms a step on one thread and 280–350 ms on two idle cores, so training uses every core
  (:func:`training_threads`); ``$GVLIB_THREADS`` overrides that, e.g. on a machine shared with
  other jobs, where OpenMP threads that wait for descheduled siblings ran ~10× slower;
- sampling the organism's tiny models is dominated by per-operation overhead: a 128-wide 4-layer
  Llama sampled 64 × 40 tokens in 0.64 s on one thread and 6–18 s on two threads while other
  processes used the cores, so the notebooks sample on one thread (their ``cpu_threads`` parameter,
  applied with :func:`torch_threads`). On two idle cores, two threads are faster at the book's
  512-row batches (m5's CoT-Score verification call, with the sampler of 29 November 2026, before
  samples that agree shared their work: 4.65 s instead of 7.2 s; generation: 0.74 s instead of
  1.06 s): ``-p cpu_threads 2`` where the machine is yours alone.

The thread count never changes the trained weights (tiny preset, 1 vs 2 threads: bit-identical).
"""
from __future__ import annotations

import os
from contextlib import contextmanager

ENV = "GVLIB_THREADS"


def training_threads() -> int:
    """Threads for training: ``$GVLIB_THREADS`` if set, else every core."""
    value = os.environ.get(ENV, "").strip()
    if not value:
        return os.cpu_count() or 1
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"${ENV}={value!r}: expected a positive whole number of threads")
    return int(value)


@contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` torch CPU threads (None: leave them as they are), then restore them."""
    import torch

    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"threads must be a positive int or None, got {n!r}")
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
