"""[tasks] The task interface shared by the paper's tasks and the organism's (paper §3, §4).

A task owns everything that is specific to it: how a problem is shown to a generator, how an
answer is read back, the utility u(x, y) in [0, 1], and how each of the paper's four verifiers
(App. E) is asked about a candidate. Verifiers and loops only ever talk to this interface, so a
notebook never branches on which task (or which scale) it runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from gvlib.names import VERIFIER_METHODS  # noqa: F401  (re-exported: tasks ask verifiers with these methods)


@dataclass(frozen=True)
class Example:
    """One problem: a stable id, the question text, the gold answer, task-specific extras."""

    id: str
    question: str
    answer: str
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


class Task:
    """Base class of every task. Subclasses set the class attributes and implement the methods.

    Attributes
    ----------
    name            registry name, e.g. ``"gsm8k"`` or ``"organism/arith"``
    examples        the loaded problems (a split, possibly limited)
    stop            stop strings for generation
    max_new_tokens  generation budget (the paper: 512)
    verifier_max_new_tokens  budget of a sampled verification (the paper: 512, §3 fn. 4; the
                    organism's tasks set their own, a little above their longest verdict)
    mc_tokens       the MC verdict words (t+, t-), read from next-token probabilities
    """

    name: str = ""
    stop: Sequence[str] = ()
    max_new_tokens: int = 512
    verifier_max_new_tokens: int = 512
    mc_tokens: tuple[str, str] = ("Correct", "Incorrect")

    def __init__(self, examples: Sequence[Example]):
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    # -- generation -------------------------------------------------------------------------
    def generation_prompt(self, example: Example) -> str:
        """The (k-shot) prompt after which the generator writes its solution."""
        raise NotImplementedError

    def extract(self, completion: str) -> str | None:
        """The final answer in a completion, or ``None`` when none can be extracted."""
        raise NotImplementedError

    def score(self, example: Example, completion: str) -> float:
        """Utility u(x, y) in [0, 1] of a completion (paper §2: 1 iff the answer is correct)."""
        raise NotImplementedError

    # -- verification (paper App. E) --------------------------------------------------------
    def verifier_prompt(self, method: str, example: Example, candidate: str, other: str | None = None) -> str:
        """The prompt that asks a verifier about ``candidate`` with ``method`` in VERIFIER_METHODS.

        For ``"tournament"``, ``candidate`` is solution A and ``other`` solution B. For ``"mc"`` the
        prompt ends where the verdict word (``mc_tokens``) would follow.
        """
        raise NotImplementedError
