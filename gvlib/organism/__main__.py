"""``python -m gvlib.organism --preset NAME [--out DIR]``: train (or reuse) a family and list it."""
from __future__ import annotations

import argparse
import time

from gvlib.organism.family import ensure_family
from gvlib.organism.presets import PRESETS


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m gvlib.organism", description=__doc__)
    ap.add_argument("--preset", default="default", choices=sorted(PRESETS))
    ap.add_argument("--out", default=None, help="family directory (default: $GVLIB_CACHE/organism/<preset>)")
    args = ap.parse_args(argv)
    t0 = time.time()
    fam = ensure_family(args.preset, args.out)
    print(f"family {fam.preset} in {fam.path} ({time.time() - t0:.0f} s; trained now: {fam.trained_now or 'none'})")
    print(f"{'model':8} {'params(non-emb)':>16} {'tokens':>10} {'FLOPs':>10} {'loss':>7} {'train s':>8}")
    for m in fam.models:
        print(f"{m.name:8} {m.params:>16,} {m.train_tokens:>10,} {m.flops:>10.2e} "
              f"{m.manifest['final_train_loss']:>7.3f} {m.manifest['wall_time_s']:>8.0f}")


if __name__ == "__main__":
    main()
