"""[verifiers] The paper's four verifiers (§3, App. A, App. E).

Each takes a verifier backend, a task, the problems and their candidates (``candidates[i][j]`` is
sample j of problem i) and returns a :class:`Verification` whose ``scores`` have shape
(problems, samples), usable as ``s`` in :func:`gvlib.metrics.gap`. Self-verification passes the
generator's backend, cross-verification another one: the call is the same.

- **MC**: û = P(t+) / (P(t+) + P(t−)) from the log-probs of the task's verdict words after the MC
  prompt (one forward pass per verification prompt; multi-token words are summed by the backend).
- **CoT-Binary**: one sampled justification per candidate, parsed for ``Correctness: <correct>``;
  score 1 or 0.
- **CoT-Score**: one sampled justification, parsed for ``Score: <N>``, N in 1..10.
- **Tournament**: single elimination over the 2^r candidates of a problem, in disjoint pairs of
  randomly ordered survivors (seeded per problem), halving each round. The score is the number of
  rounds a candidate survived, so ``survivors[r] = scores >= r`` is the 0/1 mask after round r.

Parsing (the paper does not say how its outputs were read). A model copies the App. E formats
loosely, so each parser accepts, case-insensitively, the keyword with or without a space before
its colon, bold or other markdown around keyword or value, angle or square brackets around the
value and punctuation after it: ``Correctness: <Correct>``, ``**Correctness:** incorrect.``,
``Score: <9>``, ``**Score:** 9/10``, ``Preferred solution: **B**``. The value must be whole (a
``Correctness: <corr`` cut short, ``Score: 9.5`` or ``Preferred solution: <C>`` is not read).
The LAST match in an output wins (a model that revises its verdict ends with the revision).

Conventions the paper leaves open (§3, App. E), decided here and counted: an unparseable CoT-Binary output
scores 0 (rejected), an unparseable CoT-Score output scores 0 (below every threshold τ ≥ 1, so
rejected whatever the threshold and kept apart from a real 1), an unparseable tournament
comparison is decided by a seeded coin flip and is left out of the position bias. Sampling uses
the paper's settings (§3 fn. 4: T = 0.7, top-p 0.9, up to 512 new tokens: the real tasks'
``verifier_max_new_tokens``; the organism's tasks set their own, shorter budgets), one
verification per candidate. A verification that reaches that budget without a readable verdict
is counted as truncated (:attr:`Verification.truncation_rate`).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .backends.base import Backend, SamplingParams
from .backends.text import derive_seed
from .tasks.base import VERIFIER_METHODS, Example, Task

#: What a model may write between a keyword's colon and its value: spaces, markdown, brackets, quotes.
_DECOR = r"[\s*_`\"'<\[({]*"
#: After a keyword, before its colon: spaces and markdown (``**Score**:``).
_COLON = r"[\s*_]*:"


def _format(keyword: str, value: str) -> re.Pattern:
    return re.compile(rf"\b{keyword}{_COLON}{_DECOR}{value}", re.IGNORECASE)


#: The shared verifier output formats (see module doc; last match wins).
COT_BINARY_RE = _format("correctness", r"(correct|incorrect)\b")
COT_SCORE_RE = _format("score", r"(\d+)(?!\.?\d)")
TOURNAMENT_RE = _format(r"preferred\s+solution", r"(?:solution\s+)?([AB])\b")

#: Score given to an unparseable CoT output (see module doc).
UNPARSEABLE_SCORE = {"cot_binary": 0.0, "cot_score": 0.0}


def _last(pattern: re.Pattern, text: str) -> str | None:
    found = pattern.findall(text)
    return found[-1] if found else None


def parse_cot_binary(text: str) -> float | None:
    """1.0 for ``Correctness: <correct>``, 0.0 for ``<incorrect>``, None if absent (last match)."""
    verdict = _last(COT_BINARY_RE, text)
    return None if verdict is None else float(verdict.lower() == "correct")


def parse_cot_score(text: str) -> float | None:
    """N from the last ``Score: <N>`` (any form of the module doc); None if absent or N is outside 1..10."""
    n = _last(COT_SCORE_RE, text)
    return float(n) if n is not None and 1 <= int(n) <= 10 else None


def parse_tournament(text: str) -> str | None:
    """"A" or "B" from the last ``Preferred solution: <A>`` / ``<B>``; None if absent."""
    pick = _last(TOURNAMENT_RE, text)
    return None if pick is None else pick.upper()


@dataclass
class Verification:
    """What one verifier said about every candidate.

    scores          (problems, samples) float: û per candidate (tournament: rounds survived)
    raw             the verifier's raw outputs: per problem, per sample the text (CoT), the
                    log-probs [log P(t+), log P(t−)] (MC), or the list of matches (tournament)
    n_unparseable   outputs the regex could not read (given the documented default)
    n_outputs       verifier outputs in all (comparisons for the tournament)
    survivors       tournament only: (rounds + 1, problems, samples) 0/1 masks, round 0 = all
    n_first         tournament only: parsed comparisons that preferred the first solution (A)
    n_parsed        tournament only: parsed comparisons
    n_truncated     sampled outputs that reached the token budget without a readable verdict (None:
                    the backend does not say which outputs reached it)
    """

    method: str
    scores: np.ndarray
    raw: list
    n_unparseable: int = 0
    n_outputs: int = 0
    survivors: np.ndarray | None = None
    n_first: int = 0
    n_parsed: int = 0
    meta: dict = field(default_factory=dict)
    n_truncated: int | None = 0

    @property
    def unparseable_rate(self) -> float:
        return self.n_unparseable / self.n_outputs if self.n_outputs else 0.0

    @property
    def truncation_rate(self) -> float | None:
        """Fraction of outputs cut by the token budget before a verdict; None for MC (nothing is
        sampled), without outputs, or when the backend does not report the budget being reached."""
        if self.method == "mc" or self.n_truncated is None or not self.n_outputs:
            return None
        return self.n_truncated / self.n_outputs

    @property
    def position_bias(self) -> float | None:
        """Tournament: P(prefer the first solution) over parsed comparisons (paper §6.1: 0.56)."""
        return self.n_first / self.n_parsed if self.n_parsed else None

    def position_bias_by_round(self) -> list[float | None]:
        """Tournament: P(prefer the first solution) among each round's parsed comparisons."""
        rounds = int(self.meta.get("rounds", 0))
        matches = [m for per_problem in self.raw for m in per_problem if m["parsed"]]
        firsts = [[m["winner"] == m["a"] for m in matches if m["round"] == r] for r in range(1, rounds + 1)]
        return [sum(f) / len(f) if f else None for f in firsts]

    def to_dict(self) -> dict:
        """A JSON-able dict (arrays as lists); :meth:`from_dict` inverts it."""
        d = dataclasses.asdict(self)
        d["scores"] = self.scores.tolist()
        d["survivors"] = None if self.survivors is None else self.survivors.tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Verification":
        surv = d.get("survivors")
        return cls(**dict(d, scores=np.asarray(d["scores"], dtype=float).reshape(len(d["raw"]), -1),
                          survivors=None if surv is None else np.asarray(surv, dtype=np.int8)))

    @classmethod
    def concat(cls, parts: Sequence["Verification"]) -> "Verification":
        """One Verification from per-chunk ones (problems stacked in order)."""
        if not parts:
            raise ValueError("nothing to concatenate")
        first = parts[0]
        surv = None if first.survivors is None else np.concatenate([p.survivors for p in parts], axis=1)
        return cls(method=first.method, scores=np.concatenate([p.scores for p in parts]),
                   raw=[r for p in parts for r in p.raw],
                   n_unparseable=sum(p.n_unparseable for p in parts),
                   n_outputs=sum(p.n_outputs for p in parts), survivors=surv,
                   n_first=sum(p.n_first for p in parts), n_parsed=sum(p.n_parsed for p in parts),
                   meta=dict(first.meta), n_truncated=_total([p.n_truncated for p in parts]))


