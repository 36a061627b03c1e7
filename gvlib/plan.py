"""[paper scale] A plan before a paper-scale run: compute, GPU-hours, memory per GPU, disk and tensor-parallel sizes.

    python -m gvlib.plan notebooks/scaling.ipynb -f notebooks/params/scaling/paper.yaml [--gpu h100-80gb]
        [--mfu 0.25] [--data-dir /data] [-p n_prompts 64]

Reads the notebook's parameters (its ``parameters`` cell, then the preset, then ``-p`` overrides), lists
the model calls the notebook makes (generation, the paper's verifiers of §3, LoRA SFT of §5) and
estimates for each model, from its architecture (``config.json`` when the model is on disk, else
:data:`ARCHITECTURES`) and the task's prompt lengths:

* FLOPs: 2 N per token processed (N: parameters the token passes through, LM head included) plus the
  attention scores (4 · layers · hidden · context per token); a prompt's n samples share its prefill
  (vLLM's prefix cache); every sample and verification is charged its full token budget, so these are
  upper bounds; SFT is 6 N per token (forward, backward and the recomputation of gradient checkpointing);
* SFT memory: per GPU, on the fewest data-parallel GPUs (dividing the minibatch, at most a node's 8) that
  fit it (:func:`sft_gpus`); each holds the whole base model (DDP), so a base whose weights alone
  overflow one card does not fit at all;
* GPU-hours: FLOPs / (peak bf16 FLOP/s × ``mfu``), the utilisation being an assumption, stated;
* memory per GPU: bf16 weights / tensor-parallel size, and the KV room left, against
  ``gpu_memory_utilization`` (0.9) of the card; a model fits when that room holds its longest sequence,
  and runs at full speed when it holds a whole prompt group (the prompt and all its n samples: Qwen-1.5
  has no grouped-query attention, so its 72B needs 172 GB of KV for 128 GSM8K samples; otherwise vLLM
  queues samples); the tensor-parallel size is the preset's, or the smallest power of two dividing the
  attention heads whose room holds a group;
* disk: bf16 weights of every model and the cache's JSON (about 5 bytes per generated token).

Prompt tokens are measured as characters / 4 on the task's own prompts (its data must be readable:
``data_dir`` or ``--data-dir``); a task whose data is not at hand is reported as such, not guessed.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

#: Peak dense bf16 FLOP/s and memory (GB) of the cards the presets are sized for.
GPUS = {"a100-80gb": (312e12, 80), "h100-80gb": (989e12, 80), "h200-141gb": (989e12, 141)}
#: (hidden, layers, attention heads, KV heads, MLP width, vocabulary, tied embeddings): each model's
#: ``config.json`` on the Hugging Face Hub (used when the model is not on this disk).
ARCHITECTURES = {
    "Qwen/Qwen1.5-0.5B": (1024, 24, 16, 16, 2816, 151936, True),
    "Qwen/Qwen1.5-1.8B": (2048, 24, 16, 16, 5504, 151936, False),
    "Qwen/Qwen1.5-4B": (2560, 40, 20, 20, 6912, 151936, False),
    "Qwen/Qwen1.5-7B": (4096, 32, 32, 32, 11008, 151936, False),
    "Qwen/Qwen1.5-14B": (5120, 40, 40, 40, 13696, 152064, False),
    "Qwen/Qwen1.5-32B": (5120, 64, 40, 8, 27392, 152064, False),
    "Qwen/Qwen1.5-72B": (8192, 80, 64, 64, 24576, 152064, False),
    "Qwen/Qwen2-0.5B": (896, 24, 14, 2, 4864, 151936, True),
    "Qwen/Qwen2-1.5B": (1536, 28, 12, 2, 8960, 151936, True),
    "Qwen/Qwen2-7B": (3584, 28, 28, 4, 18944, 152064, False),
    "Qwen/Qwen2-72B": (8192, 80, 64, 8, 29568, 152064, False),
}
MEMORY_FRACTION = 0.9   # vLLM's default gpu_memory_utilization
RESERVE_GB = 2.0        # activations, CUDA graphs and allocator slack per GPU (an assumption)
CACHE_BYTES_PER_TOKEN = 5
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class Arch:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    mlp: int
    vocab: int
    tied: bool

    @property
    def per_token_params(self) -> int:
        """Parameters a token passes through: the blocks and the LM head (an embedding is a lookup)."""
        kv = self.hidden // self.heads * self.kv_heads
        block = 2 * self.hidden * self.hidden + 2 * self.hidden * kv + 3 * self.hidden * self.mlp
        return self.layers * block + self.vocab * self.hidden

    @property
    def params(self) -> int:
        return self.per_token_params + (0 if self.tied else self.vocab * self.hidden)

    def kv_bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * (self.hidden // self.heads) * 2

    def lora_params(self, rank: int) -> int:
        kv = self.hidden // self.heads * self.kv_heads
        shapes = [(self.hidden, self.hidden), (self.hidden, kv), (self.hidden, kv), (self.hidden, self.hidden),
                  (self.hidden, self.mlp), (self.hidden, self.mlp), (self.mlp, self.hidden)]
        return self.layers * rank * sum(a + b for a, b in shapes)


def architecture(model: str) -> Arch:
    """The model's shape from its ``config.json`` on disk, else from :data:`ARCHITECTURES`."""
    from gvlib.backends.resolve import ModelNotFoundError, resolve_model_dir
    try:
        c = json.loads((resolve_model_dir(model) / "config.json").read_text())
        return Arch(c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"],
                    c.get("num_key_value_heads") or c["num_attention_heads"], c["intermediate_size"],
                    c["vocab_size"], bool(c.get("tie_word_embeddings", False)))
    except (ModelNotFoundError, FileNotFoundError, KeyError):
        if model not in ARCHITECTURES:
            raise SystemExit(f"gvlib.plan: no config.json for {model!r} on this disk and not in "
                             f"gvlib.plan.ARCHITECTURES ({', '.join(ARCHITECTURES)})") from None
        return Arch(*ARCHITECTURES[model])


