"""[organism] The organism's world: everything a seed determines before any model is trained (the book's organism page).

A world fixes the 288 4×4 Sudoku grids' split into train and test grids, the random knowledge base of
the factual task, and the test problems of every task. Train problems are drawn from the rest of the
problem space, so train and test problems are disjoint by construction (and tested):

- sudoku: test puzzles come only from test grids (rules, not grids, must be learned; paper §4.3);
- arith:  running sums mod 10 over random digits; a drawn train problem equal to a test one is redrawn;
- facts:  (entity, attribute) questions; the test pairs are never asked in the corpus, but their facts
          are stated there, as NQ facts are in a real pre-training corpus (paper §4.3).
"""
from __future__ import annotations

import itertools
import zlib
from dataclasses import asdict, dataclass
from functools import cached_property, lru_cache

import numpy as np

#: Attribute names and their value words of the knowledge base (each a single vocabulary word).
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "city": ("paris", "rome", "oslo", "lima", "cairo", "tokyo", "delhi", "quito", "accra", "hanoi", "dakar", "sofia"),
    "color": ("red", "blue", "green", "black", "white", "pink", "gray", "brown", "gold", "teal", "navy", "olive"),
    "pet": ("cat", "dog", "owl", "fox", "eel", "yak", "emu", "bat", "cow", "hen", "ant", "elk"),
    "job": ("baker", "nurse", "judge", "pilot", "clerk", "miner", "tutor", "chef", "guard", "poet", "vet", "smith"),
}


def entity_word(i: int) -> str:
    """The vocabulary word of entity ``i`` of the knowledge base."""
    return f"p{i:03d}"


