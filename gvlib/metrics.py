"""[metrics] The paper's metrics, exactly (Song et al. 2025, §2, §3, App. A).

All functions take arrays shaped ``(prompts, samples)``: row x holds the n samples y_1..y_n drawn
for prompt x, with utilities ``u`` (in [0, 1]) and verifier scores ``s``.

Conventions the paper leaves open, decided once here (and stated on the book's definitions page):

* The estimator is **per prompt, then averaged over prompts** (paper §3), never pooled.
* A prompt where **nothing survives** the filter keeps its unfiltered samples: its ver_x = acc_x and
  it contributes 0 to both gaps.
* A prompt with **acc_x = 1** (= U_max) contributes 0 to the relative gap (the 0/0 of Def. 2.2).
* Thresholds are **strict** by default (keep ``s > tau``, as in App. D's Algorithm 1 and Fig. 2's
  ``1{.>0.5}``); ``strict=False`` keeps ``s >= tau``. The same applies to a per-prompt quantile.
* Gaps are **fractions**, not percent (the paper's tables multiply by 100).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.stats import rankdata

__all__ = [
    "GapResult",
    "gap",
    "gap_from_weights",
    "filter_weights",
    "pass_at_k",
    "fit_log_linear",
    "bootstrap_ci",
    "roc_auc",
    "within_prompt_auc",
    "filter_rates",
    "predicted_ver",
    "predicted_gap",
    "FLOPS_UNIT",
]

#: The x-axis unit of the paper's Fig. 1: x = ln(FLOPs / 1e21).
FLOPS_UNIT = 1e21


def _as_2d(name: str, a) -> np.ndarray:
    arr = np.asarray(a, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must have shape (prompts, samples); got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"`{name}` is empty (shape {arr.shape}); need at least one prompt and one sample")
    if np.isnan(arr).any():
        raise ValueError(f"`{name}` contains NaN")
    return arr


def _check_utilities(u) -> np.ndarray:
    u = _as_2d("u", u)
    if (u < 0).any() or (u > 1).any():
        bad = u[(u < 0) | (u > 1)][0]
        raise ValueError(f"utilities `u` must lie in [0, 1] (U_min = 0, U_max = 1, paper §2); found {bad!r}")
    return u


@dataclass(frozen=True)
class GapResult:
    """The generation-verification gap of one (generator, verifier, filter), paper Defs. 2.1-2.2.

    ``absolute`` = mean_x (ver_x - acc_x); ``relative`` = mean_x (ver_x - acc_x) / (1 - acc_x), with
    acc_x = 1 contributing 0. Both are fractions. Per-prompt arrays are kept for CIs and plots.
    """

    acc: np.ndarray  #: per-prompt accuracy of the generator, acc_x = mean_i u_i
    ver: np.ndarray  #: per-prompt accuracy after the filter/reweighting, ver_x
    kept: np.ndarray  #: per-prompt total weight kept (number of survivors for a 0/1 filter)
    per_prompt_absolute: np.ndarray = field(repr=False)
    per_prompt_relative: np.ndarray = field(repr=False)

    @property
    def absolute(self) -> float:
        return float(self.per_prompt_absolute.mean())

    @property
    def relative(self) -> float:
        return float(self.per_prompt_relative.mean())

    @property
    def accuracy(self) -> float:
        """J(f): the generator's mean accuracy over prompts."""
        return float(self.acc.mean())

    @property
    def filtered_accuracy(self) -> float:
        """J(f[w(u_hat)]): accuracy of the filtered (reweighted) distribution."""
        return float(self.ver.mean())

    @property
    def n_prompts(self) -> int:
        return int(self.acc.shape[0])

    @property
    def n_empty(self) -> int:
        """Prompts where nothing survived the filter (kept unfiltered, gap 0)."""
        return int((self.kept == 0).sum())

    @property
    def n_perfect(self) -> int:
        """Prompts with acc_x = 1 (relative gap 0 by convention)."""
        return int((self.acc >= 1).sum())

    def ci(self, kind: str = "relative", *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
        """Percentile bootstrap CI over prompts of the ``"relative"`` or ``"absolute"`` gap."""
        values = {"relative": self.per_prompt_relative, "absolute": self.per_prompt_absolute}
        if kind not in values:
            raise ValueError(f"`kind` must be 'relative' or 'absolute'; got {kind!r}")
        return bootstrap_ci(np.mean, values[kind], n_boot=n_boot, level=level, seed=seed)

    def summary(self, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
        """A JSON-ready dict: accuracies, gaps with CIs, and the convention counts."""
        rel_lo, rel_hi = self.ci("relative", n_boot=n_boot, level=level, seed=seed)
        abs_lo, abs_hi = self.ci("absolute", n_boot=n_boot, level=level, seed=seed)
        return {
            "accuracy": self.accuracy,
            "filtered_accuracy": self.filtered_accuracy,
            "gap": self.absolute,
            "gap_ci": [abs_lo, abs_hi],
            "relative_gap": self.relative,
            "relative_gap_ci": [rel_lo, rel_hi],
            "ci_level": level,
            "n_prompts": self.n_prompts,
            "n_empty": self.n_empty,
            "n_perfect": self.n_perfect,
        }


def filter_weights(s, *, tau: float | None = None, quantile: float | None = None, strict: bool = True) -> np.ndarray:
    """The rejection-sampling weights w(s) = 1[s > tau] (or >= with ``strict=False``), paper §2.

    Exactly one of ``tau`` (one global threshold, the paper's "tau = n") or ``quantile`` (a per-prompt
    threshold tau_x = the q-quantile of that prompt's scores, the paper's "top q" / "quantile-q";
    ``quantile=0.8`` keeps roughly the top 20%) must be given.
    """
    s = _as_2d("s", s)
    if (tau is None) == (quantile is None):
        raise ValueError("give exactly one of `tau` (a global threshold) or `quantile` (a per-prompt threshold)"
                         f"; got tau={tau!r}, quantile={quantile!r}")
    if quantile is not None:
        if not 0.0 <= quantile <= 1.0:
            raise ValueError(f"`quantile` must lie in [0, 1]; got {quantile!r}")
        threshold = np.quantile(s, quantile, axis=1, keepdims=True)
    else:
        if not np.isfinite(tau):
            raise ValueError(f"`tau` must be a finite number; got {tau!r}")
        threshold = tau
    return (s > threshold if strict else s >= threshold).astype(float)


def gap_from_weights(u, w) -> GapResult:
    """The gap of the reweighted generator f[w(u_hat)] (paper §2, Defs. 2.1-2.2), per prompt then averaged.

    ``w`` are non-negative weights per sample (0/1 for a filter, e.g. tournament survivors, or
    exp(s / beta) for the KL-regularised form). ver_x = sum_i w_i u_i / sum_i w_i; a prompt whose
    weights sum to 0 keeps its unfiltered samples.
    """
    u = _check_utilities(u)
    w = _as_2d("w", w)
    if w.shape != u.shape:
        raise ValueError(f"`u` and the scores/weights must have the same shape; got u {u.shape} and {w.shape}")
    if (w < 0).any():
        raise ValueError("weights `w` must be non-negative")
    acc = u.mean(axis=1)
    kept = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ver = np.where(kept > 0, (w * u).sum(axis=1) / np.where(kept > 0, kept, 1.0), acc)
    return _gap_result(acc, ver, kept)


def _gap_result(acc: np.ndarray, ver: np.ndarray, kept: np.ndarray) -> GapResult:
    """The per-prompt gaps of Defs. 2.1-2.2 from acc_x and ver_x (acc_x = 1 contributes 0 to the relative gap)."""
    absolute = ver - acc
    shortfall = 1.0 - acc
    relative = np.where(shortfall > 0, absolute / np.where(shortfall > 0, shortfall, 1.0), 0.0)
    return GapResult(acc=acc, ver=ver, kept=kept, per_prompt_absolute=absolute, per_prompt_relative=relative)


def gap(u, s, *, tau: float | None = None, quantile: float | None = None, strict: bool = True) -> GapResult:
    """gap(f, g) and gap_rel(f, g) with the rejection filter w(s) = 1[s > tau] (paper §2, §3, Defs. 2.1-2.2).

    Parameters
    ----------
    u : (prompts, samples) utilities in [0, 1]
    s : (prompts, samples) verifier scores u_hat_g(x, y_i)
    tau : one global threshold for all prompts (the paper's "tau = n")
    quantile : per-prompt threshold at this quantile of the prompt's scores (the paper's "top q")
    strict : keep ``s > threshold`` (default) or ``s >= threshold``

    Example: the paper's Fig. 2 (5 samples, 3 correct, labels 1,1,0,0,1, w = 1{.>0.5}) gives
    ``gap([[1,1,0,0,0]], [[1,1,0,0,1]], tau=0.5).absolute == 2/3 - 3/5`` (6.7%).
    """
    u = _check_utilities(u)
    s = _as_2d("s", s)
    if s.shape != u.shape:
        raise ValueError(f"`u` and `s` must have the same shape (prompts, samples); got u {u.shape} and s {s.shape}")
    return gap_from_weights(u, filter_weights(s, tau=tau, quantile=quantile, strict=strict))


def pass_at_k(n, c, k):
    """The unbiased pass@k estimator 1 - C(n-c, k) / C(n, k) (Chen et al. 2021; paper §5 fn. 6).

    Vectorised over ``n`` and ``c`` (broadcast together); ``k`` is a positive integer. Computed as
    1 - prod_{i=n-c+1}^{n} (1 - k/i) in log space, which is exact to rounding for n in the thousands.
    ``k > n`` raises ValueError.
    """
    n_arr, c_arr = np.broadcast_arrays(np.asarray(n), np.asarray(c))
    if int(k) != k or k < 1:
        raise ValueError(f"`k` must be a positive integer; got {k!r}")
    k = int(k)
    for name, arr in (("n", n_arr), ("c", c_arr)):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError(f"`{name}` must hold integers; got {arr!r}")
    if (n_arr < 1).any():
        raise ValueError("`n` (samples per prompt) must be >= 1")
    if ((c_arr < 0) | (c_arr > n_arr)).any():
        raise ValueError("`c` (correct samples) must satisfy 0 <= c <= n")
    if (k > n_arr).any():
        raise ValueError(f"`k`={k} exceeds the number of samples n={int(n_arr.min())}: pass@k needs k <= n")
    out = np.empty(n_arr.shape, dtype=float)
    for idx, (ni, ci) in enumerate(zip(n_arr.ravel().astype(int), c_arr.ravel().astype(int))):
        if ni - ci < k:
            out.flat[idx] = 1.0
        else:
            out.flat[idx] = -np.expm1(np.log1p(-k / np.arange(ni - ci + 1, ni + 1)).sum())
    return out if out.ndim else float(out)


def fit_log_linear(flops, values) -> tuple[float, float, float]:
    """OLS of ``values`` on x = ln(FLOPs / 1e21), as the dashed lines of the paper's Fig. 1 (§4.1).

    Returns ``(slope, intercept, r2)``; the slope is in units of ``values`` per e-fold of FLOPs.
    """
    flops = np.asarray(flops, dtype=float).ravel()
    y = np.asarray(values, dtype=float).ravel()
    if flops.shape != y.shape:
        raise ValueError(f"`flops` and `values` must have the same length; got {flops.size} and {y.size}")
    if flops.size < 2:
        raise ValueError("`flops` needs at least two points to fit a line")
    if (flops <= 0).any() or not np.isfinite(flops).all():
        raise ValueError("`flops` must be positive and finite")
    if not np.isfinite(y).all():
        raise ValueError("`values` must be finite")
    x = np.log(flops / FLOPS_UNIT)
    if np.ptp(x) == 0:
        raise ValueError("`flops` are all equal: the slope is undefined")
    slope, intercept = np.polyfit(x, y, 1)
    ss_res = float(((y - (slope * x + intercept)) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return float(slope), float(intercept), float(r2)


def bootstrap_ci(statistic: Callable[..., float], *arrays, n_boot: int = 2000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic(*arrays)``, resampling prompts (axis 0) with replacement.

    Every array is resampled with the same prompt indices, so ``bootstrap_ci(lambda u, s: gap(u, s,
    tau=8).relative, u, s)`` gives the CI of a relative gap over prompts (paper §3 reports none;
    the book adds them).
    """
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array to resample")
    arrays = [np.asarray(a) for a in arrays]
    m = arrays[0].shape[0]
    if any(a.shape[0] != m for a in arrays):
        raise ValueError(f"all arrays must have the same number of prompts (axis 0); got {[a.shape[0] for a in arrays]}")
    if not 0 < level < 1:
        raise ValueError(f"`level` must lie in (0, 1); got {level!r}")
    if n_boot < 1:
        raise ValueError(f"`n_boot` must be >= 1; got {n_boot!r}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, m, size=(n_boot, m))
    if statistic is np.mean and len(arrays) == 1 and arrays[0].ndim == 1:
        stats = arrays[0][idx].mean(axis=1)  # fast path: the mean of per-prompt values
    else:
        stats = np.array([statistic(*(a[i] for a in arrays)) for i in idx])
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return float(lo), float(hi)


def roc_auc(u, s) -> float | None:
    """The verifier's ROC AUC: P(score of a correct sample > score of an incorrect one), ties counted half.

    ``u`` (0/1 correctness) and ``s`` (verifier scores) are pooled over every (prompt, sample) pair,
    any shape, the same for both. This is the area under the ROC curve of the threshold filters
    1[s > tau] the paper sweeps (§6, Fig. 5): 1 separates correct from incorrect samples at some
    threshold, 0.5 is chance whatever the threshold. Computed from midranks (the Mann-Whitney U
    statistic over n_correct * n_incorrect), the definition ``sklearn.metrics.roc_auc_score`` uses.
    Returns None when every sample is correct or every sample is incorrect (the AUC is undefined).
    """
    u_arr, s_arr = np.asarray(u, dtype=float), np.asarray(s, dtype=float)
    if u_arr.shape != s_arr.shape:
        raise ValueError(f"`u` and `s` must have the same shape; got u {u_arr.shape} and s {s_arr.shape}")
    if u_arr.size == 0:
        raise ValueError("`u` and `s` are empty: need at least one sample")
    if np.isnan(s_arr).any():
        raise ValueError("`s` contains NaN")
    if not np.isin(u_arr, (0.0, 1.0)).all():
        raise ValueError(f"`u` must be 0/1 correctness for an ROC AUC; found {u_arr[~np.isin(u_arr, (0.0, 1.0))][0]!r}")
    pos = u_arr.ravel() == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(s_arr.ravel())  # midranks: tied scores share their mean rank
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def within_prompt_auc(u, s) -> float | None:
    """The verifier's within-prompt ROC AUC: :func:`roc_auc` of each mixed prompt's samples (0 < acc_x < 1),
    averaged over those prompts with equal weight.

    The gap is computed per prompt (§3): a filter raises ver_x above acc_x only by ranking prompt x's
    correct samples above its incorrect ones. The pooled :func:`roc_auc` also credits a verifier that
    ranks *prompts* (an easy prompt's samples scored above a hard one's) and can be well above 0.5
    while every prompt's filter is at chance; this one cannot. 0.5 is chance, 1 a verifier that puts
    every correct sample of every prompt above its incorrect ones. Returns None when no prompt is mixed.
    """
    u_arr, s_arr = _as_2d("u", u), _as_2d("s", s)
    if u_arr.shape != s_arr.shape:
        raise ValueError(f"`u` and `s` must have the same shape; got u {u_arr.shape} and s {s_arr.shape}")
    per_prompt = [roc_auc(ux, sx) for ux, sx in zip(u_arr, s_arr)]
    mixed = [a for a in per_prompt if a is not None]
    return float(np.mean(mixed)) if mixed else None


def filter_rates(u, w) -> tuple[float | None, float | None]:
    """The filter's true and false positive rates: (TPR, FPR) = (P(kept | right), P(kept | wrong)).

    ``u`` (0/1 correctness) and ``w`` (the filter's 0/1 keep decisions, e.g. :func:`filter_weights`
    or the tournament's survivors; weights in [0, 1] count as keep probabilities) are pooled over
    every (prompt, sample) pair. One point of the verifier's ROC curve, the curve that the paper's
    threshold sweeps trace (§6, Fig. 5). A rate is None when no sample is right (TPR) or wrong (FPR).
    """
    u_arr, w_arr = _as_2d("u", u), _as_2d("w", w)
    if u_arr.shape != w_arr.shape:
        raise ValueError(f"`u` and `w` must have the same shape; got u {u_arr.shape} and w {w_arr.shape}")
    if not np.isin(u_arr, (0.0, 1.0)).all():
        raise ValueError("`u` must be 0/1 correctness for true and false positive rates")
    if (w_arr < 0).any() or (w_arr > 1).any():
        raise ValueError("`w` must hold keep decisions in [0, 1]")
    right, wrong = u_arr.sum(), (1 - u_arr).sum()
    tpr = float((w_arr * u_arr).sum() / right) if right else None
    fpr = float((w_arr * (1 - u_arr)).sum() / wrong) if wrong else None
    return tpr, fpr


def predicted_ver(acc, tpr, fpr, *, n: int | None = None) -> np.ndarray:
    """ver_x predicted from acc_x alone by a filter that keeps each right sample with probability TPR and
    each wrong one with probability FPR, independently (the paper's Defs. 2.1-2.2 then give the gaps).

    With ``n`` None: ver = a·TPR / (a·TPR + (1 − a)·FPR), the limit of many samples per prompt; a prompt
    the filter keeps nothing of in expectation (a·TPR + (1 − a)·FPR = 0) keeps its unfiltered samples
    (ver = acc), the convention of :func:`gap_from_weights`. With ``n`` samples per prompt (acc = c / n):
    the exact expectation of ver_x over the filter's draws, K_right ~ Bin(c, TPR) and K_wrong ~ Bin(n − c,
    FPR), ver = K_right / (K_right + K_wrong), and acc where nothing is kept (the same convention; it pulls a
    strict filter's gap towards 0 when few samples pass).

    ``acc`` holds per-prompt accuracies; ``tpr`` and ``fpr`` are numbers or per-prompt arrays.
    """
    a = np.asarray(acc, dtype=float)
    t, f = np.broadcast_arrays(np.asarray(tpr, dtype=float), np.asarray(fpr, dtype=float))
    for name, arr in (("acc", a), ("tpr", t), ("fpr", f)):
        if np.isnan(arr).any() or (arr < 0).any() or (arr > 1).any():
            raise ValueError(f"`{name}` must lie in [0, 1] (no NaN)")
    if n is None:
        kept = a * t + (1 - a) * f
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(kept > 0, a * t / np.where(kept > 0, kept, 1.0), a)
    if int(n) != n or n < 1:
        raise ValueError(f"`n` must be a positive number of samples per prompt; got {n!r}")
    c = np.rint(a * n)
    if not np.allclose(c, a * n, atol=1e-6):
        raise ValueError(f"`acc` must be multiples of 1/n = 1/{n} (right samples / samples) for a finite-n prediction")
    c, t, f = np.broadcast_arrays(c.astype(int), t, f)
    out = np.empty(c.shape, dtype=float)
    memo: dict[tuple, float] = {}
    for idx in np.ndindex(c.shape):
        key = (int(c[idx]), float(t[idx]), float(f[idx]))
        if key not in memo:
            memo[key] = _expected_ver(int(n), *key)
        out[idx] = memo[key]
    return out if out.ndim else float(out)


def _expected_ver(n: int, c: int, tpr: float, fpr: float) -> float:
    """E[K_r / (K_r + K_w)] for K_r ~ Bin(c, tpr), K_w ~ Bin(n - c, fpr), c / n where K_r + K_w = 0."""
    from scipy.stats import binom

    i, j = np.arange(c + 1)[:, None], np.arange(n - c + 1)[None, :]
    p = binom.pmf(i, c, tpr) * binom.pmf(j, n - c, fpr)
    total = i + j
    ver = np.where(total > 0, i / np.where(total > 0, total, 1), c / n)
    return float((p * ver).sum())


def predicted_gap(acc, tpr, fpr, *, n: int | None = None) -> GapResult:
    """The gaps (Defs. 2.1-2.2) that :func:`predicted_ver` predicts for prompts of accuracy ``acc`` (with
    ``n`` samples per prompt, or many).

    ``kept`` holds each prompt's expected kept share a·TPR + (1 − a)·FPR. With many samples the gap
    depends on the verifier only through FPR / TPR: a filter with TPR = FPR (it cannot tell right from
    wrong) predicts 0, a perfect one (TPR 1, FPR 0) predicts ver = 1 wherever acc > 0.
    """
    a = np.atleast_1d(np.asarray(acc, dtype=float))
    ver = np.atleast_1d(predicted_ver(a, tpr, fpr, n=n))
    t, f = np.broadcast_arrays(np.asarray(tpr, dtype=float), np.asarray(fpr, dtype=float))
    return _gap_result(a, ver, np.broadcast_to(a * t + (1 - a) * f, a.shape).astype(float))
