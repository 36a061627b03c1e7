"""The three claim notebooks run end to end through papermill with their ``tiny`` presets, and write
results JSON that is complete and self-consistent (the organism's tiny family, trained once and cached)."""
import json
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml

from gvlib import claims, tasks
from gvlib.metrics import fit_log_linear

ROOT = Path(__file__).resolve().parents[1]
CLAIMS = ("scaling", "cross_verification", "unimprovable")


def execute(tmp_path, monkeypatch, notebook, **parameters):
    """Run notebooks/<notebook>.ipynb with its tiny preset (plus ``parameters``); results go to tmp_path.
    Returns the parameters it ran with (the cell's defaults and the preset), the results and the notebook."""
    from gvlib.plan import notebook_params

    monkeypatch.setenv("GVLIB_RESULTS", str(tmp_path))  # the kernel inherits it: the book's results/ stay untouched
    preset = notebook_params(ROOT / "notebooks" / f"{notebook}.ipynb",
                             ROOT / "notebooks" / "params" / notebook / "tiny.yaml", [])
    preset.pop("__annotations__")
    out = tmp_path / f"{notebook}.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / f"{notebook}.ipynb"), str(out),
                               parameters={**preset, **parameters}, kernel_name="python3",
                               progress_bar=False, cwd=str(ROOT))
    return preset, json.loads((tmp_path / f"{notebook}.json").read_text()), nbformat.read(out, as_version=4)


def check_rows(rows):
    """Every row: gaps in percent inside their own bootstrap intervals, accuracies in [0, 100]."""
    assert rows
    for r in rows:
        assert 0 <= r["accuracy"] <= 100 and 0 <= r["filtered_accuracy"] <= 100
        assert r["gap_lo"] - 1e-9 <= r["gap"] <= r["gap_hi"] + 1e-9
        assert r["relative_gap_lo"] - 1e-9 <= r["relative_gap"] <= r["relative_gap_hi"] + 1e-9
        assert r["gap"] == pytest.approx(r["filtered_accuracy"] - r["accuracy"], abs=1e-6)
        assert 0 <= r["n_mixed"] <= r["n_prompts"] and 0 <= r["n_empty"] <= r["n_prompts"]


def recomputed(record, task, methods, *, cross=False):
    """The rows of the notebook's table recomputed here from its recorded parameters: the same prompts, samples
    and verdicts (read back from the engine's cache the notebook filled), filters and bootstrap seed."""
    from gvlib import claims

    ps = record["parameters"]
    models = claims.resolve_models(ps["organism"], ps["models"], ps.get("flops", ()))
    task_obj = tasks.load(task, limit=ps["n_prompts"], data_dir=ps["data_dir"], family=models.family)
    filters = claims.make_filters(methods, mc_tau=ps.get("mc_tau"), mc_quantile=ps.get("mc_quantile"),
                                  cot_score_tau=ps["cot_score_tau"],
                                  tournament_rounds=ps.get("tournament_rounds", 1))
    grid = claims.run_grid(models.models, task_obj, methods, cross=cross, n=ps["n_samples"],
                           temperature=ps["temperature"], top_p=ps["top_p"], seed=ps["seed"], backend=ps["backend"],
                           backend_options=ps["backend_options"], tournament_rounds=ps.get("tournament_rounds", 1),
                           threads=1)
    rows = grid.table(filters, n_boot=ps["n_boot"], seed=ps["seed"]).to_dict(orient="records")
    # as results/<claim>.json holds them: a missing number (NaN in the table) is null there
    rows = [{k: None if isinstance(v, float) and v != v else v for k, v in r.items()} for r in rows]
    return grid, filters, rows


def common(record, preset, claim, tmp_path):
    assert record["claim"] == claim
    assert {k: record["parameters"][k] for k in preset} == preset
    assert record["versions"]["torch"] and record["wall_time_s"] > 0
    assert record["claim_check"]["holds"] is None or isinstance(record["claim_check"]["holds"], (bool, dict))
    assert list(tmp_path.glob(f"{claim}-*.png")), "the notebook saved no figure"


