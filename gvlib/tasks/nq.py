"""[tasks] Natural Questions, open-domain (NQ-open; Lee et al. 2019), the paper's factual task (§3, §4.3).

Prompts as lm-evaluation-harness ``nq_open``: "Q: {question}?\\nA:", 4 shots. The paper's exemplars
(from the NQ train split) are unpublished, so the four below are hand-written in NQ's style
(lower-case search queries, short answers). The "test" split is NQ-open's 3,610-question
validation split, which the paper calls its test subset. The paper reports only MC verification
on NQ (Tab. 1), so this task's verifier prompts are MC only.

Scoring (``scoring``). Generation stops at a newline. A completion is correct (u = 1, paper §4.3:
y is one of the candidate answers) when, after SQuAD normalisation (lower case, punctuation and
articles removed, whitespace collapsed), one of the gold aliases equals

- ``"clause"`` (default): its first line, or its first clause (the first line up to its first "."
  or ","), so "Washington, D.C." and "J. R. R. Tolkien" can be answered whole;
- ``"strict"``: its first clause only. This is lm-eval's ``nq_open``, whose stop strings are "\\n",
  "." and ","; an alias containing "." or "," can then never be produced, and 310 of the 3,610
  questions have only such aliases (accuracy is capped at 91.4%).

"clause" accepts everything "strict" accepts, so the two differ only where a first line with a
period or comma is an alias.
"""
from __future__ import annotations

import re
import string
from typing import Any

from ..prompts import Demo
from .base import Example
from .common import DataError, DatasetTask, few_shot, field_of

SHOTS = (
    ("who wrote the novel pride and prejudice", "Jane Austen"),
    ("what is the capital city of australia", "Canberra"),
    ("how many players are on the field for one team in soccer", "eleven"),
    ("when did the first man land on the moon", "20 July 1969"),
)
#: Verification demonstrations (ours): the prompt questions with a right and a wrong answer.
DEMOS = (
    Demo(SHOTS[0][0], "Jane Austen", "Charlotte Brontë", "Pride and Prejudice (1813) is by Jane Austen.",
         "Pride and Prejudice is by Jane Austen; Charlotte Brontë wrote Jane Eyre."),
    Demo(SHOTS[1][0], "Canberra", "Sydney", "Australia's capital is Canberra.",
         "Sydney is Australia's largest city, but its capital is Canberra."),
    Demo(SHOTS[2][0], "eleven", "ten", "A soccer team fields eleven players, the goalkeeper included.",
         "A soccer team fields eleven players, the goalkeeper included, not ten."),
    Demo(SHOTS[3][0], "20 July 1969", "16 July 1969", "Apollo 11 landed on the Moon on 20 July 1969.",
         "Apollo 11 was launched on 16 July 1969 but landed on 20 July 1969."),
)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (lm-eval nq_open / SQuAD)."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


class NQOpen(DatasetTask):
    """NQ-open: ``split="test"`` (= validation, 3,610 questions, file ``dev.jsonl``) or "train";
    ``scoring`` "clause" (default) or "strict" (lm-eval's; see module doc)."""

    name = "nq_open"
    hf_dataset = ("google-research-datasets/nq_open", None)
    data_dir = "nq_open"
    hf_splits = {"test": "validation", "dev": "validation"}
    file_splits = {"test": "dev", "validation": "dev"}
    stop = ("\n",)
    max_new_tokens = 32
    domain = "factual question"
    verifier_demos = DEMOS
    SCORINGS = ("clause", "strict")
    #: Where lm-eval's nq_open cuts an answer: the end of its first clause.
    CLAUSE_END = (".", ",")

    def __init__(self, examples, split: str = "test", scoring: str = "clause", verifier_shots: int = 4):
        if scoring not in self.SCORINGS:
            raise ValueError(f"nq_open scoring must be one of {self.SCORINGS}, got {scoring!r}")
        super().__init__(examples, split=split, verifier_shots=verifier_shots)
        self.scoring = scoring

    def with_scoring(self, scoring: str) -> "NQOpen":
        """The same problems and prompts, scored with ``scoring``."""
        return NQOpen(self.examples, split=self.split, scoring=scoring, verifier_shots=self.verifier_shots)

    @classmethod
    def example(cls, index: int, rec: dict[str, Any], where: str) -> Example:
        aliases = field_of(rec, ["answer", "answers"], where)
        if isinstance(aliases, str):
            aliases = [aliases]
        if not aliases or not all(isinstance(a, str) for a in aliases):
            raise DataError(f"{where}: the answer must be a non-empty list of strings")
        return Example(id=f"nq-{index}", question=str(field_of(rec, ["question"], where)),
                       answer=aliases[0], meta={"aliases": list(aliases)})

    def generation_prompt(self, example: Example) -> str:
        return few_shot(SHOTS, "Q: {question}?\nA:", example.question)

    def verifier_problem(self, example: Example) -> str:
        return example.question + "?"

    def readings(self, completion: str) -> list[str]:
        """What may be the answer: the first line (not in "strict" scoring), then its first clause."""
        line = completion.split("\n")[0]
        clause = line
        for s in self.CLAUSE_END:
            clause = clause.split(s)[0]
        return [clause] if self.scoring == "strict" else [line, clause]

    def extract(self, completion: str) -> str | None:
        """The answer as written: the first line ("strict": its first clause), or None if empty."""
        return self.readings(completion)[0].strip() or None

    def score(self, example: Example, completion: str) -> float:
        aliases = {normalize_answer(a) for a in example.meta["aliases"]}
        return float(any(r.strip() and normalize_answer(r) in aliases for r in self.readings(completion)))

    def verifier_prompt(self, method: str, example: Example, candidate: str, other: str | None = None) -> str:
        if method != "mc":
            raise ValueError(f"nq_open has MC verification only (the paper's Tab. 1), not {method!r}")
        return super().verifier_prompt(method, example, candidate, other)
