"""Chain rows to Black vols: price quotes (out of the money, two-sided, inverted) and vol quotes.

Used by core.quotes.chain_import, which owns the order of the steps; ``drops`` is its row-reason
recorder (``mark(mask, reason)``, first reason wins). Prices in the chain's currency units, T in
years, vols decimal per sqrt(year).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.engine.black import implied_vol

from .forwards import carry_forward, expiry_forwards
from .quoteset import MAX_IV, MIN_IV

_STATUS = {3: "no time value (mid at or below intrinsic)", 4: "no time value (mid at or below intrinsic)",
           5: "mid at or above the no-arbitrage upper bound", 6: "mid at or above the no-arbitrage upper bound"}


def option_types(f: pd.DataFrame, drops) -> np.ndarray:
    """is_call per row from any vendor spelling (c/call/calls, p/put/puts)."""
    text = f["type"].astype("string").str.strip().str.lower().fillna("")
    is_call = text.isin(["c", "call", "calls"]).to_numpy()
    is_put = text.isin(["p", "put", "puts"]).to_numpy()
    drops.mark(~(is_call | is_put), "option type is not call or put")
    return is_call


def one_root(f: pd.DataFrame, T: np.ndarray, two_sided: np.ndarray, drops, notes: list) -> None:
    """Where an expiry is listed under two roots (SPX and SPXW), keep the one with more two-sided
    quotes: the two settle differently (AM vs PM) and are not one smile."""
    if "root" not in f or f["root"].nunique() < 2:
        return
    key = pd.DataFrame({"T": np.round(T, 9), "root": f["root"].astype(str), "two": two_sided & ~drops.bad})
    score = key.groupby(["T", "root"])["two"].sum()
    best = score.groupby(level=0).idxmax().map(lambda x: x[1])
    keep = key["root"].to_numpy() == key["T"].map(best).to_numpy()
    other = ~keep & np.isfinite(T)
    if other.any():
        drops.mark(other, "second option root at the same expiry (the one with more two-sided quotes is kept)")
        n_two = int(np.sum(key[np.isfinite(T)].groupby("T")["root"].nunique() > 1))
        notes.append(f"{n_two} expiries are listed under two roots; one root kept per expiry")


def _per_row(fwd: pd.DataFrame, T: np.ndarray, col: str) -> np.ndarray:
    return pd.Series(fwd[col].to_numpy(float), index=fwd["T"].to_numpy()).reindex(T).to_numpy(float)


def forwards_and_discounts(f, num, T, K, is_call, drops, notes, carry, n_near) -> tuple:
    """(F per row, D per row, per-expiry table). F: the file's forward column, else parity, else
    spot + rate; D: the file's discount column, else parity, else exp(-r T), else 1 (stated)."""
    spot, rate, q = carry
    live = ~drops.bad & np.isfinite(T)
    quotes = pd.DataFrame({"T": T[live], "strike": K[live], "is_call": is_call[live],
                           "bid": num["bid"][live] if "bid" in num else np.nan,
                           "ask": num["ask"][live] if "ask" in num else np.nan})
    for col in ("spot", "rate", "dividend_yield"):
        if col in num:
            quotes[col] = num[col][live]
    fwd = expiry_forwards(quotes, spot, rate, q, n_near)
    F, D = _per_row(fwd, T, "forward"), _per_row(fwd, T, "discount")
    if "forward" in num:
        F = num["forward"]
        fwd["parity_forward"] = fwd["forward"].where(fwd["source"] == "parity")
        fwd["forward"] = pd.Series(F).groupby(T).median().reindex(fwd["T"]).to_numpy()
        fwd.loc[fwd["source"] != "parity", "source"] = "file"
        n_par = int(fwd["parity_forward"].notna().sum())
        notes.append("forward from the file's forward column" + (
            f"; parity forwards on {n_par} expiries reported beside, largest gap "
            f"{100 * np.nanmax(np.abs(fwd['parity_forward'] / fwd['forward'] - 1)):.3f} %" if n_par else ""))
    else:
        _note_sources(fwd, notes)
    if "discount" in num:
        D = num["discount"]
        notes.append("discount from the file's discount column")
    elif np.isnan(D[live]).any():
        fill = np.exp(-rate * T) if rate is not None else np.ones_like(T)
        D = np.where(np.isfinite(D), D, fill)
        notes.append(f"discount where parity gave none: {'exp(-r T) from the rate given' if rate is not None else '1 (no discount column, no rate: prices taken as undiscounted)'}")
    drops.mark(~(np.isfinite(F) & (F > 0)), "no forward for this expiry (no call/put pairs, no spot and rate)")
    drops.mark(~(np.isfinite(D) & (D > 0)), "no discount factor")
    return F, D, fwd


