"""gvlib.plan: model sizes from architectures, and every paper/smoke preset fitting the GPUs it is sized for."""
from __future__ import annotations

from pathlib import Path

import pytest
from transformers import Qwen2Config, Qwen2ForCausalLM

from gvlib import plan
from tiny_model import DATA

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("scaling", "cross_verification", "unimprovable", "iterative", "verification")
PRESETS = {notebook: sorted(p.stem for p in (ROOT / "notebooks" / "params" / notebook).glob("*.yaml")
                            if p.stem in ("paper", "smoke")) for notebook in NOTEBOOKS}
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA}")


def test_parameter_count_is_the_models_own():
    arch = plan.Arch(hidden=64, layers=3, heads=4, kv_heads=2, mlp=96, vocab=500, tied=False)
    cfg = Qwen2Config(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=96, vocab_size=500, tie_word_embeddings=False)
    model = Qwen2ForCausalLM(cfg)
    matrices = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2)  # no norms or biases
    assert arch.params == matrices
    assert plan.Arch(*plan.ARCHITECTURES["Qwen/Qwen1.5-72B"]).params / 1e9 == pytest.approx(72.3, abs=0.1)
    assert plan.Arch(*plan.ARCHITECTURES["Qwen/Qwen2-7B"]).params / 1e9 == pytest.approx(7.6, abs=0.05)


@needs_data
@pytest.mark.parametrize("gpu", ["h100-80gb", "h200-141gb"])
@pytest.mark.parametrize("notebook, preset", [(nb, p) for nb in NOTEBOOKS for p in PRESETS[nb]])
def test_every_paper_preset_fits(notebook, preset, gpu):
    params = plan.notebook_params(ROOT / "notebooks" / f"{notebook}.ipynb",
                                  ROOT / "notebooks" / "params" / notebook / f"{preset}.yaml", [])
    r = plan.plan(notebook, params, gpu=gpu, data_dir=str(DATA))
    assert r["fits"], plan.format_plan(r)
    assert all(m["group_resident"] for m in r["models"].values()), plan.format_plan(r)
    assert r["gpu_hours"] > 0 and r["disk_gb"] > 2 * sum(m["params_b"] for m in r["models"].values())


@needs_data
def test_a_72b_model_on_one_gpu_does_not_fit(capsys):
    args = [str(ROOT / "notebooks" / "scaling.ipynb"), "-f", str(ROOT / "notebooks/params/scaling/smoke.yaml"),
            "-p", "models", "[Qwen/Qwen1.5-72B]", "-p", "methods", "[mc]", "--data-dir", str(DATA)]
    assert plan.main(args + ["-p", "backend_options", "{Qwen/Qwen1.5-72B: {tensor_parallel_size: 1}}"]) == 1
    assert "SOMETHING DOES NOT FIT" in capsys.readouterr().out
    assert plan.main(args + ["-p", "backend_options", "{}", "--json"]) == 0  # unset: the plan picks a size that fits
    import json
    assert json.loads(capsys.readouterr().out)["models"]["Qwen/Qwen1.5-72B"]["tp"] == 4  # 145 GB of bf16 weights


@needs_data
def test_cross_verification_charges_every_verifier_for_every_generator():
    params = plan.notebook_params(ROOT / "notebooks" / "cross_verification.ipynb",
                                  ROOT / "notebooks" / "params" / "cross_verification" / "smoke.yaml", [])
    todo, _ = plan.calls("cross_verification", params, str(DATA), 512)
    k = len(params["models"])
    assert sum(c.what.startswith("generate") for c in todo) == k
    assert sum(c.what.startswith("verify") for c in todo) == k * k * len(params["methods"])


def test_sft_spreads_over_data_parallel_gpus_until_it_fits():
    """The per-GPU SFT memory of gvlib.finetune's DDP: activations shrink with the processes, weights do not."""
    a = plan.Arch(*plan.ARCHITECTURES["Qwen/Qwen1.5-7B"])
    s = {"batch": 64, "seq": 1024, "rank": 64}
    one, two, eight = (plan.sft_memory_gb(a, s, k) for k in (1, 2, 8))
    assert one > two > eight > 2 * a.params / 1e9
    assert one - two == pytest.approx((one - plan.sft_memory_gb(a, {**s, "batch": 0})) / 2, rel=0.05)
    assert plan.sft_gpus(a, s, 141) == (1, one)  # fits one H200
    k, mem = plan.sft_gpus(a, s, 40)
    assert k > 1 and 64 % k == 0 and mem <= plan.MEMORY_FRACTION * 40 < plan.sft_memory_gb(a, s, k // 2)
    big = plan.Arch(*plan.ARCHITECTURES["Qwen/Qwen1.5-72B"])  # 145 GB of weights on every GPU: never fits 80 GB
    assert plan.sft_gpus(big, s, 80)[0] == 8 and plan.sft_gpus(big, s, 80)[1] > 80
