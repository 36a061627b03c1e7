"""The verification chapter (paper §6 and beyond) runs end to end with its ``tiny`` preset, writes a complete
results/verification.json whose numbers the cached samples and verdicts give, and its default preset asks
the engine for exactly the scaling, cross-verification and unimprovable chapters' samples and verdicts."""
import json
from pathlib import Path

import numpy as np
import pytest

from gvlib import analysis, claims, paper_numbers
from gvlib.metrics import filter_weights, gap_from_weights
from gvlib.tasks import load
from test_claim_notebooks import common, execute

ROOT = Path(__file__).resolve().parents[1]


def preset(notebook, name):
    """A preset's effective parameters: the notebook's parameters cell with the preset's changes."""
    from gvlib.plan import notebook_params

    values = notebook_params(ROOT / "notebooks" / f"{notebook}.ipynb",
                             ROOT / "notebooks" / "params" / notebook / f"{name}.yaml", [])
    values.pop("__annotations__", None)
    return values


def test_verification_tiny(tmp_path, monkeypatch):
    tiny, record, nb = execute(tmp_path, monkeypatch, "verification")
    common(record, tiny, "verification", tmp_path)
    m, ps = record["measured"], record["parameters"]
    names = [x["name"] for x in m["models"]]
    k = len(names)
    # part 1: every sweep covers every model and threshold; the transfer loss is never negative
    assert set(m["sweeps"]) == {"MC quantile q", "MC global τ", "CoT-Score τ"}
    assert [t for t, _ in m["sweeps"]["CoT-Score τ"][names[0]]] == ps["cot_score_taus"]
    assert len(m["transfer"]) == 3 * k and all(r["loss"] >= 0 for r in m["transfer"])
    assert len(m["tournament_by_round"]) == k * (ps["tournament_rounds"] + 1)
    assert len(m["gap_spread"]) == 4 * k
    for g in names:
        assert len(m["ensembles"][g]) == 7
        for e in m["ensembles"][g]:
            assert e["gap_ci"][0] - 1e-9 <= e["gap"] <= e["gap_ci"][1] + 1e-9
    # the paper's Tab. 3 beside ours, as transcribed
    assert record["paper"]["ensemble"]["rows"] == {k_: list(v) for k_, v in paper_numbers.ENSEMBLE_GSM8K["Qwen-2"].items()}
    assert record["paper"]["ensemble"]["exceptions"]["Qwen/Qwen2-0.5B"]["below_best_member"] == 3
    # part 2: one cell per self-verification filter and per cross-verification filter, off the diagonal
    cells = m["prediction_cells"]
    self_filters = 5 if "tournament" in ps["methods"] else 4  # MC tau and quantile, CoT-Score, CoT-Binary, Tournament
    cross_filters = sum({"mc": 2, "cot_score": 1}[v] for v in ps["cross_methods"])
    assert len(cells) == k * self_filters + k * (k - 1) * cross_filters
    for c in cells:
        assert c["gap_lo"] - 1e-9 <= c["gap"] <= c["gap_hi"] + 1e-9
        assert (c["inside"] is None) == (c["predicted_gap"] is None)
    # part 3: m = 1 is the chapters' one CoT-Score verification at tau, on the first repeat_prompts prompts
    rows = m["verification_compute"]["rows"]
    assert [r["m"] for r in rows if r["model"] == names[0]] == ps["n_verifications"]
    flops = [r["verification FLOPs per sample"] for r in rows if r["model"] == names[0]]
    assert flops == pytest.approx([x * flops[0] for x in ps["n_verifications"]]) and flops[0] > 0
    # every number is the one the cached samples and verdicts give: recompute a sweep and an ensemble
    models = claims.resolve_models(ps["organism"], ps["models"])
    task = load(ps["task"], limit=ps["n_prompts"], data_dir=ps["data_dir"], family=models.family)
    grid = claims.run_grid(models.models, task, ps["methods"], n=ps["n_samples"], temperature=ps["temperature"],
                           top_p=ps["top_p"], seed=ps["seed"], backend=ps["backend"],
                           tournament_rounds=ps["tournament_rounds"], threads=1)
    g = names[-1]
    u = grid.generations[g].u
    s = grid.verifications[(g, g, "cot_score")].scores
    sweep = analysis.threshold_sweep(u, s, taus=ps["cot_score_taus"])
    assert [v for _, v in m["sweeps"]["CoT-Score τ"][g]] == pytest.approx([100 * r.absolute for r in sweep.values()])
    k3 = m["verification_compute"]["prompts"]
    one = next(r for r in rows if r["model"] == g and r["m"] == 1)
    assert one["gap %"] == pytest.approx(100 * gap_from_weights(u[:k3], filter_weights(s[:k3], tau=ps["cot_score_tau"])).absolute)
    # the tiny family never has a prompt with 0 < accuracy < 1: nothing is informative, and the page says so
    cc = record["claim_check"]
    assert cc["informative_models"] == [] and cc["prediction_inside_share"] is None and m["prediction_informative_cells"] == 0
    assert cc["binned_inside_share"] is None and cc["formula_inside_share"] is None and all((c["formula_inside"] is None) == (c["formula_gap"] is None) for c in cells)
    text = json.dumps(nb.cells, ensure_ascii=False)
    assert "the prediction could not be tested" in text and "predicted inside the measured 95% interval in 0 of 0" in text
    assert "AND-ensembles**: could not be tested here: no model has a prompt with 0 < accuracy < 1" in text
    assert all(v is None for v in cc["transfer_max_loss"].values()) and cc["ensemble_combinations"] == 0
    assert cc["holds"] == dict.fromkeys(("threshold_transfers", "mc_quantile_concave", "cot_score_rises",
                                         "and_ensemble_helps"))
    assert "An AND-ensemble helps: could not be tested here (0 of 0 combinations)" in text
    assert np.isfinite(record["wall_time_s"])


