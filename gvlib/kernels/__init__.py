"""[sampler/kernels] Kernels behind gvlib's scoring: target-token log-probabilities without full float32 log-softmax.

``token_logprobs`` dispatches to the Triton kernel on CUDA tensors when Triton imports, and to the
chunked PyTorch reference otherwise (the CPU path).
"""
from __future__ import annotations

import torch

from .logprob import token_logprobs_reference

__all__ = ["token_logprobs", "token_logprobs_reference", "triton_available"]


def triton_available() -> bool:
    """Whether the Triton kernel can be imported (it needs the optional ``triton`` package)."""
    try:
        from . import triton_logprob  # noqa: F401
    except ImportError:
        return False
    return True


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, *, chunk_size: int | None = None) -> torch.Tensor:
    """float32 log softmax(logits)[..., targets] for logits (..., V) in any float dtype, targets (...) int64.

    On CUDA with Triton installed the fused kernel runs (``chunk_size`` is then unused); otherwise
    the chunked reference processes ``chunk_size`` rows at a time.
    """
    if logits.is_cuda and triton_available():
        from .triton_logprob import token_logprobs_triton

        return token_logprobs_triton(logits, targets)
    return token_logprobs_reference(logits, targets, chunk_size=chunk_size)
