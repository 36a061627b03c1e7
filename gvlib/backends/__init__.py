"""[backends] Backends: sample and score behind one interface (the book's intro, "Two scales, one code path").

``load_backend(model)`` gives a :class:`~gvlib.backends.base.Backend` for a Hugging Face id or a
local directory: vLLM on a CUDA machine where it is installed (the paper's engine), otherwise
`transformers` on the CPU or GPU. Nothing downstream depends on which one it picked.
"""
from __future__ import annotations

import importlib.util
from importlib import metadata

from gvlib.names import BACKENDS

from .base import Backend, Completion, SamplingParams
from .resolve import ModelNotFoundError

__all__ = ["Backend", "Completion", "SamplingParams", "ModelNotFoundError", "BackendUnavailableError",
           "load_backend", "options_for", "vllm_available"]


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run on this machine."""


def _cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()


def _vllm_cpu_build() -> bool:
    """Whether the installed vLLM is its CPU build (the ``vllm-cpu`` distribution, ``make test-vllm``)."""
    try:
        metadata.version("vllm-cpu")
    except metadata.PackageNotFoundError:
        return False
    return True


def vllm_available(*, cpu_build: bool = False) -> str | None:
    """``None`` when vLLM can run here, else the reason it cannot.

    ``cpu_build``: a CPU build of vLLM counts too (asked for by name, never picked by "auto").
    """
    if importlib.util.find_spec("vllm") is None:
        return "the vllm package is not installed (it is the GPU extra: pip install -r requirements-gpu.txt)"
    if not _cuda_available() and not (cpu_build and _vllm_cpu_build()):
        return "no CUDA GPU is available (torch.cuda.is_available() is False)"
    return None


def options_for(model: str, options: dict | None) -> dict:
    """The backend options of ``model``: ``options["*"]`` for every model, updated by ``options[model]``.

    E.g. ``{"*": {"gpu_memory_utilization": 0.9}, "Qwen/Qwen2-72B": {"tensor_parallel_size": 4}}``.
    """
    options = options or {}
    bad = [k for k, v in options.items() if not isinstance(v, dict)]
    if bad:
        raise ValueError(f"backend_options maps '*' or a model to a dict of options; {bad} do not")
    return {**options.get("*", {}), **options.get(model, {})}


def load_backend(model: str, *, backend: str = "auto", device: str | None = None,
                 dtype: str | None = None, **kw) -> Backend:
    """A loaded backend for ``model`` (a Hugging Face id or a local directory).

    backend  "auto" (vLLM when importable and CUDA is available and no device is named, else
             transformers), "transformers" or "vllm"
    device   transformers only: "cpu", "cuda", "cuda:1" … (default: CUDA when available)
    dtype    e.g. "bfloat16", "float32" (default: bfloat16 on GPU, float32 on CPU)
    kw       ``chunk_size`` (problems per engine call and cache entry, see :func:`chunk_size`), the rest
             passed to the backend (HFBackend: batch_size, score_batch_size; VLLMBackend:
             tensor_parallel_size, pipeline_parallel_size, distributed_executor_backend, …)
    """
    cls = backend_class(backend, device=device)
    chunk = chunk_size(cls, kw.pop("chunk_size", None))
    loaded = cls(model, dtype=dtype, **kw) if cls.name == "vllm" else cls.from_pretrained(
        model, device=device, dtype=dtype, **kw)
    loaded.chunk_size = chunk
    return loaded


def chunk_size(cls: type[Backend], option: int | None = None) -> int:
    """Problems per engine call and cache entry: the ``chunk_size`` backend option, else the class's."""
    if option is None:
        return cls.chunk_size
    if not isinstance(option, int) or isinstance(option, bool) or option < 1:
        raise ValueError(f"backend option chunk_size must be a positive integer, got {option!r}")
    return option


def backend_class(backend: str = "auto", *, device: str | None = None) -> type[Backend]:
    """The class :func:`load_backend` loads for ``backend`` and ``device`` here, before any model loads
    (its ``chunk_size`` is how :mod:`gvlib.engine` chunks the prompts)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    why_not = vllm_available(cpu_build=backend == "vllm")
    if backend == "vllm" and why_not:
        raise BackendUnavailableError(
            f"backend='vllm' cannot run here: {why_not}. Use backend='transformers' "
            "(CPU or GPU) or backend='auto', which picks transformers on this machine.")
    if backend == "vllm" or (backend == "auto" and why_not is None and device is None):
        if device is not None:
            raise ValueError("device= applies to the transformers backend only; vLLM places the "
                             "model itself (use tensor_parallel_size / pipeline_parallel_size)")
        from .vllm import VLLMBackend
        return VLLMBackend
    from .hf import HFBackend
    return HFBackend
