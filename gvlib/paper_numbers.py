"""[results] The paper's published numbers, transcribed once (Song et al. 2025; each table names its source).

Every value is the paper's, in **percent** as printed (gvlib's metrics return fractions: divide by
100 before comparing). Each table below is a verbatim transcription of one of the paper's tables (or
values read off a figure), one model per line, columns in the paper's order; the source table or figure
is named above it. Models are keyed by their Hugging Face id, so a notebook run on the paper's models
finds the paper's value of the model it just measured. Nothing here is computed; the only code
parses the transcribed text into dicts.

Known inconsistencies of the paper are kept as printed and flagged where they occur.
"""
from __future__ import annotations

__all__ = [
    "FAMILIES", "FLOPS_1E21", "flops", "family_of",
    "GSM8K_COLUMNS", "GSM8K_ACCURACY", "GSM8K_GAP", "GSM8K_RELATIVE_GAP", "FIG1_COLUMNS",
    "MATH_RELATIVE_GAP", "CROSS_VERIFICATION", "NQ", "SUDOKU", "ITERATIVE_GSM8K", "ITERATIVE_PASS_AT_K",
    "SATURATION_LINE", "ITERATIVE_VERIFIER_ABLATION", "TOURNAMENT_POSITION_BIAS", "CHAPTER_FAMILIES",
    "ENSEMBLE_COLUMNS", "ENSEMBLE_GSM8K", "TOURNAMENT_BY_ROUND", "NON_OVERLAP",
]

#: The paper's model families (§3, Tabs. 4–7), smallest first, by Hugging Face id.
FAMILIES: dict[str, tuple[str, ...]] = {
    "Qwen-1.5": tuple(f"Qwen/Qwen1.5-{s}" for s in ("0.5B", "1.8B", "4B", "7B", "14B", "32B", "72B")),
    "Qwen-2": tuple(f"Qwen/Qwen2-{s}" for s in ("0.5B", "1.5B", "7B", "72B")),
    "Qwen-2.5": tuple(f"Qwen/Qwen2.5-{s}" for s in ("0.5B", "1.5B", "3B", "7B", "14B", "32B", "72B")),
    "Llama-2": tuple(f"meta-llama/Llama-2-{s}-hf" for s in ("7b", "13b", "70b")),
    "Llama-3": ("meta-llama/Meta-Llama-3-8B", "meta-llama/Meta-Llama-3-70B"),
    "Llama-3.1": ("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-70B"),
    "Yi-1.5": tuple(f"01-ai/Yi-1.5-{s}" for s in ("6B", "9B", "34B")),
}


def _rows(text: str, width: int) -> dict[str, tuple[float, ...]]:
    """Parse ``id v1 v2 …`` lines (``-`` = not reported, kept as None) into {id: values}."""
    out: dict[str, tuple[float, ...]] = {}
    for line in text.strip().splitlines():
        model, *vals = line.split()
        if len(vals) != width:
            raise ValueError(f"paper_numbers: row {model!r} has {len(vals)} values, expected {width}")
        out[model] = tuple(None if v == "-" else float(v) for v in vals)
    return out


