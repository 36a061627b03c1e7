"""The cached generate → verify pipeline: shapes, utilities, determinism, caching and resume."""
from __future__ import annotations

import numpy as np
import pytest

from gvlib import engine, tasks
from gvlib.backends import load_backend
from gvlib.backends.base import Backend
from gvlib.cache import Cache
from gvlib.metrics import gap
from tiny_model import DATA, save_tiny

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA}")


class GoldEveryOther(Backend):
    """Sample j of a GSM8K prompt is the gold answer when j is even, off by one otherwise."""

    name = "scripted"
    model_id = "scripted"
    fingerprint = "gold-every-other"

    def __init__(self, task, die_after: int | None = None):
        self.gold = {task.generation_prompt(e): e.answer for e in task.examples}
        self.die_after, self.calls = die_after, []

    def sample(self, prompts, params):
        if self.die_after is not None and len(self.calls) >= self.die_after:
            raise KeyboardInterrupt("killed")
        self.calls.append(list(prompts))
        return [[f" The answer is {int(self.gold[p]) + j % 2}." for j in range(params.n)] for p in prompts]


@pytest.fixture(scope="module")
def gsm8k():
    return tasks.load("gsm8k", path=DATA / "gsm8k", limit=5)


def test_generate_scores_utilities(gsm8k, tmp_path):
    g = engine.generate(GoldEveryOther(gsm8k), gsm8k, n=4, cache=Cache(tmp_path))
    assert len(g.completions) == 5 and all(len(c) == 4 for c in g.completions)
    np.testing.assert_array_equal(g.u, np.tile([1.0, 0.0, 1.0, 0.0], (5, 1)))
    assert g.accuracy == 0.5 and g.extraction_failure_rate == 0.0
    assert g.example_ids == [e.id for e in gsm8k.examples] and g.split == "test"


