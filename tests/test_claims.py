"""gvlib.claims: filters, trend counts, the slope bootstrap and the paper's scaling points."""
import numpy as np
import pandas as pd
import pytest

from gvlib import claims, paper_numbers
from gvlib.backends import options_for
from gvlib.metrics import gap
from gvlib.verifiers import Verification


def test_filters_follow_the_papers_thresholds():
    f = claims.make_filters(["mc", "cot_score", "cot_binary", "tournament"], mc_tau=0.8, tournament_rounds=2)
    assert [f[m].label for m in f] == ["MC τ0.8", "CoT-Score τ8", "CoT-Binary", "Tournament r2"]
    assert claims.make_filters(["mc"], mc_quantile=0.8)["mc"].label == "MC top0.8"
    u = np.array([[1, 0, 0, 1]])
    scores = np.array([[10, 9, 8, 3]])
    r = f["cot_score"].gap(u, Verification("cot_score", scores, []))
    assert r.absolute == pytest.approx(gap(u, scores, tau=8).absolute) == pytest.approx(0.0)  # keeps 10 and 9
    surv = np.stack([np.ones((1, 4)), np.array([[1, 0, 0, 1]]), np.array([[1, 0, 0, 0]])])
    t = Verification("tournament", np.array([[2, 0, 0, 1]]), [], survivors=surv)
    assert f["tournament"].gap(u, t).absolute == pytest.approx(0.5)
    with pytest.raises(ValueError, match="cannot read a 'mc' verification"):
        f["cot_score"].gap(u, Verification("mc", scores / 10, []))
    with pytest.raises(ValueError, match="after 3 rounds, but the verification ran 2"):
        claims.Filter("tournament", rounds=3).gap(u, t)
    with pytest.raises(ValueError, match="exactly one of tau, quantile, rounds"):
        claims.Filter("mc", tau=0.8, quantile=0.8)
    with pytest.raises(ValueError, match="unknown verifier methods"):
        claims.make_filters(["mcq"])


def test_trend_counts_reproduce_the_papers_counts():
    rows = cols = n = 0
    for tables in paper_numbers.CROSS_VERIFICATION.values():
        for m in tables.values():
            c = claims.trend_counts(m)
            rows, cols, n = rows + c["rows_rising"], cols + c["columns_falling"], n + c["n"]
    assert (rows, cols, n) == (13, 7, 14)  # paper §4.2, Fig. 3
    with pytest.raises(ValueError, match="square"):
        claims.trend_counts([[1, 2, 3]])


def test_slope_ci_brackets_the_slope_of_a_clear_trend():
    rng = np.random.default_rng(0)
    flops = [1e12, 1e13, 1e14]
    results = []
    for p in (0.0, 0.3, 0.6):  # a verifier that removes a growing share of the errors
        u = (rng.random((200, 8)) < 0.5).astype(float)
        s = np.where(u == 1, 1.0, (rng.random(u.shape) > p).astype(float))
        results.append(gap(u, s, tau=0.5))
    lo, hi = claims.slope_ci(results, flops, n_boot=300)
    from gvlib.metrics import fit_log_linear
    slope = fit_log_linear(flops, [100 * r.relative for r in results])[0]
    assert 0 < lo <= slope <= hi


def test_paper_scaling_points_and_models_by_id():
    pts, label = claims.paper_scaling("Llama-2", ["cot_score", "mc"], "gsm8k")
    assert label == "Llama-2, GSM8K (Tab. 5)" and pts["cot_score"][1] == [0.39, 1.79, 12.22]
    assert pts["mc"][1] == [0.00, 0.02, 8.07]  # Fig. 1's MC = Tab. 5's global tau 0.8 column
    pts, label = claims.paper_scaling("Qwen-2.5", ["mc", "tournament"], "math500")
    assert set(pts) == {"mc"} and "MATH" in label
    with pytest.raises(ValueError, match="no GSM8K values for 'Qwen-2.5'"):
        claims.paper_scaling("Qwen-2.5", ["mc"], "gsm8k")
    ms = claims.resolve_models(None, ["Qwen/Qwen2-0.5B", "Qwen/Qwen2-72B"])
    assert ms.label == "Qwen-2" and ms.models[1].flops == pytest.approx(3024e21) and ms.names == ["Qwen2-0.5B", "Qwen2-72B"]
    assert claims.resolve_models(None, ["my/model"]).models[0].flops is None
    with pytest.raises(ValueError, match="either `organism`"):
        claims.resolve_models("tiny", ["x"])
    with pytest.raises(ValueError, match="`flops` has 1 values for 2 models"):
        claims.resolve_models(None, ["a", "b"], [1e20])


