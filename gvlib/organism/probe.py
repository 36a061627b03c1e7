"""[organism] What makes the one-token MC verdict learnable? A probe that trains MC verifiers of Sudoku alone.

One supervised word per MC document has to say whether any of sixteen cells breaks a rule. The probe takes
everything else away. For each *probe* (an error density and a check weight) it trains one fresh model, of
the shape of the preset's middle member, on MC documents about Sudoku only: a fresh train problem's gold
solution or, half the time, a wrong candidate of that density, the verdict its only target besides, with a
check weight > 0, the family's check labels (:class:`gvlib.organism.train.ModelSpec`), for every step.
Then it asks the model, through the chapters' MC verifier (paper App. E: P(Correct) after ``Judge:``), about
the gold solutions and wrong candidates of fresh train problems, of two kinds:

- ``near misses``: one or two wrong cells or a swap (:meth:`gvlib.organism.tasks.SudokuTask.near_miss`), the
  errors of the family's verification documents and of the members near their frontier;
- ``own errors``: candidates of the density the model was trained on.

A density whose own-errors AUC is high while its near-miss AUC stays near 0.5 is learnable, and what is
learned there does not reach the errors that matter; a check weight that lifts the near-miss AUC is what the
verdict lacked. Every model gets the same training length.

    python -m gvlib.organism.probe --preset default

trains the models (minutes; the README's diagnostics paragraph says how long) and writes the table to
``book/data/organism_probe/<preset>.json``
(:func:`table_path`), stamped with the digest of the code it ran on (:func:`code_digest`); the organism page
renders the committed table and marks it STALE when that code or the preset has changed
(:mod:`gvlib.organism.committed`). The probe never reads a build's family, so ``make book`` does not rerun it.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from gvlib.atomic import write_atomic
from gvlib.backends.hf import HFBackend
from gvlib.codehash import source_digest
from gvlib.metrics import roc_auc
from gvlib.organism import committed
from gvlib.organism.corpus import CandidatePool, Corpus, Mixture
from gvlib.organism.presets import PRESETS, TRAINING_CODE, get_preset
from gvlib.organism.report import gold_and_near_misses
from gvlib.organism.tasks import SudokuTask
from gvlib.organism.tokenizer import build_tokenizer
from gvlib.organism.train import build_model, train_model
from gvlib.organism.world import World
from gvlib.paths import REPO_ROOT
from gvlib.threads import torch_threads, training_threads
from gvlib.verifiers import verify

#: name: (wrong candidates a probe model is trained on: how many cells are wrong, (fewest, most), drawn uniformly,
#: None for the near misses of the family's verification documents; the check weight it is trained with).
PROBES: dict[str, tuple[tuple[int, int] | None, float]] = {
    "near misses": (None, 0.0), "8 wrong cells": ((8, 8), 0.0), "near misses, check labels": (None, 1.0)}
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
        return self.wrong_cells(example, int(rng.integers(self.cells[0], self.cells[1] + 1)), rng)


#: Training steps of each probe model: what the committed tables use (a verdict learned with check labels
#: appears only after several hundred).
STEPS = 1200


def probe(preset: str = "default", *, probes: dict[str, tuple[tuple[int, int] | None, float]] = PROBES,
          steps: int = STEPS, problems: int = 200, seed: int = 0, threads: int | None = None) -> pd.DataFrame:
    """One row per probe: the MC verifier trained on it, its final LM loss (ln 2 / 2 ≈ 0.347: the verdict not
    learned, the EOS after it always is) and check loss (None without check labels), and its ROC AUC on near
    misses and on its own errors (the same problems and candidates for a probe trained on near misses).
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
    for name, (cells, check_weight) in probes.items():
        t0 = time.time()
        task = WrongCells(cells)
        rng = np.random.default_rng([seed, 23])
        pool_examples = [task.example(world.train_problem("sudoku", rng)) for _ in range(16)]
        pool = CandidatePool(task, [{"problem": e.meta["puzzle"], "completion": task.near_miss(e, rng), "u": 0}
                                    for e in pool_examples])
        with torch_threads(threads or training_threads()):
            corpus = Corpus(world, {"sudoku": task}, tokenizer.get_vocab(), MIXTURE, {"sudoku": pool}, seed=seed)
            model = build_model(spec, tokenizer, p.train, seed)
            probe_spec = replace(spec, check_weight=check_weight, check_until=1.0)
            stats = train_model(model, corpus, probe_spec, p.train, desc=f"probe {name}")
            backend = HFBackend(model, tokenizer, batch_size=256)
            aucs = {}
            own = near if cells is None else asked(task)
            for kind, (examples, candidates, u) in (("near misses", near), ("own errors", own)):
                aucs[kind] = roc_auc(u, verify("mc", backend, task, examples, candidates, seed=seed).scores)
        rows.append({"trained on": name, "check weight": check_weight, "model": f"{spec.hidden}x{spec.layers}", "steps": steps,
                     "final loss": stats["final_train_loss"], "final check loss": stats["final_check_loss"],
                     "AUC near misses": aucs["near misses"],
                     "AUC own errors": aucs["own errors"], "seconds": round(time.time() - t0)})
    return pd.DataFrame(rows)


