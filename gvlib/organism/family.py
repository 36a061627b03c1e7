"""[organism] Train (or reuse) a preset's family of models: ``ensure_family(preset) -> Family``.

Layout of a family directory::

    seed/candidates.json    labelled samples of the seed model (the verification candidates), keyed
    <model>/                save_pretrained model + tokenizer + manifest.json, one per member
    family.json             the family manifest (world, preset, members), written last

Caching and resume: a member counts as finished only when ``<model>/manifest.json`` exists with the
member's key (hash of the preset's config and of the training code, ``presets.code_version``);
anything else (a stopped run, a half-written or stale directory) is retrained. Models are written to a temp dir and moved into place
(:func:`gvlib.organism.train.save_atomic`). A file lock serialises concurrent builds of one directory.

Members train in parallel on as many worker processes as there are training threads, each taking the
next member, largest first, and training it on one thread: a tiny model uses a second thread poorly, so
two members on one thread each finish sooner than one after the other on two. The thread count changes a
member's floating-point sums, so a member retrained alone trains on one thread too, and is the same member
a whole family's build trains.
"""
from __future__ import annotations

import fcntl
import json
import pickle
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from queue import Queue
from typing import Callable

import torch
import transformers

from gvlib.atomic import write_atomic
from gvlib.organism.corpus import CandidatePool, Corpus
from gvlib.organism.presets import Preset, code_version, get_preset
from gvlib.organism.seed import seed_candidates
from gvlib.organism.tasks import make_task
from gvlib.organism.tokenizer import build_tokenizer
from gvlib.organism.train import build_model, eval_losses, param_counts, save_atomic, train_model
from gvlib.organism.world import TASKS, World, WorldConfig
from gvlib.paths import cache_root
from gvlib.threads import cpu_kernels, torch_threads, training_threads


@dataclass(frozen=True)
class ModelEntry:
    """One trained member, as the notebooks use it."""

    name: str
    path: Path
    params: int          # non-embedding parameters (the N of 6·N·D)
    params_total: int
    train_tokens: int    # D: real tokens trained on
    flops: float         # 6·N·D with N non-embedding
    manifest: dict = field(repr=False, compare=False)


@dataclass(frozen=True)
class Family:
    """A trained family: its directory, world and members, smallest first."""

    preset: str
    path: Path
    world: WorldConfig
    models: list[ModelEntry]
    trained_now: list[str] = field(default_factory=list)

    def model(self, name: str) -> ModelEntry:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(f"no model {name!r} in family {self.preset}: {[m.name for m in self.models]}")


def default_dir(preset: str) -> Path:
    """``$GVLIB_CACHE/organism/<preset>``, by default ``<repo>/.cache/gvlib/organism/<preset>``."""
    return cache_root() / "organism" / preset


