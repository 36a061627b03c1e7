"""gvlib.metrics against hand-computed cases and the paper's published numbers (§2, §3, Fig. 2, Tab. 5)."""
from fractions import Fraction
from math import comb

import numpy as np
import pytest

from gvlib.metrics import bootstrap_ci, filter_weights, fit_log_linear, gap, gap_from_weights, pass_at_k


def test_fig2_worked_example():
    # Paper Fig. 2: 5 generations, 3 correct; verifier labels 1,1,0,0,1 with w = 1{. > 0.5}.
    r = gap([[1, 1, 1, 0, 0]], [[1, 1, 0, 0, 1]], tau=0.5)
    assert r.accuracy == pytest.approx(0.6)
    assert r.filtered_accuracy == pytest.approx(2 / 3)
    assert r.absolute == pytest.approx(2 / 3 - 0.6)  # 6.7 %
    assert round(100 * r.absolute, 1) == 6.7
    assert r.relative == pytest.approx((2 / 3 - 0.6) / 0.4)
    assert r.kept.tolist() == [3]


def test_per_prompt_then_averaged_not_pooled():
    u = np.array([[1, 0, 0, 0], [1, 1, 1, 0]])
    s = np.array([[1, 1, 0, 0], [1, 0, 0, 0]])
    r = gap(u, s, tau=0.5)
    # prompt 1: acc .25, ver .5 ; prompt 2: acc .75, ver 1.0
    assert r.absolute == pytest.approx(((0.5 - 0.25) + (1.0 - 0.75)) / 2)
    assert r.relative == pytest.approx((0.25 / 0.75 + 0.25 / 0.25) / 2)
    pooled = u[s > 0.5].mean() - u.mean()  # 2/3 - 1/2
    assert r.absolute != pytest.approx(pooled)


def test_convention_nothing_survives_keeps_unfiltered():
    r = gap([[1, 0, 0, 0]], [[0.1, 0.2, 0.3, 0.4]], tau=0.9)
    assert r.n_empty == 1
    assert r.absolute == 0.0 and r.relative == 0.0
    assert r.ver.tolist() == [0.25]


def test_convention_perfect_prompt_contributes_zero_relative():
    u = [[1, 1, 1, 1], [1, 0, 0, 0]]
    s = [[1, 0, 0, 0], [1, 0, 0, 0]]
    r = gap(u, s, tau=0.5)
    assert r.n_perfect == 1
    assert r.per_prompt_relative.tolist() == [0.0, 1.0]
    assert r.relative == pytest.approx(0.5)
    assert r.absolute == pytest.approx((0 + 0.75) / 2)


def test_strict_vs_non_strict_threshold():
    u = [[1, 0, 0, 1]]
    s = [[8, 8, 7, 9]]
    strict = gap(u, s, tau=8)  # keeps only the 9
    loose = gap(u, s, tau=8, strict=False)  # keeps 8, 8, 9
    assert strict.kept.tolist() == [1] and strict.filtered_accuracy == 1.0
    assert loose.kept.tolist() == [3] and loose.filtered_accuracy == pytest.approx(2 / 3)


def test_quantile_filter_is_per_prompt():
    rng = np.random.default_rng(0)
    s = np.stack([rng.random(100), 10 + rng.random(100)])  # very different score scales
    w = filter_weights(s, quantile=0.8)
    assert w.sum(axis=1).tolist() == [20, 20]  # the top 20% of each prompt's own scores
    w_global = filter_weights(s, tau=float(np.quantile(s, 0.8)))
    assert w_global[0].sum() == 0  # a global threshold would drop the whole first prompt


