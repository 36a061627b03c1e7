"""[tasks] MATH (Hendrycks et al. 2021) and MATH-500, in the Minerva format the paper uses (§3).

As lm-evaluation-harness ``minerva_math``: a 4-shot "Problem:\\n…\\n\\nSolution:" prompt whose
solutions end "Final Answer: The final answer is X. I hope it is correct."; the answer is read
from that phrase only (Minerva's convention, Lewkowycz et al. 2022: without the phrase the answer
is "[invalidanswer]", here None, scored 0), normalised with Minerva's ``normalize_final_answer``
and compared with the gold answer (the last ``\\boxed{}`` of the reference solution, normalised
the same way). ``boxed_fallback=True`` (ours, off by default) reads the last ``\\boxed{}`` of a
completion that lacks the phrase. Equivalence: equal normalised strings, or equal
numbers (integers, decimals, ``\\frac{a}{b}``, ``a/b``). lm-eval also tries a symbolic check with
sympy's LaTeX parser (which needs antlr); that is not done here, so a few equivalent forms
(e.g. ``\\sqrt{8}`` vs ``2\\sqrt{2}``) count as different. Like lm-eval, "I hope it is correct."
is appended before the phrase is searched; here after a space, so that an answer cut at a stop
string ("… is $24$.") still reads.
"""
from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from ..prompts import Demo
from .base import Example
from .common import DataError, DatasetTask, few_shot, field_of

SHOTS = (
    ("Find the domain of the expression  $\\frac{\\sqrt{x-2}}{\\sqrt{5-x}}$.}",
     "The expressions inside each square root must be non-negative. Therefore, $x-2 \\ge 0$, so "
     "$x\\ge2$, and $5 - x \\ge 0$, so $x \\le 5$. Also, the denominator cannot be equal to zero, so "
     "$5-x>0$, which gives $x<5$. Therefore, the domain of the expression is $\\boxed{[2,5)}$.\n"
     "Final Answer: The final answer is $[2,5)$. I hope it is correct."),
    ("If $\\det \\mathbf{A} = 2$ and $\\det \\mathbf{B} = 12,$ then find "
     "$\\det (\\mathbf{A} \\mathbf{B}).$",
     "We have that $\\det (\\mathbf{A} \\mathbf{B}) = (\\det \\mathbf{A})(\\det \\mathbf{B}) = "
     "(2)(12) = \\boxed{24}.$\nFinal Answer: The final answer is $24$. I hope it is correct."),
    ("Terrell usually lifts two 20-pound weights 12 times. If he uses two 15-pound weights instead, "
     "how many times must Terrell lift them in order to lift the same total weight?",
     "If Terrell lifts two 20-pound weights 12 times, he lifts a total of $2\\cdot 12\\cdot20=480$ "
     "pounds of weight.  If he lifts two 15-pound weights instead for $n$ times, he will lift a "
     "total of $2\\cdot15\\cdot n=30n$ pounds of weight.  Equating this to 480 pounds, we can solve "
     "for $n$:\n\\begin{align*}\n30n&=480\\\\\n\\Rightarrow\\qquad n&=480/30=\\boxed{16}\n"
     "\\end{align*}\nFinal Answer: The final answer is $16$. I hope it is correct."),
    ("If the system of equations\n\n\\begin{align*}\n6x-4y&=a,\\\\\n6y-9x &=b.\n\\end{align*}has a "
     "solution $(x, y)$ where $x$ and $y$ are both nonzero, find $\\frac{a}{b},$ assuming $b$ is "
     "nonzero.",
     "If we multiply the first equation by $-\\frac{3}{2}$, we obtain\n\n$$6y-9x=-\\frac{3}{2}a.$$"
     "Since we also know that $6y-9x=b$, we have\n\n$$-\\frac{3}{2}a=b\\Rightarrow\\frac{a}{b}="
     "\\boxed{-\\frac{2}{3}}.$$\nFinal Answer: The final answer is $-\\frac{2}{3}$. I hope it is "
     "correct."),
)
#: Verification demonstrations (ours; the paper's are unpublished): the four prompt problems.
DEMOS = (
    Demo(SHOTS[0][0], SHOTS[0][1],
         "The expressions inside each square root must be non-negative. Therefore, $x-2 \\ge 0$, so "
         "$x\\ge2$, and $5 - x \\ge 0$, so $x \\le 5$. Therefore, the domain of the expression is "
         "$\\boxed{[2,5]}$.\nFinal Answer: The final answer is $[2,5]$. I hope it is correct.",
         "Both radicands must be non-negative and the denominator non-zero, so 2 <= x < 5; the final "
         "answer [2,5) is right.",
         "The denominator sqrt(5-x) cannot be zero, so x = 5 must be excluded: the domain is [2,5), and "
         "the final answer [2,5] is wrong."),
    Demo(SHOTS[1][0], SHOTS[1][1],
         "We have that $\\det (\\mathbf{A} \\mathbf{B}) = \\det \\mathbf{A} + \\det \\mathbf{B} = "
         "2 + 12 = \\boxed{14}.$\nFinal Answer: The final answer is $14$. I hope it is correct.",
         "The determinant is multiplicative, so det(AB) = 2 * 12 = 24; the final answer 24 is right.",
         "The determinant is multiplicative, not additive: det(AB) = 2 * 12 = 24, so the final answer 14 "
         "is wrong."),
    Demo(SHOTS[2][0], SHOTS[2][1], SHOTS[2][1].replace("\\boxed{16}", "\\boxed{15}").replace("is $16$", "is $15$"),
         "The total weight 2 * 12 * 20 = 480 pounds equals 30n, so n = 16; the final answer 16 is right.",
         "Setting 30n = 480 is right, but 480/30 = 16, not 15, so the final answer is wrong."),
    Demo(SHOTS[3][0], SHOTS[3][1],
         SHOTS[3][1].replace("\\boxed{-\\frac{2}{3}}", "\\boxed{-\\frac{3}{2}}").replace(
             "is $-\\frac{2}{3}$", "is $-\\frac{3}{2}$"),
         "Multiplying the first equation by -3/2 gives -3a/2 = b, so a/b = -2/3; the final answer is right.",
         "From -3a/2 = b it follows that a/b = -2/3, not -3/2: the final answer is the reciprocal and is "
         "wrong."),
)
MINERVA_RE = re.compile(r"Final Answer: The final answer is(.*?). I hope it is correct.", re.S)

SUBSTITUTIONS = [("an ", ""), ("a ", ""), (".$", "$"), ("\\$", ""), (r"\ ", ""), (" ", ""),
                 ("mbox", "text"), (",\\text{and}", ","), ("\\text{and}", ","), ("\\text{m}", "\\text{}")]
REMOVED_EXPRESSIONS = [
    "square", "ways", "integers", "dollars", "mph", "inches", "ft", "hours", "km", "units", "\\ldots",
    "sue", "points", "feet", "minutes", "digits", "cents", "degrees", "cm", "gm", "pounds", "meters",
    "meals", "edges", "students", "childrentickets", "multiples", "\\text{s}", "\\text{.}",
    "\\text{\ns}", "\\text{}^2", "\\text{}^3", "\\text{\n}", "\\text{}", r"\mathrm{th}", r"^\circ",
    r"^{\circ}", r"\;", r",\!", "{,}", '"', "\\dots"]


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{…}`` (or ``\\fbox{…}``, ``\\boxed x``), braces matched."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    rest = text[start:]
    if rest.startswith("\\boxed "):
        return rest[len("\\boxed "):].split("$")[0].strip()
    open_at = rest.find("{")
    if open_at < 0:
        return None
    depth = 0
    for i in range(open_at, len(rest)):
        depth += {"{": 1, "}": -1}.get(rest[i], 0)
        if depth == 0:
            return rest[open_at + 1:i]
    return None


def normalize_final_answer(answer: str) -> str:
    """Minerva's normalisation (Lewkowycz et al. 2022, App. D; lm-eval ``minerva_math`` utils)."""
    answer = answer.split("=")[-1]
    for before, after in SUBSTITUTIONS:
        answer = answer.replace(before, after)
    for expr in REMOVED_EXPRESSIONS:
        answer = answer.replace(expr, "")
    answer = re.sub(r"(.*?)(\$)(.*?)(\$)(.*)", "$\\3$", answer)
    answer = re.sub(r"(\\text\{)(.*?)(\})", "\\2", answer)
    answer = re.sub(r"(\\textbf\{)(.*?)(\})", "\\2", answer)
    answer = re.sub(r"(\\overline\{)(.*?)(\})", "\\2", answer)
    answer = re.sub(r"(\\boxed\{)(.*)(\})", "\\2", answer)
    answer = re.sub(r"(frac)([^{])(.)", "frac{\\2}{\\3}", answer)
    answer = re.sub(r"(sqrt)([^{])", "sqrt{\\2}", answer)
    answer = answer.replace("$", "")
    if answer.replace(",", "").isdigit():
        answer = answer.replace(",", "")
    return answer


def _number(text: str) -> Fraction | None:
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\left", "").replace("\\right", "")
    m = re.fullmatch(r"(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}", text) or re.fullmatch(r"(-?)(\d+)/(\d+)", text)
    try:
        if m:
            value = Fraction(int(m.group(2)), int(m.group(3)))
            return -value if m.group(1) else value
        return Fraction(text) if re.fullmatch(r"-?\d*\.?\d+", text) else None
    except ZeroDivisionError:
        return None


def is_equiv(a: str, b: str) -> bool:
    """Equal normalised strings, or equal numeric values (see module doc)."""
    if a == b:
        return True
    x, y = _number(a), _number(b)
    return x is not None and x == y


class MATH(DatasetTask):
    """The MATH test set (5,000 problems; Hugging Face ``EleutherAI/hendrycks_math``, all subjects).

    ``boxed_fallback``: read the last ``\\boxed{}`` where the final-answer phrase is missing (off by
    default, as Minerva and lm-eval).
    """

    name = "math"
    hf_dataset = ("EleutherAI/hendrycks_math", None)
    data_dir = "math"
    stop = ("Problem:", "</s>", "<|im_end|>")
    answer_format = "Final Answer: The final answer is ANSWER"
    verifier_demos = DEMOS
    SUBJECTS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra",
                "number_theory", "prealgebra", "precalculus")

    def __init__(self, examples, split: str = "test", boxed_fallback: bool = False, verifier_shots: int = 4):
        if not isinstance(boxed_fallback, bool):
            raise ValueError(f"{self.name} boxed_fallback must be True or False, got {boxed_fallback!r}")
        super().__init__(examples, split=split, verifier_shots=verifier_shots)
        self.boxed_fallback = boxed_fallback

    @classmethod
    def example(cls, index: int, rec: dict[str, Any], where: str) -> Example:
        question = str(field_of(rec, ["problem", "question"], where))
        solution = str(field_of(rec, ["solution", "answer"], where))
        gold = rec["answer"] if "solution" in rec and "answer" in rec else last_boxed(solution)
        if gold is None:
            raise DataError(f"{where}: the solution has no \\boxed{{}} answer")
        return Example(id=str(rec.get("unique_id", f"{cls.name}-{index}")), question=question,
                       answer=normalize_final_answer(str(gold)), meta={"solution": solution})

    @classmethod
    def _hf_records(cls, split: str, config: str | None = None) -> tuple[list[dict], str]:
        if cls.hf_dataset[0] != "EleutherAI/hendrycks_math":
            return super()._hf_records(split, config)
        parts = [super(MATH, cls)._hf_records(split, subject) for subject in cls.SUBJECTS]
        return [r for recs, _ in parts for r in recs], " + ".join(src for _, src in parts)

    def generation_prompt(self, example: Example) -> str:
        return few_shot(SHOTS, "Problem:\n{question}\n\nSolution:", example.question)

    def extract(self, completion: str) -> str | None:
        m = MINERVA_RE.search(completion + " I hope it is correct.")
        raw = m.group(1).strip() if m else last_boxed(completion) if self.boxed_fallback else None
        return None if raw is None else normalize_final_answer(raw)

    def score(self, example: Example, completion: str) -> float:
        answer = self.extract(completion)
        return float(answer is not None and is_equiv(answer, example.answer))


class MATH500(MATH):
    """MATH-500 (Lightman et al. 2023): the 500-problem test subset (``HuggingFaceH4/MATH-500``)."""

    name = "math500"
    hf_dataset = ("HuggingFaceH4/MATH-500", None)
    data_dir = "math500"
