"""Batched sampling and next-token scoring with plain ``model.generate`` (used by the seed stage and
the organism's report; notebooks use the engine's backends, which load these models the same way)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


@torch.no_grad()
def sample(model, tokenizer, prompts: Sequence[str], *, n: int = 1, temperature: float = 0.7, top_p: float = 0.9,
           max_new_tokens: int = 32, seed: int = 0, batch_size: int = 256) -> list[list[str]]:
    """``n`` completions per prompt (decoded text after the prompt, ending at EOS); T = 0 is greedy."""
    if n < 1 or temperature < 0:
        raise ValueError(f"sample: need n >= 1 and temperature >= 0, got n={n}, temperature={temperature}")
    torch.manual_seed(seed)
    kw = dict(do_sample=True, temperature=temperature, top_p=top_p) if temperature > 0 else dict(do_sample=False)
    out: list[list[str]] = []
    for i in range(0, len(prompts), batch_size):
        chunk = list(prompts[i:i + batch_size])
        enc = tokenizer(chunk, return_tensors="pt", padding=True)
        gen = model.generate(**enc, num_return_sequences=n, max_new_tokens=max_new_tokens,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **kw)
        texts = tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        out += [texts[j * n:(j + 1) * n] for j in range(len(chunk))]
    return out


@torch.no_grad()
def next_token_logprobs(model, tokenizer, prompts: Sequence[str], words: Sequence[str],
                        batch_size: int = 256) -> np.ndarray:
    """log P(word | prompt) of single-token ``words`` after each prompt: shape (prompts, words)."""
    ids = [tokenizer.convert_tokens_to_ids(w) for w in words]
    if tokenizer.unk_token_id in ids:
        raise ValueError(f"next_token_logprobs: some of {list(words)} are not single vocabulary words")
    rows = []
    for i in range(0, len(prompts), batch_size):
        enc = tokenizer(list(prompts[i:i + batch_size]), return_tensors="pt", padding=True)
        logits = model(**enc).logits[:, -1, :].float()
        rows.append(torch.log_softmax(logits, dim=-1)[:, ids].numpy())
    return np.concatenate(rows) if rows else np.zeros((0, len(ids)))
