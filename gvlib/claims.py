"""[claims] What the claim notebooks share (paper §3–§4): models by name, a generator × verifier grid of cached
generations and verifications, the paper's filters, and gap summaries with bootstrap CIs.

A notebook names its models in one of two ways (its ``organism`` and ``models`` parameters):

* ``organism="default"`` (a preset of :mod:`gvlib.organism`): the family is trained or reused, and
  its members (smallest first) are the models, with their exact pre-training FLOPs;
* ``organism=None`` and ``models=[...]``: Hugging Face ids or local directories, smallest first; the
  FLOPs of the paper's models come from :mod:`gvlib.paper_numbers` (others may be given).

Everything expensive goes through :mod:`gvlib.engine`, whose disk cache is keyed by model, task,
prompts, sampling settings and seed: two notebooks that ask for the same generations or
verifications compute them once.
"""
from __future__ import annotations

import multiprocessing
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

# tqdm.auto (imported by the engine's cache) warns about missing ipywidgets in every notebook kernel.
warnings.filterwarnings("ignore", message="IProgress not found")

from gvlib import paper_numbers  # noqa: E402
from gvlib.backends import options_for  # noqa: E402
from gvlib.backends.text import derive_seed  # noqa: E402
from gvlib.engine import Generations, generate, verify  # noqa: E402
from gvlib.metrics import (GapResult, bootstrap_ci, filter_weights, fit_log_linear, gap_from_weights, roc_auc,  # noqa: E402
                           within_prompt_auc)
from gvlib.names import METHOD_LABELS, VERIFIER_METHODS  # noqa: E402
from gvlib.tasks.base import Task  # noqa: E402
from gvlib.tasks.common import extraction_failure_rate  # noqa: E402
from gvlib.threads import torch_threads  # noqa: E402
from gvlib.verifiers import Verification  # noqa: E402

__all__ = ["Model", "resolve_models", "Filter", "make_filters", "Grid", "run_grid", "run_stage", "untested",
           "method_untested", "slope_ci", "trend_counts", "trend_tests", "unimprovable_check", "percent",
           "paper_scaling", "quiet", "OUTCOME", "ci_text", "show_verdict", "scaling_check", "cross_verification_check",
           "unimprovable_claims", "verification_seed", "repeat_verifications", "paper_ensemble",
           "mean_tokens"]


@dataclass(frozen=True)
class Model:
    """One model of a notebook: a short label, where to load it from, its pre-training FLOPs."""

    name: str
    path: str
    flops: float | None = None
    params: int | None = None


@dataclass(frozen=True)
class Models:
    """The models of a run, smallest first, and the organism family's directory (None for other models):
    the world its tasks are drawn from (``gvlib.tasks.load(name, family=models.family)``)."""

    models: list[Model]
    label: str
    family: str | None = None

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]


def resolve_models(organism: str | None, models: Sequence[str] = (), flops: Sequence[float] = ()) -> Models:
    """The models a notebook's ``organism`` / ``models`` / ``flops`` parameters name (module doc)."""
    if organism is not None:
        if models:
            raise ValueError(f"give either `organism` ({organism!r}) or `models`, not both; set organism=None "
                             "to run the models in `models`")
        from gvlib.organism import ensure_family

        t0 = time.time()
        family = ensure_family(organism)
        how = f"trained {family.trained_now}" if family.trained_now else "reused"
        print(f"organism family {organism!r}: {len(family.models)} models ({how}, {time.time() - t0:.0f} s)")
        out = [Model(m.name, str(m.path), float(m.flops), int(m.params)) for m in family.models]
        return Models(out, f"organism '{organism}'", str(family.path))
    if not models:
        raise ValueError("no models: set `organism` to an organism preset or list `models` (HF ids or paths)")
    if flops and len(flops) != len(models):
        raise ValueError(f"`flops` has {len(flops)} values for {len(models)} models: give one per model or none")
    out = []
    for i, path in enumerate(models):
        known = paper_numbers.FLOPS_1E21.get(path)
        f = float(flops[i]) if flops else (known * 1e21 if known is not None else None)
        out.append(Model(Path(path).name if Path(path).is_dir() else path.split("/")[-1], path, f))
    families = {paper_numbers.family_of(m) for m in models}
    label = families.pop() if len(families) == 1 and None not in families else "your models"
    return Models(out, label)


