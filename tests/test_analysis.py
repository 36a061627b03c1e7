"""The verification chapter's functions (gvlib.analysis, the ROC model of the gap in gvlib.metrics) on hand cases."""
import numpy as np
import pytest

from gvlib import analysis, claims, paper_numbers
from gvlib.metrics import filter_rates, gap, gap_from_weights, predicted_gap, predicted_ver


def exact_filter(acc_counts, n, tpr, fpr):
    """u and w with exactly tpr of each prompt's right samples and fpr of its wrong ones kept."""
    u, w = np.zeros((len(acc_counts), n)), np.zeros((len(acc_counts), n))
    for i, c in enumerate(acc_counts):
        u[i, :c] = 1
        w[i, :round(tpr * c)] = 1
        w[i, c:c + round(fpr * (n - c))] = 1
    return u, w


def test_filter_rates_hand_case():
    u = [[1, 1, 0, 0], [1, 0, 0, 0]]
    w = [[1, 0, 1, 0], [1, 0, 0, 0]]
    assert filter_rates(u, w) == (pytest.approx(2 / 3), pytest.approx(1 / 5))
    assert filter_rates([[1, 1]], [[1, 0]]) == (0.5, None)  # no wrong sample: FPR undefined
    with pytest.raises(ValueError, match="0/1"):
        filter_rates([[0.5, 1]], [[1, 0]])
    with pytest.raises(ValueError, match="same shape"):
        filter_rates([[1, 0]], [[1, 0, 1]])


def test_prediction_is_exact_for_a_filter_with_exact_rates():
    u, w = exact_filter([10, 5, 15, 0, 20], 20, tpr=0.8, fpr=0.2)
    measured = gap_from_weights(u, w)
    tpr, fpr = filter_rates(u, w)
    assert (tpr, fpr) == (pytest.approx(0.8), pytest.approx(0.2))
    pred = predicted_gap(measured.acc, tpr, fpr)
    np.testing.assert_allclose(pred.ver, measured.ver)
    assert pred.absolute == pytest.approx(measured.absolute) and pred.relative == pytest.approx(measured.relative)
    check = analysis.prediction_check(u, w, n_boot=200)
    assert check["formula_inside"] is True and check["formula_gap"] == pytest.approx(check["gap"])
    assert check["inside"] is not None and check["predicted_gap"] is not None


def test_finite_n_prediction_is_the_exact_expectation_of_a_coin_filter():
    """Every keep pattern of n = 3 samples (1 right) enumerated with its probability under (TPR, FPR)."""
    from itertools import product

    tpr, fpr, u = 0.7, 0.2, np.array([1.0, 0.0, 0.0])
    expected = 0.0
    for keep in product((0, 1), repeat=3):
        k = np.array(keep, dtype=float)
        prob = np.prod(np.where(u == 1, np.where(k == 1, tpr, 1 - tpr), np.where(k == 1, fpr, 1 - fpr)))
        expected += prob * ((k * u).sum() / k.sum() if k.sum() else u.mean())  # nothing kept: the unfiltered samples
    assert predicted_ver(1 / 3, tpr, fpr, n=3) == pytest.approx(expected, abs=1e-12)
    # many samples: the finite-n expectation approaches the formula a TPR / (a TPR + (1 - a) FPR)
    assert predicted_ver(0.25, tpr, fpr, n=400) == pytest.approx(predicted_ver(0.25, tpr, fpr), abs=2e-3)
    with pytest.raises(ValueError, match="multiples of 1/n"):
        predicted_ver(0.3, tpr, fpr, n=4)


def test_prediction_matches_a_random_coin_in_expectation():
    rng = np.random.default_rng(0)
    u = np.array([[1, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]], dtype=float)
    reps = 20000
    uu = np.tile(u, (reps, 1))
    w = np.where(uu == 1, rng.random(uu.shape) < 0.6, rng.random(uu.shape) < 0.15).astype(float)
    ver = gap_from_weights(uu, w).ver.reshape(reps, 3).mean(axis=0)  # the mean over many draws of the coin
    np.testing.assert_allclose(predicted_gap(u.mean(1), 0.6, 0.15, n=6).ver, ver, atol=0.01)
    assert not np.allclose(predicted_gap(u.mean(1), 0.6, 0.15).ver, ver, atol=0.01)  # the formula ignores n
    check = analysis.prediction_check(uu[:3000], w[:3000], n_boot=200)
    assert check["tpr"] == pytest.approx(0.6, abs=0.03) and check["inside"] is True


def test_predicted_ver_edges():
    assert predicted_ver(0.5, 1.0, 0.0) == 1.0  # a perfect verifier
    assert predicted_ver(0.3, 0.4, 0.4) == pytest.approx(0.3)  # TPR = FPR: blind, no gap
    assert predicted_ver(0.3, 0.0, 0.0) == pytest.approx(0.3)  # keeps nothing: the unfiltered samples
    assert predicted_gap([0.3, 0.6], 0.5, 0.5).absolute == pytest.approx(0.0)
    with pytest.raises(ValueError, match="tpr"):
        predicted_ver(0.5, 1.5, 0.1)