@lru_cache(maxsize=1)
def all_sudoku_grids() -> tuple[tuple[int, ...], ...]:
    """All 288 valid 4×4 Sudoku grids, row-major, digits 1–4, in lexicographic order."""
    rows = list(itertools.permutations((1, 2, 3, 4)))
    grids: list[tuple[int, ...]] = []

    def extend(prefix: tuple[int, ...]) -> None:
        if len(prefix) == 16:
            if sudoku_grid_valid(prefix):
                grids.append(prefix)
            return
        for r in rows:
            g = prefix + r
            if all(len({g[i] for i in range(j, len(g), 4)}) == len(g) // 4 for j in range(4)):
                extend(g)

    extend(())
    return tuple(grids)


@lru_cache(maxsize=1)
def sudoku_units() -> tuple[tuple[str, tuple[int, ...]], ...]:
    """The 12 constraint units of a 4×4 grid (rows r1–r4, columns c1–c4, boxes b1–b4) as cell indices."""
    units = [(f"r{i + 1}", tuple(4 * i + j for j in range(4))) for i in range(4)]
    units += [(f"c{j + 1}", tuple(4 * i + j for i in range(4))) for j in range(4)]
    for b in range(4):
        r, c = 2 * (b // 2), 2 * (b % 2)
        units.append((f"b{b + 1}", (4 * r + c, 4 * r + c + 1, 4 * (r + 1) + c, 4 * (r + 1) + c + 1)))
    return tuple(units)


@lru_cache(maxsize=1)
def sudoku_peers() -> tuple[tuple[int, ...], ...]:
    """Per cell, the other cells it shares a row, column or box with, in the order of :func:`sudoku_units`
    (a cell of two of its units listed twice): the cells a checker compares it with."""
    return tuple(tuple(j for _, unit in sudoku_units() if i in unit for j in unit if j != i) for i in range(16))


def sudoku_grid_valid(grid: tuple[int, ...]) -> bool:
    """True iff ``grid`` (16 digits) has the digits 1–4 once in every row, column and box."""
    return len(grid) == 16 and all(sorted(grid[i] for i in cells) == [1, 2, 3, 4] for _, cells in sudoku_units())


@lru_cache(maxsize=1)
def _grid_array() -> np.ndarray:
    return np.array(all_sudoku_grids(), dtype=np.int8)


def sudoku_solutions(puzzle: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Every valid grid that agrees with the givens (non-zero cells) of the 16-cell ``puzzle``."""
    p = np.asarray(puzzle, dtype=np.int8)
    if p.shape != (16,):
        raise ValueError(f"sudoku puzzle {puzzle}: expected 16 cells")
    grids = _grid_array()
    hit = ((grids == p) | (p == 0)).all(axis=1)
    return [all_sudoku_grids()[i] for i in np.flatnonzero(hit)]


@dataclass(frozen=True)
class WorldConfig:
    """What a world is made of; the seed and these sizes determine every problem (stored in manifests)."""

    seed: int = 0
    sudoku_test_grids: int = 48
    sudoku_blanks: tuple[int, int] = (3, 11)
    arith_steps: tuple[int, int] = (2, 6)
    kb_entities: int = 200
    n_test: int = 200

    def __post_init__(self):
        if not 1 <= self.sudoku_test_grids < 288:
            raise ValueError(f"sudoku_test_grids={self.sudoku_test_grids}: must be in 1..287")
        lo, hi = self.sudoku_blanks
        if not 1 <= lo <= hi <= 12:
            raise ValueError(f"sudoku_blanks={self.sudoku_blanks}: need 1 <= lo <= hi <= 12")
        lo, hi = self.arith_steps
        if not 1 <= lo <= hi <= 12:
            raise ValueError(f"arith_steps={self.arith_steps}: need 1 <= lo <= hi <= 12")
        if not 10 <= self.kb_entities <= 1000:
            raise ValueError(f"kb_entities={self.kb_entities}: must be in 10..1000")
        if self.n_test < 1 or self.n_test > self.kb_entities * len(ATTRIBUTES) // 2:
            raise ValueError(f"n_test={self.n_test}: must be in 1..half the knowledge base")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "WorldConfig":
        d = dict(d)
        for k in ("sudoku_blanks", "arith_steps"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


class World:
    """The problems of one world. Problems are plain tuples; :mod:`gvlib.organism.tasks` renders them."""

    def __init__(self, config: WorldConfig = WorldConfig()):
        self.config = config

    def _rng(self, stream: str) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, zlib.crc32(stream.encode())])

    # -- sudoku ------------------------------------------------------------------------------
    @property
    def grids(self) -> tuple[tuple[int, ...], ...]:
        return all_sudoku_grids()

    @cached_property
    def grid_split(self) -> tuple[list[int], list[int]]:
        """Indices of the train grids and of the test grids (disjoint, covering all 288)."""
        order = self._rng("grids").permutation(len(self.grids)).tolist()
        k = self.config.sudoku_test_grids
        return sorted(order[k:]), sorted(order[:k])

    def sudoku_solutions(self, puzzle: tuple[int, ...]) -> list[tuple[int, ...]]:
        """Every valid grid that agrees with the givens (non-zero cells) of ``puzzle``."""
        return sudoku_solutions(puzzle)

    def _sudoku_puzzle(self, rng: np.random.Generator, grid_ids: list[int]) -> tuple[int, ...]:
        """A puzzle with a unique solution whose number of blanks, the difficulty, is uniform over
        ``sudoku_blanks``: a puzzle that is not unique is redrawn with the same number of blanks (redrawing
        that too would make many-blank puzzles, rarely unique, rare), so the problems span the knob evenly
        and every member of a family meets its frontier."""
        lo, hi = self.config.sudoku_blanks
        k = int(rng.integers(lo, hi + 1))
        while True:
            grid = self.grids[grid_ids[rng.integers(len(grid_ids))]]
            blanks = set(rng.choice(16, size=k, replace=False).tolist())
            puzzle = tuple(0 if i in blanks else v for i, v in enumerate(grid))
            if len(self.sudoku_solutions(puzzle)) == 1:  # the paper's puzzles have unique solutions
                return puzzle

    # -- arith -------------------------------------------------------------------------------
    def _arith_problem(self, rng: np.random.Generator) -> tuple[int, ...]:
        lo, hi = self.config.arith_steps
        return tuple(rng.integers(0, 10, size=int(rng.integers(lo, hi + 1)) + 1).tolist())

    # -- facts -------------------------------------------------------------------------------
    @cached_property
    def kb(self) -> dict[tuple[str, str], str]:
        """The knowledge base: (entity word, attribute) -> value word, uniform random values."""
        rng = self._rng("kb")
        return {
            (entity_word(e), a): vals[int(rng.integers(len(vals)))]
            for e in range(self.config.kb_entities)
            for a, vals in ATTRIBUTES.items()
        }

    @cached_property
    def fact_split(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(train pairs, test pairs) of (entity, attribute) questions; disjoint, covering the KB."""
        keys = sorted(self.kb)
        order = self._rng("facts").permutation(len(keys)).tolist()
        n = self.config.n_test
        return sorted(keys[i] for i in order[n:]), sorted(keys[i] for i in order[:n])

    # -- problems ----------------------------------------------------------------------------
    @cached_property
    def test_problems(self) -> dict[str, list[tuple]]:
        """The fixed test problems of each task (``n_test`` each, distinct)."""
        out: dict[str, list[tuple]] = {"facts": list(self.fact_split[1])}
        for task, draw in (("sudoku", lambda r: self._sudoku_puzzle(r, self.grid_split[1])),
                           ("arith", self._arith_problem)):
            rng, seen = self._rng(f"test-{task}"), {}
            while len(seen) < self.config.n_test:
                seen.setdefault(draw(rng), None)
            out[task] = list(seen)
        return out

    @cached_property
    def _arith_test_set(self) -> frozenset:
        return frozenset(self.test_problems["arith"])

    def train_problem(self, task: str, rng: np.random.Generator) -> tuple:
        """One random train problem of ``task``, never one of the test problems."""
        if task == "sudoku":
            return self._sudoku_puzzle(rng, self.grid_split[0])
        if task == "arith":
            while True:
                p = self._arith_problem(rng)
                if p not in self._arith_test_set:
                    return p
        if task == "facts":
            pairs = self.fact_split[0]
            return pairs[int(rng.integers(len(pairs)))]
        raise ValueError(f"unknown organism task {task!r}: expected one of {TASKS}")

    def problems(self, task: str, split: str, limit: int | None = None, seed: int = 0) -> list[tuple]:
        """``split="test"``: the fixed test problems; ``"train"``: ``limit`` (default 1000) train draws."""
        if task not in TASKS:
            raise ValueError(f"unknown organism task {task!r}: expected one of {TASKS}")
        if split == "test":
            probs = self.test_problems[task]
            return probs if limit is None else probs[:limit]
        if split == "train":
            rng = np.random.default_rng([self.config.seed, seed, 7])
            return [self.train_problem(task, rng) for _ in range(1000 if limit is None else limit)]
        raise ValueError(f"split={split!r}: expected 'train' or 'test'")


#: The organism's tasks, by short name.
TASKS = ("sudoku", "arith", "facts")
