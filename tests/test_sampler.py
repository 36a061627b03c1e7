"""The fast sampler: exact top-p, padded logits equal unpadded ones, same distribution as ``generate``."""
from __future__ import annotations

import functools
from collections import Counter

import numpy as np
import pytest
import torch
from scipy.stats import chi2_contingency, chisquare
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, MistralConfig,
                          MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM)
from transformers.generation.logits_process import TopPLogitsWarper

import gvlib.sampler as sampler
from gvlib.bench import Sweep, Workload, bench_sampler
from gvlib.sampler import _HFDecoder, _LlamaDecoder, _draw, sample_tokens, supports_fast_path, top_p_filter

EOS, PAD = 2, 0


def llama(vocab=40, seed=0, init=0.02, kv_heads=2):
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=kv_heads, max_position_embeddings=128,
                      initializer_range=init, pad_token_id=PAD, bos_token_id=1, eos_token_id=EOS)
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg).eval()


def qwen2(vocab=40):
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      pad_token_id=PAD, bos_token_id=1, eos_token_id=EOS)
    torch.manual_seed(1)
    model = Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():  # make the q/k/v biases matter
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0, 0.5)
    return model


def mistral(vocab=40):
    cfg = MistralConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=128,
                        pad_token_id=PAD, bos_token_id=1, eos_token_id=EOS)
    torch.manual_seed(4)
    return MistralForCausalLM(cfg).eval()


def gpt2(vocab=40, init=0.02):
    cfg = GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=128, initializer_range=init,
                     pad_token_id=PAD, bos_token_id=1, eos_token_id=EOS)
    torch.manual_seed(2)
    return GPT2LMHeadModel(cfg).eval()


# ---------------------------------------------------------------- top-p and the draw


def test_top_p_filter_on_hand_made_logits():
    probs = torch.tensor([[0.1, 0.5, 0.15, 0.25]])
    logits = probs.log()
    inf = float("-inf")
    # Ascending cumulative mass: 0.1 (token 0), 0.25 (2), 0.5 (3), 1.0 (1); removed while <= 1 - top_p.
    assert top_p_filter(logits, 0.85).isinf().tolist() == [[True, False, False, False]]
    assert top_p_filter(logits, 0.7).isinf().tolist() == [[True, False, True, False]]
    assert top_p_filter(logits, 0.3).isinf().tolist() == [[True, False, True, True]]
    assert top_p_filter(logits, 1e-4).isinf().tolist() == [[True, False, True, True]]  # the argmax stays
    assert torch.equal(top_p_filter(logits, 1.0), logits)
    kept = top_p_filter(logits, 0.7)
    assert kept[0, 1] == logits[0, 1] and kept[0, 3] == logits[0, 3] and kept[0, 0] == inf


def test_top_p_filter_keeps_ties_with_the_most_likely_token():
    uniform = torch.zeros(2, 8)
    assert torch.equal(top_p_filter(uniform, 0.5), uniform)  # never an all -inf row
    half = torch.tensor([[1.0, 1.0, 0.0, 0.0]], dtype=torch.bfloat16)
    assert top_p_filter(half, 0.5).isinf().tolist() == [[False, False, True, True]]


def test_top_p_filter_matches_transformers_warper():
    torch.manual_seed(0)
    logits = torch.randn(64, 50) * 3
    for top_p in (0.1, 0.5, 0.9, 0.95):
        expected = TopPLogitsWarper(top_p)(None, logits.clone())
        assert torch.equal(top_p_filter(logits, top_p), expected)


def test_top_p_filter_rejects_bad_values():
    with pytest.raises(ValueError, match="top_p"):
        top_p_filter(torch.zeros(1, 3), 0.0)
    with pytest.raises(ValueError, match="top_p"):
        top_p_filter(torch.zeros(1, 3), 1.5)


