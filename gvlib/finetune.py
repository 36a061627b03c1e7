"""[claims] The update step of iterative self-improvement: LoRA SFT on the kept samples (paper §5, App. D).

Algorithm 1 of the paper projects f_{t+1} onto the filtered distribution f_t[w] by maximum likelihood
(SFT) on the samples that passed the verifier. The book does that step with a LoRA adapter (peft) so it
runs on a CPU for the organism and on one or several GPUs for a 7B model:

* the loss is the negative log-likelihood of the completion tokens and the EOS that ends them, never of
  the prompt (the SFT of the paper's Tab. 9 trains on solutions given questions); it is computed by
  :func:`completion_nll` from the decoder's hidden states at the labelled positions only, so the
  full-vocabulary logits of prompt positions are never formed (at the paper's batch of 64 they would
  be most of a GPU's memory), and a minibatch can be split into micro-batches whose gradients add up to
  the whole minibatch's (gradient accumulation);
* with more than one GPU the minibatch is split across data-parallel processes (one per GPU, started
  with ``torchrun``; accelerate wraps the model in DDP, whose all-reduce averages the gradients), each
  process taking an equal share of every minibatch's sequences, so a step sees the same global
  minibatch and takes the same gradient as one process would; one process runs the same code
  (:func:`train_adapter`);
* every round's model is the *same base* f_0 with one adapter: A_{t+1} starts from A_t and is trained on
  round t's kept samples, so f_{t+1} = f_0 ⊕ A_{t+1} is exactly "fine-tune f_t" restricted to the LoRA
  parameters, and vLLM can serve f_{t+1} as the base plus one ``LoRARequest`` per round;
* for the ``transformers`` backend the adapter is merged into a full model directory
  (:func:`merge_adapter`), which then loads like any other model (same backend, same fingerprinting).

Adapters and merged models are written into a temporary directory and moved into place with
``os.replace``, so a killed run never leaves a half-written one behind.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch

from gvlib.backends.text import continuation_ids
from gvlib.kernels import token_logprobs_reference

__all__ = ["LoraSettings", "sft_example", "completion_nll", "train_adapter", "sft_processes", "load_adapted",
           "merge_adapter", "replace_dir"]

#: The projections of a Llama/Qwen block; LoRA goes on all of them by default.
LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LoraSettings:
    """LoRA shape and the SFT schedule (the paper's Tab. 9: AdamW, minibatch 64, 2000 steps, lr 1e-6 for a
    full fine-tune of 7B+; a LoRA on a tiny model needs a far larger learning rate and far fewer steps).

    ``micro_batch_size``: sequences per forward/backward pass of one process; the gradients of a
    minibatch's micro-batches are accumulated before each step (None: the process's whole share of the
    minibatch in one pass).
    """

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = LLAMA_PROJECTIONS
    lr: float = 1e-3
    steps: int = 100
    batch_size: int = 16
    weight_decay: float = 0.0
    max_length: int = 2048
    micro_batch_size: int | None = None

    def __post_init__(self):
        for name in ("rank", "steps", "batch_size", "max_length"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"LoraSettings.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.micro_batch_size is not None and not 1 <= self.micro_batch_size <= self.batch_size:
            raise ValueError(f"LoraSettings.micro_batch_size must lie in [1, batch_size={self.batch_size}], "
                             f"got {self.micro_batch_size!r}")
        if not self.lr > 0 or not self.alpha > 0:
            raise ValueError(f"LoraSettings.lr and .alpha must be > 0, got lr={self.lr!r}, alpha={self.alpha!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"LoraSettings.dropout must lie in [0, 1), got {self.dropout!r}")
        if not self.target_modules:
            raise ValueError("LoraSettings.target_modules must name at least one module")


def replace_dir(tmp: Path, dest: Path) -> None:
    """Move the finished directory ``tmp`` to ``dest`` (replacing an old one): readers see all or nothing."""
    dest = Path(dest)
    if dest.exists():
        old = dest.with_name(f".old-{dest.name}-{os.getpid()}")
        os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dest)


def _temp_dir(dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".tmp-{dest.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    return tmp


def sft_example(tokenizer, prompt: str, completion: str, max_length: int) -> tuple[list[int], list[int]]:
    """(input ids, labels) of one SFT pair: the prompt's labels are -100, the completion's and EOS's are kept.

    The completion is tokenised as it follows the prompt (:func:`gvlib.backends.text.continuation_ids`,
    the same rule the backends score with); sequences longer than ``max_length`` are cut from the left
    of the prompt so the completion is kept whole where possible.
    """
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token: SFT needs one to teach where a completion ends")

    def encode(text: str, special: bool) -> list[int]:
        return tokenizer(text, add_special_tokens=special).input_ids

    if completion.strip():
        ctx, cont = continuation_ids(encode, prompt, completion)
    else:  # the model stopped at once: learn to emit EOS right after the prompt
        ctx, cont = encode(prompt, True), []
    cont = cont + [tokenizer.eos_token_id]
    ids = (ctx + cont)[-max_length:]
    labels = ([-100] * len(ctx) + cont)[-max_length:]
    return ids, labels


def _collate(rows: Sequence[tuple[list[int], list[int]]], pad_id: int, device) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (x, y) in enumerate(rows):  # right padding: positions start at 0 for every row
        ids[i, :len(x)] = torch.tensor(x)
        labels[i, :len(y)] = torch.tensor(y)
        mask[i, :len(x)] = 1
    return {"input_ids": ids.to(device), "labels": labels.to(device), "attention_mask": mask.to(device)}


def _chunk_nll(hidden: torch.Tensor, targets: torch.Tensor, head: torch.nn.Module) -> torch.Tensor:
    return -token_logprobs_reference(head(hidden), targets, chunk_size=len(targets)).sum()


def completion_nll(model, batch: dict[str, torch.Tensor], *, chunk_rows: int = 1024) -> tuple[torch.Tensor, int]:
    """(sum of -log P(label), number of labels) over the labelled positions of a right-padded ``batch``.

    The same loss as the model's own (``model(**batch).loss`` is this sum over this count) without its
    (sequences × positions × vocabulary) logits: the decoder runs on every position, the LM head and
    the log-softmax (:func:`gvlib.kernels.token_logprobs_reference`, differentiable) only on the
    positions whose next token is labelled, ``chunk_rows`` at a time and recomputed in the backward
    pass (activation checkpointing), so at most one chunk's logits exist at once.
    """
    from torch.utils.checkpoint import checkpoint

    hidden = model.get_decoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    labels = batch["labels"][:, 1:]
    keep = labels != -100
    rows, targets = hidden[:, :-1][keep], labels[keep]
    head = model.get_output_embeddings()
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, len(targets), chunk_rows):
        total = total + checkpoint(_chunk_nll, rows[start:start + chunk_rows], targets[start:start + chunk_rows],
                                   head, use_reentrant=False)
    return total, int(keep.sum())


def _load_base(base: str | os.PathLike, device: str | None, dtype: str | None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gvlib.backends.resolve import resolve_model_dir

    path = resolve_model_dir(base)
    device = str(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch_dtype = getattr(torch, dtype) if dtype else (torch.bfloat16 if device.startswith("cuda") else torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype).to(device)
    return model, tokenizer, device


class _CompletionLoss(torch.nn.Module):
    """The model whose forward is :func:`completion_nll`'s sum: what DDP wraps, so that its forward runs
    the hooks that all-reduce the gradients (calling the decoder directly would bypass them)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, labels):
        return completion_nll(self.model, {"input_ids": input_ids, "attention_mask": attention_mask,
                                           "labels": labels})[0]


