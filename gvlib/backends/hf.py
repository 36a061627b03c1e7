"""[backends] The `transformers` backend (CPU or GPU): batched, left-padded sampling and continuation scoring.

Sampling follows the paper's settings (§3: T = 0.7, top-p 0.9, 512 new tokens) through
``gvlib.sampler`` for Llama-like models and ``model.generate`` otherwise; scoring gives log P(continuation | prompt) for the MC verifier (§3, App. E).
All sampling goes through :meth:`HFBackend._sample_ids` and all scoring through
:meth:`HFBackend._score_ids`, so a faster sampler or log-prob kernel replaces one method each.

Determinism: each ``generate`` call runs under a torch seed derived from ``params.seed`` and its
prompt texts, so the same prompts, batch size and seed give the same completions on the same
machine, whatever ran before.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import torch

from ..kernels import token_logprobs
from ..sampler import sample_tokens, supports_fast_path
from .base import Backend, Completion, SamplingParams
from .resolve import fingerprint as fingerprint_dir
from .resolve import resolve_model_dir
from .text import continuation_ids, derive_seed, truncate_at_stop


#: Rows (prompt × sample) per sampling call for a small model: the organism's batch in the book.
#: The sampler's per-step overhead is amortised over the rows, so the book's generation calls (n = 8) gain
#: from large batches while its verification calls (n = 1, longer prompts) are bound by reading the KV
#: cache and barely change (``python -m gvlib.bench`` measures both; the README's Speed section).
SMALL_MODEL_BATCH_ROWS = 512
#: Models above this many parameters get ``LARGE_BATCH_ROWS``, whose KV cache stays small.
SMALL_MODEL_PARAMS = 50_000_000
LARGE_BATCH_ROWS = 64


def default_batch_rows(model) -> int:
    """:data:`SMALL_MODEL_BATCH_ROWS` rows for a small model (the organism), :data:`LARGE_BATCH_ROWS` otherwise."""
    params = sum(p.numel() for p in model.parameters())
    return SMALL_MODEL_BATCH_ROWS if params < SMALL_MODEL_PARAMS else LARGE_BATCH_ROWS


class HFBackend(Backend):
    """A causal LM and its tokenizer from `transformers`, on ``device``.

    Build it with :meth:`from_pretrained` (a local directory or Hub id) or directly from a loaded
    model and tokenizer (then pass a ``fingerprint`` that identifies them). ``batch_size`` bounds
    the rows (prompt × sample) of one sampling call (default :func:`default_batch_rows`),
    ``score_batch_size`` (default: the same) the sequences of one scoring forward pass.
    """

    name = "transformers"
    code = ("gvlib.backends.hf", "gvlib.sampler", "gvlib.kernels.logprob")

    def __init__(self, model, tokenizer, *, model_id: str = "", fingerprint: str = "",
                 batch_size: int | None = None, score_batch_size: int | None = None):
        batch_size = default_batch_rows(model) if batch_size is None else batch_size
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.fingerprint = fingerprint
        self.batch_size = batch_size
        self.score_batch_size = score_batch_size or batch_size
        self.device = next(model.parameters()).device
        self.eos_ids = self._eos_ids()
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]

    def sampling_key(self) -> dict:
        """Samples depend on the batch layout (one seeded call per batch) and the weights' dtype."""
        return {"batch_size": self.batch_size, "dtype": str(next(self.model.parameters()).dtype)}

    @classmethod
    def from_pretrained(cls, model: str, *, device: str | None = None, dtype: str | None = None,
                        **kw) -> "HFBackend":
        """Load ``model`` (local directory or Hugging Face id) with its tokenizer."""
        from transformers import AutoModelForCausalLM, AutoTokenizer
        path = resolve_model_dir(model)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if torch_dtype is None:
            torch_dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        tok = AutoTokenizer.from_pretrained(path)
        lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype).to(device)
        return cls(lm, tok, model_id=str(model), fingerprint=fingerprint_dir(path), **kw)

    def _eos_ids(self) -> list[int]:
        ids = self.model.generation_config.eos_token_id
        ids = [ids] if isinstance(ids, int) else list(ids or [])
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in ids:
            ids.append(self.tokenizer.eos_token_id)
        if not ids:
            raise ValueError(f"model {self.model_id!r} has no EOS token id (config or tokenizer)")
        return ids

    def _left_pad(self, seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            if s:
                ids[i, width - len(s):] = torch.tensor(s)
                mask[i, width - len(s):] = 1
        return ids.to(self.device), mask.to(self.device)

    # -- sampling ---------------------------------------------------------------------------
    def sample_completions(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Completion]]:
        """``params.n`` completions per prompt, at most ``batch_size`` rows (prompt × sample) per call.

        Each call samples under a seed derived from ``params.seed``, its prompts and its share of
        the n samples, so a result depends only on the prompts, ``batch_size`` and the seed. A
        completion hit the limit when it has ``max_new_tokens`` tokens, no EOS and no stop string.
        """
        per_call = min(params.n, self.batch_size)         # samples of a prompt per generate call
        prompts_per_call = max(1, self.batch_size // params.n)
        out: list[list[Completion]] = []
        for start in range(0, len(prompts), prompts_per_call):
            batch = list(prompts[start:start + prompts_per_call])
            ids = self.encode(batch)
            got: list[list[list[int]]] = [[] for _ in batch]
            for part, first in enumerate(range(0, params.n, per_call)):
                share = dataclasses.replace(params, n=min(per_call, params.n - first))
                for acc, seqs in zip(got, self._sample_ids(ids, share, derive_seed(params.seed, batch, part))):
                    acc.extend(seqs)
            out += [[self._completion(s, params) for s in seqs] for seqs in got]
        return out

    def _completion(self, ids: list[int], params: SamplingParams) -> Completion:
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        cut = truncate_at_stop(text, params.stop)
        return Completion(cut, len(ids) >= params.max_new_tokens and cut == text)

    @torch.no_grad()
    def _sample_ids(self, prompt_ids: list[list[int]], params: SamplingParams,
                    batch_seed: int) -> list[list[list[int]]]:
        """``params.n`` sampled continuations (token ids, cut before the first EOS) per prompt.

        A Llama-like model runs on ``gvlib.sampler`` (one forward per distinct sequence, not per
        sample; same distribution as ``generate``; stop strings are then cut by ``sample``), any
        other through ``generate``.
        """
        if all(prompt_ids) and supports_fast_path(self.model, max(map(len, prompt_ids)) + params.max_new_tokens):
            eos = set(self.eos_ids)
            samples = sample_tokens(self.model, prompt_ids, n=params.n, temperature=max(params.temperature, 0.0),
                                    top_p=params.top_p, max_new_tokens=params.max_new_tokens,
                                    eos_token_ids=self.eos_ids, seed=batch_seed, pad_token_id=self.pad_id)
            return [[s[:-1] if s and s[-1] in eos else s for s in seqs] for seqs in samples]
        ids, mask = self._left_pad(prompt_ids)
        torch.manual_seed(batch_seed)
        greedy = params.temperature <= 0
        gen = self.model.generate(
            input_ids=ids, attention_mask=mask, do_sample=not greedy,
            temperature=None if greedy else params.temperature, top_p=None if greedy else params.top_p,
            top_k=None, max_new_tokens=params.max_new_tokens, num_return_sequences=params.n,
            pad_token_id=self.pad_id, eos_token_id=self.eos_ids,
            stop_strings=list(params.stop) or None, tokenizer=self.tokenizer if params.stop else None)
        new = gen[:, ids.shape[1]:].tolist()
        eos = set(self.eos_ids)
        cut = [s[:next((j for j, t in enumerate(s) if t in eos), len(s))] for s in new]
        return [cut[i * params.n:(i + 1) * params.n] for i in range(len(prompt_ids))]

    # -- scoring ----------------------------------------------------------------------------
    def logprob_continuations(self, prompts: Sequence[str], continuations: Sequence[str]) -> np.ndarray:
        pairs = [continuation_ids(self.tokenize, p, c) for p in prompts for c in continuations]
        # One model input per distinct prompt + continuation[:-1], so a prompt's single-token
        # verdicts share one forward pass; a pair asks for log P(cont[t] | input up to len(ctx)+t).
        index: dict[tuple[int, ...], int] = {}
        seqs: list[list[int]] = []
        queries: list[list[tuple[int, int]]] = []
        spans = []
        for ctx, cont in pairs:
            i = index.setdefault(tuple(ctx + cont[:-1]), len(seqs))
            if i == len(seqs):
                seqs.append(ctx + cont[:-1])
                queries.append([])
            spans.append((i, len(queries[i]), len(cont)))
            queries[i].extend((len(ctx) - 1 + t, tok) for t, tok in enumerate(cont))
        logps = self._score_ids(seqs, queries)
        out = np.array([sum(logps[i][j:j + n]) for i, j, n in spans], dtype=float)
        return out.reshape(len(prompts), len(continuations))

    @torch.no_grad()
    def _score_ids(self, seqs: Sequence[Sequence[int]],
                   queries: Sequence[Sequence[tuple[int, int]]]) -> list[list[float]]:
        """log P(token | seq[:pos + 1]) for every (pos, token) of ``queries[i]``, for every ``seqs[i]``.

        Sequences are left-padded in batches and only the logits of the queried positions are kept.
        """
        out: list[list[float]] = []
        for start in range(0, len(seqs), self.score_batch_size):
            batch, asked = seqs[start:start + self.score_batch_size], queries[start:start + self.score_batch_size]
            ids, mask = self._left_pad(batch)
            keep = max(len(s) - min(p for p, _ in q) for s, q in zip(batch, asked))
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                                logits_to_keep=keep).logits
            rows = [(b, keep - len(s) + p, tok) for b, (s, q) in enumerate(zip(batch, asked)) for p, tok in q]
            b_idx, t_idx, tok = (torch.tensor(col, device=self.device) for col in zip(*rows))
            flat = token_logprobs(logits[b_idx, t_idx], tok).cpu().tolist()
            for q in asked:
                out.append(flat[:len(q)])
                flat = flat[len(q):]
        return out
