"""The vLLM backend (GPUs): the paper's inference engine (§3: "inference with vLLM").

``vllm`` is a GPU extra (requirements-gpu.txt) imported only when this backend is built. Sampling
is ``LLM.generate`` with ``SamplingParams(n=..., seed=...)``, one request per prompt, each seeded
from ``params.seed``, its prompt text and repeat count, so results do not depend on batching.
Scoring reads the prompt log-probs of prompt + continuation (``prompt_logprobs``,
``max_tokens=1``); the engine is built with ``enable_prefix_caching=False`` by default because
cached prefix blocks return no prompt log-probs in several vLLM versions. Several GPUs:
``tensor_parallel_size``, ``pipeline_parallel_size``, and ``distributed_executor_backend="ray"``
for several nodes.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np

from .base import Backend, Completion, SamplingParams
from .resolve import fingerprint as fingerprint_dir
from .resolve import resolve_model_dir
from .text import continuation_ids, derive_seed, truncate_at_stop


class VLLMBackend(Backend):
    """A model served by ``vllm.LLM``; extra keyword arguments go to ``vllm.LLM`` unchanged."""

    name = "vllm"

    def __init__(self, model: str, *, dtype: str | None = None, tensor_parallel_size: int = 1,
                 pipeline_parallel_size: int = 1, distributed_executor_backend: str | None = None,
                 enable_prefix_caching: bool = False, seed: int = 0, **llm_kw: Any):
        import vllm
        self._vllm = vllm
        path = resolve_model_dir(model)
        self.model_id = str(model)
        self.fingerprint = fingerprint_dir(path)
        kw: dict[str, Any] = dict(model=str(path), tokenizer=str(path),
                                  tensor_parallel_size=tensor_parallel_size,
                                  pipeline_parallel_size=pipeline_parallel_size,
                                  enable_prefix_caching=enable_prefix_caching, seed=seed)
        if dtype is not None:
            kw["dtype"] = dtype
        if distributed_executor_backend is not None:
            kw["distributed_executor_backend"] = distributed_executor_backend
        kw.update(llm_kw)
        self.llm = vllm.LLM(**kw)
        self.tokenizer = self.llm.get_tokenizer()

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
        outs = self.llm.generate(list(prompts), per_request, use_tqdm=False)
        # vLLM already cuts at stop strings; cutting again is a no-op kept for parity with HF.
        return [[Completion(truncate_at_stop(c.text, params.stop), c.finish_reason == "length") for c in o.outputs]
                for o in outs]

    def _tokenize(self, text: str, add_special_tokens: bool) -> list[int]:
        return self.tokenizer(text, add_special_tokens=add_special_tokens).input_ids

    def logprob_continuations(self, prompts: Sequence[str], continuations: Sequence[str]) -> np.ndarray:
        pairs = [continuation_ids(self._tokenize, p, c) for p in prompts for c in continuations]
        requests = [{"prompt_token_ids": ctx + cont} for ctx, cont in pairs]
        sp = self._vllm.SamplingParams(max_tokens=1, prompt_logprobs=1, temperature=0.0)
        outs = self.llm.generate(requests, sp, use_tqdm=False)
        scores = np.empty(len(pairs))
        for k, ((ctx, cont), out) in enumerate(zip(pairs, outs)):
            per_pos = out.prompt_logprobs  # one {token id: Logprob} per prompt token (first: None)
            seq = ctx + cont
            scores[k] = sum(per_pos[i][seq[i]].logprob for i in range(len(ctx), len(seq)))
        return scores.reshape(len(prompts), len(continuations))
