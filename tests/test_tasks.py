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
from gvlib.backends.text import truncate_at_stop
from gvlib.tasks.base import VERIFIER_METHODS
from gvlib.tasks.sudoku import SHOT_PUZZLE, SHOT_SOLUTION, all_grids, is_valid, solutions
from gvlib.verifiers import parse_cot_binary, verifier_params
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
    assert task.score(ex, " She makes 18 dollars.") == 0.0          # no "The answer is"
    flexible = tasks.load("gsm8k", path=DATA / "gsm8k" / "test.jsonl", limit=1, extraction="flexible")
    assert flexible.score(ex, " She makes 9 * 2 = 18 dollars.") == 1.0
    assert flexible.score(ex, " The answer is 18, or 1,800 cents.") == 0.0  # flexible: the last number
    assert task.extract(" The answer is 1,000.") == "1000"
    assert extraction_failure_rate(task, [[gold, "no number here"], ["The answer is 3."]]) == pytest.approx(1 / 3)
    assert extraction_failure_rate(flexible, ["no number here", "x 12"]) == 0.5


@needs_data
@pytest.mark.parametrize("completion,default,strict", [
    (" The answer is 18.", "18", "18"),
    (" The answer is 18", "18", "18"),                 # no final period (lm-eval's own regex would read "1")
    (" The answer is $18.", "18", None),               # currency: read by default, not by lm-eval's regex
    (" The answer is $ 18", "18", None),
    (" The answer is €18.", "18", None),
    (" She earns $1,234. The answer is $1,234.", "1234", None),  # thousands separator and currency
    (" The answer is 1,234,567.", "1234567", "1234567"),
    (" The answer is: 18.", "18", None),               # a colon
    (" The answer is **18**.", "18", None),            # bold
    (" the answer is 18.", "18", None),                # lower case
    (" The answer is -$5.", "-5", None),
    (" The answer is $-5.", "-5", None),
    (" The answer is 18.00.", "18", "18.00"),          # a decimal with zeros is the number
    (" The answer is 2.5.", "2.5", "2.5"),
    (" The answer is 7. Wait, the answer is 8.", "7", "7"),  # the first "The answer is", as lm-eval
    (" The answer is eighteen.", None, None),
])
def test_gsm8k_answer_forms_default_and_lm_eval_strict(completion, default, strict):
    """The default extraction reads what a reader reads; "strict" keeps lm-eval's strict-match regex."""
    task = tasks.load("gsm8k", path=DATA / "gsm8k", limit=1)
    assert task.extraction == "answer"
    assert task.extract(completion) == default
    assert tasks.load("gsm8k", path=DATA / "gsm8k", limit=1, extraction="strict").extract(completion) == strict
    with pytest.raises(ValueError, match="extraction must be one of"):
        tasks.load("gsm8k", path=DATA / "gsm8k", limit=1, extraction="lenient")


