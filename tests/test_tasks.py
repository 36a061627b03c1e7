"""Tasks: real GSM8K / NQ-open / MATH-500 problems scored with gold and perturbed completions,
extraction modes and failure rate, data errors, 4x4 Sudoku, the registry and organism delegation."""
from __future__ import annotations

import re
import sys
import types

import pytest

from gvlib import tasks
from gvlib.tasks import DataError, extraction_failure_rate
from gvlib.tasks.math import is_equiv, last_boxed, normalize_final_answer
from gvlib.tasks.sudoku import SHOT_PUZZLE, SHOT_SOLUTION, all_grids, is_valid, solutions
from tiny_model import DATA

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA}")


@needs_data
def test_gsm8k_real_problem_gold_and_perturbed():
    task = tasks.load("gsm8k", path=DATA / "gsm8k", limit=5)
    assert len(task) == 5 and task.split == "test"
    ex = task.examples[0]
    assert ex.question.startswith("Janet") and ex.answer == "18"
    prompt = task.generation_prompt(ex)
    assert prompt.count("The answer is") == 4 and prompt.endswith(f"Q: {ex.question}\nA:")
    gold = " She has 16 - 3 - 4 = 9 eggs left. She makes 9 * 2 = $18. The answer is 18."
    assert task.score(ex, gold) == 1.0
    assert task.score(ex, gold.replace("is 18", "is 19")) == 0.0
    assert task.score(ex, " The answer is $18.") == 0.0  # as lm-eval strict-match: a number right after
    assert task.score(ex, " She makes 18 dollars.") == 0.0          # strict: no "The answer is"
    flexible = tasks.load("gsm8k", path=DATA / "gsm8k" / "test.jsonl", limit=1, extraction="flexible")
    assert flexible.score(ex, " She makes 9 * 2 = 18 dollars.") == 1.0
    assert flexible.score(ex, " The answer is 18, or 1,800 cents.") == 0.0  # flexible: the last number
    assert task.extract(" The answer is 1,000.") == "1000"
    assert extraction_failure_rate(task, [[gold, "no number here"], ["The answer is 3."]]) == pytest.approx(1 / 3)
    assert extraction_failure_rate(flexible, ["no number here", "x 12"]) == 0.5


@needs_data
def test_nq_open_real_problem_gold_and_perturbed():
    task = tasks.load("nq_open", path=DATA / "nq_open")
    assert len(task) == 3610
    ex = task.examples[0]
    assert ex.meta["aliases"] == ["14 December 1972 UTC", "December 1972"]
    assert task.generation_prompt(ex).endswith("Q: when was the last time anyone was on the moon?\nA:")
    assert task.score(ex, " December 1972") == 1.0
    assert task.score(ex, " december, 1972") == 0.0  # the "," stops the answer at "december"
    assert task.score(ex, " The 14 December 1972 UTC.\nQ: next") == 1.0
    assert task.score(ex, " December 1973") == 0.0
    assert task.score(ex, "\n") == 0.0 and task.extract("\n") is None
    assert "Judge:" in task.verifier_prompt("mc", ex, "December 1972")
    with pytest.raises(ValueError, match="MC verification only"):
        task.verifier_prompt("cot_binary", ex, "December 1972")


@needs_data
def test_math500_real_problem_gold_and_perturbed():
    task = tasks.load("math500", path=DATA / "math500", limit=5)
    ex = task.examples[2]
    assert ex.answer == "\\frac{14}{3}"
    minerva = " So $x = \\frac{14}{3}$.\nFinal Answer: The final answer is $\\frac{14}{3}$. I hope it is correct."
    assert task.score(ex, minerva) == 1.0
    assert task.score(ex, " Final Answer: The final answer is $\\dfrac{14}{3}$. I hope it is correct.") == 1.0
    assert task.score(ex, " Final Answer: The final answer is $14/3$.") == 1.0
    assert task.score(ex, " so the answer is $\\boxed{\\frac{14}{3}}$") == 1.0     # \boxed fallback
    assert task.score(ex, " Final Answer: The final answer is $\\frac{13}{3}$. I hope it is correct.") == 0.0
    assert task.extract("I give up.") is None
    assert task.generation_prompt(ex).count("Final Answer: The final answer is") == 4


