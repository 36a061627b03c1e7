"""The real vLLM (its CPU build: ``make test-vllm``) against the transformers backend on one tiny organism model.

The model is an organism-shaped Llama (the organism's word tokenizer and tasks) with random weights and
a head size of 32, which vLLM's CPU attention supports (it rejects the organism's 12 and 16); its weights
are drawn wide enough (std 0.3) that next-token distributions have a few likely tokens, so temperature
and top-p matter. Both backends load the same directory in float32.
"""
from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.vllm

if os.environ.get("GVLIB_REQUIRE_VLLM"):
    import vllm  # noqa: F401  (make test-vllm: a missing vLLM is a failure, not a skip)
else:
    pytest.importorskip("vllm", reason="the vLLM tests run in make test-vllm")

from gvlib import engine, verifiers  # noqa: E402
from gvlib.backends import SamplingParams, load_backend  # noqa: E402
from gvlib.backends.vllm import VLLMBackend  # noqa: E402
from gvlib.organism.tasks import load_task  # noqa: E402
from gvlib.organism.tokenizer import build_tokenizer  # noqa: E402
from gvlib.organism.world import WorldConfig  # noqa: E402
from test_sampler import _same_distribution_pvalue  # noqa: E402

SAMPLES = 3000
STAT_PROMPTS = ["sudoku problem: 1 2 _ 4", "arith problem: 3 + 4"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_tokenizer(WorldConfig())
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                      initializer_range=0.3, tie_word_embeddings=False, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    path = tmp_path_factory.mktemp("vllm") / "tiny"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def hf(model_dir):
    return load_backend(str(model_dir), backend="transformers", dtype="float32")


@pytest.fixture(scope="module")
def vl(model_dir):
    return VLLMBackend(str(model_dir), dtype="float32", max_model_len=512, enforce_eager=True)


@pytest.fixture(scope="module")
def task():
    t = load_task("organism/sudoku")
    t.examples = t.examples[:6]
    return t


def test_engine_identity_in_the_cache_key(vl):
    import vllm
    assert vl.sampling_key() == {"vllm": vllm.__version__, "dtype": "torch.float32",
                                 "tensor_parallel_size": 1, "pipeline_parallel_size": 1}


def test_mc_scores_equal_transformers(hf, vl, task):
    cands = [[task.gold_completion(e), "1 2 3 4 1 2 3 4 1 2 3 4 1 2 3 4"] for e in task.examples]
    a = verifiers.verify_mc(hf, task, task.examples, cands)
    b = verifiers.verify_mc(vl, task, task.examples, cands)
    np.testing.assert_allclose(b.scores, a.scores, atol=1e-3)
    np.testing.assert_allclose(np.array(b.raw), np.array(a.raw), atol=1e-3)
    prompts = [task.verifier_prompt("mc", e, c) for e, cs in zip(task.examples, cands) for c in cs]
    multi = ["Correct", "solution: 1 2 3 4"]  # a multi-token continuation too
    np.testing.assert_allclose(vl.logprob_continuations(prompts, multi), hf.logprob_continuations(prompts, multi),
                               atol=1e-3)


def _texts(groups):
    return [Counter(g) for g in groups]


def test_samples_follow_the_transformers_distribution(hf, vl):
    params = SamplingParams(n=SAMPLES, temperature=0.7, top_p=0.9, max_new_tokens=2, seed=1)
    ours, theirs = _texts(vl.sample(STAT_PROMPTS, params)), _texts(hf.sample(STAT_PROMPTS, params))
    for mine, ref in zip(ours, theirs):
        assert max(ref.values()) / SAMPLES > 0.05  # the distribution is peaked enough to test
        assert _same_distribution_pvalue(mine, ref) > 1e-3
    hot = _texts(vl.sample(STAT_PROMPTS, SamplingParams(n=SAMPLES, temperature=1.0, top_p=1.0, max_new_tokens=2,
                                                        seed=1)))
    assert min(_same_distribution_pvalue(h, ref) for h, ref in zip(hot, theirs)) < 1e-6  # the test can fail


def test_seeded_sampling_is_reproducible(vl):
    params = SamplingParams(n=4, max_new_tokens=6, temperature=1.0, seed=3)
    first = vl.sample(STAT_PROMPTS, params)
    assert first == vl.sample(STAT_PROMPTS, params) and [len(g) for g in first] == [4, 4]
    assert first != vl.sample(STAT_PROMPTS, SamplingParams(n=4, max_new_tokens=6, temperature=1.0, seed=4))


def test_cot_verification_and_a_tournament_round(hf, vl, task):
    gens = {b.name: engine.generate(b, task, n=4, max_new_tokens=24, seed=0, cache=None) for b in (hf, vl)}
    assert gens["vllm"].u.shape == gens["transformers"].u.shape == (len(task.examples), 4)
    for method, rounds in (("cot_binary", None), ("tournament", 1)):
        out = {name: engine.verify(b, task, gens[name], method, rounds=rounds, max_new_tokens=16, cache=None)
               for name, b in (("transformers", hf), ("vllm", vl))}
        for v in out.values():
            assert v.scores.shape == (len(task.examples), 4)
        assert out["vllm"].n_outputs == out["transformers"].n_outputs
        again = engine.verify(vl, task, gens["vllm"], method, rounds=rounds, max_new_tokens=16, cache=None)
        assert again.raw == out["vllm"].raw  # seeded per request: the same verdicts again
    assert out["vllm"].survivors.shape == (2, len(task.examples), 4)
    assert (out["vllm"].survivors[1].sum(1) == 2).all()  # one round halves every problem's candidates


def test_lora_ranks_are_the_installed_vllms():
    import typing

    from vllm.config.lora import MaxLoRARanks

    from gvlib.backends.vllm import VLLM_LORA_RANKS
    assert tuple(typing.get_args(MaxLoRARanks)) == VLLM_LORA_RANKS


def test_a_rank_4_adapter_serves_like_the_merged_model(model_dir, task, tmp_path):
    """f_1 of the iterative loop: base + a rank-4 LoRA (vLLM's max_lora_rank rounded up to 8) = the merged model."""
    from peft import LoraConfig, get_peft_model

    from gvlib.backends.hf import HFBackend
    from gvlib.finetune import load_adapted
    from gvlib.iterate import ModelRef, open_backend

    base, tok = load_adapted(str(model_dir), None)
    torch.manual_seed(0)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                                                 init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    merged, _ = load_adapted(str(model_dir), tmp_path / "adapter")
    hf_f1 = HFBackend(merged, tok, fingerprint="f1")
    ref = ModelRef(base=str(model_dir), adapter=str(tmp_path / "adapter"), name="f1", lora_id=1)
    vl_f1 = open_backend(ref, "vllm", lora_rank=4,
                         options={"dtype": "float32", "max_model_len": 512, "enforce_eager": True})
    prompts = [task.verifier_prompt("mc", e, task.gold_completion(e)) for e in task.examples]
    want = hf_f1.logprob_continuations(prompts, ["Correct", "Incorrect"])
    np.testing.assert_allclose(vl_f1.logprob_continuations(prompts, ["Correct", "Incorrect"]), want, atol=1e-3)
    base_hf = load_backend(str(model_dir), backend="transformers", dtype="float32")
    assert np.abs(base_hf.logprob_continuations(prompts, ["Correct", "Incorrect"]) - want).max() > 1e-2  # LoRA matters