def ensure_family(preset: str | Preset = "default", out: str | Path | None = None, *,
                  on_model_done: Callable[[ModelEntry], None] | None = None) -> Family:
    """Train every member of ``preset`` not already finished in ``out``, then return the family.

    ``on_model_done(entry)`` is called after each member is available (trained or reused).
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    out = Path(out) if out is not None else default_dir(preset.name)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with torch_threads(training_threads()):
            return _build(preset, out, on_model_done)


def _build(preset: Preset, out: Path, on_model_done) -> Family:
    for stale in out.glob(".tmp-*"):  # left by a stopped run (the lock excludes a live one)
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    _pools(preset, out)  # the seed stage runs (or is read back) once, before any member trains
    todo = [spec for spec in preset.models
            if (_read_manifest(out / spec.name) or {}).get("key") != preset.model_key(spec)]
    workers = min(len(todo), training_threads())
    finished: dict[str, dict] = {}
    entries: list[ModelEntry] = []

    def report_in_order(name: str, manifest: dict) -> None:
        finished[name] = manifest
        while len(entries) < len(preset.models) and preset.models[len(entries)].name in finished:
            spec = preset.models[len(entries)]
            m = finished[spec.name]
            entries.append(ModelEntry(spec.name, out / spec.name, m["params_non_embedding"], m["params_total"],
                                      m["train_tokens"], m["flops"], m))
            if on_model_done is not None:
                on_model_done(entries[-1])

    for spec in preset.models:
        if spec not in todo:
            report_in_order(spec.name, _read_manifest(out / spec.name))
    if workers > 1:  # one process per member, largest first, the cores split between them
        _train_in_processes(preset, out, todo, workers, report_in_order)
    else:
        for spec in todo:
            report_in_order(*_train_member(preset, out, spec))

    family = {
        "preset": preset.name, "key": preset.key(), "code_version": code_version(), "world": preset.world.to_dict(),
        "config": preset.to_dict(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "models": [{k: v for k, v in e.manifest.items() if k in _SUMMARY} | {"path": e.name} for e in entries],
    }
    write_atomic(out / "family.json", json.dumps(family, indent=1, sort_keys=True))
    return Family(preset.name, out, preset.world, entries, [s.name for s in todo])


def _train_in_processes(preset: Preset, out: Path, todo: list, workers: int, done: Callable[[str, dict], None]) -> None:
    """Train ``todo`` on ``workers`` worker processes (``python -m gvlib.organism --worker``), each taking the
    next member, largest first, when it has finished one; ``done(name, manifest)`` as each finishes.

    A worker is a fresh interpreter, not a ``multiprocessing`` pool, so the caller's script is never
    re-imported; it reads job files from its standard input, one per line, and answers each with a line
    :data:`_DONE` ``<name>``, so it imports torch and transformers once, not once per member (seconds of a
    core each time; the README's Speed section). A failed member stops the others and raises."""
    queue = sorted(todo, key=lambda s: s.hidden ** 2 * s.layers * s.steps, reverse=True)
    replies: Queue = Queue()
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(dir=out, prefix=".tmp-jobs-") as jobs:
        try:
            for i in range(min(workers, len(queue))):
                proc = subprocess.Popen([sys.executable, "-m", "gvlib.organism", "--worker"], text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                procs.append(proc)
                threading.Thread(target=_relay, args=(i, proc.stdout, replies), daemon=True).start()
            training: dict[int, str] = {}
            idle = list(range(len(procs)))
            while queue or training:
                while queue and idle:
                    i, spec = idle.pop(0), queue.pop(0)
                    job = Path(jobs) / f"{spec.name}.pkl"
                    job.write_bytes(pickle.dumps((preset, out, spec)))
                    procs[i].stdin.write(f"{job}\n")
                    procs[i].stdin.flush()
                    training[i] = spec.name
                i, name = replies.get()
                member = training.pop(i, None)
                if name is None or name != member:  # the worker exited
                    raise RuntimeError(f"training member {member!r} of {preset.name} failed (exit code "
                                       f"{procs[i].wait()}); its error is printed above")
                idle.append(i)
                done(name, _read_manifest(out / name))
            for proc in procs:
                proc.stdin.close()  # the worker's loop ends
                proc.wait()
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


#: The line with which a worker reports a finished member (followed by its name).
_DONE = "gvlib-organism-trained"


def _relay(i: int, stdout, replies: Queue) -> None:
    """Put ``(i, name)`` on ``replies`` for each member worker ``i`` reports trained, ``(i, None)`` when it
    exits; any other line it prints is passed on."""
    for line in stdout:
        if line.startswith(_DONE + " "):
            replies.put((i, line.split(" ", 1)[1].strip()))
        else:
            print(line, end="", flush=True)
    replies.put((i, None))


def worker() -> None:
    """The worker side of :func:`_train_in_processes`: train the member each job file on standard input names,
    one per line, and report it trained."""
    for line in sys.stdin:
        preset, out, spec = pickle.loads(Path(line.strip()).read_bytes())
        _train_member(preset, out, spec)
        print(_DONE, spec.name, flush=True)


def _pools(preset: Preset, out: Path):
    """The preset's world, tokenizer, tasks and verification candidate pools (from the seed stage)."""
    world = World(preset.world)
    tokenizer = build_tokenizer(preset.world)
    tasks = {t: make_task(t, world) for t in TASKS}
    records = _seed_stage(preset, out, world, tasks, tokenizer)
    pools = {t: CandidatePool(tasks[t], records[t]) for t in tasks if preset.mixture.tasks.get(t, 0) > 0}
    return world, tokenizer, tasks, pools


def _train_member(preset: Preset, out: Path, spec) -> tuple[str, dict]:
    """Train one member from the cached seed stage, on one thread, and save it; returns (name, manifest).

    Runs in the calling process or in a worker process: a member's weights depend only on the preset,
    its spec and the seed stage, not on which process trains it or how many members train beside it."""
    world, tokenizer, tasks, pools = _pools(preset, out)
    with torch_threads(1):
        corpus = Corpus(world, tasks, tokenizer.get_vocab(), preset.mixture, pools, seed=preset.seed)
        model = build_model(spec, tokenizer, preset.train, preset.seed)
        stats = train_model(model, corpus, spec, preset.train, desc=spec.name)
        total, non_emb = param_counts(model)
        manifest = {
            "name": spec.name, "preset": preset.name, "key": preset.model_key(spec), "code_version": code_version(),
            "params_non_embedding": non_emb, "params_total": total,
            "train_tokens": stats["train_tokens"], "flops": 6.0 * non_emb * stats["train_tokens"],
            "flops_total_params": 6.0 * total * stats["train_tokens"], "flops_convention": "6*N*D, N = non-embedding",
            "final_train_loss": stats["final_train_loss"], "final_check_loss": stats["final_check_loss"],
            "eval_losses": eval_losses(model, corpus, preset.train),
            "seed": preset.seed, "wall_time_s": stats["wall_time_s"], "spec": asdict(spec),
            "train": asdict(preset.train), "llama_config": model.config.to_dict(), "world": preset.world.to_dict(),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "python": platform.python_version(), "cpu_kernels": cpu_kernels()},
        }
    save_atomic(model, tokenizer, manifest, out / spec.name)
    return spec.name, manifest


_SUMMARY = ("name", "params_non_embedding", "params_total", "train_tokens", "flops", "final_train_loss",
            "eval_losses", "wall_time_s", "seed", "key")


def _seed_stage(preset: Preset, out: Path, world: World, tasks, tokenizer) -> dict[str, list[dict]]:
    """The seed model's labelled samples, cached in ``seed/candidates.json`` under the shared key."""
    path = out / "seed" / "candidates.json"
    key = preset.shared_key()
    if path.is_file():
        try:
            cached = json.loads(path.read_text())
            if cached.get("key") == key:
                return cached["records"]
        except (json.JSONDecodeError, KeyError):
            pass  # a corrupt cache entry is recomputed, never read
    t0 = time.time()
    records = seed_candidates(world, tasks, tokenizer, preset.seed_stage, preset.train, preset.mixture, preset.seed)
    summary = {t: {"n": len(r), "correct": sum(x["u"] for x in r)} for t, r in records.items()}
    write_atomic(path, json.dumps({"key": key, "wall_time_s": time.time() - t0, "summary": summary, "records": records},
                                  indent=1, sort_keys=True))
    return records


def _read_manifest(dest: Path) -> dict | None:
    try:
        return json.loads((dest / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None

