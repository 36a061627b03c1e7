"""gvlib.claims: filters, trend counts, the slope bootstrap and the paper's scaling points."""
import numpy as np
import pytest

from gvlib import claims, paper_numbers
from gvlib.metrics import gap
from gvlib.verifiers import Verification


def test_filters_follow_the_papers_thresholds():
    f = claims.make_filters(["mc", "cot_score", "cot_binary", "tournament"], mc_threshold=0.8, tournament_rounds=2)
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
    assert (rows, cols, n) == (13, 7, 14)  # reference/paper.md §5(b)
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
    assert claims.backend_kwargs(big, opts) == {"dtype": "float16", "tensor_parallel_size": 4}
    assert claims.backend_kwargs(small, opts) == {"dtype": "bfloat16"} and claims.backend_kwargs(small, None) == {}
    with pytest.raises(ValueError, match=r"\['Qwen/Qwen2-72B'\] do not"):
        claims.backend_kwargs(big, {"Qwen/Qwen2-72B": 4})
