"""Fast batched sampling of n completions per prompt from a small decoder (paper §3: n samples at T, top-p).

``sample_tokens`` replaces ``model.generate`` for the sampling stage of every claim: the paper draws
``n`` completions per prompt at temperature T = 0.7 and top-p 0.9, and the organism's notebooks do
the same thousands of times on a CPU, where ``generate``'s per-step overhead and its per-row prefill
dominate. Here

- each distinct prompt is prefilled once, and its KV cache serves all its ``n`` rows; prompts are
  prefilled a few thousand tokens at a time, each chunk padded only to its own longest prompt;
- prompts of different lengths are left-padded, with the attention mask and position ids that make
  each row's logits equal to those of the unpadded prompt alone;
- temperature and top-p (the same rule as ``transformers``' ``TopPLogitsWarper``) act on tensors,
  and draws come from one seeded ``torch.Generator``: the same call gives the same tokens;
- rows that emitted an EOS id leave the batch (once a quarter of it has stopped), and the loop ends
  when every row has stopped.

Two decoders drive the model. ``_LlamaDecoder`` runs a Llama-like model (Llama, Qwen2, Mistral with
full attention, plain ``nn.Linear`` projections) directly on its weights: each prompt's KV cache is
stored once and attended to by all its rows in one matrix product (shared-prefix attention), and
the generated tokens' keys and values go into per-row tensors preallocated to their final length.
``_HFDecoder`` runs any other causal LM through its own forward with a ``DynamicCache``. Both are checked against the model's unpadded forward in tests.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["sample_tokens", "top_p_filter", "supports_fast_path"]

# Decoder-only architectures whose layers are exactly the Llama block (RMSNorm, RoPE via the model's
# own rotary module, q/k/v/o projections with optional biases, gated MLP); sliding windows excluded.
_LLAMA_LIKE = {"LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM"}

# Padded prompt tokens per prefill chunk: an organism's MLP activations for 4,096 tokens take 8 MiB.
PREFILL_TOKENS = 4096


def _sorted_values(x: torch.Tensor) -> torch.Tensor:
    """``x`` sorted ascending along the last axis.

    On the CPU NumPy's sort is used where NumPy has the dtype: ``torch.sort`` (torch 2.13) takes
    ~9 ms for 1024 rows of 150 entries, NumPy ~0.7 ms, which matters when it runs at every step.
    """
    if x.device.type == "cpu" and x.dtype in (torch.float16, torch.float32, torch.float64):
        return torch.from_numpy(np.sort(x.detach().numpy(), axis=-1))
    return torch.sort(x, dim=-1).values


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Set to -inf the logits outside the nucleus of mass ``top_p`` (Holtzman et al.; paper §3 uses 0.9).

    The rule is ``transformers``' ``TopPLogitsWarper``: sorted ascending, a token is removed when the
    cumulative probability up to and including it is ``<= 1 - top_p``; the most likely token always
    stays. The removed tokens are those at or below a threshold value, so tokens tied exactly at the
    boundary are all removed, and tokens tied with the most likely one all stay (``transformers``
    keeps an arbitrary subset of tied tokens).
    """
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if top_p == 1.0:
        return logits
    ascending = _sorted_values(logits)
    removed = ascending.softmax(dim=-1).cumsum(dim=-1) <= (1.0 - top_p)
    removed[..., -1] = False
    # ``removed`` is a prefix of each sorted row: its last entry is the row's threshold.
    count = removed.sum(dim=-1, keepdim=True)
    threshold = ascending.gather(-1, (count - 1).clamp(min=0))
    threshold = threshold.masked_fill(count == 0, float("-inf"))
    removed = (logits <= threshold) & (logits < ascending[..., -1:])
    return logits.masked_fill(removed, float("-inf"))


