"""[organism] The organism's presets: ``tiny`` (three models, for tests) and ``default`` (the book's family of five).

A preset is everything that determines the trained models; its hash, with the digest of the
code that trains it (:func:`code_version`), keys the cache.

Training seeds. ``<preset>-s<N>`` (e.g. ``default-s1``) names preset ``<preset>`` trained with training
seed N: :attr:`Preset.seed` seeds the seed model and its candidates, the corpus stream and every member's
initial weights; everything else, the world included, is the preset's. The world's seed
(:attr:`WorldConfig.seed`) deliberately stays fixed: it draws the test problems, the knowledge base and
the held-out Sudoku grids, so families of different training seeds are judged on the same problems and
their verdicts differ only through training (the spread that ``python -m gvlib.organism.seeds`` reports).
Seed 0 is the preset itself: ``default-s0`` is ``default``, with its name, cache directory and key.

The ``default`` family: heads 32 wide at every size (narrower heads did not learn to copy a grid), three or
four layers (two-layer members did not learn to write a valid grid), and training lengths that give the
family three e-folds of FLOPs, from members that solve the easiest puzzles to ones that solve most (the
organism page shows what this build's family learned; the README's Speed section, how long it trains). The
two largest members, 128 wide, train a check head (:class:`gvlib.organism.train.ModelSpec`) at half the
language-model loss's weight for their first 65% of steps: with it they can learn the one-word MC verdict and
keep their arithmetic, while a longer or heavier head cost the arithmetic and some of the CoT verdict, and the
narrower members learned no reliable verdict with it and lost their arithmetic, so they train without it.
Whether the verdict forms at these sizes depends on the training (its seed, and the CPU kernels:
:func:`gvlib.threads.cpu_kernels`), not on the design alone: the README's diagnostics paragraph has the
measurements, the organism page this build's members and the seed table each seed's verdicts.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, replace

from gvlib.codehash import source_digest
from gvlib.organism.corpus import Mixture
from gvlib.organism.seed import SeedConfig
from gvlib.organism.train import ModelSpec, TrainConfig
from gvlib.organism.world import WorldConfig

#: The modules whose code determines what a preset trains: the world, corpus, tokenizer, tasks and
#: training loop, and the sampler and backend through which the seed stage draws its candidates.
TRAINING_CODE = ("gvlib.organism.world", "gvlib.organism.tasks", "gvlib.organism.tokenizer", "gvlib.organism.corpus",
                 "gvlib.organism.seed", "gvlib.organism.train", "gvlib.tasks.base", "gvlib.sampler",
                 "gvlib.backends.hf", "gvlib.backends.text")


def code_version() -> str:
    """Digest of :data:`TRAINING_CODE` (:func:`gvlib.codehash.source_digest`): part of every member's key."""
    return "organism-" + source_digest(*TRAINING_CODE)


@dataclass(frozen=True)
class Preset:
    name: str
    models: tuple[ModelSpec, ...]
    seed_stage: SeedConfig
    world: WorldConfig = WorldConfig()
    train: TrainConfig = TrainConfig()
    mixture: Mixture = Mixture()
    seed: int = 0

    def __post_init__(self):
        names = [m.name for m in self.models]
        if not names or len(set(names)) != len(names) or "seed" in names:
            raise ValueError(f"preset {self.name}: model names must be unique, non-empty and not 'seed': {names}")

    def to_dict(self) -> dict:
        return asdict(self)

    def shared_key(self) -> str:
        """Hash of everything but the model list (world, corpus, seed stage, training shape, seed)."""
        d = self.to_dict()
        d.pop("models"), d.pop("name")
        return _hash(d)

    def model_key(self, spec: ModelSpec) -> str:
        """The cache key of one member: the shared part of the preset plus its own spec."""
        return _hash({"shared": self.shared_key(), "model": asdict(spec)})

    def key(self) -> str:
        """The cache key of the whole preset (its full config and :func:`code_version`)."""
        return _hash(self.to_dict())


def _hash(obj) -> str:
    return hashlib.sha256((json.dumps(obj, sort_keys=True) + code_version()).encode()).hexdigest()[:16]


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny",
        models=(ModelSpec("t1", 16, 1, 2, 32, 20), ModelSpec("t2", 24, 1, 2, 48, 30),
                ModelSpec("t3", 32, 2, 2, 64, 40)),
        seed_stage=SeedConfig(ModelSpec("seed", 16, 1, 2, 32, 20), checkpoints=(10, 20), problems=16, samples=2),
        train=TrainConfig(rows=8, seq_len=256),
    ),
    "default": Preset(
        name="default",
        models=(ModelSpec("m1", 64, 3, 2, 128, 400), ModelSpec("m2", 64, 3, 2, 192, 500),
                ModelSpec("m3", 96, 3, 3, 256, 600),
                ModelSpec("m4", 128, 3, 4, 384, 1000, check_weight=0.5, check_until=0.65),
                ModelSpec("m5", 128, 4, 4, 512, 1000, check_weight=0.5, check_until=0.65)),
        seed_stage=SeedConfig(ModelSpec("seed", 64, 3, 2, 192, 600), checkpoints=(300, 600), problems=300,
                              samples=2, temperatures=(0.7, 1.2)),
    ),
}


#: A seeded preset name: ``<preset>-s<N>`` (N without leading zeros).
_SEEDED = re.compile(r"(?P<base>.+)-s(?P<seed>0|[1-9][0-9]*)")


def parse_name(name: str) -> tuple[str, int]:
    """``(preset, training seed)`` that a preset name stands for: ``"default"`` gives ``("default", 0)``,
    ``"default-s1"`` ``("default", 1)``; any other name is an error that lists the valid ones."""
    if name in PRESETS:
        return name, PRESETS[name].seed
    seeded = _SEEDED.fullmatch(name) if isinstance(name, str) else None
    if seeded and seeded["base"] in PRESETS:
        return seeded["base"], int(seeded["seed"])
    raise ValueError(f"unknown organism preset {name!r}: expected one of {sorted(PRESETS)} or <preset>-s<N> "
                     f"(that preset with training seed N, e.g. 'default-s1')")


def seeded_name(preset: str, seed: int) -> str:
    """The name of ``preset`` trained with training seed ``seed``: ``preset`` itself for its own seed (0),
    else ``<preset>-s<seed>``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown organism preset {preset!r} to seed: expected one of {sorted(PRESETS)}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"training seed must be an int >= 0, got {seed!r}")
    return preset if seed == PRESETS[preset].seed else f"{preset}-s{seed}"


def get_preset(name: str) -> Preset:
    """The preset called ``name``: one of :data:`PRESETS`, or ``<preset>-s<N>``, that preset with training seed N
    (:func:`parse_name`)."""
    base, seed = parse_name(name)
    preset = PRESETS[base]
    return preset if seed == preset.seed else replace(preset, name=seeded_name(base, seed), seed=seed)