@needs_data
def test_every_gold_answer_scores_one_and_perturbed_zero():
    """Whole files: the reference solutions, in each task's answer format, are all read back."""
    def cot(solution):  # a GSM8K reference solution in the prompt's "The answer is N." format
        body, answer = solution.split("####")
        return " " + re.sub(r"<<.*?>>", "", body).replace("\n", " ").strip() + f" The answer is {answer.strip()}."
    for extraction in ("strict", "flexible"):
        task = tasks.load("gsm8k", path=DATA / "gsm8k", extraction=extraction)
        assert [task.score(e, cot(e.meta["solution"])) for e in task.examples] == [1.0] * 1319
        assert sum(task.score(e, cot(e.meta["solution"]) + " Or 0.5.") for e in task.examples) == (
            1319 if extraction == "strict" else 0)
    math = tasks.load("math500", path=DATA / "math500")
    stated = [e.meta["solution"].split("The answer is:")[-1].strip() for e in math.examples]
    assert all(math.score(e, f"Final Answer: The final answer is ${a}$. I hope it is correct.")
               for e, a in zip(math.examples, stated))
    assert all(math.score(e, e.meta["solution"].split("The answer is:")[0]) for e in math.examples)  # \boxed
    nq = tasks.load("nq_open", path=DATA / "nq_open")
    plain = [(e, a) for e in nq.examples for a in e.meta["aliases"] if "." not in a and "," not in a]
    assert all(nq.score(e, f" {a}\n") for e, a in plain) and len(plain) == 5805
    assert not any(nq.score(e, f" not {a}\n") for e, a in plain[:500])
    # lm-eval's stop strings cut an answer at "." or ",": questions with only such aliases
    assert sum(not any(nq.score(e, f" {a}") for a in e.meta["aliases"]) for e in nq.examples) == 310


def test_math_normalisation_and_equivalence():
    assert last_boxed("a \\boxed{\\frac{1}{2}} b \\boxed{x^{2}}") == "x^{2}"
    assert last_boxed("no box") is None
    assert normalize_final_answer("$10,000$ dollars") == "10000"
    assert normalize_final_answer("x = \\text{(A)}") == "(A)"
    assert is_equiv("0.5", "\\frac{1}{2}") and is_equiv("-\\frac{2}{3}", "-2/3") and not is_equiv("2", "3")


def test_malformed_data_names_file_and_line(tmp_path):
    bad = tmp_path / "test.jsonl"
    bad.write_text('{"question": "q", "answer": "x\\n#### 3"}\n{"question": "q2", "answer": \n')
    with pytest.raises(DataError, match=r"test.jsonl, line 2: not valid JSON"):
        tasks.load("gsm8k", path=bad)
    bad.write_text('{"question": "q", "answer": "x\\n#### 3"}\n{"q": "q2", "answer": "#### 4"}\n')
    with pytest.raises(DataError, match=r"test.jsonl, line 2: no field 'question'"):
        tasks.load("gsm8k", path=bad)
    bad.write_text('{"question": "q", "answer": "no final line"}\n')
    with pytest.raises(DataError, match=r"line 1: the answer has no '#### N'"):
        tasks.load("gsm8k", path=bad)
    with pytest.raises(FileNotFoundError, match="train.jsonl"):
        tasks.load("gsm8k", path=tmp_path, split="train")