@pytest.mark.parametrize("temperature,top_p", [(0.7, 0.9), (1.0, 1.0), (0.5, 0.95)])
def test_draw_follows_tempered_nucleus_distribution(temperature, top_p):
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0])
    expected = top_p_filter(logits / temperature, top_p).softmax(-1).double().numpy()
    expected /= expected.sum()
    g = torch.Generator().manual_seed(0)
    draws = _draw(logits[None], temperature, top_p, g, rows=torch.zeros(40_000, dtype=torch.long)).numpy()
    counts = np.bincount(draws, minlength=len(logits))
    assert counts[expected == 0].sum() == 0
    support = expected > 0
    assert chisquare(counts[support], expected[support] * len(draws)).pvalue > 1e-4


def test_draw_is_greedy_at_temperature_zero():
    logits = torch.randn(10, 7)
    assert torch.equal(_draw(logits, 0.0, 0.9, torch.Generator()), logits.argmax(-1))
    rows = torch.tensor([3, 3, 0])
    assert torch.equal(_draw(logits, 0.0, 0.9, torch.Generator(), rows), logits.argmax(-1)[rows])


def test_draws_of_one_row_are_independent():
    """Draws that read the same row each get their own uniform: they differ, at the row's frequencies."""
    logits = torch.tensor([[0.0, 0.0, -9.0], [9.0, -9.0, -9.0]])
    draws = _draw(logits, 1.0, 1.0, torch.Generator().manual_seed(0), torch.zeros(4000, dtype=torch.long))
    assert 1800 < int((draws == 0).sum()) < 2200 and not bool((draws == 2).any())
    assert 1800 < int((draws[1:] == draws[:-1]).sum()) < 2200  # P(equal neighbours) = 1/2 when independent


# ---------------------------------------------------------------- padded batches = unpadded prompts

PROMPTS = [[5, 6, 7, 8, 9, 10], [11, 12, 13], [14, 15, 16, 17, 18, 19, 20, 21]]
# Two samples per prompt; prompt 0's share their first token, the others part at once.
FORCED = [[[3, 4, 22, 9], [3, 8, 9, 9]], [[23, 24, 25, 1], [1, 1, 1, 1]], [[26, 27, 28, 3], [30, 31, 32, 33]]]


def _left_pad(prompts):
    length = max(map(len, prompts))
    ids = torch.full((len(prompts), length), PAD)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, length - len(p):] = torch.tensor(p)
        mask[i, length - len(p):] = 1
    return ids, mask


# One prompt per prefill chunk: each chunk trimmed to its own length.
_LlamaDecoderByPrompt = functools.partial(_LlamaDecoder, prefill_tokens=1)


@pytest.mark.parametrize("make_model,decoder", [
    (llama, _LlamaDecoder), (llama, _LlamaDecoderByPrompt), (llama, _HFDecoder), (qwen2, _LlamaDecoder),
    (qwen2, _HFDecoder), (mistral, _LlamaDecoder), (mistral, _LlamaDecoderByPrompt), (gpt2, _HFDecoder),
])
def test_decoder_logits_equal_unpadded_forward(make_model, decoder):
    """Left-padded prompts of different lengths; rows forked where samples part, then dropped."""
    model = make_model()
    ids, mask = _left_pad(PROMPTS)
    dec = decoder(model)
    got = {(i, j): [] for i in range(3) for j in range(2)}
    # rows[r]: the samples (prompt, sample) that batch row r carries
    rows = [[(0, 0), (0, 1)], [(1, 0), (1, 1)], [(2, 0), (2, 1)]]
    with torch.no_grad():
        logits = dec.prefill(ids, mask, 4, capacity=6)
        for t in range(4):
            if t == 1:  # prompt 0's samples drew the same token, the others' part: rows 1 and 2 are forked
                dec.fork(torch.tensor([1, 2]))
                rows = [[(0, 0), (0, 1)], [(1, 0)], [(2, 0)], [(1, 1)], [(2, 1)]]
            if t == 2:  # prompt 0's samples part; prompt 1 and sample (2, 1) have stopped
                dec.fork(torch.tensor([0]))
                dec.keep(torch.tensor([0, 5, 2]))
                rows = [[(0, 0)], [(0, 1)], [(2, 0)]]
            if t:
                logits = dec.step(torch.tensor([FORCED[i][j][t - 1] for (i, j), *_ in rows]))
            for r, samples in enumerate(rows):
                for slot in samples:
                    got[slot].append(logits[r])
        for (i, j), seen in got.items():
            full = torch.tensor([PROMPTS[i] + FORCED[i][j][:3]])
            expected = model(full).logits[0, len(PROMPTS[i]) - 1:][: len(seen)]
            torch.testing.assert_close(torch.stack(seen), expected, atol=1e-5, rtol=1e-5)


