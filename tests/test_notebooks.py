"""The committed notebooks: no stored outputs, parameters as declared, presets valid, runnable by papermill."""
import json
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml

from gvlib.organism import seeds

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_FILES = sorted((ROOT / "notebooks").glob("*.ipynb"))
NAMES = [p.stem for p in NOTEBOOK_FILES]


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=NAMES)
def test_committed_notebook_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name} has stored outputs"


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=NAMES)
def test_parameters_cell_matches_declaration_and_presets(path):
    """Papermill reads every parameter with the type the cell declares (gvlib.params validates by it)."""
    declared = papermill.inspect_notebook(str(path))
    nb = nbformat.read(path, as_version=4)
    namespace: dict = {}
    exec(next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", [])), namespace)
    assert set(declared) == set(namespace["__annotations__"]), f"{path.name}: a parameter papermill cannot read"
    assert all(p["inferred_type_name"] != "None" for p in declared.values()), f"{path.name}: an untyped parameter"
    for preset in sorted((ROOT / "notebooks" / "params" / path.stem).glob("*.yaml")):
        keys = set(yaml.safe_load(preset.read_text()) or {})
        unknown = keys - set(declared)
        assert not unknown, f"preset {preset.relative_to(ROOT)} sets undeclared parameters {sorted(unknown)}"


def test_mistyped_parameter_stops_the_run(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError, match="unknown parameter 'sede'; did you mean 'seed'"):
        papermill.execute_notebook(str(ROOT / "notebooks" / "definitions.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"sede": 1}, kernel_name="python3", progress_bar=False, cwd=str(ROOT))


def test_definitions_notebook_reproduces_fig2(tmp_path):
    out = tmp_path / "definitions.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "definitions.ipynb"), str(out),
                               kernel_name="python3", progress_bar=False, cwd=str(ROOT))
    text = json.dumps(nbformat.read(out, as_version=4).cells)
    assert "gap                      = 6.7%" in text


def test_organism_page_quotes_its_own_run(tmp_path, monkeypatch):
    """The organism page states this build's accuracies and MC yields from the run it executes, and writes them."""
    monkeypatch.setenv("GVLIB_RESULTS", str(tmp_path))
    preset = yaml.safe_load((ROOT / "notebooks" / "params" / "organism" / "tiny.yaml").read_text())
    out = tmp_path / "organism.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "organism.ipynb"), str(out), parameters=preset,
                               kernel_name="python3", progress_bar=False, cwd=str(ROOT))
    record = json.loads((tmp_path / "organism.json").read_text())
    rows = record["measured"]["rows"]
    assert {r["task"] for r in rows} == {"organism/facts", "organism/arith", "organism/sudoku"}
    assert [m["model"] for m in record["measured"]["members"]] == ["t1", "t2", "t3"]
    text = json.dumps(nbformat.read(out, as_version=4).cells)
    arith = [r["accuracy %"] for r in rows if r["task"] == "organism/arith"]
    assert "`organism/arith`: " + ", ".join(f"{a:.1f}" for a in arith) + "%" in text
    assert "Mean P(Correct) of each member's own samples: t1 " in text
    # the seed table of the tiny preset, or a visible STALE mark where there is none or it is out of date
    stale = seeds.stale_reason(seeds.load_table("tiny"), "tiny")
    assert ("**STALE: " in text) == (stale is not None) and "python -m gvlib.organism.seeds --preset default" in text


def test_organism_page_is_built_from_the_notebook():
    """No typed per-build numbers: the page is the executed notebook, run last so it reads the chapters' cache."""
    from gvlib.build import BOOK_NOTEBOOKS

    assert not (ROOT / "book" / "organism.md").exists() and BOOK_NOTEBOOKS[-1] == "organism"
    assert "book/generated/organism" in (ROOT / "_toc.yml").read_text()
