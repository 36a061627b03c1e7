"""Backends: loading, fingerprints, seeded sampling, stop strings, scoring, vLLM mapping, clear errors."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

import gvlib.backends as backends
from gvlib.backends import BackendUnavailableError, ModelNotFoundError, SamplingParams, load_backend
from gvlib.backends.resolve import fingerprint
from gvlib.backends.text import continuation_ids, truncate_at_stop
from tiny_model import save_tiny

PROMPTS = ["Problem: 1+1\nSolution:", "Q: who?\nA:", "Judge:"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def backend(model_dir):
    return load_backend(str(model_dir), backend="transformers", batch_size=2)


@pytest.fixture(scope="module", params=["bytelevel", "metaspace"])
def styled(request, tmp_path_factory):
    """A backend with a GPT-2-like ("Ġword") or a Llama-like ("▁word") tokenizer."""
    path = save_tiny(tmp_path_factory.mktemp(request.param), style=request.param)
    return load_backend(str(path), backend="transformers", batch_size=2)


def test_auto_picks_transformers_without_vllm(model_dir):
    b = load_backend(str(model_dir))
    assert b.name == "transformers" and b.device.type == "cpu"


def test_fingerprint_is_stable_and_tracks_the_weights(model_dir, tmp_path):
    assert fingerprint(model_dir) == fingerprint(model_dir) == load_backend(str(model_dir)).fingerprint
    other = save_tiny(tmp_path / "other", seed=1)
    assert fingerprint(other) != fingerprint(model_dir)


def test_fingerprint_of_models_kept_under_a_cache_folder(model_dir, tmp_path):
    import shutil
    a = shutil.copytree(model_dir, tmp_path / ".cache" / "models" / "a")
    b = save_tiny(tmp_path / ".cache" / "models" / "b", seed=1)
    assert fingerprint(a) == fingerprint(model_dir) != fingerprint(b)
    (a / ".cache").mkdir()  # a download cache inside the model folder does not count
    (a / ".cache" / "lock").write_text("x")
    assert fingerprint(a) == fingerprint(model_dir)


def test_sampling_is_deterministic_under_a_seed(backend):
    params = SamplingParams(n=2, max_new_tokens=8, seed=5)
    first = backend.sample(PROMPTS, params)
    assert first == backend.sample(PROMPTS, params)
    assert [len(c) for c in first] == [2, 2, 2]
    assert first != backend.sample(PROMPTS, SamplingParams(n=2, max_new_tokens=8, seed=6))


def test_more_samples_than_the_batch_holds(model_dir):
    b = load_backend(str(model_dir), batch_size=2)  # n = 5 samples come in parts of at most 2 rows
    params = SamplingParams(n=5, max_new_tokens=6, temperature=1.0, seed=0)
    out = b.sample(PROMPTS[:2], params)
    assert [len(c) for c in out] == [5, 5] and out == b.sample(PROMPTS[:2], params)
    assert len(set(out[0])) > 2  # the parts are drawn under different seeds


def test_completions_say_whether_they_hit_the_token_limit(backend):
    """hit_limit: the budget ran out (no EOS, no stop string), the case where a verdict is cut short."""
    params = SamplingParams(n=2, max_new_tokens=10, temperature=1.0, seed=0)
    free = backend.sample_completions(PROMPTS, params)
    assert [[c.text for c in cs] for cs in free] == backend.sample(PROMPTS, params)
    flat = [c for cs in free for c in cs]
    assert any(c.hit_limit for c in flat)  # a random model rarely writes EOS within 10 tokens
    assert all(c.hit_limit or len(backend.tokenize(c.text, False)) < 10 for c in flat)
    stop = next(c.text[3:5] for c in flat if c.hit_limit and len(c.text) >= 5)
    cut = backend.sample_completions(PROMPTS, SamplingParams(n=2, max_new_tokens=10, temperature=1.0, seed=0,
                                                              stop=(stop,)))
    for before, after in zip(flat, [c for cs in cut for c in cs]):
        if stop in before.text:
            assert not after.hit_limit and stop not in after.text  # ended at the stop string, not the budget
    longer = backend.sample_completions(PROMPTS, SamplingParams(n=2, max_new_tokens=400, temperature=1.0, seed=0,
                                                                 stop=(stop,)))
    assert not any(c.hit_limit for cs in longer for c in cs if stop in c.text)


def test_stop_strings_truncate_the_text(styled):
    backend = styled
    free = backend.sample(PROMPTS, SamplingParams(n=2, max_new_tokens=10, temperature=1.0, seed=0))
    # a stop string that the unconstrained samples contain: every cut sample is a prefix without it
    stop = next(s[3:5] for cs in free for s in cs if len(s) >= 5)
    cut = backend.sample(PROMPTS, SamplingParams(n=2, max_new_tokens=10, temperature=1.0, seed=0, stop=(stop,)))
    for cs in cut:
        for s in cs:
            assert stop not in s
    assert truncate_at_stop("a Q: b Q: c", ["Q:"]) == "a "
    assert truncate_at_stop("abc", ["x", ""]) == "abc"


def test_eos_ends_a_sample(model_dir):
    b = load_backend(str(model_dir))
    with torch.no_grad():  # make EOS (id 2) the only likely token
        b.model.lm_head.weight.zero_()
        b.model.lm_head.weight[2] = 50.0 * b.model.model.norm.weight.sign()
    assert b._sample_ids([[5, 6, 7]], SamplingParams(n=2, max_new_tokens=8), batch_seed=0) == [[[], []]]


def test_logprob_continuations_match_the_logits_by_hand(styled):
    backend = styled
    got = backend.logprob_continuations(PROMPTS, ["Correct", "Incorrect", "The answer is 42"])
    assert got.shape == (3, 3)
    tok = backend.tokenizer
    for i, prompt in enumerate(PROMPTS):
        for j, cont in enumerate(["Correct", "Incorrect", "The answer is 42"]):
            ctx = tok(prompt).input_ids
            full = tok(prompt + " " + cont).input_ids
            assert full[:len(ctx)] == ctx
            with torch.no_grad():
                logp = torch.log_softmax(backend.model(torch.tensor([full])).logits[0].float(), -1)
            want = sum(float(logp[k - 1, full[k]]) for k in range(len(ctx), len(full)))
            assert got[i, j] == pytest.approx(want, abs=1e-4)


def test_continuation_ids_leading_space():
    vocab = {"Judge:": 1, " Correct": 2, "Correct": 3}

    def encode(text, special):  # a toy tokenizer: splits before spaces
        import re
        return [vocab[w] for w in re.findall(r" ?\S+", text)]
    assert continuation_ids(encode, "Judge:", "Correct") == ([1], [2])
    assert continuation_ids(encode, "Judge:", " Correct") == ([1], [2])
    with pytest.raises(ValueError, match="empty continuation"):
        continuation_ids(encode, "Judge:", "")
    with pytest.raises(ValueError, match="empty prompt"):
        continuation_ids(encode, "", "Correct")


def test_vllm_without_vllm_is_a_clear_error(model_dir, monkeypatch):
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BackendUnavailableError, match="not installed.*backend='transformers'"):
        load_backend(str(model_dir), backend="vllm")


def test_vllm_without_cuda_is_a_clear_error(model_dir, monkeypatch):
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(backends, "_cuda_available", lambda: False)
    with pytest.raises(BackendUnavailableError, match="no CUDA GPU"):
        load_backend(str(model_dir), backend="vllm")


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend must be one of"):
        load_backend("x", backend="jax")


def test_missing_model_offline_names_the_id_and_the_fix(monkeypatch, tmp_path):
    import huggingface_hub.constants
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelNotFoundError, match=r"'gvlib-test/no-such-model'.*HF_HUB_OFFLINE.*local directory"):
        load_backend("gvlib-test/no-such-model", backend="transformers")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_backend(str(tmp_path / "nowhere" / "model"), backend="transformers")


def _fake_hub_cache(home, repo_id, files):
    """A Hugging Face cache holding ``files`` as the snapshot of ``repo_id`` (as a download leaves it)."""
    repo = home / "hub" / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    for f in files:
        (snap / f.name).write_bytes(f.read_bytes())
    return snap


def test_hub_id_loads_offline_from_the_cache(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    _fake_hub_cache(tmp_path, "gvlib-test/tiny", sorted(model_dir.iterdir()))
    b = load_backend("gvlib-test/tiny", backend="transformers")
    assert b.model_id == "gvlib-test/tiny" and b.fingerprint == fingerprint(model_dir)
    _fake_hub_cache(tmp_path, "gvlib-test/config-only", [model_dir / "config.json"])
    with pytest.raises(ModelNotFoundError, match="'gvlib-test/config-only'.*no weight files"):
        load_backend("gvlib-test/config-only", backend="transformers")


class _FakeLLM:
    """Records its arguments; answers like vllm.LLM (log P(token t at position i) = -(i + t / 1000))."""

    def __init__(self, hf_tokenizer, **kw):
        self.kw, self.calls, self._tok = kw, [], hf_tokenizer
        self.model_config = types.SimpleNamespace(dtype=kw.get("dtype", "float32"))

    def get_tokenizer(self):
        return self._tok

    def generate(self, prompts, params, use_tqdm=True, **kw):
        self.calls.append((prompts, params))
        self.lora_requests = getattr(self, "lora_requests", []) + [kw.get("lora_request")]
        if isinstance(prompts[0], str):  # sampling: one SamplingParams per prompt
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=self._tok(f"{p}|{k} Q: tail").input_ids,
                                                                         finish_reason="length" if k else "stop")
                                                   for k in range(sp.n)]) for p, sp in zip(prompts, params)]
        outs = []  # scoring: the asked tokens' log-probs only
        for r, sp in zip(prompts, params):
            seq = r["prompt_token_ids"]
            last = {t: types.SimpleNamespace(logprob=-(len(seq) + t / 1000)) for t in sp.logprob_token_ids}
            outs.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(logprobs=[last])]))
        return outs


@pytest.fixture
def fake_vllm(monkeypatch):
    """A stand-in ``vllm`` module (``_FakeLLM``) on a machine that seems to have CUDA."""
    from tiny_model import tiny_tokenizer
    tok = tiny_tokenizer()
    fake = types.ModuleType("vllm")
    fake.SamplingParams = lambda **kw: types.SimpleNamespace(**kw)
    fake.__version__ = "0.0-fake"
    fake.LLM = lambda **kw: _FakeLLM(tok, **kw)
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(backends, "_cuda_available", lambda: True)
    return fake


def test_vllm_cpu_build_runs_only_when_asked_for(model_dir, fake_vllm, monkeypatch):
    monkeypatch.setattr(backends, "_cuda_available", lambda: False)
    monkeypatch.setattr(backends, "_vllm_cpu_build", lambda: True)
    assert load_backend(str(model_dir)).name == "transformers"  # auto: vLLM only on a GPU
    assert load_backend(str(model_dir), backend="vllm").name == "vllm"
    monkeypatch.setattr(backends, "_vllm_cpu_build", lambda: False)
    with pytest.raises(BackendUnavailableError, match="no CUDA GPU"):
        load_backend(str(model_dir), backend="vllm")


def test_vllm_backend_maps_arguments(model_dir, fake_vllm):
    b = load_backend(str(model_dir), dtype="bfloat16", tensor_parallel_size=4, pipeline_parallel_size=2,
                     distributed_executor_backend="ray")
    assert b.name == "vllm" and b.fingerprint == fingerprint(model_dir)
    kw = b.llm.kw
    assert kw["model"] == str(model_dir) and kw["tensor_parallel_size"] == 4 and kw["pipeline_parallel_size"] == 2
    assert kw["distributed_executor_backend"] == "ray" and kw["enable_prefix_caching"] is True
    assert kw["dtype"] == "bfloat16" and "gpu_memory_utilization" not in kw and "max_model_len" not in kw
    assert b.sampling_key() == {"vllm": "0.0-fake", "dtype": "bfloat16", "tensor_parallel_size": 4,
                                "pipeline_parallel_size": 2}
    sized = load_backend(str(model_dir), gpu_memory_utilization=0.8, max_model_len=4096)
    assert sized.llm.kw["gpu_memory_utilization"] == 0.8 and sized.llm.kw["max_model_len"] == 4096

    out = b.sample(["a", "b"], SamplingParams(n=2, temperature=0.5, top_p=0.8, max_new_tokens=7, stop=("Q:",), seed=3))
    assert out == [["a|0 ", "a|1 "], ["b|0 ", "b|1 "]]
    sps = b.llm.calls[-1][1]
    assert [(s.n, s.temperature, s.top_p, s.max_tokens, s.stop) for s in sps] == [(2, 0.5, 0.8, 7, ["Q:"])] * 2
    marked = b.sample_completions(["a"], SamplingParams(n=2, max_new_tokens=7, stop=("Q:",)))
    assert [(c.text, c.hit_limit) for c in marked[0]] == [("a|0 ", False), ("a|1 ", True)]  # finish_reason "length"
    assert sps[0].seed != sps[1].seed  # seeded per prompt
    assert b.sample(["a"], SamplingParams(n=1, seed=3)) == b.sample(["a"], SamplingParams(n=1, seed=3))
    b.sample(["a", "b", "a"], SamplingParams(n=1, seed=3))
    seeds = [sp.seed for sp in b.llm.calls[-1][1]]
    assert seeds[0] == sps[0].seed and len(set(seeds)) == 3  # a repeated prompt gets its own seed

    conts = ["Correct", "Incorrect", "The answer is 42"]
    scores = b.logprob_continuations(["Judge:", "Q: who?\nA:"], conts)
    requests, sps = b.llm.calls[-1]
    for sp in sps:  # only the asked tokens, never full-vocabulary (prompt) log-probs
        assert sp.max_tokens == 1 and getattr(sp, "prompt_logprobs", None) is None
    for i, prompt in enumerate(["Judge:", "Q: who?\nA:"]):
        for j, cont in enumerate(conts):
            ctx, cids = continuation_ids(b.tokenize, prompt, cont)
            assert all({"prompt_token_ids": ctx + cids[:k]} in requests for k in range(len(cids)))
            want = sum(-(k + t / 1000) for k, t in enumerate(ctx + cids) if k >= len(ctx))
            assert scores[i, j] == pytest.approx(want)
    singles = {tuple(continuation_ids(b.tokenize, p, c)[0]) for p in ["Judge:", "Q: who?\nA:"] for c in conts
               if len(continuation_ids(b.tokenize, p, c)[1]) == 1}
    assert len(requests) == len({tuple(r["prompt_token_ids"]) for r in requests})  # one per distinct input
    assert singles and all({"prompt_token_ids": list(s)} in requests for s in singles)  # verdicts share a request
    assert np.all(scores < 0)


def test_small_models_sample_in_wide_batches(model_dir):
    from gvlib.backends.hf import SMALL_MODEL_BATCH_ROWS

    b = load_backend(str(model_dir), backend="transformers")
    assert b.batch_size == SMALL_MODEL_BATCH_ROWS
    assert b.sampling_key() == {"batch_size": SMALL_MODEL_BATCH_ROWS, "dtype": "torch.float32"}


def test_vllm_max_lora_rank_is_one_vllm_accepts():
    from gvlib.backends.vllm import VLLM_LORA_RANKS, vllm_max_lora_rank

    assert [vllm_max_lora_rank(r) for r in (1, 4, 8, 12, 64, 300)] == [1, 8, 8, 16, 64, 320]
    assert all(vllm_max_lora_rank(r) in VLLM_LORA_RANKS for r in range(1, 513))
    for bad in (0, 513):
        with pytest.raises(ValueError, match="cannot be served by vLLM"):
            vllm_max_lora_rank(bad)


def test_iterative_vllm_stage_rounds_the_lora_rank_and_passes_options(model_dir, fake_vllm, monkeypatch, tmp_path):
    from gvlib import iterate

    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = lambda *args: ("LoRARequest",) + args
    monkeypatch.setitem(sys.modules, "vllm.lora", types.ModuleType("vllm.lora"))
    monkeypatch.setitem(sys.modules, "vllm.lora.request", request)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    ref = iterate.ModelRef(base=str(model_dir), adapter=str(adapter), name="f1", lora_id=1)
    b = iterate.open_backend(ref, "vllm", lora_rank=12, options={"tensor_parallel_size": 4})
    kw = b.llm.kw
    assert kw["enable_lora"] and kw["max_lora_rank"] == 16 and kw["tensor_parallel_size"] == 4
    fixed = iterate.open_backend(iterate.ModelRef(base=str(model_dir)), "vllm", options={"tensor_parallel_size": 8})
    assert fixed.llm.kw["tensor_parallel_size"] == 8 and "enable_lora" not in fixed.llm.kw
    # f1 is the base model with the round's adapter: its own id and cache fingerprint, the adapter on every call
    assert b.model_id == f"{model_dir}+f1" and b.fingerprint != fixed.fingerprint
    b.sample(["Q: 1?"], SamplingParams(n=2, max_new_tokens=4))
    b.logprob_continuations(["Judge:"], [" Yes", " No"])
    assert b.llm.lora_requests == [("LoRARequest", "f1", 1, str(adapter))] * 2
    fixed.sample(["Q: 1?"], SamplingParams(n=1, max_new_tokens=4))
    assert fixed.llm.lora_requests == [None]


def test_results_record_the_vllm_build(monkeypatch):
    """A run on vLLM's CPU build (distribution ``vllm-cpu``) records its version like the GPU build's."""
    from importlib import metadata

    from gvlib import results

    real = metadata.version
    monkeypatch.setattr(results.metadata, "version",
                        lambda name: "0.32.0" if name == "vllm-cpu" else real(name))
    assert results.versions()["vllm-cpu"] == "0.32.0"
