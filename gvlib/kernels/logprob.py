"""[sampler/kernels] Log-probabilities of target tokens without full-vocabulary float32 log-probs (paper §3, App. E).

Scoring (the MC verifier's log P("Correct"), a candidate's likelihood, SFT losses) needs
log softmax(logits)[target] per position. ``log_softmax(logits.float()).gather(...)`` materialises a
float32 copy of the whole (positions × vocabulary) tensor — 0.6 GB for 1,000 positions of a 152k
vocabulary — to read one entry per row. Here rows are processed in chunks: each chunk is upcast on
its own, its log-sum-exp taken (max, then a cascade sum of exponentials: within 1e-5 of float64 at
152k entries, where ``log_softmax``'s own float32 sum is not) and only the target entries kept, so
the extra memory is about two chunks (the upcast copy and its exponentials), whatever the number
of rows.
This is the plain PyTorch reference of the Triton kernel in ``triton_logprob`` and the CPU path.
"""
from __future__ import annotations

import torch

# Rows per chunk when not given: about 2**20 float32 entries (4 MiB) per chunk.
CHUNK_ELEMENTS = 1 << 20


def flatten_inputs(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Check shapes, dtypes and target range; return (rows, vocab) logits and (rows,) int64 targets."""
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got {logits.dtype}")
    if targets.dtype != torch.long:
        raise TypeError(f"targets must be int64, got {targets.dtype}")
    if logits.dim() < 1 or logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"logits (..., V) and targets (...) disagree: logits {tuple(logits.shape)}, targets {tuple(targets.shape)}"
        )
    if targets.device != logits.device:
        raise ValueError(f"targets on {targets.device} but logits on {logits.device}")
    vocab = logits.shape[-1]
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= vocab):
        raise ValueError(
            f"targets must lie in [0, {vocab}); got min {int(targets.min())}, max {int(targets.max())}"
        )
    return logits.reshape(-1, vocab), targets.reshape(-1)


def token_logprobs_reference(
    logits: torch.Tensor, targets: torch.Tensor, *, chunk_size: int | None = None
) -> torch.Tensor:
    """float32 log softmax(logits)[..., targets] computed ``chunk_size`` rows at a time.

    ``logits`` is (..., V) in any float dtype, ``targets`` (...) int64; the result has ``targets``'
    shape. ``chunk_size`` defaults to the number of rows in about 4 MiB of float32.
    """
    flat, flat_targets = flatten_inputs(logits, targets)
    rows, vocab = flat.shape
    if chunk_size is None:
        chunk_size = max(1, CHUNK_ELEMENTS // max(vocab, 1))
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    out = torch.empty(rows, dtype=torch.float32, device=flat.device)
    for start in range(0, rows, chunk_size):
        chunk = flat[start:start + chunk_size].float()
        top = chunk.amax(dim=-1, keepdim=True)
        log_sum = (chunk - top).exp_().sum(dim=-1, keepdim=True).log_()
        picked = chunk.gather(-1, flat_targets[start:start + chunk_size, None])
        out[start:start + chunk_size] = (picked - top - log_sum).squeeze(-1)
    return out.view(targets.shape)
