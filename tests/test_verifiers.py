"""The four verifiers: parsers, MC by hand, CoT scoring, tournament bookkeeping, determinism."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from gvlib import verifiers
from gvlib.backends import SamplingParams, load_backend
from gvlib.backends.base import Backend, Completion
from gvlib.tasks.base import Example, Task
from gvlib.verifiers import parse_cot_binary, parse_cot_score, parse_tournament, verify
from tiny_model import save_tiny


class ToyTask(Task):
    """Verifier prompts that show the candidates plainly, for scripted judges."""

    name = "toy"
    stop = ()

    def verifier_prompt(self, method, example, candidate, other=None):
        if method == "tournament":
            return f"[{example.id}] A={candidate} B={other}"
        return f"[{example.id}] {method}: {candidate}\nJudge:"


class ScriptedBackend(Backend):
    """Answers every prompt with ``reply(prompt)``; counts calls."""

    name = "scripted"
    fingerprint = "scripted"

    def __init__(self, reply):
        self.reply, self.prompts = reply, []

    def sample(self, prompts, params):
        self.prompts += list(prompts)
        return [[self.reply(p) for _ in range(params.n)] for p in prompts]


class LimitedBackend(ScriptedBackend):
    """Like ScriptedBackend, but says which outputs hit the token limit: those whose text ends in "…"."""

    def sample_completions(self, prompts, params):
        return [[Completion(t, t.endswith("…")) for t in texts] for texts in self.sample(prompts, params)]


EXAMPLES = [Example(f"x{i}", f"question {i}", "1") for i in range(3)]


# The parsing convention (gvlib.verifiers module doc): the forms a model writes are read, case-insensitively;
# the last match wins; a value cut short or out of range is unparseable.
@pytest.mark.parametrize("text,want", [
    ("Each step is right.\nCorrectness: <correct>", 1.0),
    ("The sum is wrong. Correctness: <incorrect>", 0.0),
    ("Correctness: < correct >", 1.0),                       # word-level decoding
    ("Correctness: incorrect", 0.0),                         # brackets optional
    ("Correctness: <correct> ... on reflection Correctness: <incorrect>", 0.0),  # last match wins
    ("Correctness: <incorrect>\n\nOn reflection, Correctness: <correct>", 1.0),  # after a blank line too
    ("Correctness: <Correct>", 1.0),                         # case-insensitive verdict
    ("correctness: <correct>", 1.0),                         # and keyword
    ("CORRECTNESS: INCORRECT", 0.0),
    ("**Correctness:** <correct>", 1.0),                     # markdown bold
    ("**Correctness**: **Incorrect**", 0.0),
    ("Correctness: Correct.", 1.0),                          # trailing punctuation
    ("Correctness : [incorrect]", 0.0),                      # space before the colon, square brackets
    ("Correctness: correctly done", None),                   # a word, not the verdict
    ("The derivation looks fine. Correctness: <corr", None),  # truncated
    ("The solution is correct.", None),                      # no keyword
    ("", None),
])
def test_parse_cot_binary(text, want):
    assert parse_cot_binary(text) == want


@pytest.mark.parametrize("text,want", [
    ("Right answer, clean steps. Score: 9", 9.0),
    ("Score: 10", 10.0),
    ("Score:7/10", 7.0),
    ("Score: 3 at first, but Score: 8", 8.0),                # last match wins
    ("Score: <9>", 9.0),                                     # the template's angle brackets
    ("score: 9", 9.0),                                       # case-insensitive
    ("**Score:** 9", 9.0),                                   # markdown bold
    ("**Score**: **7**/10", 7.0),
    ("Score: 8.", 8.0),                                      # trailing punctuation
    ("Score: [6]", 6.0),
    ("Score: 9.5", None),                                    # not a whole score
    ("Score: 0", None),                                      # out of 1..10
    ("Score: 11", None),
    ("Score: 9 first. Score: 0", None),                      # the last match is read, and is out of range
    ("The answer is wrong. Score:", None),                   # truncated
    ("Score: <score>", None),
    ("Underscore: 9", None),                                 # not the keyword
])
def test_parse_cot_score(text, want):
    assert parse_cot_score(text) == want


@pytest.mark.parametrize("text,want", [
    ("A is right. Preferred solution: <A>", "A"),
    ("Preferred solution: B", "B"),
    ("Preferred solution: < B >", "B"),
    ("Preferred solution: <A> no wait, Preferred solution: <B>", "B"),  # last match wins
    ("preferred solution: <A>", "A"),                        # case-insensitive
    ("Preferred Solution: <b>.", "B"),
    ("**Preferred solution:** Solution A", "A"),             # markdown, "Solution A"
    ("Preferred solution: **B**.", "B"),
    ("Preferred solution: <C>", None),
    ("Preferred solution: because A is right", None),        # a word, not a choice
    ("Both are fine. Preferred solution: <", None),          # truncated
])
def test_parse_tournament(text, want):
    assert parse_tournament(text) == want


def test_cot_scores_unparseable_counts_and_raw_outputs():
    replies = {"good": "Fine. Correctness: <correct>", "bad": "No. Correctness: <incorrect>", "junk": "Correctness: <"}
    backend = ScriptedBackend(lambda p: replies[p.split(": ")[1].split("\n")[0]])
    cands = [["good", "bad"], ["junk", "good"], ["bad", "junk"]]
    v = verify("cot_binary", backend, ToyTask([]), EXAMPLES, cands)
    np.testing.assert_array_equal(v.scores, [[1, 0], [0, 1], [0, 0]])
    assert v.n_unparseable == 2 and v.n_outputs == 6 and v.unparseable_rate == pytest.approx(1 / 3)
    assert v.raw[1][0] == "Correctness: <"

    score_replies = {"good": "Score: <9>", "bad": "**Score:** 2", "junk": "Score: 99"}
    backend = ScriptedBackend(lambda p: score_replies[p.split(": ")[1].split("\n")[0]])
    v = verify("cot_score", backend, ToyTask([]), EXAMPLES, cands)
    np.testing.assert_array_equal(v.scores, [[9, 2], [0, 9], [2, 0]])
    assert v.n_unparseable == 2


def test_truncation_counts_outputs_cut_at_the_limit_before_a_verdict():
    replies = {"good": "Fine. Correctness: <correct> and then more …",  # at the limit, but a verdict came first
               "cut": "Let me check every step of this derivation …",     # at the limit, no verdict: truncated
               "junk": "No idea."}                                        # unparseable, not at the limit
    backend = LimitedBackend(lambda p: replies[p.split(": ")[1].split("\n")[0]])
    cands = [["good", "cut"], ["junk", "cut"], ["good", "good"]]
    v = verify("cot_binary", backend, ToyTask([]), EXAMPLES, cands)
    np.testing.assert_array_equal(v.scores, [[1, 0], [0, 0], [1, 1]])
    assert v.n_unparseable == 3 and v.n_truncated == 2 and v.truncation_rate == pytest.approx(2 / 6)
    back = verifiers.Verification.from_dict(v.to_dict())
    assert back.n_truncated == 2 and verifiers.Verification.concat([v, back]).truncation_rate == pytest.approx(2 / 6)
    # a backend that does not say which outputs hit the limit: unknown, not zero
    blind = verify("cot_binary", ScriptedBackend(backend.reply), ToyTask([]), EXAMPLES, cands)
    assert blind.n_truncated is None and blind.truncation_rate is None and blind.n_unparseable == 3
    assert verifiers.Verification.concat([v, blind]).truncation_rate is None
    # the tournament counts its comparisons; MC samples nothing
    t = verify("tournament", LimitedBackend(lambda p: "I need more tokens to decide …"), ToyTask([]), EXAMPLES,
               [["a", "b", "c", "d"]] * 3)
    assert t.n_outputs == 9 and t.n_truncated == 9 and t.truncation_rate == 1.0
    assert verifiers.Verification("mc", np.zeros((1, 1)), [[[0.0, 0.0]]], 0, 1).truncation_rate is None


def _judge(p: str) -> str:
    """Prefers the candidate containing 'right'; prefers A on a tie, except garbles 'tie2'."""
    a, b = re.match(r"\[\w+\] A=(.*) B=(.*)", p).groups()
    if "tie2" in a and "tie2" in b:
        return "I cannot decide. Preferred solution: <"
    return "Preferred solution: <B>" if "right" in b and "right" not in a else "Preferred solution: <A>"


def test_tournament_bookkeeping():
    n = 8
    cands = [[f"wrong{j}" for j in range(n)] for _ in EXAMPLES]
    cands[0][5] = "right"          # one correct sample: it must win everything
    cands[2] = [f"tie2-{j}" for j in range(n)]  # every comparison unparseable: coin flips
    backend = ScriptedBackend(_judge)
    v = verify("tournament", backend, ToyTask([]), EXAMPLES, cands, seed=0)
    assert v.survivors.shape == (4, 3, n)
    np.testing.assert_array_equal(v.survivors.sum(axis=2), [[8, 8, 8], [4, 4, 4], [2, 2, 2], [1, 1, 1]])
    np.testing.assert_array_equal(v.survivors, np.stack([v.scores >= r for r in range(4)]))
    assert v.scores[0, 5] == 3 and v.survivors[3, 0, 5] == 1
    assert v.n_outputs == 3 * 7 == len(backend.prompts)
    assert v.n_unparseable == 7 and v.n_parsed == 14
    # problem 0: "right" is B in some of its matches (then B is preferred); the rest prefer A
    right_as_b = sum(1 for m in v.raw[0] if cands[0][m["b"]] == "right")
    assert v.n_first == 14 - right_as_b
    assert v.position_bias == pytest.approx((14 - right_as_b) / 14)
    by_round = v.position_bias_by_round()
    assert len(by_round) == 3 and all(0 <= b <= 1 for b in by_round)
    per_round_parsed = [8, 4, 2]  # problems 0 and 1: 4 + 2 + 1 comparisons each
    assert sum(b * k for b, k in zip(by_round, per_round_parsed)) == pytest.approx(v.n_first)
    assert all(len({m["a"] for m in v.raw[p] if m["round"] == 1} | {m["b"] for m in v.raw[p] if m["round"] == 1}) == n
               for p in range(3))  # round 1 pairs are disjoint and cover everyone


def test_tournament_is_seeded_and_partial_rounds():
    cands = [[f"wrong{j}" for j in range(8)] for _ in EXAMPLES]
    run = lambda seed, rounds=None: verify("tournament", ScriptedBackend(_judge), ToyTask([]), EXAMPLES, cands,
                                           seed=seed, rounds=rounds)
    a, b, c = run(0), run(0), run(1)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert [m["a"] for m in a.raw[0]] == [m["a"] for m in b.raw[0]]
    assert [m["a"] for m in a.raw[0]] != [m["a"] for m in c.raw[0]]
    two = run(0, rounds=2)
    np.testing.assert_array_equal(two.survivors[-1].sum(axis=1), [2, 2, 2])
    with pytest.raises(ValueError, match="multiple of 2\\*\\*4"):
        run(0, rounds=4)


def test_max_rounds():
    assert [verifiers.max_rounds(n) for n in (0, 1, 2, 6, 8, 12, 128)] == [0, 0, 1, 1, 3, 2, 7]
    v = verify("tournament", ScriptedBackend(_judge), ToyTask([]), EXAMPLES, [[f"w{j}" for j in range(6)]] * 3)
    np.testing.assert_array_equal(v.survivors.sum(axis=2), [[6, 6, 6], [3, 3, 3]])


def test_unknown_method_and_shape_errors():
    with pytest.raises(ValueError, match="unknown verifier method"):
        verify("vibes", ScriptedBackend(str), ToyTask([]), EXAMPLES, [["a"]] * 3)
    with pytest.raises(ValueError, match="same number of candidates"):
        verify("cot_binary", ScriptedBackend(str), ToyTask([]), EXAMPLES, [["a"], ["a", "b"], ["a"]])


def test_verification_round_trips_through_json_and_concat():
    v = verify("tournament", ScriptedBackend(_judge), ToyTask([]), EXAMPLES, [[f"w{j}" for j in range(4)]] * 3)
    back = verifiers.Verification.from_dict(v.to_dict())
    np.testing.assert_array_equal(back.survivors, v.survivors)
    both = verifiers.Verification.concat([v, back])
    assert both.scores.shape == (6, 4) and both.survivors.shape == (3, 6, 4) and both.n_parsed == 2 * v.n_parsed


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_backend(str(save_tiny(tmp_path_factory.mktemp("tiny"))), backend="transformers")


def test_mc_equals_the_value_by_hand(tiny):
    task = ToyTask([])
    cands = [["The answer is 1.", "The answer is 2."]] * 3
    v = verify("mc", tiny, task, EXAMPLES, cands)
    assert v.scores.shape == (3, 2)
    tok = tiny.tokenizer
    for i, ex in enumerate(EXAMPLES):
        for j, cand in enumerate(cands[i]):
            prompt = task.verifier_prompt("mc", ex, cand)
            logp = []
            for word in ("Correct", "Incorrect"):
                ctx, full = tok(prompt).input_ids, tok(prompt + " " + word).input_ids
                with torch.no_grad():
                    lp = torch.log_softmax(tiny.model(torch.tensor([full])).logits[0].double(), -1)
                logp.append(sum(float(lp[k - 1, full[k]]) for k in range(len(ctx), len(full))))
            p_pos, p_neg = np.exp(logp)
            assert v.scores[i, j] == pytest.approx(p_pos / (p_pos + p_neg), abs=1e-5)
            assert v.raw[i][j] == pytest.approx(logp, abs=1e-4)


def test_cot_on_a_tiny_model_is_deterministic(tiny):
    params = SamplingParams(n=1, max_new_tokens=6, seed=3)
    run = lambda: verify("cot_score", tiny, ToyTask([]), EXAMPLES[:2], [["a", "b"]] * 2, params=params)
    a, b = run(), run()
    assert a.raw == b.raw and a.n_unparseable == 4  # a random model writes no "Score: N"
    assert a.n_truncated == 4  # ... and runs on to its 6-token budget: every verdict was cut short
    np.testing.assert_array_equal(a.scores, np.zeros((2, 2)))