def sft_processes(batch_size: int, gpus: int | None = None) -> int:
    """Data-parallel SFT processes for ``gpus`` GPUs (default: the visible CUDA devices, 0 without any):
    the largest count not above it that divides ``batch_size`` (every process gets an equal share), 1
    without a GPU."""
    gpus = torch.cuda.device_count() if gpus is None else gpus
    return max([k for k in range(1, max(gpus, 1) + 1) if batch_size % k == 0])


def train_adapter(base: str | os.PathLike, pairs: Sequence[tuple[str, str]], out: str | os.PathLike,
                  settings: LoraSettings = LoraSettings(), *, init_adapter: str | os.PathLike | None = None,
                  seed: int = 0, device: str | None = None, dtype: str | None = None,
                  extra_stats: dict | None = None, processes: int | None = None) -> dict:
    """Train a LoRA adapter on ``pairs`` = [(prompt, completion), ...] over the model ``base``; save it to ``out``.

    ``init_adapter`` (the previous round's adapter) is the starting point; without it the adapter starts
    at zero (peft's default init: the model is unchanged before the first step). Minibatches of
    ``settings.batch_size`` pairs are drawn uniformly with replacement, ``settings.steps`` times, from a
    generator seeded by ``seed``, so duplicates among the kept samples weigh as they do in the paper's SFT.

    ``processes``: data-parallel processes (default :func:`sft_processes`: one per visible GPU, 1 on a
    CPU). One trains here; more are started with ``torchrun`` (``python -m gvlib.finetune``, accelerate's
    DDP: every GPU holds the whole base model and ``batch_size / processes`` sequences of each minibatch)
    and this call waits for them. ``device="cpu"`` keeps them on the CPU (gloo; the tests do).
    Returns the training statistics, with ``extra_stats`` added (also written to ``out/train_stats.json``,
    inside the adapter directory, so they are there exactly when the adapter is).
    """
    if not pairs:
        raise ValueError("train_adapter needs at least one (prompt, completion) pair; nothing passed the filter?")
    processes = sft_processes(settings.batch_size) if processes is None else processes
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1 \
            or settings.batch_size % processes:
        raise ValueError(f"train_adapter: processes={processes!r} must be a positive divisor of "
                         f"LoraSettings.batch_size={settings.batch_size} (each process takes an equal share)")
    job = {"base": str(base), "pairs": [list(p) for p in pairs], "out": str(out), "settings": asdict(settings),
           "init_adapter": None if init_adapter is None else str(init_adapter), "seed": seed, "device": device,
           "dtype": dtype, "extra_stats": extra_stats or {}}
    if processes == 1:
        return _train(**job)
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="gvlib-sft-") as tmp:
        spec = Path(tmp) / "job.json"
        spec.write_text(json.dumps(job))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", "gvlib.finetune", str(spec)]
        done = subprocess.run(cmd)
    if done.returncode != 0:
        raise RuntimeError(f"LoRA SFT over {processes} processes failed (exit {done.returncode}): {' '.join(cmd)}")
    stats = json.loads((Path(out) / "train_stats.json").read_text())
    return {**stats, "seconds": time.time() - t0}


