"""[organism] The seed stage: a small generation-only model whose samples become the corpus' verification candidates.

The paper's verifiers judge samples of real models (§3), so the organism's verification documents show
candidates SAMPLED FROM A MODEL, not synthetic corruptions: a seed model is trained on knowledge and
generation documents only, and at each of a few checkpoints it samples completions of TRAIN problems
(never test problems) at a few temperatures; the exact checker labels each sample. Earlier checkpoints
make cruder errors, later ones subtler errors, like the smaller and larger members of the family.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from gvlib.backends.base import SamplingParams
from gvlib.backends.hf import HFBackend
from gvlib.backends.text import derive_seed

from gvlib.organism.corpus import Corpus, Mixture
from gvlib.organism.tasks import OrganismTask
from gvlib.organism.train import ModelSpec, TrainConfig, build_model, train_model
from gvlib.organism.world import World


@dataclass(frozen=True)
class SeedConfig:
    """The seed model, when it samples (after these optimizer steps), on how many problems, how hot."""

    model: ModelSpec
    checkpoints: tuple[int, ...]
    problems: int = 400
    samples: int = 2
    temperatures: tuple[float, ...] = (0.7, 1.0)

    def __post_init__(self):
        if not self.checkpoints or max(self.checkpoints) > self.model.steps or min(self.checkpoints) < 1:
            raise ValueError(f"SeedConfig.checkpoints={self.checkpoints}: need steps in 1..{self.model.steps}")


def seed_candidates(world: World, tasks: dict[str, OrganismTask], tokenizer, cfg: SeedConfig,
                    train: TrainConfig, mixture: Mixture, seed: int) -> dict[str, list[dict]]:
    """Train the seed model and return labelled samples per task: dicts problem/completion/u/step/temperature."""
    gen_only = replace(mixture, kinds={k: w for k, w in mixture.kinds.items() if k != "verify"})
    own = derive_seed(seed, "seed-model") % 2 ** 31  # not any member's seed, nor another training seed's
    corpus = Corpus(world, tasks, tokenizer.get_vocab(), gen_only, seed=own)
    model = build_model(cfg.model, tokenizer, train, own)
    records: dict[str, list[dict]] = {t: [] for t in tasks}
    rng = np.random.default_rng([seed, 13])

    def at_step(step: int) -> None:
        if step not in cfg.checkpoints:
            return
        backend = HFBackend(model, tokenizer, batch_size=1024)  # puts the model in eval mode
        for name, task in tasks.items():
            problems = [world.train_problem(name, rng) for _ in range(cfg.problems)]
            examples = [task.example(p) for p in problems]
            prompts = [task.generation_prompt(e) for e in examples]
            for temp in cfg.temperatures:
                outs = backend.sample(prompts, SamplingParams(n=cfg.samples, temperature=temp, top_p=0.9,
                                                              max_new_tokens=task.max_new_tokens, seed=seed + step))
                for p, ex, completions in zip(problems, examples, outs):
                    records[name] += [{"problem": list(p), "completion": c, "u": int(task.score(ex, c)),
                                       "step": step, "temperature": temp} for c in completions]
        model.train()

    train_model(model, corpus, cfg.model, train, desc="seed", on_step=at_step)
    return records