def test_scaling_tiny(tmp_path, monkeypatch):
    preset, record, nb = execute(tmp_path, monkeypatch, "scaling")
    common(record, preset, "scaling", tmp_path)
    m = record["measured"]
    check_rows(m["rows"])
    assert len(m["rows"]) == len(m["models"]) * len(preset["methods"]) and len(m["models"]) >= 2
    flops = [x["flops"] for x in m["models"]]
    assert flops == sorted(flops) and all(f > 0 for f in flops)
    for method in preset["methods"]:
        fit = m["fits"][method]
        assert fit["slope_ci"][0] <= fit["slope_ci"][1] and 0 <= fit["r2"] <= 1 + 1e-9
        assert method in record["paper"]["points"] and len(record["paper"]["points"][method]["flops"]) == 7
    # every number is the one the recorded samples and verdicts give
    grid, filters, rows = recomputed(record, preset["task"], preset["methods"])
    assert m["rows"] == rows
    gaps = grid.gaps(filters)
    names = [x["name"] for x in m["models"]]
    for method in preset["methods"]:
        mine = {r["generator"]: r["relative_gap"] for r in rows if r["method"] == method}
        slope, intercept, r2 = fit_log_linear(flops, [mine[g] for g in names])
        ci = claims.slope_ci([gaps[(g, g, method)] for g in names], flops, n_boot=preset["n_boot"], seed=preset["seed"])
        fit = m["fits"][method]
        assert [fit["slope"], fit["intercept"], fit["r2"], *fit["slope_ci"]] == pytest.approx([slope, intercept, r2, *ci])
    cc = record["claim_check"]
    judged = cc["judged_on"]
    assert cc["holds"] == (None if cc["not_tested"][judged] else cc["rises"][judged])
    assert all(not cc["rises"][m] for m in cc["not_tested"] if cc["not_tested"][m])
    # the tiny family never has a prompt with 0 < accuracy < 1: every method is untested, not "not rising"
    text = json.dumps(nb.cells)
    assert cc["holds"] is None and "Verdict: the claim could not be tested here" in text
    assert "not tested**: 0 model(s) measured a gap, a trend needs 2" in text
    # sampled verifications report the share cut by the token budget before a verdict; MC samples nothing
    assert all((r["truncation_rate"] is None) == (r["method"] == "mc") for r in m["rows"])
    assert all(0 <= r["truncation_rate"] <= r["unparseable_rate"] for r in m["rows"] if r["method"] != "mc")
    # the tournament's position bias, per model, beside the paper's 0.56 ± 0.12 (§6.1)
    assert "tournament" in preset["methods"] and record["paper"]["position_bias"] == {"mean": 0.56, "sd": 0.12}
    bias = m["position_bias"]
    assert set(bias) == {x["name"] for x in m["models"]}
    for name, b in bias.items():
        row = next(r for r in m["rows"] if r["method"] == "tournament" and r["generator"] == name)
        assert b["overall"] == row["position_bias"] and len(b["by_round"]) == preset["tournament_rounds"]
    shown = json.dumps(nb.cells, ensure_ascii=False)
    assert "P(prefer first)" in shown and "0.56 ± 0.12" in shown


def test_cross_verification_tiny(tmp_path, monkeypatch):
    preset, record, nb = execute(tmp_path, monkeypatch, "cross_verification")
    common(record, preset, "cross_verification", tmp_path)
    m = record["measured"]
    k = len(m["models"])
    check_rows(m["rows"])
    assert len(m["rows"]) == k * k * len(preset["methods"])
    for method in preset["methods"]:
        matrix = m["matrices"][method]
        assert len(matrix) == k and all(len(r) == k for r in matrix)
        diag = {r["generator"]: r["gap"] for r in m["rows"] if r["method"] == method and r["generator"] == r["verifier"]}
        assert [matrix[i][i] for i in range(k)] == pytest.approx([diag[x["name"]] for x in m["models"]])
    assert m["rows"] == recomputed(record, preset["task"], preset["methods"], cross=True)[2]
    names = [x["name"] for x in m["models"]]
    for method in preset["methods"]:
        gaps = {(r["generator"], r["verifier"]): r["gap"] for r in m["rows"] if r["method"] == method}
        assert m["matrices"][method] == [[gaps[(g, v)] for v in names] for g in names]
    counts = [claims.trend_counts(m["matrices"][method]) for method in preset["methods"]]
    cc = record["claim_check"]
    assert 0 <= cc["rows_rising"] <= cc["n"] and 0 <= cc["columns_falling"] <= cc["n"]
    tested = cc["tested"]
    assert 0 <= tested["rows_rising"] <= tested["rows_testable"] <= cc["n"]
    for method, t in m["trend_tests"].items():
        assert len(t["rows"]) == len(t["columns"]) == k
        assert all((e["status"] == "untestable") == (e["reason"] is not None) for e in t["rows"] + t["columns"])
    # the tiny family's generators never have a prompt with 0 < accuracy < 1: rows of zeros are untestable,
    # and the verdict says so instead of "does not hold"
    assert tested["rows_testable"] == 0 and cc["holds"] is None
    text = json.dumps(nb.cells)
    assert "Verdict: the main trend (a larger verifier gives a larger gap) could not be tested here" in text
    assert "untestable: MC top0.8 t1 (0 informative cell(s) of 3: no prompt with 0 < accuracy < 1)" in text
    assert (cc["rows_rising"], cc["columns_falling"], cc["n"]) == tuple(sum(c[k] for c in counts)
                                                                      for k in ("rows_rising", "columns_falling", "n"))
    assert record["paper"]["trend_counts_all_grids"] == {"rows_rising": 13, "columns_falling": 7, "n": 14}


