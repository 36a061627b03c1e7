"""[metrics] Verification under the microscope (paper §6, Figs. 5-7, 17-19, Tabs. 3 and 8), and what explains a gap.

Everything here reads samples' utilities ``u`` and verifier scores or keep decisions ``w``, arrays shaped
(prompts, samples) as in :mod:`gvlib.metrics`, whose gaps, conventions and bootstrap it uses:

* **Threshold sweeps** (§6.1, Fig. 5): the gap as a filter's threshold varies, and the paper's advice
  "tune the threshold on a small model, transfer it" (§6.1) as a loss: :func:`threshold_sweep`,
  :func:`transfer_loss`.
* **Tournament by round** (§6.1, Fig. 6): :func:`tournament_by_round`.
* **Non-overlap** (§6, Figs. 7, 18, 19): per-prompt gap spreads and Pearson correlations:
  :func:`gap_spread`, :func:`pearson`, :func:`correlations`.
* **AND-ensembles** (§6, Tabs. 3 and 8): keep a sample only if every filter keeps it:
  :func:`ensemble_gaps`, :func:`ensemble_exceptions`.
* **The gap from the verifier's ROC** (beyond the paper): a filter with true and false positive rates
  (TPR, FPR) predicts each prompt's ver_x from its acc_x (:func:`gvlib.metrics.predicted_ver`);
  :func:`prediction_check` compares the prediction with the measured gap, :func:`rates_by_accuracy`
  shows where the rates vary with the prompt, :func:`gvlib.metrics.gap_from_weights` with ``w = u`` is
  the perfect verifier, and :func:`likelihood_ratio_for` the verifier quality a given gain needs.
* **Verification compute** (beyond the paper, which lists more verifications per generation as future
  work): :func:`split_at_budget`, :func:`best_split`.
"""
from __future__ import annotations

from itertools import combinations
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from gvlib.metrics import GapResult, filter_rates, gap, gap_from_weights, predicted_gap

__all__ = ["threshold_sweep", "transfer_loss", "tournament_by_round", "gap_spread", "pearson", "correlations",
           "and_filter", "ensemble_gaps", "ensemble_exceptions", "prediction_check", "rates_by_accuracy", "binned_prediction",
           "likelihood_ratio_for", "split_at_budget", "best_split"]


def threshold_sweep(u, s, *, taus: Sequence[float] = (), quantiles: Sequence[float] = (),
                    strict: bool = True) -> dict[float, GapResult]:
    """The gap at each global threshold in ``taus`` or each per-prompt quantile in ``quantiles`` (one of
    the two), as the paper's Fig. 5 sweeps MC (quantile q and global τ) and CoT-Score (τ) (§6.1)."""
    if bool(len(taus)) == bool(len(quantiles)):
        raise ValueError("give the thresholds to sweep as exactly one of `taus` or `quantiles`")
    if len(taus):
        return {float(t): gap(u, s, tau=t, strict=strict) for t in taus}
    return {float(q): gap(u, s, quantile=q, strict=strict) for q in quantiles}


def transfer_loss(gaps: Mapping[str, Mapping[float, float]], source: str) -> pd.DataFrame:
    """The paper's advice "tune the threshold on a small model and transfer it" (§6.1), as a loss.

    ``gaps[model][threshold]``: a model's gap at each threshold of a sweep (the same thresholds for
    every model); ``source``: the model the threshold is tuned on (the smallest). One row per model:
    its own best threshold and gap, the gap at the source's best threshold, and the loss (own best
    minus transferred, ≥ 0; 0 when the best thresholds agree).
    """
    if source not in gaps:
        raise ValueError(f"the source model {source!r} is not among the swept models {list(gaps)}")
    grids = {m: sorted(g) for m, g in gaps.items()}
    if any(t != grids[source] for t in grids.values()):
        raise ValueError("every model must be swept over the same thresholds")
    if not grids[source]:
        raise ValueError("the sweep is empty")

    def best(m: str) -> float:
        return max(grids[m], key=lambda t: gaps[m][t])  # ties: the lowest threshold

    chosen = best(source)
    rows = [{"model": m, "best_threshold": best(m), "best_gap": gaps[m][best(m)], "transferred_threshold": chosen,
             "transferred_gap": gaps[m][chosen], "loss": gaps[m][best(m)] - gaps[m][chosen]} for m in gaps]
    return pd.DataFrame(rows)


