"""Backends: sample and score behind one interface (the book's intro, "Two scales, one code path").

``load_backend(model)`` gives a :class:`~gvlib.backends.base.Backend` for a Hugging Face id or a
local directory: vLLM on a CUDA machine where it is installed (the paper's engine), otherwise
`transformers` on the CPU or GPU. Nothing downstream depends on which one it picked.
"""
from __future__ import annotations

import importlib.util

from .base import Backend, Completion, SamplingParams
from .resolve import ModelNotFoundError

__all__ = ["Backend", "Completion", "SamplingParams", "ModelNotFoundError", "BackendUnavailableError",
           "load_backend", "vllm_available"]

BACKENDS = ("auto", "transformers", "vllm")


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run on this machine."""


def _cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()


def vllm_available() -> str | None:
    """``None`` when vLLM can run here, else the reason it cannot."""
    if importlib.util.find_spec("vllm") is None:
        return "the vllm package is not installed (it is the GPU extra: pip install -r requirements-gpu.txt)"
    if not _cuda_available():
        return "no CUDA GPU is available (torch.cuda.is_available() is False)"
    return None


def load_backend(model: str, *, backend: str = "auto", device: str | None = None,
                 dtype: str | None = None, **kw) -> Backend:
    """A loaded backend for ``model`` (a Hugging Face id or a local directory).

    backend  "auto" (vLLM when importable and CUDA is available and no device is named, else
             transformers), "transformers" or "vllm"
    device   transformers only: "cpu", "cuda", "cuda:1" … (default: CUDA when available)
    dtype    e.g. "bfloat16", "float32" (default: bfloat16 on GPU, float32 on CPU)
    kw       passed to the backend (HFBackend: batch_size, score_batch_size; VLLMBackend:
             tensor_parallel_size, pipeline_parallel_size, distributed_executor_backend, …)
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    why_not = vllm_available()
    if backend == "vllm" and why_not:
        raise BackendUnavailableError(
            f"backend='vllm' cannot run here: {why_not}. Use backend='transformers' "
            "(CPU or GPU) or backend='auto', which picks transformers on this machine.")
    if backend == "vllm" or (backend == "auto" and why_not is None and device is None):
        if device is not None:
            raise ValueError("device= applies to the transformers backend only; vLLM places the "
                             "model itself (use tensor_parallel_size / pipeline_parallel_size)")
        from .vllm import VLLMBackend
        return VLLMBackend(model, dtype=dtype, **kw)
    from .hf import HFBackend
    return HFBackend.from_pretrained(model, device=device, dtype=dtype, **kw)
