"""[speed] Benchmark of gvlib's fast paths against the plain ``transformers`` way, in one process.

    python -m gvlib.bench            # the full sweep (a few minutes on a 2-core CPU)
    python -m gvlib.bench --quick    # a smaller sweep, under a minute
    python -m gvlib.bench --threads 2   # torch CPU threads (default 1, see below)
    python -m gvlib.bench --quick --family .cache/gvlib/organism/default   # + the book's own calls

On the CPU the benchmark runs on one thread unless told otherwise: on a machine whose cores are
busy with other jobs, torch's multi-threaded ops wait on descheduled threads and both sides slow
down by one to two orders of magnitude (README, Speed), which says nothing about either method.

1. Sampling (paper §3: completions at T = 0.7, top-p 0.9): tokens/s of
   ``gvlib.sampler.sample_tokens`` against ``model.generate`` on random Llama models sized like the
   organism family, for the same prompts (left-padded, different lengths), the same n, the same
   number of new tokens (no EOS, so both produce exactly the same number of tokens), in batches of
   ``rows`` rows (prompt × sample). Two workloads have the shape of the book's own calls (measured on
   the default family): ``generate``, n = 8 samples of a 22-token Sudoku prompt (24 new tokens at
   most; the family writes 20) and ``verify``, one CoT-Score verification of each of many 45-token
   prompts (a puzzle and a candidate; the family writes 75 tokens), at the organism's batch of
   :data:`gvlib.backends.hf.SMALL_MODEL_BATCH_ROWS` rows and at 64 rows; ``n16`` (16 samples of
   short prompts) is the general case. Each timing is the best of ``repeats`` runs, sampler and
   ``generate`` alternating, after a warm-up of each on an eighth of the prompts. The sampler's
   model FLOP/s (2 × matmul parameters × tokens run through the model, :func:`model_tokens`: each
   distinct prompt once, then one token per distinct sequence per step; attention scores and
   embeddings not counted) are reported as a fraction of a float32 matmul's measured FLOP/s in the
   same process.
   A random model's samples soon differ, so these workloads measure what the sampler gains per
   step; they gain little from its running one row per distinct sequence (see :mod:`gvlib.sampler`).
   With ``--family DIR`` (a family trained by ``make book`` or ``python -m gvlib.organism``), the
   book's own calls are timed too on its members (:func:`bench_book`): Sudoku generation and
   CoT-Score verification of those samples, with the model's EOS, where rows stop at different
   lengths — ``generate`` keeps computing stopped rows until the last one ends, the sampler drops
   them — so tokens/s counts the tokens each method produced. There a trained member's samples
   repeat one another, as do the verification prompts built from them, and the sampler runs the
   model once for each distinct sequence where ``generate`` runs it once per sample.
2. Training: tokens/s of the organism's own training loop (:func:`gvlib.organism.train.train_model`,
   batch building included) on the ``default`` family's member shapes, ``train_steps`` steps after a
   warm-up of two, on the seed stage's corpus (knowledge and generation documents: verification
   documents need a trained seed model), and its model FLOP/s (6 × non-embedding parameters × real
   tokens, the FLOPs the family reports; attention scores not counted) as a fraction of the same
   matmul peak.
3. Scoring: ``gvlib.kernels.token_logprobs`` against ``log_softmax(logits.float()).gather(...)``
   at vocabularies of 32k and 152k: time (best of ``repeats``) and peak memory above the inputs.
   Peak memory is, on CUDA, ``torch.cuda.max_memory_allocated`` minus the allocation before the
   call; on the CPU, the peak resident set size (``VmHWM``, reset through ``/proc/self/clear_refs``)
   minus the resident set size before the call, in a subprocess that does nothing else and whose
   large allocations are returned to the system when freed (``MALLOC_MMAP_THRESHOLD_``) — the bytes
   the call really held at its peak, allocator included.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from gvlib.backends.hf import SMALL_MODEL_BATCH_ROWS
from gvlib.kernels import token_logprobs
from gvlib.sampler import sample_tokens

TEMPERATURE, TOP_P = 0.7, 0.9


@dataclass(frozen=True)
class Workload:
    """Sampling calls of one shape: ``n`` samples per prompt of ``prompt_len`` tokens, ``new_tokens`` each."""

    name: str
    n: int
    prompt_len: tuple[int, int]  # inclusive range, drawn per prompt
    new_tokens: int


GENERATE = Workload("generate", n=8, prompt_len=(20, 24), new_tokens=24)
VERIFY = Workload("verify", n=1, prompt_len=(40, 50), new_tokens=75)
N16 = Workload("n16", n=16, prompt_len=(24, 36), new_tokens=40)


@dataclass(frozen=True)
class Sweep:
    """What a benchmark run times: model sizes × workloads × batch rows (not :class:`gvlib.claims.Grid`)."""

    sizes: tuple[tuple[int, int], ...]  # (hidden, layers)
    workloads: tuple[Workload, ...]
    rows: tuple[int, ...]  # rows (prompt × sample) per batch
    vocab: int
    score_rows: int
    repeats: int
    train_members: tuple[str, ...] = ()  # members of the default organism preset whose training is timed
    train_steps: int = 8


# The quick sweep: the largest default organism's size (m5: hidden 128, 4 layers) at the book's batch.
QUICK = Sweep(sizes=((128, 4),), workloads=(GENERATE, VERIFY), rows=(SMALL_MODEL_BATCH_ROWS,), vocab=330,
             score_rows=128, repeats=1, train_members=("m5",), train_steps=4)
FULL = Sweep(sizes=((64, 2), (128, 2), (128, 4), (256, 4)), workloads=(GENERATE, VERIFY, N16),
            rows=(64, SMALL_MODEL_BATCH_ROWS, 1024), vocab=330, score_rows=1024, repeats=3,
            train_members=("m1", "m2", "m3", "m4", "m5"), train_steps=12)


def describe_machine(device: torch.device) -> dict:
    import transformers

    from gvlib.results import cpu_name

    info = {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "transformers": transformers.__version__, "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn, repeats: int, device: torch.device) -> float:
    """Best wall time of ``repeats`` calls of ``fn`` (after it has been warmed up by the caller)."""
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def matmul_flops(device: torch.device, size: int, repeats: int) -> float:
    """Measured FLOP/s of a square float32 matmul of side ``size``."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b
    return 2 * size**3 / best_time(lambda: a @ b, repeats + 2, device)


