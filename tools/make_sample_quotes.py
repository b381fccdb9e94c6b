"""Write the two sample quote files under samples/ (the "Your quotes" page loads them in one click).

    python tools/make_sample_quotes.py

- ``samples/quotes_iv.csv``: an index-style chain quoted in implied vol (T in years, strike,
  forward, bid/ask vols and the mid), over a SABR-event surface (seed 9101).
- ``samples/quotes_prices.csv``: a single-stock chain (spot 180) quoted as option prices with
  dates (valuation_date, expiry, strike, forward, discount, call and put bid/ask on a 0.01 tick),
  over a shifted-SSVI surface (seed 9120).

Both use the benchmark's quote noise (18 bp times the wing/front profile), bid/ask spreads of
1.5 noise sd each side, and 2 % stale quotes (+-50..110 bp). The price file also carries the junk a
real export has: two prices below intrinsic value and one duplicated row. Seeds are fixed, so the
files are reproducible; none is a benchmark test seed.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.synth.chains import ChainSpec, make_chain, surface_function  # noqa: E402

OUT = ROOT / "samples"


def iv_sample():
    spec = ChainSpec(stale_fraction=0.02, weeklies=2)
    df = make_chain(surface_function("sabr_event", 9101), spec, seed=9111)
    df = df[["T", "strike", "forward", "bid", "ask", "iv"]].copy()
    df["T"] = df["T"].round(6)
    df["forward"] = df["forward"].round(2)
    for col in ("bid", "ask", "iv"):
        df[col] = df[col].round(5)
    return df


def price_sample():
    spec = ChainSpec(spot=180.0, rate=0.04, dividend_yield=0.005, tick=0.01, min_price=0.05,
                     stale_fraction=0.02, weeklies=2)
    df = make_chain(surface_function("shifted_ssvi", 9120), spec, seed=9112, as_prices=True, both_types=True)
    df = df[["valuation_date", "expiry", "strike", "forward", "discount", "type", "bid", "ask"]].copy()
    df["forward"] = df["forward"].round(2)
    df["discount"] = df["discount"].round(6)
    df["bid"] = df["bid"].round(2)
    df["ask"] = df["ask"].round(2)
    rng = np.random.default_rng(9113)
    # Two deep in-the-money calls marked below intrinsic (a stale print after a move).
    itm = df.index[(df["type"] == "call") & (df["strike"] < 0.8 * df["forward"])]
    for i in rng.choice(itm, size=2, replace=False):
        intrinsic = df.at[i, "discount"] * (df.at[i, "forward"] - df.at[i, "strike"])
        df.at[i, "bid"] = round(intrinsic - 0.60, 2)
        df.at[i, "ask"] = round(intrinsic - 0.40, 2)
    otm = df.index[((df["type"] == "call") & (df["strike"] > df["forward"] * 1.02))]
    dup = rng.choice(otm)
    df = pd.concat([df, df.loc[[dup]]])
    return df.reset_index(drop=True)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, df in (("quotes_iv.csv", iv_sample()), ("quotes_prices.csv", price_sample())):
        path = OUT / name
        df.to_csv(path, index=False)
        print(f"wrote {path.relative_to(ROOT)}: {len(df)} rows, {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
