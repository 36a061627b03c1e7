"""The three claim notebooks run end to end through papermill with their ``tiny`` presets, and write
results JSON that is complete and self-consistent (the organism's tiny family, trained once and cached)."""
import json
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLAIMS = ("scaling", "cross_verification", "unimprovable")


def execute(tmp_path, monkeypatch, notebook, **parameters):
    """Run notebooks/<notebook>.ipynb with its tiny preset (plus ``parameters``); results go to tmp_path."""
    monkeypatch.setenv("GVLIB_RESULTS", str(tmp_path))  # the kernel inherits it: the book's results/ stay untouched
    preset = yaml.safe_load((ROOT / "notebooks" / "params" / notebook / "tiny.yaml").read_text())
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


def common(record, preset, claim, tmp_path):
    assert record["claim"] == claim
    assert {k: record["parameters"][k] for k in preset} == preset
    assert record["versions"]["torch"] and record["wall_time_s"] > 0
    assert isinstance(record["claim_check"]["holds"], (bool, dict))
    assert list(tmp_path.glob(f"{claim}-*.png")), "the notebook saved no figure"


def test_scaling_tiny(tmp_path, monkeypatch):
    preset, record, nb = execute(tmp_path, monkeypatch, "scaling")
    common(record, preset, "scaling", tmp_path)
    m = record["measured"]
    check_rows(m["rows"])
    assert len(m["rows"]) == len(m["models"]) * len(preset["verifiers"]) and len(m["models"]) >= 2
    flops = [x["flops"] for x in m["models"]]
    assert flops == sorted(flops) and all(f > 0 for f in flops)
    for method in preset["verifiers"]:
        fit = m["fits"][method]
        assert fit["slope_ci"][0] <= fit["slope_ci"][1] and 0 <= fit["r2"] <= 1 + 1e-9
        assert method in record["paper"]["points"] and len(record["paper"]["points"][method]["flops"]) == 7
    assert record["claim_check"]["holds"] == any(record["claim_check"]["rises"].values())
    assert "Verdict: the claim" in json.dumps(nb.cells)


def test_cross_verification_tiny(tmp_path, monkeypatch):
    preset, record, nb = execute(tmp_path, monkeypatch, "cross_verification")
    common(record, preset, "cross_verification", tmp_path)
    m = record["measured"]
    k = len(m["models"])
    check_rows(m["rows"])
    assert len(m["rows"]) == k * k * len(preset["verifiers"])
    for method in preset["verifiers"]:
        matrix = m["matrices"][method]
        assert len(matrix) == k and all(len(r) == k for r in matrix)
        diag = {r["generator"]: r["gap"] for r in m["rows"] if r["method"] == method and r["generator"] == r["verifier"]}
        assert [matrix[i][i] for i in range(k)] == pytest.approx([diag[x["name"]] for x in m["models"]])
    cc = record["claim_check"]
    assert 0 <= cc["rows_rising"] <= cc["n"] and 0 <= cc["columns_falling"] <= cc["n"]
    assert record["paper"]["trend_counts_all_grids"] == {"rows_rising": 13, "columns_falling": 7, "n": 14}


def test_unimprovable_tiny(tmp_path, monkeypatch):
    preset, record, nb = execute(tmp_path, monkeypatch, "unimprovable")
    common(record, preset, "unimprovable", tmp_path)
    m = record["measured"]
    check_rows(m["rows"])
    assert {r["task"] for r in m["rows"]} == {"organism/facts", "organism/arith", "organism/sudoku"}
    assert len(m["rows"]) == 3 * len(m["models"])
    holds = record["claim_check"]["holds"]
    assert set(holds) == {"factual_unimprovable", "factual_informative", "sudoku_only_largest_gain"}
    facts = [r for r in m["rows"] if r["task"] == "organism/facts"]
    assert holds["factual_informative"] == (sum(r["n_mixed"] for r in facts) > 0)
    assert record["claim_check"]["factual_max_gap"] == pytest.approx(max(r["gap"] for r in facts))


def test_mistyped_parameter_stops_a_claim_notebook(tmp_path, monkeypatch):
    with pytest.raises(papermill.PapermillExecutionError, match="unknown parameter 'n_sampels'; did you mean 'n_samples'"):
        execute(tmp_path, monkeypatch, "cross_verification", n_sampels=4)


@pytest.mark.parametrize("claim", CLAIMS)
def test_presets_exist_and_default_shares_the_samples(claim):
    """tiny/default/paper/smoke presets exist; the defaults use the same prompts and sampling settings, so the
    engine's cache shares generations between the chapters; smoke is paper on 16 prompts x 8 samples."""
    folder = ROOT / "notebooks" / "params" / claim
    assert {p.stem for p in folder.glob("*.yaml")} == {"tiny", "default", "paper", "smoke"}
    default = yaml.safe_load((folder / "default.yaml").read_text())
    scaling = yaml.safe_load((ROOT / "notebooks" / "params" / "scaling" / "default.yaml").read_text())
    for key in ("organism", "n_prompts", "n_samples", "temperature", "top_p", "seed"):
        assert default[key] == scaling[key], key
    paper = yaml.safe_load((folder / "paper.yaml").read_text())
    assert paper["organism"] is None and paper["n_samples"] == 128 and paper["temperature"] == 0.7
    assert paper["top_p"] == 0.9 and paper["models"]
    smoke = yaml.safe_load((folder / "smoke.yaml").read_text())
    assert (smoke["n_prompts"], smoke["n_samples"]) == (16, 8)
    assert {k: v for k, v in smoke.items() if k not in ("n_prompts", "n_samples", "n_boot", "tournament_rounds")} \
        == {k: v for k, v in paper.items() if k not in ("n_prompts", "n_samples", "n_boot", "tournament_rounds")}


def test_build_runs_the_claims_in_order_after_training_their_organism():
    from gvlib.build import BOOK_NOTEBOOKS, organism_presets

    assert BOOK_NOTEBOOKS[:4] == ("definitions", "scaling", "cross_verification", "unimprovable")
    assert organism_presets(CLAIMS, "default") == ["default"] and organism_presets(CLAIMS, "tiny") == ["tiny"]
    assert organism_presets(CLAIMS, "paper") == []  # the paper presets name Hugging Face models