def test_default_preset_reads_the_other_chapters_samples_and_verdicts():
    """The engine keys samples and verdicts by model, task, prompts, sampling settings and seed (and a tournament by
    its rounds): the default preset must name the same ones as the chapters it reads, so only part 3 is new."""
    mine, scaling = preset("verification", "default"), preset("scaling", "default")
    cross, unimprovable = preset("cross_verification", "default"), preset("unimprovable", "default")
    for key in ("organism", "task", "n_prompts", "n_samples", "temperature", "top_p", "seed", "backend", "backend_options",
                "methods", "tournament_rounds", "mc_tau", "cot_score_tau"):
        assert mine[key] == scaling[key], key
    for key in ("organism", "task", "n_prompts", "n_samples", "temperature", "top_p", "seed", "backend", "mc_quantile",
                "cot_score_tau"):
        assert mine[key] == cross[key], key
    assert mine["cross_methods"] == cross["methods"]
    # the factual task is the unimprovable chapter's; its MC verdicts are the organism page's (every method on
    # every task), the unimprovable chapter verifying with CoT-Score by default
    organism = preset("organism", "default")
    assert mine["factual_task"] == unimprovable["factual_task"]
    for key in ("organism", "n_prompts", "n_samples", "temperature", "top_p", "seed", "backend"):
        assert mine[key] == unimprovable[key], key
    for key in ("organism", "n_prompts", "n_samples", "temperature", "top_p", "seed"):
        assert mine[key] == organism[key], key
    paper = preset("verification", "paper")
    assert paper["models"] == preset("cross_verification", "paper")["models"] and paper["n_samples"] == 128
    assert {p.stem for p in (ROOT / "notebooks" / "params" / "verification").glob("*.yaml")} == {"tiny", "default", "paper",
                                                                                                   "smoke"}
    smoke = preset("verification", "smoke")
    assert (smoke["n_prompts"], smoke["n_samples"]) == (16, 8)
    assert {k: v for k, v in smoke.items() if k not in ("n_prompts", "n_samples", "n_boot", "tournament_rounds",
                                                        "repeat_prompts")} \
        == {k: v for k, v in paper.items() if k not in ("n_prompts", "n_samples", "n_boot", "tournament_rounds",
                                                        "repeat_prompts")}