def _train(base: str, pairs: list, out: str, settings: dict, init_adapter: str | None, seed: int,
           device: str | None, dtype: str | None, extra_stats: dict) -> dict:
    """One process of :func:`train_adapter` (rank ``r`` of ``k``: the ``r``-th ``batch_size / k`` of each
    minibatch); rank 0 writes the adapter."""
    from accelerate import Accelerator
    from peft import LoraConfig, PeftModel, get_peft_model

    settings = LoraSettings(**{**settings, "target_modules": tuple(settings["target_modules"])})
    pairs = [tuple(p) for p in pairs]
    out = Path(out)
    t0 = time.time()
    accelerator = Accelerator(cpu=device == "cpu")
    processes, rank = accelerator.num_processes, accelerator.process_index
    torch.manual_seed(seed)
    model, tokenizer, device = _load_base(base, accelerator.device, dtype)
    cuda = device.startswith("cuda")
    if cuda:  # a 7B model's activations for a minibatch of 64 need recomputation
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if init_adapter is not None:
        model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    else:
        config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                            target_modules=list(settings.target_modules), bias="none", task_type="CAUSAL_LM")
        model = get_peft_model(model, config)
    for p in model.parameters():  # LoRA weights in float32 even over a bf16 base
        if p.requires_grad:
            p.data = p.data.float()
    loss_model = accelerator.prepare(_CompletionLoss(model))
    rows = [sft_example(tokenizer, p, c, settings.max_length) for p, c in pairs]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    trainable = [p for p in loss_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=settings.lr, weight_decay=settings.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    loss_model.train()
    losses = []
    share = settings.batch_size // processes
    micro = min(settings.micro_batch_size or share, share)
    starts = range(rank * share, (rank + 1) * share, micro)
    for _ in range(settings.steps):
        pick = torch.randint(len(rows), (settings.batch_size,), generator=gen).tolist()  # the same on every rank
        labelled = sum(sum(y != -100 for y in rows[i][1][1:]) for i in pick)  # the minibatch's loss tokens
        opt.zero_grad(set_to_none=True)
        loss = torch.zeros((), device=device)
        for start in starts:  # gradient accumulation, synchronised across processes on the last part only
            batch = _collate([rows[i] for i in pick[start:min(start + micro, (rank + 1) * share)]], pad_id, device)
            sync = nullcontext() if start == starts[-1] else accelerator.no_sync(loss_model)
            with sync, torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda):
                part = loss_model(**batch) / labelled
                accelerator.backward(part * processes)  # DDP averages over processes: the parts add up to the mean
            loss += part.detach()
        accelerator.clip_grad_norm_(trainable, 1.0)
        opt.step()
        losses.append(float(accelerator.reduce(loss, "sum")))
    loss_model.eval()
    tail = losses[-max(1, len(losses) // 10):]
    stats = {"pairs": len(pairs), "distinct_pairs": len(set(pairs)), "steps": settings.steps,
             "first_loss": losses[0], "final_loss": sum(tail) / len(tail), "seconds": time.time() - t0,
             "processes": processes, "settings": asdict(settings),
             "init_adapter": str(init_adapter) if init_adapter else None, **extra_stats}
    if accelerator.is_main_process:
        tmp = _temp_dir(out)
        accelerator.unwrap_model(loss_model).model.save_pretrained(tmp)
        (tmp / "train_stats.json").write_text(json.dumps(stats, indent=2))
        replace_dir(tmp, out)
    accelerator.wait_for_everyone()
    return stats


def load_adapted(base: str | os.PathLike, adapter: str | os.PathLike | None, *, device: str | None = None,
                 dtype: str | None = None):
    """(model, tokenizer): ``base`` with ``adapter`` merged into its weights (plain modules, no peft wrappers)."""
    from peft import PeftModel

    model, tokenizer, _ = _load_base(base, device, dtype)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return model.eval(), tokenizer


def merge_adapter(base: str | os.PathLike, adapter: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Save ``base`` with ``adapter`` merged in as a full model directory ``out`` (atomically); returns it."""
    out = Path(out)
    model, tokenizer = load_adapted(base, adapter, device="cpu", dtype="float32")
    tmp = _temp_dir(out)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    replace_dir(tmp, out)
    return out


if __name__ == "__main__":  # one process of a multi-process train_adapter (torchrun starts it)
    _train(**json.loads(Path(sys.argv[1]).read_text()))