def _total(counts: Sequence[int | None]) -> int | None:
    """The sum, or None when any count is unknown."""
    return None if any(c is None for c in counts) else sum(counts)


def _truncated(outs: Sequence, parsed: Sequence) -> int | None:
    """Outputs that hit the token limit and hold no verdict (None if the backend does not say)."""
    return _total([None if o.hit_limit is None else int(o.hit_limit and p is None) for o, p in zip(outs, parsed)])


def verifier_params(task: Task, *, seed: int = 0, temperature: float = 0.7, top_p: float = 0.9,
                    max_new_tokens: int | None = None) -> SamplingParams:
    """Sampling settings of a CoT verifier: the paper's T and top-p, one output per candidate."""
    return SamplingParams(n=1, temperature=temperature, top_p=top_p,
                          max_new_tokens=max_new_tokens or task.verifier_max_new_tokens,
                          stop=tuple(getattr(task, "verifier_stop", task.stop)), seed=seed)


def _check_shape(examples: Sequence[Example], candidates: Sequence[Sequence[str]]) -> int:
    if len(examples) != len(candidates):
        raise ValueError(f"{len(examples)} problems but {len(candidates)} candidate lists")
    sizes = {len(c) for c in candidates}
    if len(sizes) > 1:
        raise ValueError(f"every problem needs the same number of candidates, got sizes {sorted(sizes)}")
    return sizes.pop() if sizes else 0


def verify_mc(backend: Backend, task: Task, examples: Sequence[Example],
              candidates: Sequence[Sequence[str]]) -> Verification:
    """MC scores P(t+) / (P(t+) + P(t−)) for every candidate (see module doc)."""
    n = _check_shape(examples, candidates)
    prompts = [task.verifier_prompt("mc", ex, c) for ex, cs in zip(examples, candidates) for c in cs]
    lp = backend.logprob_continuations(prompts, list(task.mc_tokens)) if prompts else np.zeros((0, 2))
    scores = 1.0 / (1.0 + np.exp(lp[:, 1] - lp[:, 0]))
    raw = lp.reshape(len(examples), n, 2).tolist()
    return Verification("mc", scores.reshape(len(examples), n), raw, 0, len(prompts))


