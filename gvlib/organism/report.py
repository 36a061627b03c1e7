"""Does the organism show the paper's mechanism? Generation accuracy, self-verification and the gap.

For every task and family member: sample ``n`` completions per test prompt (T = 0.7, top-p 0.9, the
paper's defaults, §3) through the engine's transformers backend, score them with the exact checker,
let the SAME model verify each of its own samples with the engine's verifiers (:mod:`gvlib.verifiers`),
measure how well each verifier's scores separate correct from incorrect samples (ROC AUC of score
against correctness, :func:`gvlib.metrics.roc_auc`; tournament: the rounds a sample survived),
and compute the gap and relative gap of Definitions 2.1–2.2 with :mod:`gvlib.metrics` (per prompt,
then averaged; 95% bootstrap CIs over prompts). Filters are the paper's (§3, reference §1): MC global
τ = 0.8, CoT-Binary kept iff ``<correct>``, CoT-Score global τ = 8, Tournament: the survivors of all
but the last round (the top quarter of the samples). Filters use the metrics' strict ``s > τ``.

Run: ``python -m gvlib.organism.report --family DIR [--json OUT]``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from gvlib.backends.base import SamplingParams
from gvlib.backends.hf import HFBackend
from gvlib.metrics import gap, gap_from_weights, roc_auc
from gvlib.organism.tasks import load_task
from gvlib.threads import torch_threads
from gvlib.verifiers import verify

#: The pointwise filters of the paper's headline results (reference §1): (method, global τ).
THRESHOLDS = {"mc": 0.8, "cot_binary": 0.5, "cot_score": 8}
METHODS = ("mc", "cot_binary", "cot_score", "tournament")


def measure_model(backend: HFBackend, task, *, n: int, temperature: float, methods, seed: int) -> list[dict]:
    """Rows (one per method) for one model on one task: gen acc, verifier accuracy, gaps with CIs."""
    samples = backend.sample([task.generation_prompt(e) for e in task.examples],
                             SamplingParams(n=n, temperature=temperature, top_p=0.9,
                                            max_new_tokens=task.max_new_tokens, seed=seed))
    u = np.array([[task.score(e, c) for c in cs] for e, cs in zip(task.examples, samples)])
    acc_x = u.mean(1)
    rows = []
    for method in methods:
        v = verify(method, backend, task, task.examples, samples, seed=seed,
                   rounds=max(1, int(np.log2(n)) - 1) if method == "tournament" else None)
        if method == "tournament":
            keep = v.survivors[-1].astype(float)
            res = gap_from_weights(u, keep)
        else:
            res = gap(u, v.scores, tau=THRESHOLDS[method])
            keep = (v.scores > THRESHOLDS[method]).astype(float)
        s = res.summary(seed=seed)
        rows.append({
            "task": task.name, "method": method, "gen_acc": float(u.mean()),
            "mixed_prompts": float(np.mean((acc_x > 0) & (acc_x < 1))),
            "distinct_samples": float(np.mean([len(set(cs)) for cs in samples])),
            "kept": float(keep.mean()),
            "verif_acc": None if method == "tournament" else float((keep == u).mean()),
            "auc": roc_auc(u, v.scores),
            "unparseable": v.unparseable_rate,
            "gap": s["gap"], "gap_ci": s["gap_ci"], "rel_gap": s["relative_gap"], "rel_gap_ci": s["relative_gap_ci"],
            "prompts": len(task), "n": n,
        })
    return rows


def measure(family: str | Path, *, tasks=("sudoku", "arith", "facts"), prompts: int = 128, n: int = 8,
            temperature: float = 0.7, methods=METHODS, seed: int = 0, models=None) -> list[dict]:
    """One row per (task, model, method) for the finished members of a family directory (by FLOPs)."""
    family = Path(family)
    members = sorted((json.loads(p.read_text()) | {"path": p.parent} for p in family.glob("*/manifest.json")),
                     key=lambda m: m["flops"])
    if not members:
        raise FileNotFoundError(f"{family}: no finished model (no */manifest.json)")
    rows = []
    for entry in members:
        if models and entry["name"] not in models:
            continue
        backend = HFBackend.from_pretrained(str(entry["path"]), device="cpu", batch_size=1024)
        for short in tasks:
            task = load_task(f"organism/{short}", split="test", limit=prompts, family=entry["path"])
            t0 = time.time()
            for row in measure_model(backend, task, n=n, temperature=temperature, methods=methods, seed=seed):
                row.update(model=entry["name"], flops=entry["flops"], seconds=time.time() - t0)
                rows.append(row)
                print(format_row(row), flush=True)
    return rows


def format_row(r: dict) -> str:
    lo, hi = r["rel_gap_ci"]
    va = "  -  " if r["verif_acc"] is None else f"{100 * r['verif_acc']:5.1f}"
    auc = "  -  " if r["auc"] is None else f"{r['auc']:.3f}"
    return (f"{r['task']:16} {r['model']:5} {r['flops']:9.2e} {r['method']:10} gen {100 * r['gen_acc']:5.1f}  "
            f"mixed {100 * r['mixed_prompts']:5.1f}  verif {va}  AUC {auc}  kept {100 * r['kept']:5.1f}  "
            f"gap {100 * r['gap']:+6.2f}  rel {100 * r['rel_gap']:+6.2f} [{100 * lo:+6.2f}, {100 * hi:+6.2f}]")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m gvlib.organism.report", description=__doc__)
    ap.add_argument("--family", required=True, help="a family directory (python -m gvlib.organism --out DIR)")
    ap.add_argument("--tasks", default="sudoku,arith,facts")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--models", default=None, help="comma-separated member names (default: all)")
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads while sampling (see gvlib.threads)")
    ap.add_argument("--json", default=None, help="write the rows to this JSON file")
    args = ap.parse_args(argv)
    with torch_threads(args.threads):
        rows = measure(args.family, tasks=tuple(args.tasks.split(",")), prompts=args.prompts, n=args.n,
                       temperature=args.temperature, methods=tuple(args.methods.split(",")), seed=args.seed,
                       models=args.models.split(",") if args.models else None)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
