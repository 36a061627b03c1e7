"""Does the organism show the paper's mechanism? Generation accuracy, self-verification and the gap.

For every task and family member: sample ``n`` completions per test prompt (T = 0.7, top-p 0.9, the
paper's defaults, §3), score them with the exact checker, let the SAME model verify each of its own
samples with each pointwise method (MC: P(Correct) over {Correct, Incorrect}, kept if ≥ 0.8, the paper's
global τ; CoT-Binary: one sampled verdict, kept if ``<correct>``; CoT-Score: one sampled score, kept if
≥ 8), and compute the gap and relative gap of Definitions 2.1–2.2 (paper §2, §3) with 95% bootstrap
CIs over prompts. Run: ``python -m gvlib.organism.report --family DIR``.
"""
from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from gvlib.organism.sampling import next_token_logprobs, sample
from gvlib.organism.tasks import load_task

_BINARY = re.compile(r"Correctness:\s*<?\s*(correct|incorrect)\s*>?")
_SCORE = re.compile(r"Score:\s*(\d+)")
METHODS = ("mc", "cot_binary", "cot_score")


def verdicts(model, tokenizer, task, examples, samples: list[list[str]], method: str, seed: int) -> np.ndarray:
    """Keep (1) or reject (0) for every sample, shape (prompts, n); unparseable verdicts reject."""
    flat = [(ex, c) for ex, cs in zip(examples, samples) for c in cs]
    prompts = [task.verifier_prompt(method, ex, c) for ex, c in flat]
    if method == "mc":
        lp = next_token_logprobs(model, tokenizer, prompts, task.mc_tokens)
        p_plus = 1.0 / (1.0 + np.exp(lp[:, 1] - lp[:, 0]))
        keep = p_plus >= 0.8
    else:
        outs = [o[0] for o in sample(model, tokenizer, prompts, n=1, temperature=0.7, top_p=0.9,
                                     max_new_tokens=task.verifier_max_new_tokens, seed=seed, batch_size=512)]
        keep = np.array([_keep(method, o) for o in outs])
    return keep.reshape(len(samples), -1).astype(float)


def _keep(method: str, text: str) -> bool:
    if method == "cot_binary":
        m = _BINARY.findall(text)
        return bool(m) and m[-1] == "correct"
    m = _SCORE.findall(text)
    return bool(m) and int(m[-1]) >= 8


def per_prompt_gap(u: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gap_x, relative gap_x) per prompt; a prompt with nothing kept or acc_x = 1 has gap 0."""
    acc = u.mean(1)
    n_kept = keep.sum(1)
    ver = np.where(n_kept > 0, (u * keep).sum(1) / np.maximum(n_kept, 1), acc)
    gap = ver - acc
    rel = np.where(acc < 1, gap / np.maximum(1 - acc, 1e-12), 0.0)
    return gap, rel


def bootstrap_ci(values: np.ndarray, seed: int = 0, reps: int = 2000) -> tuple[float, float]:
    """95% percentile bootstrap CI of the mean over prompts."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(len(values), size=(reps, len(values)))].mean(1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def measure(family: str | Path, *, tasks=("sudoku", "arith", "facts"), prompts: int = 128, n: int = 8,
            temperature: float = 0.7, methods=METHODS, seed: int = 0) -> list[dict]:
    """One row per (task, model, method) with FLOPs, gen acc, verifier accuracy, gap, relative gap, CIs."""
    family = Path(family)
    manifest = json.loads((family / "family.json").read_text())
    rows = []
    for entry in manifest["models"]:
        path = family / entry["path"]
        model = AutoModelForCausalLM.from_pretrained(path).eval()
        tokenizer = AutoTokenizer.from_pretrained(path)
        for short in tasks:
            task = load_task(f"organism/{short}", split="test", limit=prompts, family=family)
            t0 = time.time()
            samples = sample(model, tokenizer, [task.generation_prompt(e) for e in task.examples], n=n,
                             temperature=temperature, top_p=0.9, max_new_tokens=task.max_new_tokens, seed=seed)
            u = np.array([[task.score(e, c) for c in cs] for e, cs in zip(task.examples, samples)])
            distinct = float(np.mean([len(set(cs)) for cs in samples]))
            for method in methods:
                keep = verdicts(model, tokenizer, task, task.examples, samples, method, seed)
                gap, rel = per_prompt_gap(u, keep)
                rows.append({
                    "task": short, "model": entry["name"], "flops": entry["flops"], "method": method,
                    "gen_acc": float(u.mean()), "mixed_prompts": float(np.mean((u.mean(1) > 0) & (u.mean(1) < 1))),
                    "distinct_samples": distinct, "kept": float(keep.mean()),
                    "verif_acc": float((keep == u).mean()), "gap": float(gap.mean()), "gap_ci": bootstrap_ci(gap, seed),
                    "rel_gap": float(rel.mean()), "rel_gap_ci": bootstrap_ci(rel, seed), "prompts": len(task),
                    "n": n, "seconds": time.time() - t0,
                })
                print(_fmt(rows[-1]), flush=True)
        del model
    return rows


def _fmt(r: dict) -> str:
    lo, hi = r["rel_gap_ci"]
    return (f"{r['task']:7} {r['model']:5} {r['flops']:9.2e} {r['method']:10} gen {100 * r['gen_acc']:5.1f}  "
            f"mixed {100 * r['mixed_prompts']:5.1f}  verif {100 * r['verif_acc']:5.1f}  kept {100 * r['kept']:5.1f}  "
            f"gap {100 * r['gap']:+6.2f}  rel {100 * r['rel_gap']:+6.2f} [{100 * lo:+6.2f}, {100 * hi:+6.2f}]")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m gvlib.organism.report", description=__doc__)
    ap.add_argument("--family", required=True, help="a family directory (python -m gvlib.organism --out DIR)")
    ap.add_argument("--tasks", default="sudoku,arith,facts")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the rows to this JSON file")
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    rows = measure(args.family, tasks=tuple(args.tasks.split(",")), prompts=args.prompts, n=args.n,
                   temperature=args.temperature, methods=tuple(args.methods.split(",")), seed=args.seed)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
