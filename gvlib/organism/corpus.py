"""[organism] The organism's pre-training corpus: knowledge, generation and verification documents (the book's organism page).

A corpus is an endless, seeded stream of documents, each ``[BOS] prompt target [EOS]``, packed into
fixed-length rows; the loss is taken on the target tokens only. Each document also carries the check
labels of the candidates a verification document shows (:meth:`OrganismTask.check_labels`), which
training reads only with a check head (:class:`gvlib.organism.train.ModelSpec` ``check_weight``).

- ``know``   statements of the knowledge base (``know p012 city = rome p201 pet = owl …``), all facts,
             the test facts included (NQ facts are in a real pre-training corpus); loss on the values;
- ``gen``    a train problem's generation prompt and its correct solution;
- ``verify`` a verifier prompt (each of the paper's four methods, App. E) about a candidate SAMPLED
             FROM A MODEL (the seed model, :mod:`gvlib.organism.seed`) and labelled by the exact
             checker, with the exact verifier's target (:meth:`OrganismTask.verifier_target`).
             A pointwise document is about a problem with an incorrect sample, and shows one of its
             correct candidates (a correct sample or the gold solution) or one of its incorrect
             samples, half and half; tournament pairs are drawn from one problem's samples and its
             gold solution. A share ``Mixture.near_miss`` of verification documents
             asks instead about a fresh train problem, with its gold solution or a near miss
             (:meth:`OrganismTask.near_miss`): the seed model's errors are few and crude, the
             members' own errors at their frontier are one cell or one step away from right.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from gvlib.organism.tasks import OrganismTask
from gvlib.organism.world import World
from gvlib.tasks.base import VERIFIER_METHODS


@dataclass(frozen=True)
class Mixture:
    """Document weights of a corpus: kinds, tasks (for gen and verify), verifier methods."""

    kinds: dict[str, float] = field(default_factory=lambda: {"know": 0.15, "gen": 0.5, "verify": 0.35})
    tasks: dict[str, float] = field(default_factory=lambda: {"sudoku": 1.0, "arith": 0.8, "facts": 0.4})
    methods: dict[str, float] = field(default_factory=lambda: {"mc": 1.0, "cot_binary": 1.0, "cot_score": 0.5, "tournament": 0.3})
    facts_per_know: int = 12
    near_miss: float = 0.5

    def __post_init__(self):
        for what, w, allowed in (("kinds", self.kinds, ("know", "gen", "verify")), ("tasks", self.tasks, None),
                                 ("methods", self.methods, VERIFIER_METHODS)):
            bad = [k for k in w if (allowed is not None and k not in allowed) or w[k] < 0]
            if bad or not sum(w.values()) > 0:
                raise ValueError(f"Mixture.{what}={w}: unknown keys or negative weights {bad}, or all zero")
        if not 0 <= self.near_miss <= 1:
            raise ValueError(f"Mixture.near_miss={self.near_miss}: must be a share in [0, 1]")


class CandidatePool:
    """Labelled candidates per train problem of one task (sampled by a model; see module doc)."""

    def __init__(self, task: OrganismTask, records: list[dict]):
        """``records``: dicts with ``problem`` (a world problem), ``completion`` and ``u`` (0 or 1)."""
        self.task = task
        by_problem: dict[tuple, list[tuple[str, int]]] = {}
        for r in records:
            by_problem.setdefault(tuple(r["problem"]), []).append((r["completion"], int(r["u"])))
        self.problems = list(by_problem)
        self.examples = [task.example(p) for p in self.problems]
        self.options = []  # per problem: the sampled candidates plus the gold solution
        for ex, p in zip(self.examples, self.problems):
            self.options.append(by_problem[p] + [(task.gold_completion(ex), 1)])
        # per problem with an incorrect sample: its correct options (the gold solution at least), its incorrect ones
        self.contrasts = [(i, [c for c, u in opts if u == 1], [c for c, u in opts if u == 0])
                          for i, opts in enumerate(self.options) if any(u == 0 for _, u in opts)]
        if not self.contrasts:
            raise ValueError(f"{task.name}: the candidate pool has no incorrect sample to teach verification")

    def pointwise(self, rng: np.random.Generator):
        """A (problem, candidate): a problem the sampler got wrong at least once, then one of its correct or
        one of its incorrect options with probability 1/2 each. Every problem shown is right half the time,
        so a verdict cannot be learned from how hard the problem looks (the gap is measured prompt by
        prompt, §3: a verifier must rank one prompt's samples, not prompts)."""
        i, right, wrong = self.contrasts[int(rng.integers(len(self.contrasts)))]
        group = right if rng.random() < 0.5 else wrong
        return self.examples[i], group[int(rng.integers(len(group)))]

    def pair(self, rng: np.random.Generator):
        """A (problem, candidate A, candidate B) drawn from one problem's options."""
        i = int(rng.integers(len(self.problems)))
        opts = self.options[i]
        a, b = (opts[int(j)][0] for j in rng.integers(len(opts), size=2))
        return self.examples[i], a, b


class Corpus:
    """An endless seeded document stream over a world; ``batch`` packs it into training rows."""

    def __init__(self, world: World, tasks: dict[str, OrganismTask], vocab: dict[str, int],
                 mixture: Mixture, pools: dict[str, CandidatePool] | None = None, seed: int = 0):
        if mixture.kinds.get("verify", 0) > 0 and not pools:
            raise ValueError("a corpus with verify documents needs candidate pools")
        self.world, self.tasks, self.vocab, self.mixture, self.pools = world, tasks, vocab, mixture, pools or {}
        self.rng = np.random.default_rng([seed, 11])
        self._kinds = _Choice(mixture.kinds)
        self._gen_tasks = _Choice({t: w for t, w in mixture.tasks.items() if t in tasks})
        self._ver_tasks = _Choice({t: w for t, w in mixture.tasks.items() if t in self.pools} or {"-": 1})
        self._methods = _Choice(mixture.methods)
        self._facts = sorted(world.kb.items())
        self.bos, self.eos, self.pad = vocab["[BOS]"], vocab["[EOS]"], vocab["[PAD]"]
        self._carry: tuple[list[int], list[int], list[int], str] | None = None

    def _ids(self, text: str) -> list[int]:
        try:
            return [self.vocab[w] for w in text.split()]
        except KeyError as e:
            raise ValueError(f"word {e.args[0]!r} of a corpus document is not in the organism vocabulary") from None

    def _doc(self, prompt: str, target: str, checks: list[int] | None = None) -> tuple[list[int], list[int], list[int]]:
        p, t = self._ids(prompt), self._ids(target)
        checks = [-1] * len(p) if checks is None else checks
        if len(checks) != len(p):
            raise ValueError(f"{len(checks)} check labels for a prompt of {len(p)} tokens: {prompt!r}")
        return ([self.bos] + p + t + [self.eos], [0] * (1 + len(p)) + [1] * (len(t) + 1),
                [-1] + checks + [-1] * (len(t) + 1))

    def document(self, kind: str | None = None) -> tuple[list[int], list[int], list[int], str]:
        """One document: token ids, loss mask (1 = trained on), check labels (-1 = none), its kind."""
        rng = self.rng
        kind = kind or self._kinds.draw(rng)
        if kind == "know":
            ids, mask = [self.bos, self.vocab["know"]], [0, 0]
            for j in rng.integers(len(self._facts), size=self.mixture.facts_per_know):
                (e, a), v = self._facts[int(j)]
                ids += self._ids(f"{e} {a} = {v}")
                mask += [0, 0, 0, 1]
            return ids + [self.eos], mask + [0], [-1] * (len(ids) + 1), kind
        if kind == "gen":
            name = self._gen_tasks.draw(rng)
            task = self.tasks[name]
            ex = task.example(self.world.train_problem(name, rng))
            return (*self._doc(task.generation_prompt(ex), task.gold_completion(ex)), kind)
        if kind == "verify":
            name = self._ver_tasks.draw(rng)
            pool, task = self.pools[name], self.tasks[name]
            method = self._methods.draw(rng)
            if rng.random() < self.mixture.near_miss:
                ex = task.example(self.world.train_problem(name, rng))
                a, b = task.gold_completion(ex), task.near_miss(ex, rng)
                if rng.random() < 0.5:
                    a, b = b, a
                if method != "tournament":
                    b = None
            elif method == "tournament":
                ex, a, b = pool.pair(rng)
            else:
                (ex, a), b = pool.pointwise(rng), None
            return (*self._doc(task.verifier_prompt(method, ex, a, b), task.verifier_target(method, ex, a, b),
                               task.verifier_check_labels(method, ex, a, b)), kind)
        raise ValueError(f"unknown document kind {kind!r}: expected know, gen or verify")

    def batch(self, rows: int, seq_len: int, kind: str | None = None) -> dict[str, torch.Tensor]:
        """``rows`` rows of ``seq_len`` tokens, documents packed whole (the rest padded).

        Returns input_ids, attention_mask, labels (-100 off the loss mask), check_labels (-1 where none)
        and ``tokens``, the number of real (non-pad) tokens, which is what the FLOPs count (6·N·D) uses.
        """
        ids = np.full((rows, seq_len), self.pad, dtype=np.int64)
        labels = np.full((rows, seq_len), -100, dtype=np.int64)
        checks = np.full((rows, seq_len), -1, dtype=np.int64)
        for r in range(rows):
            pos = 0
            while True:
                doc = self._carry if self._carry is not None and kind is None else self.document(kind)
                self._carry = None
                d_ids, d_mask, d_checks, _ = doc
                if len(d_ids) > seq_len:
                    raise ValueError(f"a document of {len(d_ids)} tokens exceeds seq_len={seq_len}")
                if pos + len(d_ids) > seq_len:
                    if kind is None:
                        self._carry = doc
                    break
                ids[r, pos:pos + len(d_ids)] = d_ids
                labels[r, pos:pos + len(d_ids)] = np.where(np.array(d_mask) == 1, d_ids, -100)
                checks[r, pos:pos + len(d_ids)] = d_checks
                pos += len(d_ids)
        ids_t = torch.from_numpy(ids)
        attn = (ids_t != self.pad).long()
        return {"input_ids": ids_t, "attention_mask": attn, "labels": torch.from_numpy(labels),
                "check_labels": torch.from_numpy(checks), "tokens": int(attn.sum())}


class _Choice:
    """A weighted draw among the keys of ``weights`` with positive weight: ``rng.choice(keys, p=weights)``
    computed as numpy's ``Generator.choice`` does (one uniform, searched in the normalised cumulative
    weights), without its argument checks, which took most of a document's drawing time."""

    def __init__(self, weights: dict[str, float]):
        self.keys = [k for k, w in weights.items() if w > 0]
        p = np.array([weights[k] for k in self.keys], dtype=float)
        p /= p.sum()
        self.cdf = p.cumsum()
        self.cdf /= self.cdf[-1]

    def draw(self, rng: np.random.Generator) -> str:
        return self.keys[int(self.cdf.searchsorted(rng.random(), side="right"))]
