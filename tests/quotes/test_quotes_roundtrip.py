"""Round trip: quotes from a known surface at off-grid strikes and expiries -> file -> CLI -> the surface.

Tolerances (measured on six SSVI surfaces with noise-free quotes, interpolation repair): the
repaired grid is within 0.6 bp RMS / 5.6 bp max of the known surface, and each quote's repaired
value within 0.9 bp RMS / 5.5 bp max. The test allows 2 bp RMS and 10 bp max for both.
"""
import datetime as dt
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import core
from core.cli import main
from core.synth.chains import surface_function

ROOT = Path(__file__).resolve().parents[2]
TOL_RMS, TOL_MAX = 2e-4, 10e-4


def known_surface_quotes(seed: int, rng) -> tuple:
    """Dense off-grid quotes of an SSVI surface over the grid's whole reach (T, strike, forward, iv)."""
    f = surface_function("ssvi", 8000 + seed)
    T = np.arange(0.083, 2.07, 0.061) + rng.uniform(-0.01, 0.01)
    rows = [(t, kk) for t in T for kk in np.arange(-0.47, 0.471, 0.0125) + rng.uniform(-0.005, 0.005)]
    df = pd.DataFrame(rows, columns=["T", "k"])
    df["forward"] = 4000.0 * np.exp(0.02 * df["T"])
    df["strike"] = df["forward"] * np.exp(df["k"])
    df["iv"] = np.sqrt(f(df["T"].to_numpy(), df["k"].to_numpy()) / df["T"].to_numpy())
    truth = np.sqrt(f(*np.meshgrid(core.T_GRID, core.K_GRID, indexing="ij")) / core.T_GRID[:, None])
    return df, f, truth


def _check(out_dir: Path, f, truth):
    grid = pd.read_csv(out_dir / "grid.csv")
    iv = grid["iv"].to_numpy().reshape(13, 17)
    assert grid["observed"].all()
    err = iv - truth
    assert np.sqrt(np.mean(err**2)) < TOL_RMS and np.abs(err).max() < TOL_MAX
    q = pd.read_csv(out_dir / "quotes.csv")
    used = q[q["status"] == "used"]
    assert len(used) > 0.95 * len(q)
    eq = used["iv_repaired"] - np.sqrt(f(used["T"].to_numpy(), used["k"].to_numpy()) / used["T"].to_numpy())
    assert np.sqrt(np.mean(eq**2)) < TOL_RMS and np.abs(eq).max() < TOL_MAX


@pytest.mark.parametrize("seed", [0, 1])
def test_iv_quotes_round_trip_through_the_cli(tmp_path, seed):
    df, f, truth = known_surface_quotes(seed, np.random.default_rng(seed))
    path = tmp_path / "quotes.csv"
    df[["T", "strike", "forward", "iv"]].to_csv(path, index=False)
    assert main(["repair", str(path), "--method", "interp", "--out", str(tmp_path / "out"), "--no-stale",
                 "--quiet"]) == 0
    _check(tmp_path / "out", f, truth)


def test_price_quotes_with_dates_round_trip_through_the_cli(tmp_path):
    black = pytest.importorskip("core.engine.black")
    df, f, truth = known_surface_quotes(2, np.random.default_rng(2))
    valuation = dt.date(2025, 1, 2)
    # expiries as dates: keep T = days / 365 exact so the truth is known at the quoted T
    days = np.round(df["T"].to_numpy() * 365).astype(int)
    df["T"] = days / 365.0
    df["iv"] = np.sqrt(f(df["T"].to_numpy(), df["k"].to_numpy()) / df["T"].to_numpy())
    df["valuation_date"] = valuation.isoformat()
    df["expiry"] = [(valuation + dt.timedelta(days=int(d))).isoformat() for d in days]
    df["discount"] = np.exp(-0.03 * df["T"])
    df["type"] = np.where(df["k"] >= 0, "call", "put")
    df["price"] = black.black_price(df["forward"], df["strike"], df["T"], df["iv"], df["type"] == "call",
                                    df["discount"])
    path = tmp_path / "prices.parquet"
    df[["valuation_date", "expiry", "strike", "forward", "discount", "type", "price"]].to_parquet(path)
    assert main(["repair", str(path), "--method", "interp", "--out", str(tmp_path / "out"), "--no-stale",
                 "--format", "csv", "--quiet"]) == 0
    truth = np.sqrt(f(*np.meshgrid(core.T_GRID, core.K_GRID, indexing="ij")) / core.T_GRID[:, None])
    _check(tmp_path / "out", f, truth)


def test_cli_as_a_subprocess(tmp_path):
    df, f, truth = known_surface_quotes(3, np.random.default_rng(3))
    path = tmp_path / "q.csv"
    df[["T", "strike", "forward", "iv"]].to_csv(path, index=False)
    run = subprocess.run([sys.executable, "-m", "core.cli", "repair", str(path), "--method", "svi", "--out",
                          str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "used on" in run.stdout and "stale flags" in run.stdout
    for name in ("grid", "quotes", "svi_params"):
        assert (tmp_path / "out" / f"{name}.csv").is_file() and (tmp_path / "out" / f"{name}.parquet").is_file()
    svi = pd.read_parquet(tmp_path / "out" / "svi_params.parquet")
    assert list(svi.columns[:6]) == ["T", "a", "b", "rho", "m", "sigma"] and len(svi) == 13