@needs_data
def test_nq_open_real_problem_gold_and_perturbed():
    task = tasks.load("nq_open", path=DATA / "nq_open")
    assert len(task) == 3610
    ex = task.examples[0]
    assert ex.meta["aliases"] == ["14 December 1972 UTC", "December 1972"]
    assert task.generation_prompt(ex).endswith("Q: when was the last time anyone was on the moon?\nA:")
    assert task.score(ex, " December 1972") == 1.0
    assert task.score(ex, " december, 1972") == 1.0  # the first line normalises to the alias
    strict = task.with_scoring("strict")
    assert strict.score(ex, " december, 1972") == 0.0  # lm-eval: the "," ends the answer at "december"
    assert task.score(ex, " The 14 December 1972 UTC.\nQ: next") == 1.0
    assert task.score(ex, " December 1972. It was Apollo 17.") == 1.0  # the first clause
    assert task.score(ex, " December 1973") == 0.0
    assert task.score(ex, "\n") == 0.0 and task.extract("\n") is None
    assert task.stop == ("\n",) and task.extract(" Washington, D.C.\nQ:") == "Washington, D.C."
    # SQuAD normalisation: lower case, punctuation and articles (a, an, the) removed, spaces collapsed
    from gvlib.tasks.nq import normalize_answer
    assert normalize_answer("  The  Washington, D.C.!") == "washington dc" == normalize_answer("washington dc")
    assert normalize_answer("An Apple a day") == "apple day" and normalize_answer("Theatre") == "theatre"
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
    boxed = " so the answer is $\\boxed{\\frac{14}{3}}$"
    assert task.extract(boxed) is None and task.score(ex, boxed) == 0.0  # Minerva: no phrase, "[invalidanswer]"
    fallback = tasks.load("math500", path=DATA / "math500", limit=5, boxed_fallback=True)
    assert fallback.score(ex, boxed) == 1.0                                 # the option reads the last \boxed{}
    assert fallback.score(ex, minerva.replace("\\frac{14}{3}$. I", "5$. I") + " \\boxed{\\frac{14}{3}}") == 0.0
    with pytest.raises(ValueError, match="boxed_fallback"):
        tasks.load("math500", path=DATA / "math500", limit=1, boxed_fallback="yes")
    assert task.score(ex, " Final Answer: The final answer is $\\frac{13}{3}$. I hope it is correct.") == 0.0
    assert task.extract("I give up.") is None
    assert task.generation_prompt(ex).count("Final Answer: The final answer is") == 4


@needs_data
def test_every_gold_answer_scores_one_and_perturbed_zero():
    """Whole files: the reference solutions, in each task's answer format, are all read back."""
    def cot(solution):  # a GSM8K reference solution in the prompt's "The answer is N." format
        body, answer = solution.split("####")
        return " " + re.sub(r"<<.*?>>", "", body).replace("\n", " ").strip() + f" The answer is {answer.strip()}."
    for extraction in ("answer", "strict", "flexible"):
        task = tasks.load("gsm8k", path=DATA / "gsm8k", extraction=extraction)
        assert [task.score(e, cot(e.meta["solution"])) for e in task.examples] == [1.0] * 1319
        assert sum(task.score(e, cot(e.meta["solution"]) + " Or 0.5.") for e in task.examples) == (
            0 if extraction == "flexible" else 1319)
    dollars = [cot(e.meta["solution"]).replace("The answer is ", "The answer is $") for e in task.examples]
    assert sum(map(tasks.load("gsm8k", path=DATA / "gsm8k").score, task.examples, dollars)) == 1319
    assert sum(map(tasks.load("gsm8k", path=DATA / "gsm8k", extraction="strict").score, task.examples, dollars)) == 0
    math = tasks.load("math500", path=DATA / "math500")
    stated = [e.meta["solution"].split("The answer is:")[-1].strip() for e in math.examples]
    assert all(math.score(e, f"Final Answer: The final answer is ${a}$. I hope it is correct.")
               for e, a in zip(math.examples, stated))
    boxed = tasks.load("math500", path=DATA / "math500", boxed_fallback=True)
    assert all(boxed.score(e, e.meta["solution"].split("The answer is:")[0]) for e in boxed.examples)  # \boxed
    assert not any(math.score(e, e.meta["solution"].split("The answer is:")[0]) for e in math.examples)
    nq = tasks.load("nq_open", path=DATA / "nq_open")
    plain = [(e, a) for e in nq.examples for a in e.meta["aliases"] if "." not in a and "," not in a]
    assert all(nq.score(e, f" {a}\n") for e, a in plain) and len(plain) == 5805
    assert not any(nq.score(e, f" not {a}\n") for e, a in plain[:500])

    # Aliases with a "." or ",": lm-eval's strict scoring (an answer ends at its first "." or ",") can never
    # match 310 questions whose aliases all have one; the default (first line, or first clause) matches all.
    strict = nq.with_scoring("strict")
    punctuated = [e for e in nq.examples if any("." in a or "," in a for a in e.meta["aliases"])]
    assert len(punctuated) == 507
    never = [e for e in nq.examples if not any(strict.score(e, f" {a}\n") for a in e.meta["aliases"])]
    assert len(never) == 310 and all(e in punctuated for e in never)
    assert all(any(nq.score(e, f" {a}\n") for a in e.meta["aliases"]) for e in nq.examples)
    gained = [e for e in punctuated
              if any(nq.score(e, f" {a}\n") and not strict.score(e, f" {a}\n") for a in e.meta["aliases"])]
    assert len(gained) == 471
    dated = next(e for e in nq.examples if e.meta["aliases"] == ["September 8, 2017"])
    assert nq.score(dated, " September 8, 2017\n") == 1.0 and strict.score(dated, " September 8, 2017\n") == 0.0
    initials = next(e for e in nq.examples if e.meta["aliases"] == ["R. H. Thomson"])
    assert nq.score(initials, " R. H. Thomson") == 1.0 and strict.score(initials, " R. H. Thomson") == 0.0
    # whatever strict accepts, the default accepts
    probes = [f" {a}{tail}" for e in nq.examples[:300] for a in e.meta["aliases"] for tail in ("", ", yes", ". No")]
    owners = [e for e in nq.examples[:300] for a in e.meta["aliases"] for tail in ("", ", yes", ". No")]
    assert all(nq.score(e, c) >= strict.score(e, c) for e, c in zip(owners, probes))
    with pytest.raises(ValueError, match="scoring must be one of"):
        nq.with_scoring("lm-eval")


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
    assert len(task.verifier_demos) >= 5  # 4 shown (the paper's k), a spare for a puzzle among them
    for demo in task.verifier_demos:
        puzzle = "".join(ch for line in demo.problem.splitlines()[-4:] for ch in line if ch.isdigit())
        good, bad = task.extract(demo.correct), task.extract(demo.incorrect)
        assert solutions(puzzle) == [good] and not is_valid(bad)
        assert "holds 1, 2, 3 and 4 once" in demo.why_correct and "wrong" in demo.why_incorrect