def test_sudoku_grids_and_unique_puzzles():
    grids = all_grids()
    assert len(grids) == len(set(grids)) == 288 and all(is_valid(g) for g in grids)
    assert solutions(SHOT_PUZZLE) == [SHOT_SOLUTION]
    task = tasks.load("sudoku4", limit=20, seed=0)
    assert len(task) == 20
    for ex in task.examples:
        puzzle = ex.meta["puzzle"]
        assert 16 - puzzle.count("0") == 7 and solutions(puzzle) == [ex.answer]
    assert [e.meta["puzzle"] for e in tasks.load("sudoku4", limit=20, seed=0).examples] == \
        [e.meta["puzzle"] for e in task.examples]
    ex = task.examples[0]
    rows = lambda cells: "\n".join(f"{cells[i:i + 2]} {cells[i + 2:i + 4]}" for i in range(0, 16, 4))
    assert task.score(ex, f"Check: ok.\nSolution:\n{rows(ex.answer)}") == 1.0
    wrong = ex.answer[1] + ex.answer[0] + ex.answer[2:]
    assert task.score(ex, f"Solution:\n{rows(wrong)}") == 0.0
    other = next(g for g in all_grids() if g != ex.answer)  # valid grid, but not these givens
    assert task.score(ex, f"Solution:\n{rows(other)}") == 0.0
    assert task.extract("Solution:\n12 34\n34") is None
    assert "Correctness:" in task.verifier_prompt("cot_binary", ex, "x")


@needs_data
@pytest.mark.parametrize("name,golds", [("gsm8k", ["6", "5", "39", "8"]),
                                        ("math500", ["[2,5)", "24", "16", "-\\frac{2}{3}"])])
def test_verifier_demos_are_right_and_wrong_as_labelled(name, golds):
    task = tasks.load(name, path=DATA / name, limit=1)
    assert [task.extract(d.correct) for d in task.verifier_demos] == golds
    assert all(task.extract(d.incorrect) not in (None, g) for d, g in zip(task.verifier_demos, golds))


def test_sudoku_demos_are_right_and_wrong_as_labelled():
    task = tasks.load("sudoku4", limit=1)
    for demo in task.verifier_demos:
        puzzle = "".join(ch for line in demo.problem.splitlines()[-4:] for ch in line if ch.isdigit())
        good, bad = task.extract(demo.correct), task.extract(demo.incorrect)
        assert solutions(puzzle) == [good] and not is_valid(bad)


@needs_data
def test_verifier_prompts_with_and_without_demonstrations():
    ex_task = tasks.load("gsm8k", path=DATA / "gsm8k", limit=1)
    zero = tasks.load("gsm8k", path=DATA / "gsm8k", limit=1, verifier_shots=0)
    ex = ex_task.examples[0]
    for method, verdicts in [("mc", ["Judge: Correct", "Judge: Incorrect"]),
                             ("cot_binary", ["\nCorrectness: <correct>", "\nCorrectness: <incorrect>"]),
                             ("cot_score", ["\nScore: 10", "\nScore: 1\n"]),
                             ("tournament", ["\nPreferred solution: <A>", "\nPreferred solution: <B>"])]:
        bare = zero.verifier_prompt(method, ex, "cand", "other")
        full = ex_task.verifier_prompt(method, ex, "cand", "other")
        assert full.endswith("\n\n" + bare) and bare.endswith("Judge:" if method == "mc" else "Judgement:")
        assert ex.question in bare and "cand" in bare
        assert [full.count(v) for v in verdicts] == [2, 2]  # 4 shots, balanced verdicts / sides
    with pytest.raises(ValueError, match="verifier_shots"):
        tasks.load("gsm8k", path=DATA / "gsm8k", limit=1, verifier_shots=-1)


def test_registry_and_organism_delegation(monkeypatch):
    assert {"gsm8k", "math", "math500", "nq_open", "sudoku4"} <= set(tasks.names())
    with pytest.raises(KeyError, match="unknown task 'gsm9k'"):
        tasks.load("gsm9k")
    calls = []
    fake = types.ModuleType("gvlib.organism.tasks")
    fake.load_task = lambda name, **kw: calls.append((name, kw)) or "task"
    monkeypatch.setitem(sys.modules, "gvlib.organism.tasks", fake)
    assert tasks.load("organism/arith", split="train", limit=3, steps=4) == "task"
    assert calls == [("organism/arith", {"split": "train", "limit": 3, "steps": 4})]


def test_offline_dataset_error_says_how_to_fix(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("GVLIB_DATA", raising=False)

    def offline_load(*a, **kw):
        raise ConnectionError("offline")
    monkeypatch.setattr("datasets.load_dataset", offline_load)
    with pytest.raises(DataError, match="openai/gsm8k.*pass path="):
        tasks.load("gsm8k")
