"""Write one small fixture file per vendor layout from our own synthetic chain.

    python tools/make_layout_fixtures.py [OUT_DIR]      (default tests/fixtures/layouts)

The chain: ``core.synth.chains.make_chain`` over an SSVI surface (seed 0), thinned to a few
expiries and strikes so each file stays small. Prices are Black prices of the chain's noisy vols,
with bid/ask placed symmetrically around them (so the mid is the model price to the written
precision) and a call and a put at every strike, so parity holds exactly on the mids. Each file
is that chain as a vendor writes it; the tests import each one and compare to ``truth()``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.engine.black import black_price  # noqa: E402
from core.synth.chains import ChainSpec, make_chain, surface_function  # noqa: E402

SPEC = ChainSpec(spot=5000.0, rate=0.04, dividend_yield=0.015, weeklies=1, monthlies=4, horizon_years=1.2)
N_EXPIRIES = 4
N_STRIKES = 13
ROOT_SYMBOL = "SYN"
HALF_SPREAD_VOL = 0.004        # half bid/ask spread in vol, turned into price units per option


def truth(seed: int = 0) -> pd.DataFrame:
    """The chain every fixture holds: one row per expiry, strike and type with expiry, T, strike,
    forward, discount, iv (the quote's vol), type, price, bid, ask (price units)."""
    chain = make_chain(surface_function("ssvi", seed), SPEC, seed=seed)
    expiries = sorted(chain["expiry"].unique())
    pick = [expiries[i] for i in np.linspace(0, len(expiries) - 1, N_EXPIRIES).round().astype(int)]
    parts = []
    for expiry in pick:
        one = chain[chain["expiry"] == expiry]
        parts.append(one.iloc[np.linspace(0, len(one) - 1, N_STRIKES).round().astype(int)])
    base = pd.concat(parts)[["valuation_date", "expiry", "T", "strike", "forward", "discount", "iv"]]
    rows = []
    for kind, is_call in (("call", True), ("put", False)):
        part = base.assign(type=kind)
        F, K, T, D, iv = (part[c].to_numpy() for c in ("forward", "strike", "T", "discount", "iv"))
        price = black_price(F, K, T, iv, is_call, D)
        half = 0.5 * (black_price(F, K, T, iv + HALF_SPREAD_VOL, is_call, D)
                      - black_price(F, K, T, iv - HALF_SPREAD_VOL, is_call, D))
        half = np.minimum(half, 0.5 * price)
        rows.append(part.assign(price=price.round(6), bid=(price - half).round(6), ask=(price + half).round(6)))
    return pd.concat(rows).sort_values(["expiry", "strike", "type"]).reset_index(drop=True)


def _occ(expiry: pd.Series, kind: pd.Series, strike: pd.Series) -> pd.Series:
    ymd = pd.to_datetime(expiry).dt.strftime("%y%m%d")
    cp = kind.str[0].str.upper()
    return ROOT_SYMBOL + ymd + cp + (strike * 1000).round().astype(int).astype(str).str.zfill(8)


def yfinance(t: pd.DataFrame, with_columns: bool = True) -> pd.DataFrame:
    """A yfinance option_chain dump (calls then puts); without type/expiration columns when asked."""
    t = t.sort_values(["type", "expiry", "strike"])
    out = pd.DataFrame({"contractSymbol": _occ(t["expiry"], t["type"], t["strike"]),
                        "lastTradeDate": "2025-03-14 19:59:00+00:00", "strike": t["strike"],
                        "lastPrice": t["price"].round(2), "bid": t["bid"], "ask": t["ask"], "change": 0.0,
                        "percentChange": 0.0, "volume": 1.0, "openInterest": 10.0,
                        "impliedVolatility": t["iv"].round(5), "inTheMoney": False, "contractSize": "REGULAR",
                        "currency": "USD"})
    if with_columns:
        out["type"] = t["type"].to_numpy()
        out["expiration"] = t["expiry"].to_numpy()
        out["stockPrice"] = SPEC.spot
    return out


def yahoo_web(t: pd.DataFrame) -> pd.DataFrame:
    """The Yahoo Finance web page's options table as copied out: display headers, no type or expiry
    columns (both in the contract name), thousands separators, "-" for a missing last price, percent
    vols and US trade stamps."""
    t = t.sort_values(["type", "expiry", "strike"])
    money = lambda x: x.map(lambda v: f"{v:,.6f}")          # noqa: E731 (as the page writes prices)
    return pd.DataFrame({"Contract Name": _occ(t["expiry"], t["type"], t["strike"]),
                         "Last Trade Date": "3/14/2025 3:59 PM EDT", "Strike": money(t["strike"]),
                         "Last Price": "-", "Bid": money(t["bid"]), "Ask": money(t["ask"]), "Change": "0.00",
                         "% Change": "0.00%", "Volume": "1,204", "Open Interest": "10",
                         "Implied Volatility": (100 * t["iv"]).map(lambda v: f"{v:.2f}%")})


def cboe_datashop(t: pd.DataFrame, intraday: bool, plain: bool = False) -> pd.DataFrame:
    """Cboe DataShop option quotes: EOD (15:45 and end-of-day snapshots; or ``plain`` bid/ask columns)
    or intraday (two snapshots, the earlier one off-market, so a reader that keeps the wrong one
    fails the round trip)."""
    common = {"underlying_symbol": "^SYN", "root": ROOT_SYMBOL, "expiration": t["expiry"], "strike": t["strike"],
              "option_type": t["type"].str[0].str.upper()}
    if plain:
        return pd.DataFrame({**common, "quote_date": t["valuation_date"], "bid": t["bid"], "ask": t["ask"],
                             "underlying_bid": SPEC.spot - 0.5, "underlying_ask": SPEC.spot + 0.5,
                             "implied_volatility": t["iv"].round(4)})
    if not intraday:
        return pd.DataFrame({**common, "quote_date": t["valuation_date"], "bid_1545": t["bid"], "ask_1545": t["ask"],
                             "underlying_bid_1545": SPEC.spot - 0.5, "underlying_ask_1545": SPEC.spot + 0.5,
                             "active_underlying_price_1545": SPEC.spot, "implied_volatility_1545": t["iv"].round(4),
                             "bid_eod": (t["bid"] * 1.02).round(6), "ask_eod": (t["ask"] * 1.02).round(6)})
    late = pd.DataFrame({**common, "quote_datetime": "2025-03-14 16:00:00", "bid": t["bid"], "ask": t["ask"],
                         "underlying_bid": SPEC.spot - 0.5, "underlying_ask": SPEC.spot + 0.5,
                         "active_underlying_price": SPEC.spot, "implied_volatility": t["iv"].round(4)})
    early = late.assign(quote_datetime="2025-03-14 10:00:00", bid=(t["bid"] * 1.05).round(6),
                        ask=(t["ask"] * 1.05).round(6))
    return pd.concat([early, late], ignore_index=True)


def ivydb(t: pd.DataFrame) -> pd.DataFrame:
    """OptionMetrics IvyDB option prices: compact dates, strike x 1000, -99.99 for a missing vol."""
    vendor = t["iv"].round(6).to_numpy().copy()
    vendor[::7] = -99.99
    return pd.DataFrame({"secid": 108105, "date": pd.to_datetime(t["valuation_date"]).dt.strftime("%Y%m%d"),
                         "symbol": _occ(t["expiry"], t["type"], t["strike"]),
                         "exdate": pd.to_datetime(t["expiry"]).dt.strftime("%Y%m%d"),
                         "cp_flag": t["type"].str[0].str.upper(), "strike_price": (t["strike"] * 1000).round().astype(int),
                         "best_bid": t["bid"], "best_offer": t["ask"], "volume": 1, "open_interest": 10,
                         "impl_volatility": vendor, "forward_price": t["forward"].round(6)})


def spy_like(t: pd.DataFrame) -> pd.DataFrame:
    """A cleaned surface file like the SPY one in ../shared/real/raw: T, k and a vol column, with
    bid/ask in PRICE units and no discount (the reader must see that they are prices)."""
    F, K = t["forward"], t["strike"]
    otm = t[((t["type"] == "put") & (K < F)) | ((t["type"] == "call") & (K >= F))]
    return pd.DataFrame({"expiry": otm["expiry"], "T": otm["T"], "strike": otm["strike"], "forward": otm["forward"],
                         "k": np.log(otm["strike"] / otm["forward"]), "option_type": otm["type"],
                         "bid": otm["bid"], "ask": otm["ask"], "price": otm["price"], "iv": otm["iv"].round(6)})


def dte_percent(t: pd.DataFrame) -> pd.DataFrame:
    """Days to expiry and vols in percent (bid/ask too): the importer must say it read percent."""
    one = t[t["type"] == "call"]
    days = np.round(one["T"] * 365).astype(int)
    return pd.DataFrame({"dte": days, "strike": one["strike"], "forward": one["forward"].round(6),
                         "iv": (100 * one["iv"]).round(4), "bid": (100 * (one["iv"] - HALF_SPREAD_VOL)).round(4),
                         "ask": (100 * (one["iv"] + HALF_SPREAD_VOL)).round(4)})


def cboe_quotedata(t: pd.DataFrame) -> str:
    """Cboe's delayed-quotes download: 3 header lines, call and put side by side per strike."""
    calls = t[t["type"] == "call"].reset_index(drop=True)
    puts = t[t["type"] == "put"].reset_index(drop=True)
    lines = ["", f"Synthetic Index,Last: {SPEC.spot:.4f},Change: 0",
             '"Date: March 14, 2025, 4:30 PM EDT",Bid: 4999.5,Ask: 5000.5,Size: 1*1,Volume: 0',
             "Expiration Date,Calls,Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest,Strike,Puts,Last Sale,"
             "Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest"]
    symbols_c = _occ(calls["expiry"], calls["type"], calls["strike"])
    symbols_p = _occ(puts["expiry"], puts["type"], puts["strike"])
    for i in range(len(calls)):
        c, p = calls.iloc[i], puts.iloc[i]
        date = pd.Timestamp(c["expiry"]).strftime("%a %b %d %Y")
        lines.append(f"{date},{symbols_c[i]},0,0,{c['bid']},{c['ask']},0,{c['iv']:.4f},0,0,0,{c['strike']:.2f},"
                     f"{symbols_p[i]},0,0,{p['bid']},{p['ask']},0,{p['iv']:.4f},0,0,0")
    return "\n".join(lines) + "\n"


def quantlib_matrix(t: pd.DataFrame) -> str:
    """QuantLib test-suite style vol matrix (t_days, zero_rate, spot, strikes; 0 = no quote).
    zero_rate is r - q so that spot exp(zero_rate T) is the chain's forward."""
    one = t[t["type"] == "call"]
    table = one.pivot_table(index="strike", columns="T", values="iv").fillna(0.0)
    days = np.round(table.columns.to_numpy() * 365).astype(int)
    lines = ["# synthetic chain (core.synth.chains, seed 0) in the layout of QuantLib's test-suite data",
             "t_days," + ",".join(map(str, days)),
             "zero_rate," + ",".join([f"{SPEC.rate - SPEC.dividend_yield:.6f}"] * days.size),
             f"spot,{SPEC.spot}", "strikes," + ",".join(f"{k:g}" for k in table.index),
             "# implied vols: one line per strike, one column per maturity"]
    lines += [",".join(f"{v:.6f}" for v in row) for row in table.to_numpy()]
    return "\n".join(lines) + "\n"


def write_all(out_dir: Path) -> list:
    """Write every fixture into out_dir; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    t = truth()
    frames = {"yfinance.csv": yfinance(t), "yfinance_symbol_only.csv": yfinance(t, with_columns=False),
              "yahoo_web.csv": yahoo_web(t),
              "cboe_datashop_eod.csv": cboe_datashop(t, intraday=False),
              "cboe_datashop_eod_plain.csv": cboe_datashop(t, intraday=False, plain=True),
              "cboe_datashop_intraday.csv": cboe_datashop(t, intraday=True), "ivydb.csv": ivydb(t),
              "spy_like_prices.csv": spy_like(t), "dte_percent.csv": dte_percent(t)}
    texts = {"cboe_quotedata.csv": cboe_quotedata(t), "quantlib_matrix.txt": quantlib_matrix(t)}
    paths = []
    for name, frame in frames.items():
        (out_dir / name).write_text(frame.to_csv(index=False, float_format="%.10g"))
        paths.append(out_dir / name)
    for name, text in texts.items():
        (out_dir / name).write_text(text)
        paths.append(out_dir / name)
    return paths


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests" / "fixtures" / "layouts"
    for path in write_all(target):
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {path.stat().st_size / 1024:.1f} KB")
