"""[backends] The vLLM backend (GPUs): the paper's inference engine (§3: "inference with vLLM").

``vllm`` is a GPU extra (requirements-gpu.txt) imported only when this backend is built; the same
vLLM release has a CPU build (``make test-vllm``), on which the tests run this backend.

Sampling is ``LLM.generate`` with ``SamplingParams(n=..., seed=...)``, one request per prompt, each
seeded from ``params.seed``, its prompt text and repeat count, so results do not depend on batching;
prefix caching is on, so the n samples of a prompt and the verification prompts that share a problem
statement share its KV blocks.

Scoring (the MC verifier, paper §3, App. E) sends one request per distinct prefix (for one-token
verdicts: one request per verification prompt) that generates one token and returns the log-probs of
the asked tokens only (``logprob_token_ids``), never prompt log-probs over the full vocabulary at
every position; a multi-token continuation adds one request per token, whose prefix is in the cache.
vLLM computes these log-probs from the raw logits (its default ``logprobs_mode``), before
temperature. Several GPUs: ``tensor_parallel_size``, ``pipeline_parallel_size``, and
``distributed_executor_backend="ray"`` for several nodes; ``gpu_memory_utilization`` and
``max_model_len`` bound the memory one engine takes.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np

from ..cache import digest
from .base import Backend, Completion, SamplingParams
from .resolve import fingerprint as fingerprint_dir
from .resolve import resolve_model_dir
from .text import continuation_ids, derive_seed, truncate_at_stop


#: The values vLLM accepts for ``max_lora_rank`` (``vllm.config.lora.MaxLoRARanks`` in vLLM 0.32; the
#: vLLM tests check it against the installed release). An adapter of rank r needs max_lora_rank >= r.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def vllm_max_lora_rank(rank: int) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that serves a LoRA adapter of rank ``rank`` (4 -> 8, 12 -> 16)."""
    fits = [r for r in VLLM_LORA_RANKS if r >= rank]
    if rank < 1 or not fits:
        raise ValueError(f"LoRA rank {rank} cannot be served by vLLM: ranks 1..{VLLM_LORA_RANKS[-1]} only")
    return fits[0]


def vllm_version(vllm_module) -> str:
    """The vLLM release (the GPU and CPU builds of one release report the same version)."""
    return str(getattr(vllm_module, "__version__", "unknown"))


