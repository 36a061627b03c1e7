"""[organism] Training one organism model: a ``transformers`` Llama built from a config, trained from scratch.

FLOPs are the usual 6·N·D with N the NON-EMBEDDING parameters (embeddings are tied to the LM head)
and D the real (non-pad) tokens the model was trained on, prompt tokens included (paper §4 counts
pre-training FLOPs the same way; a member's optional check head (:class:`ModelSpec`), hidden + 1
parameters, is not counted). A model is written into a temporary directory and moved into place
with ``os.replace`` only once its ``manifest.json`` is written, so a half-written model is never loaded.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from gvlib.organism.corpus import Corpus


@dataclass(frozen=True)
class ModelSpec:
    """One family member: shape, training length (lr ~1e-3 suits these sizes) and check head.

    ``check_weight``: the weight of the check loss beside the language-model loss, trained for the first
    ``check_until`` share of the steps. A linear *check head* reads the last hidden state at each labelled
    word of a verification document and is trained on its label
    (:meth:`gvlib.organism.tasks.OrganismTask.verifier_check_labels`: has the candidate broken a rule by this
    word? carried to the word the verdict follows); it is dropped when training ends, so a member is a plain
    Llama and every verifier reads it as the paper's do (App. E). Without it no member learned the one-word
    MC verdict about a grid with one wrong cell (one supervised word against sixteen checks;
    ``python -m gvlib.organism.probe``). Its gradient is as large as the language-model loss's: at full weight
    to the end, it slowed everything else the member learns (the arithmetic, learned last, not at all).
    Stopped early, or at a lower weight, the language-model loss catches up and the verdict, written by the
    LM head, stays (the README's diagnostics paragraph has the measurements).
    """

    name: str
    hidden: int
    layers: int
    heads: int
    intermediate: int
    steps: int
    lr: float = 1e-3
    check_weight: float = 0.0
    check_until: float = 1.0

    def __post_init__(self):
        if self.hidden % self.heads:
            raise ValueError(f"model {self.name}: hidden={self.hidden} is not a multiple of heads={self.heads}")
        if min(self.hidden, self.layers, self.heads, self.intermediate, self.steps) < 1 or not self.lr > 0:
            raise ValueError(f"model {self.name}: sizes, steps and lr must be positive: {self}")
        if not self.check_weight >= 0 or not 0 < self.check_until <= 1:
            raise ValueError(f"model {self.name}: check_weight={self.check_weight} must be >= 0 and "
                             f"check_until={self.check_until} a share of the steps in (0, 1]")

    @property
    def check_steps(self) -> int:
        """How many of the first steps train the check head (0 without one)."""
        return math.ceil(self.check_until * self.steps) if self.check_weight > 0 else 0


@dataclass(frozen=True)
class TrainConfig:
    """Batch shape and schedule shared by the family: ``rows`` packed rows of ``seq_len`` tokens."""

    rows: int = 16
    seq_len: int = 256
    warmup: float = 0.05
    min_lr_frac: float = 0.1
    weight_decay: float = 0.01
    max_positions: int = 512


def build_model(spec: ModelSpec, tokenizer: PreTrainedTokenizerFast, train: TrainConfig, seed: int) -> LlamaForCausalLM:
    """A fresh Llama of ``spec``; bos/eos/pad ids set from the tokenizer (LlamaConfig defaults are wrong)."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=spec.hidden, intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers, num_attention_heads=spec.heads, num_key_value_heads=spec.heads,
        max_position_embeddings=train.max_positions, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    gc = model.generation_config
    gc.bos_token_id, gc.eos_token_id, gc.pad_token_id = config.bos_token_id, config.eos_token_id, config.pad_token_id
    return model


def param_counts(model: LlamaForCausalLM) -> tuple[int, int]:
    """(total, non-embedding) parameter counts; the LM head is tied to the embedding."""
    total = sum(p.numel() for p in model.parameters())
    return total, total - model.get_input_embeddings().weight.numel()


def packed_loss(model: LlamaForCausalLM, batch: dict[str, torch.Tensor],
                check_head: torch.nn.Linear | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The target-token loss of a packed batch (:meth:`Corpus.batch`), computed without its attention mask,
    and, with ``check_head``, the mean binary cross-entropy of its check labels (None when it has none).

    Documents are packed from the start of each row and the rows padded only at their end, so under
    causal attention no real token attends to a pad, and pads carry no loss (label -100): the mask
    changes nothing but the attention kernel. Without it, SDPA takes its causal path instead of
    building and applying a (rows, 1, seq, seq) mask. Measured on one CPU thread (steps of the old
    and new loop interleaved on the same batches, CPU time, 2 December 2026): the mask dropped and the
    multi-tensor AdamW of :func:`train_model` together make a step of m1 1.13x and of m2 1.04x faster;
    the mask alone 1.17x for m3, no change for m5, whose step is its matrix products and element-wise ops.
    """
    mask = batch["attention_mask"]
    if bool((mask[:, 1:] > mask[:, :-1]).any()):
        raise ValueError("packed_loss: a row has padding before a real token; rows must be padded only at their end")
    out = model(input_ids=batch["input_ids"], labels=batch["labels"], output_hidden_states=check_head is not None)
    checked = batch["check_labels"] >= 0 if check_head is not None else None
    if checked is None or not bool(checked.any()):
        return out.loss, None
    logits = check_head(out.hidden_states[-1][checked]).squeeze(-1)
    return out.loss, torch.nn.functional.binary_cross_entropy_with_logits(logits, batch["check_labels"][checked].float())


def train_model(model: LlamaForCausalLM, corpus: Corpus, spec: ModelSpec, train: TrainConfig,
                desc: str = "", on_step: Callable[[int], None] | None = None) -> dict:
    """Train ``model`` on ``corpus`` for ``spec.steps`` steps (AdamW, warmup + cosine), with the check head of
    :class:`ModelSpec` for its first ``spec.check_steps``; returns stats (the final LM loss, the mean over the
    last tenth of the steps, and the final check loss, the same over the check head's steps whose batch had
    check labels; None without a check head).

    ``on_step(step)`` is called after every optimizer step (the seed stage samples checkpoints there).
    """
    check_head = torch.nn.Linear(model.config.hidden_size, 1) if spec.check_steps else None
    params = list(model.parameters()) + (list(check_head.parameters()) if check_head is not None else [])
    opt = torch.optim.AdamW(params, lr=spec.lr, betas=(0.9, 0.95), weight_decay=train.weight_decay,
                            foreach=True)  # one multi-tensor update (see packed_loss for the speed-up)
    warm = max(1, int(train.warmup * spec.steps))

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, spec.steps - warm)
        return train.min_lr_frac + (1 - train.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    tokens, losses, checks, t0 = 0, [], [], time.time()
    bar = tqdm(range(spec.steps), desc=desc, disable=not sys.stderr.isatty(), leave=False)
    for step in bar:
        batch = corpus.batch(train.rows, train.seq_len)
        tokens += batch.pop("tokens")
        loss, check = packed_loss(model, batch, check_head if step < spec.check_steps else None)
        opt.zero_grad(set_to_none=True)
        (loss if check is None else loss + spec.check_weight * check).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if check is not None:
            checks.append(check.item())
        if step % 10 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if on_step is not None:
            on_step(step + 1)
    model.eval()
    def tail_mean(xs):
        tail = xs[-max(1, len(xs) // 10):]
        return sum(tail) / len(tail) if tail else None
    return {"train_tokens": tokens, "final_train_loss": tail_mean(losses), "final_check_loss": tail_mean(checks),
            "wall_time_s": time.time() - t0}


@torch.no_grad()
def eval_losses(model: LlamaForCausalLM, corpus: Corpus, train: TrainConfig) -> dict[str, float]:
    """Target-token loss per document kind on one fresh batch of each kind."""
    out = {}
    for kind in corpus.mixture.kinds:
        if corpus.mixture.kinds[kind] > 0:
            batch = corpus.batch(train.rows, train.seq_len, kind=kind)
            batch.pop("tokens")
            out[kind] = float(packed_loss(model, batch)[0])
    return out


def save_atomic(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, manifest: dict, dest: Path) -> None:
    """Write model, tokenizer and ``manifest.json`` into a temp dir, then move it to ``dest``."""
    dest = Path(dest)
    tmp = dest.parent / f".tmp-{dest.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)


def spec_dict(spec: ModelSpec) -> dict:
    return asdict(spec)