def organism_like(hidden: int, layers: int, vocab: int, device: torch.device):
    """A random Llama shaped like the organism family (head size 32, MLP 4× wide), without EOS."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=4 * hidden,
                         num_hidden_layers=layers, num_attention_heads=hidden // 32,
                         num_key_value_heads=hidden // 32, max_position_embeddings=512,
                         initializer_range=0.3, pad_token_id=0, bos_token_id=1, eos_token_id=None)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).to(device).eval()


def matmul_params(model) -> int:
    """Parameters used in matrix products per token: every linear layer, the LM head included."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def model_tokens(prompts: list[list[int]], samples: list[list[list[int]]]) -> int:
    """Tokens the model must run to draw ``samples`` (per prompt) one distinct sequence at a time.

    Each distinct prompt once, then one token per distinct (prompt, tokens so far) at each step: the
    work of :func:`gvlib.sampler.sample_tokens`, whose samples share a row while they agree (rows
    nobody reads any more, kept until they are a quarter of the batch, are not counted). A sample's
    last token is drawn, not run.
    """
    distinct = {tuple(p) for p in prompts}
    sequences = {(tuple(p), tuple(s[:t])) for p, ss in zip(prompts, samples) for s in ss for t in range(1, len(s))}
    return sum(map(len, distinct)) + len(sequences)


