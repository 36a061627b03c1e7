"""[tasks] 4×4 Sudoku, the paper's "hard to generate, easy to verify" task (§4.3, App. E).

The paper's 288 puzzles match the 288 valid 4×4 grids; how it made them is not described. Here
every valid grid is enumerated (lexicographic order) and turned into one puzzle with a unique
solution: cells are removed in a seeded random order, each removal kept only if the solution stays
unique, until ``givens`` remain (the paper's printed examples have 7) or no cell can go. A
puzzle is shown as 4 rows of 2+2 digits with 0 for an empty cell (App. E); the generator answers
with a line "Solution:" and the 4 completed rows, after an optional short check, in up to 512 new
tokens (§3). The utility is 1 iff the grid read back keeps every given and each row, column and
2×2 box holds 1–4 once.

Verification is App. E's Sudoku verifier (:data:`gvlib.prompts.SUDOKU_TEMPLATES`: check the givens,
the rows, the columns and the boxes, then Correct or Incorrect), after 4 demonstrations (§3 fn. 4).
Since the 288 puzzles use every valid grid, any solved grid shown in a prompt is some test puzzle's
solution; so a prompt never shows its own puzzle or solution: a demonstration (or the generation
prompt's worked example) whose puzzle or solution is the one asked about is replaced by a spare.
"""
from __future__ import annotations

import random
import re
from functools import lru_cache

from ..backends.text import derive_seed
from .. import prompts
from ..prompts import Demo
from .base import Example
from .common import DatasetTask

RULES = ("Solve the 4x4 Sudoku puzzle. The puzzle is shown as 4 rows of 2+2 digits, 0 marks an empty "
         "cell. Fill every empty cell with a digit from 1 to 4 so that each row, each column and each "
         "2x2 box contains 1, 2, 3 and 4 exactly once, keeping the given digits.")
ROW_RE = re.compile(r"([0-4])([0-4]) ([0-4])([0-4])")
BOXES = [[(r, c) for r in rows for c in cols] for rows in ((0, 1), (2, 3)) for cols in ((0, 1), (2, 3))]
UNITS = [[(r, c) for c in range(4)] for r in range(4)] + [[(r, c) for r in range(4)] for c in range(4)] + BOXES


def render(cells: str) -> str:
    """16 digits as 4 rows of 2+2 digits ("12 34")."""
    return "\n".join(f"{cells[4 * r:4 * r + 2]} {cells[4 * r + 2:4 * r + 4]}" for r in range(4))


def is_valid(cells: str) -> bool:
    """True iff the 16 digits form a solved grid (every unit holds 1..4 once)."""
    return len(cells) == 16 and all(sorted(cells[4 * r + c] for r, c in u) == list("1234") for u in UNITS)


def solutions(puzzle: str, limit: int = 2) -> list[str]:
    """Up to ``limit`` solutions of ``puzzle`` (16 digits, 0 = empty), by backtracking."""
    found: list[str] = []

    def fill(cells: list[str]) -> None:
        if len(found) >= limit:
            return
        if "0" not in cells:
            found.append("".join(cells))
            return
        i = cells.index("0")
        r, c = divmod(i, 4)
        used = {cells[4 * rr + cc] for u in UNITS if (r, c) in u for rr, cc in u}
        for d in "1234":
            if d not in used:
                cells[i] = d
                fill(cells)
                cells[i] = "0"

    fill(list(puzzle))
    return found


@lru_cache(maxsize=1)
def all_grids() -> tuple[str, ...]:
    """The 288 valid 4×4 Sudoku grids, in lexicographic order."""
    return tuple(solutions("0" * 16, limit=10_000))


def make_puzzle(grid: str, seed: int, givens: int = 7) -> str:
    """A puzzle whose only solution is ``grid`` (see module doc)."""
    order = list(range(16))
    random.Random(seed).shuffle(order)
    cells = list(grid)
    for i in order:
        if 16 - cells.count("0") <= givens:
            break
        kept, cells[i] = cells[i], "0"
        if len(solutions("".join(cells))) != 1:
            cells[i] = kept
    return "".join(cells)


#: The worked example of the generation prompt (ours; the paper's is App. E): 7 givens, unique
#: solution; SPARE_SHOT replaces it for the puzzle whose solution it shows.
SHOT_PUZZLE = "1004" "3400" "0003" "2300"
SHOT_SOLUTION = "1234" "3412" "4123" "2341"
SPARE_SHOT = ("0200" "3100" "1320" "0030", "4213" "3142" "1324" "2431")

