"""[paper scale] A claim notebook's model calls on disjoint GPU sets of one node, sharded over processes; then the notebook.

    python -m gvlib.launch notebooks/<claim>.ipynb -f notebooks/params/<claim>/smoke.yaml --gpus 0-7
        [-p n_prompts 64] [--replicas 4] [--gpu h100-80gb] [--data-dir /data] [--output out/<claim>.ipynb]

``<claim>`` is scaling, cross_verification, unimprovable or iterative.

1. Reads the notebook's parameters as :mod:`gvlib.plan` does (its ``parameters`` cell, the preset, ``-p``).
2. Gives each model a GPU set of ``tensor_parallel_size × pipeline_parallel_size`` GPUs, the sizes of its
   ``backend_options`` (the notebook loads it with them, and they key the cache); with real models
   :func:`gvlib.plan.plan` must agree (its tensor-parallel size, its memory check, the LoRA SFT's), else it
   stops early.
3. Splits a task's problems into shards on the engine's chunk boundaries (the backend's ``chunk_size``:
   64 problems with ``transformers``, 2,048 with vLLM, or the ``chunk_size`` backend option; a multiple
   of every model's chunk when several models meet on the same shards), at most ``--replicas`` of them
   (default: as many GPU sets of the smallest model's size as ``--gpus`` holds).
4. Runs every (model, shard) in its own process with ``CUDA_VISIBLE_DEVICES`` set to its GPU set, as many
   at once as the GPUs allow, largest sets first; each runs one of the notebook's own stages on its shard,
   which writes the disk cache; its log goes to ``<cache>/launch/<notebook>/<job>.log``.
5. Executes the notebook with papermill: it finds every sample and verdict in the cache.

The stages, per notebook (the paper's sections):

* scaling (§4.1): each model generates and self-verifies with every method (:func:`gvlib.claims.run_grid`);
* cross_verification (§4.2): the same, then each model verifies every other model's samples of the same
  shard (run_grid's second phase; the samples come back from the first phase's workers);
* unimprovable (§4.3): each model generates and self-verifies on the factual, reasoning and Sudoku tasks,
  and with the other CoT method on the factual task (the chapter's exercise);
* iterative (§5): rounds are sequential, because f_{t+1} is trained on round t's verdicts. Within a round
  f_t's sampling and self-verification, then the fixed verifier's verdicts, are sharded over workers
  (:func:`gvlib.iterate.run_iterations`'s ``before_round``); the round then runs in this process, which
  reads them from the cache (with vLLM it still loads each model once per round to do so), filters and
  trains f_{t+1} on every GPU of ``--gpus`` (data-parallel LoRA SFT, :func:`gvlib.finetune.train_adapter`).
  The notebook's runs (one per verifier, then its last section's run on the other prompts) go one after
  another, as in the notebook; their round-0 samples are shared through the cache.

Why the shards merge into what one process writes: a cache entry is keyed by its chunk's exact prompts
and settings, not by its position (:mod:`gvlib.cache`), and a shard starts on a multiple of the chunk
size, so its chunks are exactly the chunks one process makes, under the same keys.
"""
from __future__ import annotations

import argparse
import math
import os
import pickle
import subprocess
import sys
import time
from copy import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

NOTEBOOKS = ("scaling", "cross_verification", "unimprovable", "iterative")


@dataclass(frozen=True)
class Job:
    """One worker process: ``fn(*args)`` (a module-level function) on ``gpus`` GPUs, for ``model``'s
    problems ``start:stop`` (shard ``shard`` of ``shards``); its result comes back pickled."""

    label: str
    model: str
    shard: int
    shards: int
    start: int
    stop: int
    gpus: int
    fn: Callable = field(repr=False, compare=False)
    args: tuple = field(repr=False, compare=False)


def parse_gpus(text: str) -> list[str]:
    """``"0-7"`` or ``"0,1,4-5"`` → GPU ids, in order, each once."""
    out: list[str] = []
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()) or (hi and int(hi) < int(lo)):
            raise SystemExit(f"gvlib.launch: --gpus {text!r}: give ids and ranges such as 0-7 or 0,1,4-5")
        out += [str(i) for i in range(int(lo), int(hi or lo) + 1) if str(i) not in out]
    return out


