"""[verifiers] The paper's verification prompts (App. E) for the real tasks.

The MC prompt is the paper's text verbatim. The CoT-Binary, CoT-Score and Tournament prompts
follow the paper's instructions, criteria and output formats point by point; App. E prints the
GSM8K versions, and the answer phrase is a slot (``{answer_format}``) so that each task names its
own format ("The answer is ANSWER" for GSM8K, "Final Answer: The final answer is ANSWER" for
MATH; the paper's CoT-Score prompt prints the MATH phrase even for GSM8K, App. E). Sudoku has its own
verifier in App. E (check the givens, rows, columns and boxes, then Correct or Incorrect):
:data:`SUDOKU_TEMPLATES` puts those checks in place of the GSM8K criteria.
The paper verifies 4-shot (§3 fn. 4) but does not publish its demonstrations, so each task
freezes its own (:class:`Demo`: a problem with one correct and one subtly wrong solution and a
short justification of each); :func:`demo_block` turns one into a solved example of any method,
alternating correct and incorrect verdicts (and, for the tournament, the side of the better one).

Verifier outputs are read with the shared regexes in :mod:`gvlib.verifiers`:
``Correctness: <correct>``, ``Score: N`` and ``Preferred solution: <A>``.
"""
from __future__ import annotations

from dataclasses import dataclass

#: MC (App. E, GSM8K / NQ): the verdict word follows "Judge:".
MC = ("Judge the correctness of the following solution of the problem. Answer with either "
      "Correct or Incorrect.\nProblem: {problem}\nSolution: {generation}\nJudge:")

#: CoT-Binary (App. E, GSM8K).
COT_BINARY = (
    "Review the following {domain} problem and the attempted solution and verify the correctness "
    "of the attempted solution, with a judgement of <correct> or <incorrect>.\n"
    "1. The final ANSWER should follow \"{answer_format}\". If this phrase is absent, the "
    "attempted solution is incorrect.\n"
    "2. Check the soundness of the derivation.\n"
    "3. The judgement reflects only the correctness of the final answer, but mention any issues "
    "in the derivation.\n"
    "Problem: {problem}\n"
    "Attempted Solution: {generation}\n"
    "Briefly justify your judgement, up to 50 words. Conclude with the judgement using the "
    "format: \"Correctness: <correct>\" or \"Correctness: <incorrect>\".\n"
    "Remember to assess from the {domain} verifier perspective and be critical and verify "
    "carefully.\n"
    "Judgement:")

#: CoT-Score (App. E).
COT_SCORE = (
    "Review the following {domain} problem and the attempted solution and score the attempted "
    "solution from 1 to 10.\n"
    "The final answer is after the phrase \"{answer_format}\". Give a score of 1 if this phrase is "
    "absent or the final answer is incorrect. Give a score of 10 if both the final answer and "
    "the derivation are correct.\n"
    "Problem: {problem}\n"
    "Attempted Solution: {generation}\n"
    "Briefly justify your score, up to 50 words. Conclude with the score using the format: "
    "\"Score: <score>\".\n"
    "Judgement:")

#: Tournament (App. E): solution A is shown first.
TOURNAMENT = (
    "Review the following {domain} problem and the two attempted solutions and determine which "
    "solution is better.\n"
    "1. Always prefer the solution with the correct final answer.\n"
    "2. Prefer solutions whose final answer follows \"{answer_format}\".\n"
    "3. If both solutions are correct or both are incorrect, prefer the one with the better "
    "reasoning.\n"
    "Problem: {problem}\n"
    "Solution A: {generation1}\n"
    "Solution B: {generation2}\n"
    "Briefly justify your choice, up to 50 words. Conclude with your choice using the format: "
    "\"Preferred solution: <A>\" or \"Preferred solution: <B>\".\n"
    "Judgement:")

#: The template of each method, by VERIFIER_METHODS name.
TEMPLATES = {"mc": MC, "cot_binary": COT_BINARY, "cot_score": COT_SCORE, "tournament": TOURNAMENT}

#: 4x4 Sudoku (App. E): the verifier checks the givens, the rows, the columns and the 2x2 boxes.
SUDOKU_CHECKS = (
    "1. Check that every given (non-zero) digit of the puzzle is kept in its place.\n"
    "2. Check that each row contains 1, 2, 3 and 4 exactly once.\n"
    "3. Check that each column contains 1, 2, 3 and 4 exactly once.\n"
    "4. Check that each 2x2 box contains 1, 2, 3 and 4 exactly once.\n")
