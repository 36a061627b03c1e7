"""gvlib.launch: prompts sharded on chunk boundaries over worker processes (one per GPU set) merge, through
the disk cache, into exactly what one process writes; the notebook run after them computes nothing.

The scaling chapter is checked by default; the other three execute their notebook twice and take minutes on
a busy CPU, so they are marked slow: ``make test ARGS="-m slow tests/test_launch.py"``."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from gvlib import claims, launch, tasks
from gvlib.cache import Cache
from gvlib.organism.family import ensure_family
from gvlib.params import validate
from gvlib.plan import notebook_params

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "scaling.ipynb"


def test_parse_gpus():
    assert launch.parse_gpus("0-3") == ["0", "1", "2", "3"]
    assert launch.parse_gpus("0,1,4-5,1") == ["0", "1", "4", "5"]
    for bad in ("", "a", "3-1", "0-"):
        with pytest.raises(SystemExit, match="--gpus"):
            launch.parse_gpus(bad)


def test_shards_start_on_chunk_boundaries_and_cover_every_problem():
    assert launch.shard_bounds(10, 2, 2) == [(0, 4), (4, 10)]  # 5 chunks: 2 and 3
    assert launch.shard_bounds(10, 4, 8) == [(0, 4), (4, 8), (8, 10)]  # no more shards than chunks
    assert launch.shard_bounds(1319, 2048, 8) == [(0, 1319)]  # vLLM: one chunk, one shard
    for n, chunk, k in [(7, 3, 2), (64, 8, 3), (5, 1, 5), (100, 7, 4)]:
        bounds = launch.shard_bounds(n, chunk, k)
        assert [a for a, _ in bounds][1:] == [b for _, b in bounds][:-1] and bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a % chunk == 0 and b > a for a, b in bounds)


def entries(root: Path) -> dict[str, bytes]:
    """The cache's sample and verdict entries (not the organism, not the workers' logs)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*.json")
            if p.relative_to(root).parts[0] not in ("organism", "launch")}


def stamps(root: Path) -> dict[str, tuple[int, int]]:
    """Inode and mtime of every entry: an entry rewritten (``os.replace``) or added changes them."""
    return {k: ((root / k).stat().st_ino, (root / k).stat().st_mtime_ns) for k in entries(root)}


def grid(params: dict):
    """The notebook's own call (notebooks/scaling.ipynb), in this process, on the whole task."""
    run_models = claims.resolve_models(params["organism"], params["models"], params["flops"])
    task = tasks.load(params["task"], limit=params["n_prompts"], data_dir=params["data_dir"], family=run_models.family)
    return claims.run_grid(run_models.models, task, params["methods"], n=params["n_samples"],
                           temperature=params["temperature"], top_p=params["top_p"], seed=params["seed"],
                           backend=params["backend"], backend_options=params["backend_options"],
                           tournament_rounds=params["tournament_rounds"], threads=params["cpu_threads"])


def test_two_workers_merge_into_what_one_process_writes_and_the_notebook_computes_nothing(tmp_path, monkeypatch):
    family = ensure_family("tiny")  # trained once in the default cache, copied into both caches below
    for name in ("single", "launched"):
        shutil.copytree(family.path, tmp_path / name / "organism" / "tiny", ignore=shutil.ignore_patterns(".lock"))
    raw = notebook_params(NOTEBOOK, ROOT / "notebooks" / "params" / "scaling" / "tiny.yaml", [])
    raw.update(backend="transformers", cpu_threads=1, n_boot=20, methods=["mc", "tournament"],
               backend_options={"*": {"chunk_size": 2}})  # 4 prompts: 2 chunks per model
    params = validate("scaling", raw)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("GVLIB_RESULTS", str(tmp_path / "results"))

    monkeypatch.setenv("GVLIB_CACHE", str(tmp_path / "single"))
    single = grid(params)

    monkeypatch.setenv("GVLIB_CACHE", str(tmp_path / "launched"))
    jobs = launch.run("scaling", params, ["0", "1"], tmp_path / "logs", poll=0.2)
    assert sorted((j.model, j.start, j.stop) for j in jobs) == sorted(
        (m, a, b) for m in single.generations for a, b in [(0, 2), (2, 4)])
    merged = entries(tmp_path / "launched")
    assert merged == entries(tmp_path / "single")  # same keys, same bytes
    assert sum(k.startswith("generate/") for k in merged) == 2 * len(single.generations)  # chunks of 2 prompts

    before = stamps(tmp_path / "launched")
    launch.execute(NOTEBOOK, params, tmp_path / "scaling.ipynb")
    again = grid(params)
    after = stamps(tmp_path / "launched")
    assert after == before  # the notebook (and a second in-process run) read everything, wrote nothing
    assert (tmp_path / "results" / "scaling.json").exists()
    for m in single.generations:
        assert np.array_equal(again.generations[m].u, single.generations[m].u)
        assert again.generations[m].completions == single.generations[m].completions
    for k, v in single.verifications.items():
        assert np.array_equal(np.asarray(again.verifications[k].scores, dtype=float),
                              np.asarray(v.scores, dtype=float), equal_nan=True), k


