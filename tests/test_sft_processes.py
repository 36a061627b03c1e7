"""Data-parallel LoRA SFT (gvlib.finetune.train_adapter with processes > 1): two torchrun processes on the CPU
(gloo, accelerate's DDP), each taking half of every minibatch, train the adapter one process trains.

Starting two processes takes tens of seconds on a busy CPU, so the test is marked slow (``make test``
leaves it out): ``make test ARGS="-m slow tests/test_sft_processes.py"``."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from gvlib.finetune import LoraSettings, sft_processes, train_adapter
from test_iterative import save_tiny_model

PAIRS = [("q 1 2 =", "3"), ("q 0 1 =", "1"), ("q 2 =", "2 3"), ("q 3 3 =", "2"), ("q 1 =", "")] * 2


def adapter_weights(path) -> dict[str, torch.Tensor]:
    return load_file(path / "adapter_model.safetensors")


@pytest.mark.slow
def test_two_processes_train_the_adapter_one_process_trains(tmp_path):
    base = save_tiny_model(tmp_path / "f0")
    settings = LoraSettings(rank=4, alpha=8, lr=2e-2, steps=4, batch_size=4)
    one = train_adapter(base, PAIRS, tmp_path / "one", settings, seed=3, device="cpu", processes=1)
    # two micro-batches of one sequence per process: the no-sync accumulation path too
    split = LoraSettings(rank=4, alpha=8, lr=2e-2, steps=4, batch_size=4, micro_batch_size=1)
    two = train_adapter(base, PAIRS, tmp_path / "two", split, seed=3, device="cpu", processes=2)
    assert (one["processes"], two["processes"]) == (1, 2)
    assert two["first_loss"] == pytest.approx(one["first_loss"], abs=1e-5)
    assert two["final_loss"] == pytest.approx(one["final_loss"], abs=1e-4)
    a, b = adapter_weights(tmp_path / "one"), adapter_weights(tmp_path / "two")
    assert a.keys() == b.keys() and a
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=1e-4)
    # the adapter changed: 4 steps at lr 2e-2 move the LoRA B matrices off their zero init
    assert max(float(v.abs().max()) for k, v in a.items() if "lora_B" in k) > 1e-3


def test_process_count_divides_the_minibatch(tmp_path):
    assert sft_processes(64, 8) == 8 and sft_processes(64, 6) == 4 and sft_processes(6, 4) == 3
    assert sft_processes(16, 0) == 1
    with pytest.raises(ValueError, match="processes=3 must be a positive divisor"):
        train_adapter("unused", PAIRS, tmp_path / "a", LoraSettings(batch_size=4), processes=3)
    with pytest.raises(ValueError, match="processes=0"):
        train_adapter("unused", PAIRS, tmp_path / "a", LoraSettings(batch_size=4), processes=0)