#: Verification demonstrations (ours; the paper's verification example is garbled in App. E):
#: (puzzle, its solution, a wrong grid), 7 givens each, none of them a test puzzle (seed 0). The
#: first 4 are shown; the fifth is the spare for a puzzle whose solution is among them.
DEMO_GRIDS = (
    ("0040" "0003" "0231" "3020", "1342" "2413" "4231" "3124", "3142" "2413" "4231" "3124"),
    ("2300" "0400" "4103" "0040", "2314" "1432" "4123" "3241", "2314" "1432" "4213" "3241"),
    ("0004" "4210" "1040" "2000", "3124" "4213" "1342" "2431", "3124" "4213" "1342" "2413"),
    ("3410" "2003" "0000" "4020", "3412" "2143" "1234" "4321", "3412" "2143" "1324" "4321"),
    SPARE_SHOT + ("4213" "3124" "1324" "2431",),
)
_BOX_NAMES = ("top-left", "top-right", "bottom-left", "bottom-right")


def _solved(cells: str) -> str:
    return f"Check: each row, column and box holds 1, 2, 3, 4 once.\nSolution:\n{render(cells)}"


def explain(puzzle: str, cells: str) -> str:
    """A verifier's justification of ``cells`` for ``puzzle`` (App. E's checks, at most three faults)."""
    faults = [f"the given {p} in row {i // 4 + 1}, column {i % 4 + 1} is changed to {c}"
              for i, (p, c) in enumerate(zip(puzzle, cells)) if p != "0" and p != c]
    kinds = [f"row {k + 1}" for k in range(4)] + [f"column {k + 1}" for k in range(4)] + \
        [f"the {b} box" for b in _BOX_NAMES]
    for kind, unit in zip(kinds, UNITS):
        digits = [cells[4 * r + c] for r, c in unit]
        faults += [f"{kind} holds {d} twice" for d in "1234" if digits.count(d) > 1]
    if not faults:
        return "Every given digit is kept and each row, column and 2x2 box holds 1, 2, 3 and 4 once."
    return "; ".join(faults[:3]).capitalize() + ", so the grid is wrong."


DEMOS = tuple(Demo(f"{RULES}\n{render(p)}", _solved(good), _solved(bad), explain(p, good), explain(p, bad))
              for p, good, bad in DEMO_GRIDS)


def _shows(example: Example, *grids: str) -> bool:
    """Whether any of ``grids`` (16 digits each) is the example's puzzle or solution."""
    return bool({example.meta["puzzle"], example.answer} & set(grids))


class Sudoku4(DatasetTask):
    """The 288 4×4 puzzles (``limit`` takes the first ones); ``seed`` and ``givens`` shape them."""

    name = "sudoku4"
    stop = ("\n\n", "Puzzle:")
    max_new_tokens = 512
    domain = "4x4 Sudoku"
    answer_format = "Solution:\" followed by the 4 completed rows, as in \"Solution:\n12 34\n34 12\n21 43\n43 21"
    verifier_demos = DEMOS
    templates = prompts.SUDOKU_TEMPLATES

    @classmethod
    def load(cls, *, path=None, split: str = "test", limit: int | None = None, seed: int = 0,
             givens: int = 7, verifier_shots: int = 4) -> "Sudoku4":
        if path is not None:
            raise ValueError("sudoku4 is generated, not read from a file: leave path=None")
        if split != "test":
            raise ValueError(f"sudoku4 has one split, 'test' (all 288 grids), not {split!r}")
        grids = all_grids()[:limit]
        examples = []
        for i, grid in enumerate(grids):
            puzzle = make_puzzle(grid, derive_seed(seed, "sudoku4", i), givens)
            examples.append(Example(id=f"sudoku4-{i}", question=render(puzzle), answer=grid,
                                    meta={"puzzle": puzzle}))
        return cls(examples, split=split, verifier_shots=verifier_shots)

    def generation_prompt(self, example: Example) -> str:
        puzzle, solution = (SHOT_PUZZLE, SHOT_SOLUTION) if not _shows(example, SHOT_PUZZLE, SHOT_SOLUTION) \
            else SPARE_SHOT
        return f"{RULES}\n\nPuzzle:\n{render(puzzle)}\n{_solved(solution)}\n\nPuzzle:\n{example.question}\n"

    def demos_for(self, example: Example) -> list[Demo]:
        """The first ``verifier_shots`` demonstrations that show neither this puzzle nor its solution."""
        return [d for d, grids in zip(self.verifier_demos, DEMO_GRIDS)
                if not _shows(example, *grids)][:self.verifier_shots]

    def verifier_problem(self, example: Example) -> str:
        return f"{RULES}\n{example.question}"

    def extract(self, completion: str) -> str | None:
        tail = completion.rsplit("Solution:", 1)[-1]
        rows = ROW_RE.findall(tail)[:4]
        return "".join("".join(r) for r in rows) if len(rows) == 4 else None

    def score(self, example: Example, completion: str) -> float:
        cells = self.extract(completion)
        if cells is None or not is_valid(cells):
            return 0.0
        return float(all(p in ("0", c) for p, c in zip(example.meta["puzzle"], cells)))