def test_perfect_verifier_is_the_filter_keeping_the_right_samples():
    u = np.array([[1, 0], [0, 0], [1, 1], [1, 0]], dtype=float)
    perfect = gap_from_weights(u, u)
    # relative gap 1 on every prompt with 0 < acc < 1, 0 elsewhere
    assert perfect.relative == pytest.approx(2 / 4) and perfect.absolute == pytest.approx((0.5 + 0.5) / 4)
    assert predicted_gap(perfect.acc, 1.0, 0.0).relative == pytest.approx(perfect.relative)


def test_likelihood_ratio_for_a_target_gain():
    # acc 0.5: ver = 1 / (1 + r), relative gap (1 - r) / (1 + r): 1/3 needs r = 1/2
    assert analysis.likelihood_ratio_for([0.5], 1 / 3) == pytest.approx(0.5, abs=1e-9)
    assert analysis.likelihood_ratio_for([0.5, 1.0], 0.6) is None  # a perfect verifier gives 0.5
    assert analysis.likelihood_ratio_for([0.5], 0.0) == pytest.approx(1.0)


def test_threshold_sweep_is_the_gap_at_each_threshold():
    rng = np.random.default_rng(1)
    u = (rng.random((6, 8)) < 0.5).astype(float)
    s = rng.integers(1, 11, size=(6, 8)).astype(float)
    sweep = analysis.threshold_sweep(u, s, taus=[3, 8])
    assert sweep[8.0].absolute == gap(u, s, tau=8).absolute and set(sweep) == {3.0, 8.0}
    q = analysis.threshold_sweep(u, s, quantiles=[0.5])
    assert q[0.5].relative == gap(u, s, quantile=0.5).relative
    with pytest.raises(ValueError, match="exactly one"):
        analysis.threshold_sweep(u, s, taus=[1], quantiles=[0.5])


def test_transfer_loss():
    gaps = {"small": {1.0: 0.1, 2.0: 0.3}, "large": {1.0: 0.5, 2.0: 0.2}}
    out = analysis.transfer_loss(gaps, "small").set_index("model")
    assert out.loc["small", "loss"] == 0 and out.loc["large", "loss"] == pytest.approx(0.3)
    assert out.loc["large", "best_threshold"] == 1.0 and out.loc["large", "transferred_threshold"] == 2.0
    with pytest.raises(ValueError, match="same thresholds"):
        analysis.transfer_loss({"small": {1.0: 0.1}, "large": {2.0: 0.1}}, "small")


def test_tournament_by_round():
    u = np.array([[1, 0, 0, 0], [1, 1, 0, 0]], dtype=float)
    survivors = np.array([np.ones((2, 4)), [[1, 0, 1, 0], [1, 0, 0, 1]], [[1, 0, 0, 0], [0, 0, 0, 1]]])
    out = analysis.tournament_by_round(u, survivors, [0.5, 1.0])
    assert list(out.filtered_accuracy) == pytest.approx([0.375, 0.5, 0.5])
    assert np.isnan(out.position_bias[0]) and out.position_bias.tolist()[1:] == [0.5, 1.0] and out.survivors.tolist() == [4, 2, 1]
    assert out.gain_over_previous.iloc[1] == pytest.approx(0.125)


def test_correlations_and_spread():
    assert analysis.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert analysis.pearson([1, 1, 1], [1, 2, 3]) is None
    c = analysis.correlations({"a": np.array([1, 2, 3]), "b": np.array([3, 2, 1])})
    assert c.loc["a", "b"] == pytest.approx(-1.0)
    u = np.array([[1, 0], [1, 0], [0, 0]], dtype=float)
    res = gap_from_weights(u, np.array([[1, 0], [1, 1], [1, 1]], dtype=float))
    spread = analysis.gap_spread({"x": res})
    assert spread.loc["x", "mean"] == pytest.approx(0.5 / 3) and spread.loc["x", "sd"] == pytest.approx(np.std([0.5, 0, 0]))


def test_and_ensemble_of_a_filter_with_itself_is_the_filter():
    rng = np.random.default_rng(2)
    u = (rng.random((5, 8)) < 0.5).astype(float)
    w = (rng.random((5, 8)) < 0.5).astype(float)
    v = (rng.random((5, 8)) < 0.5).astype(float)
    out = analysis.ensemble_gaps(u, {"a": w, "b": w, "c": v})
    assert list(out)[:3] == [("a",), ("b",), ("c",)] and list(out)[-1] == ("a", "b", "c")
    np.testing.assert_array_equal(out[("a", "b")].ver, out[("a",)].ver)
    np.testing.assert_array_equal(out[("a", "b", "c")].ver, out[("a", "c")].ver)
    np.testing.assert_array_equal(analysis.and_filter([w, v]), w * v)
    with pytest.raises(ValueError, match="0/1"):
        analysis.and_filter([w * 0.5])