def _note_sources(fwd: pd.DataFrame, notes: list) -> None:
    par = fwd[fwd["source"] == "parity"]
    text = f"forwards: put-call parity on {len(par)} of {len(fwd)} expiries"
    if len(par):
        text += (f" (implied rates {100 * par['rate'].min():.2f} .. {100 * par['rate'].max():.2f} %, "
                 f"largest residual {par['residual'].max():.4g})")
    carried = int(np.sum(fwd["source"] == "spot+rate"))
    if carried:
        text += f"; spot + rate on {carried}"
    missing = int(np.sum(fwd["source"] == "none"))
    if missing:
        text += f"; none on {missing} (their rows are dropped)"
    notes.append(text)


def price_quotes(f, num, T, drops, notes, carry, n_near, name, query_ok: bool) -> tuple:
    """(table, per-expiry forwards) for a price chain: OTM two-sided quotes inverted to vols."""
    is_call = option_types(f, drops) if "type" in f else np.ones(len(f), bool)
    if "type" not in f:
        raise ValueError(f"{name}: price quotes need a type column (call/put)")
    K = num.get("strike")
    if K is None:
        raise ValueError(f"{name}: price quotes need a strike column")
    drops.mark(~(np.isfinite(K) & (K > 0)), "missing or non-positive strike")
    bid, ask, price = num.get("bid"), num.get("ask"), num.get("price")
    has_ba = bid is not None and ask is not None
    if query_ok:
        empty = ~np.isfinite(price) if price is not None else np.ones(len(f), bool)
        if has_ba:
            empty &= ~np.isfinite(bid) & ~np.isfinite(ask)
        drops.mark(empty, "query")
    if has_ba:
        two = np.isfinite(bid) & np.isfinite(ask) & (bid > 0) & (ask > 0)
        one_root(f, T, two & (ask >= bid), drops, notes)
        drops.mark(~two, "one-sided or no market (bid or ask missing or zero)")
        drops.mark(bid > ask, "crossed (bid above ask)")
        with np.errstate(over="ignore"):
            mid = 0.5 * (bid + ask)
        if price is not None:
            notes.append("the bid/ask mid is the quote; the price column is not used")
    else:
        one_root(f, T, np.isfinite(price), drops, notes)
        mid = price
        drops.mark(~np.isfinite(mid), "missing price")
    F, D, fwd = forwards_and_discounts(f, num, T, K, is_call, drops, notes, carry, n_near)
    with np.errstate(invalid="ignore", divide="ignore"):
        drops.mark((is_call & (K < F)) | (~is_call & (K >= F)),
                   "in the money (the out-of-the-money option at the strike carries the vol)")
        k = np.log(K / F)
    iv, iv_bid, iv_ask = _invert(mid, bid, ask, F, K, T, is_call, D, drops)
    table = pd.DataFrame({"row": f["row"].to_numpy(), "type": np.where(is_call, "call", "put"), "T": T,
                          "strike": K, "k": k, "forward": F, "discount": D, "bid": bid if has_ba else np.nan,
                          "ask": ask if has_ba else np.nan, "iv": iv, "iv_bid": iv_bid, "iv_ask": iv_ask,
                          "iv_vendor": num.get("iv_vendor", np.full(len(f), np.nan)), "weight": 1})
    _note_vendor(table, ~drops.bad, notes)
    return table, fwd


def _invert(mid, bid, ask, F, K, T, is_call, D, drops) -> tuple:
    n = mid.size
    iv, iv_bid, iv_ask = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    ok = ~drops.bad
    if ok.any():
        args = (F[ok], K[ok], T[ok], is_call[ok], D[ok])
        with np.errstate(all="ignore"):
            iv[ok], status = implied_vol(mid[ok], *args, return_status=True)
            if bid is not None and ask is not None:
                iv_bid[ok] = implied_vol(bid[ok], *args)      # NaN where the bid has no vol
                iv_ask[ok] = implied_vol(ask[ok], *args)
        code = np.zeros(n, int)
        code[ok] = status
        for c, label in _STATUS.items():
            drops.mark(code == c, label)
        drops.mark(ok & ~np.isfinite(iv), "mid has no implied vol")
    drops.mark(np.isfinite(iv) & (iv > MAX_IV), f"implied vol above {MAX_IV:g}")
    # as for vols given as such: a price of 1e-12 at the money is a 4e-14 vol, no market's
    drops.mark(np.isfinite(iv) & (iv < MIN_IV), f"implied vol below {MIN_IV:g} (not a market vol)")
    return iv, iv_bid, iv_ask


def _note_vendor(table: pd.DataFrame, used: np.ndarray, notes: list) -> None:
    both = used & np.isfinite(table["iv_vendor"].to_numpy()) & np.isfinite(table["iv"].to_numpy())
    if both.any():
        gap = np.abs(table["iv"].to_numpy()[both] - table["iv_vendor"].to_numpy()[both])
        notes.append(f"vols recomputed from prices; vendor vol differs by median {1e4 * np.median(gap):.0f} bp "
                     f"(90th percentile {1e4 * np.quantile(gap, 0.9):.0f} bp) on {int(both.sum())} quotes")


