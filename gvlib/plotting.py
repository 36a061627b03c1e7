"""[page] The book's figures: one style, static images, the paper's numbers drawn beside ours.

Conventions: no figure titles (captions live in the notebook's
cell metadata and markdown), lowercase axis labels, ``lw=2``, one figure size set here. A panel that
shows the paper's values says so in its own heading ("paper: …"), so the two are never confused.
Every function returns the matplotlib Figure; :func:`save` writes it next to the results JSON.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from gvlib.metrics import FLOPS_UNIT
from gvlib.names import METHOD_LABELS
from gvlib.paths import results_dir

__all__ = ["setup", "save", "scaling_figure", "heatmaps", "gap_bars", "rounds_figure",
           "pass_at_k_figure", "ablation_figure", "line_panels", "prediction_scatter"]

_PALETTE = dict(zip(METHOD_LABELS, sns.color_palette("colorblind", 4)))
_FIGSIZE = (10.0, 4.2)


def setup() -> None:
    """The book's plotting style (call once at the top of a notebook)."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams.update({"figure.figsize": _FIGSIZE, "figure.dpi": 100, "savefig.dpi": 150,
                         "lines.linewidth": 2, "axes.titlesize": "medium", "savefig.bbox": "tight"})


def save(fig: plt.Figure, claim: str, name: str) -> Path:
    """Write ``fig`` as ``results/<claim>-<name>.png`` and return the path."""
    path = results_dir() / f"{claim}-{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _log_flops(flops) -> np.ndarray:
    return np.log(np.asarray(flops, dtype=float) / FLOPS_UNIT)


def _scaling_panel(ax: plt.Axes, points: Mapping[str, tuple], fits: Mapping[str, tuple], *, percent_ci=None,
                   hollow: bool = False) -> None:
    """Relative gap (%) vs ln(FLOPs/1e21): one colour per method, points, optional CI bars, OLS line."""
    for method, (flops, values) in points.items():
        x, y = _log_flops(flops), np.asarray(values, dtype=float)
        color = _PALETTE.get(method)
        label = METHOD_LABELS.get(method, method)
        if method in fits:
            slope, intercept, r2 = fits[method]
            xs = np.linspace(x.min(), x.max(), 2)
            ax.plot(xs, slope * xs + intercept, ls="--", color=color, lw=1.5)
            label += f" (slope {slope:.2f}, $R^2$ {r2:.2f})" if np.ptp(y) > 0 else " (all equal)"
        if percent_ci is not None and method in percent_ci:
            lo, hi = np.asarray(percent_ci[method], dtype=float).T
            ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt="none", ecolor=color, alpha=0.5, capsize=3, lw=1)
        ax.plot(x, y, ls="none", marker="o", ms=7, color=color, label=label,
                mfc="none" if hollow else color)
    ax.axhline(0, color="0.4", lw=1)
    ax.set_xlabel("ln(pre-training FLOPs / 1e21)")
    ax.set_ylabel("relative gap (%)")
    ax.legend(fontsize="small", loc="best")