# -- FLOPs (ObsScaling, Ruan et al. 2024, which the paper cites): pre-training compute C / 1e21, Fig. 1's x
# Qwen-1.5 and Llama-2 are ObsScaling's 6·N·D; Yi-1.5 9B (≈210) and Qwen-2 0.5–7B are as read off the
# figures; Qwen-2.5 from Fig. 12 (Fig. 1's Qwen-2.5 x labels are wrong); Llama-3/3.1 from ObsScaling.
FLOPS_1E21: dict[str, float] = {k: v[0] for k, v in _rows("""
Qwen/Qwen1.5-0.5B 7.2
Qwen/Qwen1.5-1.8B 25.92
Qwen/Qwen1.5-4B 57.6
Qwen/Qwen1.5-7B 168
Qwen/Qwen1.5-14B 336
Qwen/Qwen1.5-32B 768
Qwen/Qwen1.5-72B 1296
Qwen/Qwen2-0.5B 28.8
Qwen/Qwen2-1.5B 50.4
Qwen/Qwen2-7B 392
Qwen/Qwen2-72B 3024
Qwen/Qwen2.5-0.5B 33.6
Qwen/Qwen2.5-1.5B 100.8
Qwen/Qwen2.5-3B 201.6
Qwen/Qwen2.5-7B 784
Qwen/Qwen2.5-14B 1568
Qwen/Qwen2.5-32B 3584
Qwen/Qwen2.5-72B 6048
meta-llama/Llama-2-7b-hf 84
meta-llama/Llama-2-13b-hf 156
meta-llama/Llama-2-70b-hf 840
meta-llama/Meta-Llama-3-8B 720
meta-llama/Meta-Llama-3-70B 6300
meta-llama/Llama-3.1-8B 720
meta-llama/Llama-3.1-70B 6300
01-ai/Yi-1.5-6B 108
01-ai/Yi-1.5-9B 210
01-ai/Yi-1.5-34B 612
""", 1).items()}


def flops(model_id: str) -> float:
    """Pre-training FLOPs of a paper model (absolute, not /1e21); a clear error for an unknown id."""
    if model_id not in FLOPS_1E21:
        raise KeyError(f"no published pre-training FLOPs for model {model_id!r}; the paper's models are "
                       f"{sorted(FLOPS_1E21)} (give FLOPs yourself for other models)")
    return FLOPS_1E21[model_id] * 1e21


def family_of(model_id: str) -> str | None:
    """The paper family a model id belongs to, or None."""
    return next((fam for fam, ids in FAMILIES.items() if model_id in ids), None)


# -- GSM8K, Tab. 4 (absolute gap, %) and Tab. 5 (relative gap, %) ------------------------------------
#: Verifier columns of Tabs. 4-5: MC at per-prompt quantile 0.7/0.8 ("top"), MC at global tau 0.7/0.8,
#: CoT-Binary, CoT-Score at tau 8/9, Tournament after 5 rounds.
GSM8K_COLUMNS = ("mc_top0.7", "mc_top0.8", "mc_tau0.7", "mc_tau0.8", "cot_binary",
                 "cot_score_tau8", "cot_score_tau9", "tournament_r5")
#: The column of each verifier that Fig. 1 plots (MC: global tau 0.8, whose Tab. 5 values are Fig. 1's MC points).
FIG1_COLUMNS = {"mc": "mc_tau0.8", "cot_score": "cot_score_tau8", "cot_binary": "cot_binary",
                "tournament": "tournament_r5"}

_TAB4 = _rows("""
Qwen/Qwen1.5-0.5B 11.31 -0.62 -1.42 -2.27 -3.68 -0.02 -0.01 0.12 0.44
Qwen/Qwen1.5-1.8B 32.81 3.06 2.70 -0.01 0.00 1.58 0.95 1.02 -0.44
Qwen/Qwen1.5-4B 50.21 4.85 4.63 0.48 0.89 2.36 2.14 2.27 2.08
Qwen/Qwen1.5-7B 53.17 7.18 7.42 3.68 6.13 4.07 1.84 0.70 3.59
Qwen/Qwen1.5-14B 63.87 -2.04 -5.61 2.36 -1.06 1.79 1.69 2.00 3.16
Qwen/Qwen1.5-32B 70.25 -0.22 -1.98 1.72 1.06 3.07 1.84 1.90 -1.03
Qwen/Qwen1.5-72B 74.55 4.84 4.75 2.00 3.95 3.55 2.47 2.91 6.40
Qwen/Qwen2-0.5B 26.19 4.59 3.39 3.81 -6.59 0.21 0.64 0.72 0.32
Qwen/Qwen2-1.5B 48.82 6.09 5.27 5.02 1.32 1.26 2.78 2.80 1.29
Qwen/Qwen2-7B 76.42 4.69 4.66 3.90 2.17 2.36 1.97 2.08 3.86
Qwen/Qwen2-72B 81.69 2.39 2.38 0.89 2.12 2.51 2.08 2.45 2.20
meta-llama/Llama-2-7b-hf 11.64 2.33 2.20 0.10 0.00 0.16 0.25 0.23 0.99
meta-llama/Llama-2-13b-hf 21.57 3.45 3.18 -0.13 0.01 1.13 0.97 1.01 1.17
meta-llama/Llama-2-70b-hf 48.42 5.14 4.91 4.77 4.16 3.98 3.44 3.45 5.68
meta-llama/Meta-Llama-3-8B 45.66 5.34 5.33 -0.50 0.44 2.67 2.10 2.13 4.08
meta-llama/Meta-Llama-3-70B 74.19 5.06 4.52 4.68 1.35 3.89 2.59 2.72 2.00
meta-llama/Llama-3.1-8B 49.31 4.68 4.57 -2.25 -0.24 3.37 2.09 2.05 4.78
meta-llama/Llama-3.1-70B 71.71 6.88 6.77 6.00 0.93 3.29 2.71 2.88 -0.40
01-ai/Yi-1.5-6B 55.53 4.40 4.27 2.98 -0.97 2.01 1.88 1.95 2.24
01-ai/Yi-1.5-9B 61.04 7.74 7.50 5.61 5.73 2.32 3.61 3.72 7.83
01-ai/Yi-1.5-34B 73.71 6.29 6.23 3.34 4.84 2.49 2.86 2.95 3.41
""", 1 + len(GSM8K_COLUMNS))

