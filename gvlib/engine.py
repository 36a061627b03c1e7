"""[engine] The cached sample → verify pipeline the notebooks call (paper §3: sample, then verify).

:func:`generate` draws n completions per problem and scores them with the task's utility;
:func:`verify` asks a verifier (the generator itself, or another backend) about every completion
with one of the paper's four methods. Both cache their work on disk in chunks of problems
(:mod:`gvlib.cache`), keyed by the backend (fingerprint, kind and :meth:`sampling_key`), the digest of
its code (:func:`code_digest`), task, split, exact prompts, sampling parameters and seed, so a re-run reads the results back and a killed run resumes.

Example::

    gens = generate(backend, task, n=8, seed=0)
    ver = verify(backend, task, gens, "cot_score", seed=0)
    gvlib.metrics.gap(gens.u, ver.scores, tau=8)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import verifiers
from .backends.base import Backend, SamplingParams
from .cache import Cache, NoCache
from .codehash import source_digest
from .tasks.base import Task
from .tasks.common import extraction_failure_rate
from .verifiers import Verification

#: Default for ``cache=``: the shared on-disk cache (:func:`gvlib.paths.cache_root`).
DEFAULT = "default"
#: The modules every backend's samples and verdicts go through, and the engine and cache that key and
#: store them (what an entry holds: no hand-bumped format number); with the backend's own ``code``
#: (:attr:`gvlib.backends.base.Backend.code`) their digest is part of every key (:func:`code_digest`),
#: so a faster CPU sampler does not orphan GPU-days of vLLM samples.
SHARED_CODE = ("gvlib.backends.text", "gvlib.verifiers", "gvlib.engine", "gvlib.cache")
#: Every module that turns prompts into samples and verdicts, whichever the backend.
SAMPLING_CODE = (*SHARED_CODE, "gvlib.sampler", "gvlib.backends.hf", "gvlib.backends.vllm", "gvlib.kernels.logprob")


def code_digest(backend: Backend) -> str:
    """Digest of the code that produced ``backend``'s results: :data:`SHARED_CODE` and the backend's own."""
    return source_digest(*SHARED_CODE, *backend.code)


@dataclass
class Generations:
    """n completions per problem and their utilities.

    completions   (problems, n) texts, stop strings removed
    u             (problems, n) utilities u(x, y) in [0, 1]
    """

    task: str
    split: str
    example_ids: list[str]
    prompts: list[str]
    completions: list[list[str]]
    u: np.ndarray
    extraction_failure_rate: float
    params: SamplingParams
    backend: str

    @property
    def accuracy(self) -> float:
        """Mean utility over all samples: J(f) estimated (paper §2)."""
        return float(self.u.mean()) if self.u.size else 0.0


def _cache(cache: Cache | str | None) -> Cache:
    if cache is None:
        return NoCache()
    return Cache() if cache == DEFAULT else cache


def _fingerprint(backend: Backend, cache: Cache) -> str:
    if not backend.fingerprint and not isinstance(cache, NoCache):
        raise ValueError(f"backend {backend.model_id or backend!r} has no fingerprint to key the cache "
                         "with: load it with gvlib.backends.load_backend, set .fingerprint, or pass cache=None")
    return backend.fingerprint


def generate(backend: Backend, task: Task, *, n: int, temperature: float = 0.7, top_p: float = 0.9,
             max_new_tokens: int | None = None, seed: int = 0, cache: Cache | str | None = DEFAULT,
             chunk_size: int | None = None) -> Generations:
    """``n`` samples per problem of ``task`` from ``backend`` (paper §3: T 0.7, top-p 0.9).

    ``chunk_size``: problems per backend call and cache entry (default: the backend's ``chunk_size``).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1 sample per problem, got {n}")
    cache = _cache(cache)
    params = SamplingParams(n=n, temperature=temperature, top_p=top_p,
                            max_new_tokens=max_new_tokens or task.max_new_tokens, stop=tuple(task.stop), seed=seed)
    prompts = [task.generation_prompt(e) for e in task.examples]
    split = getattr(task, "split", "")
    key = {"stage": "generate", "code": code_digest(backend),
           "backend": _fingerprint(backend, cache), "engine": backend.name, "sampling": backend.sampling_key(),
           "task": task.name, "split": split,
           "params": dataclasses.asdict(params)}
    chunks = cache.map_chunks("generate", key, prompts, lambda ch: backend.sample(ch, params),
                              chunk_size=chunk_size or backend.chunk_size, desc=f"generate {task.name}")
    completions = [c for chunk in chunks for c in chunk]
    u = np.array([[task.score(e, c) for c in cs] for e, cs in zip(task.examples, completions)], dtype=float)
    return Generations(task.name, split, [e.id for e in task.examples], prompts, completions,
                       u.reshape(len(prompts), n),
                       extraction_failure_rate(task, completions), params, backend.model_id)


def verify(verifier: Backend, task: Task, generations: Generations, method: str, *, seed: int = 0,
           rounds: int | None = None, temperature: float = 0.7, top_p: float = 0.9,
           max_new_tokens: int | None = None, cache: Cache | str | None = DEFAULT,
           chunk_size: int | None = None) -> Verification:
    """Verify every completion in ``generations`` with ``method`` (see :mod:`gvlib.verifiers`).

    ``verifier`` may be the generator's backend (self-verification) or any other
    (cross-verification). ``rounds``: tournament only (default: a full tournament). ``chunk_size``:
    problems per cache entry (default: the verifier's ``chunk_size``); a tournament round is one
    backend call over a whole chunk.
    """
    if method not in verifiers.VERIFIER_METHODS:
        raise ValueError(f"unknown verifier method {method!r}; choose one of {verifiers.VERIFIER_METHODS}")
    if generations.task != task.name:
        raise ValueError(f"generations are for task {generations.task!r}, not {task.name!r}")
    by_id = {e.id: e for e in task.examples}
    missing = [i for i in generations.example_ids if i not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} generated problems are not in task {task.name!r} (e.g. {missing[0]!r})")
    cache = _cache(cache)
    params = verifiers.verifier_params(task, seed=seed, temperature=temperature, top_p=top_p,
                                       max_new_tokens=max_new_tokens)
    n = len(generations.completions[0]) if generations.completions else 0
    if method == "tournament" and rounds is None:
        rounds = verifiers.max_rounds(n)
    items = [(by_id[i], cs) for i, cs in zip(generations.example_ids, generations.completions)]
    key = {"stage": "verify", "code": code_digest(verifier), "method": method,
           "verifier": _fingerprint(verifier, cache), "engine": verifier.name, "sampling": verifier.sampling_key(),
           "task": task.name,
           "split": generations.split, "seed": seed, "rounds": rounds, "mc_tokens": list(task.mc_tokens),
           "params": None if method == "mc" else dataclasses.asdict(params)}

    def item_key(item: tuple) -> list:
        example, candidates = item  # the exact prompt text, with the candidates as slots
        template = task.verifier_prompt(method, example, "\0candidate\0", "\0other\0")
        return [example.id, template, list(candidates)]

    def run(chunk: Sequence[tuple]) -> dict:
        exs, cands = [e for e, _ in chunk], [c for _, c in chunk]
        return verifiers.verify(method, verifier, task, exs, cands, seed=seed, params=params,
                                rounds=rounds).to_dict()

    parts = cache.map_chunks(f"verify-{method}", key, items, run, chunk_size=chunk_size or verifier.chunk_size,
                             item_key=item_key, desc=f"verify {task.name} ({method})")
    return Verification.concat([Verification.from_dict(p) for p in parts])