def test_killed_generation_resumes_from_finished_chunks(gsm8k, tmp_path):
    cache = Cache(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        engine.generate(GoldEveryOther(gsm8k, die_after=2), gsm8k, n=2, cache=cache, chunk_size=2)
    resumed = GoldEveryOther(gsm8k)
    g = engine.generate(resumed, gsm8k, n=2, cache=cache, chunk_size=2)
    assert resumed.calls == [[gsm8k.generation_prompt(gsm8k.examples[4])]]  # only the third chunk ran
    fresh = engine.generate(GoldEveryOther(gsm8k), gsm8k, n=2, cache=None, chunk_size=2)
    assert g.completions == fresh.completions
    again = GoldEveryOther(gsm8k)
    engine.generate(again, gsm8k, n=2, cache=cache, chunk_size=2)
    assert again.calls == []
    engine.generate(again, gsm8k, n=2, seed=1, cache=cache, chunk_size=2)
    assert len(again.calls) == 3  # another seed is another key


def test_backend_without_fingerprint_cannot_use_the_cache(gsm8k, tmp_path):
    b = GoldEveryOther(gsm8k)
    b.fingerprint = ""
    with pytest.raises(ValueError, match="no fingerprint"):
        engine.generate(b, gsm8k, n=1, cache=Cache(tmp_path))
    assert engine.generate(b, gsm8k, n=1, cache=None).u.shape == (5, 1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_backend(str(save_tiny(tmp_path_factory.mktemp("tiny"))), backend="transformers")


def test_pipeline_on_a_tiny_model_is_deterministic_and_cached(gsm8k, tiny, tmp_path):
    task = tasks.load("gsm8k", path=DATA / "gsm8k", limit=1)
    cache = Cache(tmp_path / "a")
    g = engine.generate(tiny, task, n=4, max_new_tokens=6, seed=0, cache=cache)
    assert np.array(g.completions).shape == (1, 4) and g.extraction_failure_rate == 1.0
    other = engine.generate(tiny, task, n=4, max_new_tokens=6, seed=0, cache=Cache(tmp_path / "b"))
    assert other.completions == g.completions
    results = {}
    for method in ("mc", "cot_binary", "cot_score", "tournament"):
        v = engine.verify(tiny, task, g, method, seed=0, max_new_tokens=6, cache=cache)
        assert v.method == method and v.scores.shape == (1, 4)
        results[method] = v
    assert np.all((results["mc"].scores > 0) & (results["mc"].scores < 1))
    assert results["tournament"].survivors.shape == (3, 1, 4)
    assert results["tournament"].n_outputs == 3
    hits = cache.hits
    again = engine.verify(tiny, task, g, "tournament", seed=0, max_new_tokens=6, cache=cache)
    assert cache.hits == hits + 1
    np.testing.assert_array_equal(again.survivors, results["tournament"].survivors)
    assert again.raw == results["tournament"].raw


class JudgeOfEvenProblems(Backend):
    """A CoT-Binary judge that knows the gold answers of the even-numbered problems and calls every sample of
    the odd-numbered ones correct."""

    name = "scripted"
    model_id = "judge"
    fingerprint = "judge-of-even-problems"

    def __init__(self, task, generations):
        self.verdict = {}
        for i, (example, samples, u) in enumerate(zip(task.examples, generations.completions, generations.u)):
            for c, right in zip(samples, u):
                ok = bool(right) or i % 2 == 1
                self.verdict[task.verifier_prompt("cot_binary", example, c)] = f"Correctness: <{'correct' if ok else 'incorrect'}>"

    def sample(self, prompts, params):
        return [[self.verdict[p]] * params.n for p in prompts]


def test_the_gap_through_the_pipeline_is_the_one_by_hand(gsm8k, tmp_path):
    """Samples 0 and 2 of each of the 5 problems are right, 1 and 3 wrong (acc_x = 1/2). Problems 0, 2, 4 keep
    only their right samples (gap 1/2, relative gap 1), problems 1 and 3 keep all (gap 0): gap = 3/10 and
    relative gap = 3/5, whether computed now or read back from the cache. (A verdict attached to the wrong
    sample or problem would change them.)"""
    cache = Cache(tmp_path)
    g = engine.generate(GoldEveryOther(gsm8k), gsm8k, n=4, cache=cache, chunk_size=2)
    judge = JudgeOfEvenProblems(gsm8k, g)
    for _ in range(2):  # computed, then read back from the cache
        v = engine.verify(judge, gsm8k, g, "cot_binary", cache=cache, chunk_size=2)
        r = gap(g.u, v.scores, tau=0.5)
        np.testing.assert_array_equal(v.scores, [[1, 0, 1, 0], [1, 1, 1, 1]] * 2 + [[1, 0, 1, 0]])
        assert r.absolute == pytest.approx(3 / 10) and r.relative == pytest.approx(3 / 5)
    assert cache.hits == 3  # the second pass read the verdicts' three chunks


def test_verify_checks_its_inputs(gsm8k, tmp_path):
    g = engine.generate(GoldEveryOther(gsm8k), gsm8k, n=2, cache=None)
    nq = tasks.load("nq_open", path=DATA / "nq_open", limit=2)
    with pytest.raises(ValueError, match="generations are for task 'gsm8k'"):
        engine.verify(GoldEveryOther(gsm8k), nq, g, "mc", cache=None)
    with pytest.raises(ValueError, match="unknown verifier method"):
        engine.verify(GoldEveryOther(gsm8k), gsm8k, g, "majority", cache=None)


def test_the_cache_key_holds_the_batch_layout_and_the_sampling_code(gsm8k, tmp_path, monkeypatch):
    class Batched(GoldEveryOther):
        batch_size = 64

        def sampling_key(self):
            return {"batch_size": self.batch_size}

    cache, b = Cache(tmp_path), Batched(gsm8k)
    engine.generate(b, gsm8k, n=2, cache=cache)
    engine.generate(b, gsm8k, n=2, cache=cache)
    assert len(b.calls) == 1
    b.batch_size = 512  # another batch layout draws other samples: not read from the cache
    engine.generate(b, gsm8k, n=2, cache=cache)
    assert len(b.calls) == 2
    monkeypatch.setattr(engine, "source_digest", lambda *modules: "edited-sampler")
    engine.generate(b, gsm8k, n=2, cache=cache)
    assert len(b.calls) == 3



class PrefersA(Backend):
    """A tournament verifier that always prefers solution A; records the prompts of every call."""

    name = "scripted"
    model_id = "prefers-a"
    fingerprint = "prefers-a"

    def __init__(self, chunk_size):
        self.chunk_size, self.calls = chunk_size, []

    def sample(self, prompts, params):
        self.calls.append(list(prompts))
        return [[" Preferred solution: <A>"] * params.n for _ in prompts]


def test_tournament_rounds_span_the_backends_chunk(gsm8k):
    gens = engine.generate(GoldEveryOther(gsm8k), gsm8k, n=4, cache=None)
    wide, narrow = PrefersA(chunk_size=1000), PrefersA(chunk_size=2)
    a = engine.verify(wide, gsm8k, gens, "tournament", cache=None)
    assert [len(c) for c in wide.calls] == [10, 5]  # one call per round over all 5 problems
    b = engine.verify(narrow, gsm8k, gens, "tournament", cache=None)
    assert len(narrow.calls) == 6  # 3 chunks of at most 2 problems, 2 rounds each
    np.testing.assert_array_equal(a.scores, b.scores)  # pairings do not depend on the chunking