#: GSM8K generation accuracy J(f) (%), Tab. 4.
GSM8K_ACCURACY: dict[str, float] = {m: v[0] for m, v in _TAB4.items()}
#: GSM8K absolute gap (%) per verifier column, Tab. 4.
GSM8K_GAP: dict[str, dict[str, float]] = {m: dict(zip(GSM8K_COLUMNS, v[1:])) for m, v in _TAB4.items()}

# Tab. 5. Qwen-2 72B CoT-S tau8 is 14.34 in Tab. 5 but 18.79 in Fig. 1: kept as Tab. 5.
#: GSM8K relative gap (%) per verifier column, Tab. 5 (what Fig. 1 plots with FIG1_COLUMNS).
GSM8K_RELATIVE_GAP: dict[str, dict[str, float]] = {m: dict(zip(GSM8K_COLUMNS, v)) for m, v in _rows("""
Qwen/Qwen1.5-0.5B -0.70 -1.60 -2.56 -4.15 -0.03 -0.13 0.04 0.59
Qwen/Qwen1.5-1.8B 4.55 4.01 -0.01 -0.01 4.45 3.10 3.15 -0.39
Qwen/Qwen1.5-4B 9.75 9.31 0.96 1.80 8.22 6.92 8.12 5.24
Qwen/Qwen1.5-7B 15.34 15.84 7.87 13.08 14.06 5.50 -0.35 10.26
Qwen/Qwen1.5-14B -5.64 -15.54 6.52 -2.94 7.77 8.00 9.02 12.19
Qwen/Qwen1.5-32B -0.75 -6.67 5.78 3.57 15.31 8.40 8.49 -4.55
Qwen/Qwen1.5-72B 19.01 18.65 7.87 15.52 21.82 14.96 16.97 32.06
Qwen/Qwen2-0.5B 6.22 4.59 5.16 -8.93 0.44 1.58 1.79 1.31
Qwen/Qwen2-1.5B 11.90 10.30 9.82 2.58 4.45 9.96 10.11 5.26
Qwen/Qwen2-7B 19.89 19.74 16.53 9.18 16.46 13.73 14.34 17.17
Qwen/Qwen2-72B 13.07 13.00 4.87 11.57 20.16 14.34 19.92 17.84
meta-llama/Llama-2-7b-hf 2.64 2.49 0.11 0.00 0.25 0.39 0.37 1.91
meta-llama/Llama-2-13b-hf 4.40 4.05 -0.16 0.02 2.45 1.79 1.82 2.88
meta-llama/Llama-2-70b-hf 9.97 9.52 9.25 8.07 13.77 12.22 12.07 18.57
meta-llama/Meta-Llama-3-8B 9.62 9.60 -0.90 0.80 8.51 6.16 6.70 12.55
meta-llama/Meta-Llama-3-70B 18.08 16.13 16.71 4.84 19.09 13.24 13.74 11.28
meta-llama/Llama-3.1-8B 8.97 8.77 -4.31 -0.47 11.74 7.02 6.89 14.97
meta-llama/Llama-3.1-70B 22.83 22.47 19.91 3.09 16.68 12.65 13.59 -1.03
01-ai/Yi-1.5-6B 9.89 9.60 6.70 -2.17 9.10 6.60 6.69 10.64
01-ai/Yi-1.5-9B 19.86 19.25 14.40 14.70 10.09 14.29 14.35 24.78
01-ai/Yi-1.5-34B 23.94 23.68 12.70 18.40 15.02 16.69 16.96 8.89
""", len(GSM8K_COLUMNS)).items()}