GRID_RE = re.compile(r"(?:[0-4]{2} [0-4]{2}(?:\n|$)){4}")


def _grids(text: str) -> set[str]:
    """Every 4x4 grid rendered in ``text`` (4 rows of 2+2 digits), as 16 digits."""
    return {re.sub(r"\D", "", g) for g in GRID_RE.findall(text)}


def test_sudoku_prompts_never_show_a_test_puzzle_or_its_solution():
    """Over the whole test set: no prompt shows, before the puzzle it asks about, that puzzle or its
    solution, nor any test puzzle at all (every valid grid is some test puzzle's solution, so a solved
    grid in a demonstration is always one; it must not be the solution of the puzzle asked)."""
    task = tasks.load("sudoku4")
    assert len(task) == 288
    test_puzzles = {e.meta["puzzle"] for e in task.examples}
    leaks, counts = [], set()
    for ex in task.examples:
        own = {ex.meta["puzzle"], ex.answer}
        gen = task.generation_prompt(ex)
        shown = _grids(gen[:gen.rindex(ex.question)])
        assert shown
        leaks += [(ex.id, "generation")] if shown & (own | test_puzzles) else []
        for method in VERIFIER_METHODS:
            prompt = task.verifier_prompt(method, ex, "CANDIDATE", "OTHER")
            shown = _grids(prompt[:prompt.rindex(task.verifier_problem(ex))])
            leaks += [(ex.id, method)] if shown & (own | test_puzzles) else []
            counts.add(prompt.count(" ".join(prompt.split()[:3])))  # the demonstrations + the question
    assert leaks == []
    assert counts == {5}  # 4 demonstrations in every prompt