def race(model, prompts: list[list[int]], *, n: int, new_tokens: int, eos_ids: list[int], pad_id: int,
         repeats: int, device: torch.device) -> dict:
    """Sample ``n`` continuations of ``prompts`` with ``sample_tokens`` and with ``model.generate``.

    Both run the same prompts in one batch, after a warm-up of each on an eighth of them, then
    ``repeats`` times alternating (so both see the same machine load). Returns the best wall time
    of each, the tokens each produced (up to and including an EOS id; all ``new_tokens`` without),
    and ``shared``: the tokens ``generate`` runs through the model (every row's prompt, then each
    row's tokens but its last) over the sampler's :func:`model_tokens`.
    """
    width = max(map(len, prompts))
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    eos = torch.tensor(eos_ids or [-1], device=device)
    outputs = {}  # each method's last output; counted after the timing, not inside it

    def ours(count=len(prompts)):
        outputs["ours"] = sample_tokens(model, prompts[:count], n=n, temperature=TEMPERATURE, top_p=TOP_P,
                                        max_new_tokens=new_tokens, eos_token_ids=eos_ids, seed=0,
                                        pad_token_id=pad_id)

    @torch.no_grad()
    def theirs(count=len(prompts)):
        outputs["theirs"] = model.generate(
            ids[:count], attention_mask=mask[:count], do_sample=True, temperature=TEMPERATURE, top_p=TOP_P,
            top_k=0, max_new_tokens=new_tokens, num_return_sequences=n, pad_token_id=pad_id,
            eos_token_id=eos_ids or None)[:, width:]

    warm_up = max(1, len(prompts) // 8)  # first calls set up kernels and memory; the data need not be full
    ours(warm_up)
    theirs(warm_up)
    t_ours, t_theirs = float("inf"), float("inf")
    for _ in range(repeats):
        t_ours = min(t_ours, best_time(ours, 1, device))
        t_theirs = min(t_theirs, best_time(theirs, 1, device))
    samples, generated = outputs["ours"], outputs["theirs"]
    ours_tokens = sum(len(s) for seqs in samples for s in seqs)
    # A generate row's tokens end with its first EOS; generate pads the rest of the row.
    stopped = torch.isin(generated, eos).int().cumsum(dim=1)
    theirs_tokens = int(((stopped == 0) | ((stopped == 1) & torch.isin(generated, eos))).sum())
    needed = model_tokens(prompts, samples)
    per_row = sum(n * len(p) + sum(len(s) - 1 for s in seqs) for p, seqs in zip(prompts, samples))
    return {"sampler_s": t_ours, "generate_s": t_theirs, "sampler_tokens": ours_tokens,
            "generate_tokens": theirs_tokens, "sampler_tok_s": ours_tokens / t_ours,
            "generate_tok_s": theirs_tokens / t_theirs, "sampler_model_tokens": needed,
            "shared": per_row / needed, "speedup": ours_tokens / t_ours / (theirs_tokens / t_theirs)}


def bench_sampler(sweep: Sweep, device: torch.device, peak: float) -> list[dict]:
    rows = []
    generator = torch.Generator().manual_seed(0)
    for hidden, layers in sweep.sizes:
        model = organism_like(hidden, layers, sweep.vocab, device)
        for work in sweep.workloads:
            for batch_rows in sweep.rows:
                n_prompts = max(1, batch_rows // work.n)
                low, high = work.prompt_len
                lengths = torch.randint(low, high + 1, (n_prompts,), generator=generator).tolist()
                prompts = [torch.randint(3, sweep.vocab, (k,), generator=generator).tolist() for k in lengths]
                result = race(model, prompts, n=work.n, new_tokens=work.new_tokens, eos_ids=[], pad_id=0,
                              repeats=sweep.repeats, device=device)
                flops = 2 * matmul_params(model) * result["sampler_model_tokens"]
                rows.append({
                    "hidden": hidden, "layers": layers, "params": sum(p.numel() for p in model.parameters()),
                    "workload": work.name, "n": work.n, "rows": n_prompts * work.n, "prompts": n_prompts,
                    "new_tokens": work.new_tokens, **result,
                    "sampler_matmul_fraction": flops / result["sampler_s"] / peak,
                })
    return rows


def family_members(family_dir: str | Path) -> list[str]:
    """Member names of a trained organism family, smallest first (its ``family.json``)."""
    return [m["name"] for m in json.loads((Path(family_dir) / "family.json").read_text())["models"]]


def bench_book(family_dir: str, sweep: Sweep, device: torch.device, members: list[str] | None = None) -> list[dict]:
    """The book's own sampling calls on a trained organism family (``python -m gvlib.organism``).

    For each member, loaded as the notebooks load it (:class:`gvlib.backends.hf.HFBackend`): Sudoku
    generation (n = 8 samples of the first test puzzles) and CoT-Score verification (one
    verification of each of those samples, ``verifier_max_new_tokens``), each in one batch of
    :data:`SMALL_MODEL_BATCH_ROWS` rows, with the model's EOS: rows end when the model ends them,
    so the tokens counted are those each method produced.
    """
    from gvlib.backends.base import SamplingParams
    from gvlib.backends.hf import HFBackend
    from gvlib.organism.tasks import load_task

    task = load_task("organism/sudoku", family=family_dir)
    n = 8
    examples = task.examples[: SMALL_MODEL_BATCH_ROWS // n]
    rows = []
    for name in members or family_members(family_dir):
        backend = HFBackend.from_pretrained(str(Path(family_dir) / name), device=device.type, dtype="float32")
        generation = [task.generation_prompt(e) for e in examples]
        candidates = backend.sample(generation, SamplingParams(n=n, temperature=TEMPERATURE, top_p=TOP_P,
                                                               max_new_tokens=task.max_new_tokens))
        verification = [task.verifier_prompt("cot_score", e, c) for e, cs in zip(examples, candidates) for c in cs]
        for call, texts, k, new in (("generate", generation, n, task.max_new_tokens),
                                    ("cot_score", verification, 1, task.verifier_max_new_tokens)):
            prompts = backend.encode(texts)
            result = race(backend.model, prompts, n=k, new_tokens=new, eos_ids=backend.eos_ids,
                          pad_id=backend.pad_id, repeats=sweep.repeats, device=device)
            rows.append({"model": name, "call": call, "n": k, "rows": len(prompts) * k,
                         "prompt_tokens": sum(map(len, prompts)) / len(prompts), **result})
    return rows


def bench_training(sweep: Sweep, device: torch.device, peak: float) -> list[dict]:
    """Tokens/s and model FLOP/s of the organism's training loop on the default family's shapes (module doc).

    The organism trains on the CPU (its batches are CPU tensors), so on another device nothing is timed.
    """
    from dataclasses import replace

    from gvlib.organism.corpus import Corpus
    from gvlib.organism.presets import get_preset
    from gvlib.organism.tasks import make_task
    from gvlib.organism.tokenizer import build_tokenizer
    from gvlib.organism.train import build_model, param_counts, train_model
    from gvlib.organism.world import TASKS, World

    preset = get_preset("default")
    world, tokenizer = World(preset.world), build_tokenizer(preset.world)
    tasks = {t: make_task(t, world) for t in TASKS}
    mixture = replace(preset.mixture, kinds={k: w for k, w in preset.mixture.kinds.items() if k != "verify"})
    rows = []
    for name in sweep.train_members if device.type == "cpu" else ():
        spec = next(m for m in preset.models if m.name == name)
        model = build_model(spec, tokenizer, preset.train, preset.seed)
        corpus = Corpus(world, tasks, tokenizer.get_vocab(), mixture, seed=preset.seed)
        train_model(model, corpus, replace(spec, steps=2), preset.train)  # warm-up
        stats = train_model(model, corpus, replace(spec, steps=sweep.train_steps), preset.train)
        non_embedding = param_counts(model)[1]
        tok_s = stats["train_tokens"] / stats["wall_time_s"]
        rows.append({"model": name, "hidden": spec.hidden, "layers": spec.layers, "params": non_embedding,
                     "steps": sweep.train_steps, "rows": preset.train.rows, "seq_len": preset.train.seq_len,
                     "real_tokens_per_step": stats["train_tokens"] / sweep.train_steps,
                     "step_s": stats["wall_time_s"] / sweep.train_steps, "train_tok_s": tok_s,
                     "train_matmul_fraction": 6 * non_embedding * tok_s / peak})
    return rows


_MEMORY_PROBE = r"""
import json, sys, torch
from gvlib.kernels import token_logprobs
def rss(field):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(field))
peaks = []
for method, rows, vocab, dtype in json.loads(sys.argv[1]):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(rows, vocab, generator=g, dtype=getattr(torch, dtype))
    targets = torch.randint(0, vocab, (rows,), generator=g)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM (peak RSS) to the current RSS
    before = rss("VmRSS:")
    if method == "naive":
        out = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[:, None]).squeeze(-1)
    else:
        out = token_logprobs(logits, targets)
    peaks.append(rss("VmHWM:") - before)
    del logits, targets, out
print(json.dumps(peaks))
"""


def peak_bytes(cases: list[tuple[str, int, int, torch.dtype]], device: torch.device) -> list[int | None]:
    """Peak memory above the inputs of each (method, rows, vocab, dtype) scoring call (module docstring)."""
    if device.type == "cuda":
        peaks = []
        for method, rows, vocab, dtype in cases:
            g = torch.Generator(device=device).manual_seed(0)
            logits = torch.randn(rows, vocab, generator=g, dtype=dtype, device=device)
            targets = torch.randint(0, vocab, (rows,), generator=g, device=device)
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            _score(method, logits, targets)
            torch.cuda.synchronize(device)
            peaks.append(torch.cuda.max_memory_allocated(device) - before)
            del logits, targets
        return peaks
    if not os.path.exists("/proc/self/clear_refs"):
        return [None] * len(cases)
    spec = json.dumps([(m, r, v, str(d).removeprefix("torch.")) for m, r, v, d in cases])
    # Every allocation above 64 KiB gets its own mapping, returned to the system when freed, so the
    # resident set follows the live tensors (glibc would otherwise keep freed blocks resident).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    result = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, spec], capture_output=True, text=True,
                            check=True, env=env)
    return json.loads(result.stdout.splitlines()[-1])


def _score(method: str, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if method == "naive":
        return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[:, None]).squeeze(-1)
    return token_logprobs(logits, targets)


def bench_scorer(sweep: Sweep, device: torch.device) -> list[dict]:
    rows, cases = [], []
    for vocab in (32_000, 152_064):
        for dtype in (torch.float32, torch.bfloat16):
            g = torch.Generator(device=device).manual_seed(0)
            logits = torch.randn(sweep.score_rows, vocab, generator=g, dtype=dtype, device=device)
            targets = torch.randint(0, vocab, (sweep.score_rows,), generator=g, device=device)
            fused, naive = _score("fused", logits, targets), _score("naive", logits, targets)
            exact = torch.log_softmax(logits.double(), dim=-1).gather(-1, targets[:, None]).squeeze(-1)
            times = {m: best_time(lambda m=m: _score(m, logits, targets), sweep.repeats, device)
                     for m in ("fused", "naive")}
            del logits, targets
            cases += [("fused", sweep.score_rows, vocab, dtype), ("naive", sweep.score_rows, vocab, dtype)]
            rows.append({
                "vocab": vocab, "dtype": str(dtype).removeprefix("torch."), "rows": sweep.score_rows,
                "input_mib": sweep.score_rows * vocab * torch.finfo(dtype).bits / 8 / 2**20,
                "fused_err": float((fused - exact).abs().max()), "naive_err": float((naive - exact).abs().max()),
                "fused_ms": times["fused"] * 1e3, "naive_ms": times["naive"] * 1e3,
            })
    peaks = peak_bytes(cases, device)
    for row, fused_peak, naive_peak in zip(rows, peaks[0::2], peaks[1::2]):
        row["fused_peak_mib"] = None if fused_peak is None else fused_peak / 2**20
        row["naive_peak_mib"] = None if naive_peak is None else naive_peak / 2**20
    return rows


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def report(machine: dict, peak: float, sampler_rows: list[dict], scorer_rows: list[dict],
           book_rows: list[dict] | None = None, training_rows: list[dict] | None = None) -> str:
    lines = ["Machine: " + ", ".join(f"{k}={v}" for k, v in machine.items()),
             f"float32 matmul, {machine['torch_threads']} thread(s): {peak / 1e9:.1f} GFLOP/s measured", "",
             f"Sampling at T={TEMPERATURE}, top-p={TOP_P} (best of repeats; tokens/s = generated tokens / wall "
             f"time); the book samples the organism in batches of {SMALL_MODEL_BATCH_ROWS} rows; shared = "
             "tokens generate runs through the model / tokens the sampler runs (samples that agree share)",
             f"{'hidden':>6} {'layers':>6} {'params':>8} {'workload':>9} {'n':>3} {'rows':>5} {'new':>4} "
             f"{'sampler tok/s':>14} {'generate tok/s':>15} {'speed-up':>9} {'shared':>7} {'of matmul peak':>15}"]
    for r in sampler_rows:
        lines.append(f"{r['hidden']:>6} {r['layers']:>6} {r['params']:>8} {r['workload']:>9} {r['n']:>3} "
                     f"{r['rows']:>5} {r['new_tokens']:>4} "
                     f"{r['sampler_tok_s']:>14.0f} {r['generate_tok_s']:>15.0f} {r['speedup']:>8.2f}x "
                     f"{r['shared']:>6.2f}x {r['sampler_matmul_fraction']:>14.1%}")
    if book_rows is None:
        lines += ["", "The book's own calls on a trained family: add --family .cache/gvlib/organism/default "
                  "(after make book)"]
    else:
        lines += ["", "The book's own calls on the trained family (Sudoku; rows stop at the model's EOS, "
                  "tokens/s counts the tokens each method produced)",
                  f"{'model':>6} {'call':>9} {'n':>3} {'rows':>5} {'prompt':>6} {'sampler tok/s':>14} "
                  f"{'generate tok/s':>15} {'speed-up':>9} {'shared':>7} {'sampler s':>10} {'generate s':>11}"]
        for r in book_rows:
            lines.append(f"{r['model']:>6} {r['call']:>9} {r['n']:>3} {r['rows']:>5} {r['prompt_tokens']:>6.0f} "
                         f"{r['sampler_tok_s']:>14.0f} {r['generate_tok_s']:>15.0f} {r['speedup']:>8.2f}x "
                         f"{r['shared']:>6.2f}x {r['sampler_s']:>10.2f} {r['generate_s']:>11.2f}")
        if len(book_rows) > 1:
            ours, theirs = (sum(r[f"{side}_tokens"] for r in book_rows) / sum(r[f"{side}_s"] for r in book_rows)
                            for side in ("sampler", "generate"))
            lines.append(f"{'all':>6} {'calls':>9} {'':>3} {'':>5} {'':>6} {ours:>14.0f} {theirs:>15.0f} "
                         f"{ours / theirs:>8.2f}x {'':>7} {sum(r['sampler_s'] for r in book_rows):>10.2f} "
                         f"{sum(r['generate_s'] for r in book_rows):>11.2f}")
    if training_rows:
        lines += ["", "Training: the organism's loop (train_model, batches built inside the timing) on the default "
                  "family's shapes; model FLOP/s = 6 x non-embedding params x real tokens / wall time",
                  f"{'model':>6} {'hidden':>6} {'layers':>6} {'params':>8} {'rows x seq':>10} {'real tok/step':>13} "
                  f"{'s/step':>7} {'train tok/s':>12} {'of matmul peak':>15}"]
        for r in training_rows:
            lines.append(f"{r['model']:>6} {r['hidden']:>6} {r['layers']:>6} {r['params']:>8} "
                         f"{str(r['rows']) + ' x ' + str(r['seq_len']):>10} {r['real_tokens_per_step']:>13.0f} "
                         f"{r['step_s']:>7.3f} {r['train_tok_s']:>12.0f} {r['train_matmul_fraction']:>14.1%}")
    lines += ["", "Scoring: token_logprobs vs log_softmax(logits.float()).gather (peak = memory above the inputs; "
              "err = max |difference| from float64 log_softmax)",
              f"{'vocab':>7} {'dtype':>9} {'rows':>5} {'input MiB':>9} {'fused ms':>9} {'naive ms':>9} "
              f"{'fused peak MiB':>15} {'naive peak MiB':>15} {'less memory':>12} "
              f"{'fused err':>10} {'naive err':>10}"]
    for r in scorer_rows:
        ratio = (None if r["fused_peak_mib"] in (None, 0) or r["naive_peak_mib"] is None
                 else r["naive_peak_mib"] / r["fused_peak_mib"])
        lines.append(f"{r['vocab']:>7} {r['dtype']:>9} {r['rows']:>5} {r['input_mib']:>9.0f} {r['fused_ms']:>9.1f} "
                     f"{r['naive_ms']:>9.1f} {_fmt(r['fused_peak_mib'], '>15.1f')} "
                     f"{_fmt(r['naive_peak_mib'], '>15.1f')} {_fmt(ratio, '>11.1f')}x "
                     f"{r['fused_err']:>10.1e} {r['naive_err']:>10.1e}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m gvlib.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller sweep that runs in under a minute")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1; 0: torch's choice)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--family", metavar="DIR",
                        help="also time the book's own calls on this trained organism family (every member; "
                             "with --quick the largest)")
    args = parser.parse_args(argv)
    if args.threads < 0:
        parser.error(f"--threads must be >= 0, got {args.threads}")
    if args.family is not None and not (Path(args.family) / "family.json").is_file():
        parser.error(f"--family {args.family}: no family.json there (train one with python -m gvlib.organism)")
    if args.threads:
        torch.set_num_threads(args.threads)  # for the whole process, which does nothing else
    sweep = QUICK if args.quick else FULL
    device = torch.device(args.device)
    machine = describe_machine(device)
    peak = matmul_flops(device, 512 if args.quick else 1024, sweep.repeats)
    results = {"machine": machine, "matmul_flops": peak, "sweep": asdict(sweep),
               "sampler": bench_sampler(sweep, device, peak), "training": bench_training(sweep, device, peak),
               "scorer": bench_scorer(sweep, device)}
    if args.family is not None:
        members = family_members(args.family)
        results["book"] = bench_book(args.family, sweep, device, members[-1:] if args.quick else members)
    print(report(machine, peak, results["sampler"], results["scorer"], results.get("book"), results["training"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