def _draw(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> torch.Tensor:
    """One token per row: greedy at temperature 0, else a draw from softmax(top_p_filter(logits / T)).

    The draw inverts the cumulative distribution with one uniform per row (float64), which has the
    same distribution as ``torch.multinomial`` and needs no random number per vocabulary entry.
    """
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    scores = top_p_filter(logits.float() / temperature, top_p)
    cdf = scores.softmax(dim=-1).double().cumsum(dim=-1)
    u = torch.rand(len(cdf), 1, generator=generator, dtype=torch.float64, device=cdf.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.shape[-1] - 1).squeeze(-1)


def _rms_norm(x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
    """``LlamaRMSNorm`` exactly: statistics in float32, weight applied in the input dtype."""
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
    return norm.weight * h.to(x.dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def supports_fast_path(model: nn.Module, total_len: int = 0) -> bool:
    """Whether ``model`` can run on the preallocated-cache Llama decoder for sequences of ``total_len``."""
    if type(model).__name__ not in _LLAMA_LIKE:
        return False
    config = model.config
    window = getattr(config, "sliding_window", None)
    if window is not None and window < total_len:
        return False
    if any(t != "full_attention" for t in (getattr(config, "layer_types", None) or ())):
        return False
    for layer in model.model.layers:
        attn, mlp = layer.self_attn, layer.mlp
        linears = [attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj]
        # LoRA- or quantisation-wrapped projections would be silently bypassed by F.linear on .weight.
        if any(type(m) is not nn.Linear for m in linears) or hasattr(attn, "q_norm"):
            return False
    return type(model.lm_head) is nn.Linear


class _LlamaDecoder:
    """A Llama-like model's forward on its own weights, with shared-prefix attention.

    The batch is ``groups`` prompts × ``per_group`` rows. Each prompt's KV cache is kept once (not
    copied per row) and attended to with one matrix product per prompt for all its rows; the
    generated tokens' keys and values live in per-row tensors preallocated to ``max_new_tokens``.
    With one row per prompt there is nothing to share, and each row gets one preallocated cache of
    its prompt and new tokens instead (see :meth:`prefill`).
    """

    def __init__(self, model: nn.Module, prefill_tokens: int = PREFILL_TOKENS):
        self.model = model
        self.prefill_tokens = prefill_tokens
        self.layers = model.model.layers
        self.heads = model.config.num_attention_heads
        self.kv_heads = model.config.num_key_value_heads
        attn = self.layers[0].self_attn
        self.head_dim = attn.head_dim
        self.scale = attn.scaling

    def _embed(self, ids: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        x = self.model.model.embed_tokens(ids)
        cos, sin = self.model.model.rotary_emb(x, positions)
        return x, (cos[:, None], sin[:, None])

    def _qkv(self, attn: nn.Module, h: torch.Tensor, rope: tuple) -> tuple[torch.Tensor, ...]:
        b, s, _ = h.shape
        q = F.linear(h, attn.q_proj.weight, attn.q_proj.bias).view(b, s, self.heads, self.head_dim).transpose(1, 2)
        k = F.linear(h, attn.k_proj.weight, attn.k_proj.bias).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        v = F.linear(h, attn.v_proj.weight, attn.v_proj.bias).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        return _rotate(q, *rope), _rotate(k, *rope), v

    def _finish_layer(self, layer: nn.Module, x: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        """Output projection, residual, post-attention norm and gated MLP; ``o`` is (batch, seq, hidden)."""
        attn, mlp = layer.self_attn, layer.mlp
        x = x + F.linear(o, attn.o_proj.weight, attn.o_proj.bias)
        h = _rms_norm(x, layer.post_attention_layernorm)
        gate = mlp.act_fn(F.linear(h, mlp.gate_proj.weight, mlp.gate_proj.bias))
        up = F.linear(h, mlp.up_proj.weight, mlp.up_proj.bias)
        return x + F.linear(gate * up, mlp.down_proj.weight, mlp.down_proj.bias)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.lm_head(_rms_norm(x, self.model.model.norm))

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor, max_new_tokens: int, per_group: int) -> torch.Tensor:
        """Run left-padded prompts ``ids`` (mask 1 on real tokens); return each prompt's last logits.

        Prompts run ``prefill_tokens`` padded tokens at a time, each chunk trimmed to its own longest
        prompt, so that the activations stay in the CPU's cache and a chunk of short prompts skips
        the batch's padding (measured 1.9x faster than one pass over 512 prompts of 60-90 tokens).
        Their keys and values go straight into the caches that decoding reads, laid out for
        ``per_group`` rows per prompt (row r belongs to prompt r // per_group). With one row per
        prompt (a verification call) nothing is shared: each row's cache holds its prompt's keys and
        values followed by room for the new ones, and a step is one attention call per layer on a
        slice of it (measured 1.1-1.4x faster than the shared-prefix path there).
        """
        p, length = ids.shape
        self.groups, self.per_group, self.flat = p, per_group, per_group == 1
        self.max_new_tokens, self.generated = max_new_tokens, 0
        dtype = self.model.model.embed_tokens.weight.dtype
        width = length + max_new_tokens if self.flat else length
        shape = (p, self.kv_heads, width, self.head_dim)
        # Columns are written before they are read, except a chunk's cut padding (zeroed per chunk).
        prompt_keys = [ids.new_empty(shape, dtype=dtype) for _ in self.layers]
        prompt_values = [ids.new_empty(shape, dtype=dtype) for _ in self.layers]
        lengths = mask.sum(-1)
        rows = max(1, self.prefill_tokens // length)
        last = []
        for start in range(0, p, rows):
            skip = length - int(lengths[start:start + rows].max())
            chunk = slice(start, start + rows)
            last.append(self._prefill_chunk(ids[chunk, skip:], mask[chunk, skip:], prompt_keys, prompt_values,
                                            chunk, skip))
        self.next_position = lengths.repeat_interleave(per_group)
        bias = torch.where(mask.bool(), 0.0, float("-inf"))[:, None, None, :]
        if self.flat:
            self.prompt_len = length
            self.keys, self.values = prompt_keys, prompt_values
            self.bias = torch.cat([bias, bias.new_zeros(p, 1, 1, max_new_tokens)], dim=-1).to(dtype)
        else:
            self.prefix_keys, self.prefix_values, self.prefix_bias = prompt_keys, prompt_values, bias
            new = (p * per_group, self.kv_heads, max_new_tokens, self.head_dim)
            self.keys = [ids.new_empty(new, dtype=dtype) for _ in self.layers]
            self.values = [ids.new_empty(new, dtype=dtype) for _ in self.layers]
        return self._logits(torch.cat(last))

    def _prefill_chunk(self, ids, mask, keys, values, rows: slice, skip: int) -> torch.Tensor:
        """Prefill prompts ``rows`` (left-padded, first ``skip`` padding columns cut); keys and values
        go to columns ``skip:`` of ``keys``/``values``; returns the last position's hidden state."""
        p, length = ids.shape
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        causal = torch.ones(length, length, dtype=torch.bool, device=ids.device).tril()
        # A padded query attends to itself too, so no row of the softmax is empty (no NaN in the cache).
        eye = torch.eye(length, dtype=torch.bool, device=ids.device)
        attn_mask = ((causal & mask.bool()[:, None, :]) | eye)[:, None]
        x, rope = self._embed(ids, positions)
        for layer, layer_keys, layer_values in zip(self.layers, keys, values):
            q, k, v = self._qkv(layer.self_attn, _rms_norm(x, layer.input_layernorm), rope)
            layer_keys[rows, :, :skip] = 0  # masked, but must be finite: 0 × NaN would poison the sum
            layer_values[rows, :, :skip] = 0
            layer_keys[rows, :, skip:skip + length] = k
            layer_values[rows, :, skip:skip + length] = v
            o = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_mask, scale=self.scale, enable_gqa=self.heads != self.kv_heads
            )
            x = self._finish_layer(layer, x, o.transpose(1, 2).reshape(p, length, -1))
        return x[:, -1]

    def keep(self, rows: torch.Tensor, groups: torch.Tensor, per_group: int) -> None:
        """Keep batch rows ``rows``, which are ``per_group`` rows of each prompt in ``groups``."""
        self.keys = [k.index_select(0, rows) for k in self.keys]
        self.values = [v.index_select(0, rows) for v in self.values]
        self.next_position = self.next_position.index_select(0, rows)
        if self.flat:
            self.bias = self.bias.index_select(0, rows)
            return
        self.prefix_keys = [k.index_select(0, groups) for k in self.prefix_keys]
        self.prefix_values = [v.index_select(0, groups) for v in self.prefix_values]
        self.prefix_bias = self.prefix_bias.index_select(0, groups)
        self.groups, self.per_group = len(groups), per_group

    def _attend_flat(self, i: int, q, k, v, t: int) -> torch.Tensor:
        """Store token t's key/value in row caches of layer i; attend over the prompt and tokens 0..t."""
        end = self.prompt_len + t + 1
        self.keys[i][:, :, end - 1] = k[:, :, 0]
        self.values[i][:, :, end - 1] = v[:, :, 0]
        o = F.scaled_dot_product_attention(
            q, self.keys[i][:, :, :end], self.values[i][:, :, :end], attn_mask=self.bias[..., :end],
            scale=self.scale, enable_gqa=self.heads != self.kv_heads,
        )
        return o.transpose(1, 2).reshape(len(q), 1, -1)

    def _attend_shared(self, i: int, q, k, v, t: int) -> torch.Tensor:
        """Store token t's key/value of layer i; attend over the shared prompt cache and tokens 0..t."""
        self.keys[i][:, :, t] = k[:, :, 0]
        self.values[i][:, :, t] = v[:, :, 0]
        return self._attend_step(q, self.prefix_keys[i], self.prefix_values[i],
                                 self.keys[i][:, :, : t + 1], self.values[i][:, :, : t + 1])

    def _attend_step(self, q, prefix_k, prefix_v, keys, values) -> torch.Tensor:
        """softmax over [prompt keys, generated keys] for one query per row; returns (rows, hidden)."""
        g, m, kv, d = self.groups, self.per_group, self.kv_heads, self.head_dim
        r = self.heads // kv  # query heads per key head (grouped-query attention)
        rows = g * m
        # Query head kv * r + j reads key head kv (transformers' repeat_kv): fold j into the query axis.
        q_rows = q.reshape(rows, kv, r, d)
        q_groups = q_rows.view(g, m, kv, r, d).permute(0, 2, 1, 3, 4).reshape(g, kv, m * r, d)
        s_prefix = torch.matmul(q_groups, prefix_k.transpose(-1, -2)).float() * self.scale + self.prefix_bias
        s_prefix = s_prefix.view(g, kv, m, r, -1).permute(0, 2, 1, 3, 4).reshape(rows, kv, r, -1)
        s_new = torch.matmul(q_rows, keys.transpose(-1, -2)).float() * self.scale
        weights = torch.cat([s_prefix, s_new], dim=-1).softmax(dim=-1).to(q.dtype)
        w_prefix, w_new = weights.split([s_prefix.shape[-1], s_new.shape[-1]], dim=-1)
        w_prefix = w_prefix.reshape(g, m, kv, r, -1).permute(0, 2, 1, 3, 4).reshape(g, kv, m * r, -1)
        o_prefix = torch.matmul(w_prefix, prefix_v).view(g, kv, m, r, d).permute(0, 2, 1, 3, 4)
        o = o_prefix.reshape(rows, kv, r, d) + torch.matmul(w_new, values)
        return o.reshape(rows, 1, self.heads * d)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per row; return the next logits (rows, vocab)."""
        t = self.generated
        x, rope = self._embed(tokens[:, None], self.next_position[:, None])
        for i, layer in enumerate(self.layers):
            q, k, v = self._qkv(layer.self_attn, _rms_norm(x, layer.input_layernorm), rope)
            o = self._attend_flat(i, q, k, v, t) if self.flat else self._attend_shared(i, q, k, v, t)
            x = self._finish_layer(layer, x, o)
        self.generated += 1
        self.next_position = self.next_position + 1
        return self._logits(x[:, -1])


class _HFDecoder:
    """Any causal LM through its own forward and a ``DynamicCache`` (the fallback of ``sample_tokens``)."""

    def __init__(self, model: nn.Module):
        from transformers import DynamicCache

        self.model = model
        self.cache = DynamicCache(config=model.config)

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        out = self.model(
            input_ids=ids, attention_mask=self.mask, position_ids=positions,
            past_key_values=self.cache, use_cache=True,
        )
        return out.logits[:, -1]

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor, max_new_tokens: int, per_group: int) -> torch.Tensor:
        self.mask = mask
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        self.next_position = positions[:, -1] + 1
        logits = self._forward(ids, positions)
        self._select(torch.arange(len(mask), device=mask.device).repeat_interleave(per_group))
        return logits

    def keep(self, rows: torch.Tensor, groups: torch.Tensor, per_group: int) -> None:
        self._select(rows)

    def _select(self, rows: torch.Tensor) -> None:
        self.cache.batch_select_indices(rows)
        self.mask = self.mask.index_select(0, rows)
        self.next_position = self.next_position.index_select(0, rows)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(tokens), 1)], dim=1)
        logits = self._forward(tokens[:, None], self.next_position[:, None])
        self.next_position = self.next_position + 1
        return logits


def _make_decoder(model: nn.Module, total_len: int):
    return _LlamaDecoder(model) if supports_fast_path(model, total_len) else _HFDecoder(model)


def _chunks(counts: Sequence[tuple[int, int]], batch_size: int | None) -> list[list[tuple[int, int]]]:
    """Pack (prompt, samples) pieces into batches of at most ``batch_size`` rows, splitting large n."""
    if batch_size is None:
        return [list(counts)]
    batches, current, rows = [], [], 0
    for prompt, n in counts:
        while n > 0:
            take = min(n, batch_size - rows)
            current.append((prompt, take))
            rows += take
            n -= take
            if rows == batch_size:
                batches.append(current)
                current, rows = [], 0
    if current:
        batches.append(current)
    return batches


def _shrink(done: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int] | None:
    """A smaller layout once stopped rows fill a quarter of the (groups, per_group) batch, else None.

    Returns the batch rows to keep (each kept prompt's running rows first), the kept prompts and
    the new rows per prompt.
    """
    groups, per_group = done.shape
    running = (~done).sum(dim=1)
    kept_groups = (running > 0).nonzero().squeeze(-1)
    new_per_group = int(running.max())
    if 4 * len(kept_groups) * new_per_group > 3 * groups * per_group:
        return None
    order = torch.argsort(done.to(torch.int8), dim=1, stable=True)[kept_groups, :new_per_group]
    rows = (kept_groups[:, None] * per_group + order).reshape(-1)
    return rows, kept_groups, new_per_group


def _sample_batch(
    model, prompts: list[list[int]], counts: list[int], *, temperature, top_p, max_new_tokens,
    eos: torch.Tensor, pad_token_id: int, generator: torch.Generator,
) -> list[list[int]]:
    """Sample ``counts[i]`` continuations of ``prompts[i]`` in one batch; rows in prompt order."""
    device = eos.device
    length = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), length), pad_token_id, dtype=torch.long, device=device)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, length - len(p):] = torch.tensor(p, dtype=torch.long, device=device)
        mask[i, length - len(p):] = 1
    # Batch layout: per_group rows per prompt; prompts with fewer samples get idle rows, which
    # write their tokens into a spare output row (index ``total``) and count as stopped.
    total, per_group = sum(counts), max(counts)
    decoder = _make_decoder(model, length + max_new_tokens)
    first = decoder.prefill(ids, mask, max_new_tokens, per_group)
    origin = torch.full((len(prompts), per_group), total, dtype=torch.long, device=device)
    start = 0
    for i, k in enumerate(counts):
        origin[i, :k] = torch.arange(start, start + k, device=device)
        start += k
    origin = origin.reshape(-1)
    done = origin == total
    logits = first.repeat_interleave(per_group, dim=0)
    out = torch.full((total + 1, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
    lengths = torch.full((total + 1,), max_new_tokens, dtype=torch.long, device=device)
    for t in range(max_new_tokens):
        if t:
            logits = decoder.step(tokens)
        tokens = _draw(logits, temperature, top_p, generator)
        out[origin, t] = tokens
        stopped = torch.isin(tokens, eos) & ~done
        if not bool(stopped.any()):
            continue
        lengths[origin[stopped]] = t + 1
        done |= stopped
        if bool(done.all()):
            break
        smaller = _shrink(done.view(-1, per_group))
        if smaller is not None:
            rows, groups, per_group = smaller
            origin, tokens, done = origin[rows], tokens[rows], done[rows]
            decoder.keep(rows, groups, per_group)
    out_list, len_list = out[:total].tolist(), lengths[:total].tolist()
    return [row[:n] for row, n in zip(out_list, len_list)]


@torch.no_grad()
def sample_tokens(
    model: nn.Module,
    prompt_ids: Sequence[Sequence[int]],
    *,
    n: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    eos_token_ids: Sequence[int],
    seed: int,
    pad_token_id: int,
    batch_size: int | None = None,
) -> list[list[list[int]]]:
    """``n`` sampled continuations of each prompt: per prompt, ``n`` token lists without the prompt.

    A list ends with its first EOS id (kept) or after ``max_new_tokens`` tokens. ``temperature`` 0 is
    greedy; ``top_p`` 1 disables the nucleus filter (no top-k is applied, unlike ``generate``'s
    default of 50). ``batch_size`` caps the rows (prompt × sample) run together; ``None`` runs all
    at once. The same arguments give the same tokens (one ``torch.Generator`` seeded with ``seed``
    on the model's device).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if temperature < 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be finite and >= 0, got {temperature}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")
    prompts = [list(p) for p in prompt_ids]
    for i, p in enumerate(prompts):
        if not p:
            raise ValueError(f"prompt_ids[{i}] is empty")
    if not prompts:
        return []
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    eos = torch.tensor(sorted(set(eos_token_ids)), dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    # Similar lengths share a batch (less padding); results go back to the caller's order.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[list[list[int]]] = [[] for _ in prompts]
    try:
        for batch in _chunks([(i, n) for i in order], batch_size):
            samples = _sample_batch(
                model, [prompts[i] for i, _ in batch], [k for _, k in batch],
                temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                eos=eos, pad_token_id=pad_token_id, generator=generator,
            )
            start = 0
            for i, k in batch:
                results[i].extend(samples[start:start + k])
                start += k
    finally:
        model.train(was_training)
    return results
