"""[organism] ``python -m gvlib.organism --preset NAME [--seed N] [--out DIR]``: train (or reuse) a family and list it.

``--seed N`` trains the same design with training seed N (the family ``NAME-sN``, in its own cache
directory; seed 0 is ``NAME`` itself); ``NAME`` may also be a seeded name such as ``default-s1``.
"""
from __future__ import annotations

import argparse
import sys
import time

from gvlib.organism.family import ensure_family, worker
from gvlib.organism.presets import get_preset, seeded_name


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--worker"]:  # trains the members a family's build sends it (gvlib.organism.family)
        worker()
        return
    ap = argparse.ArgumentParser(prog="python -m gvlib.organism", description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default", help="organism preset, e.g. default, tiny or default-s1")
    ap.add_argument("--seed", type=int, default=None, help="training seed (default: the preset's own, 0)")
    ap.add_argument("--out", default=None, help="family directory (default: $GVLIB_CACHE/organism/<name>)")
    args = ap.parse_args(argv)
    try:
        name = args.preset if args.seed is None else seeded_name(args.preset, args.seed)
        get_preset(name)
    except ValueError as e:
        ap.error(str(e))
    t0 = time.time()
    fam = ensure_family(name, args.out)
    print(f"family {fam.preset} in {fam.path} ({time.time() - t0:.0f} s; trained now: {fam.trained_now or 'none'})")
    print(f"{'model':8} {'params(non-emb)':>16} {'tokens':>10} {'FLOPs':>10} {'loss':>7} {'train s':>8}")
    for m in fam.models:
        print(f"{m.name:8} {m.params:>16,} {m.train_tokens:>10,} {m.flops:>10.2e} "
              f"{m.manifest['final_train_loss']:>7.3f} {m.manifest['wall_time_s']:>8.0f}")


if __name__ == "__main__":
    main()
