"""Measure the gridding rule against nearest-node averaging on listed chains from our generators.

    python tools/measure_gridding.py [n_chains]

For each family, n chains (seeds 700-...) with the benchmark's quote noise (18 bp x profile) and
without noise; prints the RMS and 99th-percentile error (bp of vol) of the gridded node values
against the true surface at the nodes, over the nodes each rule fills.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.engine.grid import DK, DT, K_GRID, T_GRID  # noqa: E402
from core.engine.grid_read import inside_grid  # noqa: E402
from core.quotes.gridding import grid_quotes  # noqa: E402
from core.synth.chains import ChainSpec, make_chain, surface_function  # noqa: E402


def nearest_node(T, k, iv):
    """The naive rule: each quote's vol moved as is to its nearest node; several are averaged."""
    ti = np.abs(T[:, None] - T_GRID[None]).argmin(1)
    kj = np.abs(k[:, None] - K_GRID[None]).argmin(1)
    ok = (np.abs(T - T_GRID[ti]) <= DT / 2 + 1e-9) & (np.abs(k - K_GRID[kj]) <= DK / 2 + 1e-9)
    total, count = np.zeros((13, 17)), np.zeros((13, 17))
    np.add.at(total, (ti[ok], kj[ok]), iv[ok])
    np.add.at(count, (ti[ok], kj[ok]), 1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def main(n: int = 20) -> None:
    mesh = np.meshgrid(T_GRID, K_GRID, indexing="ij")
    for noise in (18.0, 0.0):
        for family in ("shifted_ssvi", "sabr_event"):
            errors = {"rule": [], "nearest node": []}
            filled = {"rule": [], "nearest node": []}
            for s in range(n):
                f = surface_function(family, 700 + s)
                df = make_chain(f, ChainSpec(put_sd=3.5, call_sd=3.0, noise_bp=noise), seed=100 + s)
                T, k, iv = (df[c].to_numpy() for c in ("T", "k", "iv"))
                inside = inside_grid(T, k)
                truth = np.sqrt(f(*mesh) / T_GRID[:, None])
                for name, grid in (("rule", grid_quotes(T[inside], k[inside], iv[inside]).iv_obs),
                                   ("nearest node", nearest_node(T[inside], k[inside], iv[inside]))):
                    errors[name].append((grid - truth)[np.isfinite(grid)])
                    filled[name].append(np.isfinite(grid).mean())
            for name, errs in errors.items():
                e = np.concatenate(errs)
                print(f"noise {noise:4.0f} bp  {family:13s} {name:13s} nodes filled {np.mean(filled[name]):.2f}  "
                      f"RMS {1e4 * np.sqrt(np.mean(e**2)):6.1f} bp  p99 {1e4 * np.quantile(np.abs(e), 0.99):6.1f} bp")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