def test_unimprovable_tiny(tmp_path, monkeypatch):
    preset, record, nb = execute(tmp_path, monkeypatch, "unimprovable")
    common(record, preset, "unimprovable", tmp_path)
    m = record["measured"]
    check_rows(m["rows"])
    assert {r["task"] for r in m["rows"]} == {"organism/facts", "organism/arith", "organism/sudoku"}
    assert len(m["rows"]) == 3 * len(m["models"])
    for task in {r["task"] for r in m["rows"]}:
        method = next(r["method"] for r in m["rows"] if r["task"] == task)
        mine = [{k: v for k, v in r.items() if k not in ("kind", "task")} for r in m["rows"] if r["task"] == task]
        assert mine == recomputed(record, task, [method])[2], task
    holds = record["claim_check"]["holds"]
    assert set(holds) == {"factual_unimprovable", "sudoku_only_largest_gain"}
    facts = [r for r in m["rows"] if r["task"] == "organism/facts"]
    assert record["claim_check"]["factual_max_gap"] == pytest.approx(max(r["gap"] for r in facts))
    contrast = record["claim_check"]["factual_contrast"]
    assert holds["factual_unimprovable"] == contrast["holds"]
    # the tiny family is never right on a factual prompt: a flat factual gap is not evidence of the claim
    assert contrast["verdict"] == "could not be tested" and holds["factual_unimprovable"] is None
    text = json.dumps(nb.cells)
    assert "Verdict: factual recall could not be tested here" in text
    assert "could not be tested: no model measured a gap on the factual task" in text


def test_mistyped_parameter_stops_a_claim_notebook(tmp_path, monkeypatch):
    with pytest.raises(papermill.PapermillExecutionError, match="unknown parameter 'n_sampels'; did you mean 'n_samples'"):
        execute(tmp_path, monkeypatch, "cross_verification", n_sampels=4)


@pytest.mark.parametrize("claim", CLAIMS)
def test_presets_exist_and_default_shares_the_samples(claim):
    """tiny/default/paper/smoke presets exist and hold only what they change (default: nothing, the parameters
    cell is the book's run); the defaults use the same prompts and sampling settings, so the engine's cache
    shares generations between the chapters; smoke is paper on 16 prompts x 8 samples."""
    from gvlib.plan import notebook_params

    folder = ROOT / "notebooks" / "params" / claim
    assert {p.stem for p in folder.glob("*.yaml")} == {"tiny", "default", "paper", "smoke"}

    def effective(notebook, preset):
        path = ROOT / "notebooks" / "params" / notebook / f"{preset}.yaml"
        cell = notebook_params(ROOT / "notebooks" / f"{notebook}.ipynb", None, [])
        changes = yaml.safe_load(path.read_text()) or {}
        assert not {k for k, v in changes.items() if cell.get(k) == v}, f"{path.name} repeats the cell's defaults"
        return {**cell, **changes}

    assert yaml.safe_load((folder / "default.yaml").read_text()) == {}
    default, scaling = effective(claim, "default"), effective("scaling", "default")
    for key in ("organism", "n_prompts", "n_samples", "temperature", "top_p", "seed"):
        assert default[key] == scaling[key], key
    paper = effective(claim, "paper")
    assert paper["organism"] is None and paper["n_samples"] == 128 and paper["temperature"] == 0.7
    assert paper["top_p"] == 0.9 and paper["models"]
    smoke = effective(claim, "smoke")
    assert (smoke["n_prompts"], smoke["n_samples"]) == (16, 8)
    assert {k: v for k, v in smoke.items() if k not in ("n_prompts", "n_samples", "n_boot", "tournament_rounds")} \
        == {k: v for k, v in paper.items() if k not in ("n_prompts", "n_samples", "n_boot", "tournament_rounds")}


def test_build_runs_the_claims_in_order_after_training_their_organism():
    from gvlib.build import BOOK_NOTEBOOKS, organism_presets

    assert BOOK_NOTEBOOKS[:4] == ("definitions", "scaling", "cross_verification", "unimprovable")
    assert organism_presets(CLAIMS, "default") == ["default"] and organism_presets(CLAIMS, "tiny") == ["tiny"]
    assert organism_presets(CLAIMS, "paper") == []  # the paper presets name Hugging Face models