def test_weights_form_matches_filter_and_allows_soft_weights():
    u = np.array([[1, 0, 1, 0]])
    s = np.array([[0.9, 0.2, 0.6, 0.7]])
    assert gap_from_weights(u, (s > 0.5).astype(float)).absolute == gap(u, s, tau=0.5).absolute
    soft = gap_from_weights(u, np.exp(s / 0.1))  # KL-regularised reweighting w = exp(s / beta)
    expected = (np.exp(s / 0.1) * u).sum() / np.exp(s / 0.1).sum() - 0.5
    assert soft.absolute == pytest.approx(expected)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tau": 0.5, "quantile": 0.8}, "exactly one of `tau`"),
        ({}, "exactly one of `tau`"),
        ({"quantile": 1.5}, "`quantile`"),
    ],
)
def test_filter_arguments_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gap([[1, 0]], [[0.2, 0.9]], **kwargs)


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="same shape"):
        gap([[1, 0, 1]], [[0.2, 0.9]], tau=0.5)
    with pytest.raises(ValueError, match=r"`u` must lie in \[0, 1\]|utilities `u`"):
        gap([[1, 2]], [[0.2, 0.9]], tau=0.5)
    with pytest.raises(ValueError, match="`s`"):
        gap([[1, 0]], [[[0.2, 0.9]]], tau=0.5)
    with pytest.raises(ValueError, match="weights `w`"):
        gap_from_weights([[1, 0]], [[-1, 1]])


def _exact_pass_at_k(n, c, k):
    return 1 - Fraction(comb(n - c, k), comb(n, k))


@pytest.mark.parametrize("c", [0, 1, 7, 500, 1999, 2000])
@pytest.mark.parametrize("k", [1, 2, 16, 128, 1024])
def test_pass_at_k_n2000_matches_exact_integers(c, k):
    n = 2000
    assert pass_at_k(n, c, k) == pytest.approx(float(_exact_pass_at_k(n, c, k)), rel=1e-12, abs=1e-15)


def test_pass_at_k_vectorised_and_k1_is_accuracy():
    n = np.array([128, 128, 10])
    c = np.array([0, 64, 3])
    assert np.allclose(pass_at_k(n, c, 1), c / n)
    out = pass_at_k(n, c, 4)
    assert out.shape == (3,)
    assert out[2] == pytest.approx(float(_exact_pass_at_k(10, 3, 4)))


def test_pass_at_k_rejects_k_above_n():
    with pytest.raises(ValueError, match="exceeds"):
        pass_at_k(8, 3, 9)
    with pytest.raises(ValueError, match="`c`"):
        pass_at_k(8, 9, 1)


# Paper Tab. 5 (GSM8K relative gap %, CoT-S tau 8) and the FLOPs Fig. 1 plots (units of 1e21).
QWEN15_FLOPS = [7.2, 25.92, 57.6, 168, 336, 768, 1296]
QWEN15_COTS = [-0.13, 3.10, 6.92, 5.50, 8.00, 8.40, 14.96]
LLAMA2_FLOPS = [84, 156, 840]
LLAMA2_COTS = [0.39, 1.79, 12.22]


@pytest.mark.parametrize(
    "flops, values, slope, intercept, r2",
    [
        (QWEN15_FLOPS, QWEN15_COTS, 2.30, -4.49, 0.83),
        (LLAMA2_FLOPS, LLAMA2_COTS, 5.36, -24.18, 0.98),
    ],
)
def test_log_linear_fit_reproduces_paper_slopes(flops, values, slope, intercept, r2):
    got_slope, got_intercept, got_r2 = fit_log_linear(np.array(flops) * 1e21, values)
    # the published points are rounded to 2 decimals, so the refit agrees to about 0.01
    assert got_slope == pytest.approx(slope, abs=0.006)
    assert got_intercept == pytest.approx(intercept, abs=0.015)
    assert got_r2 == pytest.approx(r2, abs=0.006)


def test_log_linear_fit_bad_input():
    with pytest.raises(ValueError, match="same length"):
        fit_log_linear([1e21, 2e21], [1.0])
    with pytest.raises(ValueError, match="positive"):
        fit_log_linear([0, 1e21], [1.0, 2.0])


