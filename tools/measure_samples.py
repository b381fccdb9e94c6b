"""How close each method's repair comes to the known truth at the sample files' quotes.

    python tools/measure_samples.py

The samples are drawn from known surfaces (tools/make_sample_quotes.py), so the repaired vol at
every used quote can be compared with the truth there. Prints RMS (bp of vol) per method of
quote - repair (what a user sees) and repair - truth (what matters).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import core  # noqa: E402
from core.quotes.workflow import repair_quotes  # noqa: E402
from core.synth.chains import surface_function  # noqa: E402

SAMPLES = (("quotes_iv.csv", "sabr_event", 9101), ("quotes_prices.csv", "shifted_ssvi", 9120))


def main() -> None:
    for name, family, seed in SAMPLES:
        truth_w = surface_function(family, seed)
        for method in core.METHODS:
            out = repair_quotes(ROOT / "samples" / name, method=method, stale=False)
            q = out.quote_table[out.quote_table["status"] == "used"]
            T, k = q["T"].to_numpy(), q["k"].to_numpy()
            truth = np.sqrt(truth_w(T, k) / T)
            rms = lambda x: 1e4 * float(np.sqrt(np.mean(np.square(x))))  # noqa: E731
            print(f"{name:18s} {method:11s} quote - repair {rms(q['residual']):6.1f} bp   "
                  f"repair - truth {rms(q['iv_repaired'] - truth):6.1f} bp   ({len(q)} quotes)")


if __name__ == "__main__":
    main()