def _rows_per_step(monkeypatch) -> list[int]:
    """Record the batch rows of every decoder step that sample_tokens runs."""
    seen = []
    step = _LlamaDecoder.step

    def recording(self, tokens):
        seen.append(len(tokens))
        return step(self, tokens)

    monkeypatch.setattr(_LlamaDecoder, "step", recording)
    return seen


def test_samples_share_rows_until_they_part(monkeypatch):
    seen = _rows_per_step(monkeypatch)
    model = llama(init=0.3)
    greedy = _sample(model, PROMPTS + [PROMPTS[0]], n=5, temperature=0.0, max_new_tokens=6, eos_token_ids=[])
    assert seen == [3] * 5  # 20 samples of 3 distinct prompts, all greedy: one row per prompt
    assert greedy[0] == greedy[3] and all(s == samples[0] for samples in greedy for s in samples)
    seen.clear()
    sampled = _sample(model, PROMPTS, n=40, temperature=1.0, top_p=1.0, max_new_tokens=6, eos_token_ids=[])
    distinct = [len({(i, *s[:t + 1]) for i, samples in enumerate(sampled) for s in samples}) for t in range(5)]
    assert seen == distinct  # each step runs one row per distinct sequence so far
    assert distinct[-1] > 3


def test_copies_of_a_prompt_get_their_own_samples():
    model = llama(init=0.3)
    out = _sample(model, [PROMPTS[0], PROMPTS[1], PROMPTS[0]], n=6, temperature=1.0, top_p=1.0, max_new_tokens=8)
    assert [len(s) for s in out] == [6, 6, 6]
    assert out[0] != out[2]  # independent draws, not the same list twice


def test_fast_path_applies_to_llama_like_models_only():
    assert supports_fast_path(llama()) and supports_fast_path(qwen2()) and supports_fast_path(mistral())
    assert not supports_fast_path(mistral(), total_len=5000)  # its 4096-token sliding window would matter
    assert not supports_fast_path(gpt2())
    wrapped = llama()
    wrapped.model.layers[0].self_attn.q_proj = torch.nn.Sequential(wrapped.model.layers[0].self_attn.q_proj)
    assert not supports_fast_path(wrapped)  # e.g. a LoRA-wrapped projection must not be bypassed


# ---------------------------------------------------------------- sample_tokens


def _sample(model, prompts, **kw):
    args = dict(n=3, temperature=0.8, top_p=0.9, max_new_tokens=6, eos_token_ids=[EOS], seed=0, pad_token_id=PAD)
    args.update(kw)
    return sample_tokens(model, prompts, **args)


def test_sample_tokens_shapes_eos_and_determinism():
    model = llama(init=0.3)
    out = _sample(model, PROMPTS, n=5, max_new_tokens=8, eos_token_ids=[EOS, 3, 4, 5])
    assert len(out) == 3 and all(len(samples) == 5 for samples in out)
    stops = {EOS, 3, 4, 5}
    ended = 0
    for samples in out:
        for s in samples:
            assert 1 <= len(s) <= 8
            assert not stops & set(s[:-1])  # cut right after the first EOS, which is kept
            ended += s[-1] in stops
    assert ended > 0
    assert out == _sample(model, PROMPTS, n=5, max_new_tokens=8, eos_token_ids=[EOS, 3, 4, 5])
    assert out != _sample(model, PROMPTS, n=5, max_new_tokens=8, eos_token_ids=[EOS, 3, 4, 5], seed=1)


def test_batch_size_splits_rows_and_keeps_prompt_order():
    model = llama(init=0.3)
    out = _sample(model, PROMPTS, n=5, batch_size=4)
    assert [len(s) for s in out] == [5, 5, 5]
    greedy = _sample(model, PROMPTS, n=5, batch_size=4, temperature=0.0)
    assert greedy == _sample(model, PROMPTS, n=5, batch_size=None, temperature=0.0)
    for prompt, samples in zip(PROMPTS, greedy):
        assert samples == [_sample(model, [prompt], n=1, temperature=0.0)[0][0]] * 5


