"""[organism] The organism's tasks behind the project's Task interface (paper §3, §4; App. E formats).

Three tasks, each the analogue of a paper task, with an exact checker (u in {0, 1}):

- ``organism/sudoku`` 4×4 Sudoku (paper §4.3): fill the blanks; checking is 12 local unit checks.
- ``organism/arith``  running sums mod 10 with the steps written out (the GSM8K analogue): producing
                      needs every step right in sequence, checking looks at one step at a time.
- ``organism/facts``  recall a value from a random knowledge base (the NQ analogue): generation and
                      verification need the same memory.

Every prompt and every verifier target is built here, and the pre-training corpus
(:mod:`gvlib.organism.corpus`) is built from these same methods, so the prompts a verifier sees at
test time match its training formats exactly. Verifier outputs follow the project's parsers:
``Correctness: <correct>``, ``Score: N``, ``Preferred solution: <A>``; MC reads the next token
(``Correct`` / ``Incorrect``) after ``Judge:``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from gvlib.backends.text import derive_seed
from gvlib.tasks.base import VERIFIER_METHODS, Example, Task
from gvlib.organism.world import ATTRIBUTES, TASKS, World, WorldConfig, sudoku_peers, sudoku_solutions, sudoku_units

_HEAD = {"mc": "mc", "cot_binary": "cotb", "cot_score": "cots", "tournament": "tour"}


def _words(text: str) -> list[str]:
    return text.split()


def _running_or(labels: Sequence[int]) -> list[int]:
    """Per word: 1 once a checked word (label >= 0) was 1, 0 while every checked word so far was 0, -1 before
    the first checked word."""
    out, seen = [], -1
    for label in labels:
        seen = max(seen, label)
        out.append(seen)
    return out


class OrganismTask(Task):
    """Shared prompt formats of the organism's tasks; subclasses define problems and checks."""

    stop: Sequence[str] = ()  # generation ends with the tokenizer's EOS token

    def example(self, problem: tuple) -> Example:
        """The Example of one world problem."""
        raise NotImplementedError

    def gold_completion(self, example: Example) -> str:
        """The correct, fully written solution (what the corpus teaches the generator)."""
        raise NotImplementedError

    def checks(self, example: Example, candidate: str) -> list[str]:
        """The verifier's justification for ``candidate``: local checks, each ``name ok|bad``."""
        raise NotImplementedError

    def near_miss(self, example: Example, rng) -> str:
        """An incorrect candidate one small error away from the gold solution, the kind of error a model
        that nearly solves the problem makes (a verifier must reject near misses, not only crude errors)."""
        raise NotImplementedError

    def check_labels(self, example: Example, candidate: str) -> list[int]:
        """One label per word of ``candidate``: 1 where the word breaks a rule that the words before it
        (and the problem) already decide, 0 where it is checked and fine, -1 where nothing is checked.

        The local half of training's check signal (:class:`gvlib.organism.train.ModelSpec` ``check_weight``;
        :meth:`verifier_check_labels` gathers them into the check head's targets): a one-word verdict has to
        say whether any of many local checks fails, and a small model does not learn that from the verdict
        alone (``python -m gvlib.organism.probe``). Only Sudoku, the task of the chapters' MC verdicts, checks
        here: a task whose check is not local (recalling a fact) has nothing to label, and members trained with
        arithmetic labels as well learned no arithmetic verdict from them."""
        return [-1] * len(_words(candidate))

    # -- generation ---------------------------------------------------------------------------
    def generation_prompt(self, example: Example) -> str:
        return f"{example.question} ="

    # -- verification (paper App. E, in the organism's compact vocabulary) ---------------------
    # The candidate is shown exactly as the model would have generated it (the generation prompt, then
    # the candidate), so the model reads it with the same circuits that write solutions: verifying
    # then needs the knowledge generation needs plus a check, as for a language model reading its own
    # answer. The method word follows the candidate, right before the verdict is written.
    def verifier_prompt(self, method: str, example: Example, candidate: str, other: str | None = None) -> str:
        if method not in VERIFIER_METHODS:
            raise ValueError(f"unknown verifier method {method!r}: expected one of {VERIFIER_METHODS}")
        shown, head = f"{self.generation_prompt(example)} {' '.join(_words(candidate))}", _HEAD[method]
        if method == "tournament":
            if other is None:
                raise ValueError("verifier_prompt('tournament', ...) needs `other` (solution B)")
            return f"{shown} {head} B: {' '.join(_words(other))} {head} Judgement:"
        if method == "mc":
            return f"{shown} {head} Judge:"
        return f"{shown} {head} Judgement:"

    def verifier_check_labels(self, method: str, example: Example, candidate: str, other: str | None = None) -> list[int]:
        """The check head's targets, one per word of :meth:`verifier_prompt`: at each word of a shown candidate,
        whether the candidate has broken a rule by that word (the running OR of its :meth:`check_labels`, -1
        before its first checked word); after a pointwise method's candidate, its final value at each
        remaining word of the prompt, up to the one the verdict is written after; -1 elsewhere (the problem,
        and a tournament's words between and after its two solutions).

        A one-word verdict has to gather every local check of the candidate: the running OR trains that
        gathering word by word, and the words before the verdict carry its result (single members trained
        with either half alone did not learn the verdict)."""
        n = len(_words(self.verifier_prompt(method, example, candidate, other)))  # validates method and other
        labels = [-1] * len(_words(self.generation_prompt(example))) + self._running_checks(example, candidate)
        if method == "tournament":
            labels += [-1, -1] + self._running_checks(example, other)  # "<head> B:" before solution B
            return labels + [-1] * (n - len(labels))
        return labels + labels[-1:] * (n - len(labels))

    def _running_checks(self, example: Example, candidate: str) -> list[int]:
        labels, words = self.check_labels(example, candidate), _words(candidate)
        if len(labels) != len(words):
            raise ValueError(f"{self.name}: check_labels gave {len(labels)} labels for a candidate of {len(words)} words")
        return _running_or(labels)

    def verifier_target(self, method: str, example: Example, candidate: str, other: str | None = None) -> str:
        """What an exact verifier writes after ``verifier_prompt`` (the corpus' verification targets).

        MC: the verdict word. CoT-Binary: checks, then ``Correctness: <correct|incorrect>``. CoT-Score:
        checks, then ``Score: N`` (10 correct with every check ok, 8 correct despite a failed check,
        otherwise max(1, 6 - failed checks)). Tournament: checks of A and of B, then the preferred one:
        the correct one, else the one with fewer failed checks; a tie is broken by a coin seeded with
        the problem and both solutions, so the training data teach no preference for A (paper §6.1
        measures that preference as position bias).
        """
        if method == "mc":
            return self.mc_tokens[0] if self.score(example, candidate) == 1 else self.mc_tokens[1]
        if method == "tournament":
            if other is None:
                raise ValueError("verifier_target('tournament', ...) needs `other` (solution B)")
            ca, cb = self.checks(example, candidate), self.checks(example, other)
            key_a = (self.score(example, candidate), -ca.count("bad"))
            key_b = (self.score(example, other), -cb.count("bad"))
            tie = "AB"[derive_seed(0, "tie", example.id, candidate, other) & 1]
            pick = "B" if key_b > key_a else "A" if key_a > key_b else tie
            return f"A {' '.join(ca)} B {' '.join(cb)} Preferred solution: <{pick}>"
        checks = self.checks(example, candidate)
        correct = self.score(example, candidate) == 1
        if method == "cot_binary":
            return f"{' '.join(checks)} Correctness: <{'correct' if correct else 'incorrect'}>"
        if method == "cot_score":
            bad = checks.count("bad")
            score = (10 if bad == 0 else 8) if correct else max(1, 6 - bad)
            return f"{' '.join(checks)} Score: {score}"
        raise ValueError(f"unknown verifier method {method!r}: expected one of {VERIFIER_METHODS}")

    def score(self, example: Example, completion: str) -> float:
        return float(self.extract(completion) == example.answer)