#: CoT-Binary on Sudoku (App. E's Sudoku verifier): the four checks, then Correct or Incorrect.
SUDOKU_COT_BINARY = (
    "Review the following 4x4 Sudoku puzzle and the attempted solution and verify the correctness "
    "of the attempted solution, with a judgement of <correct> or <incorrect>.\n" + SUDOKU_CHECKS +
    "The attempted solution is correct only if it passes all four checks; without 4 completed rows "
    "after \"Solution:\" it is incorrect.\n"
    "Problem: {problem}\n"
    "Attempted Solution:\n{generation}\n"
    "Briefly justify your judgement, up to 50 words. Conclude with the judgement using the "
    "format: \"Correctness: <correct>\" or \"Correctness: <incorrect>\".\n"
    "Judgement:")
#: CoT-Score on Sudoku: the same checks, scored as App. E's CoT-Score prompt.
SUDOKU_COT_SCORE = (
    "Review the following 4x4 Sudoku puzzle and the attempted solution and score the attempted "
    "solution from 1 to 10.\n" + SUDOKU_CHECKS +
    "Give a score of 1 if there are no 4 completed rows after \"Solution:\" or a check fails badly. "
    "Give a score of 10 if the attempted solution passes all four checks.\n"
    "Problem: {problem}\n"
    "Attempted Solution:\n{generation}\n"
    "Briefly justify your score, up to 50 words. Conclude with the score using the format: "
    "\"Score: <score>\".\n"
    "Judgement:")
#: Tournament on Sudoku: the same checks, compared as App. E's Tournament prompt.
SUDOKU_TOURNAMENT = (
    "Review the following 4x4 Sudoku puzzle and the two attempted solutions and determine which "
    "solution is better.\n" + SUDOKU_CHECKS +
    "Always prefer the solution that passes all four checks. If both pass or both fail, prefer the "
    "one that fails fewer checks.\n"
    "Problem: {problem}\n"
    "Solution A:\n{generation1}\n"
    "Solution B:\n{generation2}\n"
    "Briefly justify your choice, up to 50 words. Conclude with your choice using the format: "
    "\"Preferred solution: <A>\" or \"Preferred solution: <B>\".\n"
    "Judgement:")
SUDOKU_TEMPLATES = {"mc": MC, "cot_binary": SUDOKU_COT_BINARY, "cot_score": SUDOKU_COT_SCORE,
                    "tournament": SUDOKU_TOURNAMENT}


@dataclass(frozen=True)
class Demo:
    """A frozen verification demonstration (see module doc); justifications stay under 50 words."""

    problem: str
    correct: str
    incorrect: str
    why_correct: str
    why_incorrect: str


def openings(templates) -> tuple[str, ...]:
    """The first three words of each template: where a verifier that runs on into a next
    demonstration would begin it (a sampled verification stops there)."""
    return tuple(dict.fromkeys(" ".join(t.split()[:3]) for t in templates))


def demo_block(method: str, demo: Demo, k: int, template: str | None = None, **slots: str) -> str:
    """Demonstration ``k`` of ``method``: the filled template and the verifier's ideal output.

    Even ``k`` shows the correct solution (tournament: as A), odd ``k`` the incorrect one (as A).
    ``template`` defaults to the method's in :data:`TEMPLATES`; ``slots`` fill the rest of it
    (domain, answer_format).
    """
    template = template or TEMPLATES[method]
    good = k % 2 == 0
    if method == "tournament":
        first, second = (demo.correct, demo.incorrect) if good else (demo.incorrect, demo.correct)
        win, lose = ("A", "B") if good else ("B", "A")
        out = (f" Solution {win}: {demo.why_correct} Solution {lose}: {demo.why_incorrect}\n"
               f"Preferred solution: <{win}>")
        return render(template, problem=demo.problem, generation1=first, generation2=second, **slots) + out
    why = demo.why_correct if good else demo.why_incorrect
    out = {"mc": " Correct" if good else " Incorrect",
           "cot_binary": f" {why}\nCorrectness: <{'correct' if good else 'incorrect'}>",
           "cot_score": f" {why}\nScore: {10 if good else 1}"}[method]
    return render(template, problem=demo.problem, generation=demo.correct if good else demo.incorrect,
                  **slots) + out


def render(template: str, **slots: str) -> str:
    """``template`` with its slots filled; a missing slot is an error naming it."""
    try:
        return template.format(**slots)
    except KeyError as err:
        raise KeyError(f"prompt slot {err.args[0]!r} not given (have {sorted(slots)})") from None
