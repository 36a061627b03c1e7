"""The book's words against the library and the paper: what a reader is told must be what the code does
and what the paper says, and every reference must be one a clone can follow."""
import json
import re
from pathlib import Path

import numpy as np

from gvlib import paper_numbers
from gvlib.metrics import filter_weights, gap

ROOT = Path(__file__).resolve().parents[1]
# built from parts, so that this file does not match itself
OUTSIDE = re.compile("|".join(["DESIGN" + r"\.md", "DESIGN" + "'s", "paper" + r"\.md", "reference" + "/", r"\[" + "DIG" + r"\]"]))


def text_files():
    for folder, pattern in (("gvlib", "*.py"), ("tests", "*.py"), ("book", "*.md"), ("notebooks", "*.ipynb")):
        yield from (p for p in (ROOT / folder).rglob(pattern) if "generated" not in p.parts)


def prose(notebook: str) -> str:
    """The markdown of a committed notebook (what the reader is told, before any output)."""
    cells = json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def test_no_reference_to_files_outside_the_project():
    found = [f"{p.relative_to(ROOT)}:{i}" for p in text_files()
             for i, line in enumerate(p.read_text().splitlines(), 1) if OUTSIDE.search(line)]
    assert not found, f"references to files a clone does not have: {found}"


def test_the_gap_is_the_papers_lower_bound_not_a_ceiling():
    """§2, App. A: J(f_{t+1}) - J(f_t) >= gap(f_t) - eps; the paper's own first rounds beat J(f_0) + gap_0."""
    runs = {m: r for m, r in paper_numbers.ITERATIVE_GSM8K.items() if " " not in m}  # CoT-Binary, rejection sampling
    beaten = [m.split("-")[-1] for m, r in runs.items() if r["accuracy"][1] > r["accuracy"][0] + r["gap"][0]]
    assert len(runs) == 4 and beaten == ["7B", "14B", "32B"]  # what the definitions page says
    definitions = prose("definitions")
    assert r"J(f_{t+1}) - J(f_t) \geq \operatorname{gap}(f_t) - \varepsilon" in definitions
    assert "Qwen-1.5 7B, 14B and 32B" in definitions
    for page in ("definitions", "cross_verification", "iterative", "scaling", "unimprovable"):
        text = prose(page)
        assert "the most one round" not in text and "ceiling of self-improvement" not in text, page


def test_quantile_filter_with_tied_scores_keeps_nothing_and_the_book_says_so():
    tied = np.full((1, 6), 0.5)
    assert filter_weights(tied, quantile=0.8).sum() == 0  # strict: nothing lies above the tied quantile
    assert filter_weights(tied, quantile=0.8, strict=False).sum() == 6
    assert gap([[1, 0, 1, 0, 0, 0]], tied, quantile=0.8).n_empty == 1
    cross = prose("cross_verification")
    assert "always keeps some samples" not in cross
    assert "the prompt keeps nothing and counts as empty" in cross
    assert "a prompt whose scores all tie keeps nothing" in prose("definitions")


def test_tau_one_with_geq_drops_unparseable_cot_scores():
    """Unparseable CoT-Score outputs score 0 (gvlib.verifiers), so even s >= 1 drops them: the gap at tau = 1
    can be non-zero under either rule, as the conventions table says."""
    from gvlib.verifiers import UNPARSEABLE_SCORE

    s = [[UNPARSEABLE_SCORE["cot_score"], 7, 1, 10]]
    u = [[0, 1, 0, 1]]
    assert gap(u, s, tau=1, strict=False).absolute > 0 and gap(u, s, tau=1).absolute > 0
    table = prose("definitions")
    assert "only non-zero with $>$" not in table and "unparseable outputs score below 1" in table


def test_no_unsupported_claims_and_the_intro_lists_every_claim():
    assert "never trained on Sudoku" not in prose("unimprovable")
    assert "untrained" not in prose("organism")
    intro = (ROOT / "book" / "intro.md").read_text()
    for chapter, claim in (("scaling", 1), ("cross_verification", 2), ("unimprovable", 3), ("iterative", 4)):
        assert f"{{doc}}`generated/{chapter}`" in intro and f"(claim {claim})" in intro