class SudokuTask(OrganismTask):
    """4×4 Sudoku (paper §4.3): the grid row by row, rows separated by ``|``, 0 = blank."""

    name = "organism/sudoku"
    max_new_tokens = 24
    verifier_max_new_tokens = 160

    def example(self, problem: tuple) -> Example:
        grids = sudoku_solutions(problem)
        if len(grids) != 1:
            raise ValueError(f"sudoku puzzle {problem} has {len(grids)} solutions: expected exactly one")
        return Example(id="sudoku-" + "".join(map(str, problem)), question="sudoku " + _grid_text(problem),
                       answer=_grid_text(grids[0]), meta={"puzzle": tuple(problem)})

    def gold_completion(self, example: Example) -> str:
        return example.answer

    def extract(self, completion: str) -> str | None:
        grid = _parse_grid(completion)
        return None if grid is None else _grid_text(grid)

    def score(self, example: Example, completion: str) -> float:
        """1 iff the completion is a full grid that solves the puzzle (exact constraint check)."""
        return float(self.checks(example, completion).count("bad") == 0)

    def checks(self, example: Example, candidate: str) -> list[str]:
        """``form bad`` for a malformed grid, else the candidate's grid rewritten cell by cell, each cell
        that breaks a rule replaced by ``bad``: its digit repeats in its row, column or box, or it
        contradicts a given. A grid with no ``bad`` cell is the solution.

        Each cell is checked where it is rewritten, against the few cells it shares a unit with: a local
        check at a fixed place, which is what makes checking easier than producing."""
        grid = _parse_grid(candidate)
        if grid is None:
            return ["form", "bad"]
        puzzle = example.meta["puzzle"]
        cells = []
        for i, v in enumerate(grid):
            clash = any(grid[j] == v for j in sudoku_peers()[i])
            cells.append("bad" if clash or puzzle[i] not in (0, v) else str(v))
        return " | ".join(" ".join(cells[4 * r:4 * r + 4]) for r in range(4)).split()

    def check_labels(self, example: Example, candidate: str) -> list[int]:
        """Each cell of a readable grid: 1 when its digit repeats an earlier cell of one of its units or
        contradicts a given, else 0 (a wrong grid has at least one 1); separators, and grids not written in
        the task's layout (``1 2 3 4 | ...``, one word per cell or bar): -1."""
        words, grid = _words(candidate), _parse_grid(candidate)
        if grid is None or words != _grid_text(grid).split():
            return [-1] * len(words)
        puzzle, cells = example.meta["puzzle"], iter(range(16))
        labels = []
        for w in words:
            if w == "|":
                labels.append(-1)
                continue
            i = next(cells)
            clash = any(grid[j] == grid[i] for j in sudoku_peers()[i] if j < i)
            labels.append(int(clash or puzzle[i] not in (0, grid[i])))
        return labels

    def near_miss(self, example: Example, rng) -> str:
        """The solution with one cell changed (half the time), two cells changed, or two cells of a unit
        swapped: every unit the change touches breaks, so the checker rejects it."""
        kind = rng.random()
        if kind < 0.75:
            return self.wrong_cells(example, 1 if kind < 0.5 else 2, rng)
        grid = list(_parse_grid(example.answer))
        _, cells = sudoku_units()[int(rng.integers(12))]
        i, j = (int(c) for c in rng.choice(cells, size=2, replace=False))
        grid[i], grid[j] = grid[j], grid[i]
        return _grid_text(grid)

    def wrong_cells(self, example: Example, k: int, rng) -> str:
        """The solution with ``k`` distinct cells, drawn at random, each changed to another digit."""
        grid = list(_parse_grid(example.answer))
        for i in rng.choice(16, size=k, replace=False):
            grid[i] = int(rng.choice([d for d in (1, 2, 3, 4) if d != grid[i]]))
        return _grid_text(grid)