def quiet() -> None:
    """Silence the progress bars and notices of transformers and tqdm that clutter an executed notebook."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def percent(x: float) -> float:
    """A fraction as percent (the paper's tables print %)."""
    return 100.0 * x


@dataclass(frozen=True)
class Filter:
    """How one method's verifier scores select samples (paper §2 end, §3, Tab. 4 caption: the thresholds).

    Exactly one of ``tau`` (keep s > tau, one global threshold), ``quantile`` (per-prompt threshold)
    or ``rounds`` (tournament survivors after that many rounds).
    """

    method: str
    tau: float | None = None
    quantile: float | None = None
    rounds: int | None = None

    def __post_init__(self):
        if self.method not in VERIFIER_METHODS:
            raise ValueError(f"unknown verifier method {self.method!r}; choose from {VERIFIER_METHODS}")
        if sum(v is not None for v in (self.tau, self.quantile, self.rounds)) != 1:
            raise ValueError(f"filter of {self.method!r}: give exactly one of tau, quantile, rounds")
        if (self.method == "tournament") != (self.rounds is not None):
            raise ValueError(f"filter of {self.method!r}: `rounds` is for the tournament, and the tournament needs it")

    @property
    def label(self) -> str:
        name = METHOD_LABELS[self.method]
        if self.method == "cot_binary":
            return name
        if self.rounds is not None:
            return f"{name} r{self.rounds}"
        return f"{name} top{self.quantile:g}" if self.quantile is not None else f"{name} τ{self.tau:g}"

    def weights(self, verification: Verification) -> np.ndarray:
        """The 0/1 keep decision of this filter on every sample of ``verification``, (prompts, samples): the
        tournament's survivors after ``rounds``, or the threshold filter of §2 (:func:`gvlib.metrics.filter_weights`)."""
        if verification.method != self.method:
            raise ValueError(f"a {self.method!r} filter cannot read a {verification.method!r} verification")
        if self.rounds is not None:
            if verification.survivors is None or self.rounds >= len(verification.survivors):
                have = 0 if verification.survivors is None else len(verification.survivors) - 1
                raise ValueError(f"tournament filter after {self.rounds} rounds, but the verification ran {have}")
            return verification.survivors[self.rounds].astype(float)
        return filter_weights(verification.scores, tau=self.tau, quantile=self.quantile)

    def gap(self, u: np.ndarray, verification: Verification) -> GapResult:
        """The gap of the generator whose utilities are ``u`` under this filter of ``verification``."""
        return gap_from_weights(u, self.weights(verification))


def make_filters(methods: Sequence[str], *, mc_tau: float | None = None, mc_quantile: float | None = None,
                 cot_score_tau: float = 8, tournament_rounds: int = 1) -> dict[str, Filter]:
    """The paper's filter of each method (§3): MC at a global τ or a per-prompt quantile, CoT-Score at
    τ (keep s > τ), CoT-Binary keeps verdict 1, Tournament keeps the survivors of ``tournament_rounds``."""
    spec = {
        "mc": dict(tau=mc_tau, quantile=mc_quantile),
        "cot_score": dict(tau=cot_score_tau),
        "cot_binary": dict(tau=0.5),
        "tournament": dict(rounds=tournament_rounds),
    }
    unknown = [m for m in methods if m not in spec]
    if unknown:
        raise ValueError(f"unknown verifier methods {unknown}; choose from {list(spec)}")
    return {m: Filter(m, **{k: v for k, v in spec[m].items() if v is not None}) for m in methods}


@dataclass
class Grid:
    """Generations of each model and verifications of them by each verifier with each method."""

    task: Task
    models: list[Model]
    generations: dict[str, Generations]
    verifications: dict[tuple[str, str, str], Verification]  # (generator, verifier, method)

    def rescored(self, task: Task) -> "Grid":
        """The same samples and verdicts, their utilities from ``task``: the same problems scored another
        way (e.g. NQ-open with lm-eval's strict scoring, :class:`gvlib.tasks.nq.NQOpen`)."""
        if [e.id for e in task.examples] != [e.id for e in self.task.examples]:
            raise ValueError(f"rescoring needs the grid's problems; task {task.name!r} has other ones")
        def u(x: Generations) -> np.ndarray:
            scored = [[task.score(e, c) for c in cs] for e, cs in zip(task.examples, x.completions)]
            return np.array(scored, dtype=float).reshape(x.u.shape)

        gens = {g: replace(x, u=u(x), extraction_failure_rate=extraction_failure_rate(task, x.completions))
                for g, x in self.generations.items()}
        return replace(self, task=task, generations=gens)

    def gaps(self, filters: dict[str, Filter]) -> dict[tuple[str, str, str], GapResult]:
        """The gap of every (generator, verifier, method) under the method's filter."""
        return {key: filters[key[2]].gap(self.generations[key[0]].u, ver)
                for key, ver in self.verifications.items() if key[2] in filters}

    def table(self, filters: dict[str, Filter], *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
        """One row per (generator, verifier, method): accuracies, gaps in % with bootstrap CIs, counts.

        ``n_mixed`` counts the prompts with 0 < acc_x < 1, the only ones whose gap can differ from 0;
        ``untested`` says why a cell measured nothing (:func:`untested`), None when it did.
        ``truncation_rate`` is the share of sampled verifications cut by the token budget before a verdict
        (None for MC); ``position_bias`` is the tournament's P(prefer the first solution). ``auc`` is the
        verifier's ROC AUC of its scores û against the samples' correctness (tournament: rounds survived;
        None when the generator's samples are all right or all wrong): how well the verifier ranks,
        whatever its threshold. ``auc_within`` is the same within each mixed prompt, averaged
        (:func:`gvlib.metrics.within_prompt_auc`): the ranking a per-prompt gap depends on.
        """
        flops = {m.name: m.flops for m in self.models}
        rows = []
        for (g, v, method), res in self.gaps(filters).items():
            s = res.summary(n_boot=n_boot, seed=seed)
            ver = self.verifications[(g, v, method)]
            rows.append({
                "generator": g, "verifier": v, "method": method, "filter": filters[method].label,
                "flops": flops[g], "verifier_flops": flops[v],
                "accuracy": percent(s["accuracy"]), "filtered_accuracy": percent(s["filtered_accuracy"]),
                "gap": percent(s["gap"]), "gap_lo": percent(s["gap_ci"][0]), "gap_hi": percent(s["gap_ci"][1]),
                "relative_gap": percent(s["relative_gap"]), "relative_gap_lo": percent(s["relative_gap_ci"][0]),
                "relative_gap_hi": percent(s["relative_gap_ci"][1]),
                "n_prompts": s["n_prompts"], "n_empty": s["n_empty"], "n_perfect": s["n_perfect"],
                "n_mixed": int(((res.acc > 0) & (res.acc < 1)).sum()),
                "unparseable_rate": ver.unparseable_rate, "truncation_rate": ver.truncation_rate,
                "position_bias": ver.position_bias, "auc": roc_auc(self.generations[g].u, ver.scores),
                "auc_within": within_prompt_auc(self.generations[g].u, ver.scores),
                "extraction_failure_rate": self.generations[g].extraction_failure_rate,
            })
        out = pd.DataFrame(rows)
        out["untested"] = pd.Series([untested(r.n_prompts, r.n_empty, r.unparseable_rate) for r in out.itertuples()],
                                    index=out.index, dtype=object)  # None, not NaN, where a cell was tested
        return out


def untested(n_prompts: int, n_empty: int, unparseable_rate: float | None = None) -> str | None:
    """Why one (generator, verifier, method) cell measured nothing, or None when it measured a gap.

    A filter that kept nothing on every prompt leaves each prompt its unfiltered samples: its gap is 0
    by the book's convention (definitions page), not by measurement. A verifier whose outputs are all
    unparseable said nothing (CoT outputs are rejected, tournament comparisons decided by a coin).
    Chapters report such a cell, and a method made only of such cells, as "not tested".
    """
    if unparseable_rate is not None and unparseable_rate >= 1:
        return "every verifier output was unparseable (100%)"
    if n_prompts > 0 and n_empty >= n_prompts:
        return f"the filter kept nothing (empty prompts: {n_empty} of {n_prompts}, 100%)"
    return None


def method_untested(rows: pd.DataFrame) -> str | None:
    """Why a method's rows (one per model, from :meth:`Grid.table`) cannot test a trend over models, or None.

    A trend needs at least two models whose cell measured a gap (:func:`untested` is None) on prompts
    that can show one (``n_mixed`` > 0, i.e. 0 < acc_x < 1); a cell that is 0 by construction
    cannot tell a rising gap from a flat one.
    """
    measured = rows.untested.isna() & (rows.n_mixed > 0)
    if int(measured.sum()) >= 2:
        return None
    parts = []
    cells = rows[rows.untested.notna()]
    for reason, group in cells.groupby(cells.untested.str.split(" (", regex=False).str[0], sort=False):
        share = f"empty prompts {100 * group.n_empty.sum() / max(1, group.n_prompts.sum()):.0f}%"
        parts.append(f"{', '.join(group.generator)}: {reason} ({share if 'kept nothing' in reason else '100%'})")
    flat = rows[rows.untested.isna() & (rows.n_mixed == 0)]
    if len(flat):
        parts.append(f"{', '.join(flat.generator)}: no prompt with 0 < accuracy < 1")
    return f"{int(measured.sum())} model(s) measured a gap, a trend needs 2 ({'; '.join(parts)})"


@dataclass(frozen=True)
class StageSettings:
    """Everything a generation or verification stage (:func:`model_stage`) needs besides the models (picklable)."""

    task: Task
    methods: tuple[str, ...]
    n: int
    temperature: float
    top_p: float
    seed: int
    backend: str
    options: dict
    tournament_rounds: int
    threads: int | None


def _verify_with(backend, verifier: Model, generator: str, gens: Generations, st: StageSettings) -> dict:
    out = {}
    for method in st.methods:
        print(f"  {verifier.name} verifies {generator} ({method})", flush=True)
        out[(generator, verifier.name, method)] = verify(
            backend, st.task, gens, method, seed=st.seed, temperature=st.temperature, top_p=st.top_p,
            rounds=st.tournament_rounds if method == "tournament" else None)
    return out


def model_stage(model: Model, st: StageSettings, to_verify: dict[str, Generations] | None) -> tuple:
    """Load ``model`` once. With ``to_verify`` None: generate, then self-verify; otherwise verify the
    given generations (cross-verification). Module-level and public so that a spawned process, or a cluster
    job of :mod:`gvlib.launch`, can run it."""
    from gvlib.backends import load_backend

    with torch_threads(st.threads):
        backend = load_backend(model.path, backend=st.backend, **options_for(model.path, st.options))
        if to_verify is None:
            print(f"  {model.name} generates {len(st.task)} prompts x {st.n} samples", flush=True)
            gens = generate(backend, st.task, n=st.n, temperature=st.temperature, top_p=st.top_p, seed=st.seed)
            return gens, _verify_with(backend, model, model.name, gens, st)
        out = {}
        for name, gens in to_verify.items():
            out.update(_verify_with(backend, model, name, gens, st))
        return None, out


def run_stage(fn: Callable[..., Any], *args: Any, isolate: bool) -> Any:
    """``fn(*args)``, in a fresh spawned process when ``isolate`` (its GPU memory dies with it).

    ``fn`` must be a module-level function and its arguments and result picklable; an exception in the
    child is raised here.
    """
    if not isolate:
        return fn(*args)
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _uses_vllm(backend: str) -> bool:
    from gvlib.backends import vllm_available

    return backend == "vllm" or (backend == "auto" and vllm_available() is None)


def run_grid(models: Sequence[Model], task: Task, methods: Sequence[str], *, cross: bool = False, n: int,
             temperature: float = 0.7, top_p: float = 0.9, seed: int = 0, backend: str = "auto",
             backend_options: dict | None = None, tournament_rounds: int = 1, threads: int | None = None) -> Grid:
    """Generate with every model, then verify with ``methods``: self-verification only, or every
    (generator, verifier) pair when ``cross`` (paper §4.2). Each model is loaded once per phase.

    The tournament runs ``tournament_rounds`` rounds (``n`` must be a multiple of 2**rounds).
    ``backend_options``: see :func:`gvlib.backends.options_for`. ``threads``: torch CPU threads while running (see
    :func:`gvlib.threads.torch_threads`). With vLLM every model runs in its own spawned process, so its
    GPU memory is freed before the next model loads (vLLM does not release it in-process).
    """
    unknown = [m for m in methods if m not in VERIFIER_METHODS]
    if unknown:
        raise ValueError(f"unknown verifier methods {unknown}; choose from {VERIFIER_METHODS}")
    if "tournament" in methods and (tournament_rounds < 1 or n % 2 ** tournament_rounds):
        raise ValueError(f"a tournament of {tournament_rounds} rounds needs n_samples divisible by "
                         f"{2 ** tournament_rounds}, got n_samples={n}")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique: {names}")
    for m in models:
        options_for(m.path, backend_options)  # a malformed option fails before any model loads
    st = StageSettings(task, tuple(methods), n, temperature, top_p, seed, backend, dict(backend_options or {}),
                   tournament_rounds, threads)
    isolate = _uses_vllm(backend)
    generations: dict[str, Generations] = {}
    verifications: dict[tuple[str, str, str], Verification] = {}
    t0 = time.time()
    for model in models:  # phase 1: generate and self-verify
        print(f"[{time.time() - t0:6.1f} s] {model.name}: generate and self-verify", flush=True)
        generations[model.name], ver = run_stage(model_stage, model, st, None, isolate=isolate)
        verifications.update(ver)
    if cross:  # phase 2: every verifier on every other generator's samples
        for verifier in models:
            print(f"[{time.time() - t0:6.1f} s] {verifier.name}: verify the other models' samples", flush=True)
            others = {g: gens for g, gens in generations.items() if g != verifier.name}
            verifications.update(run_stage(model_stage, verifier, st, others, isolate=isolate)[1])
    print(f"[{time.time() - t0:6.1f} s] done", flush=True)
    return Grid(task, list(models), generations, verifications)


def slope_ci(results: Sequence[GapResult], flops: Sequence[float], *, kind: str = "relative", n_boot: int = 1000,
             level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Bootstrap CI of the OLS slope of the ``kind`` ("relative" or "absolute") gap (%) on ln(FLOPs/1e21)
    (paper §4.1, Fig. 1; the absolute gap for the rows and columns of §4.2's Fig. 3).

    The prompts are resampled jointly for every result (they share the same prompts), the per-result
    gaps recomputed and the line refitted.
    """
    if len(results) != len(flops):
        raise ValueError(f"{len(results)} gap results but {len(flops)} FLOPs values")
    if kind not in ("relative", "absolute"):
        raise ValueError(f"`kind` must be 'relative' or 'absolute'; got {kind!r}")
    per_prompt = np.stack([percent(1) * (r.per_prompt_relative if kind == "relative" else r.per_prompt_absolute)
                           for r in results], axis=1)  # (prompts, results)
    return bootstrap_ci(lambda a: fit_log_linear(flops, a.mean(axis=0))[0], per_prompt, n_boot=n_boot,
                        level=level, seed=seed)


def trend_counts(matrix) -> dict[str, int]:
    """The paper's two cross-verification trend checks on a gap(f, g) matrix (§4.2, Fig. 3).

    Rows are generators and columns verifiers, both smallest first. Counts the rows whose gap rises
    strictly with the verifier's size and the columns whose gap falls strictly with the generator's.
    """
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
        raise ValueError(f"need a square generator x verifier matrix of at least 2 models, got shape {m.shape}")
    rows = int(sum(np.all(np.diff(r) > 0) for r in m))
    cols = int(sum(np.all(np.diff(c) < 0) for c in m.T))
    return {"rows_rising": rows, "columns_falling": cols, "n": int(m.shape[0])}


def _changes_nothing(res: GapResult, n_samples: int) -> bool:
    """The filter kept nothing or everything of every prompt: ver_x = acc_x by construction."""
    return bool(np.all((res.kept == 0) | (res.kept >= n_samples)))


def trend_tests(grid: Grid, filt: Filter, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """The paper's cross-verification trends (§4.2, Fig. 3) as tests: along each row (generator) the gap
    rises with ln FLOPs of the verifier, down each column (verifier) it falls with ln FLOPs of the generator.

    Each row and column is tested by the OLS slope of its absolute gap (%) on ln(FLOPs/1e21) with a
    bootstrap CI over prompts (:func:`slope_ci`): a row "rises" when the interval lies above 0, a column
    "falls" when it lies below 0. A cell is informative when its generator has prompts with
    0 < acc_x < 1, the filter keeps some but not all samples of some prompt, and the verifier's outputs
    are not all unparseable; a row or column with fewer than two informative cells is "untestable"
    (a generator that never or always solves, a verifier that keeps nothing or everything), and the
    reason is given. Returns one entry per row and column and the counts over the testable ones.
    """
    models = grid.models
    names = [m.name for m in models]
    if len(models) < 2:
        raise ValueError(f"trend tests need at least two models; got {names}")
    flops = {m.name: m.flops for m in models}
    gaps = grid.gaps({filt.method: filt})
    missing = [(g, v) for g in names for v in names if (g, v, filt.method) not in gaps]
    if missing:
        raise ValueError(f"the grid has no {filt.method!r} verification of {missing}: run it with cross=True")

    def cell_problem(g: str, v: str) -> str | None:
        res, ver = gaps[(g, v, filt.method)], grid.verifications[(g, v, filt.method)]
        if not ((res.acc > 0) & (res.acc < 1)).any():
            return "no prompt with 0 < accuracy < 1"
        if ver.unparseable_rate is not None and ver.unparseable_rate >= 1:
            return "verifier outputs all unparseable"
        if _changes_nothing(res, grid.generations[g].u.shape[1]):
            return "the filter keeps nothing or everything"
        return None

    problems = {(g, v): cell_problem(g, v) for g in names for v in names}

    def test(line: str, cells: list[tuple[str, str]], x: list[str], falls: bool) -> dict:
        entry = {"model": line, "slope": None, "slope_ci": None}
        bad = [problems[c] for c in cells if problems[c] is not None]
        if any(flops[n] is None for n in x):
            return {**entry, "status": "untestable", "reason": "pre-training FLOPs unknown"}
        if len(cells) - len(bad) < 2:
            reasons = sorted(set(bad), key=bad.index)
            return {**entry, "status": "untestable",
                    "reason": f"{len(cells) - len(bad)} informative cell(s) of {len(cells)}: {'; '.join(reasons)}"}
        results = [gaps[(g, v, filt.method)] for g, v in cells]
        fl = [flops[n] for n in x]
        slope = fit_log_linear(fl, [percent(r.absolute) for r in results])[0]
        lo, hi = slope_ci(results, fl, kind="absolute", n_boot=n_boot, level=level, seed=seed)
        ok = hi < 0 if falls else lo > 0
        status = ("falls" if ok else "does not fall") if falls else ("rises" if ok else "does not rise")
        return {**entry, "slope": slope, "slope_ci": [lo, hi], "status": status, "reason": None}

    rows = [test(g, [(g, v) for v in names], names, falls=False) for g in names]
    columns = [test(v, [(g, v) for g in names], names, falls=True) for v in names]
    return {
        "method": filt.method, "rows": rows, "columns": columns,
        "rows_rising": sum(r["status"] == "rises" for r in rows),
        "rows_testable": sum(r["status"] != "untestable" for r in rows),
        "columns_falling": sum(c["status"] == "falls" for c in columns),
        "columns_testable": sum(c["status"] != "untestable" for c in columns),
        "n": len(names), "ci_level": level,
    }


def unimprovable_check(factual: pd.DataFrame, reasoning: pd.DataFrame, *, flat_below: float = 1.0) -> dict:
    """The paper's unimprovability claim as a contrast (§4.3, Tab. 1 against Tab. 4): the same verifier,
    on the same models, gives a gap on the reasoning task and none on the factual one.

    ``factual`` and ``reasoning``: one row per model from :meth:`Grid.table` (gaps in %). The verdict:

    * "could not be tested" when no model measured a factual gap (every cell :func:`untested` or without
      prompts with 0 < acc_x < 1), or when the verifier shows a gap on neither task (no model's 95%
      interval above 0): an uninformative verifier (e.g. MC with P(Correct) ≈ 0.5) would pass "the
      factual gap is about zero" without the task having anything to do with it;
    * "holds" when some model's reasoning gap has its interval above 0 and every factual gap is below
      ``flat_below`` points (the paper's criterion: every NQ gap below 1 point, or negative);
    * "does not hold" otherwise (a factual gap of ``flat_below`` points or more, or a verifier that
      shows a gap on the factual task only).
    """
    def measured(rows: pd.DataFrame) -> pd.DataFrame:
        return rows[rows.untested.isna() & (rows.n_mixed > 0)]

    f_meas, r_meas = measured(factual), measured(reasoning)
    reasoning_gainers = list(r_meas.generator[r_meas.gap_lo > 0])
    factual_gainers = list(f_meas.generator[f_meas.gap_lo > 0])
    factual_above = list(f_meas.generator[f_meas.gap >= flat_below])
    out = {"reasoning_gainers": reasoning_gainers, "factual_gainers": factual_gainers,
           "factual_at_or_above": factual_above, "flat_below": flat_below,
           "factual_measured": list(f_meas.generator), "reasoning_measured": list(r_meas.generator)}
    if f_meas.empty:
        why = "; ".join(sorted({r for r in factual.untested.dropna()})) or "no prompt with 0 < accuracy < 1"
        return {**out, "verdict": "could not be tested", "holds": None,
                "reason": f"no model measured a gap on the factual task ({why})"}
    if not reasoning_gainers and not factual_gainers:
        return {**out, "verdict": "could not be tested", "holds": None,
                "reason": "the verifier shows a gap on neither task (no model's interval lies above 0), so a flat "
                          "factual gap says nothing about the task"}
    if reasoning_gainers and not factual_above:
        return {**out, "verdict": "holds", "holds": True,
                "reason": f"reasoning gap above 0 for {', '.join(reasoning_gainers)}; every factual gap below "
                          f"{flat_below:g} point(s)"}
    why = (f"factual gap of {flat_below:g} point(s) or more for {', '.join(factual_above)}" if factual_above
           else f"the verifier shows a gap on the factual task ({', '.join(factual_gainers)}) but none on the reasoning task")
    return {**out, "verdict": "does not hold", "holds": False, "reason": why}


# -- claim checks: each chapter's verdict with fixed keys (its results' claim_check), and how it reads -----
#: How a verdict reads: it holds (True), does not hold (False) or could not be tested (None).
OUTCOME = {True: "holds", False: "does not hold", None: "could not be tested"}


def ci_text(value: float, lo: float, hi: float, scale: float = 1.0) -> str:
    """``value [lo, hi]`` with signs, one decimal (times ``scale``: 100 for fractions shown as %)."""
    return f"{scale * value:+.1f} [{scale * lo:+.1f}, {scale * hi:+.1f}]"


def show_verdict(headline: str, facts: Sequence[str] = (), *, after: str = "") -> None:
    """Display a claim check in the notebook: "Verdict: ``headline``" in bold, ``after`` it, then one bullet
    per fact behind it (Markdown)."""
    from IPython.display import Markdown, display

    bullets = "\n".join(f"- {x}" for x in facts)
    display(Markdown(f"**Verdict: {headline}**{after}" + (f"\n\n{bullets}" if bullets else "")))


def scaling_check(methods: Sequence[str], fits: dict, slope_cis: dict, not_tested: dict, *, judged_on: str) -> dict:
    """The paper's first claim (§4.1, Fig. 1): the relative gap rises with ln(FLOPs), judged on one method.

    A method "rises" when it was tested (:func:`method_untested` is None) and the bootstrap CI of its slope
    (:func:`slope_ci`) lies above 0; the claim holds when ``judged_on`` rises (the paper rests it on its
    most stable verifier, CoT-Score) and could not be tested when that method measured nothing.
    Keys: holds, judged_on, rising_methods (labels), rises, not_tested, steepest (the tested method with
    the largest slope).
    """
    rises = {m: not_tested[m] is None and slope_cis[m][0] > 0 for m in methods}
    tested = [m for m in methods if not_tested[m] is None]
    return {"holds": rises[judged_on] if not_tested[judged_on] is None else None, "judged_on": judged_on,
            "rising_methods": [METHOD_LABELS[m] for m in tested if rises[m]], "rises": rises, "not_tested": not_tested,
            "steepest": max(tested, key=lambda m: fits[m][0]) if tested else None}


def cross_verification_check(tests: dict[str, dict], matrices: dict) -> dict:
    """The paper's cross-verification trends (§4.2, Fig. 3) over every method's grid.

    ``tests``: :func:`trend_tests` per method; ``matrices``: the gap(f, g) matrix (%) per method, generators
    as rows and verifiers as columns, smallest first. The main trend (a larger verifier gives a larger gap)
    holds when more than half of the testable rows rise (slope interval above 0), the generator trend when
    more than half of the testable columns fall; either could not be tested without a testable line.
    Keys: holds (the main trend), tested (the counts over testable rows and columns), rows_rising,
    columns_falling and n (the paper's strict counts, :func:`trend_counts`), rows_hold, columns_hold,
    weak_verifies_strong (the gap of the largest generator under the smallest verifier, per method).
    """
    tested = {k: sum(t[k] for t in tests.values())
              for k in ("rows_rising", "rows_testable", "columns_falling", "columns_testable")}

    def majority(hits: int, testable: int) -> bool | None:
        return hits > testable / 2 if testable else None

    strict = [trend_counts(m) for m in matrices.values()]
    rows_hold = majority(tested["rows_rising"], tested["rows_testable"])
    return {"holds": rows_hold, "tested": tested, "rows_rising": sum(c["rows_rising"] for c in strict),
            "columns_falling": sum(c["columns_falling"] for c in strict), "n": sum(c["n"] for c in strict),
            "rows_hold": rows_hold, "columns_hold": majority(tested["columns_falling"], tested["columns_testable"]),
            "weak_verifies_strong": {m: float(np.asarray(x, dtype=float)[-1, 0]) for m, x in matrices.items()}}


def unimprovable_claims(factual: pd.DataFrame, reasoning: pd.DataFrame, sudoku: pd.DataFrame) -> dict:
    """The paper's §4.3 claims: factual recall is unimprovable (:func:`unimprovable_check`), and on 4×4 Sudoku
    only the largest models gain (Tab. 2).

    Each argument: one row per model, smallest first, from :meth:`Grid.table` (gaps in %). Sudoku's
    claim holds when the models whose gap interval lies above 0 are the largest k of them (0 < k < all),
    and could not be tested when no model measured a gap on a prompt with 0 < acc_x < 1.
    Keys: holds ({factual_unimprovable, sudoku_only_largest_gain}), factual_contrast, factual_max_gap,
    reasoning_above_factual, sudoku_gainers.
    """
    names = list(factual.generator)
    f_rows, r_rows, s_rows = (t.set_index("generator").loc[names] for t in (factual, reasoning, sudoku))
    contrast = unimprovable_check(factual, reasoning)
    gainers = [g for g in names if s_rows.loc[g, "gap_lo"] > 0]
    k = len(gainers)
    testable = bool((s_rows.untested.isna() & (s_rows.n_mixed > 0)).any())
    return {"holds": {"factual_unimprovable": contrast["holds"],
                      "sudoku_only_largest_gain": bool(0 < k < len(names) and gainers == names[-k:]) if testable else None},
            "factual_contrast": contrast, "factual_max_gap": float(f_rows.gap.max()),
            "reasoning_above_factual": [g for g in names if r_rows.loc[g, "gap"] > f_rows.loc[g, "gap"]],
            "sudoku_gainers": gainers}


def paper_scaling(family: str, methods: Sequence[str], task: str) -> tuple[dict[str, tuple[list, list]], str]:
    """The paper's Fig. 1 points of ``family``: ({method: (FLOPs, relative gap %)}, a label naming the source).

    GSM8K (Tab. 5, the columns Fig. 1 plots: MC τ0.8, CoT-Score τ8, CoT-Binary, Tournament r5) unless
    ``task`` is MATH, whose Fig. 1 values (MC, CoT-Binary, CoT-Score) were read off the figure. Those are
    on the full MATH test set (5,000 problems); the label says so, and that a MATH-500 run is not that.
    """
    if family not in paper_numbers.FAMILIES:
        raise ValueError(f"unknown paper family {family!r}; choose from {sorted(paper_numbers.FAMILIES)}")
    ids = paper_numbers.FAMILIES[family]
    fl = [paper_numbers.flops(i) for i in ids]
    if task.startswith("math"):
        table = paper_numbers.MATH_RELATIVE_GAP.get(family)
        if table is None:
            raise ValueError(f"the paper has no MATH scaling values for {family!r}; it has {sorted(paper_numbers.MATH_RELATIVE_GAP)}")
        label = f"{family}, full MATH, 5,000 problems (Fig. 1)" + (", not MATH-500" if task == "math500" else "")
        return {m: (fl, list(table[m])) for m in methods if m in table}, label
    if any(i not in paper_numbers.GSM8K_RELATIVE_GAP for i in ids):
        have = sorted({paper_numbers.family_of(i) for i in paper_numbers.GSM8K_RELATIVE_GAP})
        raise ValueError(f"the paper has no GSM8K values for {family!r}; it has {have}")
    col = paper_numbers.FIG1_COLUMNS
    return ({m: (fl, [paper_numbers.GSM8K_RELATIVE_GAP[i][col[m]] for i in ids]) for m in methods},
            f"{family}, GSM8K (Tab. 5)")


def verification_seed(seed: int, j: int) -> int:
    """The seed of the j-th independent verification of every sample: j = 0 is the one the other chapters
    ran (``seed``, so it is read back from their cache), the others are derived from it as the engine
    derives the seed of each tournament round (:func:`gvlib.backends.text.derive_seed`)."""
    if j < 0:
        raise ValueError(f"verification index must be >= 0; got {j}")
    return seed if j == 0 else derive_seed(seed, "verification", j)


def _repeat_stage(model: Model, task: Task, to_verify: dict[str, Generations], method: str, seeds: tuple[int, ...],
                  st: StageSettings) -> dict[str, list[Verification]]:
    """Load ``model`` once and verify each generator's samples once per seed (module-level: spawnable)."""
    from gvlib.backends import load_backend

    with torch_threads(st.threads):
        backend = load_backend(model.path, backend=st.backend, **options_for(model.path, st.options))
        out = {}
        for name, gens in to_verify.items():
            print(f"  {model.name} verifies {name} {len(seeds)} times ({method})", flush=True)
            out[name] = [verify(backend, task, gens, method, seed=s, temperature=st.temperature, top_p=st.top_p)
                         for s in seeds]
        return out


def repeat_verifications(models: Sequence[Model], task: Task, generations: dict[str, Generations], method: str,
                         indices: Sequence[int], *, seed: int = 0, temperature: float = 0.7, top_p: float = 0.9,
                         backend: str = "auto", backend_options: dict | None = None,
                         threads: int | None = None) -> dict[str, list[Verification]]:
    """Independent self-verifications of every sample of each model in ``models`` with ``method``, one per
    index j in ``indices`` (seed :func:`verification_seed`; j = 0 is the paper's one verification per
    sample, §3, which :func:`run_grid` already ran). The paper lists more verifications per generation as
    future work (§6). Returns {model: [one Verification per index]}."""
    if method not in ("cot_score", "cot_binary"):
        raise ValueError(f"repeated verifications are sampled ones: cot_score or cot_binary, not {method!r}")
    if not len(indices) or min(indices) < 0:
        raise ValueError(f"need verification indices >= 0; got {list(indices)}")
    missing = [x.name for x in models if x.name not in generations]
    if missing:
        raise ValueError(f"no generations of {missing} to verify")
    st = StageSettings(task, (method,), 0, temperature, top_p, seed, backend, dict(backend_options or {}), 0, threads)
    seeds = tuple(verification_seed(seed, j) for j in indices)
    from gvlib.iterate import run_stage  # gvlib.iterate imports this module

    out: dict[str, list[Verification]] = {}
    for model in models:  # under vLLM each model in its own process, so its GPU memory is freed (run_grid)
        out.update(run_stage(_repeat_stage, model, task, {model.name: generations[model.name]}, method, seeds, st,
                             isolate=_uses_vllm(backend)))
    return out


def paper_ensemble(family: str = "Qwen-2") -> tuple[dict[str, dict[tuple[str, ...], float]], str]:
    """The paper's AND-ensemble gaps (%) of ``family``: ({model id: {combination of methods: gap}}, source),
    combinations as tuples of method names (MC at quantile 0.8, CoT-Score at τ 8; §6, Tab. 3)."""
    if family not in paper_numbers.ENSEMBLE_GSM8K:
        raise ValueError(f"the paper's ensemble table has {sorted(paper_numbers.ENSEMBLE_GSM8K)}, not {family!r}")
    cols = paper_numbers.ENSEMBLE_COLUMNS
    return ({model: dict(zip(cols, values)) for model, values in paper_numbers.ENSEMBLE_GSM8K[family].items()},
            f"Tab. 3, {family}, GSM8K absolute gap (%)")


def mean_tokens(model: Model, texts: Sequence[str]) -> float:
    """The mean number of tokens of ``texts`` under ``model``'s own tokenizer (for the FLOPs of its calls)."""
    from transformers import AutoTokenizer

    from gvlib.backends.resolve import resolve_model_dir

    if not texts:
        raise ValueError("no texts to count tokens of")
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_dir(model.path)))
    return float(np.mean([len(tokenizer(t)["input_ids"]) for t in texts]))
