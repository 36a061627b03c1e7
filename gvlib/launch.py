"""Several models, or replicas of one, at once on disjoint GPU sets of one node; then the notebook.

    python -m gvlib.launch notebooks/scaling.ipynb -f notebooks/params/scaling/smoke.yaml --gpus 0-7
        [-p n_prompts 64] [--replicas 4] [--gpu h100-80gb] [--data-dir /data] [--output out/scaling.ipynb]

1. Reads the notebook's parameters as :mod:`gvlib.plan` does (its ``parameters`` cell, the preset, ``-p``).
2. Gives each model a GPU set of ``tensor_parallel_size × pipeline_parallel_size`` GPUs, the sizes of its
   ``backend_options`` (the notebook loads it with them, and they key the cache); with real models
   :func:`gvlib.plan.plan` must agree (its tensor-parallel size, its memory check), else it stops early.
3. Splits each model's prompts into shards on the engine's chunk boundaries (the backend's ``chunk_size``:
   64 problems with ``transformers``, 2,048 with vLLM, or the ``chunk_size`` backend option), at most
   ``--replicas`` of them (default: as many GPU sets of that size as ``--gpus`` holds).
4. Runs every (model, shard) in its own process with ``CUDA_VISIBLE_DEVICES`` set to its GPU set, as many
   at once as the GPUs allow, largest sets first. Each runs the notebook's own stage on its shard,
   :func:`gvlib.claims.run_grid` (generate, then self-verify with every method: paper §3), which writes
   the disk cache; its log goes to ``<cache>/launch/<notebook>/<model>.<i>of<k>.log``.
5. Executes the notebook with papermill: it finds every sample and verdict in the cache.

Why the shards merge into what one process writes: a cache entry is keyed by its chunk's exact prompts
and settings, not by its position (:mod:`gvlib.cache`), and a shard starts on a multiple of the chunk
size, so its chunks are exactly the chunks one process makes, under the same keys.

Supported: the scaling notebook (paper §4.1). Cross-verification's second phase (every model verifying
every other model's samples) and the other notebooks run in the notebook itself.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from copy import copy
from dataclasses import asdict, dataclass
from pathlib import Path

NOTEBOOKS = ("scaling",)


@dataclass(frozen=True)
class Job:
    """One process: ``model``'s problems ``start:stop`` (shard ``shard`` of ``shards``) on ``gpus`` GPUs."""

    model: str
    shard: int
    shards: int
    start: int
    stop: int
    gpus: int

    @property
    def label(self) -> str:
        return f"{self.model}.{self.shard + 1}of{self.shards}"


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


def check_plan(notebook: str, params: dict, gpu: str, data_dir: str | None) -> None:
    """With real models: stop unless :func:`gvlib.plan.plan` fits every model at the preset's parallel sizes."""
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