@dataclass
class Call:
    """One kind of model call: ``groups`` prompts, each prefilled once (``prefill`` tokens) and continued
    ``n`` times by ``new`` tokens (0: scoring only)."""

    model: str
    what: str
    groups: int
    prefill: int
    n: int
    new: int

    def flops(self, a: Arch) -> float:
        tokens = self.groups * (self.prefill + self.n * self.new)
        context = self.prefill + self.new / 2  # mean context a token attends to
        return 2 * a.per_token_params * tokens + 4 * a.layers * a.hidden * context * tokens

    def kv_gb(self, a: Arch) -> float:
        """KV cache of one prompt and all its n continuations, the prefix shared (vLLM's prefix cache)."""
        return (self.prefill + self.n * self.new) * a.kv_bytes_per_token() / 1e9


@lru_cache(maxsize=None)
def _prompt_tokens(task: str, method: str | None, data_dir: str | None,
                   sample: int = 64) -> tuple[int, int, int, int]:
    """(generation prompt, verification template, generation budget) in tokens, measured on the task's first
    ``sample`` prompts, and the number of test problems the task has."""
    from gvlib import tasks
    path = None if data_dir is None or task.startswith("organism/") or task == "sudoku4" else Path(data_dir) / task
    try:
        t = tasks.load(task, path=path)
    except Exception as e:  # noqa: BLE001 (any failure to read the data is reported as such)
        raise SystemExit(f"gvlib.plan: cannot read task {task!r} to measure its prompts ({e}); "
                         "pass --data-dir (or set data_dir)") from None
    size, examples = len(t.examples), t.examples[:sample]
    gen = sum(len(t.generation_prompt(e)) for e in examples) / len(examples) / CHARS_PER_TOKEN
    ver = 0.0
    if method is not None:
        other = None if method != "tournament" else ""
        ver = sum(len(t.verifier_prompt(method, e, "", other)) for e in examples) / len(examples) / CHARS_PER_TOKEN
    return math.ceil(gen), math.ceil(ver), t.max_new_tokens, size


def exercise_method(method: str) -> str:
    """The CoT method the unimprovable chapter's exercise adds on the factual task: the other one."""
    return "cot_score" if method == "cot_binary" else "cot_binary"