# -- the committed table ---------------------------------------------------------------------------------
def table_path(preset: str) -> Path:
    """Where the probe table of ``preset`` is kept: ``book/data/organism_probe/<preset>.json``."""
    return committed.table_path("organism_probe", preset)


def code_digest() -> str:
    """Digest of the code a probe table depends on: the training code, this probe, the near misses it asks
    about and the MC verifier (with the backend and log-probability kernels) that scores them."""
    return "probe-" + source_digest(*TRAINING_CODE, "gvlib.organism.probe", "gvlib.organism.report", "gvlib.verifiers",
                                    "gvlib.metrics", "gvlib.backends.base", "gvlib.kernels.logprob",
                                    "gvlib.kernels.triton_logprob")


def command(preset: str, steps: int = STEPS, problems: int = 200, seed: int = 0) -> str:
    """The command that (re)makes a table."""
    return f"python -m gvlib.organism.probe --preset {preset} --steps {steps} --problems {problems} --seed {seed}"


def make_table(preset: str, rows: pd.DataFrame, *, steps: int, problems: int, seed: int) -> dict:
    """The probe's rows with their stamp (:func:`gvlib.organism.committed.stamp`) and settings."""
    return {**committed.stamp(preset, code_digest(), command(preset, steps, problems, seed)), "steps": steps,
            "problems": problems, "seed": seed, "rows": json.loads(rows.to_json(orient="records"))}  # NaN: null


def stale_reason(table: dict | None, preset: str) -> str | None:
    """Why the committed ``table`` does not describe what this code's probe gives for ``preset`` (None: it does)."""
    settings = {k: table[k] for k in ("steps", "problems", "seed") if k in table} if table else {}
    again = f"regenerate it with `{command(preset, **settings)}` and commit {table_path(preset).relative_to(REPO_ROOT)}"
    return committed.stale_reason(table, preset, code_digest(), what="MC probe table", regenerate=again)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m gvlib.organism.probe", description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default", choices=sorted(PRESETS),
                    help="organism preset whose world and middle member's shape are used (default: %(default)s)")
    ap.add_argument("--steps", type=int, default=STEPS, help="training steps of each probe model (default: %(default)s)")
    ap.add_argument("--problems", type=int, default=200, help="train problems asked about (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="the table (default: book/data/organism_probe/<preset>.json)")
    args = ap.parse_args(argv)
    rows = probe(args.preset, steps=args.steps, problems=args.problems, seed=args.seed)
    print(rows.round(3).to_string(index=False))
    out = table_path(args.preset) if args.out is None else args.out
    write_atomic(out, json.dumps(make_table(args.preset, rows, steps=args.steps, problems=args.problems,
                                            seed=args.seed), indent=1, allow_nan=False) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
