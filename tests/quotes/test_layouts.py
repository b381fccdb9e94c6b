"""Each vendor layout fixture loads, is detected as its layout, and round-trips to the synthetic vols."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.quotes.chain_import import import_chain, import_laid_out

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "layouts"
TOOL = ROOT / "tools" / "make_layout_fixtures.py"

# file -> (layout, import options); spy_like has no discount column, so its rate is given
CASES = {
    "yfinance.csv": ("yfinance", {}),
    "yfinance_symbol_only.csv": ("yfinance", {}),
    "yahoo_web.csv": ("yfinance", {}),
    "cboe_datashop_eod.csv": ("cboe_datashop_eod", {}),
    "cboe_datashop_eod_plain.csv": ("cboe_datashop_eod", {}),
    "cboe_datashop_intraday.csv": ("cboe_datashop_intraday", {}),
    "ivydb.csv": ("ivydb", {}),
    "cboe_quotedata.csv": ("cboe_quotedata", {}),
    "quantlib_matrix.txt": ("quantlib_matrix", {}),
    "spy_like_prices.csv": ("generic", {"rate": 0.04}),
    "dte_percent.csv": ("generic", {}),
}
# Prices are written to 6 decimals; the vol inverted from them matches the chain's vol to about
# 1e-9. Percent and matrix files are written to 4-6 decimals of a vol.
IV_TOL = {"dte_percent.csv": 1e-6, "quantlib_matrix.txt": 1e-6}


def _tool():
    spec = importlib.util.spec_from_file_location("make_layout_fixtures", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def truth() -> pd.DataFrame:
    t = _tool().truth()
    calls = t[t["type"] == "call"]
    return calls.assign(Tr=calls["T"].round(9)).set_index(["Tr", "strike"])[["iv", "forward", "discount"]]


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_round_trips(name, truth):
    layout, options = CASES[name]
    chain = import_chain(FIXTURES / name, **options)
    assert chain.report.layout == layout
    used = chain.used
    got = used.assign(Tr=used["T"].round(9)).set_index(["Tr", "strike"])
    joined = got.join(truth.add_suffix("_true"), how="left")
    assert joined["iv_true"].notna().all(), "every used quote is a quote of the synthetic chain"
    assert len(used) == len(truth), "one quote per expiry and strike (the out-of-the-money side)"
    np.testing.assert_allclose(joined["iv"], joined["iv_true"], atol=IV_TOL.get(name, 1e-8), rtol=0)
    np.testing.assert_allclose(joined["forward"], joined["forward_true"], rtol=1e-8)
    arrays = chain.arrays()
    assert set(arrays) == {"T", "k", "iv", "iv_bid", "iv_ask", "forward", "discount", "weight"}
    np.testing.assert_allclose(arrays["k"], np.log(used["strike"] / used["forward"]))
    has_ba = np.isfinite(arrays["iv_bid"])
    if name != "quantlib_matrix.txt":
        assert has_ba.all()
        assert np.all(arrays["iv_bid"] < arrays["iv"]) and np.all(arrays["iv"] < arrays["iv_ask"])


def test_price_layouts_recover_discount(truth):
    """Parity gives D where the file has no discount column: the chain's own exp(-r T)."""
    for name in ("yfinance.csv", "cboe_quotedata.csv", "ivydb.csv"):
        used = import_chain(FIXTURES / name).used
        got = used.assign(Tr=used["T"].round(9)).set_index(["Tr", "strike"]).join(truth.add_suffix("_true"))
        np.testing.assert_allclose(got["discount"], got["discount_true"], rtol=1e-6)


def test_every_decision_is_stated():
    notes = lambda name, **kw: " | ".join(import_chain(FIXTURES / name, **kw).report.notes)  # noqa: E731
    assert "percent" in notes("dte_percent.csv") and "days / 365" in notes("dte_percent.csv")
    spy = notes("spy_like_prices.csv", rate=0.04)
    assert "bid/ask are prices, not vols" in spy and "kept for comparison" in spy
    assert "15:45" in notes("cboe_datashop_eod.csv")
    assert "contractSymbol" in notes("yfinance_symbol_only.csv")
    assert "put-call parity on 4 of 4 expiries" in notes("yfinance.csv")


def test_intraday_keeps_the_latest_snapshot():
    chain = import_chain(FIXTURES / "cboe_datashop_intraday.csv")
    earlier = chain.report.drops["an earlier intraday snapshot (the latest is used)"]
    assert earlier == chain.report.n_quotes // 2


def test_vendor_vol_is_kept_beside_not_used():
    chain = import_chain(FIXTURES / "ivydb.csv")
    used = chain.used
    # -99.99 (IvyDB's "none") is read as missing, the quote itself is still used
    assert used["iv_vendor"].isna().any() and np.isfinite(used["iv"]).all()


def test_fixtures_are_small_and_reproducible(tmp_path):
    paths = _tool().write_all(tmp_path)
    assert {p.name for p in paths} == set(CASES)
    for path in paths:
        assert path.stat().st_size < 50 * 1024
        assert path.read_text() == (FIXTURES / path.name).read_text(), f"{path.name}: rerun tools/make_layout_fixtures.py"


def test_import_converts_to_chain_quotes():
    """The importer's arrays are the chain path's input (core.chain.types.ChainQuotes)."""
    from core.chain.types import ChainQuotes

    chain = import_chain(FIXTURES / "yfinance.csv")
    quotes = ChainQuotes(**chain.arrays())
    assert len(quotes) == len(chain.used)
    np.testing.assert_allclose(quotes.iv, chain.used["iv"])


