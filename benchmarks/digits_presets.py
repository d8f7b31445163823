"""The measurements behind `src/obliviate/presets/digits/*.yaml`: a method's settings swept over the
digits scenarios (random10, class, subclass) and seeds 0-2, U-LiRA and the challenge score off, with
each row's UA / RA / TA / MIA-efficacy against the retrained oracle's and the average gap.

    OMP_NUM_THREADS=2 python benchmarks/digits_presets.py img_finetune '{"lr": [0.01, 0.1]}'
    OMP_NUM_THREADS=2 python benchmarks/digits_presets.py ssd '{"alpha": [3.0, 5.0, 10.0]}' --scenarios random10

A grid value of the preset's field overrides it (a preset applies first; see
`obliviate.benchmarks.digits_bench.method_config`).
"""

from __future__ import annotations

import argparse
import itertools
import json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("method")
    ap.add_argument("grid", help='JSON {"field": [values, ...]}')
    ap.add_argument("--scenarios", default="random10,class,subclass")
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    from obliviate.benchmarks.digits_bench import bench_digits

    grid = json.loads(args.grid)
    seeds = [int(s) for s in args.seeds.split(",")]
    for combo in itertools.product(*grid.values()):
        over = dict(zip(grid, combo))
        line = [json.dumps(over)]
        for sc in args.scenarios.split(","):
            rep = bench_digits([args.method], sc, seeds, ulira_shadows=0, challenge_models=0,
                               method_overrides={args.method: over})
            e, r = rep.models[args.method], rep.models["retrain"].metrics
            if not e.metrics:
                line.append(f"{sc}: skipped ({'; '.join(e.skipped.values())})")
                continue

            def v(d, k):
                return d[k]["value"]

            m = e.metrics
            ran = len(m["unlearning_accuracy"].get("per_seed") or [0])
            partial = (f" [{ran} of {len(seeds)} seeds; skipped: {e.skipped.get('run', '')}]"
                       if ran < len(seeds) else "")
            line.append(f"{sc}{partial}: UA {v(m, 'unlearning_accuracy'):.1f}/{v(r, 'unlearning_accuracy'):.1f} "
                        f"RA {v(m, 'retain_accuracy'):.1f} TA {v(m, 'test_accuracy'):.1f}/{v(r, 'test_accuracy'):.1f} "
                        f"MIA {v(m, 'mia_efficacy'):.1f}/{v(r, 'mia_efficacy'):.1f} gap {v(m, 'avg_gap'):.2f}")
        print(" | ".join(line), flush=True)


if __name__ == "__main__":
    main()