def test_ensemble_exceptions_of_the_papers_table_3():
    cols = paper_numbers.ENSEMBLE_COLUMNS
    rows, source = claims.paper_ensemble("Qwen-2")
    assert "Tab. 3" in source and set(rows) == set(paper_numbers.FAMILIES["Qwen-2"])
    counts = [analysis.ensemble_exceptions(rows[m]) for m in paper_numbers.FAMILIES["Qwen-2"]]
    # 0.5B: MC+CoT-B, MC+CoT-S and All below MC alone; 1.5B: MC+CoT-B below MC; none has a negative member
    assert [c["below_best_member"] for c in counts] == [3, 1, 0, 0]
    assert all(c["with_negative_member"] == 0 and c["combinations"] == 4 for c in counts)
    assert counts[0]["below"] == ["mc+cot_binary", "mc+cot_score", "mc+cot_binary+cot_score"]
    negative = {("a",): -0.02, ("b",): 0.01, ("a", "b"): -0.01}
    assert analysis.ensemble_exceptions(negative) == {"combinations": 1, "with_negative_member": 1, "stay_negative": 1,
                                                      "below_best_member": 1, "all_zero": 0, "below": ["a+b"]}
    blind = {("a",): 0.0, ("b",): 0.0, ("c",): 0.02, ("a", "b"): 0.0, ("a", "c"): 0.0}
    out = analysis.ensemble_exceptions(blind)
    assert (out["all_zero"], out["below_best_member"]) == (1, 1)  # a+b changes nothing; a+c loses c's gap
    assert len(cols) == 7


def test_rates_by_accuracy():
    u = np.array([[1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=float)
    w = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=float)
    out = analysis.rates_by_accuracy(u, w, bins=[0, 0.5, 1])
    assert out.prompts.tolist() == [1, 1]  # the all-right prompt has no wrong sample: left out
    assert out.tpr.tolist() == [1.0, 1.0] and out.fpr.tolist() == pytest.approx([1 / 3, 0.0])


def test_split_at_budget():
    u = np.array([[1, 0, 1, 0]], dtype=float)
    scores = np.array([[[9, 9, 9, 9]], [[9, 1, 9, 1]]], dtype=float)  # a blind first verification, a sharp second
    out = analysis.split_at_budget(u, scores, tau=8, generation_cost=10, verification_cost=1, ns=[2, 4], ms=[1, 2])
    got = out.set_index(["n", "m"])
    # one verification keeps everything (0.5); the mean of two, [9, 5, 9, 5], keeps only the right samples
    assert got.loc[(4, 1), "filtered_accuracy"] == 0.5 and got.loc[(4, 2), "filtered_accuracy"] == 1.0
    assert got.loc[(2, 2), "filtered_accuracy"] == 1.0 and got.loc[(2, 2), "cost"] == 2 * (10 + 2)
    shared = analysis.split_at_budget(u, scores, tau=8, generation_cost=10, verification_cost=1, ns=[2], ms=[1],
                                      prompt_cost=5)
    assert shared.cost.tolist() == [5 + 2 * 11]
    out = out[out.n == 4]
    best = analysis.best_split(out, budget=4 * 12)
    assert (best.n, best.m) == (4, 2) and analysis.best_split(out, budget=1) is None
    with pytest.raises(ValueError, match="do not fit"):
        analysis.split_at_budget(u, scores, tau=8, generation_cost=1, verification_cost=1, ns=[3], ms=[1])


def test_verification_seeds():
    seeds = [claims.verification_seed(7, j) for j in range(4)]
    assert seeds[0] == 7 and len(set(seeds)) == 4
    assert seeds == [claims.verification_seed(7, j) for j in range(4)]
    with pytest.raises(ValueError, match=">= 0"):
        claims.verification_seed(7, -1)


def test_binned_prediction_follows_rates_that_vary_with_accuracy():
    # hard prompts (acc 1/4): the filter keeps only the right sample; easy ones (acc 3/4): it keeps everything
    u = np.array([[1, 0, 0, 0]] * 4 + [[1, 1, 1, 0]] * 4, dtype=float)
    w = np.array([[1, 0, 0, 0]] * 4 + [[1, 1, 1, 1]] * 4, dtype=float)
    measured = gap_from_weights(u, w)
    binned = analysis.binned_prediction(u, w, bins=[0, 0.5, 1])
    assert binned.absolute == pytest.approx(measured.absolute)  # per-bin rates (1, 0) and (1, 1): exact here
    pooled = analysis.prediction_check(u, w, n_boot=100)
    assert abs(pooled["predicted_gap"] - measured.absolute) > 0.05  # pooled rates (1, 0.25) miss
    assert pooled["binned_gap"] == pytest.approx(binned.absolute) and pooled["binned_inside"] is True
    with pytest.raises(ValueError, match="undefined"):
        analysis.binned_prediction(np.ones((2, 2)), np.ones((2, 2)))
