"""Natural Questions, open-domain (NQ-open; Lee et al. 2019), the paper's factual task (§3, §4.3).

As lm-evaluation-harness ``nq_open``: "Q: {question}?\\nA:" prompts, generation stops at a newline,
"." or ",", and a completion is correct iff it equals one of the gold aliases after normalisation
(lower case, articles and punctuation removed, whitespace collapsed). The paper uses 4 shots; its
exemplars (from the NQ train split) are unpublished, so the four below are hand-written in NQ's
style (lower-case search queries, short answers). The "test" split is NQ-open's 3,610-question
validation split, which the paper calls its test subset. A consequence of lm-eval's stop strings
kept here: an alias containing "." or "," ("Washington, D.C.") can never be produced whole; 310 of
the 3,610 questions have no other alias, which caps accuracy at 91.4%. The paper reports only MC verification on
NQ (Tab. 1), so this task's verifier prompts are MC only.
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
    """NQ-open: ``split="test"`` (= validation, 3,610 questions, file ``dev.jsonl``) or "train"."""

    name = "nq_open"
    hf_dataset = ("google-research-datasets/nq_open", None)
    data_dir = "nq_open"
    hf_splits = {"test": "validation", "dev": "validation"}
    file_splits = {"test": "dev", "validation": "dev"}
    stop = ("\n", ".", ",")
    max_new_tokens = 32
    domain = "factual question"
    verifier_demos = DEMOS

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

    def extract(self, completion: str) -> str | None:
        for s in self.stop:
            completion = completion.split(s)[0]
        return completion.strip() or None

    def score(self, example: Example, completion: str) -> float:
        answer = self.extract(completion)
        if answer is None:
            return 0.0
        return float(normalize_answer(answer) in {normalize_answer(a) for a in example.meta["aliases"]})

    def verifier_prompt(self, method: str, example: Example, candidate: str, other: str | None = None) -> str:
        if method != "mc":
            raise ValueError(f"nq_open has MC verification only (the paper's Tab. 1), not {method!r}")
        return super().verifier_prompt(method, example, candidate, other)