def prepare(notebook: str, params: dict, gpus: list[str], replicas: int | None = None) -> list[Job]:
    """The jobs of ``notebook`` with (validated) ``params`` on ``gpus``: per model, its shards."""
    from gvlib import claims
    from gvlib.backends import backend_class, chunk_size, options_for
    from gvlib.tasks import load

    if notebook not in NOTEBOOKS:
        raise SystemExit(f"gvlib.launch runs {', '.join(NOTEBOOKS)}; run {notebook!r} with papermill")
    run_models = claims.resolve_models(params["organism"], params["models"], params["flops"])  # trains the organism once
    task = load(params["task"], limit=params["n_prompts"], data_dir=params["data_dir"], family=run_models.family)
    jobs = []
    for m in run_models.models:
        need = gpus_per_model(m.path, params["backend_options"])
        if need > len(gpus):
            raise SystemExit(f"gvlib.launch: {m.name} needs {need} GPUs; --gpus gives {len(gpus)}")
        chunk = chunk_size(backend_class(params["backend"]),
                           options_for(m.path, params["backend_options"]).get("chunk_size"))
        bounds = shard_bounds(len(task), chunk, replicas or len(gpus) // need)
        jobs += [Job(m.name, i, len(bounds), a, b, need) for i, (a, b) in enumerate(bounds)]
    return sorted(jobs, key=lambda j: -j.gpus)  # the largest GPU sets first: they are the hardest to place


def run_shard(params: dict, job: Job) -> None:
    """In a worker: the notebook's stage (:func:`gvlib.claims.run_grid`) for ``job``'s model on its problems."""
    from gvlib import claims
    from gvlib.tasks import load

    run_models = claims.resolve_models(params["organism"], params["models"], params["flops"])
    model = next(m for m in run_models.models if m.name == job.model)
    task = load(params["task"], limit=params["n_prompts"], data_dir=params["data_dir"], family=run_models.family)
    part = copy(task)
    part.examples = task.examples[job.start:job.stop]
    claims.run_grid([model], part, params["methods"], n=params["n_samples"], temperature=params["temperature"],
                    top_p=params["top_p"], seed=params["seed"], backend=params["backend"],
                    backend_options=params["backend_options"], tournament_rounds=params["tournament_rounds"],
                    threads=params["cpu_threads"])


def run_jobs(jobs: list[Job], params: dict, gpus: list[str], logs: Path, *, poll: float = 1.0) -> dict[str, float]:
    """Run ``jobs`` as worker processes on disjoint subsets of ``gpus``; the seconds each took.

    A failed worker stops the others and the launch (its log named)."""
    logs.mkdir(parents=True, exist_ok=True)
    spec = logs / "params.json"
    spec.write_text(json.dumps(params))
    pending, free, running, took = list(jobs), list(gpus), {}, {}
    t0 = time.time()
    try:
        while pending or running:
            for job in list(pending):
                if job.gpus > len(free):
                    continue
                mine, free = free[:job.gpus], free[job.gpus:]
                log = open(logs / f"{job.label}.log", "w")
                env = {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(mine)}
                proc = subprocess.Popen([sys.executable, "-m", "gvlib.launch", "--worker", str(spec),
                                         json.dumps(asdict(job))], stdout=log, stderr=subprocess.STDOUT, env=env)
                running[proc] = (job, mine, log, time.time())
                pending.remove(job)
                print(f"[{time.time() - t0:7.0f} s] {job.label}: problems {job.start}-{job.stop - 1} on GPUs "
                      f"{','.join(mine)} (log {log.name})", flush=True)
            time.sleep(poll)
            for proc in [p for p in running if p.poll() is not None]:
                job, mine, log, started = running.pop(proc)
                log.close()
                free = sorted(free + mine, key=gpus.index)
                took[job.label] = time.time() - started
                if proc.returncode != 0:
                    raise SystemExit(f"gvlib.launch: {job.label} failed (exit {proc.returncode}); see {log.name}")
                print(f"[{time.time() - t0:7.0f} s] {job.label}: done in {took[job.label]:.0f} s "
                      f"({len(pending)} waiting, {len(running)} running)", flush=True)
    finally:
        for proc, (_, _, log, _) in running.items():
            proc.terminate()
            proc.wait()
            log.close()
    return took


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
        run_shard(json.loads(Path(argv[1]).read_text()), Job(**json.loads(argv[2])))
        return 0
    from gvlib import plan
    from gvlib.params import validate
    from gvlib.paths import cache_root

    ap = argparse.ArgumentParser(prog="python -m gvlib.launch", description=__doc__.split("\n")[0])
    ap.add_argument("notebook", type=Path)
    ap.add_argument("-f", "--preset", type=Path)
    ap.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    ap.add_argument("--gpus", required=True, help="GPU ids of this node to use, e.g. 0-7 or 0,1,4-5")
    ap.add_argument("--replicas", type=int, help="at most this many shards per model (default: as many GPU "
                                                 "sets of its size as --gpus holds)")
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
    check_plan(notebook, params, args.gpu, params["data_dir"])
    jobs = prepare(notebook, params, gpus, args.replicas)
    t0 = time.time()
    run_jobs(jobs, params, gpus, cache_root() / "launch" / notebook)
    print(f"{len(jobs)} workers done in {time.time() - t0:.0f} s; executing the notebook", flush=True)
    execute(args.notebook, params, args.output or Path("out") / f"{notebook}.ipynb")
    return 0


if __name__ == "__main__":
    sys.exit(main())