def vol_quotes(f, num, T, drops, notes, carry, layout, name) -> tuple:
    """(table, per-expiry forwards) for a vol chain: the mid of bid/ask vols, else the iv column."""
    n = len(f)
    bid, ask = num.get("bid"), num.get("ask")
    iv = num.get("iv", np.full(n, np.nan)).copy()
    if bid is not None and ask is not None:
        both = np.isfinite(bid) & np.isfinite(ask)
        drops.mark(both & (bid > ask), "crossed (bid above ask)")
        with np.errstate(over="ignore"):
            iv = np.where(both, 0.5 * (bid + ask), iv)
    empty = "empty cell in the published matrix (no quote)" if layout == "quantlib_matrix" else "query"
    drops.mark(~np.isfinite(iv), empty)
    drops.mark(iv <= 0, "vol <= 0")
    drops.mark(iv < MIN_IV, f"vol below {MIN_IV:g} (not a market vol)")
    drops.mark(iv > MAX_IV, f"vol above {MAX_IV:g}")
    F, D, k, K = _vol_moneyness(num, T, drops, notes, carry, name)
    fwd = pd.DataFrame({"T": T, "forward": F, "discount": D}).dropna(subset=["T"]).groupby("T").median().reset_index()
    fwd["source"] = "file" if "forward" in num else "spot+rate"
    table = pd.DataFrame({"row": f["row"].to_numpy(),
                          "type": f["type"].astype(str).to_numpy() if "type" in f else None, "T": T,
                          "strike": K, "k": k, "forward": F, "discount": D,
                          "bid": bid if bid is not None else np.nan, "ask": ask if ask is not None else np.nan,
                          "iv": iv, "iv_bid": bid if bid is not None else np.nan,
                          "iv_ask": ask if ask is not None else np.nan,
                          "iv_vendor": num.get("iv_vendor", np.full(n, np.nan)), "weight": 1})
    return table, fwd


def _vol_moneyness(num, T, drops, notes, carry, name) -> tuple:
    """(F, D, k, K) for a vol chain: strike + forward (or spot + rate), or k as given."""
    spot, rate, q = carry
    rate = rate if rate is not None else num.get("rate")
    F = num.get("forward")
    if F is None and spot is not None and rate is not None:
        F, _ = carry_forward(spot, rate, T, q or 0.0)
        notes.append("forward = spot exp((r - q) T) from the spot and rate given")
    D = num.get("discount")
    if D is None:
        D = np.exp(-np.asarray(rate) * T) if rate is not None else np.ones_like(T)
        notes.append("discount " + ("exp(-r T)" if rate is not None else "1 (no discount column, no rate)"))
    K = num.get("strike")
    if K is not None and F is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            k = np.log(K / F)
        drops.mark(~np.isfinite(k), "strike or forward missing or not positive")
        return F, D, k, K
    if "k" in num:
        k = num["k"]
        drops.mark(~np.isfinite(k), "missing k")
        F = F if F is not None else np.full_like(T, np.nan)
        return F, D, k, F * np.exp(k)
    raise ValueError(f"{name}: strike given without a forward; add a forward column, give k, or pass spot and rate")


def merge_duplicates(table: pd.DataFrame, drops) -> None:
    """Quotes at the same expiry, strike and type: one entry, the mean vols, weight = the count."""
    T, k = table["T"].to_numpy(float), table["k"].to_numpy(float)
    # rounding 1e308 overflows; no real quote has |T| or |k| that large
    used = np.flatnonzero(~drops.bad & (np.abs(T) < 1e3) & (np.abs(k) < 1e3))
    if used.size < 2:
        return
    key = pd.DataFrame({"T": np.round(table["T"].to_numpy()[used], 9),
                        "k": np.round(table["k"].to_numpy()[used], 9),
                        "type": table["type"].astype(str).to_numpy()[used], "i": used})
    dup = key.duplicated(["T", "k", "type"], keep=False)
    if not dup.any():
        return
    rest = np.zeros(len(table), bool)
    for _, group in key[dup].groupby(["T", "k", "type"]):
        members = group["i"].to_numpy()
        for col in ("iv", "iv_bid", "iv_ask"):
            table.loc[members[0], col] = np.nanmean(table[col].to_numpy()[members]) \
                if np.isfinite(table[col].to_numpy()[members]).any() else np.nan
        table.loc[members[0], "weight"] = members.size
        rest[members[1:]] = True
    drops.mark(rest, "duplicate (averaged into the first quote at the same expiry, strike and type)")
