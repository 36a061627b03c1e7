"""token_logprobs: the chunked reference against float64 log_softmax, and the Triton kernel against both.

The Triton tests run the kernel on the CPU through Triton's interpreter (``TRITON_INTERPRET=1``);
they skip when the optional ``triton`` package is absent (it is in requirements-gpu.txt).
"""
from __future__ import annotations

import importlib
import os
import sys

import pytest
import torch

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


@pytest.fixture(scope="module")
def triton_kernel():
    """The Triton kernel with the interpreter on, so it runs on CPU tensors.

    ``TRITON_INTERPRET`` is read when Triton's own functions are decorated, i.e. when ``triton`` is
    first imported, so it must be set before that import.
    """
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("triton was imported before TRITON_INTERPRET=1 was set; run this file on its own")
    os.environ["TRITON_INTERPRET"] = "1"
    pytest.importorskip("triton", reason="triton is an optional GPU dependency (requirements-gpu.txt)")
    import gvlib.kernels.triton_logprob as module

    return importlib.reload(module).token_logprobs_triton


@pytest.mark.parametrize("shape,vocab,dtype,block", [
    ((7,), 100, torch.float32, 32),        # several blocks, a ragged last one
    ((2, 3), 1000, torch.float16, 256),
    ((4,), 5000, torch.bfloat16, 4096),
    ((2,), 152_064, torch.bfloat16, 4096),  # a Qwen-sized vocabulary, few rows
    ((3,), 152_064, torch.float32, 4096),
])
def test_triton_kernel_matches_reference(triton_kernel, shape, vocab, dtype, block):
    logits, targets = case(shape, vocab, dtype)
    got = triton_kernel(logits, targets, block=block)
    assert got.dtype == torch.float32 and got.shape == targets.shape
    torch.testing.assert_close(got, token_logprobs_reference(logits, targets), atol=1e-5, rtol=0)
    torch.testing.assert_close(got.double(), exact(logits, targets), atol=1e-5, rtol=0)


def test_triton_kernel_reads_strided_rows(triton_kernel):
    logits, targets = case((5,), 300, torch.float32)
    wide = torch.cat([logits, torch.full((5, 9), 50.0)], dim=-1)[:, :300]  # the padding must not be read
    torch.testing.assert_close(triton_kernel(wide, targets, block=128), token_logprobs_reference(logits, targets),
                               atol=1e-5, rtol=0)