# -- MATH relative gap (%), read off Fig. 1 (the paper has no MATH table) ------------------------
#: {family: {method: values per model of FAMILIES[family], smallest first}}. The full MATH test set
#: (5,000 problems, §3), not MATH-500: a MATH-500 run is compared with these only under that label.
MATH_RELATIVE_GAP: dict[str, dict[str, tuple[float, ...]]] = {
    "Qwen-1.5": {"mc": (-0.78, -0.21, 1.54, 6.15, 11.27, 11.75, 8.30),
                 "cot_binary": (-0.09, 0.40, 0.78, 2.66, 3.58, 4.50, 3.39),
                 "cot_score": (-0.07, 0.16, 0.18, 0.68, 2.60, 2.67, 2.40)},
    "Qwen-2": {"mc": (0.20, 2.76, 2.97, 9.11),
               "cot_binary": (0.15, 0.81, 2.23, 5.61),
               "cot_score": (0.07, 0.41, 1.20, 4.07)},
    "Qwen-2.5": {"mc": (0.18, 4.21, 11.13, 12.21, 12.47, 16.22, 19.20),
                 "cot_binary": (0.44, 1.09, 4.40, 4.47, 8.54, 8.81, 10.34),
                 "cot_score": (0.06, 0.69, 3.23, 3.42, 4.28, 4.83, 5.90)},
    "Llama-2": {"mc": (0.27, 2.06, 5.38),
                "cot_binary": (0.56, 0.71, 1.51),
                "cot_score": (0.24, 0.75, 1.23)},
}

# -- Cross-verification, GSM8K absolute gap (%), Fig. 3 ------------------------------------------------
# Rows are generators, columns verifiers, both in FAMILIES order. MC uses the quantile-0.8 threshold,
# CoT-Score tau = 8. Qwen-2 72B CoT-S diagonal: 2.28 here, 2.08 in Tabs. 3-4.
#: {family: {method: matrix[generator][verifier]}}.
CROSS_VERIFICATION: dict[str, dict[str, tuple[tuple[float, ...], ...]]] = {
    "Llama-2": {
        "mc": ((2.20, 3.20, 8.38),
               (0.81, 3.18, 9.17),
               (-0.07, 2.63, 4.91)),
        "cot_score": ((0.25, 0.80, 4.51),
                      (0.25, 0.97, 4.96),
                      (0.32, 0.94, 3.44)),
    },
    "Qwen-2": {
        "mc": ((3.39, 8.41, 13.38, 24.91),
               (5.16, 5.27, 11.84, 21.60),
               (4.88, 5.29, 4.66, 11.48),
               (-4.10, -1.51, 0.98, 2.38)),
        "cot_score": ((0.64, 2.36, 5.06, 21.60),
                      (0.10, 2.78, 3.79, 15.14),
                      (-1.35, 1.55, 1.97, 5.30),
                      (-3.09, 0.67, 1.04, 2.28)),
    },
}