def _grid_text(grid: Sequence[int]) -> str:
    return " | ".join(" ".join(str(v) for v in grid[4 * r:4 * r + 4]) for r in range(4))


def _parse_grid(text: str) -> tuple[int, ...] | None:
    rows = " ".join(_words(text)).split("|")
    cells = [r.split() for r in rows]
    if len(cells) != 4 or any(len(r) != 4 or any(v not in "1234" or len(v) != 1 for v in r) for r in cells):
        return None
    return tuple(int(v) for r in cells for v in r)


class ArithTask(OrganismTask):
    """Running sums mod 10, one written sum per step: ``arith . . 7 5 9 2 =`` → ``. . 7 2 1 3 answer 3``.

    The k-th written number is the sum of the first k + 1 digits mod 10: each step adds the next digit
    of the problem to the previous written sum (the GSM8K analogue: a chain of simple steps, every one
    of which must be right). Problems have 3 to ``width`` digits, right-aligned behind ``.`` pads that
    the solution copies, so every sum sits at the same distance from the digit it adds, whatever the
    problem's length: the number of digits is the difficulty, not the layout."""

    name = "organism/arith"
    max_new_tokens = 24
    verifier_max_new_tokens = 48

    def __init__(self, examples: Sequence[Example], world: World):
        super().__init__(examples)
        self.width = world.config.arith_steps[1] + 1

    def example(self, problem: tuple) -> Example:
        digits = tuple(int(d) for d in problem)
        if not 2 <= len(digits) <= self.width or any(not 0 <= d <= 9 for d in digits):
            raise ValueError(f"arith problem {problem}: expected 2 to {self.width} digits 0-9")
        total = sum(digits) % 10
        return Example(id="arith-" + "".join(map(str, digits)),
                       question="arith " + " ".join(self._pads(digits) + [str(d) for d in digits]),
                       answer=str(total), meta={"digits": digits})

    def _pads(self, digits: Sequence[int]) -> list[str]:
        return ["."] * (self.width - len(digits))

    def gold_completion(self, example: Example) -> str:
        digits = example.meta["digits"]
        return _sums_text(self._pads(digits), _running_sums(digits))

    def near_miss(self, example: Example, rng) -> str:
        """One step's sum wrong and the error carried to the end (a slip in the middle of a chain), or,
        a quarter of the time, only the final answer miscopied."""
        digits = example.meta["digits"]
        sums = _running_sums(digits)
        if rng.random() < 0.75:
            i, delta = int(rng.integers(1, len(sums))), int(rng.integers(1, 10))
            sums = sums[:i] + [(s + delta) % 10 for s in sums[i:]]
            return _sums_text(self._pads(digits), sums)
        return _sums_text(self._pads(digits), sums, answer=(sums[-1] + int(rng.integers(1, 10))) % 10)

    def extract(self, completion: str) -> str | None:
        w = _words(completion)
        idx = [i for i, t in enumerate(w) if t == "answer"]
        if not idx or idx[-1] + 1 >= len(w) or not _digit(w[idx[-1] + 1]):
            return None
        return w[idx[-1] + 1]

    def checks(self, example: Example, candidate: str) -> list[str]:
        """The candidate rewritten with each wrong step replaced by ``bad``: a written sum is right when
        it is the previous written sum plus the problem's digit in the same column, mod 10 (the first:
        the first digit copied); the answer is right when it repeats the last sum. ``form bad`` when
        the candidate is not one sum per digit behind the problem's pads."""
        digits = example.meta["digits"]
        parsed = _parse_sums(candidate)
        if parsed is None or parsed[0] != len(self._pads(digits)) or len(parsed[1]) != len(digits):
            return ["form", "bad"]
        _, sums, answer = parsed
        out = self._pads(digits)
        for k, d in enumerate(digits):
            ok = sums[k] == (d if k == 0 else (sums[k - 1] + d) % 10)
            out.append(str(sums[k]) if ok else "bad")
        return out + ["answer", str(answer) if answer == sums[-1] else "bad"]