def tournament_by_round(u, survivors, position_bias: Sequence[float | None] = ()) -> pd.DataFrame:
    """Filtered accuracy after each round of the tournament (paper §6.1, Fig. 6), with the round's
    position bias P(prefer the solution shown first) where given (round 0, before any match, has none).

    ``survivors``: (rounds + 1, prompts, samples) 0/1 masks, round 0 all samples
    (:attr:`gvlib.verifiers.Verification.survivors`); ``position_bias``: one value per round 1..R.
    """
    surv = np.asarray(survivors, dtype=float)
    if surv.ndim != 3:
        raise ValueError(f"`survivors` must have shape (rounds + 1, prompts, samples); got {surv.shape}")
    if position_bias and len(position_bias) != surv.shape[0] - 1:
        raise ValueError(f"{len(position_bias)} position biases for {surv.shape[0] - 1} rounds")
    rows = []
    for r, mask in enumerate(surv):
        res = gap_from_weights(u, mask)
        rows.append({"round": r, "survivors": float(res.kept.mean()), "filtered_accuracy": res.filtered_accuracy,
                     "gap": res.absolute, "position_bias": position_bias[r - 1] if position_bias and r else None})
    out = pd.DataFrame(rows)
    out["gain_over_previous"] = out.filtered_accuracy.diff()
    return out