def test_plan_must_agree_with_the_presets_gpu_sets():
    """Real models: the GPU set is the preset's parallel sizes, and gvlib.plan must fit each model on it."""
    smoke = ROOT / "notebooks" / "params" / "scaling" / "smoke.yaml"
    params = validate("scaling", notebook_params(NOTEBOOK, smoke, [("task", "sudoku4")]))
    launch.check_plan("scaling", params, "h100-80gb", None)
    assert [launch.gpus_per_model(m, params["backend_options"]) for m in params["models"]] == [1, 1, 1, 1, 2, 2, 8]
    bare = validate("scaling", notebook_params(NOTEBOOK, smoke, [("task", "sudoku4"), ("backend_options", "{}")]))
    with pytest.raises(SystemExit, match="Qwen1.5-72B on 4 h100-80gb GPUs.*gives it 1"):
        launch.check_plan("scaling", bare, "h100-80gb", None)


def test_plan_must_fit_the_iterative_fine_tuning():
    """The LoRA SFT holds the whole base on every GPU (DDP): a 7B generator fits, a 72B one cannot."""
    path = ROOT / "notebooks" / "iterative.ipynb"
    smoke = ROOT / "notebooks" / "params" / "iterative" / "smoke.yaml"
    params = validate("iterative", notebook_params(path, smoke, [("task", "sudoku4")]))
    launch.check_plan("iterative", params, "h100-80gb", None, 8)
    big = validate("iterative", notebook_params(path, smoke, [("task", "sudoku4"), ("model", "Qwen/Qwen1.5-72B")]))
    with pytest.raises(SystemExit, match="no way to fit the LoRA SFT of Qwen/Qwen1.5-72B on 8 h100-80gb"):
        launch.check_plan("iterative", big, "h100-80gb", None, 8)


def test_chunk_size_option():
    from gvlib.backends import chunk_size
    from gvlib.backends.hf import HFBackend

    assert chunk_size(HFBackend) == HFBackend.chunk_size and chunk_size(HFBackend, 2) == 2
    for bad in (0, -1, 2.5, "8", True):
        with pytest.raises(ValueError, match="chunk_size"):
            chunk_size(HFBackend, bad)


def files(root: Path) -> dict[str, bytes]:
    """Every file the notebook's stages write under the cache (not the organism, not the workers' logs), the
    cache's own path in them replaced, and an iterative run's directory named by its config: a run's key
    holds its model's path, which differs between the two caches of these tests (their own organism copies)."""
    def text(p: Path) -> bytes:
        return p.read_bytes().replace(str(root).encode(), b"<cache>")

    runs = {p.parent.name: hashlib.sha256(text(p)).hexdigest()[:12] for p in root.glob("iterate/*/config.json")}
    out = {}
    for p in root.rglob("*"):
        parts = list(p.relative_to(root).parts)
        if p.is_file() and parts[0] not in ("organism", "launch"):
            if parts[0] == "iterate":
                parts[1] = runs[parts[1]]
            out["/".join(parts)] = p
    return out