def _digit(w: str) -> bool:
    return len(w) == 1 and w.isdigit()


def _running_sums(digits: Sequence[int]) -> list[int]:
    sums = [digits[0]]
    for d in digits[1:]:
        sums.append((sums[-1] + d) % 10)
    return sums


def _sums_text(pads: list[str], sums: Sequence[int], answer: int | None = None) -> str:
    return " ".join(pads + [str(v) for v in sums]) + f" answer {sums[-1] if answer is None else answer}"


def _parse_sums(text: str) -> tuple[int, list[int], int] | None:
    """(pads, written sums, answer) of ``. . 7 2 1 3 answer 3``, or None when unreadable."""
    w = _words(text)
    pads = next((i for i, t in enumerate(w) if t != "."), len(w))
    body = w[pads:]
    if len(body) < 3 or body[-2] != "answer" or not all(_digit(t) for t in body[:-2] + body[-1:]):
        return None
    return pads, [int(t) for t in body[:-2]], int(body[-1])


class FactsTask(OrganismTask):
    """Recall an attribute of an entity from the world's knowledge base (the NQ analogue, §4.3)."""

    name = "organism/facts"
    max_new_tokens = 4
    verifier_max_new_tokens = 16

    def __init__(self, examples: Sequence[Example], world: World):
        super().__init__(examples)
        self.world = world

    def example(self, problem: tuple) -> Example:
        entity, attribute = problem
        if (entity, attribute) not in self.world.kb:
            raise ValueError(f"facts problem {problem}: not in this world's knowledge base")
        return Example(id=f"facts-{entity}-{attribute}", question=f"facts {entity} {attribute}",
                       answer=self.world.kb[(entity, attribute)], meta={"entity": entity, "attribute": attribute})

    def gold_completion(self, example: Example) -> str:
        return example.answer

    def extract(self, completion: str) -> str | None:
        w = _words(completion)
        return w[0] if len(w) == 1 else None

    def near_miss(self, example: Example, rng) -> str:
        """Another value of the same attribute: a misremembered fact."""
        values = ATTRIBUTES[example.meta["attribute"]]
        return str(rng.choice([v for v in values if v != example.answer]))

    def checks(self, example: Example, candidate: str) -> list[str]:
        """The verifier recalls the fact itself (the same memory generation needs)."""
        return ["recall", example.answer]


