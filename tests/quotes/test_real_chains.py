"""Every shared real chain loads in the layout it has (../shared/real, beside the repo; skipped when absent)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.quotes.chain_import import import_chain

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "real"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"no shared real chains at {REAL} (a fresh clone has none)")

LAYOUTS = {
    "aapl_20250926.csv": "generic", "ah2010_20100301.csv": "generic", "dax_20020705.csv": "generic",
    "spx_20220610.csv": "generic", "spy_20260813.csv": "generic", "spy_20260821.csv": "generic",
    "raw/ah2010_quantlib_data.txt": "quantlib_matrix", "raw/dax_sepp2002_quantlib_data.txt": "quantlib_matrix",
    "raw/cboe_spx_quotedata_20220610.csv": "cboe_quotedata", "raw/luisseoanes_AAPL_options.csv": "yfinance",
    "raw/spy_surface_points_20260813.csv": "generic", "raw/spy_surface_points_20260821.csv": "generic",
}
# Reasons a quant accepts for setting a quote aside.
ACCEPTED = {
    "expired (expiry on or before the valuation date)",
    "second option root at the same expiry (the one with more two-sided quotes is kept)",
    "one-sided or no market (bid or ask missing or zero)", "crossed (bid above ask)",
    "in the money (the out-of-the-money option at the strike carries the vol)",
    "no time value (mid at or below intrinsic)", "mid at or above the no-arbitrage upper bound",
    "empty cell in the published matrix (no quote)",
}


@pytest.fixture(scope="module")
def chains() -> dict:
    return {name: import_chain(REAL / name) for name in LAYOUTS}


def test_every_file_loads_in_its_layout(chains):
    on_disk = {p.relative_to(REAL).as_posix() for p in REAL.glob("*.csv")} | \
              {p.relative_to(REAL).as_posix() for p in (REAL / "raw").iterdir()}
    assert on_disk <= set(LAYOUTS), f"new shared files without an expected layout: {on_disk - set(LAYOUTS)}"
    for name, chain in chains.items():
        assert chain.report.layout == LAYOUTS[name], name
        assert set(chain.report.drops) <= ACCEPTED, (name, set(chain.report.drops) - ACCEPTED)
        assert sum(chain.report.drops.values()) + chain.report.n_used + chain.report.n_query == chain.report.n_quotes
        arrays = chain.arrays()
        for key in ("T", "iv", "forward", "discount"):
            assert np.all(np.isfinite(arrays[key])) and np.all(arrays[key] > 0), (name, key)


def test_converted_files_lose_nothing(chains):
    """The converted files hold clean out-of-the-money two-sided quotes: every one is used."""
    for name, chain in chains.items():
        if not name.startswith("raw/"):
            assert chain.report.n_used == chain.report.n_quotes, (name, chain.report.drops)


def test_raw_matrices_match_their_conversions(chains):
    for raw, conv in (("raw/ah2010_quantlib_data.txt", "ah2010_20100301.csv"),
                      ("raw/dax_sepp2002_quantlib_data.txt", "dax_20020705.csv")):
        a, b = (chains[n].used.sort_values(["T", "strike"]) for n in (raw, conv))
        assert len(a) == len(b)
        np.testing.assert_allclose(a["T"], b["T"], rtol=1e-6)
        np.testing.assert_allclose(a["strike"], b["strike"], rtol=1e-6)
        np.testing.assert_allclose(a["iv"], b["iv"], atol=1e-12)
        np.testing.assert_allclose(a["forward"], b["forward"], rtol=1e-6)


@pytest.mark.parametrize("raw,conv,tol", [("raw/cboe_spx_quotedata_20220610.csv", "spx_20220610.csv", 1e-3),
                                          ("raw/luisseoanes_AAPL_options.csv", "aapl_20250926.csv", 5e-3)])
def test_parity_forwards_match_the_converted_files(chains, raw, conv, tol):
    chain = chains[raw]
    expiry_of_T = chain.table.groupby("T")["expiry"].first()
    ours = chain.forwards.assign(expiry=chain.forwards["T"].map(expiry_of_T)).set_index("expiry")
    theirs = pd.read_csv(REAL / conv).groupby("expiry")["forward"].first()
    assert set(theirs.index) <= set(ours.index)
    assert (ours.loc[theirs.index, "source"] == "parity").all()
    rel = np.abs(ours.loc[theirs.index, "forward"] / theirs - 1)
    assert rel.max() <= tol, rel.sort_values().tail(3)


def test_spy_raw_bid_ask_are_read_as_prices(chains):
    for name in ("raw/spy_surface_points_20260813.csv", "raw/spy_surface_points_20260821.csv"):
        chain = chains[name]
        assert any("bid/ask are prices, not vols" in note for note in chain.report.notes)
        used = chain.used
        # recomputed vols sit close to the file's own vol column (its vols come from the same mids)
        gap = np.abs(used["iv"] - used["iv_vendor"])
        assert np.median(gap) < 0.002 and used["iv"].max() < 2.0


def test_raw_spx_keeps_the_full_range(chains):
    used = chains["raw/cboe_spx_quotedata_20220610.csv"].used
    assert used["T"].min() < 5 / 365 and used["T"].max() > 4.0
    assert used["k"].min() < -1.0
