"""4×4 Sudoku, the paper's "hard to generate, easy to verify" task (§4.3, App. E).

The paper's 288 puzzles match the 288 valid 4×4 grids; how it made them is not described. Here
every valid grid is enumerated (lexicographic order) and turned into one puzzle with a unique
solution: cells are removed in a seeded random order, each removal kept only if the solution stays
unique, until ``givens`` remain (the paper's printed examples have 7) or no cell can go. A
puzzle is shown as 4 rows of 2+2 digits with 0 for an empty cell (App. E); the generator answers
with a line "Solution:" and the 4 completed rows, after an optional short check. The utility is 1
iff the grid read back keeps every given and each row, column and 2×2 box holds 1–4 once.
"""
from __future__ import annotations

import random
import re
from functools import lru_cache

from ..backends.text import derive_seed
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


#: The one worked example (ours; the paper's is App. E): 7 givens, unique solution.
SHOT_PUZZLE = "1004" "3400" "0003" "2300"
SHOT_SOLUTION = "1234" "3412" "4123" "2341"


def _solved(cells: str) -> str:
    return f"Check: each row, column and box holds 1, 2, 3, 4 once.\nSolution:\n{render(cells)}"


#: Verification demonstrations (ours; the paper's verification example is garbled in App. E).
DEMOS = (
    Demo(f"{RULES}\n{render(SHOT_PUZZLE)}", _solved(SHOT_SOLUTION), _solved(SHOT_SOLUTION[:12] + "2314"),
         "Every given digit is kept and each row, column and 2x2 box holds 1, 2, 3, 4 once.",
         "Column 3 holds 1 twice (rows 2 and 4) and column 4 holds 4 twice (rows 1 and 4), so the grid is "
         "wrong."),
    Demo(f"{RULES}\n{render('2140001000304001')}", _solved("2143341212344321"), _solved("2143342112344321"),
         "Every given digit is kept and each row, column and 2x2 box holds 1, 2, 3, 4 once.",
         "Row 2 turns the given 1 in column 3 into a 2, and then column 3 holds 2 twice and column 4 holds "
         "1 twice, so the grid is wrong."),
)


class Sudoku4(DatasetTask):
    """The 288 4×4 puzzles (``limit`` takes the first ones); ``seed`` and ``givens`` shape them."""

    name = "sudoku4"
    stop = ("\n\n", "Puzzle:")
    max_new_tokens = 256
    domain = "4x4 Sudoku"
    answer_format = "Solution:\" followed by the 4 completed rows, as in \"Solution:\n12 34\n34 12\n21 43\n43 21"
    verifier_demos = DEMOS

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
        return f"{RULES}\n\nPuzzle:\n{render(SHOT_PUZZLE)}\n{_solved(SHOT_SOLUTION)}\n\nPuzzle:\n{example.question}\n"

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