def pearson(x, y) -> float | None:
    """Pearson's correlation of two equally long arrays (flattened); None when either is constant."""
    a, b = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"need arrays of the same size; got {a.size} and {b.size}")
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def correlations(values: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Pearson correlations between every pair of named arrays (paper §6, Figs. 7, 18: the verifiers'
    scores û over samples, or their per-prompt gaps over prompts); None where one is constant."""
    names = list(values)
    return pd.DataFrame([[pearson(values[a], values[b]) for b in names] for a in names], index=names, columns=names)


def gap_spread(results: Mapping[str, GapResult]) -> pd.DataFrame:
    """Per method: the mean and standard deviation over prompts of the per-prompt gap ver_x − acc_x, and
    its Pearson correlation with acc_x (paper §6, Fig. 7: MC far more dispersed than CoT)."""
    rows = [{"method": name, "mean": float(r.per_prompt_absolute.mean()), "sd": float(r.per_prompt_absolute.std()),
             "corr_with_accuracy": pearson(r.per_prompt_absolute, r.acc)} for name, r in results.items()]
    return pd.DataFrame(rows).set_index("method")


def and_filter(weights: Sequence) -> np.ndarray:
    """Keep a sample only if every filter keeps it: the product of 0/1 keep decisions (paper §6)."""
    if not len(weights):
        raise ValueError("an AND-ensemble needs at least one filter")
    arrays = [np.asarray(w, dtype=float) for w in weights]
    if any(a.shape != arrays[0].shape for a in arrays):
        raise ValueError(f"the filters' keep decisions differ in shape: {[a.shape for a in arrays]}")
    if any(not np.isin(a, (0.0, 1.0)).all() for a in arrays):
        raise ValueError("AND-ensembles combine 0/1 keep decisions")
    return np.prod(arrays, axis=0)


def ensemble_gaps(u, weights: Mapping[str, np.ndarray]) -> dict[tuple[str, ...], GapResult]:
    """The gap of every single filter and every AND-combination of them (paper §6, Tabs. 3 and 8),
    singles first, then pairs, ..., all; each combination in the order ``weights`` names the filters."""
    names = list(weights)
    return {combo: gap_from_weights(u, and_filter([weights[n] for n in combo]))
            for k in range(1, len(names) + 1) for combo in combinations(names, k)}


def ensemble_exceptions(gaps: Mapping[tuple[str, ...], float]) -> dict:
    """The paper's exceptions to "an AND-ensemble helps" (§6, Tab. 8), counted over the combinations of
    two or more filters in ``gaps`` ({combination: gap}, with every single filter as a 1-tuple):

    * ``with_negative_member``: combinations that include a filter whose own gap is negative, and
      ``stay_negative``: those of them whose own gap is negative too (Qwen-1.5 0.5/14/32B's MC);
    * ``below_best_member``: combinations whose gap is below the best gap of their members (Llama-3.1
      8B's All < MC), listed in ``below``;
    * ``all_zero``: combinations whose gap and every member's gap are 0 (filters that change nothing):
      they reach their best member by construction, and show nothing about ensembles.
    """
    single = {c[0]: g for c, g in gaps.items() if len(c) == 1}
    combos = {c: g for c, g in gaps.items() if len(c) > 1}
    missing = sorted({n for c in combos for n in c if n not in single})
    if missing:
        raise ValueError(f"the single-filter gaps of {missing} are missing")
    negative = [c for c in combos if any(single[n] < 0 for n in c)]
    below = [c for c, g in combos.items() if g < max(single[n] for n in c)]
    zero = [c for c, g in combos.items() if abs(g) < 1e-12 and all(abs(single[n]) < 1e-12 for n in c)]
    return {"combinations": len(combos), "with_negative_member": len(negative),
            "stay_negative": sum(combos[c] < 0 for c in negative), "below_best_member": len(below),
            "all_zero": len(zero), "below": ["+".join(c) for c in below]}


def prediction_check(u, w, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """The gap a filter's pooled (TPR, FPR) predicts (:func:`gvlib.metrics.predicted_gap`) against the gap it
    measured, with the measured gap's bootstrap interval over prompts. ``predicted_gap``: the exact
    expectation with the prompts' own n samples (and the empty-prompt convention); ``formula_gap``: the
    many-samples formula a·TPR / (a·TPR + (1 − a)·FPR); ``binned_gap``: the exact expectation with each
    prompt's rates taken from its accuracy bin (:func:`binned_prediction`). ``inside`` / ``formula_inside`` /
    ``binned_inside``: that prediction lies in the interval. Gaps as fractions; the predictions (and whether
    they lie inside) are None when the rates are undefined (no right or no wrong sample)."""
    measured = gap_from_weights(u, w)
    lo, hi = measured.ci("absolute", n_boot=n_boot, level=level, seed=seed)
    rlo, rhi = measured.ci("relative", n_boot=n_boot, level=level, seed=seed)
    tpr, fpr = filter_rates(u, w)
    out = {"tpr": tpr, "fpr": fpr, "gap": measured.absolute, "gap_ci": [lo, hi], "relative_gap": measured.relative,
           "relative_gap_ci": [rlo, rhi], "predicted_gap": None, "predicted_relative_gap": None, "inside": None,
           "formula_gap": None, "formula_inside": None, "binned_gap": None, "binned_inside": None}
    if tpr is None or fpr is None:
        return out

    def inside(x: float) -> bool:
        return bool(lo - 1e-12 <= x <= hi + 1e-12)

    pred = predicted_gap(measured.acc, tpr, fpr, n=np.asarray(u).shape[-1])
    formula = predicted_gap(measured.acc, tpr, fpr).absolute
    binned = binned_prediction(u, w).absolute
    return {**out, "predicted_gap": pred.absolute, "predicted_relative_gap": pred.relative,
            "inside": inside(pred.absolute), "formula_gap": formula, "formula_inside": inside(formula),
            "binned_gap": binned, "binned_inside": inside(binned)}


def _binned_rates(u, w, bins: Sequence[float]) -> list[tuple[str, np.ndarray, float | None, float | None]]:
    """(label, prompt mask, TPR, FPR) per accuracy bin, over the prompts with 0 < acc_x < 1."""
    u_arr, w_arr = np.asarray(u, dtype=float), np.asarray(w, dtype=float)
    edges = np.asarray(bins, dtype=float)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"`bins` must be increasing edges, at least two; got {list(bins)}")
    acc = u_arr.mean(axis=1)
    mixed = (acc > 0) & (acc < 1)
    out = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        inside = mixed & (acc <= hi) & ((acc > lo) if i else (acc >= lo))
        rates = filter_rates(u_arr[inside], w_arr[inside]) if inside.any() else (None, None)
        out.append((f"({lo:g}, {hi:g}]" if i else f"[{lo:g}, {hi:g}]", inside, *rates))
    return out


def rates_by_accuracy(u, w, bins: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0)) -> pd.DataFrame:
    """(TPR, FPR) of a filter among the prompts of each accuracy bin (0 < acc_x < 1 only: the others have
    no right or no wrong sample): where they vary with acc_x, pooled rates mispredict the gap.
    Bins are (lo, hi] with the first closed; a rate is None where its bin has no such prompt."""
    return pd.DataFrame([{"bin": label, "prompts": int(mask.sum()), "tpr": tpr, "fpr": fpr}
                         for label, mask, tpr, fpr in _binned_rates(u, w, bins)])


def binned_prediction(u, w, bins: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0)) -> GapResult:
    """The gap predicted (:func:`gvlib.metrics.predicted_gap`, exact for the prompts' n samples) with each prompt's
    rates taken from its accuracy bin (:func:`rates_by_accuracy`) instead of pooled: how much of a miss the
    prompt-dependence of the verifier's quality explains. Prompts with acc_x 0 or 1 keep the pooled rates
    (their gap is 0 under any)."""
    u_arr = np.asarray(u, dtype=float)
    tpr, fpr = filter_rates(u_arr, w)
    if tpr is None or fpr is None:
        raise ValueError("the filter's rates are undefined: no right or no wrong sample")
    t, f = np.full(len(u_arr), tpr), np.full(len(u_arr), fpr)
    for _, mask, bin_tpr, bin_fpr in _binned_rates(u_arr, w, bins):
        if mask.any():
            t[mask], f[mask] = bin_tpr, bin_fpr
    return predicted_gap(u_arr.mean(axis=1), t, f, n=u_arr.shape[1])


def likelihood_ratio_for(acc, target_relative_gap: float) -> float | None:
    """The false-to-true positive ratio FPR / TPR a filter needs for prompts of accuracy ``acc`` to reach
    ``target_relative_gap`` (a fraction) under :func:`gvlib.metrics.predicted_gap`, which depends on the
    filter only through that ratio. 0 is a perfect verifier, 1 a blind one. None when even a perfect
    verifier falls short (the target exceeds the share of prompts with 0 < acc_x < 1)."""
    a = np.asarray(acc, dtype=float)

    def rel(ratio: float) -> float:
        return predicted_gap(a, 1.0, ratio).relative

    if not 0 <= target_relative_gap or rel(0.0) < target_relative_gap - 1e-12:
        return None
    lo, hi = 0.0, 1.0  # rel() falls from the perfect verifier's value at 0 to 0 at 1
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if rel(mid) >= target_relative_gap else (lo, mid)
    return lo


def split_at_budget(u, scores, *, tau: float, generation_cost: float, verification_cost: float,
                    ns: Sequence[int], ms: Sequence[int], prompt_cost: float = 0.0, strict: bool = True) -> pd.DataFrame:
    """Filtered accuracy of every split of a per-prompt budget into n samples × m verifications each.

    ``scores``: (m_max, prompts, n_max) independent verification scores of each sample (e.g. m_max
    CoT-Score verifications); a split (n, m) keeps a sample when the mean of its first m scores is
    > ``tau`` (≥ with ``strict=False``), over n of the n_max samples, averaged over the n_max / n disjoint
    blocks of n samples (a prompt where nothing passes keeps its block, :func:`gvlib.metrics.gap`).
    ``generation_cost`` / ``verification_cost``: the FLOPs of one sample / one verification, ``prompt_cost``
    those of reading the prompt once (shared by its samples, e.g. :meth:`gvlib.plan.Call.flops`); a split
    costs prompt_cost + n · (generation_cost + m · verification_cost) per prompt. One row per split.
    """
    sc = np.asarray(scores, dtype=float)
    u_arr = np.asarray(u, dtype=float)
    if sc.ndim != 3 or sc.shape[1:] != u_arr.shape:
        raise ValueError(f"`scores` must have shape (m, prompts, samples) = (m, {u_arr.shape}); got {sc.shape}")
    n_max, m_max = u_arr.shape[1], sc.shape[0]
    bad = [n for n in ns if n < 1 or n_max % n] + [m for m in ms if not 1 <= m <= m_max]
    if bad:
        raise ValueError(f"splits {bad} do not fit {n_max} samples (n must divide it) x {m_max} verifications")
    rows = []
    for m in ms:
        mean = sc[:m].mean(axis=0)
        for n in ns:
            blocks = [gap(u_arr[:, b * n:(b + 1) * n], mean[:, b * n:(b + 1) * n], tau=tau, strict=strict)
                      for b in range(n_max // n)]
            rows.append({"n": n, "m": m, "cost": prompt_cost + n * (generation_cost + m * verification_cost),
                         "accuracy": float(np.mean([r.accuracy for r in blocks])),
                         "filtered_accuracy": float(np.mean([r.filtered_accuracy for r in blocks])),
                         "empty": float(np.mean([r.n_empty for r in blocks]))})
    return pd.DataFrame(rows)


def best_split(splits: pd.DataFrame, budget: float) -> pd.Series | None:
    """The split of :func:`split_at_budget` with the highest filtered accuracy among those costing at most
    ``budget`` (the cheaper one on a tie); None when none fits."""
    fits = splits[splits.cost <= budget * (1 + 1e-12)]
    if fits.empty:
        return None
    return fits.sort_values(["filtered_accuracy", "cost"], ascending=[False, True]).iloc[0]

