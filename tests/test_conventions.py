"""Conventions the docstrings and the definitions page state, each pinned by a test that fails when it changes.

gvlib.metrics (module doc; the definitions page's "Conventions the paper leaves open"): strict thresholds
for :func:`~gvlib.metrics.filter_weights` as for :func:`~gvlib.metrics.gap`, ties at a per-prompt quantile
dropped, the q-quantile interpolated. gvlib.verifiers (module doc): an unreadable tournament comparison
is a seeded coin flip, left out of the position bias; an unreadable CoT verdict scores 0. (The parsers'
accepted forms and the tasks' answer extraction are pinned in test_verifiers.py and test_tasks.py.) (The other metrics conventions — per prompt, acc_x = 1,
nothing survives, relative normalisation, pass@k, the FLOPs unit — are pinned in test_metrics.py.)
"""
import numpy as np
from scipy.stats import binomtest

from gvlib.backends.base import Backend
from gvlib.metrics import filter_weights, gap
from gvlib.tasks.base import Example, Task
from gvlib.verifiers import verify


# ---------------------------------------------------------------- metrics: > or >=, ties, the quantile


def test_filter_weights_is_strict_by_default():
    """The iterative loop calls filter_weights directly: it must keep s > tau, like gap does (App. D, Alg. 1)."""
    s = np.array([[8, 8, 7, 9, 10]])
    assert filter_weights(s, tau=8).tolist() == [[0, 0, 0, 1, 1]]
    assert filter_weights(s, tau=8, strict=False).tolist() == [[1, 1, 0, 1, 1]]


def test_ties_at_a_quantile_threshold_are_dropped():
    """The same strict rule at a per-prompt threshold: every score tied at tau_x is dropped (definitions page)."""
    s = np.array([[1, 2, 3, 3, 3, 4, 5, 6, 7, 8],
                  [5, 5, 5, 5, 5, 5, 5, 5, 5, 9]])
    # prompt 0: the 0.3-quantile is 3 (position 2.7 of the sorted scores): the three 3s go, 4..8 stay;
    # prompt 1: the 0.5-quantile is 5: only the 9 stays
    assert filter_weights(s, quantile=0.3).tolist() == [[0, 0, 0, 0, 0, 1, 1, 1, 1, 1], [0] * 9 + [1]]
    assert filter_weights(s, quantile=0.3, strict=False).tolist() == [[0, 0, 1, 1, 1, 1, 1, 1, 1, 1], [1] * 10]
    u = np.array([[0, 0, 1, 1, 1, 0, 0, 0, 0, 1], [0] * 9 + [1]])
    r = gap(u, s, quantile=0.3)
    assert r.kept.tolist() == [5, 1] and r.ver.tolist() == [0.2, 1.0]


def test_quantile_threshold_is_interpolated():
    """tau_x is the (linearly interpolated) q-quantile of the prompt's scores: quantile=0.9 of four distinct
    scores lies between the two best (position 2.7), so the best one survives; a 'nearest' rank would land on
    the best and keep nothing, a 'higher' one too."""
    s = np.array([[0.1, 0.4, 0.2, 0.3]])
    assert filter_weights(s, quantile=0.9).tolist() == [[0, 1, 0, 0]]
    assert filter_weights(s, quantile=0.5).tolist() == [[0, 1, 0, 1]]  # the top half, as "top q" promises


# ---------------------------------------------------------------- verifiers: an unreadable tournament comparison


class Silent(Backend):
    """A judge whose every answer is unreadable."""

    name = "scripted"
    fingerprint = "silent"

    def sample(self, prompts, params):
        return [["I cannot decide." for _ in range(params.n)] for _ in prompts]


class Plain(Task):
    name = "plain"

    def verifier_prompt(self, method, example, candidate, other=None):
        return f"[{example.id}] A={candidate} B={other}"