def verify_cot(method: str, backend: Backend, task: Task, examples: Sequence[Example],
               candidates: Sequence[Sequence[str]], params: SamplingParams) -> Verification:
    """CoT-Binary or CoT-Score: one sampled verification per candidate, parsed (module doc)."""
    parse = {"cot_binary": parse_cot_binary, "cot_score": parse_cot_score}[method]
    n = _check_shape(examples, candidates)
    prompts = [task.verifier_prompt(method, ex, c) for ex, cs in zip(examples, candidates) for c in cs]
    outs = [o[0] for o in backend.sample_completions(prompts, dataclasses.replace(params, n=1))] if prompts else []
    texts = [o.text for o in outs]
    parsed = [parse(t) for t in texts]
    scores = np.array([UNPARSEABLE_SCORE[method] if s is None else s for s in parsed], dtype=float)
    raw = [texts[i * n:(i + 1) * n] for i in range(len(examples))]
    return Verification(method, scores.reshape(len(examples), n), raw,
                        sum(s is None for s in parsed), len(texts), n_truncated=_truncated(outs, parsed))


def max_rounds(n: int) -> int:
    """The most knock-out rounds over n samples: r with 2**r the largest power of 2 dividing n."""
    return (n & -n).bit_length() - 1 if n > 0 else 0


def verify_tournament(backend: Backend, task: Task, examples: Sequence[Example],
                      candidates: Sequence[Sequence[str]], params: SamplingParams,
                      rounds: int | None = None, seed: int = 0) -> Verification:
    """Single elimination over each problem's candidates for ``rounds`` rounds (module doc).

    ``rounds`` defaults to :func:`max_rounds` (a full tournament when the sample count is a power
    of 2); samples must be divisible by 2**rounds. Pairings use a generator seeded by ``seed`` and
    the problem's id, so they do not depend on which other problems are verified alongside.
    """
    n = _check_shape(examples, candidates)
    if rounds is None:
        rounds = max_rounds(n)
    if rounds < 0 or n % (2 ** rounds):
        raise ValueError(f"tournament rounds={rounds} needs a multiple of 2**{rounds} samples, got {n}")
    rngs = [np.random.default_rng(derive_seed(seed, "tournament", ex.id)) for ex in examples]
    alive = [list(range(n)) for _ in examples]
    wins = np.zeros((len(examples), n))
    raw: list[list[dict]] = [[] for _ in examples]
    n_first = n_parsed = n_unparseable = n_outputs = 0
    truncated: list[int | None] = []
    for r in range(1, rounds + 1):
        matches = []
        for p, rng in enumerate(rngs):
            order = rng.permutation(alive[p]).tolist()
            matches += [(p, order[i], order[i + 1]) for i in range(0, len(order), 2)]
        prompts = [task.verifier_prompt("tournament", examples[p], candidates[p][a], candidates[p][b])
                   for p, a, b in matches]
        outs = [o[0] for o in backend.sample_completions(
            prompts, dataclasses.replace(params, n=1, seed=derive_seed(params.seed, "round", r)))]
        picks = [parse_tournament(o.text) for o in outs]
        truncated.append(_truncated(outs, picks))
        alive = [[] for _ in examples]
        for (p, a, b), out, parsed in zip(matches, outs, picks):
            pick = parsed
            if parsed is None:
                n_unparseable += 1
                pick = "AB"[int(rngs[p].integers(2))]
            else:
                n_parsed += 1
                n_first += pick == "A"
            winner = a if pick == "A" else b
            wins[p, winner] += 1
            alive[p].append(winner)
            raw[p].append({"round": r, "a": a, "b": b, "output": out.text, "winner": winner,
                           "parsed": parsed is not None})
        n_outputs += len(matches)
    survivors = np.stack([(wins >= k).astype(np.int8) for k in range(rounds + 1)])
    return Verification("tournament", wins, raw, n_unparseable, n_outputs, survivors, n_first, n_parsed,
                        meta={"rounds": rounds}, n_truncated=_total(truncated))


def verify(method: str, backend: Backend, task: Task, examples: Sequence[Example],
           candidates: Sequence[Sequence[str]], *, seed: int = 0, params: SamplingParams | None = None,
           rounds: int | None = None) -> Verification:
    """Run verifier ``method`` (one of VERIFIER_METHODS) on every candidate of every problem."""
    if method not in VERIFIER_METHODS:
        raise ValueError(f"unknown verifier method {method!r}; choose one of {VERIFIER_METHODS}")
    if method == "mc":
        return verify_mc(backend, task, examples, candidates)
    params = params or verifier_params(task, seed=seed)
    if method == "tournament":
        return verify_tournament(backend, task, examples, candidates, params, rounds=rounds, seed=seed)
    return verify_cot(method, backend, task, examples, candidates, params)
