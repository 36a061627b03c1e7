"""[claims] Iterative self-improvement: rounds of sample → verify → filter → LoRA fine-tune (paper §5, App. D, Alg. 1).

Round t starts from the model f_t (f_0 = the given model) and

1. **samples** ``n`` completions per prompt from f_t (the engine's cached :func:`gvlib.engine.generate`),
2. **verifies** them with f_t itself (``verifier="self"``, the paper's setting), with a fixed model
   (``"fixed"``, the paper's Qwen-1.5-72B ablation) or with the true utility (``"gold"``),
3. **evaluates** f_t: accuracy, the gap gap(f_t, g) with bootstrap CIs, pass@k for k = 1, 2, 4, …, n (the
   unbiased estimator) and the diversity of its answers (distinct extracted answers per prompt),
4. **filters** the training prompts' samples (keep s > tau, or a per-prompt quantile) and fine-tunes a
   LoRA adapter on the kept ones (:mod:`gvlib.finetune`), which gives f_{t+1}.

The last round only evaluates. Which prompts are trained on is the ``train_task`` argument: ``None`` trains
on the evaluation prompts themselves (what the paper's numbers suggest: its gold run gains 33 points of
pass@1 in one round, Fig. 10; the paper does not say), a task holding other problems trains on those.

**Resumable.** Each round lives in ``<run_dir>/round_XX/``; it is finished only once its ``metrics.json``
exists (written atomically, last). Samples and verifications are cached by the engine, adapters and merged
models are written to a temporary directory and moved into place, so a killed run re-enters the first
unfinished round and reuses whatever that round had already finished.

**Two scales.** With the ``transformers`` backend everything runs in this process and f_{t+1} is the base
model with the adapter merged in (a model directory like any other). With vLLM (GPUs), sampling,
verification and training each run in their own spawned process, so GPU memory is freed between them, and
f_{t+1} is the base model served with a new ``LoRARequest`` per round.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from gvlib import engine, paper_numbers
from gvlib.atomic import write_atomic
from gvlib.backends import load_backend, options_for, vllm_available
from gvlib.backends.base import Backend
from gvlib.backends.resolve import fingerprint, resolve_model_dir
from gvlib.backends.vllm import vllm_max_lora_rank
from gvlib.cache import digest, progress
from gvlib.claims import run_stage
from gvlib.codehash import source_digest
from gvlib.finetune import LoraSettings, merge_adapter, train_adapter
from gvlib.metrics import bootstrap_ci, filter_weights, gap_from_weights, pass_at_k
from gvlib.names import BACKENDS, VERIFIER_METHODS, VERIFIERS
from gvlib.paths import cache_root
from gvlib.tasks.base import Task
from gvlib.verifiers import Verification

__all__ = ["SATURATION_GAP", "IterationConfig", "ModelRef", "IterationRun", "run_iterations",
           "pass_at_k_curve", "pass_at_k_ks", "diversity", "round_metrics", "claim_check",
           "open_backend"]

#: The paper's saturation line (Fig. 4: a gap below 0.5 points), as a fraction.
SATURATION_GAP = paper_numbers.SATURATION_LINE / 100


@dataclass(frozen=True)
class IterationConfig:
    """Everything that determines a run (paper App. D; the defaults are the paper's where it gives one).

    model           f_0: a local model directory or a Hugging Face id
    rounds          fine-tuning rounds R; the models f_0 … f_R are evaluated (the paper: 3 on GSM8K)
    n               samples per prompt (the paper: 128); pass@k is reported for k = 1, 2, 4, … ≤ n and n
    method          the verification method of a model verifier (the paper: CoT-Binary, and MC in Fig. 4)
    tau, quantile   the filter: keep s > tau (one global threshold), or s above the prompt's quantile
    verifier        "self", "fixed" or "gold" (:data:`gvlib.names.VERIFIERS`)
    fixed_verifier  the fixed verifier's model (default: f_0 itself, frozen)
    temperature, top_p  sampling of generations and verifications (paper §3: 0.7, 0.9)
    lora            LoRA shape and SFT schedule of each round
    seed            one seed for sampling, verification and training; round t samples, verifies and trains
                    with ``seed + t`` (fresh samples every round, as in the paper's Algorithm 1)
    backend         "auto", "transformers" or "vllm" (auto: vLLM when it can run here)
    backend_options backend options for every model ('*') or per model id (:func:`gvlib.backends.options_for`),
                    e.g. ``{"Qwen/Qwen1.5-72B": {"tensor_parallel_size": 4}}`` for a fixed verifier on 4 GPUs
    isolate         run each stage in its own process (default: exactly when the backend is vLLM)
    """

    model: str
    rounds: int = 3
    n: int = 16
    method: str = "cot_binary"
    tau: float | None = 0.5
    quantile: float | None = None
    verifier: str = "self"
    fixed_verifier: str | None = None
    temperature: float = 0.7
    top_p: float = 0.9
    lora: LoraSettings = field(default_factory=LoraSettings)
    seed: int = 0
    backend: str = "auto"
    backend_options: dict = field(default_factory=dict)
    isolate: bool | None = None

    def __post_init__(self):
        if self.rounds < 0:
            raise ValueError(f"rounds must be >= 0 fine-tuning rounds, got {self.rounds!r}")
        if self.n < 1:
            raise ValueError(f"n must be >= 1 sample per prompt, got {self.n!r}")
        if self.method not in VERIFIER_METHODS:
            raise ValueError(f"method must be one of {VERIFIER_METHODS}, got {self.method!r}")
        if self.verifier not in VERIFIERS:
            raise ValueError(f"verifier must be one of {VERIFIERS}, got {self.verifier!r}")
        if (self.tau is None) == (self.quantile is None):
            raise ValueError(f"give exactly one of tau and quantile; got tau={self.tau!r}, quantile={self.quantile!r}")
        if self.fixed_verifier is not None and self.verifier != "fixed":
            raise ValueError(f"fixed_verifier={self.fixed_verifier!r} is only used with verifier='fixed', "
                             f"not {self.verifier!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        options_for(self.model, self.backend_options)  # a malformed option fails before any stage runs

    @property
    def backend_kind(self) -> str:
        """The backend that will run: "vllm" or "transformers"."""
        if self.backend == "auto":
            return "vllm" if vllm_available() is None else "transformers"
        return self.backend

    @property
    def isolated(self) -> bool:
        return self.backend_kind == "vllm" if self.isolate is None else self.isolate

    def filter(self, s: np.ndarray) -> np.ndarray:
        """0/1 weights of the filter on scores ``s`` (prompts, samples): s > tau or above the quantile.

        The gold verifier's scores are the utilities themselves, so it keeps exactly the right samples
        (u > 0.5), whatever threshold the model verifiers use.
        """
        if self.verifier == "gold":
            return filter_weights(s, tau=0.5)
        return filter_weights(s, tau=self.tau, quantile=self.quantile)


@dataclass(frozen=True)
class ModelRef:
    """f_t: the base model f_0 plus (from round 1 on) one LoRA adapter, and that merged into a directory.

    ``name`` and ``lora_id`` are the vLLM ``LoRARequest``'s (a new adapter name per round).
    """

    base: str
    adapter: str | None = None
    merged: str | None = None
    name: str = "f0"
    lora_id: int = 0


def open_backend(ref: ModelRef, kind: str, *, lora_rank: int = 8, options: dict | None = None) -> Backend:
    """A backend serving f_t: the merged directory (transformers) or base + LoRARequest (vLLM).

    ``options`` go to the backend (e.g. ``tensor_parallel_size``); vLLM's ``max_lora_rank`` is the
    smallest rank it accepts that holds a ``lora_rank`` adapter (:func:`vllm_max_lora_rank`).
    """
    options = dict(options or {})
    if kind == "transformers" or ref.adapter is None:
        model = ref.merged or ref.base
        if ref.adapter is not None and ref.merged is None:
            raise ValueError(f"model {ref.name}: the transformers backend needs the merged directory of {ref.adapter}")
        return load_backend(model, backend=kind, **options)
    return load_backend(ref.base, backend="vllm", enable_lora=True, max_lora_rank=vllm_max_lora_rank(lora_rank),
                        max_loras=1, lora=(ref.name, ref.lora_id, ref.adapter), **options)


# -- stages (module-level so a spawned process can run them) -----------------------------------------
def _verify(backend: Backend, task: Task, gens: engine.Generations, cfg: IterationConfig, seed: int,
            cache) -> Verification:
    return engine.verify(backend, task, gens, cfg.method, seed=seed, temperature=cfg.temperature,
                         top_p=cfg.top_p, cache=cache)


def _sample_stage(ref: ModelRef, cfg: IterationConfig, tasks: dict[str, Task], seed: int, cache) -> dict:
    """Sample every task in ``tasks`` from f_t and, for a self-verifier, verify with f_t too."""
    backend = open_backend(ref, cfg.backend_kind, lora_rank=cfg.lora.rank,
                           options=options_for(cfg.model, cfg.backend_options))
    out = {}
    for split, task in tasks.items():
        gens = engine.generate(backend, task, n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
                               seed=seed, cache=cache)
        ver = _verify(backend, task, gens, cfg, seed, cache) if cfg.verifier == "self" else None
        out[split] = (gens, ver)
    return out


def _fixed_verify_stage(model: str, cfg: IterationConfig, tasks: dict[str, Task], gens: dict, seed: int,
                       cache) -> dict:
    """Verify with the fixed verifier model."""
    backend = open_backend(ModelRef(base=model), cfg.backend_kind, options=options_for(model, cfg.backend_options))
    return {split: _verify(backend, task, gens[split], cfg, seed, cache) for split, task in tasks.items()}


def _train_stage(ref: ModelRef, pairs: list, adapter_dir: str, merged_dir: str | None, cfg: IterationConfig,
                 seed: int) -> dict:
    """LoRA SFT of f_t's adapter on ``pairs``; merge it into a model directory for the transformers backend.

    An adapter (and merged model) already trained on exactly these pairs, by a run killed before it wrote
    the round's metrics, is reused.
    """
    key = digest([pairs, asdict(cfg.lora), ref.adapter, seed])
    stats = _read_json(Path(adapter_dir) / "train_stats.json")
    if stats is None or stats.get("key") != key:
        stats = train_adapter(ref.base, pairs, adapter_dir, cfg.lora, init_adapter=ref.adapter, seed=seed,
                              extra_stats={"key": key})
        if merged_dir is not None:
            shutil.rmtree(merged_dir, ignore_errors=True)  # stale: it came from an older adapter
    if merged_dir is not None and not (Path(merged_dir) / "config.json").is_file():
        merge_adapter(ref.base, adapter_dir, merged_dir)
    return stats


# -- metrics -----------------------------------------------------------------------------------------
def pass_at_k_ks(n: int) -> list[int]:
    """k = 1, 2, 4, … ≤ n, and n itself (the paper's Fig. 4 axis for n = 128)."""
    ks = [2 ** i for i in range(n.bit_length()) if 2 ** i <= n]
    return ks if ks[-1] == n else ks + [n]


def pass_at_k_curve(u: np.ndarray) -> dict[int, float]:
    """Mean over prompts of the unbiased pass@k (:func:`gvlib.metrics.pass_at_k`), for k in pass_at_k_ks(n)."""
    u = np.asarray(u)
    if u.ndim != 2 or u.size == 0:
        raise ValueError(f"u must have shape (prompts, samples) with at least one of each; got {u.shape}")
    n, c = u.shape[1], (u >= 1).sum(axis=1)
    return {k: float(np.mean(pass_at_k(n, c, k))) for k in pass_at_k_ks(n)}


def diversity(task: Task, completions: list[list[str]]) -> dict[str, float]:
    """How varied the samples are, per prompt then averaged: distinct extracted answers (an unextractable
    answer counts as no answer), distinct completion texts, and the fraction of samples with no answer."""
    if not completions:
        raise ValueError("diversity needs at least one prompt's completions")
    answers = [[task.extract(c) for c in cs] for cs in completions]
    return {
        "distinct_answers": float(np.mean([len({a for a in row if a is not None}) for row in answers])),
        "distinct_completions": float(np.mean([len(set(cs)) for cs in completions])),
        "no_answer": float(np.mean([a is None for row in answers for a in row])),
    }


def round_metrics(task: Task, completions: list[list[str]], u: np.ndarray, scores: np.ndarray,
                  cfg: IterationConfig, *, n_boot: int = 2000) -> dict:
    """One model's evaluation: accuracy (CI), gap(f_t, g) with the run's filter (CIs), pass@k, diversity.

    ``pass_at_k_per_prompt`` keeps pass@1 and pass@n of every prompt, for paired CIs between rounds.
    """
    lo, hi = bootstrap_ci(np.mean, u.mean(axis=1), n_boot=n_boot, seed=cfg.seed)
    g = gap_from_weights(u, cfg.filter(scores))
    n, c = u.shape[1], (u >= 1).sum(axis=1)
    return {
        "accuracy": float(u.mean()),
        "accuracy_ci": [lo, hi],
        "gap": g.summary(n_boot=n_boot, seed=cfg.seed),
        "pass_at_k": {str(k): v for k, v in pass_at_k_curve(u).items()},
        "pass_at_k_per_prompt": {str(k): np.atleast_1d(pass_at_k(n, c, k)).tolist() for k in sorted({1, n})},
        "diversity": diversity(task, completions),
    }


def _filter_summary(u: np.ndarray, w: np.ndarray) -> dict:
    kept = int(w.sum())
    return {"kept": kept, "total": int(w.size), "yield": kept / w.size,
            "kept_accuracy": float((w * u).sum() / kept) if kept else None,
            "prompts_with_kept": float((w.sum(axis=1) > 0).mean())}


# -- the loop ----------------------------------------------------------------------------------------
@dataclass
class IterationRun:
    """A finished (or partly finished) run: its config, directory, and one metrics dict per round."""

    config: IterationConfig
    run_dir: Path
    rounds: list[dict]

    def series(self, key: str) -> list:
        """One value per round: "accuracy", "gap" (absolute), "relative_gap", "yield", "distinct_answers"."""
        get = {
            "accuracy": lambda r: r["accuracy"],
            "gap": lambda r: r["gap"]["gap"],
            "relative_gap": lambda r: r["gap"]["relative_gap"],
            "yield": lambda r: r["filter"]["yield"] if r["filter"] else None,
            "distinct_answers": lambda r: r["diversity"]["distinct_answers"],
        }
        if key not in get:
            raise KeyError(f"unknown series {key!r}; known: {sorted(get)}")
        return [get[key](r) for r in self.rounds]

    def pass_at_k(self) -> dict[int, list[float]]:
        """pass@k per round for each k: {k: [round 0, round 1, …]}."""
        return {int(k): [r["pass_at_k"][k] for r in self.rounds] for k in self.rounds[0]["pass_at_k"]}


def _run_key(cfg: IterationConfig, task: Task, train_task: Task | None) -> str:
    """What determines every round (``rounds`` excluded, so a longer run reuses a shorter one's rounds).

    The digest of the loop's code, the fine-tuning and the sampling code is part of it, as in the
    engine's keys, so a changed loop or sampler does not reuse rounds it did not produce.
    """
    fixed = cfg.fixed_verifier or cfg.model
    return digest({
        "code": source_digest(*engine.SAMPLING_CODE, "gvlib.iterate", "gvlib.finetune"),
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("rounds", "isolate", "backend", "backend_options")},
        "backend": cfg.backend_kind,
        **({"backend_options": cfg.backend_options} if cfg.backend_options else {}),
        "model": fingerprint(resolve_model_dir(cfg.model)),
        "fixed_verifier": fingerprint(resolve_model_dir(fixed)) if cfg.verifier == "fixed" else None,
        "task": task.name, "eval": [e.id for e in task.examples],
        "train": None if train_task is None else [e.id for e in train_task.examples],
    })[:20]


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None  # absent, or (never written by us, but) unreadable: the round is redone


def _next_ref(run_dir: Path, t: int, info: dict | None, previous: ModelRef) -> ModelRef:
    """f_{t+1} as recorded in round t's metrics (paths relative to the run directory)."""
    if not info or not info.get("adapter"):
        return previous  # nothing was kept: f_{t+1} = f_t
    merged = info.get("merged")
    return ModelRef(base=previous.base, adapter=str(run_dir / info["adapter"]),
                    merged=str(run_dir / merged) if merged else None, name=f"f{t + 1}", lora_id=t + 1)


def run_iterations(task: Task, config: IterationConfig, *, train_task: Task | None = None,
                   run_dir: str | Path | None = None, cache=engine.DEFAULT,
                   on_round: Callable[[int, dict], None] | None = None,
                   before_round: Callable[[int, ModelRef], None] | None = None) -> IterationRun:
    """Run (or resume) rounds 0 … ``config.rounds`` of self-improvement of ``config.model`` on ``task``.

    task        the evaluation prompts (``task.examples``)
    train_task  the training prompts; None trains on the evaluation prompts themselves (see module doc)
    run_dir     where rounds are kept (default: ``<cache>/iterate/<key of everything but rounds>``)
    cache       the engine's sample/verification cache (``None``: no caching; resumption still works
                through the round files)
    on_round    called with (t, metrics) after each round finishes (or is read back)
    before_round  called with (t, f_t) before round t runs (not when it is read back): :mod:`gvlib.launch`
                computes the round's samples and verdicts there, in worker processes, into the cache
    """
    if not task.examples:
        raise ValueError(f"task {task.name!r} has no examples to evaluate on")
    if train_task is not None and not train_task.examples:
        raise ValueError(f"train_task {train_task.name!r} has no examples to train on")
    cfg = config
    run_dir = Path(run_dir) if run_dir is not None else cache_root() / "iterate" / _run_key(cfg, task, train_task)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / "config.json", json.dumps({"config": asdict(cfg), "task": task.name,
                                                        "eval": [e.id for e in task.examples],
                                                        "train": None if train_task is None else
                                                        [e.id for e in train_task.examples]}, indent=2, default=str))
    tasks = {"eval": task} if train_task is None else {"eval": task, "train": train_task}
    ref = ModelRef(base=str(cfg.model))
    rounds: list[dict] = []
    for t in progress(range(cfg.rounds + 1), desc="self-improvement rounds"):
        round_dir = run_dir / f"round_{t:02d}"
        metrics_path = round_dir / "metrics.json"
        metrics = _read_json(metrics_path)
        final = t == cfg.rounds
        if metrics is None or (not final and metrics["next_model"] is None):
            if before_round is not None:
                before_round(t, ref)
            text = json.dumps(_run_round(t, ref, cfg, tasks, round_dir, run_dir, cache, final), indent=2)
            write_atomic(metrics_path, text)
            metrics = json.loads(text)  # exactly what a resumed run reads back
        rounds.append(metrics)
        if on_round is not None:
            on_round(t, metrics)
        if not final:
            ref = _next_ref(run_dir, t, metrics["next_model"], ref)
    return IterationRun(cfg, run_dir, rounds)


def _run_round(t: int, ref: ModelRef, cfg: IterationConfig, tasks: dict[str, Task], round_dir: Path,
               run_dir: Path, cache, final: bool) -> dict:
    """Round t: sample and verify with f_t, evaluate it and (unless ``final``) train f_{t+1}."""
    seconds = {}
    t0 = time.time()
    seed = cfg.seed + t
    sampled = run_stage(_sample_stage, ref, cfg, tasks, seed, cache, isolate=cfg.isolated)
    gens = {split: g for split, (g, _) in sampled.items()}
    seconds["sample_and_self_verify"] = time.time() - t0
    vers = None  # gold: the true utility is the verifier's score
    if cfg.verifier == "self":
        vers = {split: v for split, (_, v) in sampled.items()}
    elif cfg.verifier == "fixed":
        t0 = time.time()
        vers = run_stage(_fixed_verify_stage, cfg.fixed_verifier or cfg.model, cfg, tasks, gens, seed, cache,
                         isolate=cfg.isolated)
        seconds["fixed_verify"] = time.time() - t0
    scores = {split: v.scores for split, v in vers.items()} if vers else {split: g.u for split, g in gens.items()}
    ev = gens["eval"]
    metrics = {"round": t, "model": asdict(ref), "verifier": cfg.verifier, "trained": False,
               **round_metrics(tasks["eval"], ev.completions, ev.u, scores["eval"], cfg),
               "verification": None if vers is None else {"unparseable_rate": vers["eval"].unparseable_rate,
                                                          "truncation_rate": vers["eval"].truncation_rate},
               "filter": None, "train": None, "next_model": None}
    if not final:
        split = "train" if "train" in tasks else "eval"
        tr = gens[split]
        w = cfg.filter(scores[split])
        metrics["filter"] = {"prompts": split, **_filter_summary(tr.u, w)}
        pairs = [(prompt, c) for prompt, cs, ws in zip(tr.prompts, tr.completions, w)
                 for c, keep in zip(cs, ws) if keep]
        write_atomic(round_dir / "kept.json", json.dumps(pairs))
        if pairs:
            t0 = time.time()
            adapter, merged = round_dir / "adapter", round_dir / "merged"
            metrics["train"] = run_stage(_train_stage, ref, pairs, str(adapter),
                                         None if cfg.backend_kind == "vllm" else str(merged), cfg, seed,
                                         isolate=cfg.isolated)
            seconds["train"] = time.time() - t0
            metrics["trained"] = True
            metrics["next_model"] = {"adapter": adapter.relative_to(run_dir).as_posix(),
                                     "merged": None if cfg.backend_kind == "vllm" else merged.relative_to(run_dir).as_posix()}
        else:
            metrics["next_model"] = {"adapter": None, "merged": None}  # nothing kept: f_{t+1} = f_t
    metrics["seconds"] = seconds
    return metrics


# -- the claim ---------------------------------------------------------------------------------------
def claim_check(run: IterationRun, *, line: float = SATURATION_GAP, n_boot: int = 2000, seed: int = 0) -> dict:
    """The paper's two claims about the loop (§5), computed from ``run``'s numbers.

    saturation: the first round t >= 1 whose gap is below ``line`` (the paper: after 2-3 rounds); it only
                counts as saturation when round 0's gap was at or above the line (else there was no gap
                to close);
    diversity:  from round 0 to the last, pass@1 rises while pass@n falls (the paper: pass@k rises for
                k <= 2-4 and falls for k >= 8). A change counts only when its 95% paired bootstrap CI over
                prompts excludes 0; each change is reported as [change, low, high].
    """
    gaps = run.series("gap")
    starts_above = gaps[0] >= line
    below = [t for t, g in enumerate(gaps) if t >= 1 and g < line]
    curve = run.pass_at_k()
    first, last = min(curve), max(curve)
    change = {}
    for k in (first, last):
        per_prompt = [np.asarray(r["pass_at_k_per_prompt"][str(k)]) for r in (run.rounds[0], run.rounds[-1])]
        delta = per_prompt[1] - per_prompt[0]
        change[k] = [float(delta.mean()), *bootstrap_ci(np.mean, delta, n_boot=n_boot, seed=seed)]
    rises, falls = change[first][1] > 0, change[last][2] < 0
    return {
        "saturation_line": line,
        "gap_by_round": gaps,
        "starts_above_line": bool(starts_above),
        "saturation_round": below[0] if below else None,
        "saturates_within_3_rounds": bool(starts_above and below and below[0] <= 3),
        f"pass@{first}_by_round": curve[first],
        f"pass@{last}_by_round": curve[last],
        f"pass@{first}_change": change[first],
        f"pass@{last}_change": change[last],
        f"pass@{first}_rises": bool(rises),
        f"pass@{last}_falls": bool(falls),
        "diversity_drop": bool(rises and falls),
        "distinct_answers_by_round": run.series("distinct_answers"),
    }