# -- Natural Questions, Tab. 1 / Tab. 6 (MC only), % -------------------------------------------------
# Columns: generation accuracy, MC gap at the per-prompt top quantile (Tab. 1 "top 0.8" = Tab. 6
# "top 0.2"), MC gap at global tau = 0.8. Llama-2 70B accuracy 29.09 duplicates Qwen-2 7B's (a typo).
#: {model: {"accuracy", "mc_top", "mc_tau0.8"}}.
NQ: dict[str, dict[str, float]] = {m: dict(zip(("accuracy", "mc_top", "mc_tau0.8"), v)) for m, v in _rows("""
Qwen/Qwen1.5-0.5B 6.20 -0.62 -0.51
Qwen/Qwen1.5-1.8B 11.40 -0.02 -0.32
Qwen/Qwen1.5-4B 17.16 -1.20 -0.72
Qwen/Qwen1.5-7B 21.20 -1.15 -1.07
Qwen/Qwen1.5-14B 26.83 -1.99 -1.21
Qwen/Qwen1.5-32B 35.79 -0.43 -0.10
Qwen/Qwen1.5-72B 39.97 -0.75 0.32
Qwen/Qwen2-0.5B 6.51 -0.06 -0.05
Qwen/Qwen2-1.5B 13.87 0.04 0.02
Qwen/Qwen2-7B 29.09 0.79 -0.05
Qwen/Qwen2-72B 41.45 0.28 -0.05
meta-llama/Llama-2-7b-hf 25.52 -0.96 -0.81
meta-llama/Llama-2-13b-hf 41.00 0.76 -2.31
meta-llama/Llama-2-70b-hf 29.09 0.30 -0.44
meta-llama/Meta-Llama-3-8B 30.40 0.27 -0.23
meta-llama/Meta-Llama-3-70B 45.59 0.32 -0.41
meta-llama/Llama-3.1-8B 27.75 0.42 -0.59
meta-llama/Llama-3.1-70B 45.13 0.44 -0.37
01-ai/Yi-1.5-6B 22.82 0.09 -0.07
01-ai/Yi-1.5-9B 25.94 0.21 0.61
01-ai/Yi-1.5-34B 35.31 0.24 0.30
""", 3).items()}

# -- 4x4 Sudoku, 288 puzzles, Tab. 2 / Tab. 7, % -----------------------------------------------------
# Columns: accuracy, gap, relative gap. Qwen-2 7B/72B-Instruct are the paper's instruct rows.
#: {model: {"accuracy", "gap", "relative_gap"}}.
SUDOKU: dict[str, dict[str, float]] = {m: dict(zip(("accuracy", "gap", "relative_gap"), v)) for m, v in _rows("""
Qwen/Qwen1.5-0.5B 0.43 0.02 -0.10
Qwen/Qwen1.5-1.8B 1.00 -0.03 -2.80
Qwen/Qwen1.5-4B 0.88 -0.15 -1.39
Qwen/Qwen1.5-7B 0.95 -0.64 -3.06
Qwen/Qwen1.5-14B 1.57 0.22 0.67
Qwen/Qwen1.5-32B 2.67 0.07 -1.25
Qwen/Qwen1.5-72B 2.02 1.23 1.14
Qwen/Qwen2-0.5B 0.66 -0.09 -0.15
Qwen/Qwen2-1.5B 0.62 0.04 -0.61
Qwen/Qwen2-7B 2.09 -0.07 -0.01
Qwen/Qwen2-72B 8.82 16.99 20.81
Qwen/Qwen2-7B-Instruct 2.16 0.13 0.20
Qwen/Qwen2-72B-Instruct 8.15 22.97 26.40
meta-llama/Llama-2-7b-hf 0.82 -0.13 0.45
meta-llama/Llama-2-13b-hf 0.89 -0.63 -2.02
meta-llama/Llama-2-70b-hf 0.86 -0.86 -3.57
meta-llama/Meta-Llama-3-8B 1.39 -1.10 -15.4
meta-llama/Meta-Llama-3-70B 1.63 -0.84 -36.12
meta-llama/Llama-3.1-8B 1.11 -0.19 -4.52
meta-llama/Llama-3.1-70B 1.68 5.5 6.87
01-ai/Yi-1.5-6B 0.59 -0.60 -0.94
01-ai/Yi-1.5-9B 1.29 0.22 0.43
01-ai/Yi-1.5-34B 4.48 -1.75 -0.77
""", 3).items()}

