"""[speed] torch's CPU threads, set in one place for training, sampling and the benchmark.

- training the organism uses every core (:func:`training_threads`): the seed stage on all of them, the
  members as that many processes side by side, one thread each (the thread count changes a model's
  floating-point sums, so a member's weights must not depend on how many cores trained it);
  ``$GVLIB_THREADS`` overrides that, e.g. on a machine shared with other jobs, where OpenMP threads
  that wait for descheduled siblings run many times slower;
- sampling the organism's tiny models is dominated by per-operation overhead, and on busy cores a
  second thread mostly waits, so the notebooks sample on one thread (their ``cpu_threads``
  parameter, applied with :func:`torch_threads`); ``-p cpu_threads 2`` helps where the machine is
  yours alone. The README's Speed section has the measurements (``python -m gvlib.bench``).

The thread count does change the trained weights: a 24-wide and a 128-wide Llama trained a few steps on one
thread and on two differ in their last bits (``tests/test_organism.py`` keeps a member on one thread). So do
the CPU's kernels (:func:`cpu_kernels`), which a family's manifests and the committed tables record.
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


def cpu_kernels() -> str:
    """The instruction set of the CPU kernels torch runs on this machine (``AVX2``, ``AVX512``, ...:
    ``torch.backends.cpu.get_cpu_capability()``). Their floating-point sums differ from one set to another, so
    the same code and preset train other weights on another kind of CPU, and the verdicts of the organism's claim
    checks can differ with them as they do between training seeds."""
    import torch

    return torch.backends.cpu.get_cpu_capability()
