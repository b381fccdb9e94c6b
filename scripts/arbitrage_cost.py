"""What the no-arbitrage projection costs, in implied-vol units, and how fast it is.

    python -m scripts.arbitrage_cost [--n 500] [--seed 0]

Clean SSVI surfaces (Gatheral-Jacquier-safe: eta (1 + |rho|) <= 2, gamma <= 0.5, so the truth
itself is arbitrage-free) get the post's quote noise (vol basis points, inflated in the wings
and the front); each noisy surface is projected with project(w, "full"). Reported per noise
level: violation rates before and after, RMSE to the truth before and after, and how far the
projection moved the surface (its cost), all in implied vol. Then timings.

The surface generator is a small local copy so the script runs on this module alone; switch
it to core.surfaces once that lands.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from core import arbitrage as arb
from core.grid import K_GRID, K_MESH, T_GRID, T_MESH


def gj_safe_ssvi(n: int, rng: np.random.Generator) -> np.ndarray:
    """Arbitrage-free SSVI total variance (n, 13, 17), phi = eta / theta**gamma."""
    theta0, slope = rng.uniform(0.006, 0.045, n), rng.uniform(0.012, 0.095, n)
    curve, rho = rng.uniform(-0.015, 0.020, n), rng.uniform(-0.88, -0.05, n)
    eta = np.minimum(rng.uniform(0.35, 2.10, n), 2.0 / (1.0 + np.abs(rho)))
    gamma = rng.uniform(0.08, 0.5, n)
    t = T_GRID / T_GRID[-1]
    theta = np.maximum.accumulate(
        np.maximum(theta0[:, None] + slope[:, None] * t + curve[:, None] * t**2, 0.004), axis=1)
    phi = (eta[:, None] / theta ** gamma[:, None])[:, :, None]
    r = rho[:, None, None]
    x = phi * K_GRID + r
    return 0.5 * theta[:, :, None] * (1.0 + r * phi * K_GRID + np.sqrt(x * x + 1.0 - r * r))


def with_vol_noise(w: np.ndarray, rng: np.random.Generator, bps: float) -> np.ndarray:
    """The post's quote noise: `bps` vol basis points, x(1 + 1.5|k|/0.45) x(1 + 0.6 front)."""
    iv = np.sqrt(w / T_MESH)
    wing = 1.0 + 1.5 * np.abs(K_MESH) / np.max(np.abs(K_GRID))
    front = 1.0 + 0.6 * (T_GRID[-1] - T_MESH) / (T_GRID[-1] - T_GRID[0])
    noisy = np.clip(iv + rng.normal(0.0, bps / 1e4, w.shape) * wing * front, 0.03, 2.0)
    return noisy**2 * T_MESH


def iv_rmse(w_a: np.ndarray, w_b: np.ndarray) -> float:
    """Root-mean-square implied-vol difference over every node of every surface."""
    return float(np.sqrt(np.mean((np.sqrt(w_a / T_MESH) - np.sqrt(w_b / T_MESH)) ** 2)))


def best_of(fn, repeats: int) -> tuple[float, float]:
    """Fastest of `repeats` runs of fn(): (wall ms, CPU ms). On a shared machine the CPU time
    is the better guide to what one uncontended core would take."""
    wall = cpu = np.inf
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - w0), min(cpu, time.process_time() - c0)
    return 1e3 * wall, 1e3 * cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="surfaces per noise level")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    truth = gj_safe_ssvi(args.n, rng)
    assert arb.arbitrage_report(truth) == {"calendar_rate": 0.0, "g_negative_rate": 0.0}

    print(f"{args.n} arbitrage-free SSVI surfaces + quote noise, project(w, 'full'); vol units")
    print(f"{'noise':>6} {'cal before':>10} {'g<0 before':>10} {'after':>11} {'slices hit':>10}"
          f" {'RMSE noisy':>10} {'calendar':>9} {'full':>8} {'moved':>8} {'by bfly':>8}")
    for bps in (18.0, 40.0, 70.0):
        noisy = with_vol_noise(truth, rng, bps)
        cal, out = arb.project(noisy, "calendar"), arb.project(noisy, "full")
        before, after = arb.arbitrage_report(noisy), arb.arbitrage_report(out)
        hit = np.mean(np.any(out != noisy, axis=-1))
        print(f"{bps:4.0f}bp {before['calendar_rate']:10.2%} {before['g_negative_rate']:10.2%}"
              f" {after['calendar_rate']:5.2%}/{after['g_negative_rate']:.2%} {hit:10.1%}"
              f" {iv_rmse(noisy, truth):10.5f} {iv_rmse(cal, truth):9.5f} {iv_rmse(out, truth):8.5f}"
              f" {iv_rmse(out, noisy):8.5f} {iv_rmse(out, cal):8.5f}")
    print("(RMSE columns: to the truth; moved: full output vs noisy input; by bfly: full vs calendar)")

    noisy_2000 = with_vol_noise(gj_safe_ssvi(2000, rng), rng, 18.0)
    clean_2000 = gj_safe_ssvi(2000, rng)
    cases = [("1 clean surface", lambda: arb.project(clean_2000[0], "full"), 100),
             ("1 noisy surface (18bp)", lambda: arb.project(noisy_2000[0], "full"), 100),
             ("2000 clean surfaces", lambda: arb.project(clean_2000, "full"), 5),
             ("2000 noisy surfaces (18bp)", lambda: arb.project(noisy_2000, "full"), 3)]
    load = os.getloadavg()[0]
    print(f"\nproject(w, 'full'), best of several runs: wall ms / CPU ms (load average {load:.1f})")
    for name, fn, repeats in cases:
        wall, cpu = best_of(fn, repeats)
        print(f"  {name:28s} {wall:9.2f} / {cpu:9.2f}")


if __name__ == "__main__":
    main()