# -- Iterative self-improvement, §5, Fig. 4 (read off) ---------------------------------------------------
#: The paper's saturation line: a gap below 0.5 (%) counts as saturated (Fig. 4).
SATURATION_LINE = 0.5
# GSM8K accuracy (%) and, in the second tuple, the gap (%) at rounds 0-3; Qwen-1.5, CoT-Binary, rejection sampling.
#: {run: {"accuracy": per round, "gap": per round}}; "7B-MC-q0.7" stops after round 1.
ITERATIVE_GSM8K: dict[str, dict[str, tuple[float, ...]]] = {
    "Qwen/Qwen1.5-7B": {"accuracy": (53.17, 61.99, 63.99, 65.05), "gap": (4.07, 1.69, 1.08, 0.17)},
    "Qwen/Qwen1.5-7B RL": {"accuracy": (53.17, 62.77, 65.30, 65.37), "gap": (4.07, 2.10, 0.62, 0.07)},
    "Qwen/Qwen1.5-7B MC-q0.7": {"accuracy": (53.17, 63.01), "gap": (7.18, 0.29)},
    "Qwen/Qwen1.5-14B": {"accuracy": (63.87, 67.89, 68.61, 68.59), "gap": (1.79, 1.13, 0.41, 0.04)},
    "Qwen/Qwen1.5-32B": {"accuracy": (70.25, 75.37, 76.50, 77.10), "gap": (3.07, 1.22, 0.99, 0.04)},
    "Qwen/Qwen1.5-72B": {"accuracy": (74.55, 77.31, 79.00, 79.06), "gap": (3.55, 2.29, 0.31, 0.16)},
}
#: pass@k (%) of Qwen-1.5-7B on GSM8K by iteration 0-3, for k = 1, 2, 4, ..., 128 (Fig. 4).
ITERATIVE_PASS_AT_K: dict[int, dict[int, float]] = {
    it: dict(zip((1, 2, 4, 8, 16, 32, 64, 128), vals)) for it, vals in enumerate((
        (53.17, 67.33, 77.85, 85.23, 89.91, 92.95, 94.96, 96.59),
        (61.99, 71.51, 78.78, 84.21, 88.43, 91.32, 93.52, 94.69),
        (63.98, 71.02, 76.42, 80.77, 84.13, 86.87, 88.77, 90.13),
        (65.07, 70.33, 74.73, 78.24, 80.99, 83.34, 85.07, 86.43),
    ))
}
#: The verifier ablation (Fig. 10, read off the figure): Qwen-1.5-7B on GSM8K filtered by the gold answer or by a fixed
#: Qwen-1.5-72B verifier; {verifier: {k: pass@k (%) by iteration 0-3}} for k = 1 and 128.
ITERATIVE_VERIFIER_ABLATION: dict[str, dict[int, tuple[float, ...]]] = {
    "gold": {1: (53.17, 86.39, 83.36, 84.77), 128: (96.59, 96.97, 97.94, 99.32)},
    "Qwen/Qwen1.5-72B": {1: (53.17, 62.72, 65.31, 64.86), 128: (96.59, 94.39, 91.20, 85.98)},
}

# -- Tournament position bias (§6.1) ---------------------------------------------------------------------
#: P(the verifier prefers the first solution, A) over the tournament's comparisons, across models and
#: rounds: mean and standard deviation. A probability (not a percentage), as the paper prints it.
TOURNAMENT_POSITION_BIAS: dict[str, float] = {"mean": 0.56, "sd": 0.12}

