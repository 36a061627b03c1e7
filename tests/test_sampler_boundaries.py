"""gvlib.sampler at its boundaries, against ``transformers``' own logits processors on crafted distributions.

``TopPLogitsWarper`` and ``TemperatureLogitsWarper`` are the rules ``generate`` applies (temperature first,
then top-p): the sampler's ``top_p_filter`` and ``_draw`` must give the same nucleus and the same
distribution where a token's cumulative mass lands exactly on 1 - top_p, where logits tie, and at very
small and very large temperatures.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import chisquare
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

from gvlib.sampler import _draw, sample_tokens, top_p_filter

# Distinct probabilities (no ties), some dyadic so that cumulative sums are exact in float32.
CRAFTED = [
    [1 / 16, 3 / 16, 1 / 4, 1 / 2],
    [0.05, 0.1, 0.15, 0.2, 0.5],
    [0.01, 0.02, 0.03, 0.04, 0.4, 0.5],
    [0.3, 0.001, 0.2, 0.099, 0.4],  # not sorted
]


def _transformers(logits, temperature=1.0, top_p=1.0):
    scores = TemperatureLogitsWarper(temperature)(None, logits.clone()) if temperature != 1.0 else logits.clone()
    return TopPLogitsWarper(top_p)(None, scores) if top_p < 1.0 else scores


def _ascending_cumsum(logits):
    """The cumulative masses both implementations compare with 1 - top_p (float32, ascending order)."""
    return torch.sort(logits, dim=-1).values.softmax(dim=-1).cumsum(dim=-1)[0]


@pytest.mark.parametrize("probs", CRAFTED)
def test_top_p_at_an_exact_cumulative_boundary(probs):
    """top_p = 1 - (a token's cumulative mass, exactly as float32 computes it): that token is removed
    (the rule is ``cumsum <= 1 - top_p``), and a hair less of 1 - top_p keeps it; as transformers does."""
    logits = torch.tensor([probs]).log()
    cumsum = _ascending_cumsum(logits)
    order = torch.argsort(logits[0])
    for k in range(len(probs) - 1):
        edge = float(cumsum[k])
        for one_minus_p, removed in ((edge, k + 1), (float(np.nextafter(np.float32(edge), np.float32(0))), k)):
            top_p = 1.0 - one_minus_p
            ours = top_p_filter(logits, top_p)
            assert torch.equal(ours, _transformers(logits, top_p=top_p)), (probs, k, top_p)
            assert ours[0, order[:removed]].isinf().all() and not ours[0, order[removed:]].isinf().any(), (k, top_p)


@pytest.mark.parametrize("probs", CRAFTED)
@pytest.mark.parametrize("top_p", [0.5, 0.75, 0.8, 0.9, 0.95, 0.99])
def test_top_p_on_crafted_distributions_equals_transformers(probs, top_p):
    logits = torch.tensor([probs]).log()
    assert torch.equal(top_p_filter(logits, top_p), _transformers(logits, top_p=top_p))


TIED = [
    [0.2, 0.2, 0.6],                  # a tie straddling the boundary at top_p 0.7
    [0.1, 0.1, 0.1, 0.35, 0.35],      # ties at the bottom and at the top
    [0.25, 0.25, 0.25, 0.25],         # all tied: nothing may go
    [0.05, 0.15, 0.15, 0.15, 0.5],
]


@pytest.mark.parametrize("probs", TIED)
@pytest.mark.parametrize("top_p", [0.3, 0.5, 0.7, 0.8, 0.9])
def test_top_p_ties_are_kept_or_removed_whole(probs, top_p):
    """Ties (the documented rule): a value transformers removes any copy of is removed in every copy, except
    the most likely value, every copy of which stays; transformers removes an arbitrary part of a tie."""
    logits = torch.tensor([probs]).log()
    theirs = _transformers(logits, top_p=top_p)[0].isinf()
    removed_values = set(logits[0, theirs].tolist()) - {float(logits.max())}
    expected = torch.tensor([v in removed_values for v in logits[0].tolist()])
    assert torch.equal(top_p_filter(logits, top_p)[0].isinf(), expected)


def _draw_counts(logits, temperature, top_p, draws=20_000, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = _draw(logits, temperature, top_p, g, rows=torch.zeros(draws, dtype=torch.long))
    return np.bincount(tokens.numpy(), minlength=logits.shape[-1])


@pytest.mark.parametrize("temperature", [1e-30, 1e-6, 1e-3])
def test_a_very_small_temperature_draws_the_argmax(temperature):
    logits = torch.tensor([[2.0, 1.0, 1.95, 0.0, -1.0, -30.0]])  # the runner-up 0.05 below: e^-50 as likely at T 1e-3
    reference = _transformers(logits, temperature, 0.9).softmax(-1)[0]
    assert reference[0] == 1.0
    counts = _draw_counts(logits, temperature, 0.9, draws=2000)
    assert counts[0] == 2000


@pytest.mark.parametrize("temperature,top_p", [(1e-2, 1.0), (0.3, 0.9), (0.7, 0.9), (2.0, 0.9), (10.0, 1.0),
                                               (100.0, 1.0), (100.0, 0.5), (1e4, 0.9)])
def test_draws_follow_transformers_tempered_nucleus(temperature, top_p):
    """Large temperatures flatten the distribution toward uniform and top-p then cuts it by mass, not by
    rank; small ones concentrate it. The draws' frequencies match transformers' warped probabilities."""
    logits = torch.tensor([[3.0, 1.5, 1.0, 0.2, 0.0, -0.5, -2.0, -4.0]])
    expected = _transformers(logits, temperature, top_p).softmax(-1)[0].double().numpy()
    counts = _draw_counts(logits, temperature, top_p)
    assert counts[expected == 0].sum() == 0
    support = expected > 0
    if support.sum() > 1:
        assert chisquare(counts[support], expected[support] / expected[support].sum() * counts.sum()).pvalue > 1e-4


def test_the_frequencies_test_catches_another_temperature():
    """The test above is sharp: draws at T = 1.1 fail it against transformers' T = 1 (20,000 draws)."""
    logits = torch.tensor([[3.0, 1.5, 1.0, 0.2, 0.0, -0.5, -2.0, -4.0]])
    expected = _transformers(logits, 1.0, 1.0).softmax(-1)[0].double().numpy()
    counts = _draw_counts(logits, 1.1, 1.0)
    assert chisquare(counts, expected / expected.sum() * counts.sum()).pvalue < 1e-6


def test_sample_tokens_at_a_tiny_temperature_is_greedy():
    """End to end, on a model: T = 1e-4 draws the same tokens as greedy decoding (T = 0)."""
    cfg = LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=64, initializer_range=0.3, pad_token_id=0,
                      bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).eval()
    prompts = [[5, 6, 7, 8], [9, 10]]
    kw = dict(n=4, top_p=0.9, max_new_tokens=8, eos_token_ids=[2], seed=0, pad_token_id=0)
    greedy = sample_tokens(model, prompts, temperature=0.0, **kw)
    assert sample_tokens(model, prompts, temperature=1e-4, **kw) == greedy
    assert sample_tokens(model, prompts, temperature=1.0, top_p=1.0,
                         **{k: v for k, v in kw.items() if k != "top_p"}) != greedy