def test_sudoku_as_the_paper_runs_it():
    """App. E's Sudoku verifier (givens, rows, columns, boxes, then Correct/Incorrect), 512 new tokens."""
    task = tasks.load("sudoku4", limit=3)
    assert task.max_new_tokens == 512
    ex = task.examples[0]
    prompt = task.verifier_prompt("cot_binary", ex, "CANDIDATE")
    final = prompt[prompt.rindex("Review the following"):]
    for check in ("given", "each row", "each column", "each 2x2 box"):
        assert check in final, check
    assert final.index("given") < final.index("each row") < final.index("each column") < final.index("each 2x2 box")
    assert "math" not in final and "The answer is" not in final and "Correctness: <correct>" in final
    assert prompt.count("\nCorrectness: <correct>") == 2 and prompt.count("\nCorrectness: <incorrect>") == 2


@needs_data
@pytest.mark.parametrize("name", ["gsm8k", "math500", "nq_open", "sudoku4"])
def test_real_tasks_verify_with_the_papers_budget_and_no_blank_line_stop(name):
    """§3 fn. 4: verifications are sampled like generations, up to 512 new tokens; a verdict after a
    paragraph break is read, and a verifier running on into a next demonstration is stopped there."""
    task = tasks.load(name, path=None if name == "sudoku4" else DATA / name, limit=1)
    params = verifier_params(task)
    assert params.max_new_tokens == 512 and "\n\n" not in params.stop
    text = "Step 1 is right.\n\nStep 2 is right too.\n\nCorrectness: <correct>"
    assert parse_cot_binary(truncate_at_stop(text, params.stop)) == 1.0
    runaway = text + "\n\nReview the following math problem ... Correctness: <incorrect>"
    assert parse_cot_binary(truncate_at_stop(runaway, params.stop)) == 1.0


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
    assert tasks.load("organism/arith", split="train", limit=3, family="fam", steps=4) == "task"
    assert calls == [("organism/arith", {"split": "train", "limit": 3, "steps": 4, "family": "fam"})]
    with pytest.raises(ValueError, match="organism task: it needs its world"):
        tasks.load("organism/arith")  # models that are no organism family have no world to draw problems from


def test_offline_dataset_error_says_how_to_fix(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("GVLIB_DATA", raising=False)

    def offline_load(*a, **kw):
        raise ConnectionError("offline")
    monkeypatch.setattr("datasets.load_dataset", offline_load)
    with pytest.raises(DataError, match="openai/gsm8k.*pass path="):
        tasks.load("gsm8k")


@needs_data
def test_nq_lm_eval_strict_scoring_shown_on_the_same_samples_and_verdicts():
    """The unimprovable chapter's second NQ table: the grid rescored with lm-eval's strict scoring."""
    import numpy as np

    from gvlib.backends import SamplingParams
    from gvlib.claims import Grid, Model, make_filters
    from gvlib.engine import Generations
    from gvlib.verifiers import Verification

    nq = tasks.load("nq_open", path=DATA / "nq_open")
    punctuated = [e for e in nq.examples if all("," in a for a in e.meta["aliases"])][:4]
    task = type(nq)(punctuated)
    completions = [[f" {e.meta['aliases'][0]}\nQ: next", " something else\n"] for e in punctuated]
    u = np.array([[task.score(e, c) for c in cs] for e, cs in zip(punctuated, completions)])
    gens = Generations(task.name, "test", [e.id for e in punctuated], [""] * 4, completions, u, 0.0,
                       SamplingParams(n=2), "m")
    ver = Verification("mc", np.tile([0.9, 0.1], (4, 1)), [[[0.0, 0.0]] * 2] * 4, 0, 8)
    grid = Grid(task, [Model("m", "m", 1.0)], {"m": gens}, {("m", "m", "mc"): ver})
    filters = make_filters(["mc"], mc_tau=0.5)
    clause, strict = (g.table(filters, n_boot=10).iloc[0] for g in (grid, grid.rescored(task.with_scoring("strict"))))
    assert (clause.accuracy, clause.gap) == (50.0, 50.0)   # the alias, written whole, is right and kept
    assert (strict.accuracy, strict.gap) == (0.0, 0.0)     # lm-eval cuts it at its comma: nothing to gain
    with pytest.raises(ValueError, match="other ones"):
        grid.rescored(type(nq)(nq.examples[:4]))