# -- Verification study, §6 ----------------------------------------------------------------------------
#: The columns of Tab. 3: each single method, then their AND-ensembles (MC at quantile 0.8, CoT-Score tau 8).
ENSEMBLE_COLUMNS: tuple[tuple[str, ...], ...] = (
    ("mc",), ("cot_binary",), ("cot_score",), ("mc", "cot_binary"), ("mc", "cot_score"),
    ("cot_binary", "cot_score"), ("mc", "cot_binary", "cot_score"))
# Tab. 3 (GSM8K absolute gap, %). Tab. 8 repeats these rows with slightly different values (e.g. Qwen-2
# 0.5B MC 3.01) under a caption that says "relative gaps": kept as Tab. 3.
#: {family: {model: gaps in ENSEMBLE_COLUMNS order}}, Tab. 3.
ENSEMBLE_GSM8K: dict[str, dict[str, tuple[float, ...]]] = {"Qwen-2": _rows("""
Qwen/Qwen2-0.5B 3.39 0.21 0.64 3.12 3.01 0.72 3.11
Qwen/Qwen2-1.5B 5.27 1.26 2.78 5.08 7.68 3.15 7.61
Qwen/Qwen2-7B 4.66 2.36 1.97 5.24 4.96 3.35 5.46
Qwen/Qwen2-72B 2.38 2.51 2.08 3.21 3.13 3.35 3.65
""", 7)}
#: Tournament filtered accuracy (%) after rounds 0-7, Qwen-1.5 on GSM8K (Fig. 6, read off the figure).
TOURNAMENT_BY_ROUND: dict[str, tuple[float, ...]] = {
    "Qwen/Qwen1.5-32B": (70.25, 72.28, 72.67, 72.10, 70.99, 69.22, 66.43, 64.37),
    "Qwen/Qwen1.5-72B": (74.55, 77.45, 79.02, 80.01, 80.67, 80.95, 80.84, 80.93),
}
#: Non-overlap of the verifiers, Qwen-1.5-7B on GSM8K (Fig. 7): per-prompt gap mean and sd (fractions,
#: as printed) per method (MC at quantile 0.8, MC at global tau 0.8, CoT-Binary, CoT-Score), and the Pearson
#: correlations of the scores û and of the per-prompt gaps; CoT-Binary/CoT-Score gap correlation over
#: Qwen-1.5 0.5B-72B (Fig. 19).
NON_OVERLAP: dict[str, dict] = {
    "gap_mean_sd": {"mc_quantile": (0.074, 0.158), "mc_tau": (0.061, 0.156), "cot_binary": (0.041, 0.062),
                    "cot_score": (0.018, 0.046)},
    "score_correlation": {("mc", "cot_binary"): 0.24, ("mc", "cot_score"): 0.39, ("cot_binary", "cot_score"): 0.18},
    "gap_correlation": {("mc_quantile", "mc_tau"): 0.77, ("mc_quantile", "cot_binary"): 0.36,
                        ("mc_quantile", "cot_score"): 0.35, ("mc_tau", "cot_binary"): 0.33,
                        ("mc_tau", "cot_score"): 0.35, ("cot_binary", "cot_score"): 0.44},
    "cot_gap_correlation_by_size": (0.04, 0.11, 0.37, 0.44, 0.57, 0.81, 0.86),
}


def _complete(table: dict) -> list[str]:
    """The families every member of which has a row in ``table``."""
    return [fam for fam, ids in FAMILIES.items() if all(i in table for i in ids)]


#: The families each chapter can draw beside its own models (its ``paper_family`` parameter): those the
#: tables above hold for every member. Scaling: Fig. 1's GSM8K values (Tab. 5) or its MATH values;
#: cross-verification: Fig. 3's grids; unimprovable: NQ (Tab. 1) and Sudoku (Tab. 2).
CHAPTER_FAMILIES: dict[str, tuple[str, ...]] = {
    "scaling": tuple(f for f in FAMILIES if f in _complete(GSM8K_RELATIVE_GAP) or f in MATH_RELATIVE_GAP),
    "cross_verification": tuple(CROSS_VERIFICATION),
    "unimprovable": tuple(f for f in _complete(NQ) if f in _complete(SUDOKU)),
}
