"""Write synthetic chains of a family no chain method was tuned on, for the real-chain benchmark.

    python -m tools.make_outside_chains OUT_DIR [--seeds 11,12]
    python -m core.benchmark --real OUT_DIR --json out/outside_chains.json

Each chain is ``core.synth.chains.make_chain`` over one Merton jump-diffusion surface
(``surface_function("merton_jump", seed)``: closed form at every T and k), listed from 1 day to
3 years (1-, 2- and 3-day expiries added to the weeklies and monthlies), quote noise 5 bp at the
long-dated money with half spreads three times the noise, written in vol with bid and ask. The
true vols are left out of the file (the benchmark scores against the quotes, as on real chains);
``--with-truth`` keeps them as ``iv_true`` for a closer look.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.synth.chains import ChainSpec, make_chain, surface_function  # noqa: E402

SPEC = ChainSpec(noise_bp=5.0, half_spread_noise=3.0, extra_expiry_days=(1, 2, 3), weeklies=3, monthlies=10,
                 horizon_years=3.0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Merton jump-diffusion chains for python -m core.benchmark --real")
    parser.add_argument("out_dir")
    parser.add_argument("--seeds", default="11,12", help="comma-separated surface seeds (one chain each)")
    parser.add_argument("--with-truth", action="store_true", help="keep the true vols (iv_true)")
    args = parser.parse_args(argv)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for seed in (int(s) for s in args.seeds.split(",") if s):
        df = make_chain(surface_function("merton_jump", seed), SPEC, seed=seed)
        df = df.drop(columns=["is_stale"] + ([] if args.with_truth else ["iv_true"]))
        path = out / f"merton_{seed}.csv"
        tmp = path.with_suffix(".csv.tmp")
        df.to_csv(tmp, index=False)
        tmp.replace(path)                       # written atomically
        print(f"wrote {path}: {len(df)} quotes, {df['T'].nunique()} expiries")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