def test_unreadable_tournament_comparisons_are_seeded_coin_flips():
    """Each unreadable comparison is decided by a coin flip (module doc): winners are the first (A) solution
    about half the time — never all one side — the same flips for the same seed, and none of them counts in
    the position bias."""
    examples = [Example(f"x{i}", f"question {i}", "1") for i in range(8)]
    candidates = [[f"c{j}" for j in range(16)] for _ in examples]
    v = verify("tournament", Silent(), Plain([]), examples, candidates, seed=0)
    matches = [m for per_problem in v.raw for m in per_problem]
    assert len(matches) == v.n_outputs == v.n_unparseable == 8 * 15
    first = sum(m["winner"] == m["a"] for m in matches)
    assert binomtest(first, len(matches), 0.5).pvalue > 1e-3, first  # 120 fair flips; all-A or all-B fails
    assert v.n_parsed == 0 and v.n_first == 0 and v.position_bias is None
    assert all(b is None for b in v.position_bias_by_round())
    again = verify("tournament", Silent(), Plain([]), examples, candidates, seed=0)
    assert [m["winner"] for p in again.raw for m in p] == [m["winner"] for m in matches]
    other = verify("tournament", Silent(), Plain([]), examples, candidates, seed=1)
    assert [m["winner"] for p in other.raw for m in p] != [m["winner"] for m in matches]
    np.testing.assert_array_equal(v.survivors.sum(axis=2)[-1], [1] * 8)  # still one champion per problem


# ---------------------------------------------------------------- verifiers: an unreadable CoT verdict


class Replies(Backend):
    """A judge that answers each candidate's prompt with ``replies[candidate]``."""

    name = "scripted"
    fingerprint = "replies"

    def __init__(self, replies):
        self.replies = replies

    def sample(self, prompts, params):
        return [[self.replies[p.split("A=")[1].split(" B=")[0]]] * params.n for p in prompts]


def test_an_unreadable_cot_verdict_scores_0_below_every_threshold_and_apart_from_a_real_1():
    """Unparseable CoT-Score and CoT-Binary outputs score 0 (module doc): rejected at every threshold the
    filters use, and still told apart from a real score of 1 (kept at tau = 0, where the unreadable one is not)."""
    examples = [Example("x0", "question", "1")]
    score = verify("cot_score", Replies({"one": "Score: 1", "junk": "I think it is fine.", "nine": "Score: 9"}),
                   Plain([]), examples, [["one", "junk", "nine"]])
    assert score.scores.tolist() == [[1.0, 0.0, 9.0]] and score.n_unparseable == 1
    assert filter_weights(score.scores, tau=0).tolist() == [[1, 0, 1]]
    for tau in (1, 5, 8):
        assert filter_weights(score.scores, tau=tau)[0, 1] == 0
    binary = verify("cot_binary", Replies({"yes": "Correctness: <correct>", "junk": "Hmm.", "no": "Correctness: <incorrect>"}),
                    Plain([]), examples, [["yes", "junk", "no"]])
    assert binary.scores.tolist() == [[1.0, 0.0, 0.0]] and binary.n_unparseable == 1


def test_every_module_says_its_box_of_the_pipeline_map():
    """gvlib/__init__.py draws notebook -> claims -> engine -> ... -> page; each module's docstring opens with
    its box, so a reader knows where a file sits before reading it (issue 17)."""
    import ast
    import re
    from pathlib import Path

    import gvlib

    root = Path(gvlib.__file__).parent
    boxes = set(re.findall(r"^ {4}([a-z/]+) ", gvlib.__doc__, re.M)) | {"vocabulary", "tasks", "organism",
                                                                         "paper scale", "speed", "disk"}
    missing = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "__init__.py":
            continue
        first = (ast.get_docstring(ast.parse(path.read_text())) or "").split("\n")[0]
        box = re.match(r"\[([^\]]+)\] ", first)
        if not box or box.group(1) not in boxes:
            missing.append(f"{path.relative_to(root)}: {first[:60]!r}")
    assert not missing, missing
