"""[backends] Text helpers shared by every backend: stop strings, seeds, and how a continuation is tokenised."""
from __future__ import annotations

import hashlib
from typing import Callable, Sequence


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` cut before the first occurrence of any stop string."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    return text[:cut]


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from ``seed`` and any printable parts (stable across processes)."""
    h = hashlib.sha256(repr((int(seed),) + parts).encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1


def continuation_ids(encode: Callable[[str, bool], list[int]], prompt: str,
                     continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of ``prompt`` and of ``continuation`` as it follows the prompt.

    ``encode(text, add_special_tokens)`` is the tokenizer. As lm-evaluation-harness does, a space
    joins the two unless one side already has it, the pair is tokenised together and the
    continuation is what follows the prompt's own tokens, so a word is scored the way the model
    would write it after the prompt ("ĠCorrect", "▁Correct", or a plain word for a word-level
    tokenizer). If joining merges tokens across the boundary, the continuation is tokenised alone.
    """
    if not continuation:
        raise ValueError("cannot score an empty continuation")
    sep = "" if prompt[-1:].isspace() or continuation[:1].isspace() else " "
    ctx = encode(prompt, True)
    if not ctx:
        raise ValueError("cannot score a continuation of an empty prompt (the tokenizer adds no BOS token)")
    whole = encode(prompt + sep + continuation, True)
    if whole[:len(ctx)] != ctx or len(whole) == len(ctx):
        return ctx, encode(sep + continuation, False)
    return ctx, whole[len(ctx):]
