"""token_logprobs: the chunked reference against float64 log_softmax, and the Triton kernel against both.

The Triton tests run the kernel on the CPU through Triton's interpreter (``TRITON_INTERPRET=1``, in
a child process); they skip when the optional ``triton`` package is absent (requirements-gpu.txt).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gvlib.bench import Sweep, bench_scorer
from gvlib.kernels import token_logprobs, token_logprobs_reference


def exact(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.double(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def case(shape, vocab, dtype, seed=0, scale=4.0):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(*shape, vocab, generator=g) * scale).to(dtype)
    targets = torch.randint(0, vocab, shape, generator=g)
    return logits, targets


@pytest.mark.parametrize("chunk_size", [None, 1, 3, 1000])
@pytest.mark.parametrize("shape,vocab", [((7,), 100), ((2, 5), 3001), ((3,), 152_064), ((1,), 1)])
def test_reference_matches_float64_log_softmax(shape, vocab, chunk_size):
    logits, targets = case(shape, vocab, torch.float32)
    got = token_logprobs_reference(logits, targets, chunk_size=chunk_size)
    assert got.dtype == torch.float32 and got.shape == targets.shape
    torch.testing.assert_close(got.double(), exact(logits, targets), atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_reference_upcasts_other_dtypes(dtype):
    logits, targets = case((4, 3), 2000, dtype)
    got = token_logprobs_reference(logits, targets, chunk_size=5)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), exact(logits, targets), atol=1e-5, rtol=0)


def test_reference_handles_non_contiguous_and_extreme_logits():
    logits, targets = case((6,), 50, torch.float32)
    wide = torch.cat([logits, torch.zeros(6, 7)], dim=-1)[:, :50]  # row stride 57
    torch.testing.assert_close(token_logprobs_reference(wide, targets).double(), exact(logits, targets),
                               atol=1e-5, rtol=0)
    big = torch.tensor([[1e4, 0.0, -1e4], [-float("inf"), 0.0, 0.0]])
    got = token_logprobs_reference(big, torch.tensor([0, 1]))
    torch.testing.assert_close(got, torch.tensor([0.0, -0.693147182]), atol=1e-6, rtol=0)


def test_dispatcher_uses_the_reference_on_cpu():
    logits, targets = case((5,), 300, torch.bfloat16)
    assert torch.equal(token_logprobs(logits, targets, chunk_size=2), token_logprobs_reference(logits, targets))


def test_bad_inputs_are_named():
    logits = torch.zeros(2, 5)
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 5\)"):
        token_logprobs(logits, torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 5\)"):
        token_logprobs(logits, torch.tensor([-1, 0]))
    with pytest.raises(TypeError, match="targets must be int64"):
        token_logprobs(logits, torch.tensor([0, 1], dtype=torch.int32))
    with pytest.raises(TypeError, match="logits must be a floating-point"):
        token_logprobs(torch.zeros(2, 5, dtype=torch.long), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="disagree"):
        token_logprobs(logits, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="chunk_size"):
        token_logprobs(logits, torch.tensor([0, 1]), chunk_size=0)


TRITON_CASES = [  # (shape, vocab, dtype, block, row padding)
    ((7,), 100, "float32", 32, 0),         # several blocks, a ragged last one
    ((2, 3), 1000, "float16", 256, 0),
    ((4,), 5000, "bfloat16", 4096, 0),
    ((2,), 152_064, "bfloat16", 4096, 0),  # a Qwen-sized vocabulary, few rows
    ((3,), 152_064, "float32", 4096, 0),
    ((5,), 300, "float32", 128, 9),        # strided rows: 9 padding columns of 50.0 must not be read
]

# TRITON_INTERPRET is read when triton is first imported, and transformers imports triton when it
# is installed, so the kernel runs in a child process whose environment sets it from the start.
_TRITON_SCRIPT = r"""
import sys, torch
sys.path.insert(0, sys.argv[2])
from test_kernels import TRITON_CASES, case
from gvlib.kernels.triton_logprob import token_logprobs_triton
results = []
for shape, vocab, dtype, block, pad in TRITON_CASES:
    logits, targets = case(shape, vocab, getattr(torch, dtype))
    if pad:
        logits = torch.cat([logits, torch.full((*shape, pad), 50.0, dtype=logits.dtype)], dim=-1)[..., :vocab]
    results.append(token_logprobs_triton(logits, targets, block=block))
torch.save(results, sys.argv[1])
"""


def test_bench_scorer_agrees_and_holds_less_memory_at_152k():
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("peak-RSS measurement needs Linux /proc/self/clear_refs")
    grid = Sweep(sizes=(), workloads=(), rows=(), vocab=1, score_rows=64, repeats=1)
    rows = bench_scorer(grid, torch.device("cpu"))
    assert {(r["vocab"], r["dtype"]) for r in rows} == {(v, d) for v in (32_000, 152_064) for d in ("float32", "bfloat16")}
    # The fused scorer is held to float64; float32 log_softmax's own error at 152k is ~1e-5 on some CPUs.
    assert all(r["fused_err"] < 1e-5 for r in rows)
    for r in rows:
        if r["vocab"] == 152_064:  # naive: at least the float32 log-softmax, 37 MiB; fused: a few chunks
            assert r["naive_peak_mib"] > 30 and r["naive_peak_mib"] >= 4 * r["fused_peak_mib"]


@pytest.fixture(scope="module")
def triton_outputs(tmp_path_factory):
    """The Triton kernel's output for each of TRITON_CASES, run on the CPU by Triton's interpreter."""
    pytest.importorskip("triton", reason="triton not installed (make test installs it from requirements-test.txt)")
    out = tmp_path_factory.mktemp("triton") / "out.pt"
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", _TRITON_SCRIPT, str(out), str(Path(__file__).parent)],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out)


@pytest.mark.parametrize("index", range(len(TRITON_CASES)))
def test_triton_kernel_matches_reference(triton_outputs, index):
    shape, vocab, dtype, _, _ = TRITON_CASES[index]
    logits, targets = case(shape, vocab, getattr(torch, dtype))
    got = triton_outputs[index]
    assert got.dtype == torch.float32 and got.shape == targets.shape
    torch.testing.assert_close(got, token_logprobs_reference(logits, targets), atol=1e-5, rtol=0)
    torch.testing.assert_close(got.double(), exact(logits, targets), atol=1e-5, rtol=0)