def test_backend_options_for_every_model_and_per_model():
    opts = {"*": {"dtype": "bfloat16"}, "Qwen/Qwen2-72B": {"tensor_parallel_size": 4, "dtype": "float16"}}
    big, small = claims.Model("Qwen2-72B", "Qwen/Qwen2-72B"), claims.Model("Qwen2-0.5B", "Qwen/Qwen2-0.5B")
    assert options_for(big.path, opts) == {"dtype": "float16", "tensor_parallel_size": 4}
    assert options_for(small.path, opts) == {"dtype": "bfloat16"} and options_for(small.path, None) == {}
    with pytest.raises(ValueError, match=r"\['Qwen/Qwen2-72B'\] do not"):
        options_for(big.path, {"Qwen/Qwen2-72B": 4})


# -- claim checks that must not pass for the wrong reason ------------------------------------------
def synthetic_grid(us: dict, scores: dict, method: str = "mc", flops=None, unparseable=None):
    """A Grid from utilities ``us[generator]`` and scores ``scores[(generator, verifier)]`` (no model runs)."""
    from types import SimpleNamespace

    names = list(us)
    flops = flops or [10.0 ** (12 + i) for i in range(len(names))]
    models = [claims.Model(n, n, f) for n, f in zip(names, flops)]
    gens = {g: SimpleNamespace(u=np.asarray(u, dtype=float), extraction_failure_rate=0.0) for g, u in us.items()}
    vers = {(g, v, method): Verification(method, np.asarray(s, dtype=float), [],
                                         n_unparseable=int((unparseable or {}).get((g, v), 0) * np.size(s)),
                                         n_outputs=int(np.size(s)))
            for (g, v), s in scores.items()}
    return claims.Grid(task=None, models=models, generations=gens, verifications=vers)


def self_table(us, scores, filt, **kw):
    """The self-verification rows (one per model) of a synthetic grid, as the chapters' tables have them."""
    grid = synthetic_grid(us, {(g, g): s for g, s in scores.items()}, method=filt.method, **kw)
    return grid.table({filt.method: filt}, n_boot=200)


def noisy(u, rng, informative):
    """Scores in [0, 1]: tracking u (informative) or pure noise (an uninformative verifier)."""
    return np.clip((0.6 * u + 0.2 if informative else 0.5) + rng.normal(0, 0.05, u.shape), 0, 1)


def test_untested_cells_are_named_not_counted_as_zero():
    assert claims.untested(10, 10) == "the filter kept nothing (empty prompts: 10 of 10, 100%)"
    assert claims.untested(10, 9) is None and claims.untested(10, 0, 0.5) is None
    assert claims.untested(10, 0, 1.0) == "every verifier output was unparseable (100%)"
    u = np.array([[1, 0, 1, 0]] * 6, dtype=float)
    mc = claims.Filter("mc", tau=0.8)  # the organism's MC: P(Correct) ~ 0.5 everywhere, so tau 0.8 keeps nothing
    t = self_table({"a": u, "b": u}, {"a": np.full(u.shape, 0.5), "b": np.full(u.shape, 0.55)}, mc)
    assert list(t.untested) == [claims.untested(6, 6)] * 2 and (t.gap == 0).all()
    why = claims.method_untested(t)
    assert why.startswith("0 model(s) measured a gap") and "a, b: the filter kept nothing (empty prompts 100%)" in why
    informative = self_table({"a": u, "b": u}, {"a": u, "b": u}, mc)
    assert informative.untested.isna().all() and claims.method_untested(informative) is None
    cot = claims.Filter("cot_binary", tau=0.5)  # all outputs unparseable: every score 0, every sample rejected
    t = self_table({"a": u, "b": u}, {"a": np.zeros(u.shape), "b": u}, cot, unparseable={("a", "a"): 1.0})
    assert t.set_index("generator").untested.to_dict() == {"a": "every verifier output was unparseable (100%)", "b": None}
    assert claims.method_untested(t) == ("1 model(s) measured a gap, a trend needs 2 "
                                         "(a: every verifier output was unparseable (100%))")