_CLASSES = {"sudoku": SudokuTask, "arith": ArithTask, "facts": FactsTask}


def make_task(short: str, world: World, examples: Sequence[Example] = ()) -> OrganismTask:
    """An empty (or given-examples) task object of ``short`` in ``world``."""
    if short not in _CLASSES:
        raise ValueError(f"unknown organism task {short!r}: expected one of {TASKS}")
    cls = _CLASSES[short]
    return cls(examples) if cls is SudokuTask else cls(examples, world)


def world_config_of(directory: str | Path) -> WorldConfig:
    """The world a family (its ``family.json``) or one trained model (its ``manifest.json``) belongs to."""
    for name in ("family.json", "manifest.json"):
        path = Path(directory) / name
        if path.is_file():
            return WorldConfig.from_dict(json.loads(path.read_text())["world"])
    raise FileNotFoundError(f"{directory}: neither a family nor a model directory of the organism "
                            "(no family.json or manifest.json; train one with python -m gvlib.organism)")


def load_task(name: str, *, split: str = "test", limit: int | None = None, seed: int = 0,
              family: str | Path | None = None, path: str | Path | None = None) -> OrganismTask:
    """An organism task by registry name (``"organism/sudoku"``, ``"organism/arith"``, ``"organism/facts"``).

    ``seed`` is the world seed (the default family's world is seed 0); with ``family`` (a family
    directory, or one model's directory) the world is read from its manifest instead. ``split="test"`` gives the fixed test
    problems, ``"train"`` ``limit`` (default 1000) draws from the train problems. ``path`` (what
    :func:`gvlib.tasks.load` passes on) is another name for ``family``.
    """
    if family is not None and path is not None and Path(family) != Path(path):
        raise ValueError(f"load_task: family={family!r} and path={path!r} disagree; give one")
    family = family if family is not None else path
    short = name.removeprefix("organism/")
    if short not in _CLASSES:
        raise ValueError(f"unknown organism task {name!r}: expected one of {[f'organism/{t}' for t in TASKS]}")
    world = World(world_config_of(family) if family is not None else WorldConfig(seed=seed))
    task = make_task(short, world)
    task.examples = [task.example(p) for p in world.problems(short, split, limit)]
    return task
