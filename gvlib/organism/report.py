"""[organism] Organism vital signs (a command-line report beside the organism page): per member and task, accuracy,
self-verification by each method, its ROC AUC and the gap, through the chapters' own path.

For every task and finished member of a family directory, :func:`gvlib.claims.run_grid` samples ``n``
completions per test prompt and lets the SAME model verify them with each method (paper §3), through the
engine's cache (a report run with a chapter's settings reads the chapter's samples back, and the other way
round). Each (member, method) row is :meth:`gvlib.claims.Grid.table`'s, with the paper's filters
(:func:`gvlib.claims.make_filters`: MC and CoT-Score at a global τ, CoT-Binary keeps verdict 1, Tournament
its survivors), and how well the verifier's scores separate correct from incorrect samples: the ROC AUC
of score against correctness over all samples and within each mixed prompt (``auc``, ``auc_within``;
tournament: the rounds a sample survived).

``--near-misses`` asks instead how well each member verifies *the documents it was trained on*: the gold
solution and a near miss (:meth:`gvlib.organism.tasks.OrganismTask.near_miss`) of fresh train problems, the
ROC AUC of the verifier's score on them (:func:`near_miss_auc`). A verifier at 0.5 there has not learned
its format at all, whatever its samples look like.

Run: ``python -m gvlib.organism.report --family DIR [--json OUT] [--near-misses]``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from gvlib import claims
from gvlib.backends.hf import HFBackend
from gvlib.metrics import roc_auc
from gvlib.names import VERIFIER_METHODS
from gvlib.organism.tasks import OrganismTask, make_task, world_config_of
from gvlib.organism.world import World
from gvlib.tasks import load
from gvlib.verifiers import verify


def members(family: str | Path, names=None) -> list[claims.Model]:
    """The finished members of a family directory (those with a manifest), smallest FLOPs first."""
    found = sorted((json.loads(p.read_text()) | {"path": p.parent} for p in Path(family).glob("*/manifest.json")),
                   key=lambda m: m["flops"])
    if not found:
        raise FileNotFoundError(f"{family}: no finished model (no */manifest.json)")
    return [claims.Model(m["name"], str(m["path"]), float(m["flops"]), m.get("params"))
            for m in found if not names or m["name"] in names]


def measure(family: str | Path, *, tasks=("sudoku", "arith", "facts"), prompts: int = 128, n: int = 8,
            temperature: float = 0.7, methods=VERIFIER_METHODS, tournament_rounds: int = 2, seed: int = 0,
            models=None, threads: int | None = 1) -> pd.DataFrame:
    """The vital signs of every finished member (``models``: these names only) on each organism task."""
    run = members(family, models)
    filters = claims.make_filters(methods, mc_tau=0.8, cot_score_tau=8, tournament_rounds=tournament_rounds)
    tables = []
    for short in tasks:
        task = load(f"organism/{short}", limit=prompts, family=family)
        grid = claims.run_grid(run, task, methods, n=n, temperature=temperature, seed=seed, backend="transformers",
                               tournament_rounds=tournament_rounds, threads=threads)
        tables.append(grid.table(filters, seed=seed).assign(task=task.name))
        for row in tables[-1].itertuples():
            print(format_row(row), flush=True)
    return pd.concat(tables, ignore_index=True)


#: The methods that score one candidate at a time (the tournament compares two).
POINTWISE = ("mc", "cot_score", "cot_binary")


def gold_and_near_misses(task: OrganismTask, world: World, problems: int, rng: np.random.Generator):
    """``problems`` fresh train problems of ``task``, each with its gold solution and one near miss
    (``task.near_miss``): (examples, candidates, the checker's u per candidate)."""
    short = task.name.removeprefix("organism/")
    examples = [task.example(world.train_problem(short, rng)) for _ in range(problems)]
    candidates = [[task.gold_completion(e), task.near_miss(e, rng)] for e in examples]
    return examples, candidates, np.array([[task.score(e, c) for c in cs] for e, cs in zip(examples, candidates)])


def near_miss_auc(family: str | Path, *, tasks=("sudoku", "arith", "facts"), methods=POINTWISE,
                  problems: int = 200, seed: int = 0, models=None) -> pd.DataFrame:
    """Per member, task and pointwise method: the ROC AUC of the verifier's scores on the gold solutions and near
    misses of ``problems`` fresh train problems (one of each per problem), and the mean score of each."""
    unknown = [m for m in methods if m not in POINTWISE]
    if unknown:
        raise ValueError(f"near_miss_auc: pointwise methods only {POINTWISE}, got {unknown}")
    world = World(world_config_of(family))
    asked = {}  # task -> (task object, problems, their gold solutions and near misses, the checker's u)
    for short in tasks:
        task = make_task(short, world)
        asked[short] = (task, *gold_and_near_misses(task, world, problems, np.random.default_rng([seed, 17])))
    rows = []
    for m in members(family, models):
        backend = HFBackend.from_pretrained(m.path, device="cpu", dtype="float32")
        for short, (task, examples, candidates, u) in asked.items():
            for method in methods:
                s = verify(method, backend, task, examples, candidates, seed=seed).scores
                rows.append({"task": f"organism/{short}", "generator": m.name, "method": method, "auc": roc_auc(u, s),
                             "score_gold": float(s[:, 0].mean()), "score_near_miss": float(s[:, 1].mean())})
    return pd.DataFrame(rows)


def format_near_miss_row(r) -> str:
    """One row of :func:`near_miss_auc` as a line of text."""
    return (f"{r.task:16} {r.generator:5} {r.method:10} near misses of train problems: AUC {r.auc:.3f}  "
            f"mean score gold {r.score_gold:.2f}, near miss {r.score_near_miss:.2f}")


def format_row(r) -> str:
    """One row of :meth:`gvlib.claims.Grid.table` (with its ``task``) as a line of text."""
    auc, within = ("  -  " if a is None or a != a else f"{a:.3f}" for a in (r.auc, r.auc_within))
    return (f"{r.task:16} {r.generator:5} {r.flops:9.2e} {r.method:10} acc {r.accuracy:5.1f}  mixed {r.n_mixed:4d}  "
            f"AUC {auc} within {within}  empty {r.n_empty:4d}  gap {r.gap:+6.2f}  rel {r.relative_gap:+6.2f} "
            f"[{r.relative_gap_lo:+6.2f}, {r.relative_gap_hi:+6.2f}]")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m gvlib.organism.report", description=__doc__)
    ap.add_argument("--family", required=True, help="a family directory (python -m gvlib.organism --out DIR)")
    ap.add_argument("--tasks", default="sudoku,arith,facts")
    ap.add_argument("--methods", default=",".join(VERIFIER_METHODS))
    ap.add_argument("--models", default=None, help="comma-separated member names (default: all)")
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--tournament-rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads while sampling (see gvlib.threads)")
    ap.add_argument("--json", default=None, help="write the rows to this JSON file")
    ap.add_argument("--near-misses", action="store_true",
                    help="verify gold solutions and near misses of train problems instead (pointwise methods)")
    args = ap.parse_args(argv)
    tasks, models = tuple(args.tasks.split(",")), args.models.split(",") if args.models else None
    if args.near_misses:
        rows = near_miss_auc(args.family, tasks=tasks, methods=tuple(m for m in args.methods.split(",") if m in POINTWISE),
                             problems=args.prompts, seed=args.seed, models=models)
        print("\n".join(format_near_miss_row(r) for r in rows.itertuples()))
    else:
        rows = measure(args.family, tasks=tasks, prompts=args.prompts, n=args.n, temperature=args.temperature,
                       methods=tuple(args.methods.split(",")), tournament_rounds=args.tournament_rounds, seed=args.seed,
                       models=models, threads=args.threads)
    if args.json:
        Path(args.json).write_text(rows.to_json(orient="records", indent=1))


if __name__ == "__main__":
    main()