def test_unimprovable_needs_the_contrast_and_an_informative_verifier():
    rng = np.random.default_rng(0)
    models = ("s", "m", "l")
    mixed = {g: (rng.random((60, 8)) < 0.5).astype(float) for g in models}
    quantile = claims.Filter("mc", quantile=0.5)

    def rows(informative):
        return self_table(mixed, {g: noisy(u, rng, informative) for g, u in mixed.items()}, quantile)

    useless = claims.unimprovable_check(rows(False), rows(False))  # MC with P(Correct) ~ 0.5 on both tasks
    assert useless["verdict"] == "could not be tested" and useless["holds"] is None
    assert "shows a gap on neither task" in useless["reason"]
    contrast = claims.unimprovable_check(rows(False), rows(True))  # a gap on reasoning, none on facts
    assert contrast["verdict"] == "holds" and contrast["reasoning_gainers"] == list(models)
    improvable = claims.unimprovable_check(rows(True), rows(True))
    assert improvable["verdict"] == "does not hold" and "factual gap of 1 point(s) or more" in improvable["reason"]
    reversed_ = claims.unimprovable_check(rows(True), rows(False))
    assert reversed_["verdict"] == "does not hold"
    never_right = {g: np.zeros((20, 8)) for g in models}  # no factual prompt can show a gap
    blank = self_table(never_right, {g: noisy(u, rng, True) for g, u in never_right.items()}, quantile)
    assert claims.unimprovable_check(blank, rows(True))["verdict"] == "could not be tested"
    tied = self_table(mixed, {g: np.full(u.shape, 0.5) for g, u in mixed.items()}, quantile)  # keeps nothing
    out = claims.unimprovable_check(tied, rows(True))
    assert out["verdict"] == "could not be tested" and "the filter kept nothing" in out["reason"]


def test_trend_tests_report_untestable_rows_and_columns():
    rng = np.random.default_rng(1)
    names = ["g1", "g2", "g3"]
    us = {"g1": np.zeros((80, 8)), **{g: (rng.random((80, 8)) < 0.5).astype(float) for g in names[1:]}}
    quality = {"g1": 0.0, "g2": 0.5, "g3": 1.0}  # verifier v's scores track u more the larger v is

    def scores(g, v):
        u = us[g]
        return quality[v] * u + (1 - quality[v]) * rng.random(u.shape)

    grid = synthetic_grid(us, {(g, v): scores(g, v) for g in names for v in names})
    out = claims.trend_tests(grid, claims.Filter("mc", quantile=0.5), n_boot=200)
    rows = {r["model"]: r for r in out["rows"]}
    assert rows["g1"]["status"] == "untestable" and "no prompt with 0 < accuracy < 1" in rows["g1"]["reason"]
    assert rows["g2"]["status"] == rows["g3"]["status"] == "rises" and rows["g2"]["slope_ci"][0] > 0
    assert (out["rows_rising"], out["rows_testable"]) == (2, 2)
    assert all(c["status"] != "untestable" for c in out["columns"])  # two generators with mixed prompts each
    # a strict count calls the row of zeros "not rising"; the test calls it untestable
    matrix = [[grid.gaps({"mc": claims.Filter("mc", quantile=0.5)})[(g, v, "mc")].absolute for v in names] for g in names]
    assert claims.trend_counts(matrix)["rows_rising"] <= 2 and matrix[0] == [0.0, 0.0, 0.0]
    # a verifier that keeps nothing (global tau above every score) makes its column untestable
    none = synthetic_grid(us, {(g, v): scores(g, v) * (v != "g2") for g in names for v in names})
    cols = {c["model"]: c for c in claims.trend_tests(none, claims.Filter("mc", tau=0.0), n_boot=100)["columns"]}
    assert cols["g2"]["status"] == "untestable" and "keeps nothing or everything" in cols["g2"]["reason"]
    with pytest.raises(ValueError, match="run it with cross=True"):
        claims.trend_tests(synthetic_grid(us, {(g, g): us[g] for g in names}), claims.Filter("mc", tau=0.5))


def test_slope_ci_of_the_absolute_gap():
    rng = np.random.default_rng(2)
    u = (rng.random((100, 8)) < 0.5).astype(float)
    results = [gap(u, np.where(u == 1, 1.0, (rng.random(u.shape) > p).astype(float)), tau=0.5) for p in (0, 0.4, 0.8)]
    lo, hi = claims.slope_ci(results, [1e12, 1e13, 1e14], kind="absolute", n_boot=200)
    slope = np.polyfit(np.log([1e-9, 1e-8, 1e-7]), [100 * r.absolute for r in results], 1)[0]
    assert lo <= slope <= hi and lo > 0
    with pytest.raises(ValueError, match="`kind` must be"):
        claims.slope_ci(results, [1, 2, 3], kind="pooled")


