"""The paper's verification prompts (App. E; reference/paper.md §2) for the real tasks.

The MC prompt is the paper's text verbatim. The CoT-Binary, CoT-Score and Tournament prompts
follow the paper's instructions, criteria and output formats point by point; App. E prints the
GSM8K versions, and the answer phrase is a slot (``{answer_format}``) so that each task names its
own format ("The answer is ANSWER" for GSM8K, "Final Answer: The final answer is ANSWER" for
MATH; the paper's CoT-Score prompt prints the MATH phrase even for GSM8K, reference/paper.md §2).
The paper's 4-shot verification demonstrations are unpublished: these prompts are zero-shot.

Verifier outputs are read with the shared regexes in :mod:`gvlib.verifiers`:
``Correctness: <correct>``, ``Score: N`` and ``Preferred solution: <A>``.
"""
from __future__ import annotations

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


def render(template: str, **slots: str) -> str:
    """``template`` with its slots filled; a missing slot is an error naming it."""
    try:
        return template.format(**slots)
    except KeyError as err:
        raise KeyError(f"prompt slot {err.args[0]!r} not given (have {sorted(slots)})") from None