def test_the_chapter_is_read_after_cross_verification_and_run_after_the_chapters_it_reads():
    from gvlib.build import AFTER, BOOK_NOTEBOOKS

    toc = (ROOT / "_toc.yml").read_text()
    assert toc.index("generated/cross_verification") < toc.index("generated/verification") < toc.index("generated/unimprovable")
    order = list(BOOK_NOTEBOOKS)
    assert max(order.index(c) for c in ("scaling", "cross_verification", "unimprovable")) < order.index("verification")
    assert set(AFTER["verification"]) >= {"scaling", "cross_verification", "unimprovable"}


def test_the_chapter_on_prompts_with_mixed_accuracy(tmp_path, monkeypatch):
    """The tiny family never has a prompt with 0 < accuracy < 1, so its run leaves the comparisons untested.
    Here the chapter's code runs in this process on the tiny family's samples and verdicts with their utilities
    replaced by seeded random ones (0 < acc < 1 on most prompts): every comparison is computed and written."""
    import dataclasses

    import matplotlib
    import nbformat

    matplotlib.use("Agg")
    monkeypatch.setenv("GVLIB_RESULTS", str(tmp_path))
    real, rng, utilities = claims.run_grid, np.random.default_rng(0), {}

    def mixed(models, task, methods, **kw):
        grid = real(models, task, methods, **kw)
        for g, gens in grid.generations.items():
            if (task.name, g) not in utilities:
                p = rng.random((gens.u.shape[0], 1))
                utilities[(task.name, g)] = (rng.random(gens.u.shape) < p).astype(float)
            grid.generations[g] = dataclasses.replace(gens, u=utilities[(task.name, g)])
        return grid

    monkeypatch.setattr(claims, "run_grid", mixed)
    namespace = {}
    nb = nbformat.read(ROOT / "notebooks" / "verification.ipynb", as_version=4)
    defaults = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    exec(defaults.source, namespace)  # noqa: S102 (the notebook's own parameters cell)
    namespace.update({**preset("verification", "tiny"), "n_prompts": 12, "n_samples": 4, "tournament_rounds": 2,
                      "cross_methods": ["mc", "cot_score"], "n_verifications": [1, 2, 4], "repeat_prompts": 6})
    for cell in nb.cells:
        if cell.cell_type == "code" and cell is not defaults and "raise NotImplementedError" not in cell.source:
            exec(cell.source, namespace)  # noqa: S102
    record = json.loads((tmp_path / "verification.json").read_text())
    cc, m = record["claim_check"], record["measured"]
    assert cc["informative_models"] and 0 <= cc["prediction_inside_share"] <= 1 and m["prediction_informative_cells"] > 0
    assert 0 <= cc["binned_inside_share"] <= 1 and 0 <= cc["formula_inside_share"] <= 1
    assert cc["ensemble_combinations"] == 4 * len(cc["informative_models"]) and cc["budgets"] > 0
    # the verdict: more than half of what can test a finding shows it
    # (a sweep whose gap is the same at every threshold shows no shape: left out)
    def majority(hits, total):
        return None if total == 0 else hits > total / 2

    vary = cc["sweeps_that_vary"]
    assert all(set(v) <= set(cc["informative_models"]) for v in vary.values())
    assert set(cc["cot_score_rising"]) <= set(vary["CoT-Score τ"])
    assert set(cc["mc_quantile_interior_peak"]) <= set(vary["MC quantile q"])
    assert cc["holds"] == {
        "threshold_transfers": majority(cc["transfer_pairs_agreeing"], cc["transfer_pairs"]),
        "mc_quantile_concave": majority(len(cc["mc_quantile_interior_peak"]), len(vary["MC quantile q"])),
        "cot_score_rises": majority(len(cc["cot_score_rising"]), len(vary["CoT-Score τ"])),
        "and_ensemble_helps": majority(cc["ensemble_at_least_best_member"],
                                       cc["ensemble_combinations"] - cc["ensemble_all_zero"])}
    assert 0 <= cc["ensemble_all_zero"] < cc["ensemble_combinations"] and cc["holds"]["and_ensemble_helps"] is not None
    assert [r["m"] for r in m["verification_compute"]["rows"]][:3] == [1, 2, 4]
    assert len(m["verification_compute"]["rows"]) == 3 * len(m["models"])
