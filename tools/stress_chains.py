"""Chains of extreme but real shapes through the chain path, against their known truth.

    python -m tools.stress_chains [--methods svi_gp,svi_fit,interp] [--draws 2]

Each chain is ``core.synth.chains.make_chain`` over a Merton jump-diffusion surface with chosen
parameters (``core.synth.mixtures.merton_w``: closed form, arbitrage-free at every T and k), listed
from 1 day to 2.5 years, quote noise 5 bp with half spreads three times that, written in vol:

- backwardation: diffusive vol 90 % at the front reverting to 25 %, jumps of -15 % (after a shock);
- meme: 120 % vol, large two-sided jumps (strikes far out, 1,448 quotes in one expiry);
- upskew: jumps of +15 % (a call skew, as some commodities and squeezes show);
- fx_lowvol: 5-7 % vol, rare small jumps;
- contango: 10 % at the front rising to 30 %, no jumps to speak of.

Per chain: quotes, the vol range, the first method's repair (``repair_chain``, as the CLI's
``--chain``) against the true vols (RMSE and largest miss), its dense check, the share of quotes
flagged stale, its seconds, and each method's held-out RMSE (random 20 %, ``--draws`` draws).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.chain.methods import get_chain_method  # noqa: E402
from core.chain.types import from_quoteset  # noqa: E402
from core.chain.workflow import repair_chain  # noqa: E402
from core.evaluation.real import random_masks  # noqa: E402
from core.quotes.read import normalise_quotes  # noqa: E402
from core.settings import apply_thread_policy  # noqa: E402
from core.synth.chains import ChainSpec, make_chain  # noqa: E402
from core.synth.mixtures import merton_w  # noqa: E402

# name: (Merton parameters, the ATM vol that sets the listed strike range)
SHAPES = {
    "backwardation": (dict(vol_short=0.9, vol_long=0.25, kappa=3.0, lam=1.0, jump_mean=-0.15, jump_sd=0.1), 0.45),
    "meme": (dict(vol_short=1.2, vol_long=0.9, kappa=0.5, lam=2.0, jump_mean=0.0, jump_sd=0.3), 1.0),
    "upskew": (dict(vol_short=0.3, vol_long=0.3, kappa=1.0, lam=0.8, jump_mean=0.15, jump_sd=0.1), 0.35),
    "fx_lowvol": (dict(vol_short=0.05, vol_long=0.07, kappa=1.0, lam=0.1, jump_mean=-0.02, jump_sd=0.02), 0.06),
    "contango": (dict(vol_short=0.1, vol_long=0.3, kappa=2.0, lam=0.001, jump_mean=0.0, jump_sd=0.01), 0.2),
}
COLUMNS = ["valuation_date", "expiry", "strike", "forward", "iv", "bid", "ask"]


def stress_chain(name: str):
    q, atm = SHAPES[name]
    spec = ChainSpec(noise_bp=5.0, half_spread_noise=3.0, extra_expiry_days=(1, 2), weeklies=3, monthlies=8,
                     horizon_years=2.5, atm_vol=atm)
    return make_chain(lambda T, k: merton_w(q, T, k), spec, seed=1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="svi_gp,svi_fit,interp")
    ap.add_argument("--draws", type=int, default=2)
    args = ap.parse_args(argv)
    apply_thread_policy()
    methods = [m for m in args.methods.split(",") if m]
    for name in SHAPES:
        df = stress_chain(name)
        t0 = time.perf_counter()
        out = repair_chain(df[COLUMNS], method=methods[0])
        seconds = time.perf_counter() - t0
        table = out.quote_table
        used = (table["status"] == "used").to_numpy()
        err = table["iv_repaired"].to_numpy()[used] - df["iv_true"].to_numpy()[used]
        chain = from_quoteset(normalise_quotes(df[COLUMNS]))
        held = []
        for m in methods:
            rmse = []
            for hide in random_masks(chain, args.draws, 0):
                s = get_chain_method(m).fit(chain.subset(~hide), ask=(chain.T[hide], chain.k[hide]))
                pred = s.iv(chain.T[hide], chain.k[hide]) + s.quote_offset(chain.T[hide], chain.k[hide])
                rmse.append(np.sqrt(np.mean((pred - chain.iv[hide]) ** 2)))
            held.append(f"{m} {np.mean(rmse):.4f}")
        print(f"{name:14s} {len(df):5d} quotes, iv {df['iv'].min():.3f}-{df['iv'].max():.3f} | {methods[0]} against "
              f"the truth: RMSE {np.sqrt(np.mean(err**2)):.4f}, largest {np.abs(err).max():.4f}, dense ok "
              f"{out.dense.ok}, {100 * table.loc[used, 'stale_flag'].mean():.1f} % flagged, {seconds:.1f} s | "
              f"held out: " + ", ".join(held), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