def test_greedy_matches_generate():
    model = llama(init=0.3)
    out = _sample(model, PROMPTS, n=1, temperature=0.0, max_new_tokens=8)
    for prompt, (tokens,) in zip(PROMPTS, out):
        ref = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                             do_sample=False, max_new_tokens=8, eos_token_id=EOS, pad_token_id=PAD)
        ref = ref[0, len(prompt):].tolist()
        assert tokens == (ref[: ref.index(EOS) + 1] if EOS in ref else ref)


@pytest.mark.parametrize("kw", [dict(n=4, max_new_tokens=10),
                                # many stops: rows fork, stop and are dropped in the same steps
                                dict(n=7, max_new_tokens=14, temperature=1.5, top_p=1.0, eos_token_ids=[EOS, 3, 4, 5])])
def test_fast_and_fallback_decoders_draw_the_same_tokens(monkeypatch, kw):
    model = llama(init=0.3)
    fast = _sample(model, PROMPTS + PROMPTS[:1], **kw)
    monkeypatch.setattr(sampler, "supports_fast_path", lambda *args: False)
    assert _sample(model, PROMPTS + PROMPTS[:1], **kw) == fast


def test_works_on_a_non_llama_model():
    """GPT-2 takes the fallback decoder: greedy samples of padded prompts equal ``generate``'s, sampled ones
    stop at the first EOS and follow the seed."""
    model = gpt2(init=0.3)  # peaked enough that a wrong position or mask changes the greedy tokens
    assert not supports_fast_path(model)
    greedy = _sample(model, PROMPTS, n=2, temperature=0.0, max_new_tokens=8)
    for prompt, samples in zip(PROMPTS, greedy):
        ref = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                             do_sample=False, max_new_tokens=8, eos_token_id=EOS, pad_token_id=PAD)[0, len(prompt):].tolist()
        assert samples == [ref[: ref.index(EOS) + 1] if EOS in ref else ref] * 2
    stops = [EOS, 3, 4, 5]
    sampled = _sample(model, PROMPTS, n=6, temperature=1.5, top_p=1.0, max_new_tokens=12, eos_token_ids=stops)
    flat = [s for samples in sampled for s in samples]
    assert all(not set(stops) & set(s[:-1]) and (s[-1] in stops or len(s) == 12) for s in flat)
    assert any(s[-1] in stops for s in flat) and len({tuple(s) for s in flat}) > 3
    assert sampled == _sample(model, PROMPTS, n=6, temperature=1.5, top_p=1.0, max_new_tokens=12, eos_token_ids=stops)


def test_bench_sampler_runs_the_same_work_on_both_sides():
    grid = Sweep(sizes=((32, 1),), workloads=(Workload("w", n=4, prompt_len=(2, 5), new_tokens=3),), rows=(8,),
                vocab=20, score_rows=1, repeats=1)
    (row,) = bench_sampler(grid, torch.device("cpu"), peak=1e9)
    assert row["rows"] == 8 and row["prompts"] == 2 and row["new_tokens"] == 3
    assert row["sampler_tokens"] == row["generate_tokens"] == 8 * 3  # no EOS: every row runs to the end
    assert row["shared"] >= 1.0  # the sampler never runs more tokens than generate's rows


def test_model_tokens_counts_each_distinct_sequence_once():
    from gvlib.bench import model_tokens

    prompts = [[1, 2], [1, 2], [3]]
    samples = [[[5, 6, 7], [5, 6, 8]], [[5, 9]], [[4]]]
    # prompts (1, 2) and (3): 3 tokens; then (1, 2)+5 and (1, 2)+5 6 are run once for all three samples
    assert model_tokens(prompts, samples) == 3 + 2
    assert model_tokens([[1, 2]], [[[5, 6, 7]]]) == 2 + 2


