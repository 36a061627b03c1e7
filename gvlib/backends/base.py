"""[backends] The backend interface: sample n completions per prompt, score fixed continuations.

Every backend (transformers on CPU or GPU, vLLM on GPUs) implements this; verifiers, loops and
notebooks use nothing else, so the organism and a 72B model run through the same code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings; the paper's defaults (§3): T = 0.7, top-p 0.9, at most 512 new tokens."""

    n: int = 1
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 512
    stop: tuple[str, ...] = ()
    seed: int = 0


@dataclass(frozen=True)
class Completion:
    """One sampled completion (stop strings removed) and whether it ended at ``max_new_tokens``.

    ``hit_limit`` is None when the backend cannot tell (one that implements :meth:`Backend.sample` only).
    """

    text: str
    hit_limit: bool | None = None


class Backend:
    """A loaded model that samples and scores.

    ``fingerprint`` identifies the weights and tokenizer (it keys the disk cache); ``tokenizer`` is the
    model's (a ``transformers`` tokenizer; None for a backend without one).
    """

    name: str = ""
    tokenizer = None
    model_id: str = ""
    fingerprint: str = ""
    #: The modules whose code determines what this backend returns (they key the cache).
    code: tuple[str, ...] = ()
    #: Problems per engine call and cache entry (:mod:`gvlib.engine`): small enough to resume often.
    chunk_size: int = 64

    def sampling_key(self) -> dict:
        """Settings besides the weights that change what :meth:`sample` returns (they key the cache)."""
        return {}

    def sample(self, prompts: Sequence[str], params: SamplingParams) -> list[list[str]]:
        """``params.n`` completions per prompt (text after the prompt, stop strings removed)."""
        return [[c.text for c in cs] for cs in self.sample_completions(prompts, params)]

    def sample_completions(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Completion]]:
        """As :meth:`sample`, with whether each completion hit the token limit (a verdict cut short).

        A backend implements this or :meth:`sample`; from :meth:`sample` alone ``hit_limit`` is unknown.
        """
        if type(self).sample is Backend.sample:
            raise NotImplementedError(f"{type(self).__name__} implements neither sample nor sample_completions")
        return [[Completion(t) for t in texts] for texts in self.sample(prompts, params)]

    def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """The token ids of ``text`` under the model's tokenizer (with its BOS etc. when ``add_special_tokens``)."""
        if self.tokenizer is None:
            raise NotImplementedError(f"{type(self).__name__} has no tokenizer")
        return self.tokenizer(text, add_special_tokens=add_special_tokens).input_ids

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """The token ids of each prompt in ``texts``, as the model is given them (:meth:`tokenize`)."""
        return [self.tokenize(t) for t in texts]

    def logprob_continuations(self, prompts: Sequence[str], continuations: Sequence[str]) -> np.ndarray:
        """log P(continuation | prompt) for every prompt and continuation: shape (prompts, continuations).

        Multi-token continuations are summed over their tokens; tokenisation (e.g. a leading
        space) is handled by the backend for its tokenizer.
        """
        raise NotImplementedError