def without_seconds(x):
    """A round's metrics without its wall times (the one thing two runs of the same round differ in)."""
    if isinstance(x, dict):
        return {k: without_seconds(v) for k, v in x.items() if k != "seconds"}
    return [without_seconds(v) for v in x] if isinstance(x, list) else x


def launched_like_one_process(notebook: str, raw: dict, tmp_path, monkeypatch) -> list:
    """The notebook in one process (cache ``single``); ``gvlib.launch`` on 2 workers (cache ``launched``): the
    same files with the same bytes (round metrics: but their seconds); the notebook then writes nothing."""
    family = ensure_family("tiny")
    for name in ("single", "launched"):
        shutil.copytree(family.path, tmp_path / name / "organism" / "tiny", ignore=shutil.ignore_patterns(".lock"))
    path = ROOT / "notebooks" / f"{notebook}.ipynb"
    params = validate(notebook, {**notebook_params(path, ROOT / "notebooks" / "params" / notebook / "tiny.yaml", []),
                                 **raw, "backend": "transformers", "cpu_threads": 1, "n_boot": 20,
                                 "backend_options": {"*": {"chunk_size": 2}}})  # 4 prompts: 2 chunks
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("GVLIB_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("GVLIB_CACHE", str(tmp_path / "single"))
    launch.execute(path, params, tmp_path / "single.ipynb")
    monkeypatch.setenv("GVLIB_CACHE", str(tmp_path / "launched"))
    here = []  # samples and verdicts computed in this process rather than by the workers
    monkeypatch.setattr(Cache, "put", lambda self, kind, key, value, put=Cache.put: (here.append(kind),
                                                                                    put(self, kind, key, value)))
    jobs = launch.run(notebook, params, ["0", "1"], tmp_path / "logs", poll=0.2)
    assert here == []
    single, launched = files(tmp_path / "single"), files(tmp_path / "launched")
    assert sorted(launched) == sorted(single)

    def content(p: Path, root: Path):
        data = p.read_bytes().replace(str(root).encode(), b"<cache>")
        return without_seconds(json.loads(data)) if p.name == "metrics.json" else data

    for k, p in single.items():
        assert content(launched[k], tmp_path / "launched") == content(p, tmp_path / "single"), k
    # a run's config.json is rewritten, with the same bytes, on every run_iterations call
    before = {k: (p.stat().st_ino, p.stat().st_mtime_ns) for k, p in launched.items() if p.name != "config.json"}
    launch.execute(path, params, tmp_path / "launched.ipynb")
    after = files(tmp_path / "launched")
    assert {k: (after[k].stat().st_ino, after[k].stat().st_mtime_ns) for k in before} == before
    assert sorted(after) == sorted(launched)
    return jobs


@pytest.mark.slow
def test_cross_verification_is_launched_in_two_phases(tmp_path, monkeypatch):
    jobs = launched_like_one_process("cross_verification", {"methods": ["mc"]}, tmp_path, monkeypatch)
    models = sorted({j.model for j in jobs})
    assert len(models) >= 2 and all(sum(j.model == m for j in jobs) == 4 for m in models)  # 2 phases x 2 shards
    assert sum("verifies-others" in j.label for j in jobs) == 2 * len(models)


@pytest.mark.slow
def test_unimprovable_is_launched_over_its_three_tasks(tmp_path, monkeypatch):
    jobs = launched_like_one_process("unimprovable", {}, tmp_path, monkeypatch)
    assert {j.label.split("-")[0] for j in jobs} == {"organism_facts", "organism_arith", "organism_sudoku"}


@pytest.mark.slow
def test_iterative_rounds_are_launched_one_after_another(tmp_path, monkeypatch):
    jobs = launched_like_one_process("iterative", {"rounds": 1, "verifiers": ["self", "fixed"]}, tmp_path, monkeypatch)
    assert {j.label.split(".")[1] for j in jobs} == {"round0", "round1"}
    assert any(j.label.startswith("run1-fixed.") for j in jobs)  # the fixed verifier's own workers
    assert any(j.label.startswith("run2-self.") and ".train." in j.label for j in jobs)  # the last section's run