class VLLMBackend(Backend):
    """A model served by ``vllm.LLM``; extra keyword arguments go to ``vllm.LLM`` unchanged."""

    name = "vllm"
    code = ("gvlib.backends.vllm",)
    #: A whole test set per call (GSM8K's 1,319 problems, MATH-500): vLLM batches every request of a
    #: call, so each tournament round and each sampling call fills the GPUs; results do not depend on it.
    chunk_size = 2048

    def __init__(self, model: str, *, dtype: str | None = None, tensor_parallel_size: int = 1,
                 pipeline_parallel_size: int = 1, distributed_executor_backend: str | None = None,
                 enable_prefix_caching: bool = True, gpu_memory_utilization: float | None = None,
                 max_model_len: int | None = None, seed: int = 0, lora: tuple[str, int, str] | None = None,
                 **llm_kw: Any):
        import vllm
        self._vllm = vllm
        path = resolve_model_dir(model)
        self.model_id = str(model)
        self.fingerprint = fingerprint_dir(path)
        #: ``lora`` = (name, id, adapter directory): every request carries this adapter (``LoRARequest``),
        #: and the backend is the adapted model: its id and fingerprint name the adapter too.
        self._lora_request = None
        if lora is not None:
            from vllm.lora.request import LoRARequest

            name, lora_id, adapter = lora
            self._lora_request = LoRARequest(name, lora_id, adapter)
            self.model_id = f"{model}+{name}"
            self.fingerprint = digest([self.fingerprint, fingerprint_dir(adapter)])[:24]
        kw: dict[str, Any] = dict(model=str(path), tokenizer=str(path),
                                  tensor_parallel_size=tensor_parallel_size,
                                  pipeline_parallel_size=pipeline_parallel_size,
                                  enable_prefix_caching=enable_prefix_caching, seed=seed)
        optional = {"dtype": dtype, "distributed_executor_backend": distributed_executor_backend,
                    "gpu_memory_utilization": gpu_memory_utilization, "max_model_len": max_model_len}
        kw.update({k: v for k, v in optional.items() if v is not None})
        kw.update(llm_kw)
        self.llm = vllm.LLM(**kw)
        self.tokenizer = self.llm.get_tokenizer()
        config = getattr(self.llm, "model_config", None)
        self._key = {"vllm": vllm_version(vllm), "dtype": str(getattr(config, "dtype", dtype)),
                     "tensor_parallel_size": tensor_parallel_size, "pipeline_parallel_size": pipeline_parallel_size}

    def sampling_key(self) -> dict:
        """The vLLM release, the weights' dtype and the parallel layout: they change the numbers, so key the cache."""
        return dict(self._key)

    def _params(self, params: SamplingParams, prompt: str, repeat: int) -> Any:
        return self._vllm.SamplingParams(
            n=params.n, temperature=params.temperature, top_p=params.top_p,
            max_tokens=params.max_new_tokens, stop=list(params.stop) or None,
            seed=derive_seed(params.seed, prompt, repeat) % (2 ** 31))

    def sample_completions(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Completion]]:
        # A request's seed comes from its text and how often that text came before in this call,
        # so repeated prompts (a candidate sampled twice) still get independent draws.
        seen: Counter[str] = Counter()
        per_request = []
        for p in prompts:
            per_request.append(self._params(params, p, seen[p]))
            seen[p] += 1
        outs = self._generate(list(prompts), per_request)
        # The text is decoded from the sampled ids and cut at the first stop string exactly as the
        # transformers backend does (vLLM's own text keeps the space a word-level or SentencePiece
        # tokenizer puts before the first word), so both engines give the same text for the same tokens;
        # a completion that ran out of new tokens says so (finish reason "length").
        return [[Completion(truncate_at_stop(self.tokenizer.decode(c.token_ids, skip_special_tokens=True), params.stop),
                            c.finish_reason == "length") for c in o.outputs] for o in outs]

    def _generate(self, requests: list, params: list) -> list:
        """``LLM.generate`` without a progress bar, with the adapter's ``lora_request`` when there is one."""
        lora = {} if self._lora_request is None else {"lora_request": self._lora_request}
        return self.llm.generate(requests, params, use_tqdm=False, **lora)

    def logprob_continuations(self, prompts: Sequence[str], continuations: Sequence[str]) -> np.ndarray:
        pairs = [continuation_ids(self.tokenize, p, c) for p in prompts for c in continuations]
        # log P(cont | ctx) = sum over k of log P(cont[k] | ctx + cont[:k]): one request per distinct
        # prefix, asking for exactly the tokens that follow it there (a prompt's one-token verdicts
        # share one request; a longer continuation's prefixes reuse the prompt's cached KV blocks).
        asked: dict[tuple[int, ...], set[int]] = {}
        for ctx, cont in pairs:
            for k, tok in enumerate(cont):
                asked.setdefault(tuple(ctx + cont[:k]), set()).add(tok)
        prefixes = list(asked)
        outs = self._generate(
            [{"prompt_token_ids": list(x)} for x in prefixes],
            [self._vllm.SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=sorted(asked[x]))
             for x in prefixes])
        logp = {x: {t: lp.logprob for t, lp in out.outputs[0].logprobs[0].items()}
                for x, out in zip(prefixes, outs)}
        scores = np.array([sum(logp[tuple(ctx + cont[:k])][tok] for k, tok in enumerate(cont)) for ctx, cont in pairs])
        return scores.reshape(len(prompts), len(continuations))