# -- the chapters' claim checks: fixed keys, verdicts that can fail ----------------------------------
def test_scaling_check_judges_one_method_and_says_when_it_could_not():
    methods = ["mc", "cot_score"]
    fits = {"mc": (0.5, 0.0, 0.9), "cot_score": (1.5, 0.0, 0.8)}
    rising = claims.scaling_check(methods, fits, {"mc": (-0.1, 1.0), "cot_score": (0.2, 3.0)},
                                  {"mc": None, "cot_score": None}, judged_on="cot_score")
    assert set(rising) == {"holds", "judged_on", "rising_methods", "rises", "not_tested", "steepest"}
    assert rising["holds"] is True and rising["rising_methods"] == ["CoT-Score"] and rising["steepest"] == "cot_score"
    flat = claims.scaling_check(methods, fits, {"mc": (0.1, 1.0), "cot_score": (-0.2, 3.0)},
                                {"mc": None, "cot_score": None}, judged_on="cot_score")
    assert flat["holds"] is False and flat["rises"] == {"mc": True, "cot_score": False}
    untested_ = claims.scaling_check(methods, fits, {"mc": (0.1, 1.0), "cot_score": (0.2, 3.0)},
                                     {"mc": None, "cot_score": "the filter kept nothing"}, judged_on="cot_score")
    assert untested_["holds"] is None and untested_["steepest"] == "mc" and not untested_["rises"]["cot_score"]


def test_cross_verification_check_counts_testable_lines_by_majority():
    def tests(rising, testable, falling, columns):
        return {"rows_rising": rising, "rows_testable": testable, "columns_falling": falling, "columns_testable": columns}

    matrix = np.array([[0.0, 1.0, 2.0], [-1.0, 0.5, 1.0], [-3.0, -2.0, 0.0]])  # rows rise, columns fall
    check = claims.cross_verification_check({"mc": tests(2, 3, 0, 3)}, {"mc": matrix})
    assert check["holds"] is True and check["rows_hold"] is True and check["columns_hold"] is False
    assert (check["rows_rising"], check["columns_falling"], check["n"]) == (3, 3, 3)
    assert check["weak_verifies_strong"] == {"mc": -3.0}
    assert claims.cross_verification_check({"mc": tests(1, 2, 0, 0)}, {"mc": matrix})["holds"] is False  # a tie
    none = claims.cross_verification_check({"mc": tests(0, 0, 0, 0)}, {"mc": matrix})
    assert none["holds"] is None and none["columns_hold"] is None


def test_unimprovable_claims_sudoku_gain_only_for_the_largest():
    models = ["s", "m", "l"]

    def table(gap_lo, n_mixed=5):
        return pd.DataFrame({"generator": models, "gap": [g + 1 for g in gap_lo], "gap_lo": gap_lo,
                             "gap_hi": [g + 2 for g in gap_lo], "n_mixed": n_mixed, "n_prompts": 10, "n_empty": 0,
                             "untested": pd.Series([None] * 3, dtype=object)})

    flat, rising = table([-1.0, -1.0, -1.0]), table([-1.0, 0.5, 0.5])
    check = claims.unimprovable_claims(flat, rising, rising)
    assert set(check) == {"holds", "factual_contrast", "factual_max_gap", "reasoning_above_factual", "sudoku_gainers"}
    assert check["holds"] == {"factual_unimprovable": True, "sudoku_only_largest_gain": True}
    assert check["sudoku_gainers"] == ["m", "l"] and check["reasoning_above_factual"] == ["m", "l"]
    assert claims.unimprovable_claims(flat, rising, table([0.5, -1.0, 0.5]))["holds"]["sudoku_only_largest_gain"] is False
    assert claims.unimprovable_claims(flat, rising, table([0.5, 0.5, 0.5]))["holds"]["sudoku_only_largest_gain"] is False
    assert claims.unimprovable_claims(flat, rising, table([0.5] * 3, n_mixed=0))["holds"]["sudoku_only_largest_gain"] is None


def test_verdicts_read_the_same_everywhere(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda x: shown.append(x.data))
    claims.show_verdict(f"the claim {claims.OUTCOME[None]} here", ["one fact", "another"], after=" (judged on MC).")
    assert shown == ["**Verdict: the claim could not be tested here** (judged on MC).\n\n- one fact\n- another"]
    assert claims.ci_text(0.012, -0.004, 0.03, scale=100) == "+1.2 [-0.4, +3.0]"