def shard_bounds(n_items: int, chunk: int, shards: int) -> list[tuple[int, int]]:
    """Up to ``shards`` consecutive ``(start, stop)`` ranges of ``n_items`` that start on multiples of
    ``chunk`` (whole chunks each, the chunk count split as evenly as possible); none empty."""
    chunks = math.ceil(n_items / chunk)
    k = max(1, min(shards, chunks))
    cuts = [i * chunks // k * chunk for i in range(k)] + [n_items]
    return [(a, min(b, n_items)) for a, b in zip(cuts, cuts[1:])]


def gpus_per_model(model_path: str, options: dict) -> int:
    """The GPUs one engine of the model spans: its tensor- × pipeline-parallel sizes."""
    from gvlib.backends import options_for

    o = options_for(model_path, options)
    return int(o.get("tensor_parallel_size", 1)) * int(o.get("pipeline_parallel_size", 1))


def check_plan(notebook: str, params: dict, gpu: str, data_dir: str | None, gpus: int = 8) -> None:
    """With real models: stop unless :func:`gvlib.plan.plan` fits every model at the preset's parallel sizes
    and the LoRA SFT on at most ``gpus`` GPUs (iterative)."""
    from gvlib import plan

    if params.get("organism") is not None:
        return  # the organism's models are tiny: one device each
    r = plan.plan(notebook, params, gpu=gpu, data_dir=data_dir)
    for name, m in r["models"].items():
        have = gpus_per_model(name, params.get("backend_options"))
        if m["tp"] != have or not m["fits"]:
            raise SystemExit(f"gvlib.launch: gvlib.plan puts {name} on {m['tp']} {gpu} GPUs "
                             f"({'fits' if m['fits'] else 'does NOT fit'}); the preset gives it {have}: set "
                             f"backend_options {name}: {{tensor_parallel_size: {m['tp']}}} (see python -m gvlib.plan)")
    for s in r["sft"]:
        if not s["fits"] or s["gpus"] > gpus:
            raise SystemExit(f"gvlib.launch: gvlib.plan finds no way to fit the LoRA SFT of {s['model']} on "
                             f"{gpus} {gpu} GPUs (it needs {s['gpus']}, {s['memory_gb']:.0f} GB each)")


def part(task, start: int, stop: int):
    """``task`` restricted to its problems ``start:stop``."""
    out = copy(task)
    out.examples = task.examples[start:stop]
    return out


class Launcher:
    """Shards of a notebook's stages as :class:`Job` lists, and their runs (one list at a time)."""

    def __init__(self, params: dict, gpus: list[str], logs: Path, *, replicas: int | None = None, poll: float = 1.0):
        self.params, self.gpus, self.logs, self.replicas, self.poll = params, gpus, logs, replicas, poll
        self.done: list[Job] = []

    def need(self, model_path: str) -> int:
        need = gpus_per_model(model_path, self.params["backend_options"])
        if need > len(self.gpus):
            raise SystemExit(f"gvlib.launch: {model_path} needs {need} GPUs; --gpus gives {len(self.gpus)}")
        return need

    def bounds(self, task, model_paths: list[str], backend: str | None = None) -> list[tuple[int, int]]:
        """Shards of ``task`` on the chunk boundaries of every model in ``model_paths`` (their chunks'
        least common multiple), as many as GPU sets of the smallest model's size fit in ``--gpus``."""
        from gvlib.backends import backend_class, chunk_size, options_for

        cls = backend_class(backend or self.params["backend"])
        chunk = math.lcm(*(chunk_size(cls, options_for(m, self.params["backend_options"]).get("chunk_size"))
                           for m in model_paths))
        sets = len(self.gpus) // min(self.need(m) for m in model_paths)
        return shard_bounds(len(task), chunk, self.replicas or sets)

    def jobs(self, label: str, model: str, model_path: str, bounds: list[tuple[int, int]],
             make: Callable[[int, int, int], tuple[Callable, tuple]]) -> list[Job]:
        """One job per shard: ``make(i, start, stop)`` gives the worker's function and arguments."""
        need = self.need(model_path)
        return [Job(f"{label}.{i + 1}of{len(bounds)}", model, i, len(bounds), a, b, need, *make(i, a, b))
                for i, (a, b) in enumerate(bounds)]

    def run(self, jobs: list[Job]) -> dict[str, Any]:
        results = run_jobs(jobs, self.gpus, self.logs, poll=self.poll)
        self.done += jobs
        return results


def _grid_kw(p: dict) -> dict:
    """run_grid's settings as the notebooks pass them."""
    return dict(n=p["n_samples"], temperature=p["temperature"], top_p=p["top_p"], seed=p["seed"],
                backend=p["backend"], backend_options=p["backend_options"],
                tournament_rounds=p.get("tournament_rounds", 1), threads=p["cpu_threads"])


def self_verified(model, task, methods: list[str], kw: dict):
    """In a worker: run_grid's first stage (generate, then self-verify with ``methods``) for one model."""
    from gvlib import claims

    return claims.run_grid([model], task, methods, **kw).generations[model.name]


def _self_jobs(launcher: Launcher, models, task, methods: list[str], tag: str = "") -> tuple[list[Job], list]:
    bounds = launcher.bounds(task, [m.path for m in models])
    kw = _grid_kw(launcher.params)
    jobs = [j for m in models for j in launcher.jobs(f"{tag}{m.name}", m.name, m.path, bounds,
                                                      lambda i, a, b, m=m: (self_verified, (m, part(task, a, b), methods, kw)))]
    return jobs, bounds


def _scaling(launcher: Launcher) -> None:
    from gvlib import claims
    from gvlib.tasks import load

    p = launcher.params
    run_models = claims.resolve_models(p["organism"], p["models"], p["flops"])  # trains the organism once
    task = load(p["task"], limit=p["n_prompts"], data_dir=p["data_dir"], family=run_models.family)
    launcher.run(_self_jobs(launcher, run_models.models, task, p["methods"])[0])


def _cross_verification(launcher: Launcher) -> None:
    from gvlib import claims
    from gvlib.tasks import load

    p = launcher.params
    run_models = claims.resolve_models(p["organism"], p["models"])
    task = load(p["task"], limit=p["n_prompts"], data_dir=p["data_dir"], family=run_models.family)
    jobs, bounds = _self_jobs(launcher, run_models.models, task, p["methods"])
    samples = launcher.run(jobs)
    kw = _grid_kw(p)
    st = claims.StageSettings(task=task, methods=tuple(p["methods"]), n=kw["n"], temperature=kw["temperature"],
                          top_p=kw["top_p"], seed=kw["seed"], backend=kw["backend"], options=dict(kw["backend_options"]),
                          tournament_rounds=kw["tournament_rounds"], threads=kw["threads"])
    by_shard = {(j.model, j.shard): samples[j.label] for j in jobs}

    def verify_others(v):
        def make(i, a, b):
            others = {g.name: by_shard[(g.name, i)] for g in run_models.models if g.name != v.name}
            return claims.model_stage, (v, replace(st, task=part(task, a, b)), others)
        return make

    launcher.run([j for v in run_models.models
                  for j in launcher.jobs(f"{v.name}-verifies-others", v.name, v.path, bounds, verify_others(v))])


def _unimprovable(launcher: Launcher) -> None:
    from gvlib import claims
    from gvlib.tasks import load
    from gvlib.plan import exercise_method

    p = launcher.params
    run_models = claims.resolve_models(p["organism"], p["models"])
    runs = [(p["factual_task"], p["method"]), (p["reasoning_task"], p["method"]),
            (p["sudoku_task"], p["sudoku_method"])]
    factual = load(p["factual_task"], limit=p["n_prompts"], data_dir=p["data_dir"], family=run_models.family)
    try:  # the notebook's exercise: the factual samples verified with the other CoT method too
        factual.verifier_prompt(exercise_method(p["method"]), factual.examples[0], "", "")
        runs.append((p["factual_task"], exercise_method(p["method"])))
    except ValueError as e:  # a task without that verifier prompt (NQ-open: MC only)
        print(f"gvlib.launch: the exercise's verification cannot run on {p['factual_task']} ({e})", flush=True)
    methods: dict[str, list[str]] = {}
    for name, method in runs:
        methods.setdefault(name, [])
        if method not in methods[name]:
            methods[name].append(method)
    jobs = []
    for name, ms in methods.items():
        task = load(name, limit=p["n_prompts"], data_dir=p["data_dir"], family=run_models.family)
        jobs += _self_jobs(launcher, run_models.models, task, ms, tag=f"{name.replace('/', '_')}-")[0]
    launcher.run(jobs)


def with_threads(threads: int | None, fn: Callable, *args):
    """In a worker: ``fn(*args)`` with ``threads`` torch CPU threads, as the notebook runs its stages."""
    from gvlib.threads import torch_threads

    with torch_threads(threads):
        return fn(*args)


def iterative_runs(p: dict) -> list[tuple]:
    """The notebook's :func:`gvlib.iterate.run_iterations` calls as (evaluation task, config, train task):
    one per verifier, then its last section's run of the main config on the prompts it did not train on."""
    from gvlib import claims
    from gvlib.tasks import load
    from gvlib.finetune import LoraSettings
    from gvlib.iterate import IterationConfig

    if p["organism"] is not None:
        family = claims.resolve_models(p["organism"])
        members = {m.name: m.path for m in family.models}
        model_path = members[p["model"]]
        fixed_path = members[p["fixed_verifier"]] if p["fixed_verifier"] else None
    else:
        family = claims.resolve_models(None, [p["model"]])
        model_path, fixed_path = p["model"], p["fixed_verifier"] or None
    eval_task = load(p["task"], limit=p["n_prompts"], data_dir=p["data_dir"], family=family.family)
    split_task = load(p["task"], split="train", limit=p["n_train_prompts"], data_dir=p["data_dir"], family=family.family)
    train_task = split_task if p["train_prompts"] == "train" else None
    lora = LoraSettings(rank=p["lora_rank"], alpha=p["lora_alpha"], lr=p["lora_lr"], steps=p["lora_steps"],
                        batch_size=p["lora_batch_size"])
    configs = {v: IterationConfig(
        model=str(model_path), rounds=p["rounds"], n=p["n_samples"], method=p["method"],
        tau=None if p["quantile"] is not None else p["tau"], quantile=p["quantile"], verifier=v,
        fixed_verifier=str(fixed_path) if v == "fixed" and fixed_path else None, temperature=p["temperature"],
        top_p=p["top_p"], lora=lora, seed=p["seed"], backend=p["backend"], backend_options=p["backend_options"])
        for v in p["verifiers"]}
    main = configs["self"] if "self" in configs else next(iter(configs.values()))
    return [(eval_task, c, train_task) for c in configs.values()] + [
        (eval_task, main, None if train_task is not None else split_task)]


def _iterative(launcher: Launcher) -> None:
    from gvlib import engine, iterate
    from gvlib.threads import torch_threads

    p = launcher.params
    for r, (eval_task, cfg, train_task) in enumerate(iterative_runs(p)):
        tasks = {"eval": eval_task, **({"train": train_task} if train_task is not None else {})}
        fixed = (cfg.fixed_verifier or cfg.model) if cfg.verifier == "fixed" else None

        def before_round(t: int, ref, r=r, cfg=cfg, tasks=tasks, fixed=fixed) -> None:
            seed = cfg.seed + t
            plans = {split: launcher.bounds(task, [cfg.model] + ([fixed] if fixed else []), cfg.backend_kind)
                     for split, task in tasks.items()}
            sample = {split: launcher.jobs(f"run{r}-{cfg.verifier}.round{t}.{split}.{ref.name}", ref.name, cfg.model, b,
                                           lambda i, a, z, task=tasks[split], split=split: (with_threads, (
                                               p["cpu_threads"], iterate._sample_stage, ref, cfg,
                                               {split: part(task, a, z)}, seed, engine.DEFAULT)))
                      for split, b in plans.items()}
            out = launcher.run([j for jobs in sample.values() for j in jobs])
            if fixed is None:
                return
            launcher.run([j for split, b in plans.items() for j in launcher.jobs(
                f"run{r}-fixed.round{t}.{split}", fixed, fixed, b,
                lambda i, a, z, task=tasks[split], split=split: (with_threads, (
                    p["cpu_threads"], iterate._fixed_verify_stage, fixed, cfg, {split: part(task, a, z)},
                    {split: out[sample[split][i].label][split][0]}, seed, engine.DEFAULT)))])

        with torch_threads(p["cpu_threads"]):
            iterate.run_iterations(eval_task, cfg, train_task=train_task, before_round=before_round)


STAGES = {"scaling": _scaling, "cross_verification": _cross_verification, "unimprovable": _unimprovable,
          "iterative": _iterative}


def run(notebook: str, params: dict, gpus: list[str], logs: Path, *, replicas: int | None = None,
        poll: float = 1.0) -> list[Job]:
    """Every model call of ``notebook`` with (validated) ``params``, sharded over workers on ``gpus``
    (module doc); the jobs that ran."""
    if notebook not in STAGES:
        raise SystemExit(f"gvlib.launch runs {', '.join(NOTEBOOKS)}; run {notebook!r} with papermill")
    launcher = Launcher(params, gpus, logs, replicas=replicas, poll=poll)
    STAGES[notebook](launcher)
    return launcher.done


def run_jobs(jobs: list[Job], gpus: list[str], logs: Path, *, poll: float = 1.0) -> dict[str, Any]:
    """Run ``jobs`` as worker processes on disjoint subsets of ``gpus``; each job's result by label.

    A failed worker stops the others and the launch (its log named)."""
    logs.mkdir(parents=True, exist_ok=True)
    pending = sorted(jobs, key=lambda j: -j.gpus)  # the largest GPU sets first: they are the hardest to place
    free, running, results = list(gpus), {}, {}
    t0 = time.time()
    try:
        while pending or running:
            for job in list(pending):
                if job.gpus > len(free):
                    continue
                mine, free = free[:job.gpus], free[job.gpus:]
                spec, out = logs / f"{job.label}.job.pkl", logs / f"{job.label}.out.pkl"
                spec.write_bytes(pickle.dumps(job))
                out.unlink(missing_ok=True)
                log = open(logs / f"{job.label}.log", "w")
                env = {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(mine)}
                proc = subprocess.Popen([sys.executable, "-m", "gvlib.launch", "--worker", str(spec), str(out)],
                                        stdout=log, stderr=subprocess.STDOUT, env=env)
                running[proc] = (job, mine, log, time.time())
                pending.remove(job)
                print(f"[{time.time() - t0:7.0f} s] {job.label}: problems {job.start}-{job.stop - 1} on GPUs "
                      f"{','.join(mine)} (log {log.name})", flush=True)
            time.sleep(poll)
            for proc in [p for p in running if p.poll() is not None]:
                job, mine, log, started = running.pop(proc)
                log.close()
                free = sorted(free + mine, key=gpus.index)
                if proc.returncode != 0:
                    raise SystemExit(f"gvlib.launch: {job.label} failed (exit {proc.returncode}); see {log.name}")
                results[job.label] = pickle.loads((logs / f"{job.label}.out.pkl").read_bytes())
                print(f"[{time.time() - t0:7.0f} s] {job.label}: done in {time.time() - started:.0f} s "
                      f"({len(pending)} waiting, {len(running)} running)", flush=True)
    finally:
        for proc, (_, _, log, _) in running.items():
            proc.terminate()
            proc.wait()
            log.close()
    return results


def _work(spec: Path, out: Path) -> None:
    """A worker: run the pickled job, write its result (atomically: a result file is a finished job)."""
    job: Job = pickle.loads(spec.read_bytes())
    result = job.fn(*job.args)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(pickle.dumps(result))
    os.replace(tmp, out)


def execute(notebook: Path, params: dict, output: Path) -> None:
    """The notebook with ``params`` through papermill (it reads the workers' samples from the cache)."""
    import papermill

    from gvlib.paths import REPO_ROOT

    output.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(str(notebook), str(output), parameters=params, kernel_name="python3",
                               progress_bar=False, log_output=True, cwd=str(REPO_ROOT))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        _work(Path(argv[1]), Path(argv[2]))
        return 0
    from gvlib import plan
    from gvlib.params import validate
    from gvlib.paths import cache_root

    ap = argparse.ArgumentParser(prog="python -m gvlib.launch", description=__doc__.split("\n")[0])
    ap.add_argument("notebook", type=Path)
    ap.add_argument("-f", "--preset", type=Path)
    ap.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    ap.add_argument("--gpus", required=True, help="GPU ids of this node to use, e.g. 0-7 or 0,1,4-5")
    ap.add_argument("--replicas", type=int, help="at most this many shards of a task (default: as many GPU "
                                                 "sets of the smallest model's size as --gpus holds)")
    ap.add_argument("--gpu", choices=sorted(plan.GPUS), default="h100-80gb", help="the card, for the plan's check")
    ap.add_argument("--data-dir", help="as the notebook's data_dir (the real tasks' JSONL files)")
    ap.add_argument("--output", type=Path, help="the executed notebook (default: out/<notebook>.ipynb)")
    args = ap.parse_args(argv)
    if args.replicas is not None and args.replicas < 1:
        raise SystemExit(f"gvlib.launch: --replicas must be >= 1, got {args.replicas}")
    notebook = args.notebook.stem
    raw = plan.notebook_params(args.notebook, args.preset, args.param)
    if args.data_dir:
        raw["data_dir"] = args.data_dir
    params = validate(notebook, raw)
    gpus = parse_gpus(args.gpus)
    check_plan(notebook, params, args.gpu, params["data_dir"], len(gpus))
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)  # this process's own stages (SFT) and the notebook's
    t0 = time.time()
    jobs = run(notebook, params, gpus, cache_root() / "launch" / notebook, replicas=args.replicas)
    print(f"{len(jobs)} workers done in {time.time() - t0:.0f} s; executing the notebook", flush=True)
    execute(args.notebook, params, args.output or Path("out") / f"{notebook}.ipynb")
    return 0


if __name__ == "__main__":
    sys.exit(main())