def scaling_figure(ours: Mapping[str, tuple], our_fits: Mapping[str, tuple], our_ci: Mapping[str, Sequence],
                   paper: Mapping[str, tuple], paper_fits: Mapping[str, tuple], *, ours_label: str,
                   paper_label: str, overlay_paper: bool = False) -> plt.Figure:
    """Fig. 1 of the paper, ours (left) beside the paper's (right).

    ``ours`` / ``paper``: {method: (flops, relative gaps in %)}; ``*_fits``: {method: (slope,
    intercept, r2)} from :func:`gvlib.metrics.fit_log_linear`; ``our_ci``: {method: [(lo, hi) %]}.
    ``overlay_paper`` also draws the paper's points (hollow) on our panel: use it when we ran the
    paper's own models, so the two sets share an x axis.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=_FIGSIZE, sharey=False)
    _scaling_panel(left, ours, our_fits, percent_ci=our_ci)
    if overlay_paper:
        for method, (flops, values) in paper.items():
            left.plot(_log_flops(flops), values, ls="none", marker="s", ms=8, mfc="none",
                      color=_PALETTE.get(method), label=f"paper {METHOD_LABELS.get(method, method)}")
        left.legend(fontsize="small", loc="best")
    left.set_title(f"ours: {ours_label}")
    _scaling_panel(right, paper, paper_fits)
    right.set_title(f"paper: {paper_label}")
    fig.tight_layout()
    return fig


def heatmaps(panels: Sequence[tuple[str, np.ndarray, Sequence[str], Sequence[str]]], *,
             vmax: float | None = None) -> plt.Figure:
    """gap(f, g) matrices (%), generators as rows and verifiers as columns (paper Fig. 3).

    ``panels``: (heading, matrix, generator labels, verifier labels). A diverging colour scale centred
    at 0, symmetric per panel (the organism's and the paper's gaps differ in size; every cell is
    annotated with its value), or ``vmax`` for one shared scale.
    """
    width = sum(0.9 + 0.75 * len(cols) for _, _, _, cols in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(max(width, 6.0), 3.8), squeeze=False)
    for ax, (heading, matrix, rows, cols) in zip(axes[0], panels):
        m = np.asarray(matrix, dtype=float)
        scale = vmax or float(np.nanmax(np.abs(m))) or 1.0
        sns.heatmap(m, ax=ax, annot=True, fmt=".1f", cmap="RdBu_r", center=0, vmin=-scale, vmax=scale, xticklabels=list(cols), yticklabels=list(rows), cbar=False,
                    annot_kws={"fontsize": "small"})
        ax.set_xlabel("verifier g")
        ax.set_ylabel("generator f")
        ax.set_title(heading, fontsize="small")
    fig.tight_layout()
    return fig


def gap_bars(groups: Mapping[str, Mapping[str, tuple[float, float, float]]], *, ylabel: str,
             ax: plt.Axes | None = None, heading: str | None = None) -> plt.Figure:
    """Grouped bars with CI whiskers: ``groups[series][category] = (value, lo, hi)`` (all in %).

    Categories (e.g. models, smallest first) go on the x axis in first-seen order; one bar per series
    (e.g. task) in each.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(_FIGSIZE[0] * 0.6, _FIGSIZE[1]))
    else:
        fig = ax.figure
    categories = list(dict.fromkeys(c for series in groups.values() for c in series))
    width = 0.8 / max(len(groups), 1)
    for i, (name, series) in enumerate(groups.items()):
        xs = np.array([categories.index(c) for c in series]) + (i - (len(groups) - 1) / 2) * width
        vals = np.array([v[0] for v in series.values()])
        lo = np.array([v[1] for v in series.values()])
        hi = np.array([v[2] for v in series.values()])
        ax.bar(xs, vals, width=width * 0.95, label=name)
        if np.any(hi > lo):  # the paper's values come without intervals
            ax.errorbar(xs, vals, yerr=[vals - lo, hi - vals], fmt="none", ecolor="0.2", capsize=3, lw=1)
    ax.axhline(0, color="0.4", lw=1)
    ax.set_xticks(range(len(categories)), categories, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    if heading:
        ax.set_title(heading, fontsize="small")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _round_axes(ax: plt.Axes, n_rounds: int, ylabel: str, heading: str) -> None:
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.set_xticks(range(n_rounds))
    ax.set_title(heading, fontsize="small")
    ax.legend(fontsize="x-small")


def rounds_figure(accuracy: Mapping[str, Sequence[float]], gap: Mapping[str, tuple], paper_accuracy: Mapping[str, Sequence[float]],
                  paper_gap: Mapping[str, Sequence[float]], *, line: float, ours_label: str, paper_label: str) -> plt.Figure:
    """Accuracy and gap per round of iterative self-improvement, ours (top) over the paper's (bottom; Fig. 4).

    ``accuracy[run]``: accuracy (%) per round; ``gap[run] = (gap, lo, hi)`` (%, per round, a 95% CI);
    ``paper_*[model]``: the paper's values per round (%); ``line``: the saturation line (points).
    """
    fig, ((ax_acc, ax_gap), (paper_acc, paper_gap_ax)) = plt.subplots(2, 2, figsize=(_FIGSIZE[0], 7.5))
    for run, values in accuracy.items():
        ax_acc.plot(range(len(values)), values, marker="o", label=run)
    for run, (values, lo, hi) in gap.items():
        g, lo, hi = (np.asarray(a, dtype=float) for a in (values, lo, hi))
        ax_gap.errorbar(range(len(g)), g, yerr=[g - lo, hi - g], marker="o", capsize=3, label=run)
    for model, values in paper_accuracy.items():
        paper_acc.plot(range(len(values)), values, marker="o", label=model)
    for model, values in paper_gap.items():
        paper_gap_ax.plot(range(len(values)), values, marker="o", label=model)
    for ax in (ax_gap, paper_gap_ax):
        ax.axhline(line, color="0.3", ls=":", lw=1.5, label=f"saturation ({line:g})")
    n = max(len(v) for v in [*accuracy.values(), *paper_accuracy.values()])
    _round_axes(ax_acc, n, "accuracy (%)", f"ours: {ours_label}")
    _round_axes(ax_gap, n, "gap (%)", "ours: gap of the run's verifier (95% CI)")
    _round_axes(paper_acc, n, "accuracy (%)", f"paper: {paper_label}")
    _round_axes(paper_gap_ax, n, "gap (%)", f"paper: gap ({paper_label})")
    fig.tight_layout()
    return fig


def pass_at_k_figure(ours: Sequence[Mapping[int, float]], paper: Mapping[int, Mapping[int, float]], *, ours_label: str,
                     paper_label: str) -> plt.Figure:
    """pass@k (%) against k (log scale), one line per round: ours (left) beside the paper's (right; Fig. 4).

    ``ours[t]`` and ``paper[t]`` map k to pass@k (%) after round t.
    """
    fig, (ax, ax_paper) = plt.subplots(1, 2)
    for a, curves, heading in ((ax, dict(enumerate(ours)), f"ours: {ours_label}"), (ax_paper, paper, f"paper: {paper_label}")):
        last = max(max(curves), 1)
        for t, curve in curves.items():
            a.plot(list(curve), list(curve.values()), marker="o", color=plt.cm.viridis(0.9 * t / last), label=f"round {t}")
        a.set_xscale("log", base=2)
        a.set_xlabel("k")
        a.set_ylabel("pass@k (%)")
        a.set_title(heading, fontsize="small")
        a.legend(fontsize="small")
    fig.tight_layout()
    return fig


def ablation_figure(ours: Mapping[str, Mapping[int, Sequence[float]]], paper: Mapping[str, Mapping[int, Sequence[float]]], *,
                    paper_label: str) -> plt.Figure:
    """The verifier ablation (paper Fig. 10): pass@1 and pass@n per round of each of our runs (left, middle),
    the paper's pass@1 (solid) and pass@128 (dashed) per run (right).

    ``ours[run][k]`` and ``paper[run][k]``: pass@k (%) per round, for two values of k each.
    """
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    ks = sorted({k for curves in ours.values() for k in curves})
    for run, curves in ours.items():
        for ax, k in zip(axes, ks):
            ax.plot(range(len(curves[k])), curves[k], marker="o", label=run)
    for ax, k in zip(axes, ks):
        _round_axes(ax, max(len(c[k]) for c in ours.values()), f"pass@{k} (%)", f"ours: pass@{k}")
    for run, curves in paper.items():
        small, large = sorted(curves)
        line, = axes[2].plot(range(len(curves[small])), curves[small], marker="o", label=f"{run}: pass@{small}")
        axes[2].plot(range(len(curves[large])), curves[large], marker="s", ls="--", color=line.get_color(),
                     label=f"{run}: pass@{large}")
    _round_axes(axes[2], max(len(v) for c in paper.values() for v in c.values()), "pass@k (%)", f"paper: {paper_label}")
    fig.tight_layout()
    return fig


def line_panels(panels: Sequence[tuple[str, str, str, Mapping[str, tuple]]], *, logx: bool = False) -> plt.Figure:
    """Side-by-side panels of lines, one per series: the threshold sweeps (paper Fig. 5), the tournament by
    round (Fig. 6), the gap against verification compute.

    ``panels``: (heading, x label, y label, {series: (x, y) or (x, y, lo, hi)}); with lo/hi, a shaded
    interval. A heading that shows the paper's values says so ("paper: ...").
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(max(_FIGSIZE[0], 4.2 * len(panels)), _FIGSIZE[1]),
                             squeeze=False)
    for ax, (heading, xlabel, ylabel, series) in zip(axes[0], panels):
        for name, values in series.items():
            x, y = np.asarray(values[0], dtype=float), np.asarray(values[1], dtype=float)
            line, = ax.plot(x, y, marker="o", ms=5, label=name)
            if len(values) == 4:
                ax.fill_between(x, np.asarray(values[2], dtype=float), np.asarray(values[3], dtype=float),
                                color=line.get_color(), alpha=0.15, lw=0)
        if logx:
            ax.set_xscale("log")
        ax.axhline(0, color="0.4", lw=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(heading, fontsize="small")
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def prediction_scatter(points: Mapping[str, Sequence[tuple[float, float, float, float]]], *, xlabel: str,
                       ylabel: str) -> plt.Figure:
    """Predicted (x) against measured (y) values with the measured value's interval, one colour per group
    (e.g. verification method), and the line y = x: a point whose bar crosses the line is predicted
    within its interval. ``points[group]``: (predicted, measured, lo, hi)."""
    fig, ax = plt.subplots(figsize=(_FIGSIZE[1] * 1.5, _FIGSIZE[1] * 1.3))
    everything = [v for pts in points.values() for p in pts for v in p if np.isfinite(v)] or [0.0, 1.0]
    lo_all, hi_all = min(everything), max(everything)
    pad = 0.05 * (hi_all - lo_all or 1.0)
    ax.plot([lo_all - pad, hi_all + pad], [lo_all - pad, hi_all + pad], color="0.4", ls="--", lw=1, label="y = x")
    for group, pts in points.items():
        if not pts:
            continue
        x, y, lo, hi = (np.asarray(a, dtype=float) for a in zip(*pts))
        color = _PALETTE.get(group)
        ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt="o", ms=5, capsize=2, lw=1, color=color, alpha=0.8,
                    label=METHOD_LABELS.get(group, group))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig
