"""[tasks] GSM8K (Cobbe et al. 2021), as the paper runs it (§3): 4-shot chain of thought, "The answer is X".

The prompt is lm-evaluation-harness ``gsm8k-cot`` ("Q: …\\nA: … The answer is X.") with the first
four of its eight exemplars (Wei et al. 2022), since the paper uses 4 shots. Answers are read in
one of three ways (``extraction``):

- ``answer`` (default): the first "The answer is N" as a reader takes it: case-insensitive, after an
  optional ":" or bold marker, N with an optional sign and currency sign ($, €, £), thousands
  separators and decimals ("The answer is $1,234.", "the answer is: **18**", "The answer is
  -$5.50" and "The answer is $-5.50" all read); a decimal ending in zeros is read as the number ("18.00" is "18");
- ``strict``: lm-eval's strict-match regex, "The answer is " followed directly by digits, "," and
  "." ("The answer is $1,234." reads nothing: the "$" is not a digit);
- ``flexible``: lm-eval's flexible-extract, the last number in the completion.

Each is then stripped of ",", "$" and a trailing "." and compared as a string with the gold, what
follows "#### ". One deviation from lm-eval's strict regex, which ends in an any-character "."
that at the very end of a completion ("The answer is 18") captures "1": here the number is taken
whole. The utility is 1 iff the extracted answer equals the gold one (paper §2).
"""
from __future__ import annotations

import re
from typing import Any

from ..prompts import Demo
from .base import Example
from .common import DataError, DatasetTask, few_shot, field_of

SHOTS = (
    ("There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they "
     "are done, there will be 21 trees. How many trees did the grove workers plant today?",
     "There are 15 trees originally. Then there were 21 trees after some more were planted. So "
     "there must have been 21 - 15 = 6. The answer is 6."),
    ("If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the "
     "parking lot?",
     "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5."),
    ("Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have "
     "left in total?",
     "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. "
     "After eating 35, they had 74 - 35 = 39. The answer is 39."),
    ("Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many "
     "lollipops did Jason give to Denny?",
     "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny "
     "20 - 12 = 8. The answer is 8."),
)
#: Verification demonstrations (ours; the paper's are unpublished): the four prompt problems.
DEMOS = (
    Demo(SHOTS[0][0], SHOTS[0][1],
         "There are 15 trees originally. Then there were 21 trees after some more were planted. So there "
         "must have been 21 + 15 = 36. The answer is 36.",
         "The planted trees are the final 21 minus the original 15: 21 - 15 = 6, and the solution ends "
         "with \"The answer is 6\".",
         "The planted trees are the final 21 minus the original 15, not their sum: 21 - 15 = 6, so the "
         "final answer 36 is wrong."),
    Demo(SHOTS[1][0], SHOTS[1][1],
         "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 6. The answer is 6.",
         "3 cars plus 2 arriving cars make 3 + 2 = 5; the step and the final answer 5 are right.",
         "Adding the 2 arriving cars to the 3 is right, but 3 + 2 = 5, not 6, so the final answer is wrong."),
    Demo(SHOTS[2][0], SHOTS[2][1],
         "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After "
         "eating 35, they had 74 - 35 = 49. The answer is 49.",
         "Together they had 32 + 42 = 74, and 74 - 35 = 39 are left; both steps and the final answer 39 "
         "are right.",
         "The total 32 + 42 = 74 is right, but 74 - 35 = 39, not 49, so the final answer is wrong."),
    Demo(SHOTS[3][0], SHOTS[3][1],
         "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny "
         "20 + 12 = 32. The answer is 32.",
         "Jason went from 20 to 12 lollipops, so he gave away 20 - 12 = 8; the final answer 8 is right.",
         "Jason went from 20 to 12 lollipops, so he gave away 20 - 12 = 8; adding them to get 32 is wrong."),
)
ANSWER_RE = re.compile(r"the answer is[\s:*]*(-?)\s*[$€£]?\s*(-?)\s*(\d[\d,]*(?:\.\d+)?)", re.IGNORECASE)
STRICT_RE = re.compile(r"The answer is (-?[0-9.,]+)")
FLEXIBLE_RE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")


def normalize_number(text: str) -> str:
    """lm-eval gsm8k's ``regexes_to_ignore``: drop ",", "$", everything up to "#### ", a final "."."""
    text = re.sub(r"(?s).*#### ", "", text)
    text = text.replace(",", "").replace("$", "").strip()
    return re.sub(r"\.$", "", text)


class GSM8K(DatasetTask):
    """GSM8K test (1,319 problems) or train; ``extraction``: "answer" (default), "strict" or "flexible"."""

    name = "gsm8k"
    hf_dataset = ("openai/gsm8k", "main")
    data_dir = "gsm8k"
    stop = ("Q:", "\n\n", "</s>", "<|im_end|>")
    answer_format = "The answer is ANSWER"
    verifier_demos = DEMOS
    EXTRACTIONS = ("answer", "strict", "flexible")

    def __init__(self, examples, split: str = "test", extraction: str = "answer", verifier_shots: int = 4):
        if extraction not in self.EXTRACTIONS:
            raise ValueError(f"gsm8k extraction must be one of {self.EXTRACTIONS}, got {extraction!r}")
        super().__init__(examples, split=split, verifier_shots=verifier_shots)
        self.extraction = extraction

    @classmethod
    def example(cls, index: int, rec: dict[str, Any], where: str) -> Example:
        solution = str(field_of(rec, ["answer"], where))
        if "####" not in solution:
            raise DataError(f"{where}: the answer has no '#### N' final line")
        return Example(id=f"gsm8k-{index}", question=str(field_of(rec, ["question"], where)),
                       answer=normalize_number(solution), meta={"solution": solution})

    def generation_prompt(self, example: Example) -> str:
        return few_shot(SHOTS, "Q: {question}\nA:", example.question)

    def extract(self, completion: str) -> str | None:
        if self.extraction == "answer":
            m = ANSWER_RE.search(completion)
            if not m:
                return None
            number = normalize_number(m.group(3))
            return ("-" if "-" in m.group(1) + m.group(2) else "") + (
                number.rstrip("0").rstrip(".") if "." in number else number)
        if self.extraction == "strict":
            m = STRICT_RE.search(completion)
            return normalize_number(m.group(1)) if m else None
        found = [a or b for a, b in FLEXIBLE_RE.findall(completion)]
        return normalize_number(found[-1]) if found else None

    def score(self, example: Example, completion: str) -> float:
        return float(self.extract(completion) == example.answer)

