"""[sampler/kernels] Triton kernel for target-token log-probabilities (the GPU path of ``gvlib.kernels.token_logprobs``).

One program per row streams the vocabulary in blocks, keeping a running maximum and a running sum
of exponentials (online log-sum-exp, Milakov & Gimelshein 2018), upcasting each block to float32 in
registers; it writes one float32 per row. Nothing of size (rows × vocabulary) is allocated beyond
the input. ``logprob.token_logprobs_reference`` is the plain PyTorch reference; tests compare the two
under ``TRITON_INTERPRET=1`` on the CPU.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .logprob import flatten_inputs


@triton.jit
def _token_logprob_kernel(logits_ptr, targets_ptr, out_ptr, row_stride, vocab, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    base = logits_ptr + row.to(tl.int64) * row_stride
    offsets = tl.arange(0, BLOCK)
    running_max = tl.full((), float("-inf"), tl.float32)
    running_sum = tl.full((), 0.0, tl.float32)
    for start in range(0, vocab, BLOCK):
        cols = start + offsets
        x = tl.load(base + cols, mask=cols < vocab, other=float("-inf")).to(tl.float32)
        new_max = tl.maximum(running_max, tl.max(x, axis=0))
        running_sum = running_sum * tl.exp(running_max - new_max) + tl.sum(tl.exp(x - new_max), axis=0)
        running_max = new_max
    target = tl.load(targets_ptr + row)
    picked = tl.load(base + target).to(tl.float32)
    tl.store(out_ptr + row, picked - (running_max + tl.log(running_sum)))


def token_logprobs_triton(logits: torch.Tensor, targets: torch.Tensor, *, block: int = 4096) -> torch.Tensor:
    """float32 log softmax(logits)[..., targets], one Triton program per row (see module docstring)."""
    flat, flat_targets = flatten_inputs(logits, targets)
    if flat.stride(-1) != 1:
        flat = flat.contiguous()
    rows, vocab = flat.shape
    out = torch.empty(rows, dtype=torch.float32, device=flat.device)
    if rows:
        block = min(block, triton.next_power_of_2(vocab))
        _token_logprob_kernel[(rows,)](flat, flat_targets.contiguous(), out, flat.stride(0), vocab, BLOCK=block)
    return out.view(targets.shape)
