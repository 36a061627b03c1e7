"""The book's "95% CI"s are 95% intervals: coverage against a known gap, width against the normal approximation.

Every interval in the book comes from :meth:`gvlib.metrics.GapResult.summary` / ``.ci`` (percentile
bootstrap over prompts) or :func:`gvlib.claims.slope_ci`, called with their default level. A 90% or a
99% interval would still contain its estimate and shrink with more prompts; these tests tell them apart.
"""
import numpy as np
import pytest
from scipy.stats import norm

from gvlib import claims
from gvlib.metrics import fit_log_linear, gap

Z95 = norm.ppf(0.975)  # 1.96: a 90% interval is 16% narrower, a 99% one 31% wider (the tests allow 8%)


P = 0.35


def _perfect_verifier_prompts(rng, shape):
    """Prompts of 2 samples, each correct with probability P, and a verifier that keeps exactly the correct ones.

    A prompt with one correct sample has ver_x = 1, acc_x = 1/2 (absolute gap 1/2, relative gap 1); the
    others have gap 0 (acc_x = 1 contributes 0; nothing survives when both are wrong). So the true gaps are
    E[relative] = P(one correct) = 2P(1 - P) and E[absolute] = P(1 - P). (P = 0.35 puts them off the grid
    of values a mean over 100 prompts can take, so no interval ends exactly at the truth.)
    """
    u = (rng.random(shape + (2,)) < P).astype(float)
    return u, u


def test_gap_ci_covers_the_true_gap_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    datasets, prompts = 2000, 100
    u, s = _perfect_verifier_prompts(rng, (datasets, prompts))
    covered = {"relative": 0, "absolute": 0}
    truth = {"relative": 2 * P * (1 - P), "absolute": P * (1 - P)}
    for k in range(datasets):
        r = gap(u[k], s[k], tau=0.5)
        kind = "relative" if k % 2 else "absolute"  # each dataset checks one kind: half the time
        lo, hi = r.ci(kind, n_boot=500, seed=k)
        covered[kind] += lo <= truth[kind] <= hi
    coverage = sum(covered.values()) / datasets
    # binomial sd of the coverage over 2000 datasets is 0.005: a 90% interval covers ~0.90, a 99% one ~0.99
    assert 0.93 <= coverage <= 0.97, coverage


def _noisy_verifier(rng, prompts, samples=8):
    u = (rng.random((prompts, samples)) < rng.random((prompts, 1))).astype(float)
    return u, u + rng.normal(0, 0.8, u.shape)


def test_summary_ci_width_matches_the_normal_approximation():
    """With 4000 prompts the bootstrap distribution of a mean is normal: width = 2 * 1.96 * sd / sqrt(m)."""
    u, s = _noisy_verifier(np.random.default_rng(1), 4000)
    r = gap(u, s, tau=0.5)
    summary = r.summary()  # the book's call: default level and n_boot
    assert summary["ci_level"] == 0.95
    for key, values in (("gap_ci", r.per_prompt_absolute), ("relative_gap_ci", r.per_prompt_relative)):
        lo, hi = summary[key]
        normal = 2 * Z95 * values.std(ddof=1) / np.sqrt(len(values))
        assert (hi - lo) / normal == pytest.approx(1.0, abs=0.08), key
        assert (lo + hi) / 2 == pytest.approx(values.mean(), abs=0.1 * normal)  # centred on the estimate


def test_explicit_levels_are_honoured():
    u, s = _noisy_verifier(np.random.default_rng(2), 4000)
    r = gap(u, s, tau=0.5)
    sd = r.per_prompt_relative.std(ddof=1) / np.sqrt(r.n_prompts)
    for level in (0.8, 0.95, 0.99):
        lo, hi = r.ci("relative", level=level)
        assert (hi - lo) / (2 * norm.ppf(0.5 + level / 2) * sd) == pytest.approx(1.0, abs=0.08), level


def test_slope_ci_width_matches_the_normal_approximation():
    """The OLS slope is linear in the models' mean gaps: slope = mean over prompts of z_x = sum_j c_j * 100 * rel_xj,
    c_j = (x_j - mean x) / sum (x_j - mean x)^2, x = ln(FLOPs / 1e21), so its 95% interval is 2 * 1.96 * sd(z) / sqrt(m)."""
    rng = np.random.default_rng(3)
    flops = [1e20, 1e21, 3e21, 1e23]
    results = []
    for sigma in (1.5, 1.0, 0.6, 0.3):  # a verifier that gets better with scale
        u, s = _noisy_verifier(rng, 3000)
        s = u + rng.normal(0, sigma, u.shape)
        results.append(gap(u, s, tau=0.5))
    x = np.log(np.array(flops) / 1e21)
    c = (x - x.mean()) / ((x - x.mean()) ** 2).sum()
    z = 100 * np.stack([r.per_prompt_relative for r in results], axis=1) @ c
    slope = fit_log_linear(flops, [100 * r.relative for r in results])[0]
    assert z.mean() == pytest.approx(slope)
    lo, hi = claims.slope_ci(results, flops)  # the book's call: default level and n_boot
    normal = 2 * Z95 * z.std(ddof=1) / np.sqrt(len(z))
    assert (hi - lo) / normal == pytest.approx(1.0, abs=0.08)
    assert lo < slope < hi