def calls(notebook: str, p: dict, data_dir: str | None, verify_budget: int) -> tuple[list[Call], list[dict]]:
    """The model calls of ``notebook`` with parameters ``p``, and its SFT runs (iterative)."""
    out: list[Call] = []
    sft: list[dict] = []

    def add(gens: str, verifier: str, task: str, methods, prompts: int, n: int, rounds: int = 0, generate: bool = True):
        P, _, G, size = _prompt_tokens(task, None, data_dir)
        prompts = min(prompts, size)  # a notebook runs the first n_prompts problems, at most all of them
        if generate:
            out.append(Call(gens, f"generate {task}", prompts, P, n, G))
        for m in methods:
            V = _prompt_tokens(task, m, data_dir)[1]
            if m == "mc":
                out.append(Call(verifier, f"verify {task} mc", prompts * n, V + G, 1, 0))
            elif m == "tournament":
                pairs = sum(n // 2 ** r for r in range(1, rounds + 1))
                out.append(Call(verifier, f"verify {task} tournament", prompts * pairs, V + 2 * G, 1, verify_budget))
            else:
                out.append(Call(verifier, f"verify {task} {m}", prompts * n, V + G, 1, verify_budget))

    n, prompts = p["n_samples"], p["n_prompts"]
    if notebook == "scaling":
        for m in p["models"]:
            add(m, m, p["task"], p["methods"], prompts, n, p.get("tournament_rounds", 0))
    elif notebook == "cross_verification":
        for g in p["models"]:
            for v in p["models"]:
                add(g, v, p["task"], p["methods"], prompts, n, generate=g == v)  # a generator samples once
    elif notebook == "verification":
        for g in p["models"]:
            add(g, g, p["task"], p["methods"], prompts, n, p.get("tournament_rounds", 0))
            for v in p["models"]:
                if v != g:
                    add(g, v, p["task"], p["cross_methods"], prompts, n, p.get("tournament_rounds", 0),
                        generate=False)
            if p.get("factual_task"):
                add(g, g, p["factual_task"], ["mc"], prompts, n)
            repeat = prompts if p.get("repeat_prompts") is None else min(p["repeat_prompts"], prompts)
            for _ in range(max(p["n_verifications"]) - 1):  # part 3: more CoT-Score verifications of each sample
                add(g, g, p["task"], ["cot_score"], repeat, n, generate=False)
    elif notebook == "unimprovable":
        runs = [(p["factual_task"], p["method"]), (p["reasoning_task"], p["method"]),
                (p["sudoku_task"], p["sudoku_method"])]
        try:  # the chapter's exercise: the factual samples verified with the other CoT method too
            _prompt_tokens(p["factual_task"], exercise_method(p["method"]), data_dir)
            runs.append((p["factual_task"], exercise_method(p["method"])))
        except ValueError:  # a task without that verifier prompt (NQ-open: MC only): the exercise cannot run
            pass
        for m in p["models"]:
            for task, method in runs:
                add(m, m, task, [method], prompts, n)
        out[:] = list({(c.model, c.what): c for c in out}.values())  # a task's samples are drawn once
    elif notebook == "iterative":
        # one run per verifier, then the notebook's last section: the main run trained on the other prompts
        split = p["train_prompts"] == "train"  # a run that trains on the train split samples it every round too
        main = "self" if "self" in p["verifiers"] else p["verifiers"][0]
        for verifier, train_split, other in [(v, split, False) for v in p["verifiers"]] + [(main, not split, True)]:
            judge = {"self": p["model"], "fixed": p["fixed_verifier"] or p["model"], "gold": None}[verifier]
            for _ in range(p["rounds"] + 1):
                for count in (prompts, p.get("n_train_prompts", 32)) if train_split else (prompts,):
                    add(p["model"], judge or p["model"], p["task"], [] if judge is None else [p["method"]], count, n)
            P, _, G, _ = _prompt_tokens(p["task"], None, data_dir)
            sft.append({"verifier": verifier, "other_prompts": other, "model": p["model"], "rounds": p["rounds"], "steps": p["lora_steps"],
                        "batch": p["lora_batch_size"], "seq": P + G, "rank": p["lora_rank"]})
    else:
        raise SystemExit(f"gvlib.plan: no plan for notebook {notebook!r}")
    return out, sft


def kv_room_gb(a: Arch, tp: int, gpu_gb: float) -> float:
    """KV cache one engine holds at tensor-parallel size ``tp``, summed over its GPUs (bf16 weights sharded;
    vLLM replicates KV heads when ``tp`` exceeds them)."""
    free = MEMORY_FRACTION * gpu_gb - 2 * a.params / 1e9 / tp - RESERVE_GB
    return max(free, 0.0) * min(tp, a.kv_heads)


def choose_tp(a: Arch, group_gb: float, gpu_gb: float, preset_tp: int | None) -> int:
    """The preset's tensor-parallel size, or the smallest power of two dividing the heads whose KV room
    holds a whole prompt group (``group_gb``: a prompt and all its samples), else the largest."""
    if preset_tp:
        return preset_tp
    sizes = [tp for tp in (1, 2, 4, 8) if a.heads % tp == 0]
    return next((tp for tp in sizes if kv_room_gb(a, tp, gpu_gb) >= group_gb), sizes[-1])


def sft_memory_gb(a: Arch, s: dict, processes: int = 1) -> float:
    """LoRA SFT memory per GPU with ``processes`` data-parallel processes (DDP, :mod:`gvlib.finetune`):
    the whole bf16 base and fp32 LoRA weights + grads + AdamW on every GPU, and the activations of its
    ``batch / processes`` sequences (checkpointed: one hidden state per layer per token, one layer
    recomputed) and one 1,024-row chunk of logits."""
    tokens = s["batch"] // processes * s["seq"]
    lora = 16 * a.lora_params(s["rank"])
    checkpoints = tokens * a.hidden * 2 * a.layers
    layer = tokens * (10 * a.hidden + 4 * a.mlp) * 2
    logits = 1024 * a.vocab * (2 + 4 + 4)
    return (2 * a.params + lora + checkpoints + layer + logits) / 1e9


#: The most GPUs one SFT run spreads over (one node).
SFT_MAX_GPUS = 8


def sft_gpus(a: Arch, s: dict, gpu_gb: float) -> tuple[int, float]:
    """(GPUs, memory per GPU in GB) of the fewest data-parallel processes, dividing the minibatch and at
    most :data:`SFT_MAX_GPUS`, whose memory fits the card (the most, when none does)."""
    counts = [k for k in range(1, SFT_MAX_GPUS + 1) if s["batch"] % k == 0]
    k = next((k for k in counts if sft_memory_gb(a, s, k) <= MEMORY_FRACTION * gpu_gb), counts[-1])
    return k, sft_memory_gb(a, s, k)


def plan(notebook: str, params: dict, *, gpu: str = "h100-80gb", mfu: float = 0.25, data_dir: str | None = None,
         verify_budget: int = 512) -> dict:
    """The plan as a dict (see module doc); :func:`main` prints it."""
    peak, gpu_gb = GPUS[gpu]
    data_dir = data_dir or params.get("data_dir")
    todo, sft = calls(notebook, params, data_dir, verify_budget)
    options = params.get("backend_options") or {}
    models = {}
    for c in todo:
        a = architecture(c.model)
        m = models.setdefault(c.model, {"params_b": a.params / 1e9, "flops": 0.0, "kv_gb": 0.0, "kv_seq_gb": 0.0,
                                        "gen_tokens": 0})
        m["flops"] += c.flops(a)
        m["kv_gb"] = max(m["kv_gb"], c.kv_gb(a))
        m["kv_seq_gb"] = max(m["kv_seq_gb"], (c.prefill + c.new) * a.kv_bytes_per_token() / 1e9)
        m["gen_tokens"] += c.groups * c.n * c.new
    for name, m in models.items():
        a = architecture(name)
        from gvlib.backends import options_for
        tp = choose_tp(a, m["kv_gb"], gpu_gb, options_for(name, options).get("tensor_parallel_size"))
        room = kv_room_gb(a, tp, gpu_gb)
        m.update(tp=tp, weights_gb_per_gpu=2 * a.params / 1e9 / tp, kv_room_gb=room, fits=room >= m["kv_seq_gb"],
                 group_resident=room >= m["kv_gb"], gpu_hours=m["flops"] / (peak * mfu) / 3600)
    sft_rows = []
    for s in sft:
        a = architecture(s["model"])
        flops = 6 * a.per_token_params * s["rounds"] * s["steps"] * s["batch"] * s["seq"]
        gpus, mem = sft_gpus(a, s, gpu_gb)
        sft_rows.append({**s, "flops": flops, "gpu_hours": flops / (peak * mfu) / 3600, "gpus": gpus,
                         "memory_gb": mem, "fits": mem <= MEMORY_FRACTION * gpu_gb})
    disk = sum(2 * architecture(n).params for n in models) + CACHE_BYTES_PER_TOKEN * sum(
        m["gen_tokens"] for m in models.values())
    total = sum(m["gpu_hours"] for m in models.values()) + sum(s["gpu_hours"] for s in sft_rows)
    return {"notebook": notebook, "gpu": gpu, "mfu": mfu, "models": models, "sft": sft_rows,
            "disk_gb": disk / 1e9, "gpu_hours": total,
            "fits": all(m["fits"] for m in models.values()) and all(s["fits"] for s in sft_rows)}


def notebook_params(path: Path, preset: Path | None, overrides: list[tuple[str, str]]) -> dict:
    """The notebook's parameters cell, updated by the preset and by ``-p name value`` (YAML values); with the
    cell's declarations (``__annotations__``, what :func:`gvlib.params.validate` reads)."""
    import nbformat
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", []))
    values: dict = {}
    exec(compile(cell.source, str(path), "exec", dont_inherit=True), {}, values)  # noqa: S102 (the project's own cell)
    if preset is not None:
        values.update(yaml.safe_load(preset.read_text()) or {})
    values.update({k: yaml.safe_load(v) for k, v in overrides})
    return values


def format_plan(r: dict) -> str:
    lines = [f"{r['notebook']} on {r['gpu']} at {100 * r['mfu']:.0f}% of peak bf16 FLOP/s "
             f"(memory: {100 * MEMORY_FRACTION:.0f}% of each card)",
             f"{'model':<20} {'params':>8} {'TP':>3} {'weights/GPU':>12} {'KV/group':>9} {'KV room':>8} "
             f"{'PFLOP':>9} {'GPU-h':>7}  fits  group"]
    for name, m in r["models"].items():
        lines.append(f"{name:<20} {m['params_b']:>7.2f}B {m['tp']:>3} {m['weights_gb_per_gpu']:>10.1f}GB "
                     f"{m['kv_gb']:>7.1f}GB {m['kv_room_gb']:>6.0f}GB {m['flops'] / 1e15:>9.0f} "
                     f"{m['gpu_hours']:>7.1f}  {'yes' if m['fits'] else 'NO':<4}  "
                     f"{'resident' if m['group_resident'] else 'queued'}")
    for s in r["sft"]:
        lines.append(f"SFT ({s['verifier']} verifier{', the other prompts' if s['other_prompts'] else ''}) {s['model']}: {s['rounds']} rounds x {s['steps']} steps x {s['batch']} x {s['seq']} "
                     f"tokens, LoRA r={s['rank']}: {s['flops'] / 1e15:.0f} PFLOP, {s['gpu_hours']:.1f} GPU-h, "
                     f"{s['memory_gb']:.0f} GB per GPU on {s['gpus']} data-parallel GPU(s) "
                     f"({'fits' if s['fits'] else 'does NOT fit'})")
    lines.append(f"total: {r['gpu_hours']:.1f} GPU-hours; disk {r['disk_gb']:.0f} GB (bf16 weights + sample cache); "
                 f"{'every call fits' if r['fits'] else 'SOMETHING DOES NOT FIT'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gvlib.plan", description=__doc__.split("\n")[0])
    ap.add_argument("notebook", type=Path)
    ap.add_argument("-f", "--preset", type=Path)
    ap.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    ap.add_argument("--gpu", choices=sorted(GPUS), default="h100-80gb")
    ap.add_argument("--mfu", type=float, default=0.25, help="assumed fraction of peak FLOP/s (default 0.25)")
    ap.add_argument("--data-dir")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    params = notebook_params(args.notebook, args.preset, args.param)
    r = plan(args.notebook.stem, params, gpu=args.gpu, mfu=args.mfu, data_dir=args.data_dir)
    print(json.dumps(r, indent=2) if args.json else format_plan(r))
    return 0 if r["fits"] else 1


if __name__ == "__main__":
    sys.exit(main())