def test_yahoo_web_table_dash_is_no_quote_and_the_us_stamp_dates_it():
    """The web page's table: a "-" bid is a one-sided quote (not a non-number), and the valuation
    date comes from the month-first trade stamp "3/14/2025 3:59 PM EDT"."""
    df = pd.read_csv(FIXTURES / "yahoo_web.csv", dtype=str)
    df.loc[3, "Bid"] = "-"
    chain = import_chain(df.to_csv(index=False).encode(), name="web.csv")
    row = chain.table.loc[chain.table["row"] == 4].iloc[0]
    assert row["status"] == "dropped" and row["reason"].startswith("one-sided")
    assert any("valuation date 2025-03-14" in note for note in chain.report.notes)


@pytest.mark.parametrize("name, options", [("dte_percent.csv", {}), ("spy_like_prices.csv", {"rate": 0.04})])
def test_vols_written_with_percent_signs_read_as_percent(name, options, truth):
    """"92.18%" cells (broker and web exports) are percent vols, said in a note; before, every row
    was dropped as a non-number (vol file) or the vol was lost (price file's vendor vol)."""
    df = pd.read_csv(FIXTURES / name)
    plain = import_chain(FIXTURES / name, **options)
    if name == "dte_percent.csv":                      # vol quotes in percent already: 92.1762 -> "92.1762%"
        for col in ("iv", "bid", "ask"):
            df[col] = df[col].map(lambda v: f"{v}%")
    else:                                              # decimal vols: 0.921762 -> "92.1762%"
        df["iv"] = (100 * df["iv"]).map(lambda v: f"{v:.4f}%")
    signed = import_chain(df.to_csv(index=False).encode(), name=name, **options)
    assert any("percent signs" in note for note in signed.report.notes)
    assert len(signed.used) == len(plain.used) == len(truth)
    np.testing.assert_allclose(signed.used["iv"], plain.used["iv"], atol=1e-6)
    if "iv_vendor" in plain.used:
        np.testing.assert_allclose(signed.used["iv_vendor"], plain.used["iv_vendor"], atol=1e-6)


def test_display_headers_of_a_broker_export_are_read():
    """Column names with spaces and capitals ("Expiration Date", "Strike Price", "Option Type",
    "Implied Volatility") map like their snake_case forms; the same quotes come out."""
    df = pd.read_csv(FIXTURES / "spy_like_prices.csv")
    plain = import_chain(FIXTURES / "spy_like_prices.csv", rate=0.04)
    shown = df.rename(columns={"expiry": "Expiration Date", "strike": "Strike Price", "forward": "Forward",
                               "option_type": "Option Type", "bid": "Bid", "ask": "Ask", "price": "Mid",
                               "iv": "Implied Volatility"}).drop(columns="k")
    got = import_chain(shown.to_csv(index=False).encode(), name="broker.csv", rate=0.04)
    assert got.report.layout == "generic" and not got.report.ignored
    np.testing.assert_allclose(got.used["iv"], plain.used["iv"], atol=1e-12)
    np.testing.assert_allclose(got.used["strike"], plain.used["strike"])


def test_intraday_time_runs_from_the_snapshot_to_the_close():
    """A 10:00 snapshot: T runs to 16:00 on the expiry date, so a same-day (0DTE) option has six hours
    left and is kept, and a 1-day option has 30 hours, not 24 (24 would read its vol 12 % too high)."""
    from core.engine.black import black_price

    hours = {"2025-03-14": 6.0, "2025-03-15": 30.0, "2025-03-21": 7 * 24 + 6.0}
    rows = []
    for expiry, h in hours.items():
        T = h / (365 * 24)
        for K in (98.0, 99.0, 100.0, 101.0, 102.0):
            for cp in ("C", "P"):
                price = float(black_price(100.0, K, T, 0.2, cp == "C"))
                rows.append({"underlying_symbol": "^SYN", "root": "SYN", "expiration": expiry, "strike": K,
                             "option_type": cp, "quote_datetime": "2025-03-14 10:00:00",
                             "bid": price * 0.999, "ask": price * 1.001, "underlying_bid": 99.99,
                             "underlying_ask": 100.01, "active_underlying_price": 100.0, "implied_volatility": 0.2})
    chain = import_laid_out(pd.DataFrame(rows), "intraday.csv")
    used = chain.used
    assert set(np.round(used["T"] * 365 * 24, 6)) == set(hours.values())     # 0DTE kept, hours counted
    np.testing.assert_allclose(used["iv"], 0.2, atol=2e-3)
    assert any("16:00" in note for note in chain.report.notes)


def test_a_vendor_vol_documented_as_decimal_is_never_rescaled():
    """yfinance's impliedVolatility is decimal: a meme stock's 150 % is 1.5 and stays 1.5 beside the
    recomputed vol (the median rule would have read it as 1.5 %)."""
    raw = pd.read_csv(FIXTURES / "yfinance.csv")
    raw["impliedVolatility"] = 1.5
    chain = import_laid_out(raw, "yfinance.csv")
    assert chain.report.layout == "yfinance"
    np.testing.assert_allclose(chain.used["iv_vendor"], 1.5)
    assert not any("vendor vol read as percent" in note for note in chain.report.notes)