def test_bench_main_prints_and_writes_json(tmp_path, monkeypatch, capsys):
    import json

    import gvlib.bench as bench

    tiny = Sweep(sizes=((32, 1),), workloads=(Workload("w", n=2, prompt_len=(2, 4), new_tokens=2),), rows=(4,),
                vocab=20, score_rows=1, repeats=1)
    monkeypatch.setattr(bench, "QUICK", tiny)
    bench.main(["--quick", "--json", str(tmp_path / "bench.json")])
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["sweep"]["workloads"][0]["name"] == "w" and len(saved["sampler"]) == 1 and len(saved["scorer"]) == 4
    assert "speed-up" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--family", str(tmp_path)])  # no family.json there


def test_rejects_bad_arguments():
    model = llama()
    for kw, name in [(dict(n=0), "n"), (dict(temperature=-1.0), "temperature"), (dict(top_p=0.0), "top_p"),
                     (dict(max_new_tokens=0), "max_new_tokens"), (dict(batch_size=0), "batch_size")]:
        with pytest.raises(ValueError, match=name):
            _sample(model, PROMPTS, **kw)
    with pytest.raises(ValueError, match=r"prompt_ids\[1\]"):
        _sample(model, [[3], []])


# ---------------------------------------------------------------- same distribution as generate

STAT_PROMPTS = [[5, 6, 7, 8], [9, 10]]  # different lengths: padding is exercised too
SAMPLES = 3000


@functools.lru_cache(maxsize=None)
def _first_two_generate(model, prompt, temperature, top_p):
    torch.manual_seed(123)
    ids = torch.tensor([list(prompt)])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=temperature,
                         top_p=top_p, top_k=0, max_new_tokens=2, min_new_tokens=2,
                         num_return_sequences=SAMPLES, pad_token_id=PAD)
    return Counter(map(tuple, out[:, len(prompt):].tolist()))


def _first_two_sampler(model, temperature, top_p):
    out = sample_tokens(model, STAT_PROMPTS, n=SAMPLES, temperature=temperature, top_p=top_p, max_new_tokens=2,
                        eos_token_ids=[], seed=7, pad_token_id=PAD)
    return [Counter(tuple(s) for s in samples) for samples in out]


def _same_distribution_pvalue(a: Counter, b: Counter) -> float:
    """Chi-square test of homogeneity on the (first, second) token pairs; rare pairs pooled."""
    cells = sorted(set(a) | set(b))
    table = np.array([[a[c] for c in cells], [b[c] for c in cells]], dtype=float)
    common = table.sum(0) >= 10
    pooled = np.column_stack([table[:, common], table[:, ~common].sum(1)])
    pooled = pooled[:, pooled.sum(0) > 0]
    return chi2_contingency(pooled).pvalue


def _tv(a: Counter, b: Counter) -> float:
    return 0.5 * sum(abs(a[c] - b[c]) for c in set(a) | set(b)) / SAMPLES


@pytest.fixture(scope="module")
def peaked_model():
    """A random model whose next-token distributions are far from uniform (so T and top-p matter)."""
    model = llama(vocab=12, init=0.6, seed=3)
    with torch.no_grad():
        assert model(torch.tensor([STAT_PROMPTS[0]])).logits[0, -1].softmax(-1).max() > 0.2
    return model


def test_same_distribution_as_generate(peaked_model):
    ours = _first_two_sampler(peaked_model, 0.7, 0.9)
    for prompt, mine in zip(STAT_PROMPTS, ours):
        theirs = _first_two_generate(peaked_model, tuple(prompt), 0.7, 0.9)
        assert _same_distribution_pvalue(mine, theirs) > 1e-3
        assert _tv(mine, theirs) < 0.06


@pytest.mark.parametrize("temperature,top_p", [(1.0, 0.9), (0.7, 1.0), (0.5, 0.9)])
def test_distribution_test_catches_a_wrong_temperature_or_top_p(peaked_model, temperature, top_p):
    """The same statistic rejects a sampler run at other settings than generate's (T = 0.7, top-p 0.9)."""
    wrong = _first_two_sampler(peaked_model, temperature, top_p)
    pvalues = [_same_distribution_pvalue(mine, _first_two_generate(peaked_model, tuple(prompt), 0.7, 0.9))
               for prompt, mine in zip(STAT_PROMPTS, wrong)]
    assert min(pvalues) < 1e-6
