"""[organism] What makes the one-token MC verdict learnable? A probe that trains MC verifiers of Sudoku alone.

The family's members read MC documents in training and still score every Sudoku candidate at the base rate
(the organism page's near-miss table): one supervised word per document has to say whether any of sixteen
cells breaks a rule. The probe takes everything else away. For each *error density* it trains one fresh
model, of the shape of the preset's middle member, on MC documents about Sudoku only: a fresh train
problem's gold solution or, half the time, a wrong candidate of that density, the verdict its only target.
Then it asks the model, through the chapters' MC verifier (paper App. E: P(Correct) after ``Judge:``), about
the gold solutions and wrong candidates of fresh train problems, of two kinds:

- ``near misses``: one or two wrong cells or a swap (:meth:`gvlib.organism.tasks.SudokuTask.near_miss`), the
  errors of the family's verification documents and of the members near their frontier;
- ``own errors``: candidates of the density the model was trained on.

A density whose own-errors AUC is high while its near-miss AUC stays near 0.5 is learnable, and what is
learned there does not reach the errors that matter. Every model gets the same training length.

Run: ``python -m gvlib.organism.probe [--preset default] [--steps 200]``.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import pandas as pd

from gvlib.backends.hf import HFBackend
from gvlib.metrics import roc_auc
from gvlib.organism.corpus import CandidatePool, Corpus, Mixture
from gvlib.organism.presets import get_preset
from gvlib.organism.report import gold_and_near_misses
from gvlib.organism.tasks import SudokuTask, _grid_text, _parse_grid
from gvlib.organism.tokenizer import build_tokenizer
from gvlib.organism.train import build_model, train_model
from gvlib.organism.world import World
from gvlib.threads import torch_threads, training_threads
from gvlib.verifiers import verify

#: Wrong candidates a probe model is trained on: how many cells are wrong, (fewest, most), drawn uniformly;
#: None: the near misses of the family's own verification documents.
DENSITIES: dict[str, tuple[int, int] | None] = {"near misses": None, "8 wrong cells": (8, 8)}
#: Every document is MC about Sudoku: a fresh train problem's gold solution or its wrong candidate
#: (``near_miss=1``: the candidate pool a corpus requires is never drawn from).
MIXTURE = Mixture(kinds={"verify": 1.0}, tasks={"sudoku": 1.0}, methods={"mc": 1.0}, near_miss=1.0)


class WrongCells(SudokuTask):
    """Sudoku whose near misses have a number of wrong cells drawn from ``cells`` (None: the task's own)."""

    def __init__(self, cells: tuple[int, int] | None):
        super().__init__(())
        if cells is not None and not 1 <= cells[0] <= cells[1] <= 16:
            raise ValueError(f"wrong cells {cells}: need 1 <= fewest <= most <= 16")
        self.cells = cells

    def near_miss(self, example, rng) -> str:
        if self.cells is None:
            return super().near_miss(example, rng)
        grid = list(_parse_grid(example.answer))
        k = int(rng.integers(self.cells[0], self.cells[1] + 1))
        for i in rng.choice(16, size=k, replace=False):
            grid[i] = int(rng.choice([d for d in (1, 2, 3, 4) if d != grid[i]]))
        return _grid_text(grid)


def probe(preset: str = "default", *, densities: dict[str, tuple[int, int] | None] = DENSITIES, steps: int = 200,
          problems: int = 200, seed: int = 0, threads: int | None = None) -> pd.DataFrame:
    """One row per density: the MC verifier trained on it, its final training loss (ln 2 / 2 ≈ 0.347: the verdict
    not learned, the EOS after it always is), and its ROC AUC on near misses and on its own errors.
    ``seed`` seeds the documents, the initial weights and the problems asked; ``threads``: torch threads while
    training (default :func:`gvlib.threads.training_threads`)."""
    if steps < 1 or problems < 2:
        raise ValueError(f"probe: steps={steps} and problems={problems} must be >= 1 and >= 2")
    p = get_preset(preset)
    spec = replace(p.models[len(p.models) // 2], name="probe", steps=steps)
    world, tokenizer = World(p.world), build_tokenizer(p.world)
    def asked(task: WrongCells):  # the same fresh train problems for every model and kind
        return gold_and_near_misses(task, world, problems, np.random.default_rng([seed, 19]))

    near = asked(WrongCells(None))
    rows = []
    for name, cells in densities.items():
        t0 = time.time()
        task = WrongCells(cells)
        rng = np.random.default_rng([seed, 23])
        pool_examples = [task.example(world.train_problem("sudoku", rng)) for _ in range(16)]
        pool = CandidatePool(task, [{"problem": e.meta["puzzle"], "completion": task.near_miss(e, rng), "u": 0}
                                    for e in pool_examples])
        with torch_threads(threads or training_threads()):
            corpus = Corpus(world, {"sudoku": task}, tokenizer.get_vocab(), MIXTURE, {"sudoku": pool}, seed=seed)
            model = build_model(spec, tokenizer, p.train, seed)
            stats = train_model(model, corpus, spec, p.train, desc=f"probe {name}")
            backend = HFBackend(model, tokenizer, batch_size=256)
            aucs = {}
            own = near if cells is None else asked(task)
            for kind, (examples, candidates, u) in (("near misses", near), ("own errors", own)):
                aucs[kind] = roc_auc(u, verify("mc", backend, task, examples, candidates, seed=seed).scores)
        rows.append({"trained on": name, "model": f"{spec.hidden}x{spec.layers}", "steps": steps,
                     "final loss": stats["final_train_loss"], "AUC near misses": aucs["near misses"],
                     "AUC own errors": aucs["own errors"], "seconds": round(time.time() - t0)})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m gvlib.organism.probe", description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default", help="organism preset whose world and middle member's shape are used")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--problems", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(probe(args.preset, steps=args.steps, problems=args.problems, seed=args.seed).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