def test_bootstrap_ci_covers_estimate_and_shrinks_with_more_prompts():
    rng = np.random.default_rng(1)
    u = (rng.random((400, 16)) < 0.5).astype(float)
    s = u + rng.normal(0, 1.0, u.shape)  # an informative, noisy verifier: a positive gap
    r = gap(u, s, tau=1.0)
    lo, hi = r.ci("relative", n_boot=500)
    assert lo < r.relative < hi and lo > 0
    lo_small, hi_small = gap(u[:40], s[:40], tau=1.0).ci("relative", n_boot=500)
    assert hi_small - lo_small > hi - lo
    # the generic form resamples prompts of several arrays together and agrees with the fast path
    lo2, hi2 = bootstrap_ci(lambda a, b: gap(a, b, tau=1.0).relative, u, s, n_boot=500)
    assert (lo2, hi2) == pytest.approx((lo, hi), abs=1e-12)
    summary = r.summary(n_boot=200)
    assert summary["relative_gap_ci"][0] < summary["relative_gap"] < summary["relative_gap_ci"][1]


def test_roc_auc_hand_computed_with_ties():
    from gvlib.metrics import roc_auc
    # correct samples scored 0.9, 0.5; incorrect 0.5, 0.1, 0.1, 0.1: 8 (correct, incorrect) pairs.
    # 0.9 beats all four (4); 0.5 ties 0.5 (1/2) and beats the three 0.1s (3): (4 + 3.5) / 8.
    u = [[1, 0, 1], [0, 0, 0]]
    s = [[0.9, 0.5, 0.5], [0.1, 0.1, 0.1]]
    assert roc_auc(u, s) == pytest.approx(7.5 / 8)
    assert roc_auc([1, 0], [0.2, 0.8]) == 0.0 and roc_auc([1, 0], [0.8, 0.2]) == 1.0
    assert roc_auc([1, 1, 0, 0], [3, 3, 3, 3]) == 0.5  # a constant score is chance
    assert roc_auc([1, 1], [0.3, 0.4]) is None  # one class only: undefined


def test_roc_auc_matches_the_pairwise_definition_sklearn_uses():
    # sklearn.metrics.roc_auc_score = mean over (positive, negative) pairs of 1[s+ > s-] + 1/2 1[s+ = s-]
    from gvlib.metrics import roc_auc
    rng = np.random.default_rng(3)
    u = rng.integers(0, 2, size=(40, 8))
    s = rng.integers(0, 11, size=(40, 8)).astype(float)  # CoT-Score-like integer scores: many ties
    pos, neg = s[u == 1], s[u == 0]
    d = pos[:, None] - neg[None, :]
    assert roc_auc(u, s) == pytest.approx(((d > 0) + 0.5 * (d == 0)).mean())


def test_within_prompt_auc_ignores_how_a_verifier_ranks_prompts():
    from gvlib.metrics import roc_auc, within_prompt_auc
    # an easy prompt (3 of 4 right) scored high, a hard one (1 of 4 right) low, each at chance inside:
    # the pooled AUC rewards ranking the prompts, the within-prompt AUC does not
    u = [[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]]
    s = [[0.9, 0.9, 0.9, 0.9], [0.1, 0.1, 0.1, 0.1], [0.5, 0.2, 0.3, 0.4]]
    assert roc_auc(u, s) > 0.7
    assert within_prompt_auc(u, s) == 0.5  # the all-right prompt has no AUC and is left out
    # the mean of the mixed prompts' AUCs, each prompt weighted alike
    u2, s2 = [[1, 0], [1, 0, ], [1, 1]], [[0.8, 0.2], [0.2, 0.8], [0.1, 0.1]]
    assert within_prompt_auc(u2, s2) == pytest.approx((1.0 + 0.0) / 2)
    assert within_prompt_auc([[1, 1], [0, 0]], [[0.1, 0.2], [0.3, 0.4]]) is None  # no mixed prompt
    with pytest.raises(ValueError, match="same shape"):
        within_prompt_auc([[1, 0]], [[0.1, 0.2, 0.3]])


@pytest.mark.parametrize("u, s, match", [([1, 0], [0.5], "same shape"), ([1, 0.5], [0.1, 0.2], "0/1"),
                                         ([1, 0], [np.nan, 0.2], "NaN"), ([], [], "empty")])
def test_roc_auc_rejects_bad_input(u, s, match):
    from gvlib.metrics import roc_auc
    with pytest.raises(ValueError, match=match):
        roc_auc(u, s)
