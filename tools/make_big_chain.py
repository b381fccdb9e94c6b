"""Write a large quote file for the timing checks of issue 13 (items 10-11): the sample index chain's
expiries with N rows spread over strikes, iv from the sample's smile plus quote noise.

    python -m tools.make_big_chain N OUT.csv
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from core.settings import SAMPLES_DIR


def big_chain(n: int, seed: int = 0) -> pd.DataFrame:
    sample = pd.read_csv(SAMPLES_DIR / "quotes_iv.csv")
    rng = np.random.default_rng(seed)
    rows = sample.iloc[rng.integers(0, len(sample), n)].reset_index(drop=True)
    k = np.log(rows["strike"] / rows["forward"]) + rng.normal(0.0, 0.01, n)
    iv = rows["iv"].to_numpy() * np.exp(rng.normal(0.0, 0.002, n))
    return pd.DataFrame({"T": rows["T"], "strike": np.round(rows["forward"] * np.exp(k), 2),
                         "forward": rows["forward"], "iv": np.round(iv, 6)})


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    big_chain(int(argv[0])).to_csv(argv[1], index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
